// cuda_runtime.h (emulator): the CUDA execution model on the CPU, for kernels/*.cu compiled by
// the host C++ compiler (`make test-cuda-emu`). The kernels are the real sources; this header
// gives them what nvcc would:
//
//   - __global__/__device__/__forceinline__/__launch_bounds__ as plain C++;
//   - threadIdx, blockIdx, blockDim, gridDim: the running CUDA thread's values;
//   - CIR_LAUNCH(kernel, grid, block, smem, stream, args...): the `<<<>>>` launch. The blocks of
//     a grid run one after another (in reverse order, so a kernel that relies on block order
//     shows it); the threads of a block are cooperative fibres on the launching OS thread, each
//     running until it reaches __syncthreads, a warp operation or its end;
//   - __syncthreads: releases the block when every thread of it waits at the same barrier; a
//     barrier that some threads never reach (they exited, or wait elsewhere) is reported;
//   - warp operations (__shfl_*_sync, __ballot_sync, __any_sync, __all_sync, __syncwarp): the
//     lanes of the mask meet, lock-step, and each gets its result; a lane of the mask that is
//     missing is reported;
//   - CIR_SHARED / CIR_DYNAMIC_SHARED: per-block __shared__ memory (static and extern) carved
//     from one arena per launch. Every load and store of the kernels goes through
//     kernels/emu/runtime.cc (the objects are compiled with AddressSanitizer's outline checks,
//     renamed to the emulator's), which keeps a shadow of the arena: a read of bytes no thread of
//     the block wrote since the launch, a read or write racing with another warp's write or read
//     between two barriers, and an access outside every shared variable are reported;
//   - atomics (sequentially consistent: the threads of a block are never concurrent);
//   - bf16/half types and intrinsics with the GPU's rounding (cuda_bf16.h, cuda_fp16.h), and
//     the fast-math intrinsics (__expf as the GPU's ex2.approx of x·log2 e, flushing denormals).
//
// Not modelled: timing, memory coalescing and bank conflicts, concurrency between blocks and
// between streams, tensor-core instructions, the GPU's memory model beyond barriers (the
// emulated threads never run at the same time), register limits and __launch_bounds__.
#ifndef CIR_EMU_CUDA_RUNTIME_H
#define CIR_EMU_CUDA_RUNTIME_H
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <float.h>
#include <tuple>
#include <type_traits>
#include <utility>
#include "cuda_runtime_api.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __restrict__ __restrict
// Shared memory is declared with CIR_SHARED / CIR_DYNAMIC_SHARED (kernels/common.cuh): a bare
// __shared__ would be one variable for every block.
#define __shared__ cir_emu_declare_shared_memory_with_CIR_SHARED
static constexpr int warpSize = 32;

struct uint3 {
  unsigned int x, y, z;
};
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
struct float2 {
  float x, y;
};
struct int2 {
  int x, y;
};

// The emulator is linked into executables: its thread-locals need no __tls_get_addr.
#define CIR_EMU_TLS __thread __attribute__((tls_model("initial-exec")))

namespace cir_emu {

// The running CUDA thread and block (set by the scheduler at every switch).
extern CIR_EMU_TLS uint3 t_threadIdx;
extern CIR_EMU_TLS uint3 t_blockIdx;
extern CIR_EMU_TLS dim3 t_blockDim;
extern CIR_EMU_TLS dim3 t_gridDim;
extern CIR_EMU_TLS int t_atomic;  // inside an atomic: shared accesses are not races

void syncthreads(const char *file, int line);
enum WarpOp { kShflIdx, kShflXor, kShflUp, kShflDown, kBallot, kAny, kAll, kSyncWarp };
uint64_t warp_op(int op, unsigned mask, uint64_t value, int arg, int width, const char *file, int line);
void *shared_static(const void *site, size_t bytes, size_t align, const char *name);
void *shared_dynamic();

// A launch: the kernel's name and address, the configuration, and the closure that runs the
// kernel with its arguments in the calling thread.
struct Launch {
  const char *name;
  const void *fn;
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  void (*run)(void *);
  void *call;
};
cudaError_t launch(const Launch &l);
// check_arg reports a pointer argument that is neither null nor inside a live allocation of
// the current device (host memory, another device's memory, freed memory).
bool check_arg(const char *kernel, int index, const void *p);
cudaError_t func_set_attribute(const void *fn, int attr, int value);

template <class... P>
struct Call {
  void (*fn)(P...);
  std::tuple<P...> args;
  static void run(void *self) {
    Call *c = static_cast<Call *>(self);
    std::apply(c->fn, c->args);
  }
};

template <size_t I = 0, class T>
bool check_args(const char *name, const T &tup) {
  if constexpr (I == std::tuple_size<T>::value) {
    return true;
  } else {
    bool ok = true;
    if constexpr (std::is_pointer<std::tuple_element_t<I, T>>::value)
      ok = check_arg(name, (int)I, (const void *)std::get<I>(tup));
    return check_args<I + 1>(name, tup) && ok;
  }
}

template <class... P, class... A>
cudaError_t launch_kernel(const char *name, void (*fn)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                          A &&...a) {
  Call<P...> c{fn, std::tuple<P...>(std::forward<A>(a)...)};
  if (!check_args(name, c.args)) return launch(Launch{name, (const void *)fn, grid, block, smem, s, nullptr, nullptr});
  return launch(Launch{name, (const void *)fn, grid, block, smem, s, &Call<P...>::run, &c});
}

template <class T>
inline uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8, "warp operations on values of at most 8 bytes");
  uint64_t u = 0;
  memcpy(&u, &v, sizeof v);
  return u;
}
template <class T>
inline T from_bits(uint64_t u) {
  T v;
  memcpy(&v, &u, sizeof v);
  return v;
}

}  // namespace cir_emu

#define threadIdx (cir_emu::t_threadIdx)
#define blockIdx (cir_emu::t_blockIdx)
#define blockDim (cir_emu::t_blockDim)
#define gridDim (cir_emu::t_gridDim)

// The launch that compiles under nvcc (kernels/common.cuh) and here.
#define CIR_LAUNCH(kernel, grid, block, smem, stream, ...) \
  cir_emu::launch_kernel(#kernel, kernel, dim3(grid), dim3(block), smem, stream, __VA_ARGS__)

// Static __shared__ T name dims; (dims may be empty): a reference into the block's arena,
// laid out on first use in a launch.
#define CIR_SHARED(T, name, dims)                                                                   \
  static const char cir_emu_site_##name = 0;                                                        \
  std::add_lvalue_reference_t<T dims> name = *reinterpret_cast<std::add_pointer_t<T dims>>(          \
      cir_emu::shared_static(&cir_emu_site_##name, sizeof(T dims), alignof(T), #name))
// extern __shared__ T name[]; the dynamic shared memory of the launch.
#define CIR_DYNAMIC_SHARED(T, name) T *const name = reinterpret_cast<T *>(cir_emu::shared_dynamic())

#define __syncthreads() cir_emu::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...) (void)cir_emu::warp_op(cir_emu::kSyncWarp, cir_emu_mask_or_all(__VA_ARGS__), 0, 0, 32, __FILE__, __LINE__)
static inline unsigned cir_emu_mask_or_all(unsigned m = 0xffffffffu) { return m; }

#define __shfl_sync(mask, v, lane, ...) cir_emu_shfl(cir_emu::kShflIdx, mask, v, lane, __FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_xor_sync(mask, v, m, ...) cir_emu_shfl(cir_emu::kShflXor, mask, v, m, __FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_up_sync(mask, v, d, ...) cir_emu_shfl(cir_emu::kShflUp, mask, v, d, __FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_down_sync(mask, v, d, ...) cir_emu_shfl(cir_emu::kShflDown, mask, v, d, __FILE__, __LINE__, ##__VA_ARGS__)
#define __ballot_sync(mask, p) ((unsigned)cir_emu::warp_op(cir_emu::kBallot, mask, (p) != 0, 0, 32, __FILE__, __LINE__))
#define __any_sync(mask, p) ((int)cir_emu::warp_op(cir_emu::kAny, mask, (p) != 0, 0, 32, __FILE__, __LINE__))
#define __all_sync(mask, p) ((int)cir_emu::warp_op(cir_emu::kAll, mask, (p) != 0, 0, 32, __FILE__, __LINE__))

template <class T>
inline T cir_emu_shfl(int op, unsigned mask, T v, int arg, const char *file, int line, int width = 32) {
  return cir_emu::from_bits<T>(cir_emu::warp_op(op, mask, cir_emu::to_bits(v), arg, width, file, line));
}

template <class T>
inline cudaError_t cudaFuncSetAttribute(T *fn, enum cudaFuncAttribute attr, int value) {
  return cir_emu::func_set_attribute((const void *)fn, (int)attr, value);
}

// ---- atomics: a read-modify-write that no other thread of the block can interleave ----
struct cir_emu_atomic_scope {
  cir_emu_atomic_scope() { cir_emu::t_atomic++; }
  ~cir_emu_atomic_scope() { cir_emu::t_atomic--; }
};
#define CIR_EMU_RMW(T, expr) \
  cir_emu_atomic_scope s_;   \
  T old = *p;                \
  *p = (expr);               \
  return old
__device__ inline int atomicAdd(int *p, int v) { CIR_EMU_RMW(int, (int)((unsigned)old + (unsigned)v)); }
__device__ inline unsigned atomicAdd(unsigned *p, unsigned v) { CIR_EMU_RMW(unsigned, old + v); }
__device__ inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) { CIR_EMU_RMW(unsigned long long, old + v); }
__device__ inline float atomicAdd(float *p, float v) { CIR_EMU_RMW(float, old + v); }
__device__ inline double atomicAdd(double *p, double v) { CIR_EMU_RMW(double, old + v); }
__device__ inline int atomicMax(int *p, int v) { CIR_EMU_RMW(int, old > v ? old : v); }
__device__ inline unsigned atomicMax(unsigned *p, unsigned v) { CIR_EMU_RMW(unsigned, old > v ? old : v); }
__device__ inline int atomicMin(int *p, int v) { CIR_EMU_RMW(int, old < v ? old : v); }
__device__ inline unsigned atomicMin(unsigned *p, unsigned v) { CIR_EMU_RMW(unsigned, old < v ? old : v); }
__device__ inline int atomicExch(int *p, int v) { CIR_EMU_RMW(int, v); }
__device__ inline float atomicExch(float *p, float v) { CIR_EMU_RMW(float, v); }
__device__ inline int atomicCAS(int *p, int cmp, int v) { CIR_EMU_RMW(int, old == cmp ? v : old); }
__device__ inline unsigned atomicCAS(unsigned *p, unsigned cmp, unsigned v) { CIR_EMU_RMW(unsigned, old == cmp ? v : old); }
#undef CIR_EMU_RMW

// ---- integer and float helpers of the CUDA math library ----
__device__ inline int min(int a, int b) { return a < b ? a : b; }
__device__ inline int max(int a, int b) { return a > b ? a : b; }
__device__ inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
__device__ inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
__device__ inline long long min(long long a, long long b) { return a < b ? a : b; }
__device__ inline long long max(long long a, long long b) { return a > b ? a : b; }
__device__ inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
__device__ inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
__device__ inline float min(float a, float b) { return fminf(a, b); }
__device__ inline float max(float a, float b) { return fmaxf(a, b); }
__device__ inline double min(double a, double b) { return fmin(a, b); }
__device__ inline double max(double a, double b) { return fmax(a, b); }

__device__ inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
__device__ inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
__device__ inline int __float_as_int(float f) { int u; memcpy(&u, &f, 4); return u; }
__device__ inline float __int_as_float(int u) { float f; memcpy(&f, &u, 4); return f; }

// __expf: the GPU computes ex2.approx.ftz(x · log2 e) with the product rounded to fp32, so its
// error grows with |x| (about 2 + 1.16|x| ulp); denormal results flush to zero.
__device__ inline float __expf(float x) {
  float t = x * 1.4426950408889634f;  // the fp32 product, as the GPU rounds it
  float r = exp2f(t);
  return fabsf(r) < FLT_MIN ? 0.f * r : r;
}
__device__ inline float __logf(float x) { return logf(x); }
__device__ inline float __fdividef(float a, float b) { return a / b; }
__device__ inline float rsqrtf(float x) { return 1.f / sqrtf(x); }
__device__ inline float __saturatef(float x) { return x < 0.f ? 0.f : x > 1.f ? 1.f : x; }

#endif
