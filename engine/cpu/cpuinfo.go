package cpu

/*
#include "cpuinfo.h"
*/
import "C"

import (
	"strings"
	"sync"
)

// Feature bits of CPUInfo.bits: the ones that decide the GEMM kernels and the peak loop.
const (
	featAVX    = C.CIR_AVX
	featAVX2   = C.CIR_AVX2
	featFMA    = C.CIR_FMA
	featAVX512 = C.CIR_AVX512 // F, CD, BW, DQ and VL
)

// CPUInfo identifies the host CPU.
type CPUInfo struct {
	Brand    string   // CPUID brand string
	Family   int      // display family and model (CPUID leaf 1)
	Model    int      //
	Features []string // of AVX, AVX2, FMA, AVX-512 (F+CD+BW+DQ+VL): those the OS enables
	bits     int
}

// HostCPU identifies the CPU this process runs on (zero family and model off x86-64).
var HostCPU = sync.OnceValue(func() CPUInfo {
	var brand [49]C.char
	var fam, mod C.int
	C.cir_cpu_id(&brand[0], &fam, &mod)
	c := CPUInfo{Brand: strings.TrimSpace(C.GoString(&brand[0])), Family: int(fam), Model: int(mod),
		bits: int(C.cir_cpu_features())}
	for _, f := range []struct {
		bit  int
		name string
	}{{featAVX, "AVX"}, {featAVX2, "AVX2"}, {featFMA, "FMA"}, {featAVX512, "AVX-512"}} {
		if c.bits&f.bit != 0 {
			c.Features = append(c.Features, f.name)
		}
	}
	return c
})
