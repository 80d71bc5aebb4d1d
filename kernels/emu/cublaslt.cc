// cublaslt.cc: the cuBLASLt entry points kernels/gemm.cu calls (third_party/cublaslt/cirlt.h),
// on the CPU with cuBLASLt's semantics: column-major layouts with leading dimensions, TRANSA /
// TRANSB, D = alpha·op(A)·op(B) + beta·C (C not read when beta is 0), the BIAS epilogue (a
// vector of D's rows added to every column), fp32 accumulation (CUBLAS_COMPUTE_32F) and one
// rounding of each output to D's type (bf16: nearest even). Descriptors, layouts, preferences
// and the heuristic are checked as cuBLASLt checks them (dimensions, types, attribute sizes);
// the operands must lie inside live device allocations of the current device and be as aligned
// as the preference promised when the algorithm was chosen.
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "../../third_party/cublaslt/cirlt.h"
#include "emu.h"

namespace {

enum {
  kOK = 0,
  kInvalidValue = 7,
  kNotSupported = 15,
  kAlgoMagic = 0x63697265  // "cire"
};

struct Handle {
  int magic;
};
struct Desc {
  int compute, scale;
  int32_t transa = CIRLT_OP_N, transb = CIRLT_OP_N;
  uint32_t epilogue = CIRLT_EPILOGUE_DEFAULT;
  const void *bias = nullptr;
  int32_t bias_type = -1;
};
struct Layout {
  int type;
  uint64_t rows, cols;
  int64_t ld;
};
struct Pref {
  uint64_t ws = 0;
  uint32_t align[4] = {256, 256, 256, 256};
};

size_t elem(int type) { return type == CIRLT_R_32F ? 4 : 2; }

float load(const void *p, int type, size_t i) {
  if (type == CIRLT_R_32F) return ((const float *)p)[i];
  uint32_t u = (uint32_t)((const uint16_t *)p)[i] << 16;  // bf16
  float f;
  memcpy(&f, &u, 4);
  return f;
}

void store(void *p, int type, size_t i, float v) {
  if (type == CIRLT_R_32F) {
    ((float *)p)[i] = v;
    return;
  }
  uint32_t u;
  memcpy(&u, &v, 4);
  ((uint16_t *)p)[i] = (u & 0x7fffffffu) > 0x7f800000u ? 0x7fff : (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// shape checks the problem and returns m, n, k; kOK or a cuBLAS status.
int shape(const Desc *d, const Layout *a, const Layout *b, const Layout *c, const Layout *dd, uint64_t *m, uint64_t *n,
          uint64_t *k) {
  if (!d || !a || !b || !c || !dd) return kInvalidValue;
  if (d->compute != CIRLT_COMPUTE_32F || d->scale != CIRLT_R_32F) return kNotSupported;
  if (a->type != CIRLT_R_16BF || b->type != CIRLT_R_16BF) return kNotSupported;
  if (dd->type != CIRLT_R_32F && dd->type != CIRLT_R_16BF) return kNotSupported;
  if (c->type != dd->type || c->rows != dd->rows || c->cols != dd->cols) return kNotSupported;
  if (d->epilogue != CIRLT_EPILOGUE_DEFAULT && d->epilogue != CIRLT_EPILOGUE_BIAS) return kNotSupported;
  if (d->epilogue == CIRLT_EPILOGUE_BIAS && d->bias_type != -1 && d->bias_type != dd->type) return kNotSupported;
  *m = d->transa == CIRLT_OP_N ? a->rows : a->cols;
  *k = d->transa == CIRLT_OP_N ? a->cols : a->rows;
  uint64_t kb = d->transb == CIRLT_OP_N ? b->rows : b->cols;
  *n = d->transb == CIRLT_OP_N ? b->cols : b->rows;
  if (kb != *k || dd->rows != *m || dd->cols != *n) return kInvalidValue;
  for (const Layout *l : {a, b, c, dd})
    if (l->ld < (int64_t)l->rows || l->ld < 1) return kInvalidValue;
  return kOK;
}

// inside reports an operand that is not inside one live allocation of the current device.
bool inside(const char *what, const void *p, const Layout *l) {
  size_t bytes = ((size_t)l->ld * (l->cols - 1) + l->rows) * elem(l->type);
  bool host = false;
  int dev = cir_emu::device_of(p, bytes, &host);
  if (dev == cir_emu::current_device() && !host) return true;
  cir_emu::report("cublasLtMatmul: %s (%p, %llu×%llu, ld %lld) is not inside one live allocation of device %d", what, p,
                  (unsigned long long)l->rows, (unsigned long long)l->cols, (long long)l->ld, cir_emu::current_device());
  return false;
}

__attribute__((no_sanitize_address)) void gemm_rows(float *out, const float *A, const float *B, uint64_t m, uint64_t n,
                                                      uint64_t k) {
  for (uint64_t j = 0; j < n; j++)
    for (uint64_t i = 0; i < m; i++) {
      const float *x = A + i * k, *y = B + j * k;
      float acc = 0.f;
      for (uint64_t q = 0; q < k; q++) acc += x[q] * y[q];
      out[j * m + i] = acc;
    }
}

cirlt_status lt_create(cirlt_handle *h) {
  *h = new Handle{1};
  return kOK;
}
cirlt_status lt_destroy(cirlt_handle h) {
  delete (Handle *)h;
  return kOK;
}
size_t lt_version(void) { return 120000; }
cirlt_status desc_create(cirlt_matmul_desc *d, int compute, int scale) {
  Desc *x = new Desc();
  x->compute = compute;
  x->scale = scale;
  *d = x;
  return kOK;
}
cirlt_status desc_destroy(cirlt_matmul_desc d) {
  delete (Desc *)d;
  return kOK;
}
cirlt_status desc_set(cirlt_matmul_desc dp, int attr, const void *buf, size_t size) {
  Desc *d = (Desc *)dp;
  switch (attr) {
    case CIRLT_DESC_TRANSA:
    case CIRLT_DESC_TRANSB: {
      int32_t v;
      if (size != sizeof v) return kInvalidValue;
      memcpy(&v, buf, 4);
      if (v != CIRLT_OP_N && v != CIRLT_OP_T) return kInvalidValue;
      (attr == CIRLT_DESC_TRANSA ? d->transa : d->transb) = v;
      return kOK;
    }
    case CIRLT_DESC_EPILOGUE:
      if (size != sizeof d->epilogue) return kInvalidValue;
      memcpy(&d->epilogue, buf, size);
      return kOK;
    case CIRLT_DESC_BIAS_POINTER:
      if (size != sizeof d->bias) return kInvalidValue;
      memcpy(&d->bias, buf, size);
      return kOK;
    case CIRLT_DESC_BIAS_DATA_TYPE:
      if (size != sizeof d->bias_type) return kInvalidValue;
      memcpy(&d->bias_type, buf, size);
      return kOK;
  }
  return kInvalidValue;
}
cirlt_status layout_create(cirlt_layout *l, int type, uint64_t rows, uint64_t cols, int64_t ld) {
  if (type != CIRLT_R_32F && type != CIRLT_R_16BF && type != CIRLT_R_16F) return kNotSupported;
  *l = new Layout{type, rows, cols, ld};
  return kOK;
}
cirlt_status layout_destroy(cirlt_layout l) {
  delete (Layout *)l;
  return kOK;
}
cirlt_status pref_create(cirlt_preference *p) {
  *p = new Pref();
  return kOK;
}
cirlt_status pref_destroy(cirlt_preference p) {
  delete (Pref *)p;
  return kOK;
}
cirlt_status pref_set(cirlt_preference pp, int attr, const void *buf, size_t size) {
  Pref *p = (Pref *)pp;
  if (attr == CIRLT_PREF_MAX_WORKSPACE_BYTES) {
    if (size != sizeof p->ws) return kInvalidValue;
    memcpy(&p->ws, buf, size);
    return kOK;
  }
  if (attr >= CIRLT_PREF_MIN_ALIGNMENT_A_BYTES && attr <= CIRLT_PREF_MIN_ALIGNMENT_D_BYTES) {
    uint32_t v;
    if (size != sizeof v) return kInvalidValue;
    memcpy(&v, buf, 4);
    p->align[attr - CIRLT_PREF_MIN_ALIGNMENT_A_BYTES] = v;
    return kOK;
  }
  return kInvalidValue;
}
cirlt_status heuristic(cirlt_handle h, cirlt_matmul_desc d, cirlt_layout a, cirlt_layout b, cirlt_layout c,
                       cirlt_layout dd, cirlt_preference pref, int requested, cirlt_heuristic *res, int *returned) {
  *returned = 0;
  if (!h || !pref || requested < 1) return kInvalidValue;
  uint64_t m, n, k;
  if (int st = shape((Desc *)d, (Layout *)a, (Layout *)b, (Layout *)c, (Layout *)dd, &m, &n, &k)) return st;
  const Pref *p = (const Pref *)pref;
  uint32_t al = p->align[0];
  for (uint32_t x : p->align) al = x < al ? x : al;
  if (al < 2) return kNotSupported;  // bf16 operands need at least their own alignment
  memset(res, 0, sizeof *res);
  res->algo.data[0] = kAlgoMagic;
  res->algo.data[1] = al;  // the alignment this algorithm may assume
  res->waves_count = 1.f;
  *returned = 1;
  return kOK;
}
cirlt_status matmul(cirlt_handle h, cirlt_matmul_desc dp, const void *alpha, const void *A, cirlt_layout la,
                    const void *B, cirlt_layout lb, const void *beta, const void *C, cirlt_layout lc, void *D,
                    cirlt_layout ld, const cirlt_algo *algo, void *ws, size_t ws_bytes, void *stream) {
  (void)ws, (void)ws_bytes, (void)stream;
  if (!h || !alpha || !beta) return kInvalidValue;
  const Desc *d = (const Desc *)dp;
  const Layout *a = (const Layout *)la, *b = (const Layout *)lb, *c = (const Layout *)lc, *dd = (const Layout *)ld;
  uint64_t m, n, k;
  if (int st = shape(d, a, b, c, dd, &m, &n, &k)) return st;
  if (!algo || algo->data[0] != kAlgoMagic) return kInvalidValue;
  for (const void *ptr : {A, B, C, (const void *)D}) {
    uintptr_t u = (uintptr_t)ptr;
    if (u & (algo->data[1] - 1)) {
      cir_emu::report("cublasLtMatmul: operand %p is less aligned than the %llu bytes the algorithm was chosen for", ptr,
                      (unsigned long long)algo->data[1]);
      return kInvalidValue;
    }
  }
  float al = *(const float *)alpha, be = *(const float *)beta;
  if (!inside("A", A, a) || !inside("B", B, b) || !inside("D", D, dd) || (be != 0.f && !inside("C", C, c)))
    return kInvalidValue;
  const bool bias = d->epilogue == CIRLT_EPILOGUE_BIAS;
  if (bias) {
    Layout bl{dd->type, m, 1, (int64_t)m};
    if (!d->bias || !inside("bias", d->bias, &bl)) return kInvalidValue;
  }
  // op(A) as m rows of k, op(B)ᵀ as n rows of k, in fp32 (bf16 → fp32 is exact).
  std::vector<float> Af(m * k), Bf(n * k), out(m * n);
  for (uint64_t i = 0; i < m; i++)
    for (uint64_t q = 0; q < k; q++)
      Af[i * k + q] = load(A, a->type, d->transa == CIRLT_OP_N ? i + q * a->ld : q + i * a->ld);
  for (uint64_t j = 0; j < n; j++)
    for (uint64_t q = 0; q < k; q++)
      Bf[j * k + q] = load(B, b->type, d->transb == CIRLT_OP_N ? q + j * b->ld : j + q * b->ld);
  gemm_rows(out.data(), Af.data(), Bf.data(), m, n, k);
  for (uint64_t j = 0; j < n; j++)
    for (uint64_t i = 0; i < m; i++) {
      float v = al * out[j * m + i];
      if (be != 0.f) v += be * load(C, c->type, i + j * c->ld);
      if (bias) v += load(d->bias, dd->type, i);
      store(D, dd->type, i + j * dd->ld, v);
    }
  return kOK;
}

}  // namespace

namespace cir_emu {
struct Sym {
  const char *name;
  void *fn;
};
extern const Sym cublaslt_syms[] = {
#define CIR_EMU_LT(field, type, sym) {sym, (void *)(type) & field},
#define create lt_create
#define destroy lt_destroy
#define get_version lt_version
    CIRLT_SYMBOLS(CIR_EMU_LT)
#undef create
#undef destroy
#undef get_version
#undef CIR_EMU_LT
    {nullptr, nullptr}};
}  // namespace cir_emu
