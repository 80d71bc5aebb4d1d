/* dl.h (emulator): forced into every kernel source (-include). The emulator stands in for the
 * dynamic loader of the two vendor libraries that kernels/gemm.cu and kernels/nccl.cu open:
 * dlopen("libcublasLt.so.*") and dlopen("libnccl.so.2") return the emulator's CPU
 * implementations (kernels/emu/cublaslt.cc, nccl.cc), every other name fails. */
#ifndef CIR_EMU_DL_H
#define CIR_EMU_DL_H
#define dlopen cir_emu_dlopen
#define dlsym cir_emu_dlsym
#define dlclose cir_emu_dlclose
#endif
