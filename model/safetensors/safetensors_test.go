package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// specials are float32 bit patterns that must survive a round trip unchanged.
var specials = []uint32{
	0x00000000, 0x80000000, // ±0
	0x7f800000, 0xff800000, // ±Inf
	0x7fc00000, 0x7fc00001, 0xffc12345, // quiet NaNs with payloads
	0x7f800001, 0xff812345, // signalling NaNs
	0x00000001, 0x807fffff, // subnormals
	0x7f7fffff, 0x3f800000, 0xbf8ccccd,
}

func f32Bits(bits []uint32) []float32 {
	x := make([]float32, len(bits))
	for i, b := range bits {
		x[i] = math.Float32frombits(b)
	}
	return x
}

func testTensors() []Tensor {
	raw16 := []byte{0x00, 0x80, 0x01, 0x7c, 0x00, 0x7c, 0xff, 0x03, 0x80, 0x3f, 0x12, 0xff}
	return []Tensor{
		F32Tensor("w.special", []int64{2, 7}, f32Bits(specials)),
		F32Tensor("a.scalar", nil, []float32{-3.5}),
		F32Tensor("z.empty", []int64{0, 3}, nil),
		{Name: "h.f16", DType: "F16", Shape: []int64{6}, Data: raw16},
		{Name: "b.bf16", DType: "BF16", Shape: []int64{2, 3}, Data: raw16},
		{Name: "i.ids", DType: "I32", Shape: []int64{3}, Data: []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0}},
		{Name: "u.mask", DType: "BOOL", Shape: []int64{3}, Data: []byte{1, 0, 1}},
		{Name: "d.f64", DType: "F64", Shape: []int64{1}, Data: []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f}},
		{Name: "名前 \"quoted\" <&>", DType: "U8", Shape: []int64{2}, Data: []byte{9, 8}},
	}
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	ts := testTensors()
	meta := map[string]string{"format": "pt", "note": "a \"quoted\" <value>\n"}
	if err := Write(path, ts, meta); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	for _, tt := range ts {
		names = append(names, tt.Name)
	}
	slices.Sort(names)
	if got := f.Names(); !slices.Equal(got, names) {
		t.Errorf("Names() = %q, want %q", got, names)
	}
	if got := f.Metadata(); len(got) != len(meta) || got["format"] != "pt" || got["note"] != meta["note"] {
		t.Errorf("Metadata() = %q, want %q", got, meta)
	}
	for _, tt := range ts {
		info, ok := f.Info(tt.Name)
		if !ok {
			t.Fatalf("Info(%q) missing", tt.Name)
		}
		if info.DType != tt.DType || !slices.Equal(info.Shape, tt.Shape) || info.Size != int64(len(tt.Data)) {
			t.Errorf("Info(%q) = %+v, want %s %v of %d bytes", tt.Name, info, tt.DType, tt.Shape, len(tt.Data))
		}
		raw := make([]byte, info.Size)
		if err := f.ReadRaw(tt.Name, raw); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, tt.Data) {
			t.Errorf("ReadRaw(%q) = %x, want %x", tt.Name, raw, tt.Data)
		}
		x := make([]float32, info.Elems())
		err := f.ReadF32(tt.Name, x)
		switch tt.DType {
		case "F32", "F16", "BF16":
			if err != nil {
				t.Fatalf("ReadF32(%q): %v", tt.Name, err)
			}
			for i, v := range x {
				var want uint32
				switch tt.DType {
				case "F32":
					want = binary.LittleEndian.Uint32(tt.Data[4*i:])
				case "F16":
					want = math.Float32bits(F16ToF32(binary.LittleEndian.Uint16(tt.Data[2*i:])))
				case "BF16":
					want = uint32(binary.LittleEndian.Uint16(tt.Data[2*i:])) << 16
				}
				if math.Float32bits(v) != want {
					t.Errorf("ReadF32(%q)[%d] = %#08x, want %#08x", tt.Name, i, math.Float32bits(v), want)
				}
			}
		default:
			if !errors.Is(err, ErrDType) {
				t.Errorf("ReadF32(%q) of %s: got %v, want ErrDType", tt.Name, tt.DType, err)
			}
		}
	}
	// Encode gives the same bytes as the file.
	file, _ := os.ReadFile(path)
	enc, err := Encode(ts, meta)
	if err != nil || !bytes.Equal(enc, file) {
		t.Errorf("Encode differs from the written file (err %v)", err)
	}
	// Writing what was read gives the same bytes again.
	var again []Tensor
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		raw := make([]byte, info.Size)
		f.ReadRaw(n, raw)
		again = append(again, Tensor{Name: n, DType: info.DType, Shape: info.Shape, Data: raw})
	}
	path2 := filepath.Join(t.TempDir(), "y.safetensors")
	if err := Write(path2, again, f.Metadata()); err != nil {
		t.Fatal(err)
	}
	if file2, _ := os.ReadFile(path2); !bytes.Equal(file, file2) {
		t.Error("rewriting the tensors read back changed the file's bytes")
	}
}

// TestLayout checks the layout the reference writer uses: header padded with spaces to a
// multiple of 8, __metadata__ first, tensors ordered by dtype (wider first) then name, data
// contiguous in that order.
func TestLayout(t *testing.T) {
	ts := []Tensor{
		BF16Tensor("b", []int64{1}, []float32{1}),
		F32Tensor("c", []int64{1}, []float32{1}),
		F32Tensor("a", []int64{2}, []float32{1, 2}),
	}
	b, err := Encode(ts, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},` +
		`"c":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[12,14]}}`
	for len(want)%8 != 0 {
		want += " "
	}
	n := binary.LittleEndian.Uint64(b)
	if got := string(b[8 : 8+n]); got != want {
		t.Errorf("header\n%q\nwant\n%q", got, want)
	}
	data := b[8+n:]
	wantData := []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x80, 0x3f, 0x80, 0x3f}
	if !bytes.Equal(data, wantData) {
		t.Errorf("data % x, want % x", data, wantData)
	}
	// No metadata: no __metadata__ key; empty metadata: an empty object.
	b, _ = Encode(ts[:1], nil)
	if h := string(b[8:]); !strings.HasPrefix(h, `{"b":{"dtype":"BF16"`) {
		t.Errorf("header without metadata starts %q", h[:20])
	}
	b, _ = Encode(ts[:1], map[string]string{})
	if h := string(b[8:]); !strings.HasPrefix(h, `{"__metadata__":{},"b":{"dtype":"BF16"`) {
		t.Errorf("header with empty metadata starts %q", h[:30])
	}
}

// file builds safetensors bytes from a raw header string and a data buffer.
func file(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

func TestOpenBadInput(t *testing.T) {
	d8 := make([]byte, 8)
	huge := binary.LittleEndian.AppendUint64(nil, MaxHeaderSize+1)
	cases := []struct {
		name   string
		bytes  []byte
		tensor string // the tensor the error must name, "" for none
		msg    string // a substring of the error
	}{
		{"empty file", nil, "", "too short"},
		{"short length", []byte{1, 2, 3}, "", "too short"},
		{"length past end", append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...), "", "past the end of the file"},
		{"huge header", append(huge, "{}"...), "", "exceeds the limit"},
		{"not utf-8", file("{\"\xff\":1}", nil), "", "UTF-8"},
		{"not an object", file(`["a"]`, nil), "", "start with '{'"},
		{"empty header", file("", nil), "", "start with '{'"},
		{"malformed json", file(`{"a":{"dtype":"F32",`, nil), "a", "malformed JSON"},
		{"unterminated", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`, d8), "", "malformed JSON"},
		{"trailing garbage", file(`{} x`, nil), "", "trailing bytes"},
		{"second object", file(`{}{}`, nil), "", "trailing bytes"},
		{"entry not object", file(`{"a":[1]}`, nil), "a", "want an object"},
		{"unknown dtype", file(`{"a":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}}`, d8), "a", `unknown dtype "F17"`},
		{"dtype not string", file(`{"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}}`, d8), "a", "dtype: want a string"},
		{"missing dtype", file(`{"a":{"shape":[2],"data_offsets":[0,8]}}`, d8), "a", "dtype: missing"},
		{"missing shape", file(`{"a":{"dtype":"F32","data_offsets":[0,8]}}`, d8), "a", "shape: missing"},
		{"missing offsets", file(`{"a":{"dtype":"F32","shape":[2]}}`, d8), "a", "data_offsets: missing"},
		{"negative dim", file(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, d8), "a", "negative"},
		{"fractional dim", file(`{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}`, d8), "a", "not an integer"},
		{"quoted dim", file(`{"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}`, d8), "a", "item 0: want an integer"},
		{"shape not list", file(`{"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}}`, d8), "a", "shape: want a list"},
		{"size mismatch", file(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, d8), "a", "needs 12 bytes"},
		{"shape overflow", file(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, d8), "a", "more than 2^60"},
		{"offsets past end", file(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, d8), "a", "past the end of the 8-byte data buffer"},
		{"offsets reversed", file(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, d8), "a", "ends before it begins"},
		{"three offsets", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}`, d8), "a", "want [begin, end]"},
		{"negative offset", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}`, d8), "a", "negative"},
		{"overlap", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, d8), "b", `overlaps tensor "a"`},
		{"gap", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, d8), "a", "leaves a gap: bytes [0, 4)"},
		{"trailing data", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, d8), "", "cover 4 bytes of the 8-byte data buffer"},
		{"duplicate name", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, d8), "a", "appears twice"},
		{"empty name", file(`{"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, d8), "", "empty tensor name"},
		{"metadata not strings", file(`{"__metadata__":{"k":1}}`, nil), "", `__metadata__: key "k": want a string`},
		{"metadata not object", file(`{"__metadata__":[]}`, nil), "", "__metadata__: want an object"},
		{"metadata twice", file(`{"__metadata__":{},"__metadata__":{}}`, nil), "__metadata__", "appears twice"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".safetensors")
			if err := os.WriteFile(path, c.bytes, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err == nil {
				f.Close()
				t.Fatalf("Open succeeded, want an error containing %q", c.msg)
			}
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v (%T) is not a *FormatError", err, err)
			}
			if fe.File != path || fe.Tensor != c.tensor {
				t.Errorf("error names file %q tensor %q, want %q %q", fe.File, fe.Tensor, path, c.tensor)
			}
			if !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not contain the path and %q", err, c.msg)
			}
		})
	}
}

func TestValidEdgeCases(t *testing.T) {
	cases := []struct {
		name   string
		bytes  []byte
		tensor string
		shape  []int64
	}{
		{"no tensors", file(`{}`, nil), "", nil},
		{"padding and whitespace", file("{\n \"a\" : {\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]} }   ", []byte{7}), "a", []int64{}},
		{"null metadata", file(`{"__metadata__":null,"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{7}), "a", []int64{1}},
		{"huge dim times zero", file(`{"a":{"dtype":"F32","shape":[9223372036854775807,0],"data_offsets":[0,0]}}`, nil), "a", []int64{math.MaxInt64, 0}},
		{"empty tensors share an offset", file(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"c":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}`, make([]byte, 4)), "c", []int64{0}},
		{"unknown entry fields ignored", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":true}}`, []byte{7}), "a", []int64{1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := NewReader(c.name, bytes.NewReader(c.bytes), int64(len(c.bytes)))
			if err != nil {
				t.Fatal(err)
			}
			if c.tensor == "" {
				if len(f.Names()) != 0 {
					t.Errorf("Names() = %q, want none", f.Names())
				}
				return
			}
			info, ok := f.Info(c.tensor)
			if !ok || !slices.Equal(info.Shape, c.shape) {
				t.Errorf("Info(%q) = %+v, %v; want shape %v", c.tensor, info, ok, c.shape)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := Write(path, testTensors(), nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.ReadF32("nope", make([]float32, 1)); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("ReadF32 of a missing tensor: %v", err)
	}
	if err := f.ReadRaw("nope", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadRaw of a missing tensor: %v", err)
	}
	if err := f.ReadF32("w.special", make([]float32, 13)); err == nil || !strings.Contains(err.Error(), "w.special") {
		t.Errorf("ReadF32 into a short buffer: %v", err)
	}
	if err := f.ReadRaw("w.special", make([]byte, 57)); err == nil || !strings.Contains(err.Error(), "w.special") {
		t.Errorf("ReadRaw into a long buffer: %v", err)
	}
	g, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.ReadF32("a.scalar", make([]float32, 1)); err == nil || !strings.Contains(err.Error(), "a.scalar") {
		t.Errorf("ReadF32 after Close: %v, want an error", err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.safetensors")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing file: %v", err)
	}
}

func TestWriteBadInput(t *testing.T) {
	ok := F32Tensor("ok", []int64{1}, []float32{1})
	cases := []struct {
		name   string
		t      Tensor
		tensor string
		msg    string
	}{
		{"unknown dtype", Tensor{Name: "x", DType: "F17", Shape: []int64{1}, Data: make([]byte, 4)}, "x", "unknown dtype"},
		{"size mismatch", Tensor{Name: "x", DType: "F32", Shape: []int64{2}, Data: make([]byte, 4)}, "x", "needs 8 bytes, Data holds 4"},
		{"negative dim", Tensor{Name: "x", DType: "F32", Shape: []int64{-1}}, "x", "negative"},
		{"overflow", Tensor{Name: "x", DType: "F32", Shape: []int64{1 << 40, 1 << 40}}, "x", "too large"},
		{"duplicate", ok, "ok", "given twice"},
		{"empty name", Tensor{DType: "U8", Shape: []int64{1}, Data: []byte{1}}, "", "cannot name a tensor"},
		{"invalid utf-8", Tensor{Name: "a\xff", DType: "U8", Shape: []int64{1}, Data: []byte{1}}, "a\xff", "not valid UTF-8"},
		{"metadata name", Tensor{Name: "__metadata__", DType: "U8", Shape: []int64{1}, Data: []byte{1}}, "__metadata__", "cannot name a tensor"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "x.safetensors")
			err := Write(path, []Tensor{ok, c.t}, nil)
			var fe *FormatError
			if !errors.As(err, &fe) || fe.File != path || fe.Tensor != c.tensor || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("Write: %v; want a *FormatError for %q, tensor %q, containing %q", err, path, c.tensor, c.msg)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed Write left %s behind", path)
			}
		})
	}
	var fe *FormatError
	if err := Write(filepath.Join(dir, "m.safetensors"), []Tensor{ok}, map[string]string{"k": "\xff"}); !errors.As(err, &fe) || fe.Field != "__metadata__" {
		t.Errorf("Write with invalid UTF-8 metadata: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed writes left files: %v", entries)
	}
}

func TestConvertingConstructors(t *testing.T) {
	x := f32Bits(specials)
	for _, c := range []struct {
		mk   func(string, []int64, []float32) Tensor
		conv func(float32) uint16
	}{{BF16Tensor, F32ToBF16}, {F16Tensor, F32ToF16}} {
		tt := c.mk("t", []int64{int64(len(x))}, x)
		for i, v := range x {
			if g, w := binary.LittleEndian.Uint16(tt.Data[2*i:]), c.conv(v); g != w {
				t.Errorf("%s element %d: %#04x, want %#04x", tt.DType, i, g, w)
			}
		}
	}
}
