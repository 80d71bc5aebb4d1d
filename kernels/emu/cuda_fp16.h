// cuda_fp16.h (emulator): __half with the GPU's conversions (round to nearest even, overflow to
// infinity, subnormals kept).
#ifndef CIR_EMU_CUDA_FP16_H
#define CIR_EMU_CUDA_FP16_H
#include <stdint.h>
#include <string.h>

struct __half {
  unsigned short __x;
};

static inline __half __float2half(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  unsigned short h;
  if (a > 0x7f800000u) {
    h = (unsigned short)(sign | 0x7fffu);  // NaN (the GPU's canonical one)
  } else if (a >= 0x477ff000u) {
    h = (unsigned short)(sign | 0x7c00u);  // rounds past 65504: infinity
  } else if (a < 0x38800000u) {
    // subnormal half (or zero): value = m · 2^-24, m rounded to nearest even
    if (a < 0x33000000u) {
      h = (unsigned short)sign;  // below half the smallest subnormal: ±0
    } else {
      uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
      int shift = 126 - (int)e;  // m · 2^(e-150) = q · 2^-24 → q = m >> (126 - e)
      uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
      if (rem > halfway || (rem == halfway && (q & 1))) q++;
      h = (unsigned short)(sign | q);
    }
  } else {
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u);  // round to nearest even at bit 13
    h = (unsigned short)(sign | ((r - 0x38000000u) >> 13));
  }
  __half out;
  out.__x = h;
  return out;
}

static inline float __half2float(__half x) {
  uint32_t h = x.__x, sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
  if (e == 0x1f) {
    u = sign | 0x7f800000u | (m << 13);
  } else if (e == 0) {
    if (m == 0) {
      u = sign;
    } else {
      int k = 0;
      while (!(m & 0x400)) m <<= 1, k++;
      u = sign | ((uint32_t)(113 - k) << 23) | ((m & 0x3ff) << 13);
    }
  } else {
    u = sign | ((e + 112) << 23) | (m << 13);
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}
#endif
