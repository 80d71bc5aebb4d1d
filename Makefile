# cir: `make build` (bin/cir), `make test`, `make bench`, `make run` (the default job).
# Each area adds its own rules in mk/*.mk; TEST_DEPS collects what `make test` must install.
GO      ?= go
BIN     := bin/cir
TAGS    :=
APT     := scripts/apt-install.sh
# Debian packages: OpenBLAS for the CPU backend (opened at run time: engine/cpu/blas.go); the
# sandbox's Python with numpy and sympy under bubblewrap; PyTorch for the parity tests and
# benchmarks only.
BUILD_PKGS := gcc libc6-dev
RUN_PKGS   := $(BUILD_PKGS) libopenblas0 python3 python3-numpy python3-sympy bubblewrap
TEST_PKGS  := $(RUN_PKGS) python3-torch
TEST_DEPS  := deps

.PHONY: build cpu-binary test bench bench-go run deps deps-build deps-run vet
build: cpu-binary

cpu-binary: deps-build
	$(GO) build $(if $(TAGS),-tags $(TAGS)) -o $(BIN) ./cmd/cir

deps-build:
	@$(APT) $(BUILD_PKGS)

deps-run:
	@$(APT) $(RUN_PKGS)

deps:
	@$(APT) $(TEST_PKGS)

include $(wildcard mk/*.mk)

vet:
	$(GO) vet ./...

test: $(TEST_DEPS)
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...

# The default job: a tiny model learns to use the interpreter (configs/toy.yaml). It builds only
# what it runs: on a machine with a GPU (nvidia-smi lists one) the CUDA toolkit, kernels and
# binary, and the job runs there; otherwise only the CPU binary, even where nvcc is installed.
# GPU=0 or GPU=1 overrides the detection.
GPU ?= $(shell nvidia-smi -L 2>/dev/null | grep -q '^GPU ' && echo 1 || echo 0)
ifeq ($(GPU),1)
run: deps-run cuda-deps
	$(MAKE) --no-print-directory -j$(shell nproc) cuda-binary
	./$(CUDA_BIN) train --config configs/toy.yaml
else
run: deps-run cpu-binary
	./$(BIN) train --config configs/toy.yaml
endif

# The benchmark report (cir bench all): every figure beside its reference measured in the same
# run, as Markdown (the README's performance section) and JSON in out/.
bench: deps cpu-binary tokenizer-deps
	@mkdir -p out
	./$(BIN) bench all --json out/bench.json --md out/bench.md

# Every Go benchmark of every package, briefly.
bench-go: deps-build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./...
