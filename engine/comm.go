package engine

import (
	"fmt"
	"sync"
	"unsafe"
)

// Comm is one rank of a collective-communication group of Size ranks, one per device: NCCL on
// GPUs, or the in-process group of LocalComms on the CPU. Every rank must make the same calls
// in the same order, with tensors of the same sizes and dtypes, each from its own goroutine. A
// collective returns once this rank's part of it is complete: its output may be read and its
// input reused. It returns an error for calls that do not match across the ranks, a device
// or NCCL failure, or an aborted group (an *AbortError).
type Comm interface {
	// Rank is this rank's index in [0, Size).
	Rank() int
	// Size is the number of ranks.
	Size() int
	// AllReduceSum replaces t (F32, or BF16 on a GPU) on every rank by the element-wise sum of
	// t over the ranks.
	AllReduceSum(t Tensor) error
	// ReduceScatterSum sets out (n elements) on rank r to the element-wise sum over the ranks of
	// in[r·n : (r+1)·n]; in has Size·n elements. out may be in's own chunk r (in place).
	ReduceScatterSum(out, in Tensor) error
	// AllGather sets out[r·n : (r+1)·n] (Size·n elements) on every rank to in (n elements) of
	// rank r, for every r; any dtype. in may be out's chunk of this rank (in place).
	AllGather(out, in Tensor) error
	// Broadcast copies t of rank root into t on every other rank; any dtype.
	Broadcast(t Tensor, root int) error
	// Abort fails the group with err, on behalf of this rank: every collective of every rank,
	// in progress or to come, returns an *AbortError wrapping err, within a second. It may be
	// called from any goroutine and more than once; the first error is kept.
	Abort(err error)
}

// AbortError is the error of a collective of an aborted group: the rank that aborted it and
// its error.
type AbortError struct {
	Rank int
	Err  error
}

// Error names the rank that failed and its error.
func (e *AbortError) Error() string { return fmt.Sprintf("rank %d failed: %v", e.Rank, e.Err) }

// Unwrap returns the failed rank's error.
func (e *AbortError) Unwrap() error { return e.Err }

// LocalComms returns an in-process group of n ranks over host tensors (F32 for the sums, any
// dtype for gathers and broadcasts), for data parallelism on the CPU and for testing the
// trainer's collectives. Sums are taken in float64 in rank order, so every rank gets
// bit-identical results whatever the scheduling, and one rank's sum is its own tensor. The work
// of a collective is split over the ranks' goroutines. It panics if n < 1.
func LocalComms(n int) []Comm {
	if n < 1 {
		panic(fmt.Sprintf("engine: LocalComms(%d)", n))
	}
	g := &localGroup{n: n, args: make([]localArgs, n)}
	g.cond = sync.NewCond(&g.mu)
	cs := make([]Comm, n)
	for r := range cs {
		cs[r] = &localComm{g: g, rank: r}
	}
	return cs
}

// The collectives of the local group.
const (
	opAllReduce     = "all-reduce"
	opReduceScatter = "reduce-scatter"
	opAllGather     = "all-gather"
	opBroadcast     = "broadcast"
)

type localArgs struct {
	op      string
	out, in Tensor
	root    int
}

type localGroup struct {
	n    int
	mu   sync.Mutex
	cond *sync.Cond
	// arrived counts the ranks at the current barrier; gen advances when all have arrived.
	arrived, gen int
	err          *AbortError // set by Abort: the group is broken for good
	args         []localArgs // the current collective's arguments, by rank
}

// barrier blocks until all n ranks have called it, or the group is aborted.
func (g *localGroup) barrier() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return g.err
	}
	gen := g.gen
	g.arrived++
	if g.arrived == g.n {
		g.arrived = 0
		g.gen++
		g.cond.Broadcast()
		return nil
	}
	for gen == g.gen && g.err == nil {
		g.cond.Wait()
	}
	if gen == g.gen {
		return g.err
	}
	return nil
}

type localComm struct {
	g    *localGroup
	rank int
}

func (c *localComm) Rank() int { return c.rank }
func (c *localComm) Size() int { return c.g.n }

func (c *localComm) Abort(err error) {
	g := c.g
	g.mu.Lock()
	if g.err == nil {
		g.err = &AbortError{Rank: c.rank, Err: err}
	}
	g.cond.Broadcast()
	g.mu.Unlock()
}

func (c *localComm) AllReduceSum(t Tensor) error {
	return c.run(localArgs{op: opAllReduce, out: t, in: t})
}

func (c *localComm) ReduceScatterSum(out, in Tensor) error {
	return c.run(localArgs{op: opReduceScatter, out: out, in: in})
}

func (c *localComm) AllGather(out, in Tensor) error {
	return c.run(localArgs{op: opAllGather, out: out, in: in})
}

func (c *localComm) Broadcast(t Tensor, root int) error {
	return c.run(localArgs{op: opBroadcast, out: t, in: t, root: root})
}

// run posts this rank's arguments, checks that the ranks' calls match (every rank reaches the
// same verdict from the same arguments), does this rank's share of the work and waits until
// every rank has done its own, so that no buffer is reused while another rank reads it.
func (c *localComm) run(a localArgs) error {
	g := c.g
	g.mu.Lock()
	g.args[c.rank] = a
	g.mu.Unlock()
	if err := g.barrier(); err != nil {
		return err
	}
	bad := g.check()
	if bad == nil {
		c.work()
	}
	if err := g.barrier(); err != nil {
		return err
	}
	if bad != nil {
		return fmt.Errorf("engine: %s on rank %d: %w", a.op, c.rank, bad)
	}
	return nil
}

// check returns why the posted calls do not make one collective, or nil.
func (g *localGroup) check() error {
	a0 := g.args[0]
	for r, a := range g.args {
		if a.op != a0.op {
			return fmt.Errorf("rank %d called %s, rank 0 %s", r, a.op, a0.op)
		}
		if a.out.Len() != a0.out.Len() || a.in.Len() != a0.in.Len() || a.out.DType != a0.out.DType || a.in.DType != a0.in.DType {
			return fmt.Errorf("rank %d passed %d→%d %v elements, rank 0 %d→%d %v", r, a.in.Len(), a.out.Len(), a.in.DType, a0.in.Len(), a0.out.Len(), a0.in.DType)
		}
		if a.root != a0.root {
			return fmt.Errorf("rank %d broadcasts from rank %d, rank 0 from rank %d", r, a.root, a0.root)
		}
		for _, t := range []Tensor{a.in, a.out} {
			if t.Dev.Kind != CPU {
				return fmt.Errorf("rank %d passed a tensor on %v (the local group works on host memory)", r, t.Dev)
			}
		}
	}
	n, in, out := g.n, a0.in.Len(), a0.out.Len()
	switch a0.op {
	case opAllReduce, opReduceScatter:
		if a0.in.DType != F32 || a0.out.DType != F32 {
			return fmt.Errorf("sums of %v (want F32)", a0.in.DType)
		}
	}
	if a0.in.DType != a0.out.DType {
		return fmt.Errorf("input %v, output %v", a0.in.DType, a0.out.DType)
	}
	switch {
	case a0.op == opReduceScatter && in != n*out:
		return fmt.Errorf("%d input elements for %d ranks of %d", in, n, out)
	case a0.op == opAllGather && out != n*in:
		return fmt.Errorf("%d output elements for %d ranks of %d", out, n, in)
	case a0.op == opBroadcast && (a0.root < 0 || a0.root >= n):
		return fmt.Errorf("root %d of %d ranks", a0.root, n)
	}
	return nil
}

// bytesOf is t's storage as bytes.
func bytesOf(t Tensor) []byte {
	if t.Data == nil {
		return nil
	}
	return unsafe.Slice((*byte)(t.Data), t.Bytes())
}

// work does this rank's share of the posted collective; the ranks' shares touch disjoint
// elements, and in-place arguments read each element before writing it.
func (c *localComm) work() {
	g, r, n := c.g, c.rank, c.g.n
	a := g.args[r]
	switch a.op {
	case opAllReduce:
		// Rank r sums the range r of every rank's tensor and writes it back to all of them.
		bufs := make([][]float32, n)
		for k := range bufs {
			bufs[k] = g.args[k].in.F32()
		}
		size := len(bufs[0])
		for i := r * size / n; i < (r+1)*size/n; i++ {
			var s float64
			for _, b := range bufs {
				s += float64(b[i])
			}
			for _, b := range bufs {
				b[i] = float32(s)
			}
		}
	case opReduceScatter:
		out := a.out.F32()
		m := len(out)
		ins := make([][]float32, n)
		for k := range ins {
			ins[k] = g.args[k].in.F32()[r*m : (r+1)*m]
		}
		for i := range out {
			var s float64
			for _, in := range ins {
				s += float64(in[i])
			}
			out[i] = float32(s)
		}
	case opAllGather:
		out := bytesOf(a.out)
		m := len(out) / n
		for k := 0; k < n; k++ {
			if src := bytesOf(g.args[k].in); len(src) > 0 && &src[0] != &out[k*m] {
				copy(out[k*m:(k+1)*m], src)
			}
		}
	case opBroadcast:
		if r != a.root {
			copy(bytesOf(a.out), bytesOf(g.args[a.root].in))
		}
	}
}
