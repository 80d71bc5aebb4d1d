// nccl.cu: NCCL opened with dlopen (declarations in third_party/nccl). Host code only.
#include <dlfcn.h>
#include <mutex>
#include "common.cuh"
#include "../third_party/nccl/cirnccl.h"

namespace {
struct Api {
#define CIRNCCL_FIELD(name, type, sym) type name;
  CIRNCCL_SYMBOLS(CIRNCCL_FIELD)
#undef CIRNCCL_FIELD
};
std::once_flag once;
Api api;
bool ok_api = false;
void load() {
  const char *names[] = CIRNCCL_SONAMES;
  for (const char *so : names) {
    void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!h) continue;
    bool ok = true;
#define CIRNCCL_LOAD(name, type, sym) \
  api.name = (type)dlsym(h, sym);     \
  ok = ok && api.name != nullptr;
    CIRNCCL_SYMBOLS(CIRNCCL_LOAD)
#undef CIRNCCL_LOAD
    if (ok) {
      ok_api = true;
      return;
    }
    dlclose(h);
  }
}
int st(cirnccl_result r) { return r == 0 ? 0 : CIR_STATUS_NCCL + r; }
}  // namespace

extern "C" int cir_nccl_open(void) {
  std::call_once(once, load);
  return ok_api ? 0 : CIR_STATUS_NO_NCCL;
}

extern "C" int cir_nccl_init_all(void **comms, int ndev, const int *devs) {
  if (int e = cir_nccl_open()) return e;
  return st(api.comm_init_all((cirnccl_comm *)comms, ndev, devs));
}

extern "C" int cir_nccl_all_reduce_sum(void *buf, size_t count, int dt, void *comm, cudaStream_t s) {
  if (int e = cir_nccl_open()) return e;
  int t = dt == CIR_BF16 ? CIRNCCL_BFLOAT16 : CIRNCCL_FLOAT32;
  return st(api.all_reduce(buf, buf, count, t, CIRNCCL_SUM, comm, (void *)s));
}

extern "C" int cir_nccl_reduce_scatter_sum(const void *send, void *recv, size_t count, int dt, void *comm,
                                           cudaStream_t s) {
  if (int e = cir_nccl_open()) return e;
  int t = dt == CIR_BF16 ? CIRNCCL_BFLOAT16 : CIRNCCL_FLOAT32;
  return st(api.reduce_scatter(send, recv, count, t, CIRNCCL_SUM, comm, (void *)s));
}

extern "C" int cir_nccl_all_gather(const void *send, void *recv, size_t bytes, void *comm, cudaStream_t s) {
  if (int e = cir_nccl_open()) return e;
  return st(api.all_gather(send, recv, bytes, CIRNCCL_INT8, comm, (void *)s));
}

extern "C" int cir_nccl_broadcast(void *buf, size_t bytes, int root, void *comm, cudaStream_t s) {
  if (int e = cir_nccl_open()) return e;
  return st(api.broadcast(buf, buf, bytes, CIRNCCL_INT8, root, comm, (void *)s));
}

extern "C" int cir_nccl_async_error(void *comm) {
  if (int e = cir_nccl_open()) return e;
  cirnccl_result r = 0;
  if (int e = st(api.async_error(comm, &r))) return e;
  return r == CIRNCCL_IN_PROGRESS ? 0 : st(r);
}

extern "C" int cir_nccl_abort(void *comm) {
  if (int e = cir_nccl_open()) return e;
  return st(api.comm_abort(comm));
}

extern "C" int cir_nccl_destroy(void *comm) {
  if (int e = cir_nccl_open()) return e;
  return st(api.comm_destroy(comm));
}

extern "C" const char *cir_nccl_error(int status) {
  if (status <= CIR_STATUS_NCCL || !ok_api) return nullptr;
  return api.error_string(status - CIR_STATUS_NCCL);
}
