#pragma once
// CPU identification: the features that decide the GEMM kernels and the FMA loop, the brand
// string, family and model.
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

// The x86-64 features that decide the kernels (gcc's CPUID reader, which also checks that the
// OS saves the AVX / AVX-512 registers). Bits: 1 AVX, 2 AVX2, 4 FMA, 8 AVX-512 F+CD+BW+DQ+VL.
enum { CIR_AVX = 1, CIR_AVX2 = 2, CIR_FMA = 4, CIR_AVX512 = 8 };
#if defined(__x86_64__)
static int cir_cpu_features(void) {
	__builtin_cpu_init();
	int f = 0;
	if (__builtin_cpu_supports("avx")) f |= CIR_AVX;
	if (__builtin_cpu_supports("avx2")) f |= CIR_AVX2;
	if (__builtin_cpu_supports("fma")) f |= CIR_FMA;
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
	    __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
	    __builtin_cpu_supports("avx512vl"))
		f |= CIR_AVX512;
	return f;
}

// cir_cpu_id writes the CPUID brand string (48 bytes and a NUL) and the display family and model.
static void cir_cpu_id(char *brand, int *family, int *model) {
	unsigned a, b, c, d;
	memset(brand, 0, 49);
	if (__get_cpuid_max(0x80000000, NULL) >= 0x80000004) {
		for (unsigned i = 0; i < 3; i++) {
			__get_cpuid(0x80000002 + i, &a, &b, &c, &d);
			memcpy(brand + 16 * i, &a, 4);
			memcpy(brand + 16 * i + 4, &b, 4);
			memcpy(brand + 16 * i + 8, &c, 4);
			memcpy(brand + 16 * i + 12, &d, 4);
		}
	}
	*family = *model = 0;
	if (__get_cpuid(1, &a, &b, &c, &d)) {
		unsigned fam = (a >> 8) & 0xf, mod = (a >> 4) & 0xf;
		if (fam == 0xf) fam += (a >> 20) & 0xff;
		if (fam == 0x6 || fam >= 0xf) mod += ((a >> 16) & 0xf) << 4;
		*family = (int)fam;
		*model = (int)mod;
	}
}
#else
static int cir_cpu_features(void) { return 0; }
static void cir_cpu_id(char *brand, int *family, int *model) {
	memset(brand, 0, 49);
	*family = *model = 0;
}
#endif
