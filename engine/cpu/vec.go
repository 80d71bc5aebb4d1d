package cpu

/*
#cgo CFLAGS: -O3
#include "vec.h"
*/
import "C"

import (
	"sync"
	"unsafe"
)

func fp(x []float32) *C.float { return (*C.float)(unsafe.Pointer(unsafe.SliceData(x))) }

// Instruction sets of the loops in vec.h.
const (
	vecSSE2   = 0
	vecAVX2   = 1 // with FMA
	vecAVX512 = 2 // F, BW, DQ, VL
)

// vecLevel is the widest instruction set of the loops that this CPU runs (tests set others).
var vecLevel = sync.OnceValue(func() int {
	switch bits := HostCPU().bits; {
	case bits&featAVX512 != 0:
		return vecAVX512
	case bits&featAVX2 != 0 && bits&featFMA != 0:
		return vecAVX2
	}
	return vecSSE2
})

// expTo sets dst[i] = scale·e^((src[i]-shift)·mul) in vectorised C (dst may be src) and
// returns Σ e^(...) (without scale), summed per 256 elements in float32 and across them in
// float64. The exponential is Cephes expf's, to about 2 ulp, 0 below -87.33.
func expTo(dst, src []float32, shift, mul, scale float32) float64 {
	if len(dst) == 0 {
		return 0
	}
	_ = src[len(dst)-1]
	return float64(C.cir_exp_to(C.int(vecLevel()), fp(dst), fp(src), C.int(len(dst)), C.float(shift), C.float(mul), C.float(scale)))
}

// swiglu sets out = silu(g)·u in vectorised C.
func swiglu(out, g, u []float32) {
	if len(out) == 0 {
		return
	}
	_, _ = g[len(out)-1], u[len(out)-1]
	C.cir_swiglu(C.int(vecLevel()), fp(out), fp(g), fp(u), C.int(len(out)))
}

// swigluBack sets dg, du from dy through out = silu(g)·u in vectorised C.
func swigluBack(dg, du, dy, g, u []float32) {
	if len(dg) == 0 {
		return
	}
	_, _, _, _ = du[len(dg)-1], dy[len(dg)-1], g[len(dg)-1], u[len(dg)-1]
	C.cir_swiglu_back(C.int(vecLevel()), fp(dg), fp(du), fp(dy), fp(g), fp(u), C.int(len(dg)))
}

// maxOf is the largest element of x. It panics if x is empty.
func maxOf(x []float32) float32 {
	_ = x[0]
	return float32(C.cir_max(C.int(vecLevel()), fp(x), C.int(len(x))))
}

// dot64 is Σ x·y, in float32 lanes over blocks of 256 elements added up in float64.
func dot64(x, y []float32) float64 {
	if len(x) == 0 {
		return 0
	}
	_ = y[len(x)-1]
	return float64(C.cir_dot(C.int(vecLevel()), fp(x), fp(y), C.int(len(x))))
}
