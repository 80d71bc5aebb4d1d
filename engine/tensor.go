// Package engine holds what every backend shares: devices, tensors, memory arenas and the
// Backend interface with every op the model needs, forward and backward.
//
// Shapes in doc comments use llm.c's notation: N tokens of a packed batch (the B sequences of
// a batch laid end to end), C channels, V vocabulary, H query heads, Hkv key/value heads,
// D head dimension, I intermediate size.
package engine

import (
	"fmt"
	"sync"
	"unsafe"
)

// shapeKey is a shape of up to four dimensions, as a map key.
type shapeKey struct {
	n int
	d [4]int
}

// shapes interns shapes: views are made on every op of every step, and sharing one immutable
// slice per distinct shape keeps a steady-state training step free of allocations.
var shapes = struct {
	sync.RWMutex
	m map[shapeKey][]int
}{m: map[shapeKey][]int{}}

// internShape returns an immutable slice equal to dims, shared by every caller with the same
// dims. Shapes of more than four dimensions are copied.
func internShape(dims ...int) []int {
	if len(dims) > 4 {
		return append([]int(nil), dims...)
	}
	k := shapeKey{n: len(dims)}
	copy(k.d[:], dims)
	shapes.RLock()
	v, ok := shapes.m[k]
	shapes.RUnlock()
	if ok {
		return v
	}
	shapes.Lock()
	defer shapes.Unlock()
	if v, ok := shapes.m[k]; ok {
		return v
	}
	v = append([]int(nil), dims...)
	shapes.m[k] = v
	return v
}

// DType is the element type of a tensor.
type DType uint8

// The element types a backend stores.
const (
	F32 DType = iota
	BF16
	F16
	I32
)

// Size is the number of bytes of one element.
func (d DType) Size() int {
	switch d {
	case F32, I32:
		return 4
	case BF16, F16:
		return 2
	}
	panic(fmt.Sprintf("engine: unknown dtype %d", d))
}

func (d DType) String() string {
	switch d {
	case F32:
		return "F32"
	case BF16:
		return "BF16"
	case F16:
		return "F16"
	case I32:
		return "I32"
	}
	return fmt.Sprintf("DType(%d)", d)
}

// Kind says what sort of device a buffer lives on.
type Kind uint8

// The device kinds.
const (
	CPU Kind = iota
	CUDA
)

// Device names one device: the host, or a GPU by index.
type Device struct {
	Kind  Kind
	Index int
}

func (d Device) String() string {
	if d.Kind == CUDA {
		return fmt.Sprintf("cuda:%d", d.Index)
	}
	return "cpu"
}

// Tensor is a view of a dense, row-major block of device memory: a shape, an element type and
// the address of the first element. It owns nothing; arenas own memory. Shape is shared
// between views and must not be modified. A zero Tensor (nil
// Data) stands for "absent" where an op takes an optional argument (a bias, say).
type Tensor struct {
	Shape []int
	DType DType
	Dev   Device
	Data  unsafe.Pointer
}

// Len is the number of elements.
func (t Tensor) Len() int {
	n := 1
	for _, s := range t.Shape {
		n *= s
	}
	return n
}

// Bytes is the size in bytes.
func (t Tensor) Bytes() int64 { return int64(t.Len()) * int64(t.DType.Size()) }

// Nil reports whether t is the absent tensor.
func (t Tensor) Nil() bool { return t.Data == nil }

// Dim is the size of dimension i; negative i counts from the end. It panics if i is out of range.
func (t Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.Shape)
	}
	return t.Shape[i]
}

// View returns t with a new shape of the same number of elements. It panics otherwise.
func (t Tensor) View(shape ...int) Tensor {
	v := t
	v.Shape = internShape(shape...)
	if v.Len() != t.Len() {
		panic(fmt.Sprintf("engine: view %v of a tensor of shape %v", v.Shape, t.Shape))
	}
	return v
}

// Rows returns the rows [i, j) of t along its first dimension. It panics if the range is out
// of bounds.
func (t Tensor) Rows(i, j int) Tensor {
	if len(t.Shape) == 0 || i < 0 || j < i || j > t.Shape[0] {
		panic(fmt.Sprintf("engine: rows [%d,%d) of a tensor of shape %v", i, j, t.Shape))
	}
	row := t.Len() / max(t.Shape[0], 1)
	v := t
	var dims [4]int
	if len(t.Shape) <= 4 {
		dims[0] = j - i
		copy(dims[1:], t.Shape[1:])
		v.Shape = internShape(dims[:len(t.Shape)]...)
	} else {
		v.Shape = append([]int{j - i}, t.Shape[1:]...)
	}
	v.Data = unsafe.Add(t.Data, i*row*t.DType.Size())
	return v
}

// F32 returns the elements of a host F32 tensor as a slice sharing its memory. It panics if t is
// not an F32 tensor in host memory.
func (t Tensor) F32() []float32 {
	if t.Dev.Kind != CPU || t.DType != F32 {
		panic(fmt.Sprintf("engine: F32() of a %v tensor on %v", t.DType, t.Dev))
	}
	if t.Data == nil {
		return nil
	}
	return unsafe.Slice((*float32)(t.Data), t.Len())
}

// I32 returns the elements of a host I32 tensor as a slice sharing its memory. It panics if t is
// not an I32 tensor in host memory.
func (t Tensor) I32() []int32 {
	if t.Dev.Kind != CPU || t.DType != I32 {
		panic(fmt.Sprintf("engine: I32() of a %v tensor on %v", t.DType, t.Dev))
	}
	if t.Data == nil {
		return nil
	}
	return unsafe.Slice((*int32)(t.Data), t.Len())
}

// HostF32 wraps a Go slice as a host F32 tensor of the given shape. It panics if the sizes differ.
func HostF32(x []float32, shape ...int) Tensor {
	t := Tensor{Shape: internShape(shape...), DType: F32}
	if t.Len() != len(x) {
		panic(fmt.Sprintf("engine: %d floats for shape %v", len(x), t.Shape))
	}
	if len(x) > 0 {
		t.Data = unsafe.Pointer(&x[0])
	}
	return t
}

// HostI32 wraps a Go slice as a host I32 tensor of the given shape. It panics if the sizes differ.
func HostI32(x []int32, shape ...int) Tensor {
	t := Tensor{Shape: internShape(shape...), DType: I32}
	if t.Len() != len(x) {
		panic(fmt.Sprintf("engine: %d ints for shape %v", len(x), t.Shape))
	}
	if len(x) > 0 {
		t.Data = unsafe.Pointer(&x[0])
	}
	return t
}

// SameShape reports whether a and b have equal shapes.
func SameShape(a, b Tensor) bool {
	if len(a.Shape) != len(b.Shape) {
		return false
	}
	for i := range a.Shape {
		if a.Shape[i] != b.Shape[i] {
			return false
		}
	}
	return true
}

// MustShape panics with the op's name unless t has the given shape (-1 matches any size).
func MustShape(op, name string, t Tensor, shape ...int) {
	ok := len(t.Shape) == len(shape)
	for i := 0; ok && i < len(shape); i++ {
		ok = shape[i] < 0 || shape[i] == t.Shape[i]
	}
	if !ok {
		panic(fmt.Sprintf("engine: %s: %s has shape %v, want %v", op, name, t.Shape, shape))
	}
}

// Slice returns the elements [off, off+prod(shape)) of t's storage as a tensor of the given
// shape. It panics if they run past the end of t.
func (t Tensor) Slice(off int, shape ...int) Tensor {
	v := Tensor{Shape: internShape(shape...), DType: t.DType, Dev: t.Dev}
	if off < 0 || off+v.Len() > t.Len() {
		panic(fmt.Sprintf("engine: slice [%d,%d) of a tensor of %d elements", off, off+v.Len(), t.Len()))
	}
	v.Data = unsafe.Add(t.Data, off*t.DType.Size())
	return v
}
