// runtime.cc: the CUDA runtime and execution model of the emulator (see cuda_runtime.h and
// cuda_runtime_api.h): devices, memory, streams, launches, the block scheduler with one fibre per
// CUDA thread, barriers, warp operations, and the shadow of shared memory that every load and
// store of the kernels passes through.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cuda_runtime.h"
#include "emu.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CIR_EMU_ASAN 1
#else
#define CIR_EMU_ASAN 0
#endif

#if !defined(__x86_64__)
#error "the CUDA emulator's fibres are written for x86-64"
#endif

namespace cir_emu {

CIR_EMU_TLS uint3 t_threadIdx;
CIR_EMU_TLS uint3 t_blockIdx;
CIR_EMU_TLS dim3 t_blockDim;
CIR_EMU_TLS dim3 t_gridDim;
CIR_EMU_TLS int t_atomic;

namespace {

constexpr int kMaxDevices = 16;
constexpr size_t kStaticSharedMax = 48 * 1024;     // per block, as nvcc enforces
constexpr size_t kDynamicSharedDefault = 48 * 1024;  // without cudaFuncAttributeMaxDynamicSharedMemorySize
constexpr size_t kSharedOptin = 232448;              // sm_90: 227 KiB per block
constexpr size_t kArenaGap = 64;                     // poisoned bytes between shared variables
constexpr size_t kArenaCap = kSharedOptin + kStaticSharedMax + 16 * kArenaGap;
constexpr size_t kStackBytes = 256 * 1024;  // per fibre (AddressSanitizer's reports run on it)
constexpr size_t kPage = 4096;
constexpr int kMaxThreads = 1024;
constexpr int kReportsPerLaunch = 4;

struct Alloc {
  size_t size;
  int dev;
  bool host;
};

std::mutex mu;
std::map<uintptr_t, Alloc> allocs;
int ndev = -1;
size_t total_mem;
size_t used_mem[kMaxDevices];
std::map<const void *, int> max_dynamic;
std::set<const void *> kernel_fns;
std::vector<std::string> kernel_list;  // the kernels launched so far (with template arguments)
std::atomic<long> n_findings{0}, n_launches{0};

CIR_EMU_TLS int t_device;
CIR_EMU_TLS cudaError_t t_last;

void init_locked() {
  if (ndev >= 0) return;
  const char *e = getenv("CIR_EMU_DEVICES");
  ndev = e ? atoi(e) : 2;
  if (ndev < 0) ndev = 0;
  if (ndev > kMaxDevices) ndev = kMaxDevices;
  const char *m = getenv("CIR_EMU_MEMORY_MB");
  total_mem = (size_t)(m ? atol(m) : 16384) << 20;
}

int devices() {
  std::lock_guard<std::mutex> g(mu);
  init_locked();
  return ndev;
}

}  // namespace

void report(const char *fmt, ...) {
  n_findings++;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "cir-emu: %s\n", buf);
}

cudaError_t set_error(cudaError_t e) {
  if (e != cudaSuccess && t_last == cudaSuccess) t_last = e;
  return e;
}

int current_device() { return t_device; }

int device_of(const void *p, size_t n, bool *host) {
  std::lock_guard<std::mutex> g(mu);
  uintptr_t a = (uintptr_t)p;
  auto it = allocs.upper_bound(a);
  if (it == allocs.begin()) return -1;
  --it;
  if (a < it->first || a + n > it->first + it->second.size) return -1;
  if (host) *host = it->second.host;
  return it->second.dev;
}

// ---------------------------------------------------------------------------------------------
// Fibres: a hand-written context switch (callee-saved registers, MXCSR and the x87 control word)
// with AddressSanitizer told of every stack switch.

extern "C" void cir_emu_swap(void **save, void *to);
extern "C" void cir_emu_trampoline();
asm(R"(
  .text
  .globl cir_emu_swap
  .type cir_emu_swap,@function
cir_emu_swap:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size cir_emu_swap,.-cir_emu_swap
  .globl cir_emu_trampoline
  .type cir_emu_trampoline,@function
cir_emu_trampoline:
  movq %rbx, %rdi
  call cir_emu_fibre_main
  ud2
  .size cir_emu_trampoline,.-cir_emu_trampoline
)");

namespace {

enum State { kRun, kBarrier, kWarp, kDone };

struct Fibre {
  void *sp = nullptr;
  char *stack = nullptr;  // usable [stack, stack + kStackBytes); a guard page below
  State state = kDone;
  uint3 tid{};
  int lin = 0;
  // the pending barrier or warp operation
  const char *file = nullptr;
  int line = 0;
  int op = 0, arg = 0, width = 32;
  unsigned mask = 0;
  uint64_t val = 0, res = 0;
};

struct Shadow {
  uint32_t wep, rep;    // barrier epoch of the last write / read (0: never)
  uint16_t wtid, rwarp;  // last writer (kAtomic: an atomic); warp of the readers (kMulti: several)
};
constexpr uint16_t kAtomic = 0xffff, kMulti = 0xffff;

struct Region {
  size_t off, size;
  const char *name;
};

struct Ctx {
  char *arena = nullptr;
  Shadow *shadow = nullptr;
  size_t top = 0, static_bytes = 0;  // the static variables' layout in the arena
  std::vector<std::pair<const void *, size_t>> sites;
  std::vector<Region> regions;
  std::vector<Fibre> fibres;
  void *sched_sp = nullptr;
  // AddressSanitizer is told of two stacks only: the scheduler's (the launching thread's) and
  // one region holding every fibre's stack; a switch between two fibres is not a switch of
  // stacks to it, which saves its bookkeeping on the most frequent switch.
  char *region = nullptr;
  size_t region_size = 0;
  void *sched_fake = nullptr, *fibre_fake = nullptr;
  bool from_sched = false;  // the fibre being entered comes from the scheduler's stack
  const void *prev_lo = nullptr;
  size_t prev_size = 0;
  uint32_t mxcsr = 0;       // the floating-point control words every fibre starts with
  uint16_t fcw = 0;
  const void *sched_lo = nullptr;
  size_t sched_size = 0;
  Fibre *cur = nullptr;
  uint32_t epoch = 0, block_epoch = 0;
  const Launch *launch = nullptr;
  int nthreads = 0;
  bool failed = false;
  int reports = 0;
};

std::mutex ctx_mu;
std::vector<Ctx *> ctx_pool;
CIR_EMU_TLS Ctx *t_ctx;

Ctx *acquire_ctx() {
  {
    std::lock_guard<std::mutex> g(ctx_mu);
    if (!ctx_pool.empty()) {
      Ctx *c = ctx_pool.back();
      ctx_pool.pop_back();
      return c;
    }
  }
  Ctx *c = new Ctx();
  void *a = nullptr;
  if (posix_memalign(&a, 256, kArenaCap) != 0) abort();
  c->arena = (char *)a;
  c->shadow = (Shadow *)calloc(kArenaCap, sizeof(Shadow));
  if (!c->shadow) abort();
  return c;
}

void release_ctx(Ctx *c) {
#if CIR_EMU_ASAN
  ASAN_UNPOISON_MEMORY_REGION(c->arena, kArenaCap);
#endif
  std::lock_guard<std::mutex> g(ctx_mu);
  ctx_pool.push_back(c);
}

inline void start_switch(void **fake, const void *lo, size_t size) {
#if CIR_EMU_ASAN
  __sanitizer_start_switch_fiber(fake, lo, size);
#else
  (void)fake, (void)lo, (void)size;
#endif
}
inline void finish_switch(void *fake, const void **lo, size_t *size) {
#if CIR_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake, lo, size);
#else
  (void)fake, (void)lo, (void)size;
#endif
}

void where(const Ctx *c, const Fibre *f, char *buf, size_t n) {
  snprintf(buf, n, "%s block (%u,%u,%u) thread (%u,%u,%u)", c->launch->name, t_blockIdx.x, t_blockIdx.y,
           t_blockIdx.z, f->tid.x, f->tid.y, f->tid.z);
}

// finding reports a problem of the running launch (the first few in detail) and fails it.
void finding(Ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void finding(Ctx *c, const char *fmt, ...) {
  c->failed = true;
  if (c->reports++ >= kReportsPerLaunch) {
    n_findings++;
    return;
  }
  char buf[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  report("%s", buf);
}

void pc_string(void *pc, char *buf, size_t n) {
#if CIR_EMU_ASAN
  __sanitizer_symbolize_pc(pc, "%F %S", buf, n);
#else
  snprintf(buf, n, "pc %p", pc);
#endif
}

}  // namespace
}  // namespace cir_emu

using namespace cir_emu;

namespace cir_emu {
namespace {
// next_runnable returns the first runnable fibre after f in this round, or null.
Fibre *next_runnable(Ctx *c, Fibre *f) {
  for (int i = f->lin + 1; i < c->nthreads; i++)
    if (c->fibres[i].state == kRun) return &c->fibres[i];
  return nullptr;
}

// leave switches from fibre f to the next runnable fibre of the round (on the same stack region
// for ASan), or back to the scheduler at the end of the round.
void leave(Ctx *c, Fibre *f) {
  if (Fibre *g = next_runnable(c, f)) {
    c->cur = g;
    t_threadIdx = g->tid;
    c->from_sched = false;
    cir_emu_swap(&f->sp, g->sp);
  } else {
    start_switch(&c->fibre_fake, c->sched_lo, c->sched_size);
    cir_emu_swap(&f->sp, c->sched_sp);
  }
  // resumed: by the scheduler (from its stack) or by another fibre (same region)
  if (c->from_sched) {
    c->from_sched = false;
    finish_switch(c->fibre_fake, nullptr, nullptr);
  }
}
}  // namespace
}  // namespace cir_emu

extern "C" void cir_emu_fibre_main(Fibre *f) {
  // (no local of this frame may be addressable: the frame never returns, so ASan would keep
  // red zones around it poisoned on the reused stack)
  Ctx *c = t_ctx;
  if (c->from_sched) {
    c->from_sched = false;
    finish_switch(c->fibre_fake, &c->prev_lo, &c->prev_size);
    c->sched_lo = c->prev_lo, c->sched_size = c->prev_size;
  }
  c->launch->run(c->launch->call);
  f->state = kDone;
  leave(c, f);
  __builtin_unreachable();
}

namespace cir_emu {
namespace {

void init_fibre(Ctx *c, Fibre *f) {
  if (!c->region) {
    c->region_size = (size_t)kMaxThreads * (kStackBytes + kPage);
    char *m = (char *)mmap(nullptr, c->region_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                           -1, 0);
    if (m == MAP_FAILED) {
      perror("cir-emu: fibre stacks");
      abort();
    }
    for (int i = 0; i < kMaxThreads; i++)  // overflow faults instead of corrupting the next stack
      mprotect(m + (size_t)i * (kStackBytes + kPage), kPage, PROT_NONE);
    c->region = m;
  }
  if (!f->stack) f->stack = c->region + (size_t)f->lin * (kStackBytes + kPage) + kPage;
  uintptr_t top = ((uintptr_t)f->stack + kStackBytes) & ~(uintptr_t)15;
#if CIR_EMU_ASAN
  ASAN_UNPOISON_MEMORY_REGION((void *)(top - 4096), 4096);  // the frame of the fibre's last run
#endif
  uint64_t *sp = (uint64_t *)(top - 64);
  memset(sp, 0, 64);
  memcpy(sp, &c->mxcsr, 4);
  memcpy((char *)sp + 4, &c->fcw, 2);
  sp[5] = (uint64_t)f;                         // rbx: the argument of cir_emu_fibre_main
  sp[7] = (uint64_t)&cir_emu_trampoline;       // the return address of the first switch
  f->sp = sp;
}

void run_fibre(Ctx *c, Fibre *f) {
  c->cur = f;
  t_threadIdx = f->tid;
  c->from_sched = true;
  start_switch(&c->sched_fake, c->region, c->region_size);
  cir_emu_swap(&c->sched_sp, f->sp);
  finish_switch(c->sched_fake, nullptr, nullptr);
}

void yield(Ctx *c, Fibre *f) { leave(c, f); }

Ctx *running(const char *what) {
  Ctx *c = t_ctx;
  if (!c || !c->cur) {
    fprintf(stderr, "cir-emu: %s called outside a kernel\n", what);
    abort();
  }
  return c;
}

const char *op_name(int op) {
  static const char *names[] = {"__shfl_sync", "__shfl_xor_sync", "__shfl_up_sync", "__shfl_down_sync",
                                "__ballot_sync", "__any_sync", "__all_sync", "__syncwarp"};
  return op >= 0 && op < 8 ? names[op] : "warp operation";
}

// resolve_warp completes the warp operations of warp w whose lanes have all arrived; it returns
// whether any did, and fails the launch on lanes that meet at different operations.
bool resolve_warp(Ctx *c, int w) {
  int n = c->nthreads, lo = w * 32, hi = lo + 32 < n ? lo + 32 : n;
  bool progress = false;
  for (int i = lo; i < hi; i++) {
    Fibre &f = c->fibres[i];
    if (f.state != kWarp) continue;
    unsigned mask = f.mask;
    if (hi - lo < 32 && (mask >> (hi - lo)) != 0) {
      char at[200];
      where(c, &f, at, sizeof at);
      finding(c, "%s: %s at %s:%d names lanes past the end of the block (mask %#x, %d lanes)", at, op_name(f.op),
              f.file, f.line, mask, hi - lo);
      f.state = kDone;
      return true;
    }
    if (!(mask >> (i - lo) & 1)) {
      char at[200];
      where(c, &f, at, sizeof at);
      finding(c, "%s: %s at %s:%d with a mask (%#x) that leaves out the calling lane", at, op_name(f.op), f.file,
              f.line, mask);
    }
    bool all = true;
    for (int j = lo; j < hi; j++)
      if (mask >> (j - lo) & 1) all = all && c->fibres[j].state == kWarp;
    if (!all) return progress;  // the first waiting lane's group is incomplete: the warp waits
    // every lane of the mask waits at a warp operation: the same one?
    for (int j = lo; j < hi; j++) {
      Fibre &g = c->fibres[j];
      if (!(mask >> (j - lo) & 1)) continue;
      if (g.op != f.op || g.mask != f.mask || g.line != f.line || g.file != f.file || g.width != f.width) {
        char at[200];
        where(c, &g, at, sizeof at);
        finding(c, "%s: lanes of one warp meet at different warp operations: %s at %s:%d and %s at %s:%d", at,
                op_name(f.op), f.file, f.line, op_name(g.op), g.file, g.line);
        return false;
      }
    }
    unsigned bits = 0;
    for (int j = lo; j < hi; j++)
      if ((mask >> (j - lo) & 1) && c->fibres[j].val) bits |= 1u << (j - lo);
    for (int j = lo; j < hi; j++) {
      Fibre &g = c->fibres[j];
      if (!(mask >> (j - lo) & 1)) continue;
      int lane = j - lo, width = g.width, base = lane / width * width, src = lane;
      switch (g.op) {
        case kShflIdx: src = base + ((g.arg % width) + width) % width; break;
        case kShflXor: src = lane ^ g.arg; if (src >= base + width || src < base) src = lane; break;
        case kShflUp: src = lane - g.arg >= base ? lane - g.arg : lane; break;
        case kShflDown: src = lane + g.arg < base + width ? lane + g.arg : lane; break;
      }
      switch (g.op) {
        case kBallot: g.res = bits; break;
        case kAny: g.res = bits != 0; break;
        case kAll: g.res = bits == (mask & (hi - lo == 32 ? 0xffffffffu : (1u << (hi - lo)) - 1)); break;
        case kSyncWarp: g.res = 0; break;
        default:
          if (src >= hi - lo || !(mask >> src & 1)) {
            char at[200];
            where(c, &g, at, sizeof at);
            finding(c, "%s: %s at %s:%d reads lane %d, which is not in the mask %#x", at, op_name(g.op), g.file, g.line,
                    src, mask);
            g.res = 0;
          } else {
            g.res = c->fibres[lo + src].val;
          }
      }
    }
    for (int j = lo; j < hi; j++)
      if (mask >> (j - lo) & 1) c->fibres[j].state = kRun;
    progress = true;
  }
  return progress;
}

// run_block runs the threads of one block to their end; false when the block had to be
// abandoned (a barrier or warp operation that cannot complete).
bool run_block(Ctx *c) {
  int n = c->nthreads;
  dim3 bd = t_blockDim;
  c->epoch++;
  c->block_epoch = c->epoch;
  for (int i = 0; i < n; i++) {
    Fibre &f = c->fibres[i];
    f.lin = i;
    init_fibre(c, &f);
    f.state = kRun;
    f.tid = uint3{(unsigned)i % bd.x, (unsigned)i / bd.x % bd.y, (unsigned)i / (bd.x * bd.y)};
  }
  for (;;) {
    for (int i = 0; i < n; i++)
      if (c->fibres[i].state == kRun) {
        run_fibre(c, &c->fibres[i]);  // runs every runnable fibre of the round, in order
        break;
      }
    c->cur = nullptr;
    bool progress = false;
    for (int w = 0; w * 32 < n; w++) progress = resolve_warp(c, w) || progress;
    if (c->failed && !progress) {
      // a finding inside resolve_warp that leaves lanes waiting: abandon the block
      bool waiting = false;
      for (int i = 0; i < n; i++) waiting = waiting || c->fibres[i].state == kWarp;
      if (waiting) break;
    }
    if (progress) continue;
    int nb = 0, nd = 0, nw = 0;
    const Fibre *fb = nullptr, *fw = nullptr, *other = nullptr;
    for (int i = 0; i < n; i++) {
      const Fibre &f = c->fibres[i];
      if (f.state == kBarrier) {
        nb++;
        if (!fb) fb = &f;
        else if (f.line != fb->line || f.file != fb->file) other = &f;
      }
      if (f.state == kDone) nd++;
      if (f.state == kWarp) nw++, fw = fw ? fw : &f;
    }
    if (nd == n) return true;
    char at[200];
    if (nb > 0 && nw == 0 && nd == 0 && !other) {
      c->epoch++;
      for (int i = 0; i < n; i++) c->fibres[i].state = kRun;
      continue;
    }
    if (other) {
      where(c, other, at, sizeof at);
      finding(c, "%s: __syncthreads at %s:%d while other threads of the block wait at %s:%d", at, other->file,
              other->line, fb->file, fb->line);
    } else if (nb > 0 && nw == 0) {
      where(c, fb, at, sizeof at);
      finding(c, "%s: __syncthreads at %s:%d is reached by %d of the block's %d threads; %d exited before it", at,
              fb->file, fb->line, nb, n, nd);
    } else {
      where(c, fw, at, sizeof at);
      int lane = fw->lin % 32, lo = fw->lin - lane;
      const Fibre *miss = nullptr;
      for (int j = lo; j < lo + 32 && j < n; j++)
        if ((fw->mask >> (j - lo) & 1) && c->fibres[j].state != kWarp) miss = miss ? miss : &c->fibres[j];
      finding(c, "%s: %s at %s:%d never completes: lane %d of the mask %s", at, op_name(fw->op), fw->file, fw->line,
              miss ? miss->lin % 32 : -1,
              !miss ? "is missing" : miss->state == kDone ? "has exited" : "waits at a __syncthreads");
    }
    break;
  }
  // abandoned: the fibres' stacks keep the poisoned red zones of their live frames
#if CIR_EMU_ASAN
  for (int i = 0; i < n; i++) ASAN_UNPOISON_MEMORY_REGION(c->fibres[i].stack, kStackBytes);
#endif
  return false;
}

bool stream_ok(cudaStream_t s);

}  // namespace

void syncthreads(const char *file, int line) {
  Ctx *c = running("__syncthreads");
  Fibre *f = c->cur;
  f->state = kBarrier;
  f->file = file;
  f->line = line;
  yield(c, f);
}

uint64_t warp_op(int op, unsigned mask, uint64_t value, int arg, int width, const char *file, int line) {
  Ctx *c = running(op_name(op));
  Fibre *f = c->cur;
  if (width <= 0 || width > 32 || (width & (width - 1))) {
    char at[200];
    where(c, f, at, sizeof at);
    finding(c, "%s: %s at %s:%d with width %d (a power of two ≤ 32)", at, op_name(op), file, line, width);
    width = 32;
  }
  f->state = kWarp;
  f->op = op;
  f->mask = mask;
  f->val = value;
  f->arg = arg;
  f->width = width;
  f->file = file;
  f->line = line;
  yield(c, f);
  return f->res;
}

void *shared_static(const void *site, size_t bytes, size_t align, const char *name) {
  Ctx *c = running("shared memory");
  for (auto &s : c->sites)
    if (s.first == site) return c->arena + s.second;
  if (align < 16) align = 16;
  size_t off = (c->top + align - 1) / align * align;
  c->static_bytes += bytes;
  if (c->static_bytes > kStaticSharedMax || off + bytes + kArenaGap > kArenaCap) {
    fprintf(stderr, "cir-emu: %s: static shared memory above %zu bytes (%s)\n", c->launch->name, kStaticSharedMax,
            name);
    abort();
  }
  c->top = off + bytes + kArenaGap;
  c->sites.push_back({site, off});
  c->regions.push_back(Region{off, bytes, name});
#if CIR_EMU_ASAN
  ASAN_UNPOISON_MEMORY_REGION(c->arena + off, bytes);
#endif
  memset(c->arena + off, 0xff, bytes);
  return c->arena + off;
}

void *shared_dynamic() { return running("extern __shared__")->arena; }

// shared_access: every load and store of the kernels inside the arena of the running launch.
static void shared_access(Ctx *c, size_t off, size_t n, bool write, void *pc) {
  Fibre *f = c->cur;
  if (!f) return;
  const Region *r = nullptr;
  for (const Region &g : c->regions)
    if (off >= g.off && off + n <= g.off + g.size) r = &g;
  char at[200], loc[300];
  if (!r) {
    where(c, f, at, sizeof at);
    pc_string(pc, loc, sizeof loc);
    finding(c, "%s: %s of %zu bytes at shared offset %zu is outside every shared variable (%s)", at,
            write ? "write" : "read", n, off, loc);
    return;
  }
  const uint16_t tid = (uint16_t)f->lin, warp = (uint16_t)(f->lin / 32);
  const uint32_t ep = c->epoch;
  const char *problem = nullptr;
  for (size_t i = 0; i < n; i++) {
    Shadow &s = c->shadow[off + i];
    bool other_w = s.wep == ep && (s.wtid == kAtomic || s.wtid / 32 != warp);
    bool other_r = s.rep == ep && s.rwarp != warp;
    if (t_atomic) {
      if (s.wep < c->block_epoch) problem = problem ? problem : "an atomic on bytes that no thread of the block wrote since the launch";
      else if ((s.wep == ep && s.wtid != kAtomic && s.wtid / 32 != warp) || other_r)
        problem = problem ? problem : "an atomic racing with another warp's plain access (no __syncthreads between)";
      s.wep = ep;
      s.wtid = kAtomic;
    } else if (!write) {
      if (s.wep < c->block_epoch) problem = problem ? problem : "a read of bytes that no thread of the block wrote since the launch";
      else if (other_w) problem = problem ? problem : "a read racing with another warp's write (no __syncthreads between)";
      if (s.rep != ep) s.rep = ep, s.rwarp = warp;
      else if (s.rwarp != warp) s.rwarp = kMulti;
    } else {
      if (other_r) problem = problem ? problem : "a write racing with another warp's read (no __syncthreads between)";
      else if (other_w) problem = problem ? problem : "a write racing with another warp's write (no __syncthreads between)";
      s.wep = ep;
      s.wtid = tid;
    }
  }
  if (problem) {
    where(c, f, at, sizeof at);
    pc_string(pc, loc, sizeof loc);
    finding(c, "%s: %s: %zu bytes at offset %zu of shared %s (%s)", at, problem, n, off - r->off, r->name, loc);
  }
}

cudaError_t func_set_attribute(const void *fn, int attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || (size_t)value > kSharedOptin) return set_error(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> g(mu);
    max_dynamic[fn] = value;
    return cudaSuccess;
  }
  if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) return cudaSuccess;
  return set_error(cudaErrorInvalidValue);
}

bool check_arg(const char *kernel, int index, const void *p) {
  if (!p) return true;
  bool host = false;
  int d = device_of(p, 0, &host);
  if (d < 0) {
    report("launch of %s: argument %d (%p) points into no live device allocation (host memory, freed memory or a "
           "stray pointer)",
           kernel, index, p);
    return false;
  }
  if (!host && d != t_device) {
    report("launch of %s on device %d: argument %d points into device %d's memory", kernel, t_device, index, d);
    return false;
  }
  return true;
}

cudaError_t launch(const Launch &l) {
  n_launches++;
  {
    std::lock_guard<std::mutex> g(mu);
    if (kernel_fns.insert(l.fn).second) {
      char buf[256] = "";
#if CIR_EMU_ASAN
      __sanitizer_symbolize_pc((void *)((const char *)l.fn + 1), "%f", buf, sizeof buf);
#endif
      kernel_list.push_back(buf[0] && strcmp(buf, "<null>") != 0 ? buf : l.name);
    }
  }
  if (!l.run) return set_error(cudaErrorInvalidValue);  // an argument check failed
  int dev = t_device;
  if (dev >= devices()) return set_error(cudaErrorNoDevice);
  if (!stream_ok(l.stream)) {
    report("launch of %s on device %d: the stream is not a live stream of this device", l.name, dev);
    return set_error(cudaErrorInvalidResourceHandle);
  }
  dim3 g = l.grid, b = l.block;
  size_t threads = (size_t)b.x * b.y * b.z;
  if (threads == 0 || threads > 1024 || b.x > 1024 || b.y > 1024 || b.z > 64 || g.x == 0 || g.y == 0 || g.z == 0 ||
      g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535) {
    report("launch of %s: grid (%u,%u,%u), block (%u,%u,%u) is not a valid configuration", l.name, g.x, g.y, g.z, b.x,
           b.y, b.z);
    return set_error(cudaErrorInvalidConfiguration);
  }
  size_t limit = kDynamicSharedDefault;
  {
    std::lock_guard<std::mutex> lk(mu);
    auto it = max_dynamic.find(l.fn);
    if (it != max_dynamic.end()) limit = (size_t)it->second > limit ? (size_t)it->second : limit;
  }
  if (l.smem > limit) {
    report("launch of %s: %zu bytes of dynamic shared memory, above the kernel's limit of %zu "
           "(cudaFuncAttributeMaxDynamicSharedMemorySize)",
           l.name, l.smem, limit);
    return set_error(cudaErrorInvalidValue);
  }
  Ctx *c = acquire_ctx();
  c->launch = &l;
  c->nthreads = (int)threads;
  c->failed = false;
  c->reports = 0;
  c->top = (l.smem + kArenaGap + 255) / 256 * 256;
  c->static_bytes = 0;
  c->sites.clear();
  c->regions.assign(1, Region{0, l.smem, "extern (dynamic)"});
  memset(c->arena, 0xff, l.smem);  // what a block finds in shared memory: not zeros
#if CIR_EMU_ASAN
  ASAN_POISON_MEMORY_REGION(c->arena, kArenaCap);
  ASAN_UNPOISON_MEMORY_REGION(c->arena, l.smem);
#endif
  if (c->fibres.size() < threads) c->fibres.resize(threads);
  asm volatile("stmxcsr %0" : "=m"(c->mxcsr));
  asm volatile("fnstcw %0" : "=m"(c->fcw));
  Ctx *saved = t_ctx;
  t_ctx = c;
  t_gridDim = g;
  t_blockDim = b;
  size_t nblocks = (size_t)g.x * g.y * g.z;
  for (size_t k = nblocks; k-- > 0;) {
    t_blockIdx = uint3{(unsigned)(k % g.x), (unsigned)(k / g.x % g.y), (unsigned)(k / ((size_t)g.x * g.y))};
    if (!run_block(c)) break;
  }
  t_ctx = saved;
  bool failed = c->failed;
  c->launch = nullptr;
  release_ctx(c);
  return failed ? set_error(cudaErrorLaunchFailure) : cudaSuccess;
}

}  // namespace cir_emu

// ---- the memory-access hooks: kernels/*.cu are compiled with AddressSanitizer's outline checks
// (every access calls __asan_loadN/__asan_storeN) and the calls are renamed to these (objcopy
// --redefine-syms=kernels/emu/hooks.syms), which look at shared memory and then call ASan's own.
// Inside the arena the emulator's own bounds check replaces ASan's (a finding, not an abort).
#define CIR_EMU_HOOK(kind, n, write)                                                     \
  extern "C" void __asan_##kind##n(uintptr_t);                                           \
  extern "C" void cir_emu_##kind##n(uintptr_t a) {                                       \
    if (Ctx *c = t_ctx) {                                                                \
      size_t off = a - (uintptr_t)c->arena;                                              \
      if (off < kArenaCap) return shared_access(c, off, n, write, __builtin_return_address(0)); \
    }                                                                                    \
    __asan_##kind##n(a);                                                                 \
  }
CIR_EMU_HOOK(load, 1, false)
CIR_EMU_HOOK(load, 2, false)
CIR_EMU_HOOK(load, 4, false)
CIR_EMU_HOOK(load, 8, false)
CIR_EMU_HOOK(load, 16, false)
CIR_EMU_HOOK(store, 1, true)
CIR_EMU_HOOK(store, 2, true)
CIR_EMU_HOOK(store, 4, true)
CIR_EMU_HOOK(store, 8, true)
CIR_EMU_HOOK(store, 16, true)
extern "C" void __asan_loadN(uintptr_t, size_t);
extern "C" void __asan_storeN(uintptr_t, size_t);
extern "C" void cir_emu_loadN(uintptr_t a, size_t n) {
  if (Ctx *c = t_ctx) {
    size_t off = a - (uintptr_t)c->arena;
    if (off < kArenaCap) return shared_access(c, off, n, false, __builtin_return_address(0));
  }
  __asan_loadN(a, n);
}
extern "C" void cir_emu_storeN(uintptr_t a, size_t n) {
  if (Ctx *c = t_ctx) {
    size_t off = a - (uintptr_t)c->arena;
    if (off < kArenaCap) return shared_access(c, off, n, true, __builtin_return_address(0));
  }
  __asan_storeN(a, n);
}

// AddressSanitizer's defaults for the test binaries: no leak report at exit (Go and cgo keep
// memory to the end), no fake stacks (the fibres switch stacks).
extern "C" const char *__asan_default_options() {
  return "detect_leaks=0:detect_stack_use_after_return=0:halt_on_error=1";
}

// ---------------------------------------------------------------------------------------------
// The runtime API.

struct CUstream_st {
  int dev;
};
struct CUevent_st {
  double ms;
};

namespace cir_emu {
namespace {
std::set<cudaStream_t> streams;

bool stream_ok(cudaStream_t s) {
  if (!s) return true;
  std::lock_guard<std::mutex> g(mu);
  return streams.count(s) && s->dev == t_device;
}

const char *error_name(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}

// range checks a device range [p, p+n) for a copy or memset.
cudaError_t range(const char *op, const void *p, size_t n) {
  if (n == 0) return cudaSuccess;
  bool host = false;
  if (device_of(p, n, &host) < 0 || host) {
    report("%s: [%p, +%zu) is not inside one live device allocation", op, p, n);
    return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}

double now_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

cudaError_t alloc(void **ptr, size_t size, bool host) {
  if (!ptr) return set_error(cudaErrorInvalidValue);
  *ptr = nullptr;
  int dev = t_device;
  {
    std::lock_guard<std::mutex> g(mu);
    init_locked();
    if (ndev == 0) return set_error(cudaErrorNoDevice);
    if (!host && used_mem[dev] + size > total_mem) return set_error(cudaErrorMemoryAllocation);
  }
  if (size == 0) return cudaSuccess;
  void *p = nullptr;
  if (posix_memalign(&p, 256, size) != 0) return set_error(cudaErrorMemoryAllocation);
  memset(p, 0xff, size);  // fresh device memory is not zeroed
  std::lock_guard<std::mutex> g(mu);
  allocs[(uintptr_t)p] = Alloc{size, dev, host};
  if (!host) used_mem[dev] += size;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t release(void *p, bool host, const char *op) {
  if (!p) return cudaSuccess;
  {
    std::lock_guard<std::mutex> g(mu);
    auto it = allocs.find((uintptr_t)p);
    if (it == allocs.end() || it->second.host != host) {
      report("%s(%p): not the start of a live %s allocation", op, p, host ? "page-locked host" : "device");
      return set_error(cudaErrorInvalidValue);
    }
    if (!host) used_mem[it->second.dev] -= it->second.size;
    allocs.erase(it);
  }
  free(p);  // AddressSanitizer keeps it in quarantine: a later use is reported
  return cudaSuccess;
}

// foreign reports a copy or memset on a stream that is not a live stream of the current device.
cudaError_t foreign(const char *op, cudaStream_t s) {
  report("%s on device %d: the stream (%p) is not a live stream of this device", op, t_device, (void *)s);
  return set_error(cudaErrorInvalidResourceHandle);
}

cudaError_t copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s) {
  if (!stream_ok(s)) return foreign("cudaMemcpyAsync", s);
  if (n == 0) return cudaSuccess;
  cudaError_t e = cudaSuccess;
  switch (kind) {
    case cudaMemcpyHostToDevice: e = range("cudaMemcpy (host to device)", dst, n); break;
    case cudaMemcpyDeviceToHost: e = range("cudaMemcpy (device to host)", src, n); break;
    case cudaMemcpyDeviceToDevice:
      e = range("cudaMemcpy (device to device)", dst, n);
      if (e == cudaSuccess) e = range("cudaMemcpy (device to device)", src, n);
      break;
    case cudaMemcpyHostToHost: break;
    case cudaMemcpyDefault: break;
    default: e = cudaErrorInvalidMemcpyDirection;
  }
  if (e != cudaSuccess) return set_error(e);
  memmove(dst, src, n);
  return cudaSuccess;
}

}  // namespace
}  // namespace cir_emu

extern "C" {

cudaError_t cudaGetDeviceCount(int *count) {
  int n = devices();
  *count = n;
  return n == 0 ? set_error(cudaErrorNoDevice) : cudaSuccess;
}
cudaError_t cudaGetDevice(int *device) {
  *device = t_device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (devices() == 0) return set_error(cudaErrorNoDevice);
  if (device < 0 || device >= devices()) return set_error(cudaErrorInvalidDevice);
  t_device = device;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int device) {
  if (device < 0 || device >= devices()) return set_error(devices() == 0 ? cudaErrorNoDevice : cudaErrorInvalidDevice);
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "cir-emu sm_90 (CUDA emulated on the CPU)");
  {
    std::lock_guard<std::mutex> g(mu);
    p->totalGlobalMem = total_mem;
  }
  p->sharedMemPerBlock = 48 * 1024;
  p->sharedMemPerBlockOptin = 232448;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = 1024, p->maxThreadsDim[1] = 1024, p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 0x7fffffff, p->maxGridSize[1] = 65535, p->maxGridSize[2] = 65535;
  p->multiProcessorCount = 132;
  p->major = 9;
  p->minor = 0;
  p->memoryClockRate = 2619000;
  p->memoryBusWidth = 5120;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device) {
  struct cudaDeviceProp p;
  cudaError_t e = cudaGetDeviceProperties(&p, device);
  if (e != cudaSuccess) return e;
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = p.maxThreadsPerBlock; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = (int)p.sharedMemPerBlock; break;
    case cudaDevAttrWarpSize: *value = p.warpSize; break;
    case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; break;
    case cudaDevAttrMemoryClockRate: *value = p.memoryClockRate; break;
    case cudaDevAttrGlobalMemoryBusWidth: *value = p.memoryBusWidth; break;
    case cudaDevAttrComputeCapabilityMajor: *value = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *value = p.minor; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = (int)p.sharedMemPerBlockOptin; break;
    default: return set_error(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
const char *cudaGetErrorName(cudaError_t e) { return error_name(e); }
const char *cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorLaunchFailure: return "unspecified launch failure (the emulator reported why on stderr)";
  }
  return "unrecognized error code";
}
cudaError_t cudaGetLastError(void) {
  cudaError_t e = t_last;
  t_last = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return t_last; }

cudaError_t cudaMalloc(void **ptr, size_t size) { return alloc(ptr, size, false); }
cudaError_t cudaFree(void *ptr) { return release(ptr, false, "cudaFree"); }
cudaError_t cudaMallocHost(void **ptr, size_t size) { return alloc(ptr, size, true); }
cudaError_t cudaFreeHost(void *ptr) { return release(ptr, true, "cudaFreeHost"); }
cudaError_t cudaMemGetInfo(size_t *free_, size_t *total) {
  std::lock_guard<std::mutex> g(mu);
  init_locked();
  *total = total_mem;
  *free_ = total_mem - used_mem[t_device];
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind) {
  return copy(dst, src, n, kind, nullptr);
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind, cudaStream_t s) {
  return copy(dst, src, n, kind, s);
}
cudaError_t cudaMemset(void *ptr, int value, size_t n) { return cudaMemsetAsync(ptr, value, n, nullptr); }
cudaError_t cudaMemsetAsync(void *ptr, int value, size_t n, cudaStream_t s) {
  if (!stream_ok(s)) return foreign("cudaMemsetAsync", s);
  if (cudaError_t e = range("cudaMemset", ptr, n)) return set_error(e);
  memset(ptr, value, n);
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags) {
  (void)flags;
  if (devices() == 0) return set_error(cudaErrorNoDevice);
  *s = new CUstream_st{t_device};
  std::lock_guard<std::mutex> g(mu);
  streams.insert(*s);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (!s) return set_error(cudaErrorInvalidResourceHandle);
  {
    std::lock_guard<std::mutex> g(mu);
    if (!streams.erase(s)) return set_error(cudaErrorInvalidResourceHandle);
  }
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (s) {
    std::lock_guard<std::mutex> g(mu);
    if (!streams.count(s)) return set_error(cudaErrorInvalidResourceHandle);
  }
  return cudaSuccess;
}
// Streams are synchronous here: a stream has never work pending.
cudaError_t cudaStreamQuery(cudaStream_t s) { return cudaStreamSynchronize(s); }
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int flags) {
  (void)e, (void)flags;
  return cudaStreamSynchronize(s);
}
cudaError_t cudaEventCreate(cudaEvent_t *e) {
  *e = new CUevent_st{0};
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!stream_ok(s)) return set_error(cudaErrorInvalidResourceHandle);
  e->ms = now_ms();
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  (void)e;
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
  *ms = (float)(b->ms - a->ms);
  return cudaSuccess;
}

int cir_emu_set_device_count(int n) {
  std::lock_guard<std::mutex> g(mu);
  init_locked();
  int old = ndev;
  ndev = n < 0 ? 0 : n > kMaxDevices ? kMaxDevices : n;
  return old;
}
long cir_emu_findings(void) { return n_findings.load(); }
long cir_emu_launches(void) { return n_launches.load(); }
int cir_emu_kernels(void) {
  std::lock_guard<std::mutex> g(mu);
  return (int)kernel_list.size();
}
const char *cir_emu_kernel_name(int i) {
  std::lock_guard<std::mutex> g(mu);
  return i >= 0 && i < (int)kernel_list.size() ? kernel_list[i].c_str() : nullptr;
}

}  // extern "C"
