package engine

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"
)

// onRanks runs fn on every rank of cs at once and returns each rank's error.
func onRanks(cs []Comm, fn func(r int, c Comm) error) []error {
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for r, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = fn(r, c)
		}()
	}
	wg.Wait()
	return errs
}

func noErrors(t *testing.T, errs []error) {
	t.Helper()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
}

// value is element i of rank r's input: not exactly representable sums, so the float64
// accumulation shows.
func value(r, i int) float32 { return float32(math.Sin(float64(r*1000+i)) * 1e3) }

// TestLocalCollectives: on 1, 2 and 3 ranks, all-reduce, reduce-scatter (in place and into
// another buffer), all-gather (in place, of F32 and of I32) and broadcast give every rank what
// a float64 sum in rank order, rounded once, or a copy gives.
func TestLocalCollectives(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("ranks=%d", n), func(t *testing.T) {
			const m = 7 // elements per rank's chunk
			cs := LocalComms(n)
			in := func(r, size int) []float32 {
				x := make([]float32, size)
				for i := range x {
					x[i] = value(r, i)
				}
				return x
			}
			sum := func(i int) float32 {
				var s float64
				for r := 0; r < n; r++ {
					s += float64(value(r, i))
				}
				return float32(s)
			}

			// All-reduce of n·m elements.
			bufs := make([][]float32, n)
			noErrors(t, onRanks(cs, func(r int, c Comm) error {
				bufs[r] = in(r, n*m)
				return c.AllReduceSum(HostF32(bufs[r], n*m))
			}))
			for r := range bufs {
				for i, x := range bufs[r] {
					if x != sum(i) {
						t.Fatalf("all-reduce: rank %d element %d: %g, want %g", r, i, x, sum(i))
					}
				}
			}

			// Reduce-scatter in place (out is chunk r of in) and into a separate buffer.
			for _, inPlace := range []bool{true, false} {
				outs := make([][]float32, n)
				noErrors(t, onRanks(cs, func(r int, c Comm) error {
					x := in(r, n*m)
					src := HostF32(x, n*m)
					outs[r] = make([]float32, m)
					if inPlace {
						outs[r] = x[r*m : (r+1)*m]
					}
					return c.ReduceScatterSum(HostF32(outs[r], m), src)
				}))
				for r := range outs {
					for i, x := range outs[r] {
						if want := sum(r*m + i); x != want {
							t.Fatalf("reduce-scatter (in place %v): rank %d element %d: %g, want %g", inPlace, r, i, x, want)
						}
					}
				}
			}

			// All-gather in place, F32, and of I32 into a separate buffer.
			gf := make([][]float32, n)
			gi := make([][]int32, n)
			noErrors(t, onRanks(cs, func(r int, c Comm) error {
				gf[r] = make([]float32, n*m)
				copy(gf[r][r*m:], in(r, m))
				if err := c.AllGather(HostF32(gf[r], n*m), HostF32(gf[r][r*m:(r+1)*m], m)); err != nil {
					return err
				}
				mine := []int32{int32(r), -int32(r), math.MaxInt32 - int32(r)}
				gi[r] = make([]int32, 3*n)
				return c.AllGather(HostI32(gi[r], 3*n), HostI32(mine, 3))
			}))
			for r := range gf {
				for k := 0; k < n; k++ {
					for i := 0; i < m; i++ {
						if got := gf[r][k*m+i]; got != value(k, i) {
							t.Fatalf("all-gather: rank %d chunk %d element %d: %g, want %g", r, k, i, got, value(k, i))
						}
					}
					if got := gi[r][3*k : 3*k+3]; got[0] != int32(k) || got[1] != -int32(k) || got[2] != math.MaxInt32-int32(k) {
						t.Fatalf("all-gather of I32: rank %d chunk %d: %v", r, k, got)
					}
				}
			}

			// Broadcast from the last rank.
			bc := make([][]float32, n)
			noErrors(t, onRanks(cs, func(r int, c Comm) error {
				bc[r] = in(r, m)
				return c.Broadcast(HostF32(bc[r], m), n-1)
			}))
			for r := range bc {
				for i, x := range bc[r] {
					if x != value(n-1, i) {
						t.Fatalf("broadcast: rank %d element %d: %g, want %g", r, i, x, value(n-1, i))
					}
				}
			}
		})
	}
}

// TestLocalCommsMismatch: calls that do not make one collective (different sizes, different
// collectives) are an error on every rank, and the group stays usable.
func TestLocalCommsMismatch(t *testing.T) {
	cs := LocalComms(3)
	for name, fn := range map[string]func(r int, c Comm) error{
		"sizes": func(r int, c Comm) error { return c.AllReduceSum(HostF32(make([]float32, 4+r), 4+r)) },
		"ops": func(r int, c Comm) error {
			if r == 1 {
				return c.Broadcast(HostF32(make([]float32, 4), 4), 0)
			}
			return c.AllReduceSum(HostF32(make([]float32, 4), 4))
		},
		"reduce-scatter of a size that does not split": func(r int, c Comm) error {
			return c.ReduceScatterSum(HostF32(make([]float32, 2), 2), HostF32(make([]float32, 5), 5))
		},
	} {
		for r, err := range onRanks(cs, fn) {
			if err == nil {
				t.Errorf("%s: rank %d: no error", name, r)
			}
		}
	}
	noErrors(t, onRanks(cs, func(r int, c Comm) error { return c.AllReduceSum(HostF32([]float32{1}, 1)) }))
}

// TestLocalCommsAbort: a rank that aborts the group wakes the ranks waiting in a collective
// with an *AbortError naming it and wrapping its error, and every later collective fails at
// once.
func TestLocalCommsAbort(t *testing.T) {
	cs := LocalComms(3)
	boom := errors.New("injected failure")
	start := time.Now()
	errs := onRanks(cs, func(r int, c Comm) error {
		if r == 2 {
			time.Sleep(50 * time.Millisecond) // the others are waiting by now
			c.Abort(boom)
			return nil
		}
		return c.AllReduceSum(HostF32(make([]float32, 8), 8))
	})
	if d := time.Since(start); d > time.Second {
		t.Errorf("the waiting ranks returned after %v", d)
	}
	for r, err := range errs[:2] {
		var ae *AbortError
		if !errors.As(err, &ae) || ae.Rank != 2 || !errors.Is(err, boom) {
			t.Errorf("rank %d: %v, want an AbortError of rank 2 wrapping the injected error", r, err)
		}
	}
	cs[0].Abort(errors.New("second")) // the first error is kept
	for r, err := range onRanks(cs, func(r int, c Comm) error { return c.Broadcast(HostF32(make([]float32, 1), 1), 0) }) {
		if !errors.Is(err, boom) {
			t.Errorf("rank %d after the abort: %v, want the injected error", r, err)
		}
	}
}
