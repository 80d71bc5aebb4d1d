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

.PHONY: build test bench run deps deps-build deps-run vet
build: deps-build
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

# The default job: a tiny model learns to use the interpreter (configs/toy.yaml).
run: deps-run build
	./$(BIN) train --config configs/toy.yaml

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./...
