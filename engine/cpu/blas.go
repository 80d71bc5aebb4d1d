//go:build !noblas

package cpu

// The GEMM library, chosen by measurement (scripts/blas_compare.c; the README's "CPU kernels"
// section has the table): OpenBLAS, opened at run time with its kernel set chosen from CPUID.
// On 2 Zen 5 cores (AVX-512), sgemm of the model's shapes split by rows as the backend runs
// them, against the FMA peak of the same threads (432 GFLOP/s):
//
//   - OpenBLAS 0.3.21, SkylakeX kernels: 79% of the peak over all shapes, 72% at the lowest.
//     Its own detection goes by CPU model number: it picks Cooperlake (the same sgemm kernels)
//     on this AMD CPU but Prescott (SSE3) on Xeons newer than it (family 6 model 207: 25-29
//     GFLOP/s where SkylakeX gives 114-117). Its OPENBLAS_CORETYPE override is read once, by
//     the library's constructor, so the backend sets it from the CPU's features (AVX-512 →
//     SkylakeX, AVX2+FMA → Haswell, AVX → Sandybridge) and then dlopens the library. An
//     OPENBLAS_CORETYPE inherited from the environment is overridden the same way (it is how
//     users work around the misdetection, and a stale one costs 2×: Haswell's AVX2 kernels
//     reach 43% here); CIR_BLAS_CORETYPE forces a kernel set.
//   - Debian's BLIS 0.9 selects by features on Intel, but on AMD it knows families 0x17/0x19
//     only: on Zen 5 it runs its generic C kernels (13%), and its BLIS_ARCH_TYPE override
//     aborts in Debian's build.
//   - oneDNN 2.6's sgemm (libdnnl2, installed with PyTorch) measured the same as OpenBLAS
//     (80%, lowest 70%): no reason for a second library.
//   - A micro-kernel of our own (AVX-512, 12×32) reached 96% of one core's peak on data in L1,
//     but a whole GEMM also needs packing shared across threads and edge paths for each ISA to
//     beat OpenBLAS's 79%; not worth its upkeep while OpenBLAS is this close.

/*
#cgo CFLAGS: -O2
#cgo LDFLAGS: -ldl
#include "blas.h"
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Kernels describes the GEMM kernels the backend runs on the host CPU.
type Kernels struct {
	CPU     CPUInfo
	Library string // the library's own description (openblas_get_config)
	Core    string // the kernel set the library runs (openblas_get_corename)
	ISA     string // the widest vector instructions of Core: AVX-512, AVX2, AVX or SSE
	Wanted  string // the kernel set requested from the CPU's features or CIR_BLAS_CORETYPE
	Note    string // what was overridden or went differently than asked, if anything
}

// String is one line for start-up logs, e.g. "GEMM: OpenBLAS 0.3.21 SkylakeX kernels
// (AVX-512) on <CPUID brand> (family 26 model 2)", with any note appended.
func (k Kernels) String() string {
	lib := k.Library
	if f := strings.Fields(lib); len(f) >= 2 {
		lib = f[0] + " " + f[1]
	}
	s := fmt.Sprintf("GEMM: %s %s kernels (%s) on %s (family %d model %d)", lib, k.Core, k.ISA, k.CPU.Brand, k.CPU.Family, k.CPU.Model)
	if k.ISA == "SSE" {
		s += " — SSE only: GEMMs 4-8x slower than on an AVX2 CPU"
	}
	if k.Note != "" {
		s += "; " + k.Note
	}
	return s
}

// coreISA maps OpenBLAS core names (lower case) to the widest vector instructions their sgemm
// kernels use; names not listed use SSE.
var coreISA = map[string]string{
	"skylakex": "AVX-512", "cooperlake": "AVX-512", "sapphirerapids": "AVX-512",
	"haswell": "AVX2", "zen": "AVX2",
	"sandybridge": "AVX", "bulldozer": "AVX", "piledriver": "AVX", "steamroller": "AVX", "excavator": "AVX",
}

// coreFor is the OpenBLAS kernel set for a CPU with the given feature bits ("" when it has
// no AVX: OpenBLAS's own choice is then as good as any).
func coreFor(features int) string {
	switch {
	case features&featAVX512 != 0:
		return "SkylakeX"
	case features&featAVX2 != 0 && features&featFMA != 0:
		return "Haswell"
	case features&featAVX != 0:
		return "Sandybridge"
	}
	return ""
}

var (
	blasOnce    sync.Once
	blasKernels Kernels
	blasErr     error
)

// GEMMKernels loads the GEMM library on first use (choosing its kernels as the package comment
// says) and describes what runs. It returns an error when the library cannot be opened.
func GEMMKernels() (Kernels, error) {
	blasOnce.Do(loadBLAS)
	return blasKernels, blasErr
}

func loadBLAS() {
	cpu := HostCPU()
	k := Kernels{CPU: cpu, Wanted: coreFor(cpu.bits)}
	var notes []string
	switch env := os.Getenv("OPENBLAS_CORETYPE"); {
	case os.Getenv("CIR_BLAS_CORETYPE") != "":
		k.Wanted = os.Getenv("CIR_BLAS_CORETYPE")
		notes = append(notes, "CIR_BLAS_CORETYPE="+k.Wanted)
	case env != "" && k.Wanted == "": // no AVX: nothing better to offer
		k.Wanted = env
	case env != "" && !strings.EqualFold(env, k.Wanted):
		notes = append(notes, fmt.Sprintf("OPENBLAS_CORETYPE=%s overridden (CIR_BLAS_CORETYPE forces a kernel set)", env))
	}
	want := C.CString(k.Wanted)
	defer C.free(unsafe.Pointer(want))
	if msg := C.cir_blas_open(want); msg != nil {
		blasErr = fmt.Errorf("cpu: OpenBLAS: %s (install Debian's libopenblas0: make deps-run)", C.GoString(msg))
		return
	}
	k.Library = C.GoString(C.cir_blas_config())
	k.Core = C.GoString(C.cir_blas_corename())
	k.ISA = coreISA[strings.ToLower(k.Core)]
	if k.ISA == "" {
		k.ISA = "SSE"
	}
	if k.Wanted != "" && !strings.EqualFold(k.Core, k.Wanted) {
		notes = append(notes, fmt.Sprintf("asked OpenBLAS for %s", k.Wanted))
	}
	k.Note = strings.Join(notes, "; ")
	blasKernels = k
	C.cir_blas_set_threads(1)
	blasThreads.Store(1)
}

// mustBLAS loads the GEMM library; New panics with its error when it cannot (callers that
// want an error call GEMMKernels first).
func mustBLAS() {
	if _, err := GEMMKernels(); err != nil {
		panic(err.Error())
	}
}

// blasThreads is the thread count last given to OpenBLAS, whose setting is process-wide.
var blasThreads atomic.Int32

// setBLASThreads sets OpenBLAS's thread count when it differs from the last one set.
func setBLASThreads(n int) {
	if int(blasThreads.Load()) != n {
		C.cir_blas_set_threads(C.int(n))
		blasThreads.Store(int32(n))
	}
}

// sgemm computes c = alpha·op(a)·op(b) + beta·c in row-major storage: op(a) is m×k, op(b) is
// k×n, c is m×n, with leading dimensions lda, ldb, ldc.
func sgemm(ta, tb bool, m, n, k int, alpha float32, a *float32, lda int, b *float32, ldb int, beta float32, c *float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	C.cir_sgemm(cbool(ta), cbool(tb), C.int(m), C.int(n), C.int(k),
		C.float(alpha), (*C.float)(unsafe.Pointer(a)), C.int(lda),
		(*C.float)(unsafe.Pointer(b)), C.int(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(c)), C.int(ldc))
}

func cbool(x bool) C.int {
	if x {
		return 1
	}
	return 0
}
