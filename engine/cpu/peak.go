package cpu

/*
#cgo CFLAGS: -O2
#include "peak.h"
*/
import "C"

import "time"

// peakTask runs the FMA loop once on every worker.
type peakTask struct {
	bits  int
	iters int64
	flops []float64
}

func (t *peakTask) run(w, lo, hi int) {
	for i := lo; i < hi; i++ {
		t.flops[w] += fmaLoop(t.bits, t.iters)
	}
}

// fmaLoop runs iters iterations of the widest FMA loop of a CPU with the feature bits and
// returns the floating-point operations done.
func fmaLoop(bits int, iters int64) float64 {
	return float64(C.cir_fma_loop(C.int(bits), C.long(iters)))
}

// PeakFLOPS measures the FP32 peak of the backend's threads: the widest FMA loop the CPU has
// (AVX-512, else AVX2+FMA, else SSE multiply-add), with enough independent chains to keep
// every FMA pipe busy, run on all workers at once for about d in all: the best of ten short
// tries, so that a busy machine lowers it less. It returns floating-point operations per
// second (an FMA counts 2).
func (b *Backend) PeakFLOPS(d time.Duration) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	bits := HostCPU().bits
	t := &peakTask{bits: bits, flops: make([]float64, b.threads)}
	// Calibrate on one thread, then size each try to last about d/10.
	t0 := time.Now()
	iters := int64(1 << 14)
	for {
		fmaLoop(bits, iters)
		if time.Since(t0) > 20*time.Millisecond {
			break
		}
		iters *= 2
	}
	perIter := time.Since(t0).Seconds() / float64(2*iters) // the doubling sums to about 2·iters
	t.iters = max(int64(d.Seconds()/10/perIter), 1)
	best := 0.0
	for try := 0; try < 10; try++ {
		clear(t.flops)
		start := time.Now()
		b.pool.static(t, b.threads, grain)
		sec := time.Since(start).Seconds()
		total := 0.0
		for _, f := range t.flops {
			total += f
		}
		best = max(best, total/sec)
	}
	return best
}
