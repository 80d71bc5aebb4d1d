/* cir.h: the C interface of libcirkernels.a, called from engine/cuda through cgo.
 *
 * Every launcher enqueues its work on `stream` and returns the cudaError_t of the launch
 * (cudaGetLastError after it). Storage: `cir_bf16` is the bit pattern of a bfloat16; tensors
 * whose type is chosen at run time take a `void *` and a `dt` code (CIR_F32, CIR_BF16, CIR_F16,
 * the numbering of engine.DType). Arithmetic is fp32 everywhere; reductions keep fp32 (or fp64
 * where stated) statistics. `err` is a device int that a kernel sets to a CIR_ERR_* code when
 * the data (not the shapes) are bad: an id outside the vocabulary, say. Shapes are checked by
 * the Go caller; launchers trust them. */
#ifndef CIR_H
#define CIR_H
#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint16_t cir_bf16;

enum { CIR_F32 = 0, CIR_BF16 = 1, CIR_F16 = 2, CIR_I32 = 3 };

/* Data errors a kernel reports through `err` (the first one wins). */
enum {
  CIR_ERR_ID = 1,      /* an embedding id outside [0, V) */
  CIR_ERR_POS = 2,     /* a negative position (RoPE) */
  CIR_ERR_TARGET = 3,  /* a cross-entropy target outside [0, V) */
  CIR_ERR_CACHE = 4    /* a KV-cache slot or position outside the cache */
};

/* Status codes of the non-CUDA parts (cuBLASLt, NCCL, dlopen), above every cudaError_t. */
enum {
  CIR_STATUS_CUBLAS = 100000, /* + cublasStatus_t */
  CIR_STATUS_NO_CUBLASLT = 200001,
  CIR_STATUS_NO_NCCL = 200002,
  CIR_STATUS_NCCL = 300000    /* + ncclResult_t */
};

/* ---- elementwise (elementwise.cu) ---- */
/* dst[i] = src[i] for i < n, converting between float types. */
cudaError_t cir_convert(void *dst, int ddt, const void *src, int sdt, size_t n, cudaStream_t s);
/* x[i] *= a. */
cudaError_t cir_scale(void *x, int dt, size_t n, float a, cudaStream_t s);
/* out = a + b, all n elements of type dt. */
cudaError_t cir_add(void *out, const void *a, const void *b, int dt, size_t n, cudaStream_t s);
/* *out (device double) = Σ x[i]², fp64 accumulation; partial: CIR_SUMSQ_BLOCKS doubles of scratch.
 * Deterministic. */
#define CIR_SUMSQ_BLOCKS 512
cudaError_t cir_sumsq(double *out, double *partial, const void *x, int dt, size_t n, cudaStream_t s);
/* out (N,C) = table (V,C)[ids (N)]; an id outside [0,V) writes zeros and sets CIR_ERR_ID. */
cudaError_t cir_embedding(void *out, int odt, const int32_t *ids, const void *table, int tdt,
                          int N, int C, int V, int *err, cudaStream_t s);
/* dtable (V,C) F32 [ids[n]] += dout (N,C)[n]. Deterministic (no atomics): column c and id
 * bucket id%16 belong to one thread, which visits tokens in order. Bad ids are skipped. */
cudaError_t cir_embedding_backward(float *dtable, const void *dout, int ddt, const int32_t *ids,
                                   int N, int C, int V, cudaStream_t s);
/* In-place rotate-half RoPE of the first H+Hkv heads of each row of x (N, W), head dim D, by
 * pos (N); sign -1 applies the inverse rotation. Angles in fp64 from log_theta = ln(theta),
 * computed by the caller (no libm call on the host: the GPU bundle needs an old glibc). */
cudaError_t cir_rope(void *x, int dt, const int32_t *pos, int N, int W, int heads, int D, double log_theta,
                     float sign, int *err, cudaStream_t s);
/* out (N,I) = silu(gu[:, :I]) * gu[:, I:], gu (N,2I). */
cudaError_t cir_swiglu(void *out, const void *gu, int dt, int N, int I, cudaStream_t s);
/* dgu (N,2I) = gradient of SwiGLU given dout (N,I). */
cudaError_t cir_swiglu_backward(void *dgu, const void *dout, const void *gu, int dt, int N, int I,
                                cudaStream_t s);
/* out (N,OC) += bias (OC). */
cudaError_t cir_bias_add(void *out, int odt, const void *bias, int bdt, int N, int OC, cudaStream_t s);
/* dbias (OC) F32 += Σ_n dout (N,OC). Deterministic. */
cudaError_t cir_bias_backward(float *dbias, const void *dout, int ddt, int N, int OC, cudaStream_t s);
/* kc, vc (S,T,Hkv,D)[slot[n], pos[n]] = k, v of token n of qkv (N,(H+2Hkv)*D). */
cudaError_t cir_kv_store(void *kc, void *vc, const void *qkv, int dt, const int32_t *slot,
                         const int32_t *pos, int N, int H, int Hkv, int D, int S, int T, int *err,
                         cudaStream_t s);

/* ---- norms (norm.cu) ---- */
/* res = a + b when a and b are given (else the input is `in` = a); out = res * rstd * w;
 * rstd (N) F32. Rows of C elements of type dt; w of type wdt. */
cudaError_t cir_rmsnorm(void *res, void *out, float *rstd, const void *a, const void *b, const void *w,
                        int dt, int wdt, int N, int C, float eps, cudaStream_t s);
/* din (N,C) += ∂out/∂in·dout; dw (C) F32 += Σ_n dout·in·rstd. partial: scratch of
 * cir_rmsnorm_backward_scratch(N, C) floats. Deterministic. */
size_t cir_rmsnorm_backward_scratch(int N, int C);
cudaError_t cir_rmsnorm_backward(void *din, float *dw, const void *dout, const void *in, const void *w,
                                 const float *rstd, int dt, int wdt, int N, int C, float *partial,
                                 cudaStream_t s);

/* ---- attention (attention.cu), bf16 only, D <= 256, H % Hkv == 0 ---- */
/* Causal grouped-KV attention over B packed sequences (starts (B+1) on the device, longest
 * maxLen): out (N,H*D) bf16, lse (N,H) F32. Flash style: 16 queries × 32-key tiles in shared
 * memory, online softmax in fp32. */
cudaError_t cir_attention(cir_bf16 *out, float *lse, const cir_bf16 *qkv, const int32_t *starts, int B,
                          int maxLen, int H, int Hkv, int D, cudaStream_t s);
/* dqkv (N,(H+2Hkv)*D) = gradient through cir_attention. dscratch: N*H floats. Two passes (dq
 * over query tiles, dk/dv over key tiles): no atomics, deterministic. */
cudaError_t cir_attention_backward(cir_bf16 *dqkv, const cir_bf16 *dout, const cir_bf16 *out,
                                   const float *lse, const cir_bf16 *qkv, const int32_t *starts, int N,
                                   int B, int maxLen, int H, int Hkv, int D, float *dscratch, cudaStream_t s);
/* Decoding: out (N,H*D) where query n attends cache rows [slot[n], 0..pos[n]] of kc, vc
 * (S,T,Hkv,D). Split over the key axis (flash-decoding): nsplit chunks of chunk keys, partial
 * results in scratch (cir_attention_kv_scratch floats), combined by a second kernel. H/Hkv <= 8. */
size_t cir_attention_kv_scratch(int N, int H, int D, int nsplit);
cudaError_t cir_attention_kv(cir_bf16 *out, const cir_bf16 *qkv, const cir_bf16 *kc, const cir_bf16 *vc,
                             const int32_t *slot, const int32_t *pos, int N, int H, int Hkv, int D, int S,
                             int T, int nsplit, int chunk, float *scratch, int *err, cudaStream_t s);

/* ---- loss and sampling (loss.cu) ---- */
/* Per row of logits (N,V): lse, logp = logits[target] − lse, ent (may be NULL) = entropy, all
 * F32, one pass (online max/sum). A target outside [0,V) gives logp 0 and CIR_ERR_TARGET. */
cudaError_t cir_cross_entropy(float *logp, float *lse, float *ent, const void *logits, int dt,
                              const int32_t *targets, int N, int V, int *err, cudaStream_t s);
/* dlogits (N,V, type ddt) = dlogp[n]·(onehot(target) − p) − dent[n]·p·(log p + ent[n]) with
 * p = exp(logits − lse); dent and ent may be NULL (no entropy term); may alias logits when
 * ddt == dt. */
cudaError_t cir_cross_entropy_backward(void *dlogits, int ddt, const float *dlogp, const float *dent,
                                       const void *logits, int dt, const float *lse, const float *ent,
                                       const int32_t *targets, int N, int V, cudaStream_t s);
/* ids (B) and logp (B, under the unscaled softmax) from logits (B,V) and uniforms u (B).
 * temperature <= 0: argmax, ties to the lowest id. Otherwise softmax(logits/T) cut to the top k
 * (k <= 0: no cut) and then to the smallest most-probable set of mass >= top_p (ties broken by
 * lower id, as the CPU backend), and drawn by inverse CDF over the kept ids in id order. */
cudaError_t cir_sample(int32_t *ids, float *logp, const void *logits, int dt, const float *u, int B,
                       int V, float temperature, float top_p, int top_k, cudaStream_t s);

/* ---- optimizer (optim.cu) ---- */
/* One AdamW step over n parameters (torch.optim.AdamW): g = grads·scale; p = p·(1 − lr·wd);
 * m += (g − m)(1 − b1); v = b2·v + (1 − b2)g²; p −= step_size·m / (sqrt(v)/bc2_sqrt + eps).
 * With master (F32) the step is made on master and rounded into params (type pdt). */
cudaError_t cir_adamw(void *params, int pdt, float *master, const float *grads, float *m, float *v,
                      size_t n, float lr, float wd, float b1, float b2, float eps, float scale,
                      float step_size, float bc2_sqrt, cudaStream_t s);

/* ---- GEMM through cuBLASLt (gemm.cu) ---- */
/* A per-device cuBLASLt context with its workspace and a cache of chosen algorithms. */
typedef struct cir_gemm cir_gemm;
/* cir_gemm_open loads cuBLASLt (dlopen, sonames 13/12/11) and creates a context with a
 * workspace of ws_bytes on the current device; the status is 0, a cudaError_t, or a CIR_STATUS_*
 * code. *version receives cublasLtGetVersion(). */
int cir_gemm_open(cir_gemm **g, size_t ws_bytes, size_t *version);
void cir_gemm_close(cir_gemm *g);
/* Row-major D (M,Nc) = alpha · op(X)·op(Y) + beta · D, where the operands follow the model's
 * conventions:
 *   mode 0 (forward):   D (N,OC) = in (N,C) · w (OC,C)ᵀ [+ bias (OC), fused when bias != NULL]
 *   mode 1 (din):       D (N,C)  = dout (N,OC) · w (OC,C)
 *   mode 2 (dw):        D (OC,C) = beta·D + dout (N,OC)ᵀ · in (N,C)
 * x and y are bf16; D has type ddt (CIR_BF16 or CIR_F32); bias has type ddt. Dims: (N, C, OC). */
int cir_gemm_run(cir_gemm *g, int mode, void *d, int ddt, const cir_bf16 *x, const cir_bf16 *y,
                 const void *bias, int N, int C, int OC, float beta, cudaStream_t s);

/* ---- NCCL (nccl.cu) ---- */
/* cir_nccl_open loads libnccl.so.2; 0 or CIR_STATUS_NO_NCCL. */
int cir_nccl_open(void);
/* cir_nccl_init_all creates one communicator per device of devs (single process). */
int cir_nccl_init_all(void **comms, int ndev, const int *devs);
/* cir_nccl_all_reduce_sum sums count elements of type dt (CIR_F32/CIR_BF16) in place. */
int cir_nccl_all_reduce_sum(void *buf, size_t count, int dt, void *comm, cudaStream_t s);
/* cir_nccl_reduce_scatter_sum sets recv (count elements of type dt) to the sum over the ranks
 * of send[rank·count : (rank+1)·count]. */
int cir_nccl_reduce_scatter_sum(const void *send, void *recv, size_t count, int dt, void *comm, cudaStream_t s);
/* cir_nccl_all_gather sets recv[r·bytes : (r+1)·bytes] to rank r's send (bytes bytes). */
int cir_nccl_all_gather(const void *send, void *recv, size_t bytes, void *comm, cudaStream_t s);
/* cir_nccl_broadcast copies bytes bytes of root's buf into every rank's buf. */
int cir_nccl_broadcast(void *buf, size_t bytes, int root, void *comm, cudaStream_t s);
/* cir_nccl_async_error returns the communicator's asynchronous error (0 while none, or still
 * in progress) as a status. */
int cir_nccl_async_error(void *comm);
/* cir_nccl_abort aborts the communicator's operations and frees it (ncclCommAbort). */
int cir_nccl_abort(void *comm);
int cir_nccl_destroy(void *comm);
/* cir_nccl_error returns NCCL's text for a CIR_STATUS_NCCL+r status, or NULL. */
const char *cir_nccl_error(int status);

#ifdef __cplusplus
}
#endif
#endif
