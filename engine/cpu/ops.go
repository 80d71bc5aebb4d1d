package cpu

import (
	"fmt"
	"math"

	"cir/engine"
)

// ---- Embedding ----

type embTask struct {
	b          *Backend
	out, table []float32
	ids        []int32
	C, V       int
}

func (t *embTask) run(_, lo, hi int) {
	C := t.C
	for n := lo; n < hi; n++ {
		id := int(t.ids[n])
		dst := t.out[n*C : (n+1)*C]
		if id < 0 || id >= t.V {
			clear(dst)
			t.b.fail(fmt.Errorf("cpu: Embedding: id %d of row %d out of range [0,%d): %w", id, n, t.V, ErrOutOfRange))
			continue
		}
		copy(dst, t.table[id*C:(id+1)*C])
	}
}

// Embedding gathers out (N,C) = table (V,C) [ids (N)]. An id out of range gives a zero row and
// an error from Sync. It panics on mismatched shapes.
func (b *Backend) Embedding(out, ids, table engine.Tensor) {
	V, C := rows("Embedding", "table", table)
	N, _ := rows("Embedding", "out", out)
	o := f32("Embedding", "out", out, N*C)
	tb := f32("Embedding", "table", table, V*C)
	id := i32("Embedding", "ids", ids, N)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tEmb = embTask{b, o, tb, id, C, V}
	b.pool.static(&b.tEmb, N, C)
}

type embBackTask struct {
	dtable, dout []float32
	ids          []int32
	C, V         int
}

func (t *embBackTask) run(_, lo, hi int) {
	C := t.C
	for n, id := range t.ids {
		if id < 0 || int(id) >= t.V {
			continue
		}
		dst := t.dtable[int(id)*C+lo : int(id)*C+hi]
		src := t.dout[n*C+lo : n*C+hi]
		for i, v := range src {
			dst[i] += v
		}
	}
}

// EmbeddingBackward scatters dtable (V,C) [ids[n]] += dout (N,C) [n]; ids out of range are
// skipped (Embedding reported them). It panics on mismatched shapes.
func (b *Backend) EmbeddingBackward(dtable, dout, ids engine.Tensor) {
	V, C := rows("EmbeddingBackward", "dtable", dtable)
	N := ids.Len()
	dt := f32("EmbeddingBackward", "dtable", dtable, V*C)
	d := f32("EmbeddingBackward", "dout", dout, N*C)
	id := i32("EmbeddingBackward", "ids", ids, N)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tEmbB = embBackTask{dt, d, id, C, V}
	b.pool.static(&b.tEmbB, C, N) // workers own column ranges: no races, fixed order
}

// ---- RMSNorm ----

type rmsTask struct {
	res, out, rstd, a, bb, w []float32
	C                        int
	eps                      float32
	add                      bool
}

func (t *rmsTask) run(_, lo, hi int) {
	C := t.C
	w := t.w[:C]
	for n := lo; n < hi; n++ {
		var x []float32
		if t.add {
			x = t.res[n*C : (n+1)*C]
			a, b := t.a[n*C:(n+1)*C], t.bb[n*C:(n+1)*C]
			for i := range x {
				x[i] = a[i] + b[i]
			}
		} else {
			x = t.a[n*C : (n+1)*C]
		}
		r := rstdOf(x, t.eps)
		t.rstd[n] = r
		o := t.out[n*C : (n+1)*C]
		for i, v := range x {
			o[i] = w[i] * (v * r)
		}
	}
}

// rstdOf is 1/sqrt(mean(x²)+eps) with the mean accumulated in float64 and rounded to float32
// as HF's float32 variance is.
func rstdOf(x []float32, eps float32) float32 {
	var s0, s1 float64
	i := 0
	for ; i+2 <= len(x); i += 2 {
		s0 += float64(x[i]) * float64(x[i])
		s1 += float64(x[i+1]) * float64(x[i+1])
	}
	if i < len(x) {
		s0 += float64(x[i]) * float64(x[i])
	}
	mean := float32((s0 + s1) / float64(len(x)))
	return float32(1 / math.Sqrt(float64(mean+eps)))
}

// RMSNorm: out (N,C) = in·rstd·w with rstd (N) = 1/sqrt(mean(in²)+eps), HF Qwen2RMSNorm. It
// panics on mismatched shapes.
func (b *Backend) RMSNorm(out, rstd, in, w engine.Tensor, eps float32) {
	N, C := rows("RMSNorm", "in", in)
	o := f32("RMSNorm", "out", out, N*C)
	r := f32("RMSNorm", "rstd", rstd, N)
	x := f32("RMSNorm", "in", in, N*C)
	wt := f32("RMSNorm", "w", w, C)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tRMS = rmsTask{out: o, rstd: r, a: x, w: wt, C: C, eps: eps}
	b.pool.static(&b.tRMS, N, C)
}

// AddRMSNorm: res = a + b, then out, rstd = RMSNorm(res). It panics on mismatched shapes.
func (b *Backend) AddRMSNorm(res, out, rstd, a, bb, w engine.Tensor, eps float32) {
	N, C := rows("AddRMSNorm", "a", a)
	rs := f32("AddRMSNorm", "res", res, N*C)
	o := f32("AddRMSNorm", "out", out, N*C)
	r := f32("AddRMSNorm", "rstd", rstd, N)
	x := f32("AddRMSNorm", "a", a, N*C)
	y := f32("AddRMSNorm", "b", bb, N*C)
	wt := f32("AddRMSNorm", "w", w, C)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tRMS = rmsTask{res: rs, out: o, rstd: r, a: x, bb: y, w: wt, C: C, eps: eps, add: true}
	b.pool.static(&b.tRMS, N, C)
}

type rmsBackTask struct {
	din, dout, in, w, rstd []float32
	C                      int
}

func (t *rmsBackTask) run(_, lo, hi int) {
	C := t.C
	w := t.w[:C]
	for n := lo; n < hi; n++ {
		x, dy, dx := t.in[n*C:(n+1)*C], t.dout[n*C:(n+1)*C], t.din[n*C:(n+1)*C]
		x, dy, dx = x[:C], dy[:C], dx[:C]
		r := t.rstd[n]
		var dot float64
		for i := range x {
			dot += float64(dy[i] * w[i] * x[i])
		}
		c := float32(dot) * r * r * r / float32(C)
		for i := range x {
			dx[i] += dy[i]*w[i]*r - x[i]*c
		}
	}
}

type rmsBackWTask struct {
	dw, dout, in, rstd []float32
	C, N               int
}

func (t *rmsBackWTask) run(_, lo, hi int) {
	C := t.C
	dw := t.dw[lo:hi]
	for n := 0; n < t.N; n++ {
		r := t.rstd[n]
		x, dy := t.in[n*C+lo:n*C+hi], t.dout[n*C+lo:n*C+hi]
		x = x[:len(dw)]
		dy = dy[:len(dw)]
		for i := range dw {
			dw[i] += dy[i] * x[i] * r
		}
	}
}

// RMSNormBackward: din (N,C) += ∂out/∂in·dout and dw (C) += ∂out/∂w·dout. It panics on
// mismatched shapes.
func (b *Backend) RMSNormBackward(din, dw, dout, in, w, rstd engine.Tensor) {
	N, C := rows("RMSNormBackward", "in", in)
	dx := f32("RMSNormBackward", "din", din, N*C)
	dwt := f32("RMSNormBackward", "dw", dw, C)
	dy := f32("RMSNormBackward", "dout", dout, N*C)
	x := f32("RMSNormBackward", "in", in, N*C)
	wt := f32("RMSNormBackward", "w", w, C)
	r := f32("RMSNormBackward", "rstd", rstd, N)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tRMSB = rmsBackTask{dx, dy, x, wt, r, C}
	b.pool.static(&b.tRMSB, N, C)
	b.tRMSBW = rmsBackWTask{dwt, dy, x, r, C, N}
	b.pool.static(&b.tRMSBW, C, N)
}

// ---- Matmul ----

type biasTask struct {
	out, bias []float32
	OC        int
}

func (t *biasTask) run(_, lo, hi int) {
	for n := lo; n < hi; n++ {
		copy(t.out[n*t.OC:(n+1)*t.OC], t.bias)
	}
}

type biasBackTask struct {
	dbias, dout []float32
	N, OC       int
}

func (t *biasBackTask) run(_, lo, hi int) {
	db := t.dbias[lo:hi]
	for n := 0; n < t.N; n++ {
		d := t.dout[n*t.OC+lo : n*t.OC+hi]
		d = d[:len(db)]
		for i := range db {
			db[i] += d[i]
		}
	}
}

// Matmul: out (N,OC) = in (N,C)·w (OC,C)ᵀ + bias (OC), bias optional. It panics on mismatched
// shapes.
func (b *Backend) Matmul(out, in, w, bias engine.Tensor) {
	N, C := rows("Matmul", "in", in)
	OC, _ := rows("Matmul", "w", w)
	o := f32("Matmul", "out", out, N*OC)
	x := f32("Matmul", "in", in, N*C)
	wt := f32("Matmul", "w", w, OC*C)
	if N == 0 || OC == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	beta := float32(0)
	if !bias.Nil() {
		bs := f32("Matmul", "bias", bias, OC)
		b.tBias = biasTask{o, bs, OC}
		b.pool.static(&b.tBias, N, OC)
		beta = 1
	}
	if C == 0 {
		if beta == 0 {
			clear(o)
		}
		return
	}
	b.gemm(false, true, N, OC, C, 1, x, C, wt, C, beta, o, OC)
}

// MatmulBackward: din (N,C) = dout·w (skipped when din is absent), dw (OC,C) += doutᵀ·in,
// dbias (OC) += Σ_n dout (skipped when absent). It panics on mismatched shapes.
func (b *Backend) MatmulBackward(din, dw, dbias, dout, in, w engine.Tensor) {
	N, C := rows("MatmulBackward", "in", in)
	OC, _ := rows("MatmulBackward", "w", w)
	dy := f32("MatmulBackward", "dout", dout, N*OC)
	x := f32("MatmulBackward", "in", in, N*C)
	wt := f32("MatmulBackward", "w", w, OC*C)
	dwt := f32("MatmulBackward", "dw", dw, OC*C)
	var dx, db []float32
	if !din.Nil() {
		dx = f32("MatmulBackward", "din", din, N*C)
	}
	if !dbias.Nil() {
		db = f32("MatmulBackward", "dbias", dbias, OC)
	}
	if N == 0 || C == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if OC == 0 {
		clear(dx)
		return
	}
	if dx != nil {
		b.gemm(false, false, N, C, OC, 1, dy, OC, wt, C, 0, dx, C)
	}
	b.gemm(true, false, OC, C, N, 1, dy, OC, x, C, 1, dwt, C)
	if db != nil {
		b.tBiasB = biasBackTask{db, dy, N, OC}
		b.pool.static(&b.tBiasB, OC, N)
	}
}

// ---- SwiGLU, Add ----

type swiGLUTask struct {
	out, gu []float32
	I       int
}

func (t *swiGLUTask) run(_, lo, hi int) {
	I := t.I
	for n := lo; n < hi; n++ {
		swiglu(t.out[n*I:(n+1)*I], t.gu[2*n*I:(2*n+1)*I], t.gu[(2*n+1)*I:(2*n+2)*I])
	}
}

// SwiGLU: out (N,I) = silu(gateUp[:, :I])·gateUp[:, I:] for gateUp (N,2I). It panics on
// mismatched shapes.
func (b *Backend) SwiGLU(out, gateUp engine.Tensor) {
	N, I := rows("SwiGLU", "out", out)
	o := f32("SwiGLU", "out", out, N*I)
	gu := f32("SwiGLU", "gateUp", gateUp, 2*N*I)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tSwi = swiGLUTask{o, gu, I}
	b.pool.static(&b.tSwi, N, I*8)
}

type swiGLUBackTask struct {
	dgu, dout, gu []float32
	I             int
}

func (t *swiGLUBackTask) run(_, lo, hi int) {
	I := t.I
	for n := lo; n < hi; n++ {
		g, u := t.gu[2*n*I:(2*n+1)*I], t.gu[(2*n+1)*I:(2*n+2)*I]
		dg, du := t.dgu[2*n*I:(2*n+1)*I], t.dgu[(2*n+1)*I:(2*n+2)*I]
		swigluBack(dg, du, t.dout[n*I:(n+1)*I], g, u)
	}
}

// SwiGLUBackward: dgateUp (N,2I) = gradient through SwiGLU (assigned). It panics on mismatched
// shapes.
func (b *Backend) SwiGLUBackward(dgateUp, dout, gateUp engine.Tensor) {
	N, I := rows("SwiGLUBackward", "dout", dout)
	dgu := f32("SwiGLUBackward", "dgateUp", dgateUp, 2*N*I)
	dy := f32("SwiGLUBackward", "dout", dout, N*I)
	gu := f32("SwiGLUBackward", "gateUp", gateUp, 2*N*I)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tSwiB = swiGLUBackTask{dgu, dy, gu, I}
	b.pool.static(&b.tSwiB, N, I*10)
}

type addTask struct{ out, a, b []float32 }

func (t *addTask) run(_, lo, hi int) {
	o, a, c := t.out[lo:hi], t.a[lo:hi], t.b[lo:hi]
	a, c = a[:len(o)], c[:len(o)]
	for i := range o {
		o[i] = a[i] + c[i]
	}
}

// Add: out = a + b elementwise, all F32 of one size. It panics otherwise.
func (b *Backend) Add(out, a, bb engine.Tensor) {
	n := out.Len()
	o := f32("Add", "out", out, n)
	x := f32("Add", "a", a, n)
	y := f32("Add", "b", bb, n)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tAdd = addTask{o, x, y}
	b.pool.static(&b.tAdd, n, 1)
}

// ---- RoPE ----

type ropeKey struct {
	theta float32
	D     int
}

// ropeTable holds cos and sin of pos·theta^(-2i/D) at [pos*D/2+i], computed in float64.
type ropeTable struct {
	cos, sin []float32
	n        int // positions covered
}

// table returns the table for (theta, D) covering positions [0, maxPos].
func (b *Backend) ropeTab(theta float32, D, maxPos int) *ropeTable {
	k := ropeKey{theta, D}
	t := b.rope[k]
	if t == nil {
		t = &ropeTable{}
		b.rope[k] = t
	}
	if maxPos < t.n {
		return t
	}
	n := max(maxPos+1, 2*t.n, 64)
	half := D / 2
	cos, sin := make([]float32, n*half), make([]float32, n*half)
	copy(cos, t.cos)
	copy(sin, t.sin)
	for p := t.n; p < n; p++ {
		for i := 0; i < half; i++ {
			inv := math.Pow(float64(theta), -float64(2*i)/float64(D))
			a := float64(p) * inv
			cos[p*half+i] = float32(math.Cos(a))
			sin[p*half+i] = float32(math.Sin(a))
		}
	}
	t.cos, t.sin, t.n = cos, sin, n
	return t
}

type ropeTask struct {
	x        []float32
	pos      []int32
	tab      *ropeTable
	W, D, NH int // row width, head dim, heads rotated (H+Hkv)
	sign     float32
}

func (t *ropeTask) run(_, lo, hi int) {
	half := t.D / 2
	for n := lo; n < hi; n++ {
		p := int(t.pos[n])
		if p < 0 {
			continue
		}
		c, s := t.tab.cos[p*half:(p+1)*half], t.tab.sin[p*half:(p+1)*half]
		row := t.x[n*t.W:]
		for h := 0; h < t.NH; h++ {
			x1 := row[h*t.D : h*t.D+half]
			x2 := row[h*t.D+half : (h+1)*t.D]
			x2, c, s := x2[:len(x1)], c[:len(x1)], s[:len(x1)]
			for i, a := range x1 {
				bb := x2[i]
				si := t.sign * s[i]
				x1[i] = a*c[i] - bb*si
				x2[i] = bb*c[i] + a*si
			}
		}
	}
}

func (b *Backend) ropeOp(op string, qkv, pos engine.Tensor, h engine.Heads, theta float32, sign float32) {
	N, W := rows(op, "qkv", qkv)
	if W != h.QKV() || h.D%2 != 0 || h.D <= 0 {
		badf("%s: qkv rows of %d for heads %+v (want (H+2Hkv)*D with D even)", op, W, h)
	}
	x := f32(op, "qkv", qkv, N*W)
	ps := i32(op, "pos", pos, N)
	b.mu.Lock()
	defer b.mu.Unlock()
	maxPos := 0
	for n, p := range ps {
		if p < 0 {
			b.fail(fmt.Errorf("cpu: %s: position %d at token %d: %w", op, p, n, ErrOutOfRange))
		}
		maxPos = max(maxPos, int(p))
	}
	tab := b.ropeTab(theta, h.D, maxPos)
	b.tRoPE = ropeTask{x, ps, tab, W, h.D, h.Q + h.KV, sign}
	b.pool.static(&b.tRoPE, N, W)
}

// RoPE rotates the q and k heads of qkv (N,(H+2Hkv)*D) in place by positions pos (N) I32, HF
// rotate-half with frequencies theta^(-2i/D). A negative position leaves its token unrotated and
// is reported by Sync. It panics on mismatched shapes.
func (b *Backend) RoPE(qkv, pos engine.Tensor, h engine.Heads, theta float32) {
	b.ropeOp("RoPE", qkv, pos, h, theta, 1)
}

// RoPEBackward applies the inverse rotation to the q and k heads of dqkv in place. It panics
// on mismatched shapes.
func (b *Backend) RoPEBackward(dqkv, pos engine.Tensor, h engine.Heads, theta float32) {
	b.ropeOp("RoPEBackward", dqkv, pos, h, theta, -1)
}
