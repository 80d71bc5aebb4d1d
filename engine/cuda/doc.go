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
// Threads: a device is current per OS thread in the CUDA runtime, and a goroutine may move to
// another OS thread between two cgo calls. Every op locks its goroutine to the OS thread for its
// duration and makes its device current there first (a thread-local check, no driver call when
// it already is), so each launch runs on the backend's device whatever thread the goroutine is
// on, and a Backend works from any goroutine, one at a time; a trainer that drives several GPUs
// runs one goroutine per device (Backend.LockThread keeps it on one thread).
//
// With the build tags cuda,cudaemu the same kernels run on the CPU emulation of the CUDA
// execution model in kernels/emu (make test-cuda-emu); Emulated tells which.
package cuda
