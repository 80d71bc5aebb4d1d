//go:build !noblas

package cpu

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import (
	"sync/atomic"
	"unsafe"
)

// blasThreads is the thread count last given to OpenBLAS, whose setting is process-wide.
var blasThreads atomic.Int32

// setBLASThreads sets OpenBLAS's thread count when it differs from the last one set.
func setBLASThreads(n int) {
	if int(blasThreads.Load()) != n {
		C.openblas_set_num_threads(C.int(n))
		blasThreads.Store(int32(n))
	}
}

// sgemm computes c = alpha·op(a)·op(b) + beta·c in row-major storage: op(a) is m×k, op(b) is
// k×n, c is m×n, with leading dimensions lda, ldb, ldc.
func sgemm(ta, tb bool, m, n, k int, alpha float32, a *float32, lda int, b *float32, ldb int, beta float32, c *float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	tra, trb := uint32(C.CblasNoTrans), uint32(C.CblasNoTrans)
	if ta {
		tra = C.CblasTrans
	}
	if tb {
		trb = C.CblasTrans
	}
	C.cblas_sgemm(C.CblasRowMajor, tra, trb, C.blasint(m), C.blasint(n), C.blasint(k),
		C.float(alpha), (*C.float)(unsafe.Pointer(a)), C.blasint(lda),
		(*C.float)(unsafe.Pointer(b)), C.blasint(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(c)), C.blasint(ldc))
}
