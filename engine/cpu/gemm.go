package cpu

// gemmTask is one row-major GEMM c = alpha·op(a)·op(b) + beta·c split across the workers in
// blocks of 16 rows of c, or of 16 columns when c has too few rows to give every worker a
// block (decoding: one row per sequence); each worker calls single-threaded OpenBLAS on its
// blocks.
type gemmTask struct {
	ta, tb      bool
	m, n, k     int
	alpha, beta float32
	a, b, c     []float32
	lda, ldb    int
	ldc         int
	cols        bool // blocks of columns, not rows
}

// gemmBlock is the number of rows or columns of c a block holds: whole kernel tiles.
const gemmBlock = 16

func (t *gemmTask) run(_, lo, hi int) {
	if lo >= hi {
		return
	}
	lo *= gemmBlock
	if t.cols {
		hi = min(hi*gemmBlock, t.n)
		// Columns [lo, hi) of op(b): columns of b, or rows when b is transposed.
		boff := lo
		if t.tb {
			boff = lo * t.ldb
		}
		sgemm(t.ta, t.tb, t.m, hi-lo, t.k, t.alpha, &t.a[0], t.lda, &t.b[boff], t.ldb, t.beta, &t.c[lo], t.ldc)
		return
	}
	hi = min(hi*gemmBlock, t.m)
	// Rows [lo, hi) of op(a): rows of a, or columns when a is transposed.
	aoff := lo * t.lda
	if t.ta {
		aoff = lo
	}
	sgemm(t.ta, t.tb, hi-lo, t.n, t.k, t.alpha, &t.a[aoff], t.lda, &t.b[0], t.ldb, t.beta, &t.c[lo*t.ldc], t.ldc)
}

// gemm computes c = alpha·op(a)·op(b) + beta·c (op(a) m×k, op(b) k×n, row-major), in
// parallel over blocks of rows (or columns) of c when the backend has several threads.
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
	rowBlocks := (m + gemmBlock - 1) / gemmBlock
	cols := rowBlocks < b.threads
	b.tGemm = gemmTask{ta, tb, m, n, k, alpha, beta, a, bm, c, lda, ldb, ldc, cols}
	// The cost of a block in the pool's units (multiply-adds / 32).
	if cols {
		b.pool.static(&b.tGemm, (n+gemmBlock-1)/gemmBlock, m*k/2)
	} else {
		b.pool.static(&b.tGemm, rowBlocks, n*k/2)
	}
	b.tGemm = gemmTask{}
}
