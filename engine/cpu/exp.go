package cpu

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
