// gemm.cu: GEMMs through cuBLASLt, opened with dlopen (declarations in third_party/cublaslt),
// with the bias fused through the BIAS epilogue in the forward. Host code only.
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <mutex>
#include <unordered_map>
#include "common.cuh"
#include "../third_party/cublaslt/cirlt.h"

namespace {

struct Api {
#define CIRLT_FIELD(name, type, sym) type name;
  CIRLT_SYMBOLS(CIRLT_FIELD)
#undef CIRLT_FIELD
};

std::once_flag api_once;
Api api;
bool api_ok = false;

void load_api() {
  const char *names[] = CIRLT_SONAMES;
  for (const char *so : names) {
    void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!h) continue;
    bool ok = true;
#define CIRLT_LOAD(name, type, sym) \
  api.name = (type)dlsym(h, sym);   \
  ok = ok && api.name != nullptr;
    CIRLT_SYMBOLS(CIRLT_LOAD)
#undef CIRLT_LOAD
    if (ok) {
      api_ok = true;
      return;
    }
    dlclose(h);
  }
}

// A cached plan: the descriptors and the algorithm for one problem.
struct Plan {
  cirlt_matmul_desc desc;
  cirlt_layout a, b, c;
  cirlt_algo algo;
  bool has_algo;
};

struct Key {
  int mode, ddt, bias, beta, N, C, OC, align;  // align: min alignment of x, y, d in bytes (≤ 256)
  bool operator==(const Key &o) const {
    return mode == o.mode && ddt == o.ddt && bias == o.bias && beta == o.beta && N == o.N && C == o.C &&
           OC == o.OC && align == o.align;
  }
};
struct KeyHash {
  size_t operator()(const Key &k) const {
    size_t h = 1469598103934665603ull;
    for (int v : {k.mode, k.ddt, k.bias, k.beta, k.N, k.C, k.OC, k.align}) h = (h ^ (size_t)(unsigned)v) * 1099511628211ull;
    return h;
  }
};

}  // namespace

struct cir_gemm {
  cirlt_handle h;
  void *ws;
  size_t ws_bytes;
  std::unordered_map<Key, Plan, KeyHash> plans;
};

static int lt(cirlt_status st) { return st == 0 ? 0 : CIR_STATUS_CUBLAS + st; }

extern "C" int cir_gemm_open(cir_gemm **out, size_t ws_bytes, size_t *version) {
  std::call_once(api_once, load_api);
  if (!api_ok) return CIR_STATUS_NO_CUBLASLT;
  cir_gemm *g = new cir_gemm();
  g->ws_bytes = ws_bytes;
  if (int st = lt(api.create(&g->h))) {
    delete g;
    return st;
  }
  if (ws_bytes > 0) {
    cudaError_t e = cudaMalloc(&g->ws, ws_bytes);
    if (e != cudaSuccess) {
      api.destroy(g->h);
      delete g;
      return e;
    }
  }
  if (version) *version = api.get_version();
  *out = g;
  return 0;
}

extern "C" void cir_gemm_close(cir_gemm *g) {
  if (!g) return;
  for (auto &kv : g->plans) {
    api.layout_destroy(kv.second.a);
    api.layout_destroy(kv.second.b);
    api.layout_destroy(kv.second.c);
    api.desc_destroy(kv.second.desc);
  }
  if (g->ws) cudaFree(g->ws);
  api.destroy(g->h);
  delete g;
}

// The three products in cuBLASLt's column-major terms (a row-major (r,c) matrix is a
// column-major (c,r) one):
//   mode 0: Dᵀ (OC×N) = op_T(w: C×OC) · in (C×N)           m=OC, n=N,  k=C
//   mode 1: Dᵀ (C×N)  = w (C×OC) · doutᵀ (OC×N)             m=C,  n=N,  k=OC
//   mode 2: Dᵀ (C×OC) = in (C×N) · op_T(dout: OC×N)         m=C,  n=OC, k=N
static int make_plan(cir_gemm *g, const Key &k, Plan *p) {
  int m, n, ta, tb;
  uint64_t ar, ac, br, bc;
  int64_t lda, ldb;
  switch (k.mode) {
    case 0: m = k.OC, n = k.N, ta = CIRLT_OP_T, tb = CIRLT_OP_N; ar = k.C, ac = k.OC, lda = k.C;
      br = k.C, bc = k.N, ldb = k.C; break;
    case 1: m = k.C, n = k.N, ta = CIRLT_OP_N, tb = CIRLT_OP_N; ar = k.C, ac = k.OC, lda = k.C;
      br = k.OC, bc = k.N, ldb = k.OC; break;
    default: m = k.C, n = k.OC, ta = CIRLT_OP_N, tb = CIRLT_OP_T; ar = k.C, ac = k.N, lda = k.C;
      br = k.OC, bc = k.N, ldb = k.OC; break;
  }
  int st;
  memset(p, 0, sizeof *p);
  if ((st = lt(api.desc_create(&p->desc, CIRLT_COMPUTE_32F, CIRLT_R_32F)))) return st;
  if ((st = lt(api.desc_set(p->desc, CIRLT_DESC_TRANSA, &ta, sizeof ta)))) return st;
  if ((st = lt(api.desc_set(p->desc, CIRLT_DESC_TRANSB, &tb, sizeof tb)))) return st;
  if (k.bias) {
    int epi = CIRLT_EPILOGUE_BIAS, bt = k.ddt == CIR_F32 ? CIRLT_R_32F : CIRLT_R_16BF;
    if ((st = lt(api.desc_set(p->desc, CIRLT_DESC_EPILOGUE, &epi, sizeof epi)))) return st;
    if ((st = lt(api.desc_set(p->desc, CIRLT_DESC_BIAS_DATA_TYPE, &bt, sizeof bt)))) return st;
  }
  int dtype = k.ddt == CIR_F32 ? CIRLT_R_32F : CIRLT_R_16BF;
  if ((st = lt(api.layout_create(&p->a, CIRLT_R_16BF, ar, ac, lda)))) return st;
  if ((st = lt(api.layout_create(&p->b, CIRLT_R_16BF, br, bc, ldb)))) return st;
  if ((st = lt(api.layout_create(&p->c, dtype, m, n, m)))) return st;
  cirlt_preference pref;
  if ((st = lt(api.pref_create(&pref)))) return st;
  size_t ws = g->ws_bytes;
  api.pref_set(pref, CIRLT_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  // The heuristic assumes 256-byte aligned operands unless told: views (Rows of a tensor) may be
  // less aligned.
  uint32_t al = (uint32_t)k.align;
  api.pref_set(pref, CIRLT_PREF_MIN_ALIGNMENT_A_BYTES, &al, sizeof al);
  api.pref_set(pref, CIRLT_PREF_MIN_ALIGNMENT_B_BYTES, &al, sizeof al);
  api.pref_set(pref, CIRLT_PREF_MIN_ALIGNMENT_C_BYTES, &al, sizeof al);
  api.pref_set(pref, CIRLT_PREF_MIN_ALIGNMENT_D_BYTES, &al, sizeof al);
  cirlt_heuristic res;
  int got = 0;
  st = lt(api.heuristic(g->h, p->desc, p->a, p->b, p->c, p->c, pref, 1, &res, &got));
  api.pref_destroy(pref);
  if (st) return st;
  if (got < 1) return CIR_STATUS_CUBLAS + 15;  // CUBLAS_STATUS_NOT_SUPPORTED
  p->algo = res.algo;
  p->has_algo = true;
  return 0;
}

extern "C" int cir_gemm_run(cir_gemm *g, int mode, void *d, int ddt, const cir_bf16 *x, const cir_bf16 *y,
                            const void *bias, int N, int C, int OC, float beta, cudaStream_t s) {
  if (N == 0 || C == 0 || OC == 0) return 0;
  uintptr_t bits = (uintptr_t)d | (uintptr_t)x | (uintptr_t)y | 256;
  int align = (int)(bits & (~bits + 1));  // the lowest set bit: the common alignment, at most 256
  Key k = {mode, ddt, bias != nullptr, beta != 0.f, N, C, OC, align};
  auto it = g->plans.find(k);
  if (it == g->plans.end()) {
    Plan p;
    int st = make_plan(g, k, &p);
    if (st) return st;
    it = g->plans.emplace(k, p).first;
  }
  Plan &p = it->second;
  if (bias) {
    int st = lt(api.desc_set(p.desc, CIRLT_DESC_BIAS_POINTER, &bias, sizeof bias));
    if (st) return st;
  }
  // Operand order per mode: mode 0 A=w (y), B=in (x); mode 1 A=w (y), B=dout (x); mode 2 A=in (y),
  // B=dout (x). The caller passes x = the (N,·) activation operand and y = the other.
  float alpha = 1.f;
  return lt(api.matmul(g->h, p.desc, &alpha, y, p.a, x, p.b, &beta, d, p.c, d, p.c, &p.algo, g->ws, g->ws_bytes,
                       (void *)s));
}
