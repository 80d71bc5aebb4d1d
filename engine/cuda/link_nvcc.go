//go:build cuda && !cudaemu && !gpubundle

package cuda

// The kernels compiled by nvcc (make kernels) and the static CUDA runtime.

/*
#cgo LDFLAGS: -L${SRCDIR}/../../kernels/build -lcirkernels -lcudart_static -lrt -ldl -lpthread -lstdc++ -lm
*/
import "C"

// Emulated reports whether the backend runs on the CPU emulation of kernels/emu: false here.
const Emulated = false

// The emulator's counters (link_emu.go) are empty here.
func emuFindings() int                              { return 0 }
func emuSetDevices(n int) int                       { panic("cuda: not the emulator") }
func emuCoverage() (launches int, kernels []string) { return 0, nil }
