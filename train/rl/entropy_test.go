package rl

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestEntropy(t *testing.T) {
	tests := []struct {
		logits []float32
		want   float64
	}{
		{[]float32{0, 0}, math.Ln2},
		{[]float32{5, 5, 5, 5}, math.Log(4)},
		{[]float32{0, float32(math.Log(3))}, -(0.25*math.Log(0.25) + 0.75*math.Log(0.75))},
		{[]float32{1000, 0}, 0},
		{[]float32{7}, 0},
		{nil, 0},
	}
	for _, tc := range tests {
		if got := Entropy(tc.logits, 0, nil); math.Abs(got-tc.want) > 1e-6 {
			t.Errorf("Entropy(%v) = %.9g, want %.9g", tc.logits, got, tc.want)
		}
	}
	// Gradient against central differences in float64.
	r := rand.New(rand.NewPCG(3, 4))
	z := make([]float32, 9)
	for i := range z {
		z[i] = float32(2 * r.NormFloat64())
	}
	const scale = -0.3
	g := make([]float32, len(z))
	Entropy(z, scale, g)
	var maxErr float64
	for j := range z {
		x := z[j]
		const h = 1e-2
		z[j] = x + h
		hp := Entropy(z, 0, nil)
		z[j] = x - h
		hm := Entropy(z, 0, nil)
		z[j] = x
		fd := scale * (hp - hm) / (float64(x+h) - float64(x-h))
		maxErr = max(maxErr, math.Abs(fd-float64(g[j])))
	}
	if maxErr > 1e-4 {
		t.Errorf("entropy gradient vs finite differences: max abs error %.3g", maxErr)
	}
}
