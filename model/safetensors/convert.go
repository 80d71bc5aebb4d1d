package safetensors

import "math"

// BF16ToF32 widens a bfloat16 (as its bit pattern) to float32; it is exact for every pattern,
// NaN payloads included (bfloat16 is the top half of a float32).
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 rounds f to the nearest bfloat16, ties to even, and returns its bit pattern. Values
// beyond the largest finite bfloat16 round to ±Inf; a NaN stays a NaN of the same sign, quiet,
// keeping the top 7 bits of its payload.
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN
		return uint16(b>>16) | 0x0040
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// F16ToF32 widens an IEEE 754 binary16 (as its bit pattern) to float32; it is exact for every
// pattern: subnormals, ±0, ±Inf, and NaNs with their payload.
func F16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: value = mant * 2^-24; normalise so that bit 10 is the implicit one.
	e := uint32(127 - 14)
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
}

// F32ToF16 rounds f to the nearest IEEE 754 binary16, ties to even, and returns its bit pattern.
// Magnitudes that round past 65504 become ±Inf, tiny ones become subnormals or ±0; a NaN stays a
// quiet NaN of the same sign keeping the top 9 bits of its payload.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15 // biased binary16 exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal result: the significand with its implicit bit, shifted to units of 2^-24.
		shift := uint(14 - e)
		if shift > 24 {
			return sign
		}
		return sign | uint16(roundShift(mant|0x800000, shift))
	}
	out := uint32(e)<<10 | mant>>13
	r := mant & 0x1fff
	if r > 0x1000 || (r == 0x1000 && out&1 == 1) {
		out++ // may carry into the exponent, up to 0x7c00 (Inf): both are correct
	}
	return sign | uint16(out)
}

// roundShift is m >> shift rounded to nearest, ties to even (1 <= shift <= 31).
func roundShift(m uint32, shift uint) uint32 {
	out := m >> shift
	r := m & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if r > half || (r == half && out&1 == 1) {
		out++
	}
	return out
}
