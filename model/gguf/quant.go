package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"cir/model/safetensors"
)

// Q8_0 stores blocks of 32 values as a float16 scale d and 32 int8 quants q, value = q·d
// (ggml's block_q8_0). Quantizing a block x follows ggml's reference (quantize_row_q8_0_ref),
// in float32: d = max|x|/127, q = round-half-away(x·(1/d)), d stored rounded to float16 (D).
// Each value then comes back within
//
//	|x − q·D| ≤ d/2 + 127·|d − D| ≤ d/2 + 127·max(d·2⁻¹¹, 2⁻²⁵)
//
// (half a step, plus the scale's float16 rounding: relative 2⁻¹¹ for a normal float16, an
// absolute 2⁻²⁵ below 2⁻¹⁴ where float16 is subnormal), up to float32 rounding of x·(1/d).
const q8Block = 32

// Q8Bound is the largest error quantizing a block with maximum magnitude amax to Q8_0 can make
// on one value, as stated above (plus a float32 ulp of amax for the rounding of x·(1/d)).
func Q8Bound(amax float32) float64 {
	d := float64(amax) / 127
	return d/2 + 127*max(d*0x1p-11, 0x1p-25) + float64(amax)*0x1p-23
}

var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = safetensors.F16ToF32(uint16(i))
	}
	return &t
})

// Decode converts the elements of type t stored in src into dst. src must hold exactly
// t.Bytes(len(dst)) bytes, and len(dst) must be a multiple of t's block. F32, F16 and BF16
// convert exactly; Q8_0 is dequantized exactly (q·D is representable in float32). Other types
// give an error wrapping ErrType.
func Decode(dst []float32, t Type, src []byte) error {
	if err := sizes(t, len(dst), len(src)); err != nil {
		return err
	}
	le := binary.LittleEndian
	switch t {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(le.Uint16(src[2*i:])) << 16)
		}
	case F16:
		tab := f16Table()
		for i := range dst {
			dst[i] = tab[le.Uint16(src[2*i:])]
		}
	case Q8_0:
		tab := f16Table()
		for b := 0; b < len(dst)/q8Block; b++ {
			blk := src[34*b : 34*b+34]
			d := tab[le.Uint16(blk)]
			out := dst[q8Block*b : q8Block*b+q8Block]
			for j := range out {
				out[j] = float32(int8(blk[2+j])) * d
			}
		}
	default:
		return fmt.Errorf("gguf: cannot read %v: %w", t, ErrType)
	}
	return nil
}

// Encode converts src into type t's storage in dst, which must hold exactly t.Bytes(len(src))
// bytes (len(src) a multiple of t's block). F16 and BF16 round to nearest even; Q8_0 quantizes
// as ggml's reference does (see Q8Bound) and fails on a block holding Inf or NaN. Other types
// give an error wrapping ErrType.
func Encode(dst []byte, t Type, src []float32) error {
	if err := sizes(t, len(src), len(dst)); err != nil {
		return err
	}
	le := binary.LittleEndian
	switch t {
	case F32:
		for i, v := range src {
			le.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case BF16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], safetensors.F32ToBF16(v))
		}
	case F16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], safetensors.F32ToF16(v))
		}
	case Q8_0:
		for b := 0; b < len(src)/q8Block; b++ {
			if err := quantizeQ8(dst[34*b:34*b+34], src[q8Block*b:q8Block*b+q8Block]); err != nil {
				return fmt.Errorf("gguf: Q8_0 block %d: %w", b, err)
			}
		}
	default:
		return fmt.Errorf("gguf: cannot write %v: %w", t, ErrType)
	}
	return nil
}

// quantizeQ8 quantizes one block of 32 values into 34 bytes.
func quantizeQ8(dst []byte, x []float32) error {
	dst, x = dst[:34], x[:q8Block]
	var amax float32
	bad := false
	for _, v := range x {
		a := math.Float32frombits(math.Float32bits(v) &^ (1 << 31))
		bad = bad || a != a
		if a > amax {
			amax = a
		}
	}
	if bad || amax > math.MaxFloat32 {
		return fmt.Errorf("a value is Inf or NaN, which Q8_0 cannot hold")
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(dst, safetensors.F32ToF16(d))
	for j, v := range x {
		// round half away from zero, without branches: add ±0.5 in float64 (exact, as
		// |v·id| ≤ 127 has 24 significant bits) and truncate.
		y := float64(v * id)
		half := math.Float64frombits(math.Float64bits(y)&(1<<63) | 0x3fe0000000000000)
		dst[2+j] = byte(int8(int32(y + half)))
	}
	return nil
}

func sizes(t Type, elems, nbytes int) error {
	in, ok := types[t]
	if !ok {
		return fmt.Errorf("gguf: %v: %w", t, ErrType)
	}
	if elems%in.block != 0 {
		return fmt.Errorf("gguf: %d values are not a whole number of %v blocks of %d", elems, t, in.block)
	}
	if want := elems / in.block * in.bytes; want != nbytes {
		return fmt.Errorf("gguf: %d values of %v take %d bytes, the buffer has %d", elems, t, want, nbytes)
	}
	return nil
}
