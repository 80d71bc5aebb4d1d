// selftest.cu: small kernels with the bugs the emulator must report, each behind one launcher
// (cir_emu_selftest), for engine/cuda's TestEmulatorFindsBugs. Compiled into the emulator's
// library only, with the same flags as kernels/*.cu.
#include "../common.cuh"
#include "selftest.h"

#define FULL 0xffffffffu

// Block of 64 threads; sh has 64 floats.
__global__ void selftest_kernel(float *out, int bug) {
  CIR_SHARED(float, sh, [64]);
  const int tid = threadIdx.x, lane = tid & 31;
  float v = (float)tid;
  switch (bug) {
    case CIR_SELFTEST_NONE:  // correct: write, barrier, read another warp's value, warp sum
      sh[tid] = v;
      __syncthreads();
      v = sh[(tid + 32) % 64];
      v = __shfl_xor_sync(FULL, v, 1);
      break;
    case CIR_SELFTEST_UNWRITTEN:  // half the threads write; everyone reads the other half
      if (tid < 32) sh[tid] = v;
      __syncthreads();
      v = sh[63 - tid];
      break;
    case CIR_SELFTEST_RACE:  // no barrier between another warp's write and the read
      sh[tid] = v;
      v = sh[(tid + 32) % 64];
      break;
    case CIR_SELFTEST_WAR:  // another warp overwrites what was read, without a barrier
      sh[tid] = v;
      __syncthreads();
      v = sh[(tid + 32) % 64];
      sh[tid] = 0.f;
      break;
    case CIR_SELFTEST_DIVERGENT_BARRIER:
      sh[tid] = v;
      if (tid < 16) __syncthreads();
      break;
    case CIR_SELFTEST_EXITED_BARRIER:
      if (tid == 5) return;
      __syncthreads();
      break;
    case CIR_SELFTEST_WARP_MISSING_LANE:
      if (lane != 7) v = __shfl_xor_sync(FULL, v, 1);
      break;
    case CIR_SELFTEST_SHARED_OOB:
      sh[tid + 1] = v;
      break;
  }
  out[tid] = v;
}

__global__ void selftest_dynamic_kernel(float *out) {
  CIR_DYNAMIC_SHARED(float, dyn);
  dyn[threadIdx.x] = 1.f;
  out[threadIdx.x] = dyn[threadIdx.x];
}

extern "C" cudaError_t cir_emu_selftest(float *out, int bug, cudaStream_t s) {
  if (bug == CIR_SELFTEST_SMEM_LIMIT) {
    CIR_LAUNCH(selftest_dynamic_kernel, 1, 64, 64 * 1024, s, out);  // above 48 KiB without the attribute
    CIR_LAUNCHED();
  }
  CIR_LAUNCH(selftest_kernel, 1, 64, 0, s, out, bug);
  CIR_LAUNCHED();
}
