package engine

import (
	"fmt"
	"sync"
)

// Comm is a collective-communication group of Size ranks, one per device (NCCL on GPUs, or
// in-process on the CPU). Every rank must make the same calls in the same order.
type Comm interface {
	Rank() int
	Size() int
	// AllReduceSum replaces t on every rank by the element-wise sum of t over the ranks.
	AllReduceSum(t Tensor) error
}

// LocalComms returns an in-process group of n ranks over host F32 tensors, for data
// parallelism on the CPU and for testing the trainer's collectives. Sums are taken in float64
// in rank order, so every rank gets bit-identical results whatever the scheduling. It panics
// if n < 1.
func LocalComms(n int) []Comm {
	if n < 1 {
		panic(fmt.Sprintf("engine: LocalComms(%d)", n))
	}
	g := &localGroup{n: n, bufs: make([][]float32, n)}
	g.cond = sync.NewCond(&g.mu)
	cs := make([]Comm, n)
	for r := range cs {
		cs[r] = &localComm{g: g, rank: r}
	}
	return cs
}

type localGroup struct {
	n    int
	mu   sync.Mutex
	cond *sync.Cond
	// arrived counts the ranks at the current barrier; gen advances when all have arrived.
	arrived, gen int
	bufs         [][]float32
	sum          []float32
}

// barrier blocks until all n ranks have called it.
func (g *localGroup) barrier() {
	g.mu.Lock()
	gen := g.gen
	g.arrived++
	if g.arrived == g.n {
		g.arrived = 0
		g.gen++
		g.cond.Broadcast()
	} else {
		for gen == g.gen {
			g.cond.Wait()
		}
	}
	g.mu.Unlock()
}

type localComm struct {
	g    *localGroup
	rank int
}

func (c *localComm) Rank() int { return c.rank }
func (c *localComm) Size() int { return c.g.n }

func (c *localComm) AllReduceSum(t Tensor) error {
	x := t.F32()
	g := c.g
	g.mu.Lock()
	g.bufs[c.rank] = x
	if c.rank == 0 && len(g.sum) < len(x) {
		g.sum = make([]float32, len(x))
	}
	g.mu.Unlock()
	g.barrier()
	for _, b := range g.bufs {
		if len(b) != len(x) {
			g.barrier()
			g.barrier()
			return fmt.Errorf("engine: all-reduce of %d elements on rank %d, %d on another", len(x), c.rank, len(b))
		}
	}
	// Each rank sums a disjoint range into the shared result, then copies the whole result.
	lo, hi := c.rank*len(x)/g.n, (c.rank+1)*len(x)/g.n
	for i := lo; i < hi; i++ {
		var s float64
		for _, b := range g.bufs {
			s += float64(b[i])
		}
		g.sum[i] = float32(s)
	}
	g.barrier()
	copy(x, g.sum[:len(x)])
	g.barrier()
	return nil
}
