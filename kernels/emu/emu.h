// emu.h: the emulator runtime's internals shared by runtime.cc, cublaslt.cc and nccl.cc.
#ifndef CIR_EMU_EMU_H
#define CIR_EMU_EMU_H
#include <stddef.h>
#include <stdint.h>
#include "cuda_runtime_api.h"

namespace cir_emu {
// report prints a finding of the emulator on stderr and counts it (cir_emu_findings).
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// set_error records e as the calling thread's last error (the first one until it is read).
cudaError_t set_error(cudaError_t e);
int current_device();
// device_of returns the device of the live device allocation holding [p, p+n), or -1 (also
// when [p, p+n) runs past the end of it); host is set for page-locked host memory.
int device_of(const void *p, size_t n, bool *host = nullptr);
}  // namespace cir_emu

#endif
