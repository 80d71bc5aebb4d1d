package cpu

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"cir/engine"
)

// Tolerances: forward ops against float64 (relative to the output's scale), backward ops
// against float64 central finite differences of the float64 forward.
const (
	fwdTol = 1e-5
	bwdTol = 1e-3
)

// newBackends returns backends on 1 and 2 threads, and one on 2 whose GEMMs run on OpenBLAS's
// threads.
func newBackends(t testing.TB) []*Backend {
	var bs []*Backend
	for _, n := range []int{1, 2, -2} {
		b := New(max(n, -n))
		b.blasThreads = n < 0
		t.Cleanup(func() { b.Close() })
		bs = append(bs, b)
	}
	return bs
}

func f32T(x []float32, shape ...int) engine.Tensor { return engine.HostF32(x, shape...) }
func i32T(x []int32, shape ...int) engine.Tensor   { return engine.HostI32(x, shape...) }

func TestMemory(t *testing.T) {
	b := New(2)
	defer b.Close()
	p, err := b.Alloc(1000)
	if err != nil || p == nil {
		t.Fatalf("Alloc(1000) = %v, %v", p, err)
	}
	a := engine.Tensor{Shape: []int{250}, DType: engine.F32, Data: p}
	for i, v := range a.F32() {
		if v != 0 {
			t.Fatalf("Alloc: element %d is %g, want zeroed memory", i, v)
		}
	}
	src := []float32{1, -2, 3.5, 4}
	b.Upload(a.Rows(0, 4), f32T(src, 4))
	b.Scale(a.Rows(0, 4), 2)
	if got := b.SumSquares(a); got != 4+16+49+64 {
		t.Errorf("SumSquares = %g, want %g", got, 4.0+16+49+64)
	}
	dst := make([]float32, 4)
	b.Download(f32T(dst, 4), a.Rows(0, 4))
	if fmt.Sprint(dst) != "[2 -4 7 8]" {
		t.Errorf("Download after Scale = %v, want [2 -4 7 8]", dst)
	}
	b.Copy(a.Rows(4, 8), a.Rows(0, 4))
	b.Zero(a.Rows(0, 4))
	if got := a.F32()[:8]; fmt.Sprint(got) != "[0 0 0 0 2 -4 7 8]" {
		t.Errorf("after Copy and Zero: %v", got)
	}
	ids := []int32{3, 1}
	it := engine.Tensor{Shape: []int{2}, DType: engine.I32, Data: p}
	b.Upload(it, i32T(ids, 2))
	got := make([]int32, 2)
	b.Download(i32T(got, 2), it)
	if got[0] != 3 || got[1] != 1 {
		t.Errorf("I32 round trip = %v", got)
	}
	b.Free(p)
	if _, err := b.Alloc(-1); err == nil {
		t.Error("Alloc(-1) succeeded")
	}
	// A large sum of squares in float64.
	r := rand.New(rand.NewPCG(1, 2))
	x, x64 := randF32(r, 100003, 3)
	want := 0.0
	for _, v := range x64 {
		want += v * v
	}
	for _, b := range newBackends(t) {
		if got := b.SumSquares(f32T(x, len(x))); math.Abs(got-want) > 1e-12*want {
			t.Errorf("threads %d: SumSquares = %.15g, want %.15g", b.threads, got, want)
		}
	}
}

func TestPanicsOnShape(t *testing.T) {
	b := New(1)
	defer b.Close()
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"Matmul", func() {
			b.Matmul(f32T(make([]float32, 6), 2, 3), f32T(make([]float32, 8), 2, 4), f32T(make([]float32, 8), 2, 4), engine.Tensor{})
		}},
		{"Add", func() { b.Add(f32T(make([]float32, 3), 3), f32T(make([]float32, 3), 3), f32T(make([]float32, 2), 2)) }},
		{"closed", func() {
			c := New(2)
			c.Close()
			c.Add(f32T(make([]float32, 3), 3), f32T(make([]float32, 3), 3), f32T(make([]float32, 3), 3))
		}},
		{"Embedding dtype", func() {
			b.Embedding(f32T(make([]float32, 4), 2, 2), f32T(make([]float32, 2), 2), f32T(make([]float32, 4), 2, 2))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic on mismatched shapes", tc.name)
				}
			}()
			tc.f()
		})
	}
}

func TestEmbedding(t *testing.T) {
	for _, tc := range []struct{ N, V, C int }{{5, 7, 3}, {37, 11, 19}, {300, 50, 130}} {
		t.Run(fmt.Sprintf("N=%d,V=%d,C=%d", tc.N, tc.V, tc.C), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(tc.N), 1))
			table, table64 := randF32(r, tc.V*tc.C, 1)
			ids := make([]int32, tc.N)
			for i := range ids {
				ids[i] = int32(r.IntN(tc.V))
			}
			dout, dout64 := randF32(r, tc.N*tc.C, 1)
			dt0, dt064 := randF32(r, tc.V*tc.C, 1)
			want := make([]float64, tc.N*tc.C)
			wantD := append([]float64(nil), dt064...)
			for n, id := range ids {
				for c := 0; c < tc.C; c++ {
					want[n*tc.C+c] = table64[int(id)*tc.C+c]
					wantD[int(id)*tc.C+c] += dout64[n*tc.C+c]
				}
			}
			gather := func(tab []float64) []float64 {
				y := make([]float64, tc.N*tc.C)
				for n, id := range ids {
					copy(y[n*tc.C:(n+1)*tc.C], tab[int(id)*tc.C:])
				}
				return y
			}
			it := sampleIdx(r, tc.V*tc.C, 300)
			g := fdGrad(gather, append([]float64(nil), table64...), dout64, it)
			for _, b := range newBackends(t) {
				out := make([]float32, tc.N*tc.C)
				b.Embedding(f32T(out, tc.N, tc.C), i32T(ids, tc.N), f32T(table, tc.V, tc.C))
				closeTo(t, "Embedding", out, want, 0)
				dt := append([]float32(nil), dt0...)
				b.EmbeddingBackward(f32T(dt, tc.V, tc.C), f32T(dout, tc.N, tc.C), i32T(ids, tc.N))
				closeTo(t, "EmbeddingBackward", dt, wantD, fwdTol)
				for i := range dt {
					dt[i] -= dt0[i]
				}
				closeTo(t, "EmbeddingBackward vs finite differences", pick(dt, it), g, bwdTol)
				if err := b.Sync(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	b := New(1)
	defer b.Close()
	out := []float32{5, 5}
	b.Embedding(f32T(out, 1, 2), i32T([]int32{9}, 1), f32T(make([]float32, 6), 3, 2))
	if err := b.Sync(); !errors.Is(err, ErrOutOfRange) || out[0] != 0 {
		t.Errorf("Embedding of id 9 in a table of 3 rows: Sync %v, row %v; want an error and a zero row", err, out)
	}
}

func TestRMSNorm(t *testing.T) {
	const eps = 1e-6
	for _, tc := range []struct{ N, C int }{{1, 7}, {13, 30}, {70, 257}} {
		t.Run(fmt.Sprintf("N=%d,C=%d", tc.N, tc.C), func(t *testing.T) {
			N, C := tc.N, tc.C
			r := rand.New(rand.NewPCG(uint64(N), uint64(C)))
			x, x64 := randF32(r, N*C, 2)
			y, _ := randF32(r, N*C, 2)
			w, w64 := randF32(r, C, 1.5)
			dout, dout64 := randF32(r, N*C, 1)
			din0, _ := randF32(r, N*C, 1)
			dw0, _ := randF32(r, C, 1)
			sum64 := make([]float64, N*C)
			for i := range sum64 {
				sum64[i] = float64(x[i] + y[i])
			}
			wantOut, wantR := refRMSNorm(x64, w64, N, C, eps)
			wantOut2, wantR2 := refRMSNorm(sum64, w64, N, C, eps)
			// Backward: finite differences with respect to in and w.
			ix := sampleIdx(r, N*C, 300)
			gx := fdGrad(func(v []float64) []float64 { o, _ := refRMSNorm(v, w64, N, C, eps); return o }, x64, dout64, ix)
			gw := fdGrad(func(v []float64) []float64 { o, _ := refRMSNorm(x64, v, N, C, eps); return o }, w64, dout64, nil)
			for _, b := range newBackends(t) {
				out, rstd := make([]float32, N*C), make([]float32, N)
				b.RMSNorm(f32T(out, N, C), f32T(rstd, N), f32T(x, N, C), f32T(w, C), eps)
				closeTo(t, "RMSNorm out", out, wantOut, fwdTol)
				closeTo(t, "RMSNorm rstd", rstd, wantR, fwdTol)
				res := make([]float32, N*C)
				b.AddRMSNorm(f32T(res, N, C), f32T(out, N, C), f32T(rstd, N), f32T(x, N, C), f32T(y, N, C), f32T(w, C), eps)
				closeTo(t, "AddRMSNorm res", res, sum64, fwdTol)
				closeTo(t, "AddRMSNorm out", out, wantOut2, fwdTol)
				closeTo(t, "AddRMSNorm rstd", rstd, wantR2, fwdTol)

				b.RMSNorm(f32T(out, N, C), f32T(rstd, N), f32T(x, N, C), f32T(w, C), eps)
				din, dw := append([]float32(nil), din0...), append([]float32(nil), dw0...)
				b.RMSNormBackward(f32T(din, N, C), f32T(dw, C), f32T(dout, N, C), f32T(x, N, C), f32T(w, C), f32T(rstd, N))
				for i := range din {
					din[i] -= din0[i] // din accumulates
				}
				for i := range dw {
					dw[i] -= dw0[i]
				}
				closeTo(t, "RMSNormBackward din", pick(din, ix), gx, bwdTol)
				closeTo(t, "RMSNormBackward dw", dw, gw, bwdTol)
			}
		})
	}
}

func TestMatmul(t *testing.T) {
	for _, tc := range []struct {
		N, C, OC int
		bias     bool
	}{{1, 3, 5, true}, {17, 30, 11, false}, {33, 65, 47, true}, {70, 96, 130, false}} {
		t.Run(fmt.Sprintf("N=%d,C=%d,OC=%d,bias=%v", tc.N, tc.C, tc.OC, tc.bias), func(t *testing.T) {
			N, C, OC := tc.N, tc.C, tc.OC
			r := rand.New(rand.NewPCG(uint64(N), uint64(OC)))
			x, x64 := randF32(r, N*C, 1)
			w, w64 := randF32(r, OC*C, 1)
			var bias []float32
			var bias64 []float64
			bt := engine.Tensor{}
			if tc.bias {
				bias, bias64 = randF32(r, OC, 1)
				bt = f32T(bias, OC)
			}
			dout, dout64 := randF32(r, N*OC, 1)
			dw0, _ := randF32(r, OC*C, 1)
			db0, _ := randF32(r, OC, 1)
			want := refMatmul(x64, w64, bias64, N, C, OC)
			ix, iw := sampleIdx(r, N*C, 150), sampleIdx(r, OC*C, 150)
			gx := fdGrad(func(v []float64) []float64 { return refMatmul(v, w64, bias64, N, C, OC) }, x64, dout64, ix)
			gw := fdGrad(func(v []float64) []float64 { return refMatmul(x64, v, bias64, N, C, OC) }, w64, dout64, iw)
			var gb []float64
			if tc.bias {
				gb = fdGrad(func(v []float64) []float64 { return refMatmul(x64, w64, v, N, C, OC) }, bias64, dout64, nil)
			}
			for _, b := range newBackends(t) {
				out := make([]float32, N*OC)
				b.Matmul(f32T(out, N, OC), f32T(x, N, C), f32T(w, OC, C), bt)
				closeTo(t, "Matmul", out, want, fwdTol)
				din := make([]float32, N*C)
				for i := range din {
					din[i] = 7 // assigned, not accumulated
				}
				dw, db := append([]float32(nil), dw0...), append([]float32(nil), db0...)
				dbt := engine.Tensor{}
				if tc.bias {
					dbt = f32T(db, OC)
				}
				b.MatmulBackward(f32T(din, N, C), f32T(dw, OC, C), dbt, f32T(dout, N, OC), f32T(x, N, C), f32T(w, OC, C))
				for i := range dw {
					dw[i] -= dw0[i]
				}
				closeTo(t, "MatmulBackward din", pick(din, ix), gx, bwdTol)
				closeTo(t, "MatmulBackward dw", pick(dw, iw), gw, bwdTol)
				if tc.bias {
					for i := range db {
						db[i] -= db0[i]
					}
					closeTo(t, "MatmulBackward dbias", db, gb, bwdTol)
				}
				// din absent: dw still accumulates.
				dw2 := make([]float32, OC*C)
				b.MatmulBackward(engine.Tensor{}, f32T(dw2, OC, C), engine.Tensor{}, f32T(dout, N, OC), f32T(x, N, C), f32T(w, OC, C))
				closeTo(t, "MatmulBackward dw without din", pick(dw2, iw), gw, bwdTol)
			}
		})
	}
}

func TestSwiGLUAdd(t *testing.T) {
	for _, tc := range []struct{ N, I int }{{1, 5}, {9, 33}, {40, 301}} {
		t.Run(fmt.Sprintf("N=%d,I=%d", tc.N, tc.I), func(t *testing.T) {
			N, I := tc.N, tc.I
			r := rand.New(rand.NewPCG(uint64(N), uint64(I)))
			gu, gu64 := randF32(r, N*2*I, 6)
			dout, dout64 := randF32(r, N*I, 1)
			want := refSwiGLU(gu64, N, I)
			idx := sampleIdx(r, N*2*I, 400)
			g := fdGrad(func(v []float64) []float64 { return refSwiGLU(v, N, I) }, gu64, dout64, idx)
			a, a64 := randF32(r, N*I, 1)
			for _, b := range newBackends(t) {
				out := make([]float32, N*I)
				b.SwiGLU(f32T(out, N, I), f32T(gu, N, 2*I))
				closeTo(t, "SwiGLU", out, want, fwdTol)
				dgu := make([]float32, N*2*I)
				b.SwiGLUBackward(f32T(dgu, N, 2*I), f32T(dout, N, I), f32T(gu, N, 2*I))
				closeTo(t, "SwiGLUBackward", pick(dgu, idx), g, bwdTol)
				sum := make([]float32, N*I)
				b.Add(f32T(sum, N, I), f32T(a, N, I), f32T(dout, N, I))
				want := make([]float64, N*I)
				for i := range want {
					want[i] = a64[i] + dout64[i]
				}
				closeTo(t, "Add", sum, want, fwdTol)
			}
		})
	}
}

func TestRoPE(t *testing.T) {
	for _, tc := range []struct {
		N, H, Hkv, D int
		theta        float64
	}{{3, 2, 1, 6, 10000}, {11, 6, 2, 10, 1e6}, {40, 4, 4, 34, 500}} {
		t.Run(fmt.Sprintf("N=%d,H=%d,Hkv=%d,D=%d", tc.N, tc.H, tc.Hkv, tc.D), func(t *testing.T) {
			h := engine.Heads{Q: tc.H, KV: tc.Hkv, D: tc.D}
			N, W := tc.N, h.QKV()
			r := rand.New(rand.NewPCG(uint64(N), uint64(W)))
			x, x64 := randF32(r, N*W, 1)
			pos := make([]int32, N)
			for i := range pos {
				pos[i] = int32(r.IntN(3000))
			}
			pos[0] = 0
			want := refRoPE(x64, pos, tc.H, tc.Hkv, tc.D, tc.theta, false)
			dy, dy64 := randF32(r, N*W, 1)
			idx := sampleIdx(r, N*W, 150)
			g := fdGrad(func(v []float64) []float64 { return refRoPE(v, pos, tc.H, tc.Hkv, tc.D, tc.theta, false) }, x64, dy64, idx)
			for _, b := range newBackends(t) {
				y := append([]float32(nil), x...)
				b.RoPE(f32T(y, N, W), i32T(pos, N), h, float32(tc.theta))
				// Positions up to 3000 make angles of ~3000 rad: float32 cos/sin of the angle
				// are exact to ~1e-7, so the outputs match to that relative to 1.
				closeTo(t, "RoPE", y, want, 1e-5)
				d := append([]float32(nil), dy...)
				b.RoPEBackward(f32T(d, N, W), i32T(pos, N), h, float32(tc.theta))
				closeTo(t, "RoPEBackward", pick(d, idx), g, bwdTol)
			}
		})
	}
}

func TestCrossEntropy(t *testing.T) {
	for _, tc := range []struct {
		N, V  int
		scale float64
	}{{1, 3, 1}, {7, 101, 5}, {33, 1000, 20}} {
		t.Run(fmt.Sprintf("N=%d,V=%d", tc.N, tc.V), func(t *testing.T) {
			N, V := tc.N, tc.V
			r := rand.New(rand.NewPCG(uint64(N), uint64(V)))
			l, l64 := randF32(r, N*V, tc.scale)
			tgt := make([]int32, N)
			for i := range tgt {
				tgt[i] = int32(r.IntN(V))
			}
			dlogp, dlogp64 := randF32(r, N, 1)
			dlogp[0], dlogp64[0] = 0, 0 // a masked row
			dent, dent64 := randF32(r, N, 1)
			wlp, wlse, went := refCE(l64, tgt, N, V)
			idx := sampleIdx(r, N*V, 500)
			g := fdGrad(func(v []float64) []float64 { lp, _, _ := refCE(v, tgt, N, V); return lp }, l64, dlogp64, idx)
			// With an entropy term: the finite difference of Σ dlogp·logp + Σ dent·ent in float64.
			gEnt := fdGrad(func(v []float64) []float64 {
				lp, _, ent := refCE(v, tgt, N, V)
				return append(lp, ent...)
			}, l64, append(append([]float64(nil), dlogp64...), dent64...), idx)
			for _, b := range newBackends(t) {
				lp, lse, ent := make([]float32, N), make([]float32, N), make([]float32, N)
				b.CrossEntropy(f32T(lp, N), f32T(lse, N), f32T(ent, N), f32T(l, N, V), i32T(tgt, N))
				closeTo(t, "CrossEntropy logp", lp, wlp, fwdTol)
				closeTo(t, "CrossEntropy lse", lse, wlse, fwdTol)
				closeTo(t, "CrossEntropy ent", ent, went, fwdTol)
				b.CrossEntropy(f32T(lp, N), f32T(lse, N), engine.Tensor{}, f32T(l, N, V), i32T(tgt, N))
				closeTo(t, "CrossEntropy logp without ent", lp, wlp, fwdTol)
				dl := make([]float32, N*V)
				for i := range dl {
					dl[i] = 3 // assigned
				}
				b.CrossEntropyBackward(f32T(dl, N, V), f32T(dlogp, N), engine.Tensor{}, f32T(l, N, V), f32T(lse, N), engine.Tensor{}, i32T(tgt, N))
				// The analytic gradient, in float64, checked everywhere; finite differences on a sample.
				want := make([]float64, N*V)
				for n := 0; n < N; n++ {
					for j := 0; j < V; j++ {
						p := math.Exp(l64[n*V+j] - wlse[n])
						if int32(j) == tgt[n] {
							want[n*V+j] = dlogp64[n] * (1 - p)
						} else {
							want[n*V+j] = -dlogp64[n] * p
						}
					}
				}
				closeTo(t, "CrossEntropyBackward", dl, want, fwdTol)
				closeTo(t, "CrossEntropyBackward vs finite differences", pick(dl, idx), g, bwdTol)
				b.CrossEntropyBackward(f32T(dl, N, V), f32T(dlogp, N), f32T(dent, N), f32T(l, N, V), f32T(lse, N), f32T(ent, N), i32T(tgt, N))
				closeTo(t, "CrossEntropyBackward with entropy vs finite differences", pick(dl, idx), gEnt, bwdTol)
			}
		})
	}
}
