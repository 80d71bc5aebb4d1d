// common.cuh: helpers shared by the kernels: typed loads/stores chosen at run time, warp and
// block reductions, grid sizing.
#pragma once
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>
#include "cir.h"

typedef __nv_bfloat16 bf16;

// The launch and the shared-memory declarations, written so that the same source compiles
// under nvcc and under the CPU emulator of kernels/emu (whose cuda_runtime.h defines them with
// per-block shared memory and fibres): CIR_LAUNCH(k, grid, block, smem, stream, args...) is
// k<<<grid, block, smem, stream>>>(args...); CIR_SHARED(T, name, dims) is
// `__shared__ T name dims`; CIR_DYNAMIC_SHARED(T, name) is `extern __shared__ T name[]`.
#ifndef CIR_CUDA_EMU
#define CIR_LAUNCH(kernel, grid, block, smem, stream, ...) kernel<<<grid, block, smem, stream>>>(__VA_ARGS__)
#define CIR_SHARED(T, name, dims) __shared__ T name dims
#define CIR_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif

// ldf loads element i of a float tensor of type dt as fp32.
__device__ __forceinline__ float ldf(const void *p, int dt, size_t i) {
  if (dt == CIR_BF16) return __bfloat162float(((const bf16 *)p)[i]);
  if (dt == CIR_F32) return ((const float *)p)[i];
  return __half2float(((const __half *)p)[i]);
}

// stf stores v into element i of a float tensor of type dt, rounding to nearest even.
__device__ __forceinline__ void stf(void *p, int dt, size_t i, float v) {
  if (dt == CIR_BF16) ((bf16 *)p)[i] = __float2bfloat16(v);
  else if (dt == CIR_F32) ((float *)p)[i] = v;
  else ((__half *)p)[i] = __float2half(v);
}

__device__ __forceinline__ float b2f(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ bf16 f2b(float x) { return __float2bfloat16(x); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// block_sum returns the sum of v over the block (blockDim.x a multiple of 32, at most 1024) to
// every thread. sh: 32 floats of shared memory. Fixed order: deterministic.
__device__ __forceinline__ float block_sum(float v, float *sh) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : 0.f;
  return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float *sh) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : -INFINITY;
  return warp_max(v);
}

// report stores code into *err unless an earlier error is there.
__device__ __forceinline__ void report(int *err, int code) {
  if (err) atomicCAS(err, 0, code);
}

// grid1 is the block count of a grid-stride loop over n elements with bs threads a block.
static inline unsigned grid1(size_t n, int bs) {
  size_t g = (n + bs - 1) / bs;
  if (g < 1) g = 1;
  if (g > 65536) g = 65536;
  return (unsigned)g;
}

#define CIR_LAUNCHED() return cudaGetLastError()
