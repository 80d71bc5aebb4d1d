package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"cir/engine"
)

// opCase is one op at a given shape, with its floating-point operation count.
type opCase struct {
	name  string
	flops float64
	f     func()
}

// modelOps builds a call of every op at the shapes of one layer of the 20M Qwen2 (hidden C,
// 8 heads / 2 KV heads of 64, intermediate I, vocab V) on a batch of B sequences of T tokens.
func modelOps(b *Backend, B, T, C, I, V int) []opCase {
	h := engine.Heads{Q: 8, KV: 2, D: 64}
	N, W, HD := B*T, h.QKV(), h.Q*h.D
	r := rand.New(rand.NewPCG(1, 1))
	t := func(shape ...int) engine.Tensor {
		n := 1
		for _, s := range shape {
			n *= s
		}
		x, _ := randF32(r, n, 1)
		return f32T(x, shape...)
	}
	ids := make([]int32, N)
	pos := make([]int32, N)
	slot := make([]int32, N)
	starts := make([]int32, B+1)
	for i := range ids {
		ids[i] = int32(r.IntN(V))
		pos[i] = int32(i % T)
		slot[i] = int32(i / T)
	}
	for i := range starts {
		starts[i] = int32(i * T)
	}
	seqs := engine.Seqs{Starts: starts, MaxLen: T}
	idT, posT, slotT := i32T(ids, N), i32T(pos, N), i32T(slot, N)
	x, y, out, w := t(N, C), t(N, C), t(N, C), t(C)
	rstd, lse := t(N), t(N, h.Q)
	qkv, dqkv, att, datt := t(N, W), t(N, W), t(N, HD), t(N, HD)
	wqkv, bqkv, dwqkv, dbqkv := t(W, C), t(W), t(W, C), t(W)
	gu, dgu, hh, dh := t(N, 2*I), t(N, 2*I), t(N, I), t(N, I)
	emb, demb := t(V, C), t(V, C)
	logits, dlogits := t(N, V), t(N, V)
	logp, lseV, ent, dlogp := t(N), t(N), t(N), t(N)
	kc, vc := t(B, T, h.KV, h.D), t(B, T, h.KV, h.D)
	params, grads, m, v := t(C*I), t(C*I), t(C*I), t(C*I)
	// Softmax-friendly logits for Sample over B rows.
	u := t(B)
	sids, slogp := i32T(make([]int32, B), B), t(B)
	sl := logits.Rows(0, B)
	b.Attention(att, lse, qkv, seqs, h)
	b.RMSNorm(out, rstd, x, w, 1e-6)
	b.CrossEntropy(logp, lseV, ent, logits, idT)
	attnFlops := float64(B*h.Q) * float64(T*T) * float64(h.D) * 2 // two causal GEMMs of T²D/2 each, 2 flops
	return []opCase{
		{"Embedding", 0, func() { b.Embedding(x, idT, emb) }},
		{"EmbeddingBackward", 0, func() { b.EmbeddingBackward(demb, x, idT) }},
		{"RMSNorm", 0, func() { b.RMSNorm(out, rstd, x, w, 1e-6) }},
		{"AddRMSNorm", 0, func() { b.AddRMSNorm(y, out, rstd, x, x, w, 1e-6) }},
		{"RMSNormBackward", 0, func() { b.RMSNormBackward(y, w, x, x, w, rstd) }},
		{"Matmul", 2 * float64(N*W*C), func() { b.Matmul(qkv, x, wqkv, bqkv) }},
		{"MatmulBackward", 4 * float64(N*W*C), func() { b.MatmulBackward(y, dwqkv, dbqkv, dqkv, x, wqkv) }},
		{"RoPE", 0, func() { b.RoPE(qkv, posT, h, 1e6) }},
		{"RoPEBackward", 0, func() { b.RoPEBackward(dqkv, posT, h, 1e6) }},
		{"Attention", attnFlops, func() { b.Attention(att, lse, qkv, seqs, h) }},
		{"AttentionBackward", 2.5 * attnFlops, func() { b.AttentionBackward(dqkv, datt, att, lse, qkv, seqs, h) }},
		{"KVStore", 0, func() { b.KVStore(kc, vc, qkv, slotT, posT, h) }},
		{"AttentionKV", attnFlops, func() { b.AttentionKV(att, qkv, kc, vc, slotT, posT, h) }},
		{"SwiGLU", 0, func() { b.SwiGLU(hh, gu) }},
		{"SwiGLUBackward", 0, func() { b.SwiGLUBackward(dgu, dh, gu) }},
		{"Add", 0, func() { b.Add(out, x, y) }},
		{"CrossEntropy", 0, func() { b.CrossEntropy(logp, lseV, ent, logits, idT) }},
		{"CrossEntropyBackward", 0, func() { b.CrossEntropyBackward(dlogits, dlogp, engine.Tensor{}, logits, lseV, engine.Tensor{}, idT) }},
		{"Sample", 0, func() {
			b.Sample(sids, slogp, sl, u, engine.SampleParams{Temperature: 1, TopP: 0.95})
		}},
		{"SampleGreedy", 0, func() { b.Sample(sids, slogp, sl, u, engine.SampleParams{}) }},
		{"AdamW", 0, func() {
			b.AdamW(params, engine.Tensor{}, grads, m, v, engine.AdamWParams{LR: 1e-3, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, GradScale: 1, Step: 3})
		}},
		{"SumSquares", 0, func() { b.SumSquares(grads) }},
		{"Scale", 0, func() { b.Scale(grads, 0.999) }},
		{"Copy", 0, func() { b.Copy(y, x) }},
		{"Zero", 0, func() { b.Zero(y) }},
	}
}

// TestNoAllocs checks that a steady-state call of every op allocates nothing.
func TestNoAllocs(t *testing.T) {
	for _, b := range newBackends(t) {
		for _, op := range modelOps(b, 2, 37, 48, 70, 301) {
			op.f() // first use sizes scratch buffers and tables
			if n := testing.AllocsPerRun(5, op.f); n != 0 {
				t.Errorf("threads %d: %s allocates %g times per call", b.threads, op.name, n)
			} else {
				t.Logf("threads %d: %s: 0 allocs/call", b.threads, op.name)
			}
		}
	}
}

// BenchmarkOps times every op at the shapes of the 20M Qwen2 training step (B=4, T=128,
// hidden 512, intermediate 1408, vocab 8192) on 1 and 2 threads.
func BenchmarkOps(b *testing.B) {
	for _, mode := range []struct {
		threads int
		blas    bool
	}{{1, false}, {2, false}, {2, true}} {
		be := New(mode.threads)
		be.blasThreads = mode.blas
		defer be.Close()
		for _, op := range modelOps(be, 4, 128, 512, 1408, 8192) {
			name := fmt.Sprintf("%s/threads=%d", op.name, mode.threads)
			if mode.blas {
				name += ",blasThreads"
			}
			b.Run(name, func(b *testing.B) {
				op.f()
				for b.Loop() {
					op.f()
				}
				if op.flops > 0 {
					b.ReportMetric(op.flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				}
			})
		}
	}
}

// BenchmarkMatmul times the GEMMs of the 20M model's layers forward and backward.
func BenchmarkMatmul(b *testing.B) {
	be := New(0)
	defer be.Close()
	r := rand.New(rand.NewPCG(2, 2))
	for _, s := range []struct{ N, C, OC int }{{512, 512, 1408}, {512, 512, 768}, {512, 1408, 512}, {512, 512, 8192}} {
		x, _ := randF32(r, s.N*s.C, 1)
		w, _ := randF32(r, s.OC*s.C, 1)
		out, _ := randF32(r, s.N*s.OC, 1)
		dw, dx := make([]float32, s.OC*s.C), make([]float32, s.N*s.C)
		flops := 2 * float64(s.N*s.C*s.OC)
		b.Run(fmt.Sprintf("N=%d,C=%d,OC=%d", s.N, s.C, s.OC), func(b *testing.B) {
			for b.Loop() {
				be.Matmul(f32T(out, s.N, s.OC), f32T(x, s.N, s.C), f32T(w, s.OC, s.C), engine.Tensor{})
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run(fmt.Sprintf("backward/N=%d,C=%d,OC=%d", s.N, s.C, s.OC), func(b *testing.B) {
			for b.Loop() {
				be.MatmulBackward(f32T(dx, s.N, s.C), f32T(dw, s.OC, s.C), engine.Tensor{}, f32T(out, s.N, s.OC), f32T(x, s.N, s.C), f32T(w, s.OC, s.C))
			}
			b.ReportMetric(2*flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkAttention times attention forward and backward at B sequences of T tokens.
func BenchmarkAttention(b *testing.B) {
	be := New(0)
	defer be.Close()
	h := engine.Heads{Q: 8, KV: 2, D: 64}
	r := rand.New(rand.NewPCG(3, 3))
	for _, s := range []struct{ B, T int }{{4, 128}, {2, 1000}} {
		N, W, HD := s.B*s.T, h.QKV(), h.Q*h.D
		starts := make([]int32, s.B+1)
		for i := range starts {
			starts[i] = int32(i * s.T)
		}
		seqs := engine.Seqs{Starts: starts, MaxLen: s.T}
		qkv, _ := randF32(r, N*W, 1)
		dout, _ := randF32(r, N*HD, 1)
		out, lse, dqkv := make([]float32, N*HD), make([]float32, N*h.Q), make([]float32, N*W)
		flops := float64(s.B*h.Q) * float64(s.T*s.T) * float64(h.D) * 2
		b.Run(fmt.Sprintf("B=%d,T=%d", s.B, s.T), func(b *testing.B) {
			for b.Loop() {
				be.Attention(f32T(out, N, HD), f32T(lse, N, h.Q), f32T(qkv, N, W), seqs, h)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run(fmt.Sprintf("backward/B=%d,T=%d", s.B, s.T), func(b *testing.B) {
			for b.Loop() {
				be.AttentionBackward(f32T(dqkv, N, W), f32T(dout, N, HD), f32T(out, N, HD), f32T(lse, N, h.Q), f32T(qkv, N, W), seqs, h)
			}
			b.ReportMetric(2.5*flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
