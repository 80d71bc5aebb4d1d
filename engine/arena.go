package engine

import (
	"fmt"
	"io"
	"unsafe"
)

// Align is the byte alignment of every tensor an arena hands out.
const Align = 256

// ErrOutOfMemory is wrapped by errors of allocations a device cannot satisfy.
var ErrOutOfMemory = fmt.Errorf("out of memory")

// Arena is one block of device memory carved into tensors by a bump allocator. A planning
// arena (NewPlan) has no memory: it only adds up sizes, so a layout function can run once to
// plan and once to allocate.
type Arena struct {
	Name    string
	b       Backend
	base    unsafe.Pointer
	cap     int64
	used    int64
	entries []Entry
}

// Entry records one tensor carved from an arena.
type Entry struct {
	Name  string
	Bytes int64
}

// NewPlan returns a planning arena named name.
func NewPlan(name string) *Arena { return &Arena{Name: name, cap: -1} }

// NewArena allocates bytes of b's memory for an arena named name. The error wraps
// ErrOutOfMemory when the device has too little.
func NewArena(b Backend, name string, bytes int64) (*Arena, error) {
	a := &Arena{Name: name, b: b, cap: bytes}
	if bytes > 0 {
		p, err := b.Alloc(bytes)
		if err != nil {
			return nil, fmt.Errorf("arena %s (%.1f MiB on %v): %w", name, MiB(bytes), b.Device(), err)
		}
		a.base = p
		b.Zero(Tensor{Shape: []int{int(bytes / 4)}, DType: I32, Dev: b.Device(), Data: p})
	}
	return a, nil
}

// Tensor carves a tensor of the given dtype and shape. In a planning arena its Data is nil.
// It panics if the arena is full (the plan and the allocation disagree: a programming error).
func (a *Arena) Tensor(name string, dt DType, shape ...int) Tensor {
	t := Tensor{Shape: append([]int(nil), shape...), DType: dt}
	n := (t.Bytes() + Align - 1) / Align * Align
	if a.cap >= 0 && a.used+n > a.cap {
		panic(fmt.Sprintf("engine: arena %s: %s (%d bytes) past its %d bytes", a.Name, name, n, a.cap))
	}
	if a.b != nil {
		t.Dev = a.b.Device()
		t.Data = unsafe.Add(a.base, a.used)
	}
	a.used += n
	a.entries = append(a.entries, Entry{name, n})
	return t
}

// Used is the number of bytes carved so far.
func (a *Arena) Used() int64 { return a.used }

// Entries lists the tensors carved so far.
func (a *Arena) Entries() []Entry { return a.entries }

// Close frees the arena's memory. Tensors carved from it must not be used afterwards.
func (a *Arena) Close() error {
	if a.b != nil && a.base != nil {
		a.b.Free(a.base)
		a.base = nil
	}
	return nil
}

// MiB converts bytes to mebibytes.
func MiB(bytes int64) float64 { return float64(bytes) / (1 << 20) }

// PrintPlan writes one line per arena with its size in MiB, then the total.
func PrintPlan(w io.Writer, dev Device, arenas ...*Arena) {
	var total int64
	for _, a := range arenas {
		fmt.Fprintf(w, "  %-12s %10.2f MiB  (%d tensors)\n", a.Name, MiB(a.used), len(a.entries))
		total += a.used
	}
	fmt.Fprintf(w, "  %-12s %10.2f MiB on %v\n", "total", MiB(total), dev)
}
