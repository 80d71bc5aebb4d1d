package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf8"
)

// Layout assigns offsets to tensors (in the order given) for a file with the given alignment,
// and returns the infos with Offset set and the data section's total size. It fails on a
// tensor whose rows are not a multiple of its type's block or whose type is unknown.
func Layout(tensors []TensorInfo, align uint64) ([]TensorInfo, uint64, error) {
	out := make([]TensorInfo, len(tensors))
	var off uint64
	seen := make(map[string]bool, len(tensors))
	for i, t := range tensors {
		in, ok := types[t.Type]
		switch {
		case t.Name == "" || !utf8.ValidString(t.Name):
			return nil, 0, fmt.Errorf("gguf: tensor %d: name %q is empty or not UTF-8", i, t.Name)
		case seen[t.Name]:
			return nil, 0, fmt.Errorf("gguf: tensor %q given twice", t.Name)
		case !ok:
			return nil, 0, fmt.Errorf("gguf: tensor %q: %w: %v", t.Name, ErrType, t.Type)
		case len(t.Dims) > MaxDims:
			return nil, 0, fmt.Errorf("gguf: tensor %q: %d dims, at most %d", t.Name, len(t.Dims), MaxDims)
		case len(t.Dims) > 0 && t.Dims[0]%uint64(in.block) != 0:
			return nil, 0, fmt.Errorf("gguf: tensor %q: row of %d elements is not a multiple of %s's block of %d", t.Name, t.Dims[0], t.Type, in.block)
		}
		seen[t.Name] = true
		t.Offset = off
		out[i] = t
		off = pad(off+uint64(t.Size()), align)
	}
	return out, off, nil
}

// Write writes a GGUF version 3 file to w: the metadata kv (general.alignment, when present,
// sets the alignment; it must be a uint32 power of two), the tensor infos laid out by Layout
// in the order given, and each tensor's data, which fill supplies: it is called once per
// tensor, in order, and must write exactly t.Size() bytes. Write returns the number of bytes
// written.
func Write(w io.Writer, kv []KV, tensors []TensorInfo, fill func(t TensorInfo, w io.Writer) error) (int64, error) {
	align := uint64(DefaultAlignment)
	for _, e := range kv {
		if e.Key == KeyAlignment {
			a, ok := e.Value.(uint32)
			if !ok || a == 0 || a&(a-1) != 0 {
				return 0, fmt.Errorf("gguf: %s must be a uint32 power of two, got %T %v", KeyAlignment, e.Value, e.Value)
			}
			align = uint64(a)
		}
	}
	infos, _, err := Layout(tensors, align)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := &countWriter{w: bw}
	e := &encoder{w: cw}
	e.raw([]byte(Magic))
	e.u32(Version)
	e.u64(uint64(len(infos)))
	e.u64(uint64(len(kv)))
	seen := make(map[string]bool, len(kv))
	for _, x := range kv {
		if seen[x.Key] {
			return cw.n, fmt.Errorf("gguf: metadata key %q given twice", x.Key)
		}
		seen[x.Key] = true
		if err := e.kv(x); err != nil {
			return cw.n, err
		}
	}
	for _, t := range infos {
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(t.Offset)
	}
	if e.err != nil {
		return cw.n, e.err
	}
	zeros := make([]byte, align)
	padTo := func(n uint64) error {
		if p := pad(n, align) - n; p > 0 {
			_, err := cw.Write(zeros[:p])
			return err
		}
		return nil
	}
	if err := padTo(uint64(cw.n)); err != nil {
		return cw.n, err
	}
	start := cw.n
	for _, t := range infos {
		if err := padTo(uint64(cw.n - start)); err != nil {
			return cw.n, err
		}
		if got := uint64(cw.n - start); got != t.Offset {
			return cw.n, fmt.Errorf("gguf: tensor %q: at data offset %d, its info says %d", t.Name, got, t.Offset)
		}
		before := cw.n
		if err := fill(t, cw); err != nil {
			return cw.n, fmt.Errorf("gguf: tensor %q: %w", t.Name, err)
		}
		if n := cw.n - before; n != t.Size() {
			return cw.n, fmt.Errorf("gguf: tensor %q: %d bytes written, its dims %v of %s need %d", t.Name, n, t.Dims, t.Type, t.Size())
		}
	}
	if len(infos) > 0 {
		if err := padTo(uint64(cw.n - start)); err != nil {
			return cw.n, err
		}
	}
	return cw.n, bw.Flush()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// encoder writes little-endian values, keeping the first error.
type encoder struct {
	w   io.Writer
	err error
	buf [8]byte
}

func (e *encoder) raw(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *encoder) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:4], v)
	e.raw(e.buf[:4])
}

func (e *encoder) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], v)
	e.raw(e.buf[:])
}

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	e.raw([]byte(s))
}

func (e *encoder) kv(x KV) error {
	bad := func() error {
		return fmt.Errorf("gguf: metadata %q: value %T does not match type %v", x.Key, x.Value, x.Type)
	}
	e.str(x.Key)
	e.u32(uint32(x.Type))
	if x.Type != TypeArray {
		if !e.scalar(x.Type, x.Value) {
			return bad()
		}
		return e.err
	}
	e.u32(uint32(x.Elem))
	switch a := x.Value.(type) {
	case []string:
		if x.Elem != TypeString {
			return bad()
		}
		e.u64(uint64(len(a)))
		for _, s := range a {
			e.str(s)
		}
	case []int32:
		if x.Elem != TypeInt32 {
			return bad()
		}
		e.u64(uint64(len(a)))
		for _, v := range a {
			e.u32(uint32(v))
		}
	case []uint32:
		if x.Elem != TypeUint32 {
			return bad()
		}
		e.u64(uint64(len(a)))
		for _, v := range a {
			e.u32(v)
		}
	case []float32:
		if x.Elem != TypeFloat32 {
			return bad()
		}
		e.u64(uint64(len(a)))
		for _, v := range a {
			e.u32(math.Float32bits(v))
		}
	default:
		return fmt.Errorf("gguf: metadata %q: arrays of %T are not supported by the writer", x.Key, x.Value)
	}
	return e.err
}

func (e *encoder) scalar(t ValueType, v any) bool {
	switch x := v.(type) {
	case string:
		if t != TypeString {
			return false
		}
		e.str(x)
	case uint32:
		if t != TypeUint32 {
			return false
		}
		e.u32(x)
	case int32:
		if t != TypeInt32 {
			return false
		}
		e.u32(uint32(x))
	case float32:
		if t != TypeFloat32 {
			return false
		}
		e.u32(math.Float32bits(x))
	case uint64:
		if t != TypeUint64 {
			return false
		}
		e.u64(x)
	case float64:
		if t != TypeFloat64 {
			return false
		}
		e.u64(math.Float64bits(x))
	case bool:
		if t != TypeBool {
			return false
		}
		b := byte(0)
		if x {
			b = 1
		}
		e.raw([]byte{b})
	default:
		return false
	}
	return true
}

// shortest widens f to the float64 of its shortest decimal representation.
func shortest(f float32) float64 {
	v, err := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	if err != nil { // ±Inf, NaN
		return float64(f)
	}
	return v
}
