package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Tensor is one named tensor to write: Data holds its elements in little-endian byte order,
// exactly product(Shape)*DTypeSize(DType) bytes.
type Tensor struct {
	Name  string
	DType string
	Shape []int64
	Data  []byte
}

// F32Tensor makes an F32 tensor of x. On little-endian machines Data shares x's memory (no
// copy): leave x unchanged until the tensor is written.
func F32Tensor(name string, shape []int64, x []float32) Tensor {
	t := Tensor{Name: name, DType: "F32", Shape: slices.Clone(shape)}
	if littleEndian {
		t.Data = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), 4*len(x))
		return t
	}
	t.Data = make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(v))
	}
	return t
}

// BF16Tensor makes a BF16 tensor of x, each value rounded by F32ToBF16.
func BF16Tensor(name string, shape []int64, x []float32) Tensor {
	t := Tensor{Name: name, DType: "BF16", Shape: slices.Clone(shape), Data: make([]byte, 2*len(x))}
	for i, v := range x {
		binary.LittleEndian.PutUint16(t.Data[2*i:], F32ToBF16(v))
	}
	return t
}

// F16Tensor makes an F16 tensor of x, each value rounded by F32ToF16.
func F16Tensor(name string, shape []int64, x []float32) Tensor {
	t := Tensor{Name: name, DType: "F16", Shape: slices.Clone(shape), Data: make([]byte, 2*len(x))}
	for i, v := range x {
		binary.LittleEndian.PutUint16(t.Data[2*i:], F32ToF16(v))
	}
	return t
}

// Spec describes one tensor to write without its data: WriteStream and WriteShardedStream
// take specs and ask for each tensor's bytes when they reach it.
type Spec struct {
	Name  string
	DType string
	Shape []int64
}

// Size is the number of data bytes of the tensor, product(Shape)*DTypeSize(DType) (0 for an
// unknown dtype; call on a spec whose shape does not overflow).
func (s Spec) Size() int64 {
	n := int64(DTypeSize(s.DType))
	for _, d := range s.Shape {
		n *= d
	}
	return n
}

// Spec is the tensor's name, dtype and shape.
func (t Tensor) Spec() Spec { return Spec{Name: t.Name, DType: t.DType, Shape: t.Shape} }

// check validates s as an entry of file.
func (s Spec) check(file string) error {
	ferr := func(field, format string, args ...any) error {
		return &FormatError{File: file, Tensor: s.Name, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if s.Name == "" || s.Name == "__metadata__" {
		return ferr("", "%q cannot name a tensor", s.Name)
	}
	if !utf8.ValidString(s.Name) {
		return ferr("", "name is not valid UTF-8")
	}
	if DTypeSize(s.DType) == 0 {
		return ferr("dtype", "unknown dtype %q", s.DType)
	}
	n := uint64(1)
	for _, d := range s.Shape {
		if d < 0 {
			return ferr("shape", "negative dim in %v", s.Shape)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if (hi != 0 || lo > 1<<60) && !slices.Contains(s.Shape, 0) {
			return ferr("shape", "%v is too large", s.Shape)
		}
		n = lo
	}
	return nil
}

// check validates t as an entry of file.
func (t Tensor) check(file string) error {
	if err := t.Spec().check(file); err != nil {
		return err
	}
	if n := t.Spec().Size(); n != int64(len(t.Data)) {
		return &FormatError{File: file, Tensor: t.Name, Field: "shape", Msg: fmt.Sprintf("%v of %s needs %d bytes, Data holds %d", t.Shape, t.DType, n, len(t.Data))}
	}
	return nil
}

// order sorts specs the way the reference writer lays them out: larger dtype rank first
// (alignment), then by name. It checks each spec and that names are unique.
func order(file string, specs []Spec, metadata map[string]string) ([]Spec, error) {
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, &FormatError{File: file, Field: "__metadata__", Msg: fmt.Sprintf("key %q: not valid UTF-8", k)}
		}
	}
	ss := slices.Clone(specs)
	slices.SortFunc(ss, func(a, b Spec) int {
		if ra, rb := dtypes[a.DType].rank, dtypes[b.DType].rank; ra != rb {
			return rb - ra
		}
		return strings.Compare(a.Name, b.Name)
	})
	seen := make(map[string]bool, len(ss))
	for _, s := range ss {
		if err := s.check(file); err != nil {
			return nil, err
		}
		if seen[s.Name] {
			return nil, &FormatError{File: file, Tensor: s.Name, Msg: "given twice"}
		}
		seen[s.Name] = true
	}
	return ss, nil
}

// specsOf checks tensors and returns their specs and a map from name to data.
func specsOf(file string, tensors []Tensor) ([]Spec, map[string][]byte, error) {
	specs := make([]Spec, len(tensors))
	data := make(map[string][]byte, len(tensors))
	for i, t := range tensors {
		if err := t.check(file); err != nil {
			return nil, nil, err
		}
		specs[i] = t.Spec()
		data[t.Name] = t.Data
	}
	return specs, data, nil
}

// jsonString writes s as a JSON string without HTML escaping.
func jsonString(b *bytes.Buffer, s string) {
	var tmp bytes.Buffer
	enc := json.NewEncoder(&tmp)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	b.Write(bytes.TrimSuffix(tmp.Bytes(), []byte("\n")))
}

// header builds the padded JSON header for specs already in file order.
func header(ts []Spec, metadata map[string]string) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	// Like the reference writer, a non-nil metadata map is written even when empty.
	if metadata != nil {
		b.WriteString(`"__metadata__":{`)
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			jsonString(&b, k)
			b.WriteByte(':')
			jsonString(&b, metadata[k])
		}
		b.WriteByte('}')
	}
	var off int64
	for i, t := range ts {
		if i > 0 || metadata != nil {
			b.WriteByte(',')
		}
		jsonString(&b, t.Name)
		b.WriteString(`:{"dtype":"`)
		b.WriteString(t.DType)
		b.WriteString(`","shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatInt(d, 10))
		}
		end := off + t.Size()
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, off, end)
		off = end
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	return b.Bytes()
}

// Encode returns the safetensors bytes of tensors and metadata, laid out as Write does.
// Errors are *FormatError naming the tensor at fault.
func Encode(tensors []Tensor, metadata map[string]string) ([]byte, error) {
	specs, data, err := specsOf("<memory>", tensors)
	if err != nil {
		return nil, err
	}
	ss, err := order("<memory>", specs, metadata)
	if err != nil {
		return nil, err
	}
	hdr := header(ss, metadata)
	var out bytes.Buffer
	binary.Write(&out, binary.LittleEndian, uint64(len(hdr)))
	out.Write(hdr)
	for _, s := range ss {
		out.Write(data[s.Name])
	}
	return out.Bytes(), nil
}

// Write writes tensors and metadata (nil for no __metadata__ key) to path as a safetensors file, atomically:
// into a temporary file in the same directory, synced, then renamed over path. Tensors are laid
// out like the reference writer (larger dtypes first, then by name); the header is padded with
// spaces to a multiple of 8 bytes. Errors about the tensors are *FormatError naming path and the
// tensor (an unknown dtype, Data not matching Shape, an empty or repeated name).
func Write(path string, tensors []Tensor, metadata map[string]string) error {
	specs, data, err := specsOf(path, tensors)
	if err != nil {
		return err
	}
	return WriteStream(path, specs, metadata, func(s Spec, w io.Writer) error {
		_, err := w.Write(data[s.Name])
		return err
	})
}

// WriteStream is Write with the data of each tensor supplied by fill, so that a file larger
// than memory can be written one tensor at a time. fill is called once per spec, in file
// order, and must write exactly s.Size() bytes to w; writing more or fewer is an error, and so
// is any error fill returns (the file is then not created).
func WriteStream(path string, specs []Spec, metadata map[string]string, fill func(s Spec, w io.Writer) error) error {
	ss, err := order(path, specs, metadata)
	if err != nil {
		return err
	}
	hdr := header(ss, metadata)
	return writeAtomic(path, func(w *bufio.Writer) error {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(hdr)))
		w.Write(n[:])
		w.Write(hdr)
		for _, s := range ss {
			cw := &countWriter{w: w}
			if err := fill(s, cw); err != nil {
				return fmt.Errorf("tensor %q: %w", s.Name, err)
			}
			if cw.n != s.Size() {
				return fmt.Errorf("tensor %q: %d bytes written, its shape %v of %s needs %d", s.Name, cw.n, s.Shape, s.DType, s.Size())
			}
		}
		return nil
	})
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeAtomic writes path through a temporary file in its directory and a rename.
func writeAtomic(path string, fill func(*bufio.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("safetensors: writing %s: %w", path, err)
	}
	w := bufio.NewWriterSize(tmp, 1<<20)
	if err := fill(w); err != nil {
		return fail(err)
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("safetensors: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("safetensors: writing %s: %w", path, err)
	}
	return nil
}
