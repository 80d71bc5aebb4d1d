package cpu

import (
	"sync"
	"sync/atomic"
)

// task is one op's body: run handles the items [lo, hi) on worker w (0 <= w < workers). Each op
// keeps its task in a field of the Backend, so handing it to the pool allocates nothing.
type task interface {
	run(w, lo, hi int)
}

type job struct {
	t      task
	w      int
	lo, hi int
	// dyn makes the worker pull single items from next until n is reached.
	dyn bool
	n   int
}

// pool is a fixed set of worker goroutines; the calling goroutine is worker 0.
type pool struct {
	n    int
	jobs []chan job
	wg   sync.WaitGroup
	next atomic.Int64
	quit chan struct{}
	done bool
}

func newPool(n int) *pool {
	p := &pool{n: n, quit: make(chan struct{})}
	p.jobs = make([]chan job, n)
	for w := 1; w < n; w++ {
		p.jobs[w] = make(chan job, 1)
		go p.loop(p.jobs[w])
	}
	return p
}

func (p *pool) loop(c chan job) {
	for {
		select {
		case j := <-c:
			p.do(j)
			p.wg.Done()
		case <-p.quit:
			return
		}
	}
}

func (p *pool) do(j job) {
	if !j.dyn {
		j.t.run(j.w, j.lo, j.hi)
		return
	}
	for {
		i := int(p.next.Add(1) - 1)
		if i >= j.n {
			return
		}
		j.t.run(j.w, i, i+1)
	}
}

// chunk is the static range of worker w of k over n items.
func chunk(n, k, w int) (int, int) {
	return n * w / k, n * (w + 1) / k
}

// static splits [0, n) into one contiguous range per worker (at most n workers, and only one
// when n*cost is below grain). The split depends only on n and the worker count, so reductions
// over the ranges are deterministic.
func (p *pool) static(t task, n, cost int) {
	p.check()
	if n <= 0 {
		return
	}
	k := min(p.n, n)
	if n*cost < grain {
		k = 1
	}
	if k == 1 {
		t.run(0, 0, n)
		return
	}
	p.wg.Add(k - 1)
	for w := 1; w < k; w++ {
		lo, hi := chunk(n, k, w)
		p.jobs[w] <- job{t: t, w: w, lo: lo, hi: hi}
	}
	lo, hi := chunk(n, k, 0)
	t.run(0, lo, hi)
	p.wg.Wait()
}

// dynamic hands the items [0, n) out one at a time to whichever worker is free; for work of
// uneven size where each item writes its own outputs.
func (p *pool) dynamic(t task, n int) {
	p.check()
	if n <= 0 {
		return
	}
	k := min(p.n, n)
	if k == 1 {
		t.run(0, 0, n)
		return
	}
	p.next.Store(0)
	p.wg.Add(k - 1)
	for w := 1; w < k; w++ {
		p.jobs[w] <- job{t: t, w: w, dyn: true, n: n}
	}
	p.do(job{t: t, w: 0, dyn: true, n: n})
	p.wg.Wait()
}

func (p *pool) close() {
	p.done = true
	close(p.quit)
}

// check panics if the pool was closed: an op on a closed Backend is a programming error.
func (p *pool) check() {
	if p.done {
		panic("cpu: op on a closed Backend")
	}
}

// grain is the least work (in element operations) worth splitting across workers.
const grain = 16384
