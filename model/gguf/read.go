package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sort"
	"unicode/utf8"
)

// File is an open GGUF file: its metadata and tensor infos, with the data read on demand. Its
// methods may be called from several goroutines at once, except Close.
type File struct {
	path     string
	r        io.ReaderAt
	c        io.Closer
	Version  uint32
	KV       []KV         // metadata, in file order
	Tensors  []TensorInfo // in file order
	DataOff  int64        // absolute offset of the data section
	Align    uint64       // the data alignment
	size     int64
	kvIndex  map[string]int
	tenIndex map[string]int
}

// Open reads and validates the header of the GGUF file at path and keeps the file open for
// reading tensors. Errors about the contents are *FormatError.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("gguf: %w", err)
	}
	g, err := NewReader(path, f, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	g.c = f
	return g, nil
}

// NewReader reads and validates the header of the size bytes of GGUF data in r; name is used in
// errors. Close does not close r.
func NewReader(name string, r io.ReaderAt, size int64) (*File, error) {
	p := &parser{name: name, size: size, r: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 1<<16)}
	g, err := p.file()
	if err != nil {
		return nil, err
	}
	g.r = r
	return g, nil
}

// parser reads the header sequentially, tracking the offset so that every length is checked
// against what is left of the file before anything is allocated.
type parser struct {
	name string
	r    *bufio.Reader
	off  int64
	size int64
	key  string // the key or tensor being read, for errors
	ten  string
}

func (p *parser) fail(field, format string, args ...any) error {
	return &FormatError{File: p.name, Key: p.key, Tensor: p.ten, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) read(field string, n int) ([]byte, error) {
	if int64(n) > p.size-p.off {
		return nil, p.fail(field, "%d bytes needed at offset %d, past the end of the %d-byte file (truncated?)", n, p.off, p.size)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(p.r, b); err != nil {
		return nil, p.fail(field, "reading at offset %d: %v", p.off, err)
	}
	p.off += int64(n)
	return b, nil
}

func (p *parser) u32(field string) (uint32, error) {
	b, err := p.read(field, 4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (p *parser) u64(field string) (uint64, error) {
	b, err := p.read(field, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// count reads a uint64 count of items of at least minSize bytes each and checks that they fit
// in the rest of the file.
func (p *parser) count(field string, minSize int64) (int, error) {
	n, err := p.u64(field)
	if err != nil {
		return 0, err
	}
	if minSize < 1 {
		minSize = 1
	}
	if n > uint64(p.size-p.off)/uint64(minSize) {
		return 0, p.fail(field, "%d items cannot fit in the %d bytes left of the file (truncated?)", n, p.size-p.off)
	}
	return int(n), nil
}

func (p *parser) str(field string) (string, error) {
	n, err := p.u64(field)
	if err != nil {
		return "", err
	}
	if n > uint64(p.size-p.off) {
		return "", p.fail(field, "string of %d bytes runs past the end of the file", n)
	}
	b, err := p.read(field, int(n))
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", p.fail(field, "string is not valid UTF-8")
	}
	return string(b), nil
}

func (p *parser) file() (*File, error) {
	magic, err := p.read("magic", 4)
	if err != nil {
		return nil, err
	}
	if string(magic) != Magic {
		return nil, p.fail("magic", "%q is not %q: not a GGUF file", magic, Magic)
	}
	g := &File{path: p.name, size: p.size, kvIndex: map[string]int{}, tenIndex: map[string]int{}}
	if g.Version, err = p.u32("version"); err != nil {
		return nil, err
	}
	if g.Version != 2 && g.Version != 3 {
		hint := ""
		if g.Version != 0 && g.Version&0xffff == 0 {
			hint = " (a big-endian file?)"
		}
		return nil, p.fail("version", "%d is not supported (2 or 3)%s", g.Version, hint)
	}
	// A tensor info takes at least 8+4+4+8 bytes, a KV at least 8+4+1.
	nt, err := p.count("tensor count", 24)
	if err != nil {
		return nil, err
	}
	nkv, err := p.count("metadata count", 13)
	if err != nil {
		return nil, err
	}
	g.KV = make([]KV, 0, nkv)
	for i := range nkv {
		p.key = ""
		key, err := p.str(fmt.Sprintf("metadata entry %d key", i))
		if err != nil {
			return nil, err
		}
		p.key = key
		if _, dup := g.kvIndex[key]; dup {
			return nil, p.fail("", "appears twice")
		}
		kv, err := p.value(key)
		if err != nil {
			return nil, err
		}
		g.kvIndex[key] = len(g.KV)
		g.KV = append(g.KV, kv)
	}
	p.key = ""
	g.Align = DefaultAlignment
	if kv, ok := g.Get(KeyAlignment); ok {
		a, ok := kv.Value.(uint32)
		if !ok || a == 0 || a&(a-1) != 0 {
			return nil, &FormatError{File: p.name, Key: KeyAlignment, Msg: fmt.Sprintf("want a uint32 power of two, got %v %v", kv.Type, kv.Value)}
		}
		g.Align = uint64(a)
	}
	g.Tensors = make([]TensorInfo, 0, nt)
	for i := range nt {
		p.ten = ""
		name, err := p.str(fmt.Sprintf("tensor %d name", i))
		if err != nil {
			return nil, err
		}
		p.ten = name
		if _, dup := g.tenIndex[name]; dup {
			return nil, p.fail("", "appears twice")
		}
		t, err := p.tensorInfo(name)
		if err != nil {
			return nil, err
		}
		g.tenIndex[name] = len(g.Tensors)
		g.Tensors = append(g.Tensors, t)
	}
	p.ten = ""
	g.DataOff = int64(pad(uint64(p.off), g.Align))
	if g.DataOff > p.size && nt > 0 {
		return nil, p.fail("data", "the data section would start at %d, past the end of the %d-byte file", g.DataOff, p.size)
	}
	return g, g.checkExtents()
}

// checkExtents checks every tensor lies inside the file, aligned, without overlapping another.
func (g *File) checkExtents() error {
	type ext struct {
		name   string
		lo, hi uint64
	}
	exts := make([]ext, 0, len(g.Tensors))
	dataLen := uint64(max(g.size-g.DataOff, 0))
	for _, t := range g.Tensors {
		ferr := func(format string, args ...any) error {
			return &FormatError{File: g.path, Tensor: t.Name, Field: "offset", Msg: fmt.Sprintf(format, args...)}
		}
		if t.Offset%g.Align != 0 {
			return ferr("%d is not a multiple of the alignment %d", t.Offset, g.Align)
		}
		size := uint64(t.Size())
		if t.Offset > dataLen || size > dataLen-t.Offset {
			return ferr("data [%d, %d) of the data section (at byte %d) runs past the end of the file: the section holds %d bytes (truncated?)",
				t.Offset, t.Offset+size, g.DataOff, dataLen)
		}
		exts = append(exts, ext{t.Name, t.Offset, t.Offset + size})
	}
	sort.Slice(exts, func(i, j int) bool { return exts[i].lo < exts[j].lo })
	for i := 1; i < len(exts); i++ {
		if exts[i].lo < exts[i-1].hi {
			return &FormatError{File: g.path, Tensor: exts[i].name, Field: "offset",
				Msg: fmt.Sprintf("data [%d, %d) overlaps tensor %q [%d, %d)", exts[i].lo, exts[i].hi, exts[i-1].name, exts[i-1].lo, exts[i-1].hi)}
		}
	}
	return nil
}

func pad(n, align uint64) uint64 { return (n + align - 1) / align * align }

func (p *parser) tensorInfo(name string) (TensorInfo, error) {
	t := TensorInfo{Name: name}
	nd, err := p.u32("n_dims")
	if err != nil {
		return t, err
	}
	if nd > MaxDims {
		return t, p.fail("n_dims", "%d dims, at most %d", nd, MaxDims)
	}
	t.Dims = make([]uint64, nd)
	elems := uint64(1)
	for i := range t.Dims {
		if t.Dims[i], err = p.u64("dims"); err != nil {
			return t, err
		}
		hi, lo := bits.Mul64(elems, t.Dims[i])
		if hi != 0 || lo > 1<<60 || t.Dims[i] > math.MaxInt64 {
			return t, p.fail("dims", "%v is too large", t.Dims[:i+1])
		}
		elems = lo
	}
	typ, err := p.u32("type")
	if err != nil {
		return t, err
	}
	t.Type = Type(typ)
	in, ok := types[t.Type]
	if !ok {
		return t, p.fail("type", "unknown ggml type %d", typ)
	}
	if len(t.Dims) > 0 && t.Dims[0]%uint64(in.block) != 0 {
		return t, p.fail("dims", "row of %d elements is not a multiple of %s's block of %d", t.Dims[0], t.Type, in.block)
	}
	if t.Offset, err = p.u64("offset"); err != nil {
		return t, err
	}
	return t, nil
}

// value reads one metadata value (type and payload).
func (p *parser) value(key string) (KV, error) {
	vt, err := p.u32("value type")
	if err != nil {
		return KV{}, err
	}
	kv := KV{Key: key, Type: ValueType(vt)}
	if kv.Type != TypeArray {
		kv.Value, err = p.scalar(kv.Type)
		return kv, err
	}
	et, err := p.u32("array type")
	if err != nil {
		return KV{}, err
	}
	kv.Elem = ValueType(et)
	if kv.Elem == TypeArray {
		return KV{}, p.fail("array type", "arrays of arrays are not supported")
	}
	size, ok := valueSizes[kv.Elem]
	if kv.Elem == TypeString {
		size, ok = 8, true
	}
	if !ok {
		return KV{}, p.fail("array type", "unknown value type %d", et)
	}
	n, err := p.count("array length", int64(size))
	if err != nil {
		return KV{}, err
	}
	if kv.Elem == TypeString {
		out := make([]string, n)
		for i := range out {
			if out[i], err = p.str(fmt.Sprintf("item %d", i)); err != nil {
				return KV{}, err
			}
		}
		kv.Value = out
		return kv, nil
	}
	raw, err := p.read("array", n*size)
	if err != nil {
		return KV{}, err
	}
	kv.Value = decodeArray(kv.Elem, raw, n)
	return kv, nil
}

func (p *parser) scalar(t ValueType) (any, error) {
	if t == TypeString {
		return p.str("value")
	}
	size, ok := valueSizes[t]
	if !ok {
		return nil, p.fail("value type", "unknown value type %d", uint32(t))
	}
	b, err := p.read("value", size)
	if err != nil {
		return nil, err
	}
	v := decodeArray(t, b, 1)
	switch a := v.(type) {
	case []uint8:
		return a[0], nil
	case []int8:
		return a[0], nil
	case []uint16:
		return a[0], nil
	case []int16:
		return a[0], nil
	case []uint32:
		return a[0], nil
	case []int32:
		return a[0], nil
	case []float32:
		return a[0], nil
	case []bool:
		if b[0] > 1 {
			return nil, p.fail("value", "bool byte %d is neither 0 nor 1", b[0])
		}
		return a[0], nil
	case []uint64:
		return a[0], nil
	case []int64:
		return a[0], nil
	case []float64:
		return a[0], nil
	}
	return nil, p.fail("value type", "unknown value type %d", uint32(t))
}

// decodeArray decodes n little-endian elements of type t from b.
func decodeArray(t ValueType, b []byte, n int) any {
	le := binary.LittleEndian
	switch t {
	case TypeUint8:
		return append([]uint8(nil), b[:n]...)
	case TypeInt8:
		out := make([]int8, n)
		for i := range out {
			out[i] = int8(b[i])
		}
		return out
	case TypeUint16:
		out := make([]uint16, n)
		for i := range out {
			out[i] = le.Uint16(b[2*i:])
		}
		return out
	case TypeInt16:
		out := make([]int16, n)
		for i := range out {
			out[i] = int16(le.Uint16(b[2*i:]))
		}
		return out
	case TypeUint32:
		out := make([]uint32, n)
		for i := range out {
			out[i] = le.Uint32(b[4*i:])
		}
		return out
	case TypeInt32:
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(le.Uint32(b[4*i:]))
		}
		return out
	case TypeFloat32:
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
		return out
	case TypeBool:
		out := make([]bool, n)
		for i := range out {
			out[i] = b[i] != 0
		}
		return out
	case TypeUint64:
		out := make([]uint64, n)
		for i := range out {
			out[i] = le.Uint64(b[8*i:])
		}
		return out
	case TypeInt64:
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(le.Uint64(b[8*i:]))
		}
		return out
	case TypeFloat64:
		out := make([]float64, n)
		for i := range out {
			out[i] = math.Float64frombits(le.Uint64(b[8*i:]))
		}
		return out
	}
	return nil
}

// Path is the name the file was opened with.
func (g *File) Path() string { return g.path }

// Get returns the metadata entry key.
func (g *File) Get(key string) (KV, bool) {
	i, ok := g.kvIndex[key]
	if !ok {
		return KV{}, false
	}
	return g.KV[i], true
}

// Tensor returns the info of the tensor name.
func (g *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := g.tenIndex[name]
	if !ok {
		return TensorInfo{}, false
	}
	return g.Tensors[i], true
}

// ErrNotFound is wrapped by the errors for a tensor the file does not hold.
var ErrNotFound = errors.New("tensor not found")

// Section returns a reader of the tensor's stored bytes (Size() of them), valid until Close.
func (g *File) Section(name string) (*io.SectionReader, error) {
	t, ok := g.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("%s: tensor %q: %w", g.path, name, ErrNotFound)
	}
	return io.NewSectionReader(g.r, g.DataOff+int64(t.Offset), t.Size()), nil
}

// Close closes the underlying file (not a reader given to NewReader).
func (g *File) Close() error {
	if g.c == nil {
		return nil
	}
	c := g.c
	g.c = nil
	return c.Close()
}

// metaErr is the error for a metadata entry of the wrong type or value.
func (g *File) metaErr(key, format string, args ...any) error {
	return &FormatError{File: g.path, Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Uint returns the unsigned integer entry key (any integer type with a non-negative value);
// ok is false when it is absent, err non-nil when it has another type.
func (g *File) Uint(key string) (v uint64, ok bool, err error) {
	kv, ok := g.Get(key)
	if !ok {
		return 0, false, nil
	}
	var x int64
	switch a := kv.Value.(type) {
	case uint8:
		x = int64(a)
	case uint16:
		x = int64(a)
	case uint32:
		x = int64(a)
	case uint64:
		if a > math.MaxInt64 {
			return 0, true, g.metaErr(key, "%d is out of range", a)
		}
		x = int64(a)
	case int8:
		x = int64(a)
	case int16:
		x = int64(a)
	case int32:
		x = int64(a)
	case int64:
		x = a
	default:
		return 0, true, g.metaErr(key, "want an integer, got %v", kv.Type)
	}
	if x < 0 {
		return 0, true, g.metaErr(key, "want a non-negative integer, got %d", x)
	}
	return uint64(x), true, nil
}

// Float returns the float entry key (float32 or float64; a float32 is widened to the float64
// of its shortest decimal form, so 1e-6 stored as float32 reads as 1e-6).
func (g *File) Float(key string) (v float64, ok bool, err error) {
	kv, ok := g.Get(key)
	if !ok {
		return 0, false, nil
	}
	switch a := kv.Value.(type) {
	case float32:
		return shortest(a), true, nil
	case float64:
		return a, true, nil
	}
	return 0, true, g.metaErr(key, "want a float, got %v", kv.Type)
}

// Str returns the string entry key.
func (g *File) Str(key string) (v string, ok bool, err error) {
	kv, ok := g.Get(key)
	if !ok {
		return "", false, nil
	}
	s, isStr := kv.Value.(string)
	if !isStr {
		return "", true, g.metaErr(key, "want a string, got %v", kv.Type)
	}
	return s, true, nil
}
