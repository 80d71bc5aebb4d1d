// Package cuda is the GPU backend: every engine.Backend op as a CUDA kernel from kernels/
// (linked statically through cgo), GEMMs through cuBLASLt opened with dlopen, bf16 weights and
// activations with fp32 statistics, gradients, master weights and moments.
//
// The package builds only with the build tag cuda (and kernels/build/libcirkernels.a, made by
// `make kernels`); without the tag it is empty, so `go test ./...` needs no CUDA toolkit. The
// CUDA runtime is linked statically and opens the driver on first use: a binary built with the
// tag starts on a machine without a GPU, where Available and New return errors wrapping
// ErrNoDevice.
//
// Threads: a device is current per OS thread in the CUDA runtime. Every op makes its device
// current on the calling thread first (a thread-local check, no driver call when it already is),
// so a Backend works from any goroutine, one at a time; a trainer that drives several GPUs runs
// one goroutine per device, each locked to its OS thread (runtime.LockOSThread), as
// Backend.LockThread does.
package cuda
