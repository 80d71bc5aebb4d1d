//go:build linux

package cpu

import (
	"math/rand/v2"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// threadCPU is the CPU time of the calling OS thread.
func threadCPU() time.Duration {
	const clockThreadCPUTime = 3 // CLOCK_THREAD_CPUTIME_ID
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}

// TestGemmNearPeak times a 512×512×512 GEMM on one thread against the FMA loop on the same
// thread, both in the thread's CPU time (so that other processes on a busy machine do not
// tilt the ratio), alternating five rounds of each and keeping the best. Below a quarter of
// the peak means the kernels do not use the CPU's vector width: SSE kernels reach about an
// eighth on an AVX-512 CPU, the chosen ones about 0.8.
func TestGemmNearPeak(t *testing.T) {
	if testing.Short() || os.Getenv("CIR_BLAS_CORETYPE") != "" {
		t.Skip("timing, or kernels forced by CIR_BLAS_CORETYPE")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	be := New(1) // one worker: the ops run on the calling goroutine, on this thread
	defer be.Close()
	const n = 512
	r := rand.New(rand.NewPCG(1, 2))
	a, _ := randF32(r, n*n, 1)
	b, _ := randF32(r, n*n, 1)
	c := make([]float32, n*n)
	bits := HostCPU().bits
	fmaLoop(bits, 1<<16) // warm up both
	be.gemm(false, true, n, n, n, 1, a, n, b, n, 0, c, n)
	gemm, peak := 0.0, 0.0
	for round := 0; round < 5; round++ {
		t0 := threadCPU()
		for i := 0; i < 8; i++ {
			be.gemm(false, true, n, n, n, 1, a, n, b, n, 0, c, n)
		}
		gemm = max(gemm, 8*2*n*n*n/(threadCPU()-t0).Seconds())
		t0 = threadCPU()
		flops := fmaLoop(bits, 1<<20)
		peak = max(peak, flops/(threadCPU()-t0).Seconds())
	}
	k, _ := GEMMKernels()
	t.Logf("%s: %.1f GFLOP/s, peak %.1f GFLOP/s (%.0f%%), per CPU second of the thread", k, gemm/1e9, peak/1e9, 100*gemm/peak)
	if gemm < peak/4 {
		t.Errorf("512³ sgemm at %.1f GFLOP/s, %.0f%% of the %.1f GFLOP/s FMA peak of the thread (want ≥ 25%%)", gemm/1e9, 100*gemm/peak, peak/1e9)
	}
}
