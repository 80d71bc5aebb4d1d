// Package safetensors reads and writes the safetensors tensor format of Hugging Face, single
// files and sharded checkpoints (model.safetensors.index.json).
//
// A file is an 8-byte little-endian header length N, N bytes of a JSON header
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the
// data buffer, with offsets relative to its start. Open validates everything the reference
// implementation does: a bounded header, valid UTF-8 JSON starting with '{', known dtypes,
// non-negative dims, sizes matching the shapes, offsets in range, and a data buffer covered
// exactly by the tensors (no gaps, no overlaps, no trailing bytes); it also rejects duplicate
// names. Errors about a file's contents are *FormatError, naming the file and the tensor.
//
// No function or method of the package panics, whatever the input: malformed files, wrong
// destination sizes and unknown names are all errors. Reading from a File or Set after Close
// returns an error.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// MaxHeaderSize is the largest JSON header Open accepts, in bytes (the reference
// implementation's limit).
const MaxHeaderSize = 100_000_000

// ErrFormat is wrapped by every *FormatError.
var ErrFormat = errors.New("invalid safetensors data")

// ErrNotFound is wrapped by the errors for a tensor name a file or set does not hold.
var ErrNotFound = errors.New("tensor not found")

// ErrDType is wrapped by the errors for a tensor whose dtype a call cannot convert.
var ErrDType = errors.New("unsupported dtype")

// FormatError is a malformed safetensors file, index or tensor list. File names the file,
// Tensor the tensor at fault ("" when it is about the file as a whole), Field the header field
// ("dtype", "shape", "data_offsets", "__metadata__", ...) or "". It matches ErrFormat with
// errors.Is.
type FormatError struct {
	File   string
	Tensor string
	Field  string
	Msg    string
	Err    error // an underlying cause, or nil
}

// Error formats the error as `file: tensor "name": field: message`.
func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Tensor != "" {
		fmt.Fprintf(&b, ": tensor %q", e.Tensor)
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns ErrFormat and the underlying cause.
func (e *FormatError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrFormat, e.Err}
	}
	return []error{ErrFormat}
}

// dtypes maps each dtype name to its size in bytes and its rank in the reference
// implementation's Dtype enum (the writer orders tensors by rank, descending, then name).
var dtypes = map[string]struct{ size, rank int }{
	"BOOL": {1, 0}, "U8": {1, 1}, "I8": {1, 2}, "F8_E5M2": {1, 3}, "F8_E4M3": {1, 4},
	"F8_E8M0": {1, 5}, "I16": {2, 6}, "U16": {2, 7}, "F16": {2, 8}, "BF16": {2, 9},
	"I32": {4, 10}, "U32": {4, 11}, "F32": {4, 12}, "F64": {8, 13}, "I64": {8, 14}, "U64": {8, 15},
}

// DTypeSize is the size in bytes of one element of dtype ("F32", "BF16", ...), or 0 for a
// dtype this package does not know.
func DTypeSize(dtype string) int { return dtypes[dtype].size }

// Info describes one tensor of a file.
type Info struct {
	DType  string  // "F32", "F16", "BF16", "I32", ...
	Shape  []int64 // dims; empty for a scalar
	Offset int64   // absolute byte offset of the data in the file
	Size   int64   // bytes of data
}

// Elems is the number of elements, the product of Shape (1 for a scalar).
func (in Info) Elems() int64 {
	n := int64(1)
	for _, d := range in.Shape {
		n *= d
	}
	return n
}

// File is an open safetensors file. Its methods may be called from several goroutines at once,
// except Close, which must not run alongside another call.
type File struct {
	path  string
	r     io.ReaderAt
	c     io.Closer
	infos map[string]Info
	names []string
	meta  map[string]string
}

// Open reads and validates the header of the safetensors file at path and keeps the file open
// for reading tensors. Errors about the contents are *FormatError.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	sf, err := NewReader(path, f, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	sf.c = f
	return sf, nil
}

// NewReader reads and validates the header of the size bytes of safetensors data in r; name
// is used in errors. Close does not close r.
func NewReader(name string, r io.ReaderAt, size int64) (*File, error) {
	ferr := func(format string, args ...any) error {
		return &FormatError{File: name, Msg: fmt.Sprintf(format, args...)}
	}
	if size < 8 {
		return nil, ferr("file is %d bytes, too short for the 8-byte header length", size)
	}
	var lenBuf [8]byte
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", name, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize {
		return nil, ferr("header length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if int64(n) > size-8 {
		return nil, ferr("header length %d runs past the end of the file (%d bytes)", n, size)
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil && n > 0 {
		return nil, fmt.Errorf("safetensors %s: %w", name, err)
	}
	f, err := parseHeader(name, hdr, 8+int64(n), size-8-int64(n))
	if err != nil {
		return nil, err
	}
	f.r = r
	return f, nil
}

type rawInfo struct {
	name string
	info Info
	b, e int64 // data_offsets
}

// parseHeader validates a JSON header whose data buffer starts at byte start and holds dataLen
// bytes.
func parseHeader(name string, hdr []byte, start, dataLen int64) (*File, error) {
	ferr := func(tensor, field, format string, args ...any) error {
		return &FormatError{File: name, Tensor: tensor, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if !utf8.Valid(hdr) {
		return nil, ferr("", "header", "not valid UTF-8")
	}
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, ferr("", "header", "does not start with '{'")
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return nil, &FormatError{File: name, Field: "header", Msg: "malformed JSON", Err: err}
	}
	f := &File{path: name, infos: map[string]Info{}}
	var raws []rawInfo
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, &FormatError{File: name, Field: "header", Msg: "malformed JSON", Err: err}
		}
		key := tok.(string) // object keys are always strings
		if seen[key] {
			return nil, ferr(key, "", "appears twice in the header")
		}
		seen[key] = true
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, &FormatError{File: name, Tensor: key, Field: "header", Msg: "malformed JSON", Err: err}
		}
		if key == "__metadata__" {
			if f.meta, err = parseMetadata(val); err != nil {
				return nil, &FormatError{File: name, Field: "__metadata__", Msg: err.Error()}
			}
			continue
		}
		if key == "" {
			return nil, ferr("", "header", "empty tensor name")
		}
		ri, err := parseInfo(key, val, dataLen)
		if err != nil {
			var fe *FormatError
			if errors.As(err, &fe) {
				fe.File = name
			}
			return nil, err
		}
		ri.info.Offset = start + ri.b
		raws = append(raws, ri)
	}
	if _, err := dec.Token(); err != nil {
		return nil, &FormatError{File: name, Field: "header", Msg: "malformed JSON", Err: err}
	}
	if rest := bytes.TrimLeft(hdr[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, ferr("", "header", "trailing bytes after the JSON object")
	}
	// The tensors must cover the data buffer exactly, in offset order.
	sort.Slice(raws, func(i, j int) bool {
		if raws[i].b != raws[j].b {
			return raws[i].b < raws[j].b
		}
		return raws[i].e < raws[j].e
	})
	var at int64
	prev := ""
	for _, ri := range raws {
		switch {
		case ri.b > at:
			return nil, ferr(ri.name, "data_offsets", "leaves a gap: bytes [%d, %d) of the data buffer belong to no tensor", at, ri.b)
		case ri.b < at:
			return nil, ferr(ri.name, "data_offsets", "[%d, %d] overlaps tensor %q", ri.b, ri.e, prev)
		}
		at, prev = ri.e, ri.name
		f.infos[ri.name] = ri.info
		f.names = append(f.names, ri.name)
	}
	if at != dataLen {
		return nil, ferr("", "data_offsets", "the tensors cover %d bytes of the %d-byte data buffer (trailing bytes)", at, dataLen)
	}
	slices.Sort(f.names)
	return f, nil
}

func parseMetadata(val json.RawMessage) (map[string]string, error) {
	if string(val) == "null" {
		return nil, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(val, &raw); err != nil || raw == nil {
		return nil, errors.New("want an object of strings")
	}
	m := make(map[string]string, len(raw))
	for k, v := range raw {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("key %q: want a string value, got %.40s", k, v)
		}
		m[k] = s
	}
	return m, nil
}

// parseInfo checks one tensor entry against a data buffer of dataLen bytes.
func parseInfo(name string, val json.RawMessage, dataLen int64) (rawInfo, error) {
	ferr := func(field, format string, args ...any) error {
		return &FormatError{Tensor: name, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(val, &m); err != nil || m == nil {
		return rawInfo{}, ferr("", "want an object with dtype, shape and data_offsets, got %.40s", val)
	}
	ri := rawInfo{name: name}
	for _, k := range []string{"dtype", "shape", "data_offsets"} {
		if _, ok := m[k]; !ok {
			return rawInfo{}, ferr(k, "missing")
		}
	}
	if err := json.Unmarshal(m["dtype"], &ri.info.DType); err != nil {
		return rawInfo{}, ferr("dtype", "want a string, got %.40s", m["dtype"])
	}
	size, ok := dtypes[ri.info.DType]
	if !ok {
		return rawInfo{}, ferr("dtype", "unknown dtype %q", ri.info.DType)
	}
	shape, err := ints(m["shape"])
	if err != nil {
		return rawInfo{}, ferr("shape", "%v", err)
	}
	offs, err := ints(m["data_offsets"])
	if err != nil {
		return rawInfo{}, ferr("data_offsets", "%v", err)
	}
	if len(offs) != 2 {
		return rawInfo{}, ferr("data_offsets", "want [begin, end], got %d numbers", len(offs))
	}
	ri.b, ri.e = offs[0], offs[1]
	// Element count with overflow checks (a zero dim makes any other dim valid).
	elems, overflow := uint64(1), false
	if slices.Contains(shape, 0) {
		elems = 0
	}
	for _, d := range shape {
		if elems == 0 {
			break
		}
		hi, lo := bits.Mul64(elems, uint64(d))
		if hi != 0 || lo > 1<<60 {
			overflow = true
			break
		}
		elems = lo
	}
	nbytes := elems * uint64(size.size)
	switch {
	case ri.e < ri.b:
		return rawInfo{}, ferr("data_offsets", "[%d, %d] ends before it begins", ri.b, ri.e)
	case ri.e > dataLen:
		return rawInfo{}, ferr("data_offsets", "[%d, %d] runs past the end of the %d-byte data buffer", ri.b, ri.e, dataLen)
	case overflow || nbytes != uint64(ri.e-ri.b):
		return rawInfo{}, ferr("shape", "%v of %s needs %s bytes but data_offsets [%d, %d] hold %d", shape, ri.info.DType, byteCount(elems, size.size, overflow), ri.b, ri.e, ri.e-ri.b)
	}
	ri.info.Shape = shape
	ri.info.Size = ri.e - ri.b
	return ri, nil
}

func byteCount(elems uint64, size int, overflow bool) string {
	if overflow {
		return "more than 2^60"
	}
	return fmt.Sprint(elems * uint64(size))
}

// ints decodes a JSON list of non-negative integers.
func ints(v json.RawMessage) ([]int64, error) {
	var items []any
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	if err := dec.Decode(&items); err != nil || items == nil {
		return nil, fmt.Errorf("want a list of non-negative integers, got %.40s", v)
	}
	out := make([]int64, len(items))
	for i, it := range items {
		n, ok := it.(json.Number) // a plain json.Number would also accept "2"
		if !ok {
			return nil, fmt.Errorf("item %d: want an integer, got %v", i, it)
		}
		x, err := n.Int64()
		if err != nil {
			return nil, fmt.Errorf("item %d: %q is not an integer in range", i, n)
		}
		if x < 0 {
			return nil, fmt.Errorf("item %d is negative (%d)", i, x)
		}
		out[i] = x
	}
	return out, nil
}

// Path is the name the file was opened with.
func (f *File) Path() string { return f.path }

// Names lists the tensors, sorted.
func (f *File) Names() []string { return slices.Clone(f.names) }

// Info describes the tensor name; ok is false when the file has no such tensor.
func (f *File) Info(name string) (info Info, ok bool) {
	info, ok = f.infos[name]
	info.Shape = slices.Clone(info.Shape)
	return info, ok
}

// Metadata is a copy of the header's __metadata__ (nil when there is none).
func (f *File) Metadata() map[string]string {
	if f.meta == nil {
		return nil
	}
	m := make(map[string]string, len(f.meta))
	for k, v := range f.meta {
		m[k] = v
	}
	return m
}

// Close closes the underlying file (not a reader given to NewReader).
func (f *File) Close() error {
	if f.c == nil {
		return nil
	}
	c := f.c
	f.c = nil
	return c.Close()
}

func (f *File) lookup(name string) (Info, error) {
	info, ok := f.infos[name]
	if !ok {
		return Info{}, fmt.Errorf("%s: tensor %q: %w", f.path, name, ErrNotFound)
	}
	return info, nil
}

// ReadRaw reads the tensor's bytes, as stored (little-endian), into dst, which must hold exactly
// Info(name).Size bytes.
func (f *File) ReadRaw(name string, dst []byte) error {
	info, err := f.lookup(name)
	if err != nil {
		return err
	}
	if int64(len(dst)) != info.Size {
		return fmt.Errorf("%s: tensor %q: destination holds %d bytes, the tensor %d", f.path, name, len(dst), info.Size)
	}
	return f.readAt(name, dst, info.Offset)
}

// Section returns a reader of the tensor's stored bytes (little-endian, Info(name).Size of
// them), for reading a large tensor in pieces. It is valid until Close.
func (f *File) Section(name string) (*io.SectionReader, error) {
	info, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	return io.NewSectionReader(f.r, info.Offset, info.Size), nil
}

func (f *File) readAt(name string, dst []byte, off int64) error {
	if len(dst) == 0 {
		return nil
	}
	if _, err := f.r.ReadAt(dst, off); err != nil {
		return fmt.Errorf("%s: tensor %q: %w", f.path, name, err)
	}
	return nil
}

// ReadF32 reads the tensor into dst as float32, which must hold exactly Info(name).Elems()
// values. F32, F16 and BF16 tensors convert exactly (every value, NaN payloads included); other
// dtypes give an error wrapping ErrDType.
func (f *File) ReadF32(name string, dst []float32) error {
	info, err := f.lookup(name)
	if err != nil {
		return err
	}
	if int64(len(dst)) != info.Elems() {
		return fmt.Errorf("%s: tensor %q: destination holds %d values, the tensor %d (shape %v)", f.path, name, len(dst), info.Elems(), info.Shape)
	}
	switch info.DType {
	case "F32":
		if littleEndian {
			return f.readAt(name, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 4*len(dst)), info.Offset)
		}
		return f.readConvert(name, info, dst, 4)
	case "F16", "BF16":
		return f.readConvert(name, info, dst, 2)
	}
	return fmt.Errorf("%s: tensor %q: cannot read %s as F32: %w", f.path, name, info.DType, ErrDType)
}

// readConvert reads the tensor in chunks and converts each element of esize bytes.
func (f *File) readConvert(name string, info Info, dst []float32, esize int) error {
	const chunk = 1 << 16 // elements per read
	buf := make([]byte, min(len(dst), chunk)*esize)
	var table *[1 << 16]float32
	if info.DType == "F16" {
		table = f16Table()
	}
	for i := 0; i < len(dst); i += chunk {
		n := min(len(dst)-i, chunk)
		b := buf[:n*esize]
		if err := f.readAt(name, b, info.Offset+int64(i*esize)); err != nil {
			return err
		}
		out := dst[i : i+n]
		switch info.DType {
		case "F32":
			for j := range out {
				out[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
			}
		case "BF16":
			for j := range out {
				out[j] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*j:])) << 16)
			}
		case "F16":
			for j := range out {
				out[j] = table[binary.LittleEndian.Uint16(b[2*j:])]
			}
		}
	}
	return nil
}

// f16Table is F16ToF32 of every pattern, built on first use.
var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = F16ToF32(uint16(i))
	}
	return &t
})

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()
