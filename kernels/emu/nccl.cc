// nccl.cc: the NCCL entry points kernels/nccl.cu calls (third_party/nccl/cirnccl.h), for the
// emulated devices of one process: communicators (ncclCommInitAll, or ncclCommInitRank with a
// unique id), the collectives (all-reduce and reduce-scatter as sum or average of fp32 or bf16,
// all-gather and broadcast of any type), each returning when every rank has called it, as a
// synchronous stream would, and ncclCommAbort, which fails the collectives the communicator's
// group is waiting in or will start (the async error of every rank of the group). Buffers must
// be live allocations of the communicator's device, which must be the calling thread's current
// device. bf16 sums are accumulated in fp32 and rounded once.
#include <string.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "../../third_party/nccl/cirnccl.h"
#include "emu.h"

namespace {

enum { kSuccess = 0, kSystemError = 2, kInvalidArgument = 4, kInvalidUsage = 5, kRemoteError = 6 };
constexpr auto kWait = std::chrono::seconds(120);

struct Group {
  std::mutex mu;
  std::condition_variable cv;
  int nranks = 0, joined = 0, arrived = 0, refs = 0;
  uint64_t gen = 0;
  bool aborted = false;  // ncclCommAbort on a communicator of the group
  const char *name = nullptr;  // the collective being joined
  size_t count = 0;
  int dtype = 0, op = 0, root = 0;
  std::vector<const void *> send;
  std::vector<void *> recv;
};
struct Comm {
  int rank, dev;
  Group *g;
};

std::mutex reg_mu;
std::map<std::string, Group *> by_id;
uint64_t next_id = 1;

float ld(const void *p, int dt, size_t i) {
  if (dt == CIRNCCL_FLOAT32) return ((const float *)p)[i];
  uint32_t u = (uint32_t)((const uint16_t *)p)[i] << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
void st(void *p, int dt, size_t i, float v) {
  if (dt == CIRNCCL_FLOAT32) {
    ((float *)p)[i] = v;
    return;
  }
  uint32_t u;
  memcpy(&u, &v, 4);
  ((uint16_t *)p)[i] = (u & 0x7fffffffu) > 0x7f800000u ? 0x7fff : (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

cirnccl_result get_unique_id(cirnccl_unique_id *id) {
  memset(id, 0, sizeof *id);
  std::lock_guard<std::mutex> g(reg_mu);
  uint64_t v = next_id++;
  memcpy(id->internal, "cir-emu", 7);
  memcpy(id->internal + 8, &v, sizeof v);
  return kSuccess;
}

cirnccl_result comm_init_rank(cirnccl_comm *comm, int nranks, cirnccl_unique_id id, int rank) {
  if (nranks < 1 || rank < 0 || rank >= nranks) return kInvalidArgument;
  Group *g;
  {
    std::lock_guard<std::mutex> l(reg_mu);
    std::string key(id.internal, sizeof id.internal);
    Group *&slot = by_id[key];
    if (!slot) {
      slot = new Group();
      slot->nranks = nranks;
      slot->send.resize(nranks);
      slot->recv.resize(nranks);
    }
    g = slot;
  }
  std::unique_lock<std::mutex> l(g->mu);
  if (g->nranks != nranks) return kInvalidArgument;
  g->joined++;
  g->refs++;
  g->cv.notify_all();
  if (!g->cv.wait_for(l, kWait, [g] { return g->joined >= g->nranks; })) return kSystemError;
  *comm = new Comm{rank, cir_emu::current_device(), g};
  return kSuccess;
}

cirnccl_result comm_init_all(cirnccl_comm *comms, int ndev, const int *devs) {
  if (ndev < 1) return kInvalidArgument;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return kSystemError;
  Group *g = new Group();
  g->nranks = g->joined = g->refs = ndev;
  g->send.resize(ndev);
  g->recv.resize(ndev);
  for (int i = 0; i < ndev; i++) {
    int d = devs ? devs[i] : i;
    if (d < 0 || d >= count) return kInvalidArgument;
    comms[i] = new Comm{i, d, g};
  }
  return kSuccess;
}

cirnccl_result comm_destroy(cirnccl_comm c) {
  Comm *x = (Comm *)c;
  if (!x) return kInvalidArgument;
  bool last;
  {
    std::lock_guard<std::mutex> l(x->g->mu);
    last = --x->g->refs == 0;
  }
  if (last && x->g->joined == x->g->nranks) {
    std::lock_guard<std::mutex> l(reg_mu);
    for (auto it = by_id.begin(); it != by_id.end(); ++it)
      if (it->second == x->g) {
        by_id.erase(it);
        break;
      }
  }
  if (last) delete x->g;
  delete x;
  return kSuccess;
}

const char *error_string(cirnccl_result r) {
  switch (r) {
    case 0: return "no error";
    case 1: return "unhandled cuda error";
    case 2: return "unhandled system error (the emulator waited two minutes for the other ranks)";
    case 3: return "internal error";
    case 4: return "invalid argument";
    case 5: return "invalid usage";
    case 6: return "remote process exited or there was a network error";
    case 7: return "NCCL operation in progress";
  }
  return "unknown result code";
}

size_t type_size(int dt) { return dt == CIRNCCL_FLOAT32 ? 4 : dt == CIRNCCL_BFLOAT16 ? 2 : 1; }

// The collectives. A call is checked, posted, and the last rank to arrive does the work of all
// (reading every rank's send before writing any recv, so in-place calls are fine).
enum Kind { kAllReduce, kReduceScatter, kAllGather, kBroadcast };

// join posts rank x's part of collective k: send and recv buffers of send_n and recv_n elements
// of dtype (count is the collective's count argument), and returns when all ranks have done so
// and the work is done, or the group is aborted.
cirnccl_result join(Kind k, const char *name, const void *send, void *recv, size_t count, size_t send_n,
                    size_t recv_n, int dtype, int op, int root, Comm *x) {
  if (!x) return kInvalidArgument;
  if (k == kAllReduce || k == kReduceScatter) {
    if (dtype != CIRNCCL_FLOAT32 && dtype != CIRNCCL_BFLOAT16) return kInvalidArgument;
    if (op != CIRNCCL_SUM && op != CIRNCCL_AVG) return kInvalidArgument;
  }
  Group *g = x->g;
  if (k == kBroadcast && (root < 0 || root >= g->nranks)) return kInvalidArgument;
  if (cir_emu::current_device() != x->dev) {
    cir_emu::report("%s: rank %d's communicator is on device %d, the calling thread's device is %d", name, x->rank,
                    x->dev, cir_emu::current_device());
    return kInvalidUsage;
  }
  size_t es = type_size(dtype);
  bool host = false;
  if (send_n > 0 && (cir_emu::device_of(send, send_n * es, &host) != x->dev || host)) {
    cir_emu::report("%s: rank %d's send buffer is not %zu bytes of device %d's memory", name, x->rank, send_n * es, x->dev);
    return kInvalidArgument;
  }
  if (recv_n > 0 && (cir_emu::device_of(recv, recv_n * es, &host) != x->dev || host)) {
    cir_emu::report("%s: rank %d's receive buffer is not %zu bytes of device %d's memory", name, x->rank, recv_n * es, x->dev);
    return kInvalidArgument;
  }
  std::unique_lock<std::mutex> l(g->mu);
  if (g->aborted) return kRemoteError;
  if (g->arrived == 0) {
    g->name = name, g->count = count, g->dtype = dtype, g->op = op, g->root = root;
  } else if (g->name != name || g->count != count || g->dtype != dtype || g->op != op || g->root != root) {
    cir_emu::report("%s: rank %d asks for %zu elements of type %d (root %d), another rank for %s of %zu of type %d (root %d)",
                    name, x->rank, count, dtype, root, g->name, g->count, g->dtype, g->root);
    return kInvalidArgument;
  }
  g->send[x->rank] = send;
  g->recv[x->rank] = recv;
  uint64_t gen = g->gen;
  if (++g->arrived < g->nranks) {
    if (!g->cv.wait_for(l, kWait, [g, gen] { return g->gen != gen || g->aborted; })) return kSystemError;
    return g->gen != gen ? kSuccess : kRemoteError;
  }
  int n = g->nranks;
  switch (k) {
    case kAllReduce:
    case kReduceScatter: {
      // All-reduce: count elements summed and written to every rank. Reduce-scatter: rank r's
      // chunk r of count elements.
      size_t total = k == kAllReduce ? count : count * n;
      std::vector<float> sum(total, 0.f);
      for (int r = 0; r < n; r++)
        for (size_t i = 0; i < total; i++) sum[i] += ld(g->send[r], dtype, i);
      if (op == CIRNCCL_AVG)
        for (float &v : sum) v /= (float)n;
      for (int r = 0; r < n; r++) {
        size_t off = k == kAllReduce ? 0 : r * count;
        for (size_t i = 0; i < count; i++) st(g->recv[r], dtype, i, sum[off + i]);
      }
      break;
    }
    case kAllGather: {
      std::vector<char> all(count * es * n);
      for (int r = 0; r < n; r++) memcpy(all.data() + r * count * es, g->send[r], count * es);
      for (int r = 0; r < n; r++) memcpy(g->recv[r], all.data(), all.size());
      break;
    }
    case kBroadcast: {
      std::vector<char> src((const char *)g->send[root], (const char *)g->send[root] + count * es);
      for (int r = 0; r < n; r++) memcpy(g->recv[r], src.data(), src.size());
      break;
    }
  }
  g->arrived = 0;
  g->gen++;
  g->cv.notify_all();
  return kSuccess;
}

cirnccl_result all_reduce(const void *send, void *recv, size_t count, int dtype, int op, cirnccl_comm c, void *stream) {
  (void)stream;
  return join(kAllReduce, "ncclAllReduce", send, recv, count, count, count, dtype, op, 0, (Comm *)c);
}

cirnccl_result reduce_scatter(const void *send, void *recv, size_t count, int dtype, int op, cirnccl_comm c,
                              void *stream) {
  (void)stream;
  Comm *x = (Comm *)c;
  return join(kReduceScatter, "ncclReduceScatter", send, recv, count, x ? count * x->g->nranks : 0, count, dtype, op, 0, x);
}

cirnccl_result all_gather(const void *send, void *recv, size_t count, int dtype, cirnccl_comm c, void *stream) {
  (void)stream;
  Comm *x = (Comm *)c;
  return join(kAllGather, "ncclAllGather", send, recv, count, count, x ? count * x->g->nranks : 0, dtype, 0, 0, x);
}

cirnccl_result broadcast(const void *send, void *recv, size_t count, int dtype, int root, cirnccl_comm c, void *stream) {
  (void)stream;
  Comm *x = (Comm *)c;
  // Only the root's send buffer is read.
  return join(kBroadcast, "ncclBroadcast", send, recv, count, x && x->rank == root ? count : 0, count, dtype, 0, root, x);
}

cirnccl_result async_error(cirnccl_comm c, cirnccl_result *err) {
  Comm *x = (Comm *)c;
  if (!x || !err) return kInvalidArgument;
  std::lock_guard<std::mutex> l(x->g->mu);
  *err = x->g->aborted ? kRemoteError : kSuccess;
  return kSuccess;
}

cirnccl_result comm_abort(cirnccl_comm c) {
  Comm *x = (Comm *)c;
  if (!x) return kInvalidArgument;
  {
    std::lock_guard<std::mutex> l(x->g->mu);
    x->g->aborted = true;
    x->g->cv.notify_all();
  }
  return comm_destroy(c);
}

cirnccl_result group_call(void) { return kSuccess; }

}  // namespace

namespace cir_emu {
struct Sym {
  const char *name;
  void *fn;
};
extern const Sym nccl_syms[] = {
#define CIR_EMU_NCCL(field, type, sym) {sym, (void *)(type) & field},
#define group_start group_call
#define group_end group_call
    CIRNCCL_SYMBOLS(CIR_EMU_NCCL)
#undef group_start
#undef group_end
#undef CIR_EMU_NCCL
    {nullptr, nullptr}};
}  // namespace cir_emu
