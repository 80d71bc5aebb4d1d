/* selftest.h: the bugs of kernels/emu/selftest.cu. */
#ifndef CIR_EMU_SELFTEST_H
#define CIR_EMU_SELFTEST_H
#include "cuda_runtime_api.h"
enum {
  CIR_SELFTEST_NONE = 0,
  CIR_SELFTEST_UNWRITTEN,
  CIR_SELFTEST_RACE,
  CIR_SELFTEST_WAR,
  CIR_SELFTEST_DIVERGENT_BARRIER,
  CIR_SELFTEST_EXITED_BARRIER,
  CIR_SELFTEST_WARP_MISSING_LANE,
  CIR_SELFTEST_SHARED_OOB,
  CIR_SELFTEST_SMEM_LIMIT,
  CIR_SELFTEST_COUNT
};
#ifdef __cplusplus
extern "C" {
#endif
/* out: 64 floats of device memory. */
cudaError_t cir_emu_selftest(float *out, int bug, cudaStream_t s);
#ifdef __cplusplus
}
#endif
#endif
