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

// sum64 is Σ x, in float32 over blocks of 64 elements (four lanes) added up in float64.
func sum64(x []float32) float64 {
	var s float64
	for len(x) >= 64 {
		var a, b, c, d float32
		for i := 0; i < 64; i += 4 {
			a += x[i]
			b += x[i+1]
			c += x[i+2]
			d += x[i+3]
		}
		s += float64((a + b) + (c + d))
		x = x[64:]
	}
	for _, v := range x {
		s += float64(v)
	}
	return s
}

// dot64 is Σ x·y, in float32 over blocks of 64 elements (four lanes) added up in float64.
func dot64(x, y []float32) float64 {
	y = y[:len(x)]
	var s float64
	for len(x) >= 64 {
		var a, b, c, d float32
		yy := y[:64]
		for i := 0; i < 64; i += 4 {
			a += x[i] * yy[i]
			b += x[i+1] * yy[i+1]
			c += x[i+2] * yy[i+2]
			d += x[i+3] * yy[i+3]
		}
		s += float64((a + b) + (c + d))
		x, y = x[64:], y[64:]
	}
	for i, v := range x {
		s += float64(v) * float64(y[i])
	}
	return s
}

// maxOf is the largest element of x (x not empty).
func maxOf(x []float32) float32 {
	m0, m1, m2, m3 := x[0], x[0], x[0], x[0]
	i := 0
	for ; i+4 <= len(x); i += 4 {
		m0 = max(m0, x[i])
		m1 = max(m1, x[i+1])
		m2 = max(m2, x[i+2])
		m3 = max(m3, x[i+3])
	}
	for ; i < len(x); i++ {
		m0 = max(m0, x[i])
	}
	return max(max(m0, m1), max(m2, m3))
}
