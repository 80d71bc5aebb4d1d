// loss.cu: the fused classifier (log-sum-exp, per-token log-prob and entropy in one pass; the
// start of the backward from logits and lse) and sampling with temperature, top-k and top-p on
// the device.
#include "common.cuh"

// Online softmax state: max m, S = Σ e^{x−m}, X = Σ e^{x−m}·x.
struct Online {
  float m, s, x;
};
__device__ __forceinline__ Online merge(Online a, Online b) {
  if (b.m == -INFINITY) return a;
  if (a.m == -INFINITY) return b;
  float m = fmaxf(a.m, b.m), ea = __expf(a.m - m), eb = __expf(b.m - m);
  return {m, a.s * ea + b.s * eb, a.x * ea + b.x * eb};
}

// cross_entropy: grid (N), block 256; one row of V logits per block, read once.
__global__ void cross_entropy_kernel(float *logp, float *lse, float *ent, const void *logits, int dt,
                                     const int32_t *targets, int V, int *err) {
  CIR_SHARED(Online, sh, [32]);
  const size_t row = (size_t)blockIdx.x * V;
  Online st = {-INFINITY, 0.f, 0.f};
  for (int j = threadIdx.x; j < V; j += blockDim.x) {
    float v = ldf(logits, dt, row + j);
    if (v > st.m) {
      float e = __expf(st.m - v);  // 0 on the first element
      st.s = st.s * e + 1.f;
      st.x = st.x * e + v;
      st.m = v;
    } else {
      float e = __expf(v - st.m);
      st.s += e;
      st.x += e * v;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    Online b = {__shfl_xor_sync(0xffffffffu, st.m, o), __shfl_xor_sync(0xffffffffu, st.s, o),
                __shfl_xor_sync(0xffffffffu, st.x, o)};
    st = merge(st, b);
  }
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  if (lane == 0) sh[w] = st;
  __syncthreads();
  if (threadIdx.x == 0) {
    Online t = sh[0];
    for (int i = 1; i < (int)(blockDim.x >> 5); i++) t = merge(t, sh[i]);
    float l = t.m + logf(t.s);
    lse[blockIdx.x] = l;
    if (ent) ent[blockIdx.x] = l - t.x / t.s;
    int tg = targets[blockIdx.x];
    if (tg < 0 || tg >= V) {
      report(err, CIR_ERR_TARGET);
      logp[blockIdx.x] = 0.f;
    } else {
      logp[blockIdx.x] = ldf(logits, dt, row + tg) - l;
    }
  }
}
extern "C" cudaError_t cir_cross_entropy(float *logp, float *lse, float *ent, const void *logits, int dt,
                                         const int32_t *targets, int N, int V, int *err, cudaStream_t s) {
  if (N == 0) return cudaSuccess;
  CIR_LAUNCH(cross_entropy_kernel, N, 256, 0, s, logp, lse, ent, logits, dt, targets, V, err);
  CIR_LAUNCHED();
}

// cross_entropy_backward: grid (N), block 256. Each element is read then written by one thread,
// so dlogits may be the logits buffer itself (same type). The logits are F32 in the model
// (precision of the softmax), dlogits BF16 (the operand of the LM head's backward GEMM). With
// dent, the entropy term −dent·p·(log p + ent) is added (ent saved by cross_entropy).
__global__ void cross_entropy_backward_kernel(void *dlogits, int ddt, const float *dlogp, const float *dent,
                                              const void *logits, int dt, const float *lse,
                                              const float *ent, const int32_t *targets, int V) {
  const size_t row = (size_t)blockIdx.x * V;
  const float g = dlogp[blockIdx.x], l = lse[blockIdx.x];
  const float e = dent ? dent[blockIdx.x] : 0.f, h = dent ? ent[blockIdx.x] : 0.f;
  const int tg = targets[blockIdx.x];
  for (int j = threadIdx.x; j < V; j += blockDim.x) {
    float lp = ldf(logits, dt, row + j) - l;
    float p = __expf(lp);
    stf(dlogits, ddt, row + j, g * ((j == tg ? 1.f : 0.f) - p) - e * p * (lp + h));
  }
}
extern "C" cudaError_t cir_cross_entropy_backward(void *dlogits, int ddt, const float *dlogp, const float *dent,
                                                  const void *logits, int dt, const float *lse,
                                                  const float *ent, const int32_t *targets, int N, int V,
                                                  cudaStream_t s) {
  if (N == 0) return cudaSuccess;
  CIR_LAUNCH(cross_entropy_backward_kernel, N, 256, 0, s, dlogits, ddt, dlogp, dent, logits, dt, lse, ent,
             targets, V);
  CIR_LAUNCHED();
}

// ---- sampling ----

#define SMP_THREADS 512

// okey maps a float to a uint32 of the same order.
__device__ __forceinline__ uint32_t okey(float f) {
  uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float unkey(uint32_t k) {
  uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
  return __uint_as_float(u);
}

struct SampleShared {
  int cnt[256];
  float mass[256];
  float tmass[SMP_THREADS];
  int tties[SMP_THREADS];
  float red[32];
  uint32_t prefix, pmask;
  int rem, sel, chosen, last;
  float frem;
};

// sample: grid (B), block SMP_THREADS; one row per block. Passes over the row (from L2 after the
// first): max and log-sum-exp of the raw logits (and the argmax for greedy); with top-k, a 4-pass
// radix select of the k-th largest logit (integer counts: exact); with top-p, a 4-pass radix
// descent by probability mass (float shared-memory atomics: the cut can differ in the last bit of
// mass between runs); then the draw: thread t owns ids [t·per, (t+1)·per), the block scans the
// kept masses and tie counts in thread order, and the owner of u·mass walks its range.
__global__ void __launch_bounds__(SMP_THREADS) sample_kernel(int32_t *ids, float *logp, const void *logits, int dt,
                                                             const float *u, int V, float T, float top_p,
                                                             int top_k) {
  CIR_SHARED(SampleShared, sh, );
  const size_t row = (size_t)blockIdx.x * V;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  // max with the lowest argmax.
  float bm = -INFINITY;
  int bi = 0x7fffffff;
  for (int j = tid; j < V; j += blockDim.x) {
    float v = ldf(logits, dt, row + j);
    if (v > bm) bm = v, bi = j;  // j increases per thread: first max kept
  }
  for (int o = 16; o > 0; o >>= 1) {
    float om = __shfl_xor_sync(0xffffffffu, bm, o);
    int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (om > bm || (om == bm && oi < bi)) bm = om, bi = oi;
  }
  CIR_SHARED(float, wm, [32]);
  CIR_SHARED(int, wi, [32]);
  if (lane == 0) wm[warp] = bm, wi[warp] = bi;
  __syncthreads();
  if (tid == 0) {
    for (int w = 1; w < (int)(blockDim.x >> 5); w++)
      if (wm[w] > bm || (wm[w] == bm && wi[w] < bi)) bm = wm[w], bi = wi[w];
    wm[0] = bm, wi[0] = bi;
  }
  __syncthreads();
  const float mx = wm[0];
  const int amax = wi[0];
  float se = 0.f;
  for (int j = tid; j < V; j += blockDim.x) se += __expf(ldf(logits, dt, row + j) - mx);
  se = block_sum(se, sh.red);
  const float lse = mx + logf(se);
  if (T <= 0.f || top_k == 1) {
    if (tid == 0) {
      ids[blockIdx.x] = amax;
      logp[blockIdx.x] = ldf(logits, dt, row + amax) - lse;
    }
    return;
  }
  const float invT = 1.f / T;
  // The kept set: key > tau, or key == tau and tie rank (in id order) < need.
  uint32_t tau = 0;
  int need = 0x7fffffff;
  const bool useK = top_k > 0 && top_k < V;
  int needK = 0, cntEqK = 1;
  uint32_t tauK = 0;
  if (useK) {
    if (tid == 0) sh.prefix = 0, sh.pmask = 0, sh.rem = top_k;
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int b = tid; b < 256; b += blockDim.x) sh.cnt[b] = 0;
      __syncthreads();
      const uint32_t prefix = sh.prefix, pmask = sh.pmask;
      for (int j = tid; j < V; j += blockDim.x) {
        uint32_t k = okey(ldf(logits, dt, row + j));
        if ((k & pmask) == prefix) atomicAdd(&sh.cnt[(k >> shift) & 255], 1);
      }
      __syncthreads();
      if (tid == 0) {
        int rem = sh.rem, b = 255;
        for (; b > 0; b--) {
          if (sh.cnt[b] >= rem) break;
          rem -= sh.cnt[b];
        }
        sh.rem = rem, sh.sel = sh.cnt[b];
        sh.prefix = prefix | ((uint32_t)b << shift), sh.pmask = pmask | (255u << shift);
      }
      __syncthreads();
    }
    tauK = sh.prefix, needK = sh.rem, cntEqK = sh.sel;
    tau = tauK, need = needK;
  }
  if (top_p < 1.f) {
    // weight of id j inside the top-k set (all ids without top-k); the ties at tauK share the
    // mass of the needK of them that are kept.
    const float tieW = useK ? (float)needK / (float)max(cntEqK, 1) : 1.f;
    float tot = 0.f;
    for (int j = tid; j < V; j += blockDim.x) {
      float x = ldf(logits, dt, row + j);
      uint32_t k = okey(x);
      if (useK && k < tauK) continue;
      float e = __expf((x - mx) * invT);
      tot += (useK && k == tauK) ? e * tieW : e;
    }
    tot = block_sum(tot, sh.red);
    if (tid == 0) sh.prefix = 0, sh.pmask = 0, sh.frem = top_p * tot;
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int b = tid; b < 256; b += blockDim.x) sh.cnt[b] = 0, sh.mass[b] = 0.f;
      __syncthreads();
      const uint32_t prefix = sh.prefix, pmask = sh.pmask;
      for (int j = tid; j < V; j += blockDim.x) {
        float x = ldf(logits, dt, row + j);
        uint32_t k = okey(x);
        if ((k & pmask) != prefix || (useK && k < tauK)) continue;
        float e = __expf((x - mx) * invT);
        int b = (k >> shift) & 255;
        atomicAdd(&sh.cnt[b], 1);
        atomicAdd(&sh.mass[b], (useK && k == tauK) ? e * tieW : e);
      }
      __syncthreads();
      if (tid == 0) {
        float rem = sh.frem;
        int b = 255, lastNonEmpty = -1;
        for (; b >= 0; b--) {
          if (sh.cnt[b] == 0) continue;
          lastNonEmpty = b;
          if (sh.mass[b] >= rem) break;
          rem -= sh.mass[b];
        }
        if (b < 0) b = lastNonEmpty >= 0 ? lastNonEmpty : 0, rem = sh.mass[b];  // rounding: take the last bin
        sh.frem = rem, sh.sel = sh.cnt[b];
        sh.prefix = prefix | ((uint32_t)b << shift), sh.pmask = pmask | (255u << shift);
      }
      __syncthreads();
    }
    const uint32_t tauP = sh.prefix;
    const float eTau = __expf((unkey(tauP) - mx) * invT);
    int cntEq = sh.sel;
    if (useK && tauP == tauK) cntEq = needK;
    int np = eTau > 0.f ? (int)ceilf(sh.frem / eTau) : 1;
    np = max(1, min(np, cntEq));
    tau = tauP, need = np;
  }
  // The draw.
  const int per = (V + blockDim.x - 1) / blockDim.x;
  const int j0 = min(V, tid * per), j1 = min(V, j0 + per);
  float own = 0.f;
  int ties = 0;
  for (int j = j0; j < j1; j++) {
    float x = ldf(logits, dt, row + j);
    uint32_t k = okey(x);
    if (k > tau) own += __expf((x - mx) * invT);
    else if (k == tau) ties++;
  }
  sh.tmass[tid] = own;
  sh.tties[tid] = ties;
  __syncthreads();
  // Exclusive scan of (tie count) in thread order, by warp 0; tie ranks decide which tied ids
  // are kept, so the kept mass of each thread is known only after it.
  if (warp == 0) {
    const int per_l = blockDim.x / 32;
    int acc = 0;
    for (int i = 0; i < per_l; i++) acc += sh.tties[lane * per_l + i];
    int incl = acc;
    for (int o = 1; o < 32; o <<= 1) {
      int y = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += y;
    }
    int run = incl - acc;
    for (int i = 0; i < per_l; i++) {
      int c = sh.tties[lane * per_l + i];
      sh.tties[lane * per_l + i] = run;
      run += c;
    }
  }
  __syncthreads();
  const int tieBase = sh.tties[tid];
  // add the kept tied ids to own.
  {
    int r = tieBase;
    for (int j = j0; j < j1 && r < need; j++) {
      float x = ldf(logits, dt, row + j);
      if (okey(x) == tau) {
        own += __expf((x - mx) * invT);
        r++;
      }
    }
  }
  sh.tmass[tid] = own;
  __syncthreads();
  if (warp == 0) {
    const int per_l = blockDim.x / 32;
    float acc = 0.f;
    for (int i = 0; i < per_l; i++) acc += sh.tmass[lane * per_l + i];
    float incl = acc;
    for (int o = 1; o < 32; o <<= 1) {
      float y = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += y;
    }
    float run = incl - acc;
    for (int i = 0; i < per_l; i++) {
      float c = sh.tmass[lane * per_l + i];
      sh.tmass[lane * per_l + i] = run;
      run += c;
    }
    if (lane == 31) sh.red[0] = run;  // total kept mass
    if (lane == 0) sh.chosen = 0x7fffffff, sh.last = -1;
  }
  __syncthreads();
  // Thread t owns the interval [excl_t, excl_{t+1}) of [0, total): the intervals come from one
  // scan, so they tile it without gaps whatever the rounding.
  const float total = sh.red[0];
  const float uu = fminf(fmaxf(u[blockIdx.x], 0.f), 1.f);
  const float target = uu * total;
  const float excl = sh.tmass[tid];
  const float hi = tid + 1 < (int)blockDim.x ? sh.tmass[tid + 1] : total;
  if (own > 0.f) atomicMax(&sh.last, tid);
  __syncthreads();
  if (own > 0.f && target >= excl && (target < hi || tid == sh.last)) {
    float cum = excl;
    int r = tieBase, pick = -1;
    for (int j = j0; j < j1; j++) {
      float x = ldf(logits, dt, row + j);
      uint32_t k = okey(x);
      bool kept = k > tau || (k == tau && r < need);
      if (k == tau) r++;
      if (!kept) continue;
      pick = j;  // the last kept id if rounding leaves cum <= target at the end
      cum += __expf((x - mx) * invT);
      if (cum > target) break;
    }
    if (pick >= 0) atomicMin(&sh.chosen, pick);
  }
  __syncthreads();
  if (tid == 0) {
    int id = sh.chosen != 0x7fffffff ? sh.chosen : amax;
    ids[blockIdx.x] = id;
    logp[blockIdx.x] = ldf(logits, dt, row + id) - lse;
  }
}

extern "C" cudaError_t cir_sample(int32_t *ids, float *logp, const void *logits, int dt, const float *u, int B,
                                  int V, float temperature, float top_p, int top_k, cudaStream_t s) {
  if (B == 0) return cudaSuccess;
  CIR_LAUNCH(sample_kernel, B, SMP_THREADS, 0, s, ids, logp, logits, dt, u, V, temperature, top_p, top_k);
  CIR_LAUNCHED();
}
