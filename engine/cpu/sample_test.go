package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"cir/engine"
)

// sampleRows runs Sample on B copies of one row of logits with the uniforms u.
func sampleRows(b *Backend, logits []float32, u []float32, p engine.SampleParams) ([]int32, []float32) {
	B, V := len(u), len(logits)
	all := make([]float32, 0, B*V)
	for range B {
		all = append(all, logits...)
	}
	ids, lp := make([]int32, B), make([]float32, B)
	b.Sample(i32T(ids, B), f32T(lp, B), f32T(all, B, V), f32T(u, B), p)
	return ids, lp
}

func TestSampleGreedy(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, b := range newBackends(t) {
		for _, V := range []int{1, 7, 1001} {
			l, _ := randF32(r, V, 4)
			want := 0
			for j := range l {
				if l[j] > l[want] {
					want = j
				}
			}
			if V > 2 {
				l[V-1] = l[want] // a tie with a higher id loses
			}
			ids, lp := sampleRows(b, l, []float32{0.3, 0.99}, engine.SampleParams{TopP: 1})
			_, lse, _ := refCE(to64(l), []int32{0}, 1, V)
			for i, id := range ids {
				if int(id) != want {
					t.Errorf("V=%d: greedy id %d, want argmax %d", V, id, want)
				}
				if w := float64(l[want]) - lse[0]; math.Abs(float64(lp[i])-w) > 1e-5 {
					t.Errorf("V=%d: greedy logp %g, want %g", V, lp[i], w)
				}
			}
		}
	}
}

// TestSampleFilters checks top-k and top-p on a hand-checkable distribution:
// p = [0.4 0.1 0.3 0.1 0.1], sorted 0 (0.4), 2 (0.3), 1, 3, 4 (0.1 each, ties by id).
func TestSampleFilters(t *testing.T) {
	probs := []float64{0.4, 0.1, 0.3, 0.1, 0.1}
	l := make([]float32, len(probs))
	for i, p := range probs {
		l[i] = float32(math.Log(p))
	}
	for _, tc := range []struct {
		name string
		p    engine.SampleParams
		u    float32
		want int32
	}{
		{"none low", engine.SampleParams{Temperature: 1, TopP: 1}, 0.1, 0},
		{"none 0.45", engine.SampleParams{Temperature: 1, TopP: 1}, 0.45, 2},
		{"none 0.75", engine.SampleParams{Temperature: 1, TopP: 1}, 0.75, 1},
		{"none 0.85", engine.SampleParams{Temperature: 1, TopP: 1}, 0.85, 3},
		{"none top", engine.SampleParams{Temperature: 1, TopP: 1}, 0.999, 4},
		{"k=2 0.5", engine.SampleParams{Temperature: 1, TopP: 1, TopK: 2}, 0.5, 0},     // 0.4/0.7 = 0.571 > 0.5
		{"k=2 0.6", engine.SampleParams{Temperature: 1, TopP: 1, TopK: 2}, 0.6, 2},     // past 0.571
		{"k=2 0.999", engine.SampleParams{Temperature: 1, TopP: 1, TopK: 2}, 0.999, 2}, // never 1
		{"k=1", engine.SampleParams{Temperature: 1, TopP: 1, TopK: 1}, 0.9, 0},
		{"p=0.75 0.95", engine.SampleParams{Temperature: 1, TopP: 0.75}, 0.95, 1}, // keeps {0,2,1}, mass 0.8
		{"p=0.75 0.99", engine.SampleParams{Temperature: 1, TopP: 0.75}, 0.99, 1},
		{"p=0.7 0.99", engine.SampleParams{Temperature: 1, TopP: 0.65}, 0.99, 2}, // keeps {0,2}
		{"p=0.3", engine.SampleParams{Temperature: 1, TopP: 0.3}, 0.99, 0},
		{"k=3 p=0.9", engine.SampleParams{Temperature: 1, TopP: 0.9, TopK: 3}, 0.99, 1}, // {0,2,1} renormalised: 0.5,0.375,0.125
		{"k=3 p=0.8", engine.SampleParams{Temperature: 1, TopP: 0.8, TopK: 3}, 0.99, 2}, // 0.5+0.375 >= 0.8
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, b := range newBackends(t) {
				ids, lp := sampleRows(b, l, []float32{tc.u}, tc.p)
				if ids[0] != tc.want {
					t.Errorf("u=%g %+v: id %d, want %d", tc.u, tc.p, ids[0], tc.want)
				}
				if w := math.Log(probs[ids[0]]); math.Abs(float64(lp[0])-w) > 1e-5 {
					t.Errorf("logp %g, want log p = %g (unscaled)", lp[0], w)
				}
			}
		})
	}
}

// filtered is the distribution Sample should draw from, computed independently in float64.
func filtered(l []float32, p engine.SampleParams) []float64 {
	V := len(l)
	q := make([]float64, V)
	mx := math.Inf(-1)
	for _, v := range l {
		mx = math.Max(mx, float64(v)/float64(p.Temperature))
	}
	for j, v := range l {
		q[j] = math.Exp(float64(v)/float64(p.Temperature) - mx)
	}
	order := make([]int, V)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case q[a] > q[b]:
			return -1
		case q[a] < q[b]:
			return 1
		}
		return a - b
	})
	keep := V
	if p.TopK > 0 && p.TopK < V {
		keep = p.TopK
	}
	mass := 0.0
	for _, j := range order[:keep] {
		mass += q[j]
	}
	cum := 0.0
	for i, j := range order[:keep] {
		cum += q[j]
		if cum >= float64(p.TopP)*mass {
			keep = i + 1
			break
		}
	}
	out := make([]float64, V)
	s := 0.0
	for _, j := range order[:keep] {
		s += q[j]
	}
	for _, j := range order[:keep] {
		out[j] = q[j] / s
	}
	return out
}

// TestSampleFrequencies draws with evenly spaced uniforms, so each id's frequency must equal its
// filtered probability to within 2/B.
func TestSampleFrequencies(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	small, _ := randF32(r, 23, 2)
	large, _ := randF32(r, 3001, 7) // peaked: the draw sorts only a few candidates
	for _, tc := range []struct {
		l []float32
		p engine.SampleParams
	}{
		{small, engine.SampleParams{Temperature: 1, TopP: 1}},
		{small, engine.SampleParams{Temperature: 0.7, TopP: 0.9, TopK: 10}},
		{small, engine.SampleParams{Temperature: 1.5, TopP: 0.5}},
		{small, engine.SampleParams{Temperature: 0.3, TopP: 1, TopK: 4}},
		{large, engine.SampleParams{Temperature: 1, TopP: 1}},
		{large, engine.SampleParams{Temperature: 0.6, TopP: 0.8}},
		{large, engine.SampleParams{Temperature: 1.2, TopP: 0.95, TopK: 50}},
		{large, engine.SampleParams{Temperature: 3, TopP: 1, TopK: 700}},
	} {
		l, p := tc.l, tc.p
		B := 20000
		if len(l) > 100 {
			B = 1000
		}
		u := make([]float32, B)
		for i := range u {
			u[i] = (float32(i) + 0.5) / float32(B)
		}
		t.Run(fmt.Sprintf("V=%d,%+v", len(l), p), func(t *testing.T) {
			want := filtered(l, p)
			for _, b := range newBackends(t) {
				ids, _ := sampleRows(b, l, u, p)
				got := make([]float64, len(l))
				for _, id := range ids {
					got[id] += 1 / float64(B)
				}
				for j := range got {
					if math.Abs(got[j]-want[j]) > 2/float64(B) {
						t.Errorf("id %d: frequency %.5f, want %.5f", j, got[j], want[j])
					}
				}
			}
		})
	}
}

func TestAdamW(t *testing.T) {
	for _, tc := range []struct {
		P          int
		wd, scale  float64
		withMaster bool
	}{{1, 0, 1, false}, {37, 0.1, 0.5, false}, {10007, 0.01, 1, true}} {
		t.Run(fmt.Sprintf("P=%d,wd=%g,master=%v", tc.P, tc.wd, tc.withMaster), func(t *testing.T) {
			const lr, b1, b2, eps = 1e-2, 0.9, 0.95, 1e-8
			for _, b := range newBackends(t) {
				r := rand.New(rand.NewPCG(uint64(tc.P), 9))
				p, p64 := randF32(r, tc.P, 1)
				m, v := make([]float32, tc.P), make([]float32, tc.P)
				m64, v64 := make([]float64, tc.P), make([]float64, tc.P)
				var master []float32
				mt := engine.Tensor{}
				if tc.withMaster {
					master = append([]float32(nil), p...)
					mt = f32T(master, tc.P)
				}
				for step := 1; step <= 5; step++ {
					g, g64 := randF32(r, tc.P, 2)
					b.AdamW(f32T(p, tc.P), mt, f32T(g, tc.P), f32T(m, tc.P), f32T(v, tc.P), engine.AdamWParams{
						LR: lr, Beta1: b1, Beta2: b2, Eps: eps, WeightDecay: float32(tc.wd), GradScale: float32(tc.scale), Step: step})
					refAdamW(p64, g64, m64, v64, lr, b1, b2, eps, tc.wd, tc.scale, step)
				}
				closeTo(t, "AdamW params", p, p64, fwdTol)
				closeTo(t, "AdamW m", m, m64, fwdTol)
				closeTo(t, "AdamW v", v, v64, fwdTol)
				if tc.withMaster {
					closeTo(t, "AdamW master", master, p64, fwdTol)
				}
			}
		})
	}
}

// eachVecLevel runs f with the loops of vec.h at every instruction set this CPU has.
func eachVecLevel(t *testing.T, f func(t *testing.T)) {
	native := vecLevel
	defer func() { vecLevel = native }()
	for l := vecSSE2; l <= native(); l++ {
		vecLevel = func() int { return l }
		t.Run(fmt.Sprintf("level=%d", l), f)
	}
}

func TestExp(t *testing.T) { eachVecLevel(t, testExp) }

func testExp(t *testing.T) {
	var x []float32
	for v := -90.0; v < 80; v += 0.001 { // sums of 256 e^80 still fit a float32
		x = append(x, float32(v))
	}
	for _, tc := range []struct{ shift, mul, scale float32 }{{0, 1, 1}, {1.5, 0.5, -2}} {
		y := make([]float32, len(x))
		sum := expTo(y, x, tc.shift, tc.mul, tc.scale)
		worst, want := 0.0, 0.0
		for i, v := range x {
			af := (v - tc.shift) * tc.mul
			a := float64(af)
			e := math.Exp(a)
			under := af < -87.33
			if under {
				e = 0
			}
			want += e
			if d := math.Abs(float64(y[i]) - float64(tc.scale)*e); d > 3e-7*math.Abs(float64(tc.scale))*e {
				worst = math.Max(worst, d/math.Max(e, 1e-300))
			}
			if under && y[i] != 0 {
				t.Fatalf("expTo at %g: %g, want 0 below -87.33", a, y[i])
			}
		}
		if worst > 0 {
			t.Errorf("%+v: max rel err %.3g, want below 3e-7", tc, worst)
		}
		if math.Abs(sum-want) > 1e-6*want {
			t.Errorf("%+v: sum %g, want %g", tc, sum, want)
		}
	}
	// In place.
	y := []float32{0, 1, -1}
	expTo(y, y, 0, 1, 1)
	if math.Abs(float64(y[1])-math.E) > 1e-6 || y[0] != 1 {
		t.Errorf("expTo in place: %v", y)
	}
}

// TestVecLoops checks SwiGLU forward and backward, max and dot of vec.h against float64 at
// every instruction set this CPU has, on lengths around the vector widths.
func TestVecLoops(t *testing.T) {
	eachVecLevel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, n := range []int{1, 7, 16, 33, 255, 256, 1000} {
			g, g64 := randF32(r, n, 8)
			u, u64 := randF32(r, n, 2)
			dy, dy64 := randF32(r, n, 1)
			out, dg, du := make([]float32, n), make([]float32, n), make([]float32, n)
			swiglu(out, g, u)
			swigluBack(dg, du, dy, g, u)
			wOut, wDg, wDu := make([]float64, n), make([]float64, n), make([]float64, n)
			mx, dot := math.Inf(-1), 0.0
			for i := range g64 {
				s := 1 / (1 + math.Exp(-g64[i]))
				wOut[i] = g64[i] * s * u64[i]
				wDu[i] = dy64[i] * g64[i] * s
				wDg[i] = dy64[i] * u64[i] * s * (1 + g64[i]*(1-s))
				mx = math.Max(mx, g64[i])
				dot += g64[i] * u64[i]
			}
			name := fmt.Sprintf("n=%d", n)
			closeTo(t, name+" swiglu", out, wOut, fwdTol)
			closeTo(t, name+" swiglu dg", dg, wDg, fwdTol)
			closeTo(t, name+" swiglu du", du, wDu, fwdTol)
			if got := maxOf(g); float64(got) != mx {
				t.Errorf("%s: maxOf = %g, want %g", name, got, mx)
			}
			if got := dot64(g, u); math.Abs(got-dot) > 1e-5*math.Max(1, math.Abs(dot)) {
				t.Errorf("%s: dot64 = %g, want %g", name, got, dot)
			}
		}
	})
}
