// dl.cc: the emulator's dlopen for the vendor libraries the kernels open (see dl.h).
#include "dl.h"

#include <dlfcn.h>
#include <string.h>

namespace cir_emu {
struct Sym {
  const char *name;
  void *fn;
};
extern const Sym cublaslt_syms[];
extern const Sym nccl_syms[];
}  // namespace cir_emu

extern "C" void *cir_emu_dlopen(const char *file, int mode) noexcept {
  (void)mode;
  if (!file) return nullptr;
  if (strstr(file, "libcublasLt.so")) return (void *)cir_emu::cublaslt_syms;
  if (strstr(file, "libnccl.so")) return (void *)cir_emu::nccl_syms;
  return nullptr;
}

extern "C" void *cir_emu_dlsym(void *handle, const char *name) noexcept {
  if (!handle) return nullptr;
  for (const cir_emu::Sym *s = (const cir_emu::Sym *)handle; s->name; s++)
    if (strcmp(s->name, name) == 0) return s->fn;
  return nullptr;
}

extern "C" int cir_emu_dlclose(void *handle) noexcept {
  (void)handle;
  return 0;
}
