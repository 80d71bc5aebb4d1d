//go:build cuda

package cuda

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Host-side helpers; these run without a GPU.

// TestBF16Bits: the host conversion rounds to the nearest bf16, ties to even, like the device's
// __float2bfloat16, and keeps infinities and NaN.
func TestBF16Bits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100000; i++ {
		x := math.Float32frombits(rng.Uint32())
		if x != x || math.IsInf(float64(x), 0) {
			continue
		}
		h := bf16Bits(x)
		r := float64(bf16Float(h))
		lo, hi := float64(bf16Float(h-1)), float64(bf16Float(h+1))
		d := math.Abs(float64(x) - r)
		if math.IsInf(r, 0) {
			continue // rounded past the largest finite bf16
		}
		if d > math.Abs(float64(x)-lo) || d > math.Abs(float64(x)-hi) {
			t.Fatalf("bf16(%g) = %g, not the nearest (neighbours %g, %g)", x, r, lo, hi)
		}
		if (d == math.Abs(float64(x)-lo) || d == math.Abs(float64(x)-hi)) && h&1 != 0 && d != 0 {
			t.Fatalf("bf16(%g) = %g: a tie not rounded to even", x, r)
		}
	}
	for _, x := range []float32{float32(math.Inf(1)), float32(math.Inf(-1)), 0, -0.0, 1, -2.5} {
		if got := bf16Float(bf16Bits(x)); got != x {
			t.Errorf("bf16 round trip of %g gives %g", x, got)
		}
	}
	if nan := bf16Float(bf16Bits(float32(math.NaN()))); nan == nan {
		t.Error("NaN did not stay NaN")
	}
}

// TestKVSplit: the split of AttentionKV covers every key position once, in chunks of a multiple
// of 128 keys.
func TestKVSplit(t *testing.T) {
	b := &Backend{info: Info{SMs: 132}}
	for _, c := range [][3]int{{1, 1, 1}, {1, 2, 4096}, {64, 2, 4096}, {3, 4, 300}, {1, 1, 129}, {200, 8, 32768}} {
		N, Hkv, T := c[0], c[1], c[2]
		ns, chunk := b.kvSplit(N, Hkv, T)
		if ns < 1 || chunk%128 != 0 || ns*chunk < T || (ns-1)*chunk >= T {
			t.Errorf("N=%d Hkv=%d T=%d: %d splits of %d keys", N, Hkv, T, ns, chunk)
		}
	}
}
