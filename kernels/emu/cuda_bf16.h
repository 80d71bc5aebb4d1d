// cuda_bf16.h (emulator): __nv_bfloat16 with the GPU's conversions: float → bf16 rounds to
// nearest even (NaN → the canonical 0x7fff), bf16 → float is exact.
#ifndef CIR_EMU_CUDA_BF16_H
#define CIR_EMU_CUDA_BF16_H
#include <stdint.h>
#include <string.h>
#include "cuda_runtime.h"

struct __nv_bfloat16 {
  unsigned short __x;
};
struct __nv_bfloat162 {
  __nv_bfloat16 x, y;
};

static inline __nv_bfloat16 __float2bfloat16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  __nv_bfloat16 r;
  if ((u & 0x7fffffffu) > 0x7f800000u)
    r.__x = 0x7fff;
  else
    r.__x = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  return r;
}
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __float2bfloat16(f); }
static inline float __bfloat162float(__nv_bfloat16 x) {
  uint32_t u = (uint32_t)x.__x << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static inline float2 __bfloat1622float2(__nv_bfloat162 x) { return float2{__bfloat162float(x.x), __bfloat162float(x.y)}; }
static inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
  return __nv_bfloat162{__float2bfloat16(a), __float2bfloat16(b)};
}
#endif
