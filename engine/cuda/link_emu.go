//go:build cuda && cudaemu

package cuda

// The kernels compiled by the host C++ compiler against the CPU emulation of the CUDA
// execution model (kernels/emu, `make kernels-emu`), for `make test-cuda-emu`. The emulation
// needs AddressSanitizer: build with `go test -asan -tags cuda,cudaemu`.

/*
#cgo CFLAGS: -I${SRCDIR}/../../kernels/emu
#cgo LDFLAGS: -L${SRCDIR}/../../kernels/build/emu -lcirkernels_emu -lstdc++ -lm -ldl -lpthread
#include "cuda_runtime_api.h"
*/
import "C"

// Emulated reports whether the backend runs on the CPU emulation of kernels/emu: true here.
const Emulated = true

// emuFindings is the number of problems the emulator has reported (each also fails its launch).
func emuFindings() int { return int(C.cir_emu_findings()) }

// emuSetDevices makes n emulated devices visible and returns the previous count.
func emuSetDevices(n int) int { return int(C.cir_emu_set_device_count(C.int(n))) }

// emuCoverage returns the number of launches so far and the names of the kernels launched.
func emuCoverage() (launches int, kernels []string) {
	for i := 0; i < int(C.cir_emu_kernels()); i++ {
		kernels = append(kernels, C.GoString(C.cir_emu_kernel_name(C.int(i))))
	}
	return int(C.cir_emu_launches()), kernels
}
