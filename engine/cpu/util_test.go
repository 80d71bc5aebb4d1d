package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// randF32 returns n values uniform in [-scale, scale) and their float64 copies.
func randF32(r *rand.Rand, n int, scale float64) ([]float32, []float64) {
	x, y := make([]float32, n), make([]float64, n)
	for i := range x {
		x[i] = float32((r.Float64()*2 - 1) * scale)
		y[i] = float64(x[i])
	}
	return x, y
}

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// closeTo fails t unless got matches want to within tol relative to the largest |want| (with
// an absolute floor of tol), printing the max abs and rel errors.
func closeTo(t *testing.T, name string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	scale, maxAbs, maxRel, at := 0.0, 0.0, 0.0, 0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(w))
	}
	for i := range got {
		d := math.Abs(float64(got[i]) - want[i])
		if math.IsNaN(float64(got[i])) {
			d = math.Inf(1)
		}
		if d > maxAbs {
			maxAbs, at = d, i
		}
		maxRel = math.Max(maxRel, d/math.Max(math.Abs(want[i]), 1e-6))
	}
	if maxAbs > tol*math.Max(scale, 1) {
		t.Errorf("%s: max abs err %.3g (at %d: got %g want %g), max rel err %.3g, scale %.3g, tol %.1g",
			name, maxAbs, at, got[at], want[at], maxRel, scale, tol)
	}
}

// fdGrad returns the central finite-difference gradient of Σ r·f(x) with respect to the
// elements idx of x (all when idx is nil), in float64.
func fdGrad(f func(x []float64) []float64, x, r []float64, idx []int) []float64 {
	if idx == nil {
		idx = make([]int, len(x))
		for i := range idx {
			idx[i] = i
		}
	}
	loss := func() float64 {
		y, s := f(x), 0.0
		for i := range y {
			s += r[i] * y[i]
		}
		return s
	}
	g := make([]float64, len(idx))
	for k, i := range idx {
		h := 1e-6 * math.Max(1, math.Abs(x[i]))
		old := x[i]
		x[i] = old + h
		lp := loss()
		x[i] = old - h
		lm := loss()
		x[i] = old
		g[k] = (lp - lm) / (2 * h)
	}
	return g
}

// pick returns the elements idx of x (all when idx is nil).
func pick(x []float32, idx []int) []float32 {
	if idx == nil {
		return x
	}
	y := make([]float32, len(idx))
	for k, i := range idx {
		y[k] = x[i]
	}
	return y
}

// sampleIdx returns up to k distinct indices of [0, n), sorted, or nil (all) when n <= k.
func sampleIdx(r *rand.Rand, n, k int) []int {
	if n <= k {
		return nil
	}
	p := r.Perm(n)[:k]
	idx := make([]int, k)
	copy(idx, p)
	return idx
}
