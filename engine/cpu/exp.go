package cpu

import "math"

// exp32 is e^x in float32 to within about 2 ulp (Cephes expf): range reduction by ln 2 in two
// parts and a degree-6 polynomial. It returns 0 below -87.3 and +Inf above 88.7.
func exp32(x float32) float32 {
	if x < -87.33 {
		return 0
	}
	if x > 88.72 {
		return float32(math.Inf(1))
	}
	fn := x*1.44269504088896341 + 0.5
	n := int32(fn)
	if fn < 0 && float32(n) != fn {
		n-- // floor
	}
	nf := float32(n)
	r := x - nf*0.693359375 - nf*-2.12194440e-4
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	p = p*r*r + r + 1
	if n > 127 { // x in (88.38, 88.72]: 2^n overflows the exponent, so scale twice.
		return p * 2 * math.Float32frombits(uint32(n-1+127)<<23)
	}
	if n < -126 {
		return p * 0.5 * math.Float32frombits(uint32(n+1+127)<<23)
	}
	return p * math.Float32frombits(uint32(n+127)<<23)
}

// expTo sets dst[i] = e^((src[i]-shift)·mul) (exp32 inlined into one loop, so the constants
// stay in registers and iterations overlap) and returns Σ dst in float64.
func expTo(dst, src []float32, shift, mul float32) float64 {
	src = src[:len(dst)]
	var s0, s1 float64
	for i, v := range src {
		x := (v - shift) * mul
		var e float32
		if x >= -87.33 {
			x = min(x, 88.3)
			fn := x*1.44269504088896341 + 0.5
			n := int32(fn)
			if fn < 0 && float32(n) != fn {
				n--
			}
			nf := float32(n)
			r := x - nf*0.693359375 - nf*-2.12194440e-4
			p := float32(1.9875691500e-4)
			p = p*r + 1.3981999507e-3
			p = p*r + 8.3334519073e-3
			p = p*r + 4.1665795894e-2
			p = p*r + 1.6666665459e-1
			p = p*r + 5.0000001201e-1
			p = p*r*r + r + 1
			e = p * math.Float32frombits(uint32(n+127)<<23)
		}
		dst[i] = e
		if i&1 == 0 {
			s0 += float64(e)
		} else {
			s1 += float64(e)
		}
	}
	return s0 + s1
}
