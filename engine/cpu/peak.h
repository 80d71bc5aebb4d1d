#include "cpuinfo.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// The FMA loops that measure the CPU's FP32 peak: independent FMA chains, enough to cover the
// FMA latency of two pipes.
// Each returns the floating-point operations done (an FMA counts 2 per lane); a volatile sink
// keeps the chains alive. The chains start from different values so none can be merged.

#define CIR_CHAINS 16
#if defined(__x86_64__)

__attribute__((target("avx512f"))) static double cir_fma_avx512(long iters) {
	__m512 acc[CIR_CHAINS];
	const __m512 x = _mm512_set1_ps(0.9999999f), y = _mm512_set1_ps(1e-7f);
	for (int i = 0; i < CIR_CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
	for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
		for (int i = 0; i < CIR_CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
	}
	__m512 s = acc[0];
	for (int i = 1; i < CIR_CHAINS; i++) s = _mm512_add_ps(s, acc[i]);
	volatile float sink = _mm512_reduce_add_ps(s);
	(void)sink;
	return (double)iters * CIR_CHAINS * 16 * 2;
}

// AVX2 has 16 registers: 12 chains leave room for the constants.
__attribute__((target("avx2,fma"))) static double cir_fma_avx2(long iters) {
	__m256 acc[12];
	const __m256 x = _mm256_set1_ps(0.9999999f), y = _mm256_set1_ps(1e-7f);
	for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps((float)i);
	for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
		for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
	}
	__m256 s = acc[0];
	for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, acc[i]);
	float out[8];
	_mm256_storeu_ps(out, s);
	volatile float sink = out[0];
	(void)sink;
	return (double)iters * 12 * 8 * 2;
}

// Without FMA: a multiply and an add per lane of SSE, the x86-64 baseline.
static double cir_fma_sse(long iters) {
	__m128 acc[12];
	const __m128 x = _mm_set1_ps(0.9999999f), y = _mm_set1_ps(1e-7f);
	for (int i = 0; i < 12; i++) acc[i] = _mm_set1_ps((float)i);
	for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
		for (int i = 0; i < 12; i++) acc[i] = _mm_add_ps(_mm_mul_ps(acc[i], x), y);
	}
	__m128 s = acc[0];
	for (int i = 1; i < 12; i++) s = _mm_add_ps(s, acc[i]);
	float out[4];
	_mm_storeu_ps(out, s);
	volatile float sink = out[0];
	(void)sink;
	return (double)iters * 12 * 4 * 2;
}

#else
static double cir_fma_sse(long iters) {
	float acc[CIR_CHAINS];
	for (int i = 0; i < CIR_CHAINS; i++) acc[i] = (float)i;
	for (long it = 0; it < iters; it++) {
		for (int i = 0; i < CIR_CHAINS; i++) acc[i] = acc[i] * 0.9999999f + 1e-7f;
	}
	float s = 0;
	for (int i = 0; i < CIR_CHAINS; i++) s += acc[i];
	volatile float sink = s;
	(void)sink;
	return (double)iters * CIR_CHAINS * 2;
}
#define cir_fma_avx512 cir_fma_sse
#define cir_fma_avx2 cir_fma_sse
#endif

// cir_fma_loop runs iters iterations of the widest FMA loop the CPU has (features from
// cir_cpu_features) and returns the operations done.
static double cir_fma_loop(int features, long iters) {
	if (features & CIR_AVX512) return cir_fma_avx512(iters);
	if ((features & CIR_AVX2) && (features & CIR_FMA)) return cir_fma_avx2(iters);
	return cir_fma_sse(iters);
}
