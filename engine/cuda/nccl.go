//go:build cuda

package cuda

/*
#include <stdlib.h>
#include "cir.h"
*/
import "C"

import (
	"fmt"
	"sync"
	"time"
	"unsafe"

	"cir/engine"
)

// Comms holds one NCCL communicator per backend of one process (ncclCommInitAll): the ranks of
// a data-parallel group, each an engine.Comm (Rank). NCCL is opened with dlopen (libnccl.so.2).
//
// A collective is enqueued on the rank's stream and then waited for by polling the stream,
// NCCL's asynchronous error and the group's abort flag, so that a failed or aborted group never
// leaves a rank blocked: Abort (or a rank's NCCL error) makes every rank abort its communicator
// (ncclCommAbort) and return an *engine.AbortError within milliseconds.
type Comms struct {
	bs    []*Backend
	ranks []*Comm

	mu  sync.Mutex
	err *engine.AbortError // the group's abort, set once
}

// Comm is one rank of Comms: an engine.Comm over NCCL on its backend's device and stream.
type Comm struct {
	g    *Comms
	rank int
	b    *Backend
	comm unsafe.Pointer // nil once destroyed or aborted
	busy bool           // inside a collective (guarded by g.mu)
}

// NewComms creates the communicators of the devices of bs, rank i being bs[i]. The error is an
// *Error (NCCL missing, or NCCL's status).
func NewComms(bs []*Backend) (*Comms, error) {
	if len(bs) == 0 {
		return nil, fmt.Errorf("cuda: NewComms: no backends")
	}
	devs := make([]C.int, len(bs))
	for i, b := range bs {
		devs[i] = C.int(b.dev)
	}
	raw := C.malloc(C.size_t(len(bs)) * C.size_t(unsafe.Sizeof(unsafe.Pointer(nil))))
	defer C.free(raw)
	if st := C.cir_nccl_init_all((*unsafe.Pointer)(raw), C.int(len(bs)), &devs[0]); st != 0 {
		return nil, ncclErr("NewComms", st)
	}
	c := &Comms{bs: bs}
	for i, p := range unsafe.Slice((*unsafe.Pointer)(raw), len(bs)) {
		c.ranks = append(c.ranks, &Comm{g: c, rank: i, b: bs[i], comm: p})
	}
	return c, nil
}

func ncclErr(op string, st C.int) error {
	e := &Error{Op: op, Code: int(st)}
	if s := C.cir_nccl_error(st); s != nil {
		return fmt.Errorf("%w: %s", e, C.GoString(s))
	}
	return e
}

// Rank returns rank r's Comm, to be used from rank r's goroutine. It panics on a rank out of
// range.
func (c *Comms) Rank(r int) *Comm { return c.ranks[r] }

// Close destroys the communicators (aborting those of an aborted group).
func (c *Comms) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for _, r := range c.ranks {
		if r.comm == nil {
			continue
		}
		leave := r.b.enter()
		var st C.int
		if c.err != nil {
			st = C.cir_nccl_abort(r.comm)
		} else {
			st = C.cir_nccl_destroy(r.comm)
		}
		leave()
		if st != 0 && first == nil {
			first = ncclErr("Close", st)
		}
		r.comm = nil
	}
	return first
}

// Rank is the rank's index.
func (r *Comm) Rank() int { return r.rank }

// Size is the number of ranks.
func (r *Comm) Size() int { return len(r.g.ranks) }

// Abort fails the group with err on behalf of this rank: the communicators of ranks not inside
// a collective are aborted now, the others abort theirs from their wait, and every collective
// returns an *engine.AbortError.
func (r *Comm) Abort(err error) {
	g := r.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err == nil {
		g.err = &engine.AbortError{Rank: r.rank, Err: err}
	}
	for _, q := range g.ranks {
		if !q.busy {
			q.abortLocked()
		}
	}
}

// abortLocked aborts the rank's communicator (with g.mu held).
func (r *Comm) abortLocked() {
	if r.comm == nil {
		return
	}
	leave := r.b.enter()
	C.cir_nccl_abort(r.comm)
	leave()
	r.comm = nil
}

// AllReduceSum sums t (F32 or BF16, on the rank's device) over the ranks in place.
func (r *Comm) AllReduceSum(t engine.Tensor) error {
	if err := r.check("AllReduceSum", t, engine.F32, engine.BF16); err != nil {
		return err
	}
	return r.run("AllReduceSum", func(comm unsafe.Pointer) C.int {
		return C.cir_nccl_all_reduce_sum(t.Data, C.size_t(t.Len()), dt(t), comm, r.b.stream)
	})
}

// ReduceScatterSum sets out (n elements, F32 or BF16) to the sum over the ranks of their
// chunk Rank of in (Size·n elements).
func (r *Comm) ReduceScatterSum(out, in engine.Tensor) error {
	if err := r.check("ReduceScatterSum", out, engine.F32, engine.BF16); err != nil {
		return err
	}
	if err := r.check("ReduceScatterSum", in, out.DType); err != nil {
		return err
	}
	if in.Len() != r.Size()*out.Len() {
		return fmt.Errorf("cuda: ReduceScatterSum: %d input elements for %d ranks of %d", in.Len(), r.Size(), out.Len())
	}
	return r.run("ReduceScatterSum", func(comm unsafe.Pointer) C.int {
		return C.cir_nccl_reduce_scatter_sum(in.Data, out.Data, C.size_t(out.Len()), dt(out), comm, r.b.stream)
	})
}

// AllGather sets out (Size·n elements) to every rank's in (n elements), in rank order.
func (r *Comm) AllGather(out, in engine.Tensor) error {
	if err := r.check("AllGather", out); err != nil {
		return err
	}
	if err := r.check("AllGather", in, out.DType); err != nil {
		return err
	}
	if out.Len() != r.Size()*in.Len() {
		return fmt.Errorf("cuda: AllGather: %d output elements for %d ranks of %d", out.Len(), r.Size(), in.Len())
	}
	return r.run("AllGather", func(comm unsafe.Pointer) C.int {
		return C.cir_nccl_all_gather(in.Data, out.Data, C.size_t(in.Bytes()), comm, r.b.stream)
	})
}

// Broadcast copies root's t into t on every rank.
func (r *Comm) Broadcast(t engine.Tensor, root int) error {
	if err := r.check("Broadcast", t); err != nil {
		return err
	}
	if root < 0 || root >= r.Size() {
		return fmt.Errorf("cuda: Broadcast: root %d of %d ranks", root, r.Size())
	}
	return r.run("Broadcast", func(comm unsafe.Pointer) C.int {
		return C.cir_nccl_broadcast(t.Data, C.size_t(t.Bytes()), C.int(root), comm, r.b.stream)
	})
}

// check returns an error unless t is a tensor of the rank's device of one of dts (any when
// none is given).
func (r *Comm) check(op string, t engine.Tensor, dts ...engine.DType) error {
	if t.Data == nil && t.Len() > 0 {
		return fmt.Errorf("cuda: %s: absent tensor", op)
	}
	if t.Dev != r.b.Device() {
		return fmt.Errorf("cuda: %s: rank %d is on %v, the tensor on %v", op, r.rank, r.b.Device(), t.Dev)
	}
	for _, d := range dts {
		if t.DType == d {
			return nil
		}
	}
	if len(dts) > 0 {
		return fmt.Errorf("cuda: %s: %v tensor, want %v", op, t.DType, dts)
	}
	return nil
}

// run enqueues a collective on the rank's stream and waits for it: it returns when the stream
// has done it, with NCCL's error (synchronous or asynchronous), or with the group's abort, having
// aborted this rank's communicator.
func (r *Comm) run(op string, enqueue func(comm unsafe.Pointer) C.int) error {
	g := r.g
	g.mu.Lock()
	if g.err != nil {
		r.abortLocked()
		g.mu.Unlock()
		return g.err
	}
	if r.comm == nil {
		g.mu.Unlock()
		return fmt.Errorf("cuda: %s on a closed communicator", op)
	}
	r.busy = true
	comm := r.comm
	g.mu.Unlock()
	defer r.b.enter()()
	err := r.wait(op, enqueue(comm), comm)
	g.mu.Lock()
	defer g.mu.Unlock()
	r.busy = false
	if g.err != nil {
		r.abortLocked()
		return g.err
	}
	if err != nil {
		// This rank's NCCL failed: the group is broken for every rank.
		g.err = &engine.AbortError{Rank: r.rank, Err: err}
		r.abortLocked()
	}
	return err
}

// wait polls the enqueued collective (st is the enqueue's status) until the stream is done, NCCL
// reports an asynchronous error, or the group is aborted (the caller then aborts the
// communicator, which ends the collective's kernels).
func (r *Comm) wait(op string, st C.int, comm unsafe.Pointer) error {
	if st != 0 {
		return ncclErr(op, st)
	}
	pause := time.Microsecond
	for {
		switch e := C.cudaStreamQuery(r.b.stream); e {
		case C.cudaSuccess:
			return nil
		case C.cudaErrorNotReady:
		default:
			C.cudaGetLastError()
			return cerr(op, C.int(e))
		}
		if st := C.cir_nccl_async_error(comm); st != 0 {
			return ncclErr(op, st)
		}
		r.g.mu.Lock()
		aborted := r.g.err != nil
		r.g.mu.Unlock()
		if aborted {
			return nil
		}
		time.Sleep(pause)
		pause = min(2*pause, time.Millisecond)
	}
}

var _ engine.Comm = (*Comm)(nil)
