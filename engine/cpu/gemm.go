package cpu

// gemmTask splits one row-major GEMM c = alpha·op(a)·op(b) + beta·c across the workers by rows
// of c, each worker calling single-threaded OpenBLAS on its block.
type gemmTask struct {
	ta, tb      bool
	m, n, k     int
	alpha, beta float32
	a, b, c     []float32
	lda, ldb    int
	ldc         int
}

func (t *gemmTask) run(_, lo, hi int) {
	if lo >= hi {
		return
	}
	// Rows [lo, hi) of op(a): rows of a, or columns when a is transposed.
	aoff := lo * t.lda
	if t.ta {
		aoff = lo
	}
	sgemm(t.ta, t.tb, hi-lo, t.n, t.k, t.alpha, &t.a[aoff], t.lda, &t.b[0], t.ldb, t.beta, &t.c[lo*t.ldc], t.ldc)
}

// gemm computes c = alpha·op(a)·op(b) + beta·c (op(a) m×k, op(b) k×n, row-major), in
// parallel over blocks of rows of c when the backend has several threads.
func (b *Backend) gemm(ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, bm []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if b.blasThreads || b.threads == 1 {
		setBLASThreads(b.threads)
		sgemm(ta, tb, m, n, k, alpha, &a[0], lda, &bm[0], ldb, beta, &c[0], ldc)
		return
	}
	setBLASThreads(1)
	b.tGemm = gemmTask{ta, tb, m, n, k, alpha, beta, a, bm, c, lda, ldb, ldc}
	// Blocks of rows in multiples of 16 keep the kernels' tiles whole.
	blocks := (m + 15) / 16
	b.tGemmB = gemmBlocks{&b.tGemm, m}
	b.pool.static(&b.tGemmB, blocks, n*k/2)
}

// gemmBlocks maps ranges of 16-row blocks to ranges of rows.
type gemmBlocks struct {
	g *gemmTask
	m int
}

func (t *gemmBlocks) run(w, lo, hi int) {
	t.g.run(w, lo*16, min(hi*16, t.m))
}
