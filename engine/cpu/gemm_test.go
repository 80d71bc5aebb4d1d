package cpu

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// refGemm is c = alpha·op(a)·op(b) + beta·c in float64, row-major with leading dimensions.
func refGemm(ta, tb bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			s := 0.0
			for p := 0; p < k; p++ {
				ai, bi := i*lda+p, p*ldb+j
				if ta {
					ai = p*lda + i
				}
				if tb {
					bi = j*ldb + p
				}
				av, bv := a[ai], b[bi]
				s += av * bv
			}
			out[i*n+j] = alpha*s + beta*c[i*ldc+j]
		}
	}
	return out
}

// TestGemm checks the split GEMM (blocks of rows, or of columns when there are fewer row
// blocks than threads) against float64 for every transpose, padded leading dimensions, alpha
// and beta, on 1, 2 and 3 threads.
func TestGemm(t *testing.T) {
	shapes := []struct{ m, n, k int }{
		{1, 1, 1}, {1, 300, 70}, {5, 33, 17}, {16, 16, 16}, {17, 40, 9}, {40, 7, 33}, {100, 130, 64},
	}
	backends := map[int]*Backend{}
	for _, n := range []int{1, 2, 3} {
		backends[n] = New(n)
		defer backends[n].Close()
	}
	for _, s := range shapes {
		for _, tr := range []struct{ ta, tb bool }{{false, false}, {false, true}, {true, false}, {true, true}} {
			name := fmt.Sprintf("m=%d,n=%d,k=%d,ta=%v,tb=%v", s.m, s.n, s.k, tr.ta, tr.tb)
			t.Run(name, func(t *testing.T) {
				m, n, k := s.m, s.n, s.k
				r := rand.New(rand.NewPCG(uint64(m*n), uint64(k)))
				arows, acols := m, k
				if tr.ta {
					arows, acols = k, m
				}
				brows, bcols := k, n
				if tr.tb {
					brows, bcols = n, k
				}
				lda, ldb, ldc := acols+3, bcols+1, n+2
				a, a64 := randF32(r, arows*lda, 1)
				b, b64 := randF32(r, brows*ldb, 1)
				c0, c64 := randF32(r, m*ldc, 1)
				const alpha, beta = 0.5, -0.25
				want := refGemm(tr.ta, tr.tb, m, n, k, alpha, a64, lda, b64, ldb, beta, c64, ldc)
				for threads, be := range backends {
					c := append([]float32(nil), c0...)
					be.gemm(tr.ta, tr.tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
					got := make([]float32, 0, m*n)
					for i := 0; i < m; i++ {
						got = append(got, c[i*ldc:i*ldc+n]...)
						// The padding between rows is not written.
						for j := n; j < ldc && i*ldc+j < len(c); j++ {
							if c[i*ldc+j] != c0[i*ldc+j] {
								t.Fatalf("threads=%d: padding c[%d][%d] written", threads, i, j)
							}
						}
					}
					closeTo(t, fmt.Sprintf("threads=%d", threads), got, want, fwdTol)
				}
			})
		}
	}
}

// TestCoreFor checks the kernel set chosen from the CPU's features.
func TestCoreFor(t *testing.T) {
	for _, tc := range []struct {
		bits int
		want string
	}{
		{featAVX | featAVX2 | featFMA | featAVX512, "SkylakeX"},
		{featAVX | featAVX2 | featFMA, "Haswell"},
		{featAVX | featAVX2, "Sandybridge"}, // AVX2 without FMA: OpenBLAS's Haswell kernels need FMA
		{featAVX, "Sandybridge"},
		{0, ""},
	} {
		if got := coreFor(tc.bits); got != tc.want {
			t.Errorf("coreFor(%b) = %q, want %q", tc.bits, got, tc.want)
		}
	}
}

// TestKernels checks that the library runs the kernel set chosen for this CPU: never SSE
// kernels on a CPU with AVX2 and FMA (the failure this selection exists for).
func TestKernels(t *testing.T) {
	k, err := GEMMKernels()
	if err != nil {
		t.Fatal(err)
	}
	t.Log(k)
	if k.Wanted == "" {
		t.Skipf("CPU without AVX (%v): OpenBLAS chooses", k.CPU.Features)
	}
	if !strings.EqualFold(k.Core, k.Wanted) {
		t.Errorf("OpenBLAS runs %s kernels, asked for %s", k.Core, k.Wanted)
	}
	if k.CPU.bits&featAVX2 != 0 && k.CPU.bits&featFMA != 0 && k.ISA == "SSE" && os.Getenv("CIR_BLAS_CORETYPE") == "" {
		t.Errorf("SSE kernels (%s) on a CPU with AVX2 and FMA", k.Core)
	}
}
