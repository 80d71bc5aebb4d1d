package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkTrivial measures trivial executions (print(1+1)) on the warm pool with W workers
// (W calls in flight) against a fresh sandboxed Python per call (RunOnce, without numpy/sympy
// preloaded: the cheapest fresh process), 2 in flight. It reports executions per second, the
// p50/p99 latency of one call and the sandboxes' CPU time per call.
func BenchmarkTrivial(b *testing.B) {
	needSandbox(b)
	benchCalls(b, "print(1+1)", "2")
	// Calls that arrive while the worker is idle (as in a rollout, where decoding goes on
	// between a sequence's calls): the latency of one call without the previous one's cleanup.
	b.Run("pool/W=1,paced", func(b *testing.B) {
		pause := func() { time.Sleep(100 * time.Millisecond) } // lowers execs/s, not latency
		benchPool(b, 1, pause, "print(1+1)", "2")
	})
}

// BenchmarkTypical measures calls like the model's, sympy and numpy doing a little work, as
// BenchmarkTrivial does.
func BenchmarkTypical(b *testing.B) {
	needSandbox(b)
	const code = `import sympy as sp
import numpy as np
x = sp.symbols("x")
roots = sp.solve(x**2 - 5*x + 6, x)
print(roots, int(np.array([int(r) for r in roots]).sum()))`
	benchCalls(b, code, "[2, 3] 5")
}

// benchCalls runs code on pools of 1 and 2 workers and on a fresh process per call.
func benchCalls(b *testing.B, code, want string) {
	for _, w := range []int{1, 2} {
		b.Run(fmt.Sprintf("pool/W=%d", w), func(b *testing.B) {
			benchPool(b, w, nil, code, want)
		})
	}
	b.Run("fresh/W=2", func(b *testing.B) {
		cfg := benchConfig(b, 1)
		cfg.Lazy = true
		cfg.Timeout = time.Minute // importing sympy takes seconds on a busy machine
		cpu := childCPU()
		measure(b, 2, nil, want, func() Result { return RunOnce(context.Background(), cfg, code) })
		b.ReportMetric((childCPU()-cpu).Seconds()*1000/float64(b.N), "cpu_ms/exec")
	})
}

// benchPool measures code on a pool of w workers; pre as for measure.
func benchPool(b *testing.B, w int, pre func(), code, want string) {
	cfg := benchConfig(b, w)
	p := newPool(b, cfg)
	for range 2 * w { // warm up every worker
		p.Run(context.Background(), code)
	}
	cpu := poolCPU(b, p)
	measure(b, w, pre, want, func() Result { return p.Run(context.Background(), code) })
	b.ReportMetric((poolCPU(b, p)-cpu).Seconds()*1000/float64(b.N), "cpu_ms/exec")
}

// childCPU is the CPU time of this process's reaped children (the sandboxes and all they ran).
func childCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// poolCPU is the CPU time the pool's idle workers have used so far, with everything they
// started (from /proc: bwrap and its descendants, each with the children it reaped). Startup
// is included: take differences.
func poolCPU(b *testing.B, p *Pool) time.Duration {
	var ws []*worker
	for range p.cfg.Workers {
		ws = append(ws, <-p.idle)
	}
	var ticks int64
	for _, w := range ws {
		pids := []int{w.cmd.Process.Pid}
		for i := 0; i < len(pids); i++ {
			kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pids[i], pids[i]))
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
				continue // a call's child that has just ended
			} else if err != nil {
				b.Fatalf("worker CPU: %v", err)
			}
			for _, f := range strings.Fields(string(kids)) {
				n, _ := strconv.Atoi(f)
				pids = append(pids, n)
			}
		}
		for _, pid := range pids {
			st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
				continue // its CPU time is the worker's cutime once reaped
			} else if err != nil {
				b.Fatalf("worker CPU: %v", err)
			}
			f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+2:]))
			for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
				n, _ := strconv.ParseInt(f[i], 10, 64)
				ticks += n
			}
		}
	}
	for _, w := range ws {
		p.idle <- w
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

// benchConfig is the default configuration (5 s limit) with w workers and no logging.
func benchConfig(b *testing.B, w int) Config {
	cfg := DefaultConfig()
	cfg.Workers = w
	cfg.Logf = func(string, ...any) {}
	return cfg
}

// measure runs b.N calls of run on w goroutines, each of which must output want, and reports
// throughput and latency; pre, when not nil, runs before each call, outside its latency.
func measure(b *testing.B, w int, pre func(), want string, run func() Result) {
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	var bad atomic.Int64
	var badMu sync.Mutex
	var firstBad Result
	b.ResetTimer()
	start := time.Now()
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if pre != nil {
					pre()
				}
				t := time.Now()
				r := run()
				lat[i] = time.Since(t)
				if r.Output != want && bad.Add(1) == 1 {
					badMu.Lock()
					firstBad = r
					badMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := bad.Load(); n > 0 {
		b.Fatalf("%d of %d calls gave a wrong result, the first: %+v", n, b.N, firstBad)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "execs/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99_ms")
	b.ReportMetric(0, "ns/op")
}
