//go:build cuda && cudaemu

package cuda

// The kernels compiled by the host C++ compiler against the CPU emulation of the CUDA
// execution model (kernels/emu, `make kernels-emu`), for `make test-cuda-emu`. The emulation
// needs AddressSanitizer: build with `go test -asan -tags cuda,cudaemu`. The library is shared
// (found through its run path, or LD_LIBRARY_PATH first): a rebuilt library, or a mutant of it
// (kernels/emu/mutants.sh), takes effect without linking the test binary again.

/*
#cgo CFLAGS: -I${SRCDIR}/../../kernels/emu
#cgo LDFLAGS: -L${SRCDIR}/../../kernels/build/emu -lcirkernels_emu -Wl,-rpath,${SRCDIR}/../../kernels/build/emu
#include "cuda_runtime_api.h"
#include "selftest.h"
*/
import "C"

import "unsafe"

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

// emuSelfTests is the number of cases of emuSelfTest; case 0 is a correct kernel.
const emuSelfTests = C.CIR_SELFTEST_COUNT

// emuSelfTest launches the selftest kernel with bug (kernels/emu/selftest.cu) on b's device,
// writing 64 floats to out, and returns the launch's status.
func (b *Backend) emuSelfTest(out unsafe.Pointer, bug int) int {
	defer b.enter()()
	return int(C.cir_emu_selftest((*C.float)(out), C.int(bug), b.stream))
}
