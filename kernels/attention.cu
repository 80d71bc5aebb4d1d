// attention.cu: causal grouped-KV attention, forward and backward in the flash-attention
// style (tiles in shared memory, online softmax, no T×T matrix), and decoding against the KV
// cache split over the key axis. bf16 in and out, fp32 arithmetic and statistics.
//
// Layout: qkv (N, W) with W = (H + 2Hkv)·D, token rows packed sequence after sequence; query
// head h reads key/value head h / (H/Hkv). Scores use scale = 1/sqrt(D).
//
// Work split (forward and dq pass): a block of 4 warps takes ATT_BQ = 16 query rows of one head
// of one sequence, 4 rows per warp. Key tiles of ATT_KT = 32 rows are staged in shared memory as
// fp32; lane j of a warp computes the scores of key j of the tile for its warp's 4 rows, and the
// output row is distributed over lanes: lane owns dims d = lane + 32·i, i < DP (D ≤ 32·DP).
#include "common.cuh"

#define ATT_BQ 16
#define ATT_KT 32
#define ATT_ROWS 4  // rows per warp
#define FULL 0xffffffffu

// Dynamic shared memory above 48 KiB must be allowed per kernel.
template <typename K>
static cudaError_t allow_smem(K kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

// attn_fwd: grid (ceil(maxLen/16), H, B), block 128, shared (16·D + 32·(D+1) + 32·D) floats.
// out (N, H·D), lse (N, H) natural-log log-sum-exp of the scaled scores of each query row.
template <int DP>
__global__ void __launch_bounds__(128) attn_fwd_kernel(bf16 *out, float *lse, const bf16 *qkv,
                                                       const int32_t *starts, int H, int Hkv, int D,
                                                       float scale) {
  CIR_DYNAMIC_SHARED(float, smem);
  const int b = blockIdx.z, h = blockIdx.y;
  const int s0 = starts[b], L = starts[b + 1] - s0;
  const int q0 = blockIdx.x * ATT_BQ;
  if (q0 >= L) return;
  const int kvh = h / (H / Hkv), W = (H + 2 * Hkv) * D;
  float *Qs = smem;                 // [ATT_BQ][D], pre-scaled
  float *Ks = Qs + ATT_BQ * D;      // [ATT_KT][D+1]
  float *Vs = Ks + ATT_KT * (D + 1);  // [ATT_KT][D]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  for (int idx = tid; idx < ATT_BQ * D; idx += blockDim.x) {
    int r = idx / D, d = idx % D, q = q0 + r;
    Qs[idx] = q < L ? b2f(qkv[(size_t)(s0 + q) * W + h * D + d]) * scale : 0.f;
  }
  float o[ATT_ROWS][DP], m[ATT_ROWS], l[ATT_ROWS], pr[ATT_ROWS];
#pragma unroll
  for (int r = 0; r < ATT_ROWS; r++) {
    m[r] = -INFINITY;
    l[r] = 0.f;
#pragma unroll
    for (int i = 0; i < DP; i++) o[r][i] = 0.f;
  }
  const int qhi = min(L, q0 + ATT_BQ);
  const int ntiles = (qhi + ATT_KT - 1) / ATT_KT;
  const float *qrow = Qs + warp * ATT_ROWS * D;
  for (int t = 0; t < ntiles; t++) {
    const int k0 = t * ATT_KT;
    __syncthreads();
    for (int idx = tid; idx < ATT_KT * D; idx += blockDim.x) {
      int j = idx / D, d = idx % D, k = k0 + j;
      float kv = 0.f, vv = 0.f;
      if (k < L) {
        const bf16 *row = qkv + (size_t)(s0 + k) * W;
        kv = b2f(row[(H + kvh) * D + d]);
        vv = b2f(row[(H + Hkv + kvh) * D + d]);
      }
      Ks[j * (D + 1) + d] = kv;
      Vs[j * D + d] = vv;
    }
    __syncthreads();
    float sc[ATT_ROWS];
#pragma unroll
    for (int r = 0; r < ATT_ROWS; r++) sc[r] = 0.f;
    const float *krow = Ks + lane * (D + 1);
    for (int d = 0; d < D; d++) {
      float kd = krow[d];
#pragma unroll
      for (int r = 0; r < ATT_ROWS; r++) sc[r] += qrow[r * D + d] * kd;
    }
    const int k = k0 + lane;
#pragma unroll
    for (int r = 0; r < ATT_ROWS; r++) {
      const int q = q0 + warp * ATT_ROWS + r;
      const bool valid = q < L && k <= q;
      const float s = valid ? sc[r] : -INFINITY;
      const float tmax = warp_max(s);
      pr[r] = 0.f;
      if (tmax == -INFINITY) continue;  // warp-uniform: the row sees no key of this tile
      const float mnew = fmaxf(m[r], tmax);
      const float alpha = __expf(m[r] - mnew);
      pr[r] = valid ? __expf(s - mnew) : 0.f;
      l[r] = l[r] * alpha + pr[r];
#pragma unroll
      for (int i = 0; i < DP; i++) o[r][i] *= alpha;
      m[r] = mnew;
    }
    for (int jj = 0; jj < ATT_KT; jj++) {
      float vj[DP];
#pragma unroll
      for (int i = 0; i < DP; i++) {
        int d = lane + 32 * i;
        vj[i] = d < D ? Vs[jj * D + d] : 0.f;
      }
#pragma unroll
      for (int r = 0; r < ATT_ROWS; r++) {
        float pj = __shfl_sync(FULL, pr[r], jj);
#pragma unroll
        for (int i = 0; i < DP; i++) o[r][i] += pj * vj[i];
      }
    }
  }
#pragma unroll
  for (int r = 0; r < ATT_ROWS; r++) {
    const float lt = warp_sum(l[r]);
    const int q = q0 + warp * ATT_ROWS + r;
    if (q >= L) continue;
    const size_t tok = (size_t)(s0 + q);
    const float inv = lt > 0.f ? 1.f / lt : 0.f;
#pragma unroll
    for (int i = 0; i < DP; i++) {
      int d = lane + 32 * i;
      if (d < D) out[tok * H * D + (size_t)h * D + d] = f2b(o[r][i] * inv);
    }
    if (lane == 0) lse[tok * H + h] = m[r] + logf(lt);
  }
}

// attn_dvec: one warp per (token, head): dv[n·H + h] = Σ_d dout·out (the softmax-backward row
// term). Grid-stride over N·H warps, block 128.
__global__ void attn_dvec_kernel(float *dv, const bf16 *dout, const bf16 *out, int N, int H, int D) {
  const int lane = threadIdx.x & 31;
  const size_t nw = (size_t)gridDim.x * (blockDim.x >> 5);
  for (size_t w = blockIdx.x * (size_t)(blockDim.x >> 5) + (threadIdx.x >> 5); w < (size_t)N * H; w += nw) {
    const bf16 *a = dout + w * D, *b = out + w * D;  // (n, h) rows are contiguous: (N, H·D)
    float acc = 0.f;
    for (int d = lane; d < D; d += 32) acc += b2f(a[d]) * b2f(b[d]);
    acc = warp_sum(acc);
    if (lane == 0) dv[w] = acc;
  }
}

// attn_bwd_dq: grid (ceil(maxLen/16), H, B), block 128, shared (2·16·D + 2·32·(D+1)) floats.
// dq = scale · Σ_k P·(dP − dv)·k with P = exp(s − lse), dP = dout·v; writes the q part of dqkv.
template <int DP>
__global__ void __launch_bounds__(128) attn_bwd_dq_kernel(bf16 *dqkv, const bf16 *dout, const float *lse,
                                                          const float *dvec, const bf16 *qkv,
                                                          const int32_t *starts, int H, int Hkv, int D,
                                                          float scale) {
  CIR_DYNAMIC_SHARED(float, smem);
  const int b = blockIdx.z, h = blockIdx.y;
  const int s0 = starts[b], L = starts[b + 1] - s0;
  const int q0 = blockIdx.x * ATT_BQ;
  if (q0 >= L) return;
  const int kvh = h / (H / Hkv), W = (H + 2 * Hkv) * D;
  float *Qs = smem;                   // [16][D] scaled q
  float *Os = Qs + ATT_BQ * D;        // [16][D] dout
  float *Ks = Os + ATT_BQ * D;        // [32][D+1]
  float *Vs = Ks + ATT_KT * (D + 1);  // [32][D+1]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  for (int idx = tid; idx < ATT_BQ * D; idx += blockDim.x) {
    int r = idx / D, d = idx % D, q = q0 + r;
    bool ok = q < L;
    Qs[idx] = ok ? b2f(qkv[(size_t)(s0 + q) * W + h * D + d]) * scale : 0.f;
    Os[idx] = ok ? b2f(dout[(size_t)(s0 + q) * H * D + h * D + d]) : 0.f;
  }
  float dq[ATT_ROWS][DP], rl[ATT_ROWS], rd[ATT_ROWS], ds[ATT_ROWS];
#pragma unroll
  for (int r = 0; r < ATT_ROWS; r++) {
    const int q = q0 + warp * ATT_ROWS + r;
    rl[r] = q < L ? lse[(size_t)(s0 + q) * H + h] : 0.f;
    rd[r] = q < L ? dvec[(size_t)(s0 + q) * H + h] : 0.f;
#pragma unroll
    for (int i = 0; i < DP; i++) dq[r][i] = 0.f;
  }
  const int qhi = min(L, q0 + ATT_BQ);
  const int ntiles = (qhi + ATT_KT - 1) / ATT_KT;
  const float *qrow = Qs + warp * ATT_ROWS * D, *orow = Os + warp * ATT_ROWS * D;
  for (int t = 0; t < ntiles; t++) {
    const int k0 = t * ATT_KT;
    __syncthreads();
    for (int idx = tid; idx < ATT_KT * D; idx += blockDim.x) {
      int j = idx / D, d = idx % D, k = k0 + j;
      float kv = 0.f, vv = 0.f;
      if (k < L) {
        const bf16 *row = qkv + (size_t)(s0 + k) * W;
        kv = b2f(row[(H + kvh) * D + d]);
        vv = b2f(row[(H + Hkv + kvh) * D + d]);
      }
      Ks[j * (D + 1) + d] = kv;
      Vs[j * (D + 1) + d] = vv;
    }
    __syncthreads();
    float sc[ATT_ROWS], dp[ATT_ROWS];
#pragma unroll
    for (int r = 0; r < ATT_ROWS; r++) sc[r] = dp[r] = 0.f;
    const float *krow = Ks + lane * (D + 1), *vrow = Vs + lane * (D + 1);
    for (int d = 0; d < D; d++) {
      float kd = krow[d], vd = vrow[d];
#pragma unroll
      for (int r = 0; r < ATT_ROWS; r++) {
        sc[r] += qrow[r * D + d] * kd;
        dp[r] += orow[r * D + d] * vd;
      }
    }
    const int k = k0 + lane;
#pragma unroll
    for (int r = 0; r < ATT_ROWS; r++) {
      const int q = q0 + warp * ATT_ROWS + r;
      const bool valid = q < L && k <= q;
      const float p = valid ? __expf(sc[r] - rl[r]) : 0.f;
      ds[r] = p * (dp[r] - rd[r]);
    }
    for (int jj = 0; jj < ATT_KT; jj++) {
      float kj[DP];
#pragma unroll
      for (int i = 0; i < DP; i++) {
        int d = lane + 32 * i;
        kj[i] = d < D ? Ks[jj * (D + 1) + d] : 0.f;
      }
#pragma unroll
      for (int r = 0; r < ATT_ROWS; r++) {
        float g = __shfl_sync(FULL, ds[r], jj);
#pragma unroll
        for (int i = 0; i < DP; i++) dq[r][i] += g * kj[i];
      }
    }
  }
#pragma unroll
  for (int r = 0; r < ATT_ROWS; r++) {
    const int q = q0 + warp * ATT_ROWS + r;
    if (q >= L) continue;
#pragma unroll
    for (int i = 0; i < DP; i++) {
      int d = lane + 32 * i;
      if (d < D) dqkv[(size_t)(s0 + q) * W + h * D + d] = f2b(dq[r][i] * scale);
    }
  }
}

// attn_bwd_dkv: grid (ceil(maxLen/16), Hkv, B), block 128, shared (2·16·D + 2·32·(D+1) + 64)
// floats. A block owns 16 keys of one kv head (4 per warp) and visits every query head of the
// group and every query tile at or after its keys; lane i takes query i of the tile.
// dv = Σ_q P·dout, dk = scale · Σ_q P·(dP − dv)·q. Writes the k and v parts of dqkv.
template <int DP>
__global__ void __launch_bounds__(128) attn_bwd_dkv_kernel(bf16 *dqkv, const bf16 *dout, const float *lse,
                                                           const float *dvec, const bf16 *qkv,
                                                           const int32_t *starts, int H, int Hkv, int D,
                                                           float scale) {
  CIR_DYNAMIC_SHARED(float, smem);
  const int b = blockIdx.z, kvh = blockIdx.y;
  const int s0 = starts[b], L = starts[b + 1] - s0;
  const int k0 = blockIdx.x * ATT_BQ;
  if (k0 >= L) return;
  const int G = H / Hkv, W = (H + 2 * Hkv) * D;
  float *Ks = smem;                   // [16][D]
  float *Vs = Ks + ATT_BQ * D;        // [16][D]
  float *Qs = Vs + ATT_BQ * D;        // [32][D+1] scaled q
  float *Os = Qs + ATT_KT * (D + 1);  // [32][D+1] dout
  float *Ls = Os + ATT_KT * (D + 1);  // [32] lse
  float *Dd = Ls + ATT_KT;            // [32] dvec
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  for (int idx = tid; idx < ATT_BQ * D; idx += blockDim.x) {
    int r = idx / D, d = idx % D, k = k0 + r;
    bool ok = k < L;
    const bf16 *row = qkv + (size_t)(s0 + k) * W;
    Ks[idx] = ok ? b2f(row[(H + kvh) * D + d]) : 0.f;
    Vs[idx] = ok ? b2f(row[(H + Hkv + kvh) * D + d]) : 0.f;
  }
  float dk[ATT_ROWS][DP], dv[ATT_ROWS][DP];
#pragma unroll
  for (int r = 0; r < ATT_ROWS; r++)
#pragma unroll
    for (int i = 0; i < DP; i++) dk[r][i] = dv[r][i] = 0.f;
  const float *krow = Ks + warp * ATT_ROWS * D, *vrow = Vs + warp * ATT_ROWS * D;
  const int t0 = (k0 / ATT_KT) * ATT_KT;
  for (int g = 0; g < G; g++) {
    const int h = kvh * G + g;
    for (int qt = t0; qt < L; qt += ATT_KT) {
      __syncthreads();
      for (int idx = tid; idx < ATT_KT * D; idx += blockDim.x) {
        int i = idx / D, d = idx % D, q = qt + i;
        bool ok = q < L;
        Qs[i * (D + 1) + d] = ok ? b2f(qkv[(size_t)(s0 + q) * W + h * D + d]) * scale : 0.f;
        Os[i * (D + 1) + d] = ok ? b2f(dout[(size_t)(s0 + q) * H * D + h * D + d]) : 0.f;
      }
      if (tid < ATT_KT) {
        int q = qt + tid;
        bool ok = q < L;
        Ls[tid] = ok ? lse[(size_t)(s0 + q) * H + h] : 0.f;
        Dd[tid] = ok ? dvec[(size_t)(s0 + q) * H + h] : 0.f;
      }
      __syncthreads();
      float sc[ATT_ROWS], dp[ATT_ROWS], p[ATT_ROWS], ds[ATT_ROWS];
#pragma unroll
      for (int r = 0; r < ATT_ROWS; r++) sc[r] = dp[r] = 0.f;
      const float *qi = Qs + lane * (D + 1), *oi = Os + lane * (D + 1);
      for (int d = 0; d < D; d++) {
        float qd = qi[d], od = oi[d];
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++) {
          sc[r] += qd * krow[r * D + d];
          dp[r] += od * vrow[r * D + d];
        }
      }
      const int q = qt + lane;
#pragma unroll
      for (int r = 0; r < ATT_ROWS; r++) {
        const int k = k0 + warp * ATT_ROWS + r;
        const bool valid = q < L && k < L && q >= k;
        p[r] = valid ? __expf(sc[r] - Ls[lane]) : 0.f;
        ds[r] = p[r] * (dp[r] - Dd[lane]);
      }
      for (int jj = 0; jj < ATT_KT; jj++) {
        float qj[DP], oj[DP];
#pragma unroll
        for (int i = 0; i < DP; i++) {
          int d = lane + 32 * i;
          qj[i] = d < D ? Qs[jj * (D + 1) + d] : 0.f;
          oj[i] = d < D ? Os[jj * (D + 1) + d] : 0.f;
        }
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++) {
          float pj = __shfl_sync(FULL, p[r], jj), gj = __shfl_sync(FULL, ds[r], jj);
#pragma unroll
          for (int i = 0; i < DP; i++) {
            dv[r][i] += pj * oj[i];
            dk[r][i] += gj * qj[i];  // q is pre-scaled: this is scale·ds·q
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < ATT_ROWS; r++) {
    const int k = k0 + warp * ATT_ROWS + r;
    if (k >= L) continue;
    bf16 *row = dqkv + (size_t)(s0 + k) * W;
#pragma unroll
    for (int i = 0; i < DP; i++) {
      int d = lane + 32 * i;
      if (d < D) {
        row[(H + kvh) * D + d] = f2b(dk[r][i]);
        row[(H + Hkv + kvh) * D + d] = f2b(dv[r][i]);
      }
    }
  }
}

// dp_for picks the per-lane dims template: D ≤ 64 → 2, ≤ 128 → 4, ≤ 256 → 8; 0 if too large.
static int dp_for(int D) { return D <= 64 ? 2 : D <= 128 ? 4 : D <= 256 ? 8 : 0; }

template <int DP>
static cudaError_t launch_fwd(bf16 *out, float *lse, const bf16 *qkv, const int32_t *starts, int B, int maxLen,
                              int H, int Hkv, int D, cudaStream_t s) {
  size_t smem = (size_t)(ATT_BQ * D + ATT_KT * (D + 1) + ATT_KT * D) * sizeof(float);
  cudaError_t e = allow_smem(attn_fwd_kernel<DP>, smem);
  if (e != cudaSuccess) return e;
  dim3 grid((maxLen + ATT_BQ - 1) / ATT_BQ, H, B);
  CIR_LAUNCH(attn_fwd_kernel<DP>, grid, 128, smem, s, out, lse, qkv, starts, H, Hkv, D, (float)(1.0 / sqrt((double)D)));
  CIR_LAUNCHED();
}

extern "C" cudaError_t cir_attention(cir_bf16 *out, float *lse, const cir_bf16 *qkv, const int32_t *starts, int B,
                                     int maxLen, int H, int Hkv, int D, cudaStream_t s) {
  if (B == 0 || maxLen == 0) return cudaSuccess;
  bf16 *o = (bf16 *)out;
  const bf16 *x = (const bf16 *)qkv;
  switch (dp_for(D)) {
    case 2: return launch_fwd<2>(o, lse, x, starts, B, maxLen, H, Hkv, D, s);
    case 4: return launch_fwd<4>(o, lse, x, starts, B, maxLen, H, Hkv, D, s);
    case 8: return launch_fwd<8>(o, lse, x, starts, B, maxLen, H, Hkv, D, s);
  }
  return cudaErrorInvalidValue;
}

template <int DP>
static cudaError_t launch_bwd(bf16 *dqkv, const bf16 *dout, const float *lse, const float *dvec, const bf16 *qkv,
                              const int32_t *starts, int B, int maxLen, int H, int Hkv, int D, cudaStream_t s) {
  float scale = (float)(1.0 / sqrt((double)D));
  size_t smem_q = (size_t)(2 * ATT_BQ * D + 2 * ATT_KT * (D + 1)) * sizeof(float);
  size_t smem_k = smem_q + 2 * ATT_KT * sizeof(float);
  cudaError_t e = allow_smem(attn_bwd_dq_kernel<DP>, smem_q);
  if (e == cudaSuccess) e = allow_smem(attn_bwd_dkv_kernel<DP>, smem_k);
  if (e != cudaSuccess) return e;
  int tiles = (maxLen + ATT_BQ - 1) / ATT_BQ;
  CIR_LAUNCH(attn_bwd_dq_kernel<DP>, dim3(tiles, H, B), 128, smem_q, s, dqkv, dout, lse, dvec, qkv, starts, H, Hkv, D,
                                                               scale);
  CIR_LAUNCH(attn_bwd_dkv_kernel<DP>, dim3(tiles, Hkv, B), 128, smem_k, s, dqkv, dout, lse, dvec, qkv, starts, H, Hkv,
                                                                  D, scale);
  CIR_LAUNCHED();
}

extern "C" cudaError_t cir_attention_backward(cir_bf16 *dqkv, const cir_bf16 *dout, const cir_bf16 *out,
                                                const float *lse, const cir_bf16 *qkv, const int32_t *starts,
                                                int N, int B, int maxLen, int H, int Hkv, int D, float *dscratch,
                                                cudaStream_t s) {
  if (N == 0 || B == 0 || maxLen == 0) return cudaSuccess;
  CIR_LAUNCH(attn_dvec_kernel, grid1((size_t)N * H, 4), 128, 0, s, dscratch, (const bf16 *)dout, (const bf16 *)out, N, H,
                                                           D);
  bf16 *dx = (bf16 *)dqkv;
  const bf16 *dy = (const bf16 *)dout, *x = (const bf16 *)qkv;
  switch (dp_for(D)) {
    case 2: return launch_bwd<2>(dx, dy, lse, dscratch, x, starts, B, maxLen, H, Hkv, D, s);
    case 4: return launch_bwd<4>(dx, dy, lse, dscratch, x, starts, B, maxLen, H, Hkv, D, s);
    case 8: return launch_bwd<8>(dx, dy, lse, dscratch, x, starts, B, maxLen, H, Hkv, D, s);
  }
  return cudaErrorInvalidValue;
}

// ---- decoding ----

#define KV_MAXG 8

// attn_kv: grid (N, Hkv, nsplit), block 128, shared (5·G·D + 2·4·KV_MAXG) floats. Block
// (n, kvh, sp) takes keys [sp·chunk, min((sp+1)·chunk, pos[n]+1)) of cache slot slot[n] for the
// G query heads of kv head kvh; warp w takes the 32-key tiles w, w+4, …; lane j scores key j of a
// tile against all G heads (the key row is read once for the group). The 4 warps' online-softmax
// states are merged in shared memory and written to part[(n·H + h)·nsplit + sp] as
// (max, sum, o[D]) with o unnormalised.
template <int DP>
__global__ void __launch_bounds__(128) attn_kv_kernel(float *part, const bf16 *qkv, const bf16 *kc,
                                                      const bf16 *vc, const int32_t *slot, const int32_t *pos,
                                                      int H, int Hkv, int D, int S, int T, int nsplit, int chunk,
                                                      float scale, int *err) {
  CIR_DYNAMIC_SHARED(float, smem);
  const int n = blockIdx.x, kvh = blockIdx.y, sp = blockIdx.z;
  const int G = H / Hkv, W = (H + 2 * Hkv) * D;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int sl = slot[n], p = pos[n];
  const bool bad = sl < 0 || sl >= S || p < 0 || p >= T;
  if (bad && tid == 0 && sp == 0 && kvh == 0) report(err, CIR_ERR_CACHE);
  const int kb = sp * chunk, ke = bad ? kb : min(kb + chunk, p + 1);
  float *Qs = smem;                  // [G][D]
  float *Os = Qs + G * D;            // [4][G][D]
  float *Ms = Os + 4 * G * D;        // [4][KV_MAXG]
  float *Lsum = Ms + 4 * KV_MAXG;    // [4][KV_MAXG]
  for (int idx = tid; idx < G * D; idx += blockDim.x)
    Qs[idx] = b2f(qkv[(size_t)n * W + (size_t)kvh * G * D + idx]) * scale;
  __syncthreads();
  float o[KV_MAXG][DP], m[KV_MAXG], l[KV_MAXG], pr[KV_MAXG];
#pragma unroll
  for (int g = 0; g < KV_MAXG; g++) {
    m[g] = -INFINITY;
    l[g] = 0.f;
#pragma unroll
    for (int i = 0; i < DP; i++) o[g][i] = 0.f;
  }
  const size_t rowStride = (size_t)Hkv * D;  // between consecutive positions
  const bf16 *kbase = kc + ((size_t)sl * T) * rowStride + (size_t)kvh * D;
  const bf16 *vbase = vc + ((size_t)sl * T) * rowStride + (size_t)kvh * D;
  for (int j0 = kb + warp * 32; j0 < ke; j0 += 128) {
    const int j = j0 + lane;
    const bool valid = j < ke;
    float sc[KV_MAXG];
#pragma unroll
    for (int g = 0; g < KV_MAXG; g++) sc[g] = 0.f;
    if (valid) {
      const __nv_bfloat162 *kr = (const __nv_bfloat162 *)(kbase + (size_t)j * rowStride);
      for (int d2 = 0; d2 < D / 2; d2++) {
        float2 kk = __bfloat1622float2(kr[d2]);
#pragma unroll
        for (int g = 0; g < KV_MAXG; g++)
          if (g < G) sc[g] += Qs[g * D + 2 * d2] * kk.x + Qs[g * D + 2 * d2 + 1] * kk.y;
      }
    }
#pragma unroll
    for (int g = 0; g < KV_MAXG; g++) {
      pr[g] = 0.f;
      if (g >= G) continue;
      const float s = valid ? sc[g] : -INFINITY;
      const float tmax = warp_max(s);  // lane 0 is always valid: j0 < ke
      const float mnew = fmaxf(m[g], tmax);
      const float alpha = __expf(m[g] - mnew);
      pr[g] = valid ? __expf(s - mnew) : 0.f;
      l[g] = l[g] * alpha + pr[g];
#pragma unroll
      for (int i = 0; i < DP; i++) o[g][i] *= alpha;
      m[g] = mnew;
    }
    const int nj = min(32, ke - j0);
    for (int jj = 0; jj < nj; jj++) {
      const bf16 *vr = vbase + (size_t)(j0 + jj) * rowStride;
      float vj[DP];
#pragma unroll
      for (int i = 0; i < DP; i++) {
        int d = lane + 32 * i;
        vj[i] = d < D ? b2f(vr[d]) : 0.f;
      }
#pragma unroll
      for (int g = 0; g < KV_MAXG; g++) {
        if (g >= G) continue;
        float pj = __shfl_sync(FULL, pr[g], jj);
#pragma unroll
        for (int i = 0; i < DP; i++) o[g][i] += pj * vj[i];
      }
    }
  }
#pragma unroll
  for (int g = 0; g < KV_MAXG; g++) {
    if (g >= G) continue;
    const float lt = warp_sum(l[g]);
    if (lane == 0) {
      Ms[warp * KV_MAXG + g] = m[g];
      Lsum[warp * KV_MAXG + g] = lt;
    }
#pragma unroll
    for (int i = 0; i < DP; i++) {
      int d = lane + 32 * i;
      if (d < D) Os[(warp * G + g) * D + d] = o[g][i];
    }
  }
  __syncthreads();
  for (int idx = tid; idx < G * D; idx += blockDim.x) {
    const int g = idx / D, d = idx % D;
    float M = -INFINITY;
    for (int w = 0; w < 4; w++) M = fmaxf(M, Ms[w * KV_MAXG + g]);
    float ls = 0.f, os = 0.f;
    if (M != -INFINITY) {
      for (int w = 0; w < 4; w++) {
        float e = __expf(Ms[w * KV_MAXG + g] - M);
        ls += Lsum[w * KV_MAXG + g] * e;
        os += Os[(w * G + g) * D + d] * e;
      }
    }
    float *dst = part + ((size_t)(n * H + kvh * G + g) * nsplit + sp) * (D + 2);
    dst[2 + d] = os;
    if (d == 0) {
      dst[0] = M;
      dst[1] = ls;
    }
  }
}

// attn_kv_combine: grid (N·H), block 128; out[n, h·D + d] = Σ_sp o·e^{m−M} / Σ_sp l·e^{m−M}.
__global__ void attn_kv_combine_kernel(bf16 *out, const float *part, int H, int D, int nsplit) {
  const size_t nh = blockIdx.x;
  const float *base = part + nh * nsplit * (D + 2);
  float M = -INFINITY;
  for (int s = 0; s < nsplit; s++) M = fmaxf(M, base[(size_t)s * (D + 2)]);
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float ls = 0.f, os = 0.f;
    if (M != -INFINITY)
      for (int s = 0; s < nsplit; s++) {
        const float *q = base + (size_t)s * (D + 2);
        float e = __expf(q[0] - M);
        ls += q[1] * e;
        os += q[2 + d] * e;
      }
    out[nh * D + d] = f2b(ls > 0.f ? os / ls : 0.f);
  }
}

extern "C" size_t cir_attention_kv_scratch(int N, int H, int D, int nsplit) {
  return (size_t)N * H * nsplit * (D + 2);
}

template <int DP>
static cudaError_t launch_kv(bf16 *out, const bf16 *qkv, const bf16 *kc, const bf16 *vc, const int32_t *slot,
                             const int32_t *pos, int N, int H, int Hkv, int D, int S, int T, int nsplit,
                             int chunk, float *scratch, int *err, cudaStream_t s) {
  int G = H / Hkv;
  size_t smem = (size_t)(5 * G * D + 8 * KV_MAXG) * sizeof(float);
  cudaError_t e = allow_smem(attn_kv_kernel<DP>, smem);
  if (e != cudaSuccess) return e;
  CIR_LAUNCH(attn_kv_kernel<DP>, dim3(N, Hkv, nsplit), 128, smem, s, scratch, qkv, kc, vc, slot, pos, H, Hkv, D, S, T,
                                                             nsplit, chunk, (float)(1.0 / sqrt((double)D)), err);
  CIR_LAUNCH(attn_kv_combine_kernel, N * H, 128, 0, s, out, scratch, H, D, nsplit);
  CIR_LAUNCHED();
}

extern "C" cudaError_t cir_attention_kv(cir_bf16 *out, const cir_bf16 *qkv, const cir_bf16 *kc, const cir_bf16 *vc,
                                        const int32_t *slot, const int32_t *pos, int N, int H, int Hkv, int D, int S,
                                        int T, int nsplit, int chunk, float *scratch, int *err, cudaStream_t s) {
  if (N == 0) return cudaSuccess;
  if (H / Hkv > KV_MAXG || D % 2 != 0) return cudaErrorInvalidValue;
  bf16 *o = (bf16 *)out;
  const bf16 *x = (const bf16 *)qkv, *k = (const bf16 *)kc, *v = (const bf16 *)vc;
  switch (dp_for(D)) {
    case 2: return launch_kv<2>(o, x, k, v, slot, pos, N, H, Hkv, D, S, T, nsplit, chunk, scratch, err, s);
    case 4: return launch_kv<4>(o, x, k, v, slot, pos, N, H, Hkv, D, S, T, nsplit, chunk, scratch, err, s);
    case 8: return launch_kv<8>(o, x, k, v, slot, pos, N, H, Hkv, D, S, T, nsplit, chunk, scratch, err, s);
  }
  return cudaErrorInvalidValue;
}
