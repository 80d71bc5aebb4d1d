package engine

import (
	"sync"
	"testing"
)

// TestLocalComms: every rank gets the element-wise sum; mismatched sizes are an error on every
// rank, and the group stays usable.
func TestLocalComms(t *testing.T) {
	const n, size = 3, 10
	cs := LocalComms(n)
	bufs := make([][]float32, n)
	for r := range bufs {
		bufs[r] = make([]float32, size)
		for i := range bufs[r] {
			bufs[r][i] = float32(r*100 + i)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for r, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = c.AllReduceSum(HostF32(bufs[r], size))
		}()
	}
	wg.Wait()
	for r := range bufs {
		if errs[r] != nil {
			t.Fatal(errs[r])
		}
		for i, x := range bufs[r] {
			if want := float32(300 + 3*i); x != want {
				t.Fatalf("rank %d element %d: %g, want %g", r, i, x, want)
			}
		}
	}
	for r, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = c.AllReduceSum(HostF32(make([]float32, 4+r), 4+r))
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err == nil {
			t.Errorf("rank %d: no error for mismatched sizes", r)
		}
	}
}
