package cpu

import (
	"fmt"
	"math"

	"cir/engine"
)

// qBlock is the number of query rows attention handles per GEMM: scratch is qBlock rows of
// scores per worker, never a full T×T matrix.
const qBlock = 64

// scratch returns worker w's buffer i of at least n floats, growing it on demand.
func (b *Backend) scratch(w, i, n int) []float32 {
	for len(b.bufs) <= w {
		b.bufs = append(b.bufs, nil)
	}
	for len(b.bufs[w]) <= i {
		b.bufs[w] = append(b.bufs[w], nil)
	}
	if len(b.bufs[w][i]) < n {
		b.bufs[w][i] = make([]float32, n)
	}
	return b.bufs[w][i][:n]
}

// growScratch makes sure every worker has buffers 0..k-1 of n floats before a parallel region.
func (b *Backend) growScratch(k, n int) {
	for w := 0; w < b.threads; w++ {
		for i := 0; i < k; i++ {
			b.scratch(w, i, n)
		}
	}
}

// attnGeom checks qkv against seqs and h and returns N, the row width W and the longest sequence.
func attnGeom(op string, qkv engine.Tensor, seqs engine.Seqs, h engine.Heads) (N, W, maxL int) {
	N, W = rows(op, "qkv", qkv)
	if h.Q <= 0 || h.KV <= 0 || h.D <= 0 || h.Q%h.KV != 0 || W != h.QKV() {
		badf("%s: qkv rows of %d for heads %+v (want (H+2Hkv)*D, H a multiple of Hkv)", op, W, h)
	}
	st := seqs.Starts
	if len(st) == 0 || st[0] != 0 || int(st[len(st)-1]) != N {
		badf("%s: seqs.Starts %v do not cover the %d tokens of qkv", op, st, N)
	}
	for i := 1; i < len(st); i++ {
		if st[i] < st[i-1] {
			badf("%s: seqs.Starts %v decrease", op, st)
		}
		maxL = max(maxL, int(st[i]-st[i-1]))
	}
	return N, W, maxL
}

type attnTask struct {
	b        *Backend
	out, lse []float32
	qkv      []float32
	starts   []int32
	h        engine.Heads
	W        int
	scale    float32
}

func (t *attnTask) run(w, lo, hi int) {
	H, D, W := t.h.Q, t.h.D, t.W
	HD := H * D
	rep := H / t.h.KV
	S := t.b.bufs[w][0]
	for it := lo; it < hi; it++ {
		sq, h := it/H, it%H
		s, e := int(t.starts[sq]), int(t.starts[sq+1])
		L := e - s
		if L == 0 {
			continue
		}
		g := h / rep
		base := t.qkv[s*W:]
		q, k, v := base[h*D:], base[(H+g)*D:], base[(H+t.h.KV+g)*D:]
		for i0 := 0; i0 < L; i0 += qBlock {
			i1 := min(L, i0+qBlock)
			m, kn := i1-i0, i1
			sgemm(false, true, m, kn, D, t.scale, &q[i0*W], W, &k[0], W, 0, &S[0], kn)
			for r := 0; r < m; r++ {
				i := i0 + r
				row := S[r*kn : (r+1)*kn]
				lse := softmaxRow(row[:i+1])
				clear(row[i+1:])
				t.lse[(s+i)*H+h] = lse
			}
			sgemm(false, false, m, D, kn, 1, &S[0], kn, &v[0], W, 0, &t.out[(s+i0)*HD+h*D], HD)
		}
	}
}

// softmaxRow replaces x by softmax(x) and returns its log-sum-exp.
func softmaxRow(x []float32) float32 {
	mx := maxOf(x)
	sum := expTo(x, x, mx, 1, 1)
	inv := float32(1 / sum)
	for i := range x {
		x[i] *= inv
	}
	return mx + float32(math.Log(sum))
}

// Attention: out (N,H*D) = causal grouped-KV softmax attention within each sequence of seqs
// with scale 1/sqrt(D); lse (N,H) saves each query row's log-sum-exp. It panics on mismatched
// shapes or Starts that do not cover qkv.
func (b *Backend) Attention(out, lse, qkv engine.Tensor, seqs engine.Seqs, h engine.Heads) {
	N, W, maxL := attnGeom("Attention", qkv, seqs, h)
	o := f32("Attention", "out", out, N*h.Q*h.D)
	l := f32("Attention", "lse", lse, N*h.Q)
	x := f32("Attention", "qkv", qkv, N*W)
	if N == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.growScratch(1, qBlock*maxL)
	b.tAttn = attnTask{b, o, l, x, seqs.Starts, h, W, float32(1 / math.Sqrt(float64(h.D)))}
	setBLASThreads(1)
	b.pool.dynamic(&b.tAttn, (len(seqs.Starts)-1)*h.Q)
}

type attnBackTask struct {
	b                    *Backend
	dqkv, dout, out, lse []float32
	qkv                  []float32
	starts               []int32
	h                    engine.Heads
	W                    int
	scale                float32
}

func (t *attnBackTask) run(w, lo, hi int) {
	H, Hkv, D, W := t.h.Q, t.h.KV, t.h.D, t.W
	HD := H * D
	rep := H / Hkv
	P, dP := t.b.bufs[w][0], t.b.bufs[w][1]
	for it := lo; it < hi; it++ {
		sq, g := it/Hkv, it%Hkv
		s, e := int(t.starts[sq]), int(t.starts[sq+1])
		L := e - s
		if L == 0 {
			continue
		}
		base, dbase := t.qkv[s*W:], t.dqkv[s*W:]
		k, v := base[(H+g)*D:], base[(H+Hkv+g)*D:]
		dk, dv := dbase[(H+g)*D:], dbase[(H+Hkv+g)*D:]
		for i := 0; i < L; i++ {
			clear(dk[i*W : i*W+D])
			clear(dv[i*W : i*W+D])
		}
		for h := g * rep; h < (g+1)*rep; h++ {
			q, dq := base[h*D:], dbase[h*D:]
			dO, O := t.dout[s*HD+h*D:], t.out[s*HD+h*D:]
			for i0 := 0; i0 < L; i0 += qBlock {
				i1 := min(L, i0+qBlock)
				m, kn := i1-i0, i1
				sgemm(false, true, m, kn, D, t.scale, &q[i0*W], W, &k[0], W, 0, &P[0], kn)
				sgemm(false, true, m, kn, D, 1, &dO[i0*HD], HD, &v[0], W, 0, &dP[0], kn)
				for r := 0; r < m; r++ {
					i := i0 + r
					lse := t.lse[(s+i)*H+h]
					di := dot(dO[i*HD:i*HD+D], O[i*HD:i*HD+D])
					p, dp := P[r*kn:(r+1)*kn], dP[r*kn:(r+1)*kn]
					expTo(p[:i+1], p[:i+1], lse, 1, 1)
					for j := 0; j <= i; j++ {
						dp[j] = p[j] * (dp[j] - di)
					}
					clear(p[i+1:])
					clear(dp[i+1:])
				}
				sgemm(false, false, m, D, kn, t.scale, &dP[0], kn, &k[0], W, 0, &dq[i0*W], W)
				sgemm(true, false, kn, D, m, t.scale, &dP[0], kn, &q[i0*W], W, 1, &dk[0], W)
				sgemm(true, false, kn, D, m, 1, &P[0], kn, &dO[i0*HD], HD, 1, &dv[0], W)
			}
		}
	}
}

// dot is Σ a[i]·b[i] with four float32 accumulators.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// AttentionBackward: dqkv (N,(H+2Hkv)*D) = gradient through Attention (assigned), recomputing
// the probabilities from qkv and lse. It panics on mismatched shapes.
func (b *Backend) AttentionBackward(dqkv, dout, out, lse, qkv engine.Tensor, seqs engine.Seqs, h engine.Heads) {
	N, W, maxL := attnGeom("AttentionBackward", qkv, seqs, h)
	HD := h.Q * h.D
	dx := f32("AttentionBackward", "dqkv", dqkv, N*W)
	dy := f32("AttentionBackward", "dout", dout, N*HD)
	o := f32("AttentionBackward", "out", out, N*HD)
	l := f32("AttentionBackward", "lse", lse, N*h.Q)
	x := f32("AttentionBackward", "qkv", qkv, N*W)
	if N == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.growScratch(2, qBlock*maxL)
	b.tAttnB = attnBackTask{b, dx, dy, o, l, x, seqs.Starts, h, W, float32(1 / math.Sqrt(float64(h.D)))}
	setBLASThreads(1)
	b.pool.dynamic(&b.tAttnB, (len(seqs.Starts)-1)*h.KV)
}

// ---- KV cache ----

func kvGeom(op string, kc, vc engine.Tensor, h engine.Heads) (S, T int) {
	if len(kc.Shape) != 4 || kc.Shape[2] != h.KV || kc.Shape[3] != h.D || !engine.SameShape(kc, vc) {
		badf("%s: caches %v and %v, want (S,T,%d,%d)", op, kc.Shape, vc.Shape, h.KV, h.D)
	}
	return kc.Shape[0], kc.Shape[1]
}

type kvStoreTask struct {
	b           *Backend
	kc, vc, qkv []float32
	slot, pos   []int32
	h           engine.Heads
	W, S, T     int
}

func (t *kvStoreTask) run(_, lo, hi int) {
	H, KD := t.h.Q, t.h.KV*t.h.D
	for n := lo; n < hi; n++ {
		sl, p := int(t.slot[n]), int(t.pos[n])
		if sl < 0 || sl >= t.S || p < 0 || p >= t.T {
			t.b.fail(fmt.Errorf("cpu: KVStore: token %d at slot %d position %d outside the (%d,%d) cache: %w", n, sl, p, t.S, t.T, ErrOutOfRange))
			continue
		}
		row := t.qkv[n*t.W:]
		off := (sl*t.T + p) * KD
		copy(t.kc[off:off+KD], row[H*t.h.D:H*t.h.D+KD])
		copy(t.vc[off:off+KD], row[H*t.h.D+KD:H*t.h.D+2*KD])
	}
}

// KVStore writes the k and v heads of each token of qkv into kc, vc (S,T,Hkv,D) at
// [slot[n], pos[n]]. A slot or position outside the cache skips the token and is reported by
// Sync. It panics on mismatched shapes.
func (b *Backend) KVStore(kc, vc, qkv, slot, pos engine.Tensor, h engine.Heads) {
	S, T := kvGeom("KVStore", kc, vc, h)
	N, W := rows("KVStore", "qkv", qkv)
	if W != h.QKV() {
		badf("KVStore: qkv rows of %d for heads %+v", W, h)
	}
	k := f32("KVStore", "kc", kc, -1)
	v := f32("KVStore", "vc", vc, -1)
	x := f32("KVStore", "qkv", qkv, N*W)
	sl := i32("KVStore", "slot", slot, N)
	ps := i32("KVStore", "pos", pos, N)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tKVS = kvStoreTask{b, k, v, x, sl, ps, h, W, S, T}
	b.pool.static(&b.tKVS, N, 2*h.KV*h.D)
}

type attnKVTask struct {
	b                *Backend
	out, qkv, kc, vc []float32
	slot, pos        []int32
	h                engine.Heads
	W, S, T          int
	scale            float32
}

func (t *attnKVTask) run(w, lo, hi int) {
	H, Hkv, D := t.h.Q, t.h.KV, t.h.D
	rep := H / Hkv
	S := t.b.bufs[w][0]
	KD := Hkv * D
	for it := lo; it < hi; it++ {
		// One item is the rep query heads of kv head g of token n: contiguous in qkv and out.
		n, g := it/Hkv, it%Hkv
		o := t.out[n*H*D+g*rep*D : n*H*D+(g+1)*rep*D]
		sl, p := int(t.slot[n]), int(t.pos[n])
		if sl < 0 || sl >= t.S || p < 0 || p >= t.T {
			clear(o)
			if g == 0 {
				t.b.fail(fmt.Errorf("cpu: AttentionKV: token %d at slot %d position %d outside the (%d,%d) cache: %w", n, sl, p, t.S, t.T, ErrOutOfRange))
			}
			continue
		}
		kn := p + 1
		q := t.qkv[n*t.W+g*rep*D:]
		k := t.kc[sl*t.T*KD+g*D:]
		v := t.vc[sl*t.T*KD+g*D:]
		sgemm(false, true, rep, kn, D, t.scale, &q[0], D, &k[0], KD, 0, &S[0], kn)
		for r := 0; r < rep; r++ {
			softmaxRow(S[r*kn : (r+1)*kn])
		}
		sgemm(false, false, rep, D, kn, 1, &S[0], kn, &v[0], KD, 0, &o[0], D)
	}
}

// AttentionKV: out (N,H*D) where query n (the q heads of qkv) attends the cache rows
// [slot[n], 0..pos[n]] of kc, vc (S,T,Hkv,D). A slot or position outside the cache gives a zero
// row and an error from Sync. It panics on mismatched shapes.
func (b *Backend) AttentionKV(out, qkv, kc, vc, slot, pos engine.Tensor, h engine.Heads) {
	S, T := kvGeom("AttentionKV", kc, vc, h)
	N, W := rows("AttentionKV", "qkv", qkv)
	if W != h.QKV() || h.Q%h.KV != 0 {
		badf("AttentionKV: qkv rows of %d for heads %+v", W, h)
	}
	o := f32("AttentionKV", "out", out, N*h.Q*h.D)
	k := f32("AttentionKV", "kc", kc, -1)
	v := f32("AttentionKV", "vc", vc, -1)
	x := f32("AttentionKV", "qkv", qkv, N*W)
	sl := i32("AttentionKV", "slot", slot, N)
	ps := i32("AttentionKV", "pos", pos, N)
	if N == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.growScratch(1, T*h.Q/h.KV)
	b.tAttnKV = attnKVTask{b, o, x, k, v, sl, ps, h, W, S, T, float32(1 / math.Sqrt(float64(h.D)))}
	setBLASThreads(1)
	b.pool.dynamic(&b.tAttnKV, N*h.KV)
}
