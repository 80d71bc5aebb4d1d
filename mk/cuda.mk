# CUDA: the kernels (kernels/*.cu → kernels/build/libcirkernels.a, nvcc) and the binary built
# with -tags cuda (bin/cir-cuda). Works with Debian's nvcc 11.8 (nvidia-cuda-toolkit, non-free;
# its nvcc drives a supported host gcc through its own wrapper) and with NVIDIA's nvcc 12/13.
# SASS for sm_80 (A100) and sm_90 (H100), plus compute_90 PTX for later GPUs; cudart static.
NVCC       ?= nvcc
NVCC_PATH  := $(shell command -v $(NVCC) 2>/dev/null)
# The toolkit root: /usr for Debian's package, the install prefix for NVIDIA's.
CUDA_HOME  ?= $(patsubst %/bin/nvcc,%,$(NVCC_PATH))
CUDA_ARCH  ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
              -gencode arch=compute_90,code=compute_90
NVCC_FLAGS ?= -O3 -std=c++17 -Xcompiler -fPIC -Xcompiler -Wall $(CUDA_ARCH)
KERNEL_SRC := $(wildcard kernels/*.cu)
KERNEL_LIB_SRC := $(filter-out kernels/check_abi.cu,$(KERNEL_SRC))
KERNEL_OBJ := $(patsubst kernels/%.cu,kernels/build/%.o,$(KERNEL_LIB_SRC))
KERNEL_HDR := $(wildcard kernels/*.h kernels/*.cuh third_party/*/*.h)
KERNEL_LIB := kernels/build/libcirkernels.a
CUDA_BIN   := bin/cir-cuda
# cgo finds libcirkernels.a through engine/cuda's own #cgo line; the toolkit's libraries
# (cudart_static) and headers through these, for toolkits outside the system paths.
ifeq ($(filter /usr /usr/,$(CUDA_HOME)),)
CUDA_CGO_ENV = CGO_CFLAGS="$(CGO_CFLAGS) -I$(CUDA_HOME)/include" \
               CGO_LDFLAGS="$(CGO_LDFLAGS) -L$(CUDA_HOME)/lib64 -L$(CUDA_HOME)/lib"
else
CUDA_CGO_ENV =
endif
GPU_BUNDLE := gpu-bundle

.PHONY: kernels kernels-abi cuda-deps cuda-binary test-cuda-build gpu-bundle

kernels: $(KERNEL_LIB)

kernels/build/%.o: kernels/%.cu $(KERNEL_HDR)
	@mkdir -p kernels/build
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@

$(KERNEL_LIB): $(KERNEL_OBJ)
	rm -f $@
	ar rcs $@ $^

# The declarations in third_party against the vendor headers (static_asserts only).
kernels-abi:
	$(NVCC) -std=c++17 -c kernels/check_abi.cu -o kernels/build/check_abi.o

cuda-deps:
	@$(APT) --non-free nvidia-cuda-toolkit

cuda-binary: $(KERNEL_LIB)
	$(CUDA_CGO_ENV) $(GO) build -tags cuda -o $(CUDA_BIN) ./cmd/cir

# With nvcc on PATH, `make build` also builds the kernels and the CUDA binary.
ifneq ($(NVCC_PATH),)
build: cuda-binary
endif

# CI: install the toolkit and compile everything with -tags cuda (vet included) on a machine
# without a GPU. The GPU tests themselves skip there; `-run XXX` only links the test binary.
test-cuda-build: cuda-deps
	$(MAKE) --no-print-directory -j2 kernels kernels-abi
	$(CUDA_CGO_ENV) $(GO) vet -tags cuda ./...
	$(CUDA_CGO_ENV) $(GO) test -tags cuda -count=1 -run XXX ./engine/cuda/...
	$(CUDA_CGO_ENV) $(GO) test -tags cuda -count=1 -run 'TestNoDevice|TestBF16Bits|TestKVSplit' ./engine/cuda/...

TEST_DEPS += test-cuda-build

# Everything scripts/gpu/run.sh needs on a GPU machine without Go, in one git-ignored folder:
#   make gpu-bundle  →  copy gpu-bundle/ there  →  gpu-bundle/run.sh OUTDIR
# The binaries need only glibc (the version written to REQUIRES) and the NVIDIA driver: the CPU
# reference of the tests uses the portable GEMM (-tags noblas: no libopenblas, no libgfortran),
# net and os/user are pure Go (no libresolv), and everything is linked against the glibc 2.31
# sysroot of scripts/gpu/sysroot.sh (Debian 11's packages), so every versioned glibc symbol is
# its oldest version (`make gpu-bundle GPU_SYSROOT=` links against this machine's glibc
# instead). libstdc++ is linked statically (link_bundle.go, -tags gpubundle); libgcc_s stays
# shared, the target's own (this machine's newer one is not checked against the old glibc:
# --allow-shlib-undefined). COMMIT records what the bundle was built from; run.sh puts it in the
# report.
BUNDLE_TAGS   := cuda,gpubundle,noblas,netgo,osusergo
GPU_SYSROOT   ?= kernels/build/sysroot
CUDART_STATIC := $(firstword $(wildcard $(CUDA_HOME)/lib64/libcudart_static.a \
                 $(CUDA_HOME)/lib/x86_64-linux-gnu/libcudart_static.a /usr/lib/x86_64-linux-gnu/libcudart_static.a))
ifneq ($(GPU_SYSROOT),)
SR := $(abspath $(GPU_SYSROOT))
BUNDLE_ENV := CGO_CFLAGS="--sysroot=$(SR) -idirafter $(CUDA_HOME)/include -O2 -g" \
  CGO_LDFLAGS="--sysroot=$(SR) -B$(SR)/usr/lib/x86_64-linux-gnu/ -L$(SR)/usr/lib/x86_64-linux-gnu \
  -L$(SR)/lib/x86_64-linux-gnu -Wl,--allow-shlib-undefined"
else
BUNDLE_ENV := $(CUDA_CGO_ENV)
endif

$(GPU_SYSROOT)/.complete:
	scripts/gpu/sysroot.sh $(GPU_SYSROOT) $(CUDART_STATIC)

gpu-bundle: $(KERNEL_LIB) $(if $(GPU_SYSROOT),$(GPU_SYSROOT)/.complete)
	rm -rf $(GPU_BUNDLE) && mkdir -p $(GPU_BUNDLE)
	$(BUNDLE_ENV) $(GO) test -c -tags $(BUNDLE_TAGS) -ldflags=-linkmode=external -o $(GPU_BUNDLE)/cuda.test ./engine/cuda
	$(BUNDLE_ENV) $(GO) build -tags $(BUNDLE_TAGS) -ldflags=-linkmode=external -o $(GPU_BUNDLE)/cir ./cmd/cir
	cp scripts/gpu/run.sh scripts/gpu/torch_ref.py scripts/gpu/hf_logprobs.py scripts/gpu/*.json \
	  scripts/gpu/README.md $(GPU_BUNDLE)/
	{ git rev-parse HEAD; [ -z "$$(git status --porcelain)" ] || echo "with uncommitted changes"; } >$(GPU_BUNDLE)/COMMIT
	for v in GLIBC GLIBCXX CXXABI; do objdump -T $(GPU_BUNDLE)/cuda.test $(GPU_BUNDLE)/cir | \
	  grep -o "$${v}_[0-9.]*" | sort -uV | tail -n 1; done | tr '\n' ' ' >$(GPU_BUNDLE)/REQUIRES
	@echo "needs: $$(cat $(GPU_BUNDLE)/REQUIRES) and the NVIDIA driver; libraries: $$(ldd $(GPU_BUNDLE)/cuda.test | awk '{print $$1}' | tr '\n' ' ')"
	@echo "gpu-bundle/ ready: run 'gpu-bundle/run.sh OUTDIR' on the GPU machine"

# ---- The CUDA emulator (kernels/emu): the same kernel sources compiled by the host C++ compiler
# against our emulation of the CUDA execution model, with AddressSanitizer; every load and store
# of the kernels calls ASan's outline check, renamed to the emulator's hook (hooks.syms), which
# also watches shared memory. `make test-cuda-emu` runs the whole engine/cuda suite on it.
EMU_CXX    ?= g++
EMU_FLAGS  := -std=c++17 -O2 -g -fno-omit-frame-pointer -fPIC -Wall -Wno-unknown-pragmas -fsanitize=address
EMU_KFLAGS := $(EMU_FLAGS) -fno-sanitize-address-use-after-scope -x c++ -I kernels/emu -include kernels/emu/dl.h \
              --param asan-instrumentation-with-call-threshold=0
EMU_DIR    := kernels/build/emu
EMU_KOBJ   := $(patsubst kernels/%.cu,$(EMU_DIR)/%.o,$(KERNEL_LIB_SRC)) $(EMU_DIR)/emu/selftest.o
EMU_RT_OBJ := $(patsubst kernels/emu/%.cc,$(EMU_DIR)/rt_%.o,$(wildcard kernels/emu/*.cc))
EMU_HDR    := $(wildcard kernels/emu/*.h) kernels/emu/hooks.syms
EMU_LIB    := $(EMU_DIR)/libcirkernels_emu.so
EMU_TAGS   := cuda,cudaemu

.PHONY: kernels-emu test-cuda-emu cuda-emu-deps

kernels-emu: $(EMU_LIB)

cuda-emu-deps:
	@$(APT) g++ binutils

$(EMU_DIR)/%.o: kernels/%.cu $(KERNEL_HDR) $(EMU_HDR)
	@mkdir -p $(dir $@)
	$(EMU_CXX) $(EMU_KFLAGS) -c $< -o $@.tmp
	objcopy --redefine-syms=kernels/emu/hooks.syms $@.tmp $@ && rm -f $@.tmp

$(EMU_DIR)/rt_%.o: kernels/emu/%.cc $(KERNEL_HDR) $(EMU_HDR)
	@mkdir -p $(EMU_DIR)
	$(EMU_CXX) $(EMU_FLAGS) -I kernels/emu -c $< -o $@

$(EMU_LIB): $(EMU_KOBJ) $(EMU_RT_OBJ)
	$(EMU_CXX) -shared -fsanitize=address -o $@ $^ -ldl -lpthread

# The whole engine/cuda suite (op, sampling, determinism, whole-model and emulator tests) on the
# emulator, under AddressSanitizer, none skipped; then the seeded kernel bugs (mutants.sh), each
# of which a targeted part of the suite must catch.
EMU_TEST := $(EMU_DIR)/cuda.test
test-cuda-emu: cuda-emu-deps $(EMU_LIB)
	$(GO) vet -tags $(EMU_TAGS) ./engine/cuda
	$(GO) test -c -asan -tags $(EMU_TAGS) -o $(EMU_TEST) ./engine/cuda
	cd engine/cuda && ../../$(EMU_TEST) -test.count=1 -test.timeout 20m -test.v >../../$(EMU_DIR)/test.log 2>&1; \
	  st=$$?; grep -E '^(--- |PASS|FAIL|ok|cuda emulator)' ../../$(EMU_DIR)/test.log; \
	  if [ $$st -ne 0 ] || grep -qE '^ *--- SKIP' ../../$(EMU_DIR)/test.log; then \
	    grep -E 'cir-emu:|ERROR: AddressSanitizer|_test.go:[0-9]+:' ../../$(EMU_DIR)/test.log | head -n 40 >&2; \
	    echo "test-cuda-emu: a test failed or skipped ($(EMU_DIR)/test.log)" >&2; exit 1; fi
	EMU_CXX="$(EMU_CXX)" EMU_KFLAGS="$(EMU_KFLAGS)" kernels/emu/mutants.sh $(EMU_TEST)

TEST_DEPS += test-cuda-emu
