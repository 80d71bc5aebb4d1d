// The loops of the CPU backend over float rows, written so that GCC vectorises them. vec.h
// compiles this file once per instruction set, CIR_V(name) naming each copy; no include guard.

// cir_exp is e^x in float to within about 2 ulp (Cephes expf), 0 below -87.33.
static inline float CIR_V(cir_exp)(float x) {
	int32_t under = x < -87.33f;
	x = __builtin_fmaxf(x, -87.33f);
	x = __builtin_fminf(x, 88.3f);
	float fx = x * 1.44269504088896341f + 0.5f;
	int32_t n = (int32_t)fx;
	n -= (float)n > fx;
	float nf = (float)n;
	float r = x - nf * 0.693359375f - nf * -2.12194440e-4f;
	float p = 1.9875691500e-4f;
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * r * r + r + 1.0f;
	union {
		int32_t i;
		float f;
	} u;
	u.i = (n + 127) << 23;
	return p * u.f * (float)(1 - under);
}

// cir_sum is the sum of x[i], in eight float lanes per block of 256 elements, the blocks added
// in double.
static double CIR_V(cir_sum)(const float *x, int n) {
	double total = 0;
	int i = 0;
	for (; i + 256 <= n; i += 256) {
		float acc[8] = {0};
		for (int j = i; j < i + 256; j += 8) {
			for (int k = 0; k < 8; k++) {
				acc[k] += x[j + k];
			}
		}
		total += ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
	}
	for (; i < n; i++) {
		total += x[i];
	}
	return total;
}

// cir_exp_to sets dst[i] = scale * e^((src[i]-shift)*mul) (dst may be src) and returns the
// sum of the exponentials (cir_sum, before the scaling).
static double CIR_V(cir_exp_to)(float *dst, const float *src, int n, float shift, float mul, float scale) {
	for (int i = 0; i < n; i++) {
		dst[i] = CIR_V(cir_exp)((src[i] - shift) * mul);
	}
	double total = CIR_V(cir_sum)(dst, n);
	if (scale != 1.0f) {
		for (int k = 0; k < n; k++) {
			dst[k] *= scale;
		}
	}
	return total;
}

// cir_swiglu sets out[i] = silu(g[i]) * u[i].
static void CIR_V(cir_swiglu)(float *restrict out, const float *restrict g, const float *restrict u, int n) {
	for (int i = 0; i < n; i++) {
		out[i] = g[i] / (1.0f + CIR_V(cir_exp)(-g[i])) * u[i];
	}
}

// cir_swiglu_back sets dg, du, the gradients through out = silu(g)*u given dout.
static void CIR_V(cir_swiglu_back)(float *restrict dg, float *restrict du, const float *restrict dy, const float *restrict g, const float *restrict u, int n) {
	for (int i = 0; i < n; i++) {
		float x = g[i];
		float s = 1.0f / (1.0f + CIR_V(cir_exp)(-x));
		du[i] = dy[i] * x * s;
		dg[i] = dy[i] * u[i] * s * (1.0f + x * (1.0f - s));
	}
}

// cir_max is the largest of x[0..n), n > 0.
static float CIR_V(cir_max)(const float *x, int n) {
	float acc[8];
	for (int k = 0; k < 8; k++) {
		acc[k] = x[0];
	}
	int i = 0;
	for (; i + 8 <= n; i += 8) {
		for (int k = 0; k < 8; k++) {
			acc[k] = __builtin_fmaxf(acc[k], x[i + k]);
		}
	}
	float m = x[0];
	for (int k = 0; k < 8; k++) {
		m = __builtin_fmaxf(m, acc[k]);
	}
	for (; i < n; i++) {
		m = __builtin_fmaxf(m, x[i]);
	}
	return m;
}

// cir_dot is the sum of x[i]*y[i], in eight float lanes per block of 256, the blocks added in
// double.
static double CIR_V(cir_dot)(const float *x, const float *y, int n) {
	double total = 0;
	int i = 0;
	for (; i + 256 <= n; i += 256) {
		float acc[8] = {0};
		for (int j = i; j < i + 256; j += 8) {
			for (int k = 0; k < 8; k++) {
				acc[k] += x[j + k] * y[j + k];
			}
		}
		total += ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
	}
	for (; i < n; i++) {
		total += (double)x[i] * y[i];
	}
	return total;
}
