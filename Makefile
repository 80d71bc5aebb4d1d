# cir: `make build` (bin/cir), `make test`, `make bench`, `make run` (the default job).
# Each area adds its own rules in mk/*.mk; TEST_DEPS collects what `make test` must install.
GO      ?= go
BIN     := bin/cir
TAGS    :=
APT     := scripts/apt-install.sh
# Debian packages every build and test needs: OpenBLAS for the CPU backend, and Debian's Python
# (PyTorch for the parity tests, numpy and sympy for the sandbox).
APT_PKGS := gcc libc6-dev libopenblas-dev python3 python3-numpy python3-sympy python3-torch bubblewrap
TEST_DEPS := deps

.PHONY: build test bench run deps vet
build: deps-build
	$(GO) build $(if $(TAGS),-tags $(TAGS)) -o $(BIN) ./cmd/cir

deps-build:
	@$(APT) gcc libc6-dev libopenblas-dev

deps:
	@$(APT) $(APT_PKGS)

include $(wildcard mk/*.mk)

vet:
	$(GO) vet ./...

test: $(TEST_DEPS)
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./...
