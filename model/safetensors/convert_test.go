package safetensors

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// f16Ref decodes a binary16 bit pattern into float64 from the IEEE 754 definition, independently
// of F16ToF32.
func f16Ref(h uint16) float64 {
	s := 1.0
	if h&0x8000 != 0 {
		s = -1
	}
	e, m := int(h>>10&0x1f), float64(h&0x3ff)
	switch e {
	case 0:
		return s * math.Ldexp(m, -24)
	case 31:
		if m == 0 {
			return math.Inf(int(s))
		}
		return math.NaN()
	}
	return s * math.Ldexp(1024+m, e-25)
}

func TestF16ToF32Exhaustive(t *testing.T) {
	bad := 0
	for i := range 1 << 16 {
		h := uint16(i)
		got, want := F16ToF32(h), f16Ref(h)
		gb := math.Float32bits(got)
		ok := float64(got) == want && math.Signbit(float64(got)) == math.Signbit(want)
		if math.IsNaN(want) {
			// NaN: sign kept, payload moved to the top of the float32 mantissa.
			ok = math.IsNaN(float64(got)) && gb>>31 == uint32(h>>15) && gb&0x7fffff == uint32(h&0x3ff)<<13
		}
		if !ok {
			if bad++; bad <= 5 {
				t.Errorf("F16ToF32(%#04x) = %v (%#08x), want %v", h, got, gb, want)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of 65536 patterns wrong", bad)
	}
}

func TestBF16ToF32Exhaustive(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		// bfloat16 is float32's sign, 8-bit exponent and top 7 mantissa bits.
		s, e, m := float64(1), int(h>>7&0xff), float64(h&0x7f)
		if h&0x8000 != 0 {
			s = -1
		}
		var want float64
		switch e {
		case 0:
			want = s * math.Ldexp(m, -133)
		case 255:
			want = math.Inf(int(s))
			if m != 0 {
				want = math.NaN()
			}
		default:
			want = s * math.Ldexp(128+m, e-134)
		}
		got := BF16ToF32(h)
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) || math.Float32bits(got) != uint32(h)<<16 {
				t.Fatalf("BF16ToF32(%#04x) = %#08x, want the NaN %#08x", h, math.Float32bits(got), uint32(h)<<16)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Fatalf("BF16ToF32(%#04x) = %v, want %v", h, got, want)
		}
	}
}

// TestRoundingTies checks F32ToF16 and F32ToBF16 at every midpoint between consecutive
// representable values (ties go to the even pattern) and one float32 ulp either side of it.
func TestRoundingTies(t *testing.T) {
	cases := []struct {
		name   string
		toF32  func(uint16) float32
		fromF  func(float32) uint16
		maxPos uint16 // largest finite positive pattern
	}{
		{"F16", F16ToF32, F32ToF16, 0x7bff},
		{"BF16", BF16ToF32, F32ToBF16, 0x7f7f},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, sign := range []uint16{0, 0x8000} {
				for h := uint16(0); h < c.maxPos; h++ {
					lo, hi := sign|h, sign|(h+1)
					a, b := float64(c.toF32(lo)), float64(c.toF32(hi))
					mid := float32((a + b) / 2) // exact: one more significand bit than the format
					if float64(mid) != (a+b)/2 {
						t.Fatalf("midpoint of %#04x and %#04x not exact in float32", lo, hi)
					}
					even := lo
					if lo&1 == 1 {
						even = hi
					}
					below := math.Nextafter32(mid, float32(a))
					above := math.Nextafter32(mid, float32(b))
					if g := c.fromF(mid); g != even {
						t.Fatalf("%s(%v) tie between %#04x and %#04x gave %#04x, want %#04x", c.name, mid, lo, hi, g, even)
					}
					if g := c.fromF(below); g != lo {
						t.Fatalf("%s(%v) gave %#04x, want %#04x", c.name, below, g, lo)
					}
					if g := c.fromF(above); g != hi {
						t.Fatalf("%s(%v) gave %#04x, want %#04x", c.name, above, g, hi)
					}
					if g := c.fromF(float32(a)); g != lo && !(a == 0 && g&0x7fff == 0) {
						t.Fatalf("%s(%v) gave %#04x, want %#04x exactly", c.name, a, g, lo)
					}
				}
				// Past the largest finite value: the tie with the next (infinite) step rounds
				// to Inf, anything below it to the maximum.
				top := float64(c.toF32(sign | c.maxPos))
				ulp := top - float64(c.toF32(sign|(c.maxPos-1)))
				inf := sign | 0x7c00
				if c.name == "BF16" {
					inf = sign | 0x7f80
				}
				if g := c.fromF(float32(top + ulp/2)); g != inf {
					t.Errorf("%s(%v) gave %#04x, want Inf %#04x", c.name, top+ulp/2, g, inf)
				}
				if g := c.fromF(math.Nextafter32(float32(top+ulp/2), 0)); g != sign|c.maxPos {
					t.Errorf("%s just below the overflow threshold gave %#04x, want %#04x", c.name, g, sign|c.maxPos)
				}
			}
		})
	}
}

func TestSpecialValues(t *testing.T) {
	nan := math.Float32frombits(0x7fc12345)
	snan := math.Float32frombits(0xff812345)
	cases := []struct {
		in        float32
		f16, bf16 uint16
	}{
		{0, 0, 0},
		{float32(math.Copysign(0, -1)), 0x8000, 0x8000},
		{float32(math.Inf(1)), 0x7c00, 0x7f80},
		{float32(math.Inf(-1)), 0xfc00, 0xff80},
		{1, 0x3c00, 0x3f80},
		{-2, 0xc000, 0xc000},
		{65504, 0x7bff, 0x4780},
		{1e6, 0x7c00, 0x4974},
		{math.MaxFloat32, 0x7c00, 0x7f80},
		{math.Float32frombits(1), 0, 0}, // float32 subnormals vanish in f16; bf16 rounds to even 0
		{float32(math.Ldexp(1, -24)), 1, 0x3380},
		{float32(math.Ldexp(1, -25)), 0, 0x3300},                  // tie between 0 and 2^-24: even is 0
		{float32(math.Ldexp(1.5, -25)), 1, 0x3340},                // above the tie
		{float32(math.Ldexp(3, -25)), 2, 0x33c0},                  // tie between 1 and 2 (units of 2^-24)
		{float32(math.Ldexp(1023, -24)), 0x3ff, 0x3880},           // largest subnormal; bf16 rounds up
		{float32(math.Ldexp(2047, -25)), 0x400, 0x3880},           // tie, rounds up into the normals
		{nan, 0x7e00 | 0x412345>>13, 0x7fc1},                      // quiet NaN, payload kept
		{snan, 0xfe00 | 0x012345>>13, 0xff81 | 0x40},              // signalling NaN made quiet
		{math.Float32frombits(0x7f800001), 0x7e00, 0x7f80 | 0x40}, // payload only in low bits
	}
	for _, c := range cases {
		if g := F32ToF16(c.in); g != c.f16 {
			t.Errorf("F32ToF16(%v = %#08x) = %#04x, want %#04x", c.in, math.Float32bits(c.in), g, c.f16)
		}
		if g := F32ToBF16(c.in); g != c.bf16 {
			t.Errorf("F32ToBF16(%v = %#08x) = %#04x, want %#04x", c.in, math.Float32bits(c.in), g, c.bf16)
		}
	}
}

// refInputs are float32 patterns for the NumPy/PyTorch comparisons: edge cases and random
// patterns over the whole range, concentrated where the 16-bit formats live.
func refInputs() []float32 {
	xs := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 65504, 65519.99, 65520, 1e-8, 6e-8, 3e-8,
		float32(math.Inf(1)), float32(math.Inf(-1)), math.MaxFloat32, math.SmallestNonzeroFloat32}
	r := rand.New(rand.NewPCG(7, 11))
	for range 100000 {
		xs = append(xs, math.Float32frombits(r.Uint32()))
	}
	for range 100000 {
		// exponents within a few binades of f16's range, random mantissa bits
		e := uint32(127 - 30 + r.IntN(50))
		xs = append(xs, math.Float32frombits(r.Uint32()&0x807fffff|e<<23))
	}
	return xs
}

// TestAgainstNumPyAndTorch compares F32ToF16 with numpy.float16 and F32ToBF16 with
// torch.bfloat16 on /usr/bin/python3, for every non-NaN input (NaN encodings differ by design:
// both must give a NaN).
func TestAgainstNumPyAndTorch(t *testing.T) {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import numpy, torch").Run(); err != nil {
		t.Skipf("%s with numpy and torch not available: %v", py, err)
	}
	xs := refInputs()
	dir := t.TempDir()
	in := make([]byte, 4*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint32(in[4*i:], math.Float32bits(x))
	}
	if err := os.WriteFile(filepath.Join(dir, "in.f32"), in, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `
import sys, numpy as np, torch
d = sys.argv[1]
x = np.fromfile(d + "/in.f32", dtype="<f4")
with np.errstate(over="ignore"):
    x.astype("<f2").view("<u2").tofile(d + "/out.f16")
torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy().view("<u2").tofile(d + "/out.bf16")
`
	if out, err := exec.Command(py, "-c", script, dir).CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	for _, c := range []struct {
		file string
		conv func(float32) uint16
		dec  func(uint16) float32
	}{{"out.f16", F32ToF16, F16ToF32}, {"out.bf16", F32ToBF16, BF16ToF32}} {
		ref, err := os.ReadFile(filepath.Join(dir, c.file))
		if err != nil {
			t.Fatal(err)
		}
		if len(ref) != 2*len(xs) {
			t.Fatalf("%s: %d bytes, want %d", c.file, len(ref), 2*len(xs))
		}
		bad := 0
		for i, x := range xs {
			want := binary.LittleEndian.Uint16(ref[2*i:])
			got := c.conv(x)
			if x != x {
				if g := c.dec(got); g == g {
					t.Errorf("%s: NaN %#08x converted to non-NaN %#04x", c.file, math.Float32bits(x), got)
				}
				continue
			}
			if got != want {
				if bad++; bad <= 5 {
					t.Errorf("%s: input %v (%#08x): got %#04x, reference %#04x", c.file, x, math.Float32bits(x), got, want)
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d differ", c.file, bad, len(xs))
		}
	}
}
