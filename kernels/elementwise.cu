// elementwise.cu: conversion, scaling, sums of squares, embedding, RoPE, SwiGLU, bias, KV store.
#include "common.cuh"

// convert: dst[i] = src[i]; n elements, any float types.
__global__ void convert_kernel(void *dst, int ddt, const void *src, int sdt, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    stf(dst, ddt, i, ldf(src, sdt, i));
}
extern "C" cudaError_t cir_convert(void *dst, int ddt, const void *src, int sdt, size_t n, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  CIR_LAUNCH(convert_kernel, grid1(n, 256), 256, 0, s, dst, ddt, src, sdt, n);
  CIR_LAUNCHED();
}

// scale: x[i] *= a; n elements.
__global__ void scale_kernel(void *x, int dt, size_t n, float a) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    stf(x, dt, i, ldf(x, dt, i) * a);
}
extern "C" cudaError_t cir_scale(void *x, int dt, size_t n, float a, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  CIR_LAUNCH(scale_kernel, grid1(n, 256), 256, 0, s, x, dt, n, a);
  CIR_LAUNCHED();
}

// add: out[i] = a[i] + b[i]; n elements of one type.
__global__ void add_kernel(void *out, const void *a, const void *b, int dt, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    stf(out, dt, i, ldf(a, dt, i) + ldf(b, dt, i));
}
extern "C" cudaError_t cir_add(void *out, const void *a, const void *b, int dt, size_t n, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  CIR_LAUNCH(add_kernel, grid1(n, 256), 256, 0, s, out, a, b, dt, n);
  CIR_LAUNCHED();
}

// sumsq_partial: grid of exactly CIR_SUMSQ_BLOCKS blocks × 256; partial[block] = Σ x² over the
// block's grid-stride share, in fp64.
__global__ void sumsq_partial_kernel(double *partial, const void *x, int dt, size_t n) {
  CIR_SHARED(double, sh, [8]);
  double acc = 0;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    double v = ldf(x, dt, i);
    acc += v * v;
  }
  acc = warp_sum_d(acc);
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) t += sh[w];
    partial[blockIdx.x] = t;
  }
}
// sumsq_final: one block of 32 threads; *out = Σ partial[0..CIR_SUMSQ_BLOCKS).
__global__ void sumsq_final_kernel(double *out, const double *partial) {
  double acc = 0;
  for (int i = threadIdx.x; i < CIR_SUMSQ_BLOCKS; i += 32) acc += partial[i];
  acc = warp_sum_d(acc);
  if (threadIdx.x == 0) *out = acc;
}
extern "C" cudaError_t cir_sumsq(double *out, double *partial, const void *x, int dt, size_t n, cudaStream_t s) {
  CIR_LAUNCH(sumsq_partial_kernel, CIR_SUMSQ_BLOCKS, 256, 0, s, partial, x, dt, n);
  CIR_LAUNCH(sumsq_final_kernel, 1, 32, 0, s, out, partial);
  CIR_LAUNCHED();
}

// embedding: grid (N), block 256; row n of out = row ids[n] of table.
__global__ void embedding_kernel(void *out, int odt, const int32_t *ids, const void *table, int tdt, int C,
                                 int V, int *err) {
  int n = blockIdx.x;
  int id = ids[n];
  bool ok = id >= 0 && id < V;
  if (!ok && threadIdx.x == 0) report(err, CIR_ERR_ID);
  for (int c = threadIdx.x; c < C; c += blockDim.x)
    stf(out, odt, (size_t)n * C + c, ok ? ldf(table, tdt, (size_t)id * C + c) : 0.f);
}
extern "C" cudaError_t cir_embedding(void *out, int odt, const int32_t *ids, const void *table, int tdt, int N,
                                     int C, int V, int *err, cudaStream_t s) {
  if (N == 0) return cudaSuccess;
  CIR_LAUNCH(embedding_kernel, N, 256, 0, s, out, odt, ids, table, tdt, C, V, err);
  CIR_LAUNCHED();
}

// embedding_backward: grid (ceil(C/128), EMB_BUCKETS), block 128. Thread (c, bucket) owns the
// entries dtable[id][c] with id % EMB_BUCKETS == bucket and adds the tokens in order, so no two
// threads touch one address and the sums are reproducible. Ids staged in shared memory by tiles.
#define EMB_BUCKETS 16
#define EMB_TILE 1024
__global__ void embedding_backward_kernel(float *dtable, const void *dout, int ddt, const int32_t *ids, int N,
                                          int C, int V) {
  CIR_SHARED(int32_t, sid, [EMB_TILE]);
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  int bucket = blockIdx.y;
  for (int t0 = 0; t0 < N; t0 += EMB_TILE) {
    int cnt = min(EMB_TILE, N - t0);
    __syncthreads();
    for (int i = threadIdx.x; i < cnt; i += blockDim.x) sid[i] = ids[t0 + i];
    __syncthreads();
    if (c < C) {
      for (int i = 0; i < cnt; i++) {
        int id = sid[i];
        if (id < 0 || id >= V || id % EMB_BUCKETS != bucket) continue;
        dtable[(size_t)id * C + c] += ldf(dout, ddt, (size_t)(t0 + i) * C + c);
      }
    }
  }
}
extern "C" cudaError_t cir_embedding_backward(float *dtable, const void *dout, int ddt, const int32_t *ids, int N,
                                              int C, int V, cudaStream_t s) {
  if (N == 0 || C == 0) return cudaSuccess;
  dim3 grid((C + 127) / 128, EMB_BUCKETS);
  CIR_LAUNCH(embedding_backward_kernel, grid, 128, 0, s, dtable, dout, ddt, ids, N, C, V);
  CIR_LAUNCHED();
}

// rope: grid-stride over N*heads*(D/2) pairs; pair (n, h, i) rotates x[n, h*D+i] and
// x[n, h*D+i+D/2] by pos[n]·theta^(-2i/D) (fp64 angle), sign -1 for the inverse.
__global__ void rope_kernel(void *x, int dt, const int32_t *pos, int N, int W, int heads, int D, double ltheta,
                            float sign, int *err) {
  int half = D / 2;
  size_t total = (size_t)N * heads * half;
  for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total; k += (size_t)gridDim.x * blockDim.x) {
    int i = (int)(k % half);
    size_t r = k / half;
    int h = (int)(r % heads);
    int n = (int)(r / heads);
    int p = pos[n];
    if (p < 0) {
      report(err, CIR_ERR_POS);
      continue;
    }
    double ang = (double)p * exp(-ltheta * (2.0 * i) / D);
    double sd, cd;
    sincos(ang, &sd, &cd);
    float c = (float)cd, sn = sign * (float)sd;
    size_t o = (size_t)n * W + (size_t)h * D + i;
    float a = ldf(x, dt, o), b = ldf(x, dt, o + half);
    stf(x, dt, o, a * c - b * sn);
    stf(x, dt, o + half, b * c + a * sn);
  }
}
extern "C" cudaError_t cir_rope(void *x, int dt, const int32_t *pos, int N, int W, int heads, int D, double log_theta,
                                float sign, int *err, cudaStream_t s) {
  size_t total = (size_t)N * heads * (D / 2);
  if (total == 0) return cudaSuccess;
  CIR_LAUNCH(rope_kernel, grid1(total, 256), 256, 0, s, x, dt, pos, N, W, heads, D, log_theta, sign, err);
  CIR_LAUNCHED();
}

__device__ __forceinline__ float sigmoidf_(float g) { return 1.f / (1.f + __expf(-g)); }

// swiglu: grid-stride over N*I; out[n,i] = silu(gu[n,i]) * gu[n,I+i].
__global__ void swiglu_kernel(void *out, const void *gu, int dt, int N, int I) {
  size_t total = (size_t)N * I;
  for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total; k += (size_t)gridDim.x * blockDim.x) {
    size_t n = k / I, i = k % I;
    float g = ldf(gu, dt, n * 2 * I + i), u = ldf(gu, dt, n * 2 * I + I + i);
    stf(out, dt, k, g * sigmoidf_(g) * u);
  }
}
extern "C" cudaError_t cir_swiglu(void *out, const void *gu, int dt, int N, int I, cudaStream_t s) {
  size_t total = (size_t)N * I;
  if (total == 0) return cudaSuccess;
  CIR_LAUNCH(swiglu_kernel, grid1(total, 256), 256, 0, s, out, gu, dt, N, I);
  CIR_LAUNCHED();
}

// swiglu_backward: dg = dout·u·σ(g)(1 + g(1 − σ(g))), du = dout·silu(g). dgu may alias gu.
__global__ void swiglu_backward_kernel(void *dgu, const void *dout, const void *gu, int dt, int N, int I) {
  size_t total = (size_t)N * I;
  for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total; k += (size_t)gridDim.x * blockDim.x) {
    size_t n = k / I, i = k % I;
    size_t og = n * 2 * I + i, ou = og + I;
    float g = ldf(gu, dt, og), u = ldf(gu, dt, ou), d = ldf(dout, dt, k);
    float sg = sigmoidf_(g);
    stf(dgu, dt, og, d * u * sg * (1.f + g * (1.f - sg)));
    stf(dgu, dt, ou, d * g * sg);
  }
}
extern "C" cudaError_t cir_swiglu_backward(void *dgu, const void *dout, const void *gu, int dt, int N, int I,
                                           cudaStream_t s) {
  size_t total = (size_t)N * I;
  if (total == 0) return cudaSuccess;
  CIR_LAUNCH(swiglu_backward_kernel, grid1(total, 256), 256, 0, s, dgu, dout, gu, dt, N, I);
  CIR_LAUNCHED();
}

// bias_add: out (N,OC) += bias (OC).
__global__ void bias_add_kernel(void *out, int odt, const void *bias, int bdt, int N, int OC) {
  size_t total = (size_t)N * OC;
  for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total; k += (size_t)gridDim.x * blockDim.x)
    stf(out, odt, k, ldf(out, odt, k) + ldf(bias, bdt, k % OC));
}
extern "C" cudaError_t cir_bias_add(void *out, int odt, const void *bias, int bdt, int N, int OC, cudaStream_t s) {
  size_t total = (size_t)N * OC;
  if (total == 0) return cudaSuccess;
  CIR_LAUNCH(bias_add_kernel, grid1(total, 256), 256, 0, s, out, odt, bias, bdt, N, OC);
  CIR_LAUNCHED();
}

// bias_backward: grid ceil(OC/32), block (32, 8). Column blockIdx.x*32+tx, rows strided by 8;
// the 8 partial sums are added in a fixed order.
__global__ void bias_backward_kernel(float *dbias, const void *dout, int ddt, int N, int OC) {
  CIR_SHARED(float, sh, [8][33]);
  int c = blockIdx.x * 32 + threadIdx.x;
  float acc = 0.f;
  if (c < OC)
    for (int n = threadIdx.y; n < N; n += 8) acc += ldf(dout, ddt, (size_t)n * OC + c);
  sh[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < OC) {
    float t = 0.f;
    for (int y = 0; y < 8; y++) t += sh[y][threadIdx.x];
    dbias[c] += t;
  }
}
extern "C" cudaError_t cir_bias_backward(float *dbias, const void *dout, int ddt, int N, int OC, cudaStream_t s) {
  if (OC == 0) return cudaSuccess;
  CIR_LAUNCH(bias_backward_kernel, (OC + 31) / 32, dim3(32, 8), 0, s, dbias, dout, ddt, N, OC);
  CIR_LAUNCHED();
}

// kv_store: grid (N), block 128. Token n's k and v heads go to cache row [slot[n], pos[n]].
__global__ void kv_store_kernel(void *kc, void *vc, const void *qkv, int dt, const int32_t *slot,
                                const int32_t *pos, int H, int Hkv, int D, int S, int T, int *err) {
  int n = blockIdx.x;
  int sl = slot[n], p = pos[n];
  if (sl < 0 || sl >= S || p < 0 || p >= T) {
    if (threadIdx.x == 0) report(err, CIR_ERR_CACHE);
    return;
  }
  size_t W = (size_t)(H + 2 * Hkv) * D, KD = (size_t)Hkv * D;
  size_t src = (size_t)n * W + (size_t)H * D;
  size_t dst = ((size_t)sl * T + p) * KD;
  for (size_t j = threadIdx.x; j < KD; j += blockDim.x) {
    stf(kc, dt, dst + j, ldf(qkv, dt, src + j));
    stf(vc, dt, dst + j, ldf(qkv, dt, src + KD + j));
  }
}
extern "C" cudaError_t cir_kv_store(void *kc, void *vc, const void *qkv, int dt, const int32_t *slot,
                                    const int32_t *pos, int N, int H, int Hkv, int D, int S, int T, int *err,
                                    cudaStream_t s) {
  if (N == 0) return cudaSuccess;
  CIR_LAUNCH(kv_store_kernel, N, 128, 0, s, kc, vc, qkv, dt, slot, pos, H, Hkv, D, S, T, err);
  CIR_LAUNCHED();
}
