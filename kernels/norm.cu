// norm.cu: RMSNorm forward (optionally fused with the residual add) and backward.
#include "common.cuh"

// rmsnorm: grid (N), block 256; one row of C elements per block. With b != NULL the row is
// res = a + b, stored (rounded to dt) into res first, and the norm is taken of the stored
// value so that the backward sees exactly what the forward normalised.
__global__ void rmsnorm_kernel(void *res, void *out, float *rstd, const void *a, const void *b, const void *w,
                               int dt, int wdt, int C, float eps) {
  CIR_SHARED(float, sh, [32]);
  size_t row = (size_t)blockIdx.x * C;
  const void *x = a;
  if (b != nullptr) {
    for (int c = threadIdx.x; c < C; c += blockDim.x)
      stf(res, dt, row + c, ldf(a, dt, row + c) + ldf(b, dt, row + c));
    __syncthreads();  // res written and read back by the same thread only; the barrier is for clarity
    x = res;
  }
  float ss = 0.f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float v = ldf(x, dt, row + c);
    ss += v * v;
  }
  ss = block_sum(ss, sh);
  float r = rsqrtf(ss / C + eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
  for (int c = threadIdx.x; c < C; c += blockDim.x)
    stf(out, dt, row + c, ldf(x, dt, row + c) * r * ldf(w, wdt, c));
}
extern "C" cudaError_t cir_rmsnorm(void *res, void *out, float *rstd, const void *a, const void *b, const void *w,
                                   int dt, int wdt, int N, int C, float eps, cudaStream_t s) {
  if (N == 0) return cudaSuccess;
  CIR_LAUNCH(rmsnorm_kernel, N, 256, 0, s, res, out, rstd, a, b, w, dt, wdt, C, eps);
  CIR_LAUNCHED();
}

// rmsnorm_backward_din: grid (N), block 256.
// din[n,c] += dy·w·r − x·(Σ_c dy·w·x)·r³/C.
__global__ void rmsnorm_backward_din_kernel(void *din, const void *dout, const void *in, const void *w,
                                            const float *rstd, int dt, int wdt, int C) {
  CIR_SHARED(float, sh, [32]);
  size_t row = (size_t)blockIdx.x * C;
  float r = rstd[blockIdx.x];
  float dot = 0.f;
  for (int c = threadIdx.x; c < C; c += blockDim.x)
    dot += ldf(dout, dt, row + c) * ldf(w, wdt, c) * ldf(in, dt, row + c);
  dot = block_sum(dot, sh);
  float k = dot * r * r * r / C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float g = ldf(dout, dt, row + c) * ldf(w, wdt, c) * r - ldf(in, dt, row + c) * k;
    stf(din, dt, row + c, ldf(din, dt, row + c) + g);
  }
}

// The dw reduction over rows: RMS_RB row blocks each write partial[rb][c], then a second
// kernel adds the RMS_RB partials of each column in order into dw. Deterministic.
#define RMS_RB 64
// rmsnorm_backward_dw_partial: grid (ceil(C/32), RMS_RB), block (32, 8).
__global__ void rmsnorm_backward_dw_partial_kernel(float *partial, const void *dout, const void *in,
                                                   const float *rstd, int dt, int N, int C) {
  CIR_SHARED(float, sh, [8][33]);
  int c = blockIdx.x * 32 + threadIdx.x;
  int per = (N + RMS_RB - 1) / RMS_RB;
  int n0 = blockIdx.y * per, n1 = min(N, n0 + per);
  float acc = 0.f;
  if (c < C)
    for (int n = n0 + threadIdx.y; n < n1; n += 8)
      acc += ldf(dout, dt, (size_t)n * C + c) * ldf(in, dt, (size_t)n * C + c) * rstd[n];
  sh[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float t = 0.f;
    for (int y = 0; y < 8; y++) t += sh[y][threadIdx.x];
    partial[(size_t)blockIdx.y * C + c] = t;
  }
}
// rmsnorm_backward_dw_final: grid-stride over C; dw[c] += Σ_rb partial[rb][c].
__global__ void rmsnorm_backward_dw_final_kernel(float *dw, const float *partial, int C) {
  for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += gridDim.x * blockDim.x) {
    float t = 0.f;
    for (int rb = 0; rb < RMS_RB; rb++) t += partial[(size_t)rb * C + c];
    dw[c] += t;
  }
}

extern "C" size_t cir_rmsnorm_backward_scratch(int N, int C) { return (size_t)RMS_RB * C; }

extern "C" cudaError_t cir_rmsnorm_backward(void *din, float *dw, const void *dout, const void *in, const void *w,
                                            const float *rstd, int dt, int wdt, int N, int C, float *partial,
                                            cudaStream_t s) {
  if (N == 0 || C == 0) return cudaSuccess;
  CIR_LAUNCH(rmsnorm_backward_din_kernel, N, 256, 0, s, din, dout, in, w, rstd, dt, wdt, C);
  CIR_LAUNCH(rmsnorm_backward_dw_partial_kernel, dim3((C + 31) / 32, RMS_RB), dim3(32, 8), 0, s, partial, dout, in, rstd,
                                                                                        dt, N, C);
  CIR_LAUNCH(rmsnorm_backward_dw_final_kernel, grid1(C, 256), 256, 0, s, dw, partial, C);
  CIR_LAUNCHED();
}
