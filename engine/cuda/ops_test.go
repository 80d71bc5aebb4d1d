//go:build cuda

package cuda

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"

	"cir/engine"
)

// TestNoDevice runs where there is no GPU: New must return an error wrapping ErrNoDevice, not
// crash or exit.
func TestNoDevice(t *testing.T) {
	withoutDevices(t)
	b, err := New(0)
	if err == nil {
		b.Close()
		t.Fatal("New(0) succeeded without a device")
	}
	if !errors.Is(err, ErrNoDevice) {
		t.Fatalf("New(0): %v, want an error wrapping ErrNoDevice", err)
	}
	if _, err := New(-1); err == nil {
		t.Fatal("New(-1) succeeded")
	}
}

func TestElementwise(t *testing.T) {
	for _, sh := range [][2]int{{1, 2}, {7, 26}, {129, 514}} {
		N, I := sh[0], sh[1]/2
		t.Run(shapeName("N", N, "I", I), func(t *testing.T) {
			e := newEnv(t, uint64(N*1000+I))
			a, b := e.randn(N*2*I, 1), e.randn(N*2*I, 1)
			ga, gb := e.dev(engine.BF16, a, N, 2*I), e.dev(engine.BF16, b, N, 2*I)
			ca, cb := host(a, N, 2*I), host(b, N, 2*I)

			out, cout := e.alloc(engine.BF16, N, 2*I), host(make([]float32, N*2*I), N, 2*I)
			e.g.Add(out, ga, gb)
			e.c.Add(cout, ca, cb)
			compare(t, "Add", e.get(out), cout.F32(), tolBF16)

			e.g.Scale(out, -0.37)
			e.c.Scale(cout, -0.37)
			compare(t, "Scale", e.get(out), cout.F32(), tolBF16)

			f := e.alloc(engine.F32, N, 2*I)
			e.g.Copy(f, ga)
			compare(t, "Copy BF16→F32", e.get(f), a, tol{0, 0})

			h, ch := e.alloc(engine.BF16, N, I), host(make([]float32, N*I), N, I)
			e.g.SwiGLU(h, ga)
			e.c.SwiGLU(ch, ca)
			compare(t, "SwiGLU", e.get(h), ch.F32(), tolBF16)

			dy := e.randn(N*I, 1)
			dg, cdg := e.alloc(engine.BF16, N, 2*I), host(make([]float32, N*2*I), N, 2*I)
			e.g.SwiGLUBackward(dg, e.dev(engine.BF16, dy, N, I), ga)
			e.c.SwiGLUBackward(cdg, host(dy, N, I), ca)
			compare(t, "SwiGLUBackward", e.get(dg), cdg.F32(), tolBF16)

			var want float64
			for _, v := range a {
				want += float64(v) * float64(v)
			}
			if got := e.g.SumSquares(ga); math.Abs(got-want) > 1e-12*want {
				t.Errorf("SumSquares = %.17g, want %.17g (rel err %.3g)", got, want, math.Abs(got-want)/want)
			}
			if err := e.c.Sync(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestEmbedding(t *testing.T) {
	for _, sh := range [][3]int{{5, 3, 8}, {300, 77, 130}} {
		N, V, C := sh[0], sh[1], sh[2]
		t.Run(shapeName("N", N, "V", V, "C", C), func(t *testing.T) {
			e := newEnv(t, uint64(N+V+C))
			table := e.randn(V*C, 1)
			ids := make([]int32, N)
			for i := range ids {
				ids[i] = int32(e.rng.IntN(V))
			}
			ids[N-1] = ids[0] // a repeated id accumulates
			out, cout := e.alloc(engine.BF16, N, C), host(make([]float32, N*C), N, C)
			gid := e.devI(ids, N)
			e.g.Embedding(out, gid, e.dev(engine.BF16, table, V, C))
			e.c.Embedding(cout, engine.HostI32(ids, N), host(table, V, C))
			compare(t, "Embedding", e.get(out), cout.F32(), tol{0, 0})

			dy := e.randn(N*C, 1)
			d0 := e.randn(V*C, 0.1)
			dt := e.dev(engine.F32, d0, V, C)
			cdt := host(d0, V, C)
			e.g.EmbeddingBackward(dt, e.dev(engine.BF16, dy, N, C), gid)
			e.c.EmbeddingBackward(cdt, host(dy, N, C), engine.HostI32(ids, N))
			compare(t, "EmbeddingBackward", e.get(dt), cdt.F32(), tolF32)
		})
	}
}

func TestRMSNorm(t *testing.T) {
	for _, sh := range [][2]int{{1, 8}, {33, 100}, {70, 1030}} {
		N, C := sh[0], sh[1]
		t.Run(shapeName("N", N, "C", C), func(t *testing.T) {
			e := newEnv(t, uint64(N*C))
			a, b, w := e.randn(N*C, 1), e.randn(N*C, 1), e.randn(C, 1)
			eps := float32(1e-6)
			ga, gb, gw := e.dev(engine.BF16, a, N, C), e.dev(engine.BF16, b, N, C), e.dev(engine.BF16, w, C)
			out, rstd := e.alloc(engine.BF16, N, C), e.alloc(engine.F32, N)
			cout, crstd := host(make([]float32, N*C), N, C), host(make([]float32, N), N)
			e.g.RMSNorm(out, rstd, ga, gw, eps)
			e.c.RMSNorm(cout, crstd, host(a, N, C), host(w, C), eps)
			compare(t, "RMSNorm out", e.get(out), cout.F32(), tolBF16)
			compare(t, "RMSNorm rstd", e.get(rstd), crstd.F32(), tolF32)

			// The fused add: the GPU stores res in bf16 and normalises the stored value, so the
			// reference is given the rounded sum.
			res := e.alloc(engine.BF16, N, C)
			e.g.AddRMSNorm(res, out, rstd, ga, gb, gw, eps)
			r := make([]float32, N*C)
			for i := range r {
				r[i] = roundBF16(a[i] + b[i])
			}
			e.c.RMSNorm(cout, crstd, host(r, N, C), host(w, C), eps)
			compare(t, "AddRMSNorm res", e.get(res), r, tol{0, 0})
			compare(t, "AddRMSNorm out", e.get(out), cout.F32(), tolBF16)
			compare(t, "AddRMSNorm rstd", e.get(rstd), crstd.F32(), tolF32)

			dy, din0, dw0 := e.randn(N*C, 1), e.randn(N*C, 1), e.randn(C, 1)
			din, dw := e.dev(engine.BF16, din0, N, C), e.dev(engine.F32, dw0, C)
			cdin, cdw := host(din0, N, C), host(dw0, C)
			e.g.RMSNormBackward(din, dw, e.dev(engine.BF16, dy, N, C), res, gw, rstd)
			e.c.RMSNormBackward(cdin, cdw, host(dy, N, C), host(r, N, C), host(w, C), crstd)
			compare(t, "RMSNormBackward din", e.get(din), cdin.F32(), tolBF16)
			compare(t, "RMSNormBackward dw", e.get(dw), cdw.F32(), tolF32)
		})
	}
}

func TestMatmul(t *testing.T) {
	for _, sh := range [][3]int{{1, 8, 8}, {17, 33, 65}, {300, 130, 257}} {
		N, C, OC := sh[0], sh[1], sh[2]
		for _, odt := range []engine.DType{engine.BF16, engine.F32} {
			t.Run(shapeName("N", N, "C", C, "OC", OC, "out", odt), func(t *testing.T) {
				e := newEnv(t, uint64(N*C*OC))
				x, w, bias := e.randn(N*C, 1), e.randn(OC*C, 0.1), e.randn(OC, 1)
				gx, gw := e.dev(engine.BF16, x, N, C), e.dev(engine.BF16, w, OC, C)
				cx, cw := host(x, N, C), host(w, OC, C)
				for _, withBias := range []bool{false, true} {
					out, cout := e.alloc(odt, N, OC), host(make([]float32, N*OC), N, OC)
					var gb, cb engine.Tensor
					if withBias {
						gb, cb = e.dev(odt, bias, OC), host(bias, OC)
					}
					e.g.Matmul(out, gx, gw, gb)
					e.c.Matmul(cout, cx, cw, cb)
					tl := tolBF16
					if odt == engine.F32 {
						tl = tolF32
					}
					compare(t, "Matmul", e.get(out), cout.F32(), tl)
				}
				// A bias of another dtype than out goes through the separate bias kernel.
				out, cout := e.alloc(odt, N, OC), host(make([]float32, N*OC), N, OC)
				other := engine.F32
				if odt == engine.F32 {
					other = engine.BF16
				}
				e.g.Matmul(out, gx, gw, e.dev(other, bias, OC))
				e.c.Matmul(cout, cx, cw, host(bias, OC))
				compare(t, "Matmul bias of another dtype", e.get(out), cout.F32(), tolBF16)

				dy := e.randn(N*OC, 1)
				dw0, db0 := e.randn(OC*C, 1), e.randn(OC, 1)
				din, dw, db := e.alloc(engine.BF16, N, C), e.dev(engine.F32, dw0, OC, C), e.dev(engine.F32, db0, OC)
				cdin, cdw, cdb := host(make([]float32, N*C), N, C), host(dw0, OC, C), host(db0, OC)
				e.g.MatmulBackward(din, dw, db, e.dev(engine.BF16, dy, N, OC), gx, gw)
				e.c.MatmulBackward(cdin, cdw, cdb, host(dy, N, OC), cx, cw)
				compare(t, "MatmulBackward din", e.get(din), cdin.F32(), tolBF16)
				compare(t, "MatmulBackward dw", e.get(dw), cdw.F32(), tolF32)
				compare(t, "MatmulBackward dbias", e.get(db), cdb.F32(), tolF32)
			})
		}
	}
}

func TestRoPE(t *testing.T) {
	for _, h := range []engine.Heads{{Q: 2, KV: 1, D: 8}, {Q: 6, KV: 2, D: 64}, {Q: 3, KV: 3, D: 128}} {
		N := 37
		t.Run(shapeName("H", h.Q, "Hkv", h.KV, "D", h.D), func(t *testing.T) {
			e := newEnv(t, uint64(h.QKV()))
			W := h.QKV()
			x := e.randn(N*W, 1)
			pos := make([]int32, N)
			for i := range pos {
				pos[i] = int32(e.rng.IntN(5000))
			}
			gx, cx := e.dev(engine.BF16, x, N, W), host(x, N, W)
			gp := e.devI(pos, N)
			e.g.RoPE(gx, gp, h, 1e6)
			e.c.RoPE(cx, engine.HostI32(pos, N), h, 1e6)
			got := e.get(gx)
			compare(t, "RoPE", got, cx.F32(), tolBF16)
			e.g.RoPEBackward(gx, gp, h, 1e6)
			compare(t, "RoPEBackward∘RoPE", e.get(gx), x, tol{2e-2, 1e-2})
		})
	}
}

// attnCase is a packed batch of sequence lengths with a head geometry.
type attnCase struct {
	lens []int
	h    engine.Heads
}

var attnCases = []attnCase{
	{[]int{1}, engine.Heads{Q: 1, KV: 1, D: 8}},
	{[]int{5, 17, 40}, engine.Heads{Q: 4, KV: 2, D: 16}},
	{[]int{33, 1, 70}, engine.Heads{Q: 3, KV: 1, D: 80}},
	{[]int{129, 64}, engine.Heads{Q: 2, KV: 2, D: 128}},
	{[]int{50}, engine.Heads{Q: 4, KV: 1, D: 256}},
}

func packed(lens []int) engine.Seqs {
	s := engine.Seqs{Starts: []int32{0}}
	for _, l := range lens {
		s.Starts = append(s.Starts, s.Starts[len(s.Starts)-1]+int32(l))
		s.MaxLen = max(s.MaxLen, l)
	}
	return s
}

func TestAttention(t *testing.T) {
	for _, tc := range attnCases {
		h := tc.h
		t.Run(shapeName("lens", tc.lens, "H", h.Q, "Hkv", h.KV, "D", h.D), func(t *testing.T) {
			e := newEnv(t, uint64(h.QKV()*len(tc.lens)))
			seqs := packed(tc.lens)
			N, W, HD := seqs.Tokens(), h.QKV(), h.Q*h.D
			x := e.randn(N*W, 1)
			gx, cx := e.dev(engine.BF16, x, N, W), host(x, N, W)
			out, lse := e.alloc(engine.BF16, N, HD), e.alloc(engine.F32, N, h.Q)
			cout, clse := host(make([]float32, N*HD), N, HD), host(make([]float32, N*h.Q), N, h.Q)
			e.g.Attention(out, lse, gx, seqs, h)
			e.c.Attention(cout, clse, cx, seqs, h)
			gout := e.get(out)
			compare(t, "Attention out", gout, cout.F32(), tolBF16)
			compare(t, "Attention lse", e.get(lse), clse.F32(), tolF32)

			// The backward from the GPU's own (bf16) out on both sides.
			dy := e.randn(N*HD, 1)
			dx, cdx := e.alloc(engine.BF16, N, W), host(make([]float32, N*W), N, W)
			e.g.AttentionBackward(dx, e.dev(engine.BF16, dy, N, HD), out, lse, gx, seqs, h)
			e.c.AttentionBackward(cdx, host(dy, N, HD), host(gout, N, HD), clse, cx, seqs, h)
			compare(t, "AttentionBackward dqkv", e.get(dx), cdx.F32(), tol{2e-2, 1e-2})

			// Device offsets given by the caller give the same result.
			seqs.Dev = e.devI(seqs.Starts, len(seqs.Starts))
			out2 := e.alloc(engine.BF16, N, HD)
			e.g.Attention(out2, lse, gx, seqs, h)
			if !bitsEqual(e.get(out2), gout) {
				t.Error("Attention with Seqs.Dev differs from Attention with host Starts")
			}
		})
	}
}

func TestAttentionKV(t *testing.T) {
	for _, tc := range []struct {
		S, T, N int
		h       engine.Heads
	}{
		{2, 9, 2, engine.Heads{Q: 2, KV: 1, D: 8}},
		{3, 300, 3, engine.Heads{Q: 7, KV: 1, D: 64}},
		{4, 1000, 5, engine.Heads{Q: 8, KV: 2, D: 128}},
		{2, 40, 2, engine.Heads{Q: 2, KV: 1, D: 256}},
	} {
		h := tc.h
		t.Run(shapeName("S", tc.S, "T", tc.T, "N", tc.N, "H", h.Q, "Hkv", h.KV, "D", h.D), func(t *testing.T) {
			e := newEnv(t, uint64(tc.S*tc.T))
			S, T, N, W := tc.S, tc.T, tc.N, h.QKV()
			cache := S * T * h.KV * h.D
			k0, v0 := e.randn(cache, 1), e.randn(cache, 1)
			kc, vc := e.dev(engine.BF16, k0, S, T, h.KV, h.D), e.dev(engine.BF16, v0, S, T, h.KV, h.D)
			ckc, cvc := host(k0, S, T, h.KV, h.D), host(v0, S, T, h.KV, h.D)
			x := e.randn(N*W, 1)
			slot, pos := make([]int32, N), make([]int32, N)
			for i := range slot {
				slot[i] = int32(i % S)
				pos[i] = int32(e.rng.IntN(T))
			}
			pos[0] = int32(T - 1) // the full cache
			if N > 1 {
				pos[1] = 0
				slot[1] = int32((S - 1) % S)
			}
			gx, cx := e.dev(engine.BF16, x, N, W), host(x, N, W)
			gs, gp := e.devI(slot, N), e.devI(pos, N)
			cs, cp := engine.HostI32(slot, N), engine.HostI32(pos, N)
			e.g.KVStore(kc, vc, gx, gs, gp, h)
			e.c.KVStore(ckc, cvc, cx, cs, cp, h)
			compare(t, "KVStore k", e.get(kc), ckc.F32(), tol{0, 0})
			compare(t, "KVStore v", e.get(vc), cvc.F32(), tol{0, 0})
			out, cout := e.alloc(engine.BF16, N, h.Q*h.D), host(make([]float32, N*h.Q*h.D), N, h.Q*h.D)
			e.g.AttentionKV(out, gx, kc, vc, gs, gp, h)
			e.c.AttentionKV(cout, cx, ckc, cvc, cs, cp, h)
			compare(t, "AttentionKV", e.get(out), cout.F32(), tolBF16)
		})
	}
}

func TestCrossEntropy(t *testing.T) {
	for _, sh := range [][2]int{{1, 5}, {9, 1000}, {40, 33000}} {
		N, V := sh[0], sh[1]
		t.Run(shapeName("N", N, "V", V), func(t *testing.T) {
			e := newEnv(t, uint64(N*V))
			x := e.randn(N*V, 3)
			tg := make([]int32, N)
			for i := range tg {
				tg[i] = int32(e.rng.IntN(V))
			}
			gx, cx := e.dev(engine.BF16, x, N, V), host(x, N, V)
			gt, ct := e.devI(tg, N), engine.HostI32(tg, N)
			lp, lse, ent := e.alloc(engine.F32, N), e.alloc(engine.F32, N), e.alloc(engine.F32, N)
			clp, clse, cent := host(make([]float32, N), N), host(make([]float32, N), N), host(make([]float32, N), N)
			e.g.CrossEntropy(lp, lse, ent, gx, gt)
			e.c.CrossEntropy(clp, clse, cent, cx, ct)
			compare(t, "logp", e.get(lp), clp.F32(), tolF32)
			compare(t, "lse", e.get(lse), clse.F32(), tolF32)
			compare(t, "entropy", e.get(ent), cent.F32(), tolF32)

			dlp := e.randn(N, 1)
			dx, cdx := e.alloc(engine.BF16, N, V), host(make([]float32, N*V), N, V)
			e.g.CrossEntropyBackward(dx, e.dev(engine.F32, dlp, N), engine.Tensor{}, gx, lse, engine.Tensor{}, gt)
			e.c.CrossEntropyBackward(cdx, host(dlp, N), engine.Tensor{}, cx, clse, engine.Tensor{}, ct)
			compare(t, "CrossEntropyBackward", e.get(dx), cdx.F32(), tolBF16)
			// with the entropy term
			dent := e.randn(N, 1)
			e.g.CrossEntropyBackward(dx, e.dev(engine.F32, dlp, N), e.dev(engine.F32, dent, N), gx, lse, ent, gt)
			e.c.CrossEntropyBackward(cdx, host(dlp, N), host(dent, N), cx, clse, cent, ct)
			compare(t, "CrossEntropyBackward with entropy", e.get(dx), cdx.F32(), tolBF16)
			// in place, as the model may call it
			e.g.CrossEntropyBackward(gx, e.dev(engine.F32, dlp, N), e.dev(engine.F32, dent, N), gx, lse, ent, gt)
			compare(t, "CrossEntropyBackward in place", e.get(gx), cdx.F32(), tolBF16)
		})
	}
}

func TestAdamW(t *testing.T) {
	e := newEnv(t, 11)
	P := 10007
	p0, g0, m0 := e.randn(P, 1), e.randn(P, 1), e.randn(P, 0.1)
	v0 := make([]float32, P)
	for i := range v0 {
		v0[i] = m0[i] * m0[i] * 2
	}
	params, master := e.dev(engine.BF16, p0, P), e.dev(engine.F32, p0, P)
	grads, m, v := e.dev(engine.F32, g0, P), e.dev(engine.F32, m0, P), e.dev(engine.F32, v0, P)
	cp, cg, cm, cv := host(p0, P), host(g0, P), host(m0, P), host(v0, P)
	hp := engine.AdamWParams{LR: 1e-2, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, GradScale: 0.5, Step: 3}
	for step := 0; step < 3; step++ {
		e.g.AdamW(params, master, grads, m, v, hp)
		e.c.AdamW(cp, engine.Tensor{}, cg, cm, cv, hp)
		hp.Step++
	}
	compare(t, "AdamW master", e.get(master), cp.F32(), tol{1e-5, 1e-6})
	compare(t, "AdamW m", e.get(m), cm.F32(), tol{1e-5, 1e-6})
	compare(t, "AdamW v", e.get(v), cv.F32(), tol{1e-5, 1e-6})
	compare(t, "AdamW params (bf16 of master)", e.get(params), cp.F32(), tolBF16)
}

// TestDataErrors: bad ids, targets and cache indices are reported by Sync as *DataError, once.
func TestDataErrors(t *testing.T) {
	e := newEnv(t, 5)
	table := e.dev(engine.BF16, e.randn(12, 1), 4, 3)
	out := e.alloc(engine.BF16, 2, 3)
	e.g.Embedding(out, e.devI([]int32{1, 4}, 2), table)
	var de *DataError
	if err := e.g.Sync(); !errors.As(err, &de) || de.Code != 1 {
		t.Fatalf("Sync after an id past the table: %v, want a *DataError for the id", err)
	}
	if err := e.g.Sync(); err != nil {
		t.Fatalf("second Sync: %v", err)
	}
	lp, lse := e.alloc(engine.F32, 1), e.alloc(engine.F32, 1)
	e.g.CrossEntropy(lp, lse, engine.Tensor{}, e.dev(engine.BF16, []float32{1, 2}, 1, 2), e.devI([]int32{-1}, 1))
	if err := e.g.Sync(); !errors.As(err, &de) || de.Code != 3 {
		t.Fatalf("Sync after a bad target: %v, want a *DataError", err)
	}
}

// TestNCCLSingleRank: NCCL's collectives over one rank leave the tensors as they are (skips
// where NCCL is not installed; the emulator has it).
func TestNCCLSingleRank(t *testing.T) {
	e := newEnv(t, 21)
	c, err := NewComms([]*Backend{e.g})
	if err != nil {
		t.Skipf("NCCL: %v", err)
	}
	defer c.Close()
	r := c.Rank(0)
	if r.Rank() != 0 || r.Size() != 1 {
		t.Fatalf("rank %d of %d", r.Rank(), r.Size())
	}
	x := e.randn(1000, 1)
	gx, out := e.dev(engine.F32, x, 1000), e.alloc(engine.F32, 1000)
	for _, op := range []struct {
		name string
		run  func() error
		res  engine.Tensor
	}{
		{"AllReduceSum", func() error { return r.AllReduceSum(gx) }, gx},
		{"ReduceScatterSum", func() error { return r.ReduceScatterSum(out, gx) }, out},
		{"AllGather", func() error { return r.AllGather(out, gx) }, out},
		{"Broadcast", func() error { return r.Broadcast(gx, 0) }, gx},
	} {
		e.g.Upload(out, engine.HostF32(make([]float32, 1000), 1000))
		if err := op.run(); err != nil {
			t.Fatalf("%s: %v", op.name, err)
		}
		compare(t, op.name+" over one rank", e.get(op.res), x, tol{0, 0})
	}
	if err := r.AllGather(e.alloc(engine.F32, 999), gx); err == nil {
		t.Error("AllGather into 999 elements of 1000: no error")
	}
}

// TestDevicePerOp: two backends on two GPUs driven from two goroutines at once, each op made of
// several launches: every launch must run on its backend's device whatever OS thread the
// goroutine is on (the runtime moves goroutines between threads after long cgo calls), and give
// the results of the same ops run alone. Needs two GPUs (the emulator has them).
func TestDevicePerOp(t *testing.T) {
	e := newEnv(t, 31)
	b1 := secondGPU(t)
	N, C, OC := 37, 72, 90
	x, w, dy := e.randn(N*C, 1), e.randn(OC*C, 0.1), e.randn(N*OC, 1)
	run := func(b *Backend, rounds int) ([]float32, error) {
		up := func(dt engine.DType, v []float32, shape ...int) engine.Tensor {
			tt := engine.Tensor{Shape: shape, DType: dt, Dev: b.Device()}
			p, err := b.Alloc(tt.Bytes())
			if err != nil {
				t.Error(err)
			}
			tt.Data = p
			b.Upload(tt, engine.HostF32(v, shape...))
			return tt
		}
		gx, gw, gdy := up(engine.BF16, x, N, C), up(engine.BF16, w, OC, C), up(engine.BF16, dy, N, OC)
		din, dw := up(engine.BF16, make([]float32, N*C), N, C), up(engine.F32, make([]float32, OC*C), OC, C)
		out, rstd := up(engine.BF16, make([]float32, N*OC), N, OC), up(engine.F32, make([]float32, N), N)
		ln := up(engine.BF16, make([]float32, OC), OC)
		defer func() {
			for _, tt := range []engine.Tensor{gx, gw, gdy, din, dw, out, rstd, ln} {
				b.Free(tt.Data)
			}
		}()
		for i := 0; i < rounds; i++ {
			b.Matmul(out, gx, gw, engine.Tensor{})
			b.RMSNorm(out, rstd, out, ln, 1e-6)
			b.MatmulBackward(din, dw, engine.Tensor{}, gdy, gx, gw) // two GEMMs
			b.SumSquares(dw)
		}
		res := make([]float32, OC*C)
		b.Download(engine.HostF32(res, OC, C), dw)
		return res, b.Sync()
	}
	const rounds = 6
	want, err := run(e.g, rounds)
	if err != nil {
		t.Fatal(err)
	}
	// Busy goroutines keep every P taken, so a goroutine coming back from a long cgo call often
	// continues on another OS thread.
	stop := make(chan struct{})
	defer close(stop)
	for range 4 {
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
					runtime.Gosched()
				}
			}
		}()
	}
	var got [2][]float32
	var errs [2]error
	done := make(chan int)
	for i, b := range []*Backend{e.g, b1} {
		go func() {
			got[i], errs[i] = run(b, rounds)
			done <- i
		}()
	}
	<-done
	<-done
	for i := range got {
		if errs[i] != nil {
			t.Fatalf("cuda:%d: %v", i, errs[i])
		}
		if !bitsEqual(got[i], want) {
			t.Errorf("cuda:%d: the concurrent run differs from the run alone", i)
		}
	}
}

// TestNCCLTwoRanks: the collectives over two GPUs, each rank from its own goroutine: sums (the
// two ranks' values added, in place or not), gathers and broadcasts of F32, BF16 and I32; then
// a rank's Abort while the other waits in a collective makes that collective return an
// *engine.AbortError carrying the error, within a second, and every later one too (skips with
// fewer than two GPUs or without NCCL).
func TestNCCLTwoRanks(t *testing.T) {
	e := newEnv(t, 22)
	b1 := secondGPU(t)
	c, err := NewComms([]*Backend{e.g, b1})
	if err != nil {
		t.Skipf("NCCL: %v", err)
	}
	defer c.Close()
	bs := []*Backend{e.g, b1}
	const n = 1000
	xs := [2][]float32{e.randn(2*n, 1), e.randn(2*n, 1)}
	up := func(r int, dt engine.DType, x []float32) engine.Tensor {
		b := bs[r]
		tt := engine.Tensor{Shape: []int{len(x)}, DType: dt, Dev: b.Device()}
		p, err := b.Alloc(tt.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Free(p) })
		tt.Data = p
		b.Upload(tt, engine.HostF32(x, len(x)))
		return tt
	}
	down := func(r int, tt engine.Tensor) []float32 {
		got := make([]float32, tt.Len())
		bs[r].Download(engine.HostF32(got, tt.Len()), tt)
		if err := bs[r].Sync(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	// each runs fn on both ranks at once and returns their errors.
	each := func(fn func(r int, c *Comm) error) [2]error {
		var errs [2]error
		done := make(chan struct{})
		for r := range 2 {
			go func() {
				defer func() { done <- struct{}{} }()
				defer bs[r].LockThread()()
				errs[r] = fn(r, c.Rank(r))
			}()
		}
		<-done
		<-done
		return errs
	}
	noErr := func(name string, errs [2]error) {
		t.Helper()
		for r, err := range errs {
			if err != nil {
				t.Fatalf("%s on rank %d: %v", name, r, err)
			}
		}
	}
	sum := make([]float32, 2*n)
	for i := range sum {
		sum[i] = xs[0][i] + xs[1][i]
	}
	for _, dt := range []engine.DType{engine.F32, engine.BF16} {
		tl := tol{0, 0}
		if dt == engine.BF16 {
			tl = tolBF16
		}
		var ts, outs [2]engine.Tensor
		for r := range 2 {
			ts[r], outs[r] = up(r, dt, xs[r]), up(r, dt, make([]float32, n))
		}
		noErr("AllReduceSum", each(func(r int, c *Comm) error { return c.AllReduceSum(ts[r]) }))
		for r := range 2 {
			compare(t, fmt.Sprintf("%v AllReduceSum, rank %d", dt, r), down(r, ts[r]), sum, tl)
			bs[r].Upload(ts[r], engine.HostF32(xs[r], 2*n))
		}
		noErr("ReduceScatterSum", each(func(r int, c *Comm) error { return c.ReduceScatterSum(outs[r], ts[r]) }))
		for r := range 2 {
			compare(t, fmt.Sprintf("%v ReduceScatterSum, rank %d", dt, r), down(r, outs[r]), sum[r*n:(r+1)*n], tl)
		}
		// In place: each rank's own chunk of the input.
		noErr("ReduceScatterSum in place", each(func(r int, c *Comm) error { return c.ReduceScatterSum(ts[r].Slice(r*n, n), ts[r]) }))
		for r := range 2 {
			compare(t, fmt.Sprintf("%v ReduceScatterSum in place, rank %d", dt, r), down(r, ts[r])[r*n:(r+1)*n], sum[r*n:(r+1)*n], tl)
			bs[r].Upload(ts[r], engine.HostF32(xs[r], 2*n))
		}
		// Gathers: rank r's first n values into chunk r.
		noErr("AllGather", each(func(r int, c *Comm) error { return c.AllGather(ts[r], ts[r].Slice(r*n, n)) }))
		want := append(append([]float32{}, xs[0][:n]...), xs[1][n:]...)
		for r := range 2 {
			compare(t, fmt.Sprintf("%v AllGather, rank %d", dt, r), down(r, ts[r]), want, tol{0, 0})
			bs[r].Upload(ts[r], engine.HostF32(xs[r], 2*n))
		}
		noErr("Broadcast", each(func(r int, c *Comm) error { return c.Broadcast(ts[r], 1) }))
		for r := range 2 {
			compare(t, fmt.Sprintf("%v Broadcast from rank 1, rank %d", dt, r), down(r, ts[r]), xs[1], tol{0, 0})
		}
	}
	// Rank 1 fails while rank 0 waits in an all-reduce.
	x := [2]engine.Tensor{up(0, engine.F32, xs[0]), up(1, engine.F32, xs[1])}
	failure := errors.New("rank 1's injected failure")
	start := time.Now()
	errs := each(func(r int, c *Comm) error {
		if r == 1 {
			time.Sleep(50 * time.Millisecond)
			c.Abort(failure)
			return nil
		}
		return c.AllReduceSum(x[0])
	})
	var ae *engine.AbortError
	if !errors.As(errs[0], &ae) || ae.Rank != 1 || !errors.Is(errs[0], failure) {
		t.Fatalf("rank 0's all-reduce after rank 1's abort: %v, want an *engine.AbortError of rank 1 wrapping the failure", errs[0])
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("rank 0 returned %v after the abort", d)
	}
	errs = each(func(r int, c *Comm) error { return c.Broadcast(x[r], 0) })
	for r, err := range errs {
		if !errors.As(err, &ae) {
			t.Errorf("rank %d's broadcast after the abort: %v, want an *engine.AbortError", r, err)
		}
	}
}
