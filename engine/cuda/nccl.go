//go:build cuda

package cuda

/*
#include <stdlib.h>
#include "cir.h"
*/
import "C"

import (
	"fmt"
	"unsafe"

	"cir/engine"
)

// Comms holds one NCCL communicator per backend of one process (ncclCommInitAll), for the
// data-parallel all-reduce of gradients. NCCL is opened with dlopen (libnccl.so.2).
type Comms struct {
	bs    []*Backend
	comms []unsafe.Pointer
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
	c := &Comms{bs: bs, comms: make([]unsafe.Pointer, len(bs))}
	copy(c.comms, unsafe.Slice((*unsafe.Pointer)(raw), len(bs)))
	return c, nil
}

func ncclErr(op string, st C.int) error {
	e := &Error{Op: op, Code: int(st)}
	if s := C.cir_nccl_error(st); s != nil {
		return fmt.Errorf("%w: %s", e, C.GoString(s))
	}
	return e
}

// AllReduceSum sums t (F32 or BF16, on rank's device) over all ranks in place, enqueued on that
// backend's stream; failures are reported by its Sync. Every rank must call it with tensors of
// the same size, each from its own goroutine (NCCL blocks a rank until all have joined). It
// panics on a rank out of range or a tensor of another device.
func (c *Comms) AllReduceSum(rank int, t engine.Tensor) {
	b := c.bs[rank]
	p := ptr("AllReduceSum", "t", t, -1, engine.F32, engine.BF16)
	if t.Dev != b.Device() {
		bad("AllReduceSum: rank %d is %v, t is on %v", rank, b.Device(), t.Dev)
	}
	defer b.enter()()
	if st := C.cir_nccl_all_reduce_sum(p, C.size_t(t.Len()), dt(t), c.comms[rank], b.stream); st != 0 && b.err == nil {
		b.err = ncclErr("AllReduceSum", st)
	}
}

// Close destroys the communicators.
func (c *Comms) Close() error {
	var first error
	for i, cm := range c.comms {
		if cm == nil {
			continue
		}
		leave := c.bs[i].enter()
		if st := C.cir_nccl_destroy(cm); st != 0 && first == nil {
			first = ncclErr("Close", st)
		}
		leave()
		c.comms[i] = nil
	}
	return first
}
