// optim.cu: AdamW over a flat parameter vector, fp32 master weights and moments.
#include "common.cuh"

// adamw: grid-stride over n. The same arithmetic, in the same order, as the CPU backend.
__global__ void adamw_kernel(void *params, int pdt, float *master, const float *grads, float *m, float *v,
                             size_t n, float lr, float wd, float b1, float b2, float eps, float scale,
                             float step_size, float bc2s) {
  const float decay = 1.f - lr * wd;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    float p = master ? master[i] : ldf(params, pdt, i);
    float g = grads[i] * scale;
    p *= decay;
    float mi = m[i] + (g - m[i]) * (1.f - b1);
    float vi = v[i] * b2 + (1.f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float denom = sqrtf(vi) / bc2s + eps;
    p -= step_size * (mi / denom);
    if (master) master[i] = p;
    stf(params, pdt, i, p);
  }
}
extern "C" cudaError_t cir_adamw(void *params, int pdt, float *master, const float *grads, float *m, float *v,
                                 size_t n, float lr, float wd, float b1, float b2, float eps, float scale,
                                 float step_size, float bc2_sqrt, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  CIR_LAUNCH(adamw_kernel, grid1(n, 256), 256, 0, s, params, pdt, master, grads, m, v, n, lr, wd, b1, b2, eps, scale,
                                             step_size, bc2_sqrt);
  CIR_LAUNCHED();
}
