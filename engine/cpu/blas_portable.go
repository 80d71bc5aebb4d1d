//go:build noblas

package cpu

// A portable sgemm in C instead of OpenBLAS (-tags noblas): for binaries that must run where
// libopenblas/libgfortran are not installed, such as the CUDA test bundle of scripts/gpu, whose
// CPU side only computes small references. Much slower than OpenBLAS on large products.

/*
#cgo CFLAGS: -O3
static void cir_sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc) {
	for (int i = 0; i < m; i++) {
		float *ci = c + (long)i * ldc;
		for (int j = 0; j < n; j++) ci[j] = beta == 0 ? 0 : beta * ci[j];
		for (int p = 0; p < k; p++) {
			float x = alpha * (ta ? a[(long)p * lda + i] : a[(long)i * lda + p]);
			if (x == 0) continue;
			if (tb)
				for (int j = 0; j < n; j++) ci[j] += x * b[(long)j * ldb + p];
			else {
				const float *bp = b + (long)p * ldb;
				for (int j = 0; j < n; j++) ci[j] += x * bp[j];
			}
		}
	}
}
*/
import "C"

import "unsafe"

// setBLASThreads: the portable sgemm runs on the calling thread.
func setBLASThreads(n int) {}

// sgemm computes c = alpha·op(a)·op(b) + beta·c in row-major storage: op(a) is m×k, op(b) is
// k×n, c is m×n, with leading dimensions lda, ldb, ldc.
func sgemm(ta, tb bool, m, n, k int, alpha float32, a *float32, lda int, b *float32, ldb int, beta float32, c *float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	C.cir_sgemm(cbool(ta), cbool(tb), C.int(m), C.int(n), C.int(k), C.float(alpha),
		(*C.float)(unsafe.Pointer(a)), C.int(lda), (*C.float)(unsafe.Pointer(b)), C.int(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(c)), C.int(ldc))
}

func cbool(v bool) C.int {
	if v {
		return 1
	}
	return 0
}
