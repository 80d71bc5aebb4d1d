//go:build cuda

package cuda

import (
	"math"
	"sort"
	"testing"

	"cir/engine"
)

// TestSampleGreedy: temperature 0 picks the CPU's id (argmax, ties to the lowest id) and the
// same log-probability.
func TestSampleGreedy(t *testing.T) {
	for _, sh := range [][2]int{{1, 7}, {6, 1000}, {3, 151936}} {
		B, V := sh[0], sh[1]
		t.Run(shapeName("B", B, "V", V), func(t *testing.T) {
			e := newEnv(t, uint64(B*V))
			x := e.randn(B*V, 2)
			x[V-1] = 50 // a unique max at the last column of row 0
			if B > 1 {
				x[V+3], x[V+5] = 60, 60 // a tie in row 1: the lower id wins
			}
			ids, lp := e.alloc(engine.I32, B), e.alloc(engine.F32, B)
			cids, clp := make([]int32, B), make([]float32, B)
			u := make([]float32, B)
			p := engine.SampleParams{Temperature: 0, TopP: 1}
			e.g.Sample(ids, lp, e.dev(engine.BF16, x, B, V), e.dev(engine.F32, u, B), p)
			e.c.Sample(engine.HostI32(cids, B), engine.HostF32(clp, B), host(x, B, V), host(u, B), p)
			got := e.getI(ids)
			for i := range got {
				if got[i] != cids[i] {
					t.Errorf("row %d: id %d, CPU %d", i, got[i], cids[i])
				}
			}
			compare(t, "greedy logp", e.get(lp), clp, tolF32)
		})
	}
}

// keptDist is the float64 reference of the sampling rule: softmax(x/T) cut to the top k, then
// to the smallest prefix (probability descending, ties by id) of mass ≥ topP, renormalised.
func keptDist(x []float32, p engine.SampleParams) []float64 {
	V := len(x)
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, float64(v))
	}
	e := make([]float64, V)
	idx := make([]int, V)
	for j, v := range x {
		e[j] = math.Exp((float64(v) - mx) / float64(p.Temperature))
		idx[j] = j
	}
	sort.SliceStable(idx, func(a, b int) bool { return x[idx[a]] > x[idx[b]] })
	keep := V
	if p.TopK > 0 && p.TopK < V {
		keep = p.TopK
	}
	var mass float64
	for _, j := range idx[:keep] {
		mass += e[j]
	}
	if p.TopP < 1 {
		var cum float64
		for i, j := range idx[:keep] {
			cum += e[j]
			if cum >= float64(p.TopP)*mass {
				keep = i + 1
				break
			}
		}
	}
	out := make([]float64, V)
	var tot float64
	for _, j := range idx[:keep] {
		tot += e[j]
	}
	for _, j := range idx[:keep] {
		out[j] = e[j] / tot
	}
	return out
}

// TestSampleDistribution draws M times from one row with u on a regular grid: the inverse-CDF
// draw gives id j exactly round(M·p_j) ± 1 times when p is the kept distribution, and never an
// id outside the kept set. logp is checked against the float64 log-softmax.
func TestSampleDistribution(t *testing.T) {
	const V, M = 300, 4096
	for _, p := range []engine.SampleParams{
		{Temperature: 1, TopP: 1},
		{Temperature: 0.7, TopP: 1, TopK: 20},
		{Temperature: 1.3, TopP: 0.9},
		{Temperature: 1, TopP: 0.8, TopK: 50},
		{Temperature: 1, TopP: 0.5, TopK: 1000},
	} {
		t.Run(shapeName("T", p.Temperature, "topP", p.TopP, "topK", p.TopK), func(t *testing.T) {
			e := newEnv(t, uint64(p.TopK)+uint64(p.TopP*100))
			row := e.randn(V, 2)
			x := make([]float32, 0, M*V)
			u := make([]float32, M)
			for i := 0; i < M; i++ {
				x = append(x, row...)
				u[i] = (float32(i) + 0.5) / M
			}
			ids, lp := e.alloc(engine.I32, M), e.alloc(engine.F32, M)
			e.g.Sample(ids, lp, e.dev(engine.BF16, x, M, V), e.dev(engine.F32, u, M), p)
			got, glp := e.getI(ids), e.get(lp)
			want := keptDist(row, p)
			count := make([]int, V)
			for _, id := range got {
				count[id]++
			}
			for j := range want {
				if want[j] == 0 && count[j] > 0 {
					t.Errorf("id %d drawn %d times, outside the kept set", j, count[j])
				}
				if d := math.Abs(float64(count[j]) - M*want[j]); d > 2 {
					t.Errorf("id %d drawn %d times, want %.1f (p=%.4g)", j, count[j], M*want[j], want[j])
				}
			}
			var mx, s float64 = math.Inf(-1), 0
			for _, v := range row {
				mx = math.Max(mx, float64(v))
			}
			for _, v := range row {
				s += math.Exp(float64(v) - mx)
			}
			for i, id := range got {
				ref := float64(row[id]) - mx - math.Log(s)
				if math.Abs(float64(glp[i])-ref) > 1e-3 {
					t.Fatalf("draw %d: logp %v, want %v", i, glp[i], ref)
				}
			}
		})
	}
}

// TestDeterminism: the backward ops promised reproducible (no atomics) give bit-identical
// results when run twice.
func TestDeterminism(t *testing.T) {
	e := newEnv(t, 99)
	h := engine.Heads{Q: 4, KV: 2, D: 64}
	seqs := packed([]int{100, 37, 260})
	N, W, HD := seqs.Tokens(), h.QKV(), h.Q*h.D
	gx := e.dev(engine.BF16, e.randn(N*W, 1), N, W)
	out, lse := e.alloc(engine.BF16, N, HD), e.alloc(engine.F32, N, h.Q)
	e.g.Attention(out, lse, gx, seqs, h)
	dy := e.dev(engine.BF16, e.randn(N*HD, 1), N, HD)
	// RMSNormBackward needs rstd (N) of its own: build one.
	rstd := e.dev(engine.F32, e.randn(N, 0.1), N)
	w := e.dev(engine.BF16, e.randn(HD, 1), HD)
	ids := make([]int32, N)
	for i := range ids {
		ids[i] = int32(i % 7)
	}
	gid := e.devI(ids, N)
	once := func() [][]float32 {
		dx := e.alloc(engine.BF16, N, W)
		e.g.AttentionBackward(dx, dy, out, lse, gx, seqs, h)
		din, dw := e.alloc(engine.BF16, N, HD), e.alloc(engine.F32, HD)
		e.g.RMSNormBackward(din, dw, dy, out, w, rstd)
		dt := e.alloc(engine.F32, 7, HD)
		e.g.EmbeddingBackward(dt, dy, gid)
		dW := e.alloc(engine.F32, W, HD)
		e.g.MatmulBackward(engine.Tensor{}, dW, engine.Tensor{}, gx, dy, e.alloc(engine.BF16, W, HD))
		ss := e.g.SumSquares(dx)
		return [][]float32{e.get(dx), e.get(din), e.get(dw), e.get(dt), e.get(dW), {float32(ss), float32(ss - float64(float32(ss)))}}
	}
	a, b := once(), once()
	for i, name := range []string{"AttentionBackward", "RMSNormBackward din", "RMSNormBackward dw", "EmbeddingBackward", "MatmulBackward dw", "SumSquares"} {
		if !bitsEqual(a[i], b[i]) {
			t.Errorf("%s differs between two runs", name)
		}
	}
}
