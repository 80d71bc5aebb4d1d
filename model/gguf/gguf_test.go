package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// sample builds a small file: metadata of every kind the writer supports and three tensors of
// different types with deterministic contents.
func sample(t *testing.T) (kv []KV, infos []TensorInfo, data map[string][]byte, file []byte) {
	t.Helper()
	kv = []KV{
		String("general.architecture", "qwen2"),
		Uint32("qwen2.block_count", 2),
		Float32("qwen2.attention.layer_norm_rms_epsilon", 1e-6),
		Bool("tokenizer.ggml.add_bos_token", false),
		Strings("tokenizer.ggml.tokens", []string{"a", "b", "<|im_end|>", ""}),
		Int32s("tokenizer.ggml.token_type", []int32{1, 1, 3, 5}),
		{Key: "x.u64", Type: TypeUint64, Value: uint64(1) << 40},
		{Key: "x.f64", Type: TypeFloat64, Value: 0.1},
		{Key: "x.i32", Type: TypeInt32, Value: int32(-7)},
		{Key: "x.f32s", Type: TypeArray, Elem: TypeFloat32, Value: []float32{1.5, -2}},
		Uint32(KeyAlignment, 64),
	}
	infos = []TensorInfo{
		{Name: "a", Dims: []uint64{3, 2}, Type: F32},
		{Name: "b", Dims: []uint64{64}, Type: Q8_0},
		{Name: "c", Dims: []uint64{5}, Type: BF16},
	}
	data = map[string][]byte{}
	for i, ti := range infos {
		d := make([]byte, ti.Size())
		for j := range d {
			d[j] = byte(i*31 + j)
		}
		data[ti.Name] = d
	}
	var buf bytes.Buffer
	n, err := Write(&buf, kv, infos, func(ti TensorInfo, w io.Writer) error {
		_, err := w.Write(data[ti.Name])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("Write returned %d, wrote %d bytes", n, buf.Len())
	}
	return kv, infos, data, buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	kv, infos, data, file := sample(t)
	g, err := NewReader("mem", bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	if g.Version != 3 || g.Align != 64 {
		t.Errorf("version %d align %d, want 3 and 64", g.Version, g.Align)
	}
	if !reflect.DeepEqual(g.KV, kv) {
		t.Errorf("metadata:\n got %+v\nwant %+v", g.KV, kv)
	}
	if g.DataOff%64 != 0 {
		t.Errorf("data section at %d, not aligned to 64", g.DataOff)
	}
	var want uint64
	for i, ti := range g.Tensors {
		if ti.Name != infos[i].Name || !reflect.DeepEqual(ti.Dims, infos[i].Dims) || ti.Type != infos[i].Type {
			t.Errorf("tensor %d: %+v, want %+v", i, ti, infos[i])
		}
		if ti.Offset != want {
			t.Errorf("tensor %q at offset %d, want %d", ti.Name, ti.Offset, want)
		}
		want = pad(want+uint64(ti.Size()), 64)
		sec, err := g.Section(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(sec)
		if !bytes.Equal(got, data[ti.Name]) {
			t.Errorf("tensor %q data differs", ti.Name)
		}
	}
	if int64(len(file)) != g.DataOff+int64(want) {
		t.Errorf("file is %d bytes, want the data section padded: %d", len(file), g.DataOff+int64(want))
	}
	if v, ok, err := g.Float("qwen2.attention.layer_norm_rms_epsilon"); !ok || err != nil || v != 1e-6 {
		t.Errorf("Float(eps) = %v %v %v, want exactly 1e-6", v, ok, err)
	}
	if v, ok, err := g.Uint("qwen2.block_count"); !ok || err != nil || v != 2 {
		t.Errorf("Uint(block_count) = %v %v %v", v, ok, err)
	}
	if _, _, err := g.Uint("x.i32"); err == nil {
		t.Error("Uint of a negative int32: no error")
	}
	if _, _, err := g.Str("qwen2.block_count"); err == nil || !strings.Contains(err.Error(), "qwen2.block_count") {
		t.Errorf("Str of a uint32: %v, want an error naming the key", err)
	}
	if ti := (TensorInfo{Dims: []uint64{3, 2}}); !reflect.DeepEqual(ti.Shape(), []int64{2, 3}) || !reflect.DeepEqual(DimsOf([]int64{2, 3}), ti.Dims) {
		t.Errorf("Shape/DimsOf do not reverse: %v %v", ti.Shape(), DimsOf([]int64{2, 3}))
	}
}

// TestBadInput: each corruption is an error naming the file and the field or tensor at fault.
func TestBadInput(t *testing.T) {
	_, _, _, file := sample(t)
	g, err := NewReader("mem", bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	// offsets of the tensor infos' fields: find the name "b" and its info after it
	hdrEnd := int(g.DataOff)
	idxB := bytes.LastIndex(file[:hdrEnd], []byte("\x01\x00\x00\x00\x00\x00\x00\x00b"))
	if idxB < 0 {
		t.Fatal("tensor info of b not found")
	}
	infoB := idxB + 9 // n_dims
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(file)) }
	le := binary.LittleEndian
	cases := []struct {
		name string
		data []byte
		want []string
	}{
		{"wrong magic", mod(func(b []byte) []byte { copy(b, "GGML"); return b }), []string{"magic", "not a GGUF file"}},
		{"empty", nil, []string{"magic", "past the end"}},
		{"version 1", mod(func(b []byte) []byte { le.PutUint32(b[4:], 1); return b }), []string{"version", "not supported"}},
		{"big-endian", mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 3); return b }), []string{"version", "big-endian"}},
		{"huge tensor count", mod(func(b []byte) []byte { le.PutUint64(b[8:], 1<<60); return b }), []string{"tensor count", "cannot fit"}},
		{"huge kv count", mod(func(b []byte) []byte { le.PutUint64(b[16:], 1<<40); return b }), []string{"metadata count", "cannot fit"}},
		{"huge key length", mod(func(b []byte) []byte { le.PutUint64(b[24:], 1<<50); return b }), []string{"metadata entry 0 key", "past the end"}},
		{"unknown value type", mod(func(b []byte) []byte { le.PutUint32(b[24+8+len("general.architecture"):], 77); return b }), []string{`key "general.architecture"`, "value type"}},
		{"truncated header", file[:100], []string{"truncated"}},
		{"too many dims", mod(func(b []byte) []byte { le.PutUint32(b[infoB:], 5); return b }), []string{`tensor "b"`, "n_dims"}},
		{"unknown type", mod(func(b []byte) []byte { le.PutUint32(b[infoB+4+8:], 99); return b }), []string{`tensor "b"`, "unknown ggml type 99"}},
		{"row not a block multiple", mod(func(b []byte) []byte { le.PutUint64(b[infoB+4:], 33); return b }), []string{`tensor "b"`, "block of 32"}},
		{"misaligned offset", mod(func(b []byte) []byte { le.PutUint64(b[infoB+4+8+4:], 8); return b }), []string{`tensor "b"`, "offset", "alignment"}},
		{"overlap", mod(func(b []byte) []byte { le.PutUint64(b[infoB+4+8+4:], 0); return b }), []string{`tensor "b"`, "overlaps"}},
		{"tensor past the end", mod(func(b []byte) []byte { le.PutUint64(b[infoB+4+8+4:], 1<<20); return b }), []string{`tensor "b"`, "runs past the end of the file"}},
		{"truncated data", file[:len(file)-70], []string{"runs past the end of the file", "truncated"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.gguf")
			if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Open(path)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("%v does not wrap ErrFormat", err)
			}
			for _, w := range append(c.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestWriteBadInput(t *testing.T) {
	ok := func(TensorInfo, io.Writer) error { return nil }
	cases := []struct {
		name    string
		kv      []KV
		tensors []TensorInfo
		fill    func(TensorInfo, io.Writer) error
		want    string
	}{
		{"duplicate tensor", nil, []TensorInfo{{Name: "a", Dims: []uint64{1}}, {Name: "a", Dims: []uint64{1}}}, ok, "given twice"},
		{"bad block", nil, []TensorInfo{{Name: "a", Dims: []uint64{31}, Type: Q8_0}}, ok, "block of 32"},
		{"unknown type", nil, []TensorInfo{{Name: "a", Dims: []uint64{1}, Type: 99}}, ok, "unsupported"},
		{"duplicate key", []KV{Uint32("k", 1), Uint32("k", 2)}, nil, ok, "given twice"},
		{"type mismatch", []KV{{Key: "k", Type: TypeString, Value: uint32(1)}}, nil, ok, `"k"`},
		{"bad alignment", []KV{Uint32(KeyAlignment, 48)}, nil, ok, "power of two"},
		{"short fill", nil, []TensorInfo{{Name: "a", Dims: []uint64{2}}}, func(_ TensorInfo, w io.Writer) error { _, err := w.Write(make([]byte, 4)); return err }, "4 bytes written"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Write(io.Discard, c.kv, c.tensors, c.fill)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
		})
	}
}

// TestDecodeEncodeExact: F32, F16 and BF16 round trips are exact for every value the format
// holds, and Q8_0 blocks dequantize to q·d exactly.
func TestDecodeEncodeExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 4096)
	for i := range x {
		x[i] = float32(r.NormFloat64() * math.Exp(r.NormFloat64()*3))
	}
	for _, typ := range []Type{F32, F16, BF16} {
		enc := make([]byte, typ.Bytes(int64(len(x))))
		if err := Encode(enc, typ, x); err != nil {
			t.Fatal(err)
		}
		y := make([]float32, len(x))
		if err := Decode(y, typ, enc); err != nil {
			t.Fatal(err)
		}
		enc2 := make([]byte, len(enc))
		if err := Encode(enc2, typ, y); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Errorf("%v: decode then encode is not the identity on stored values", typ)
		}
		if typ == F32 && !reflect.DeepEqual(x, y) {
			t.Errorf("F32 round trip changed values")
		}
	}
	// Q8_0 decoding from the definition: value = int8 q times the float16 scale.
	blk := make([]byte, 34)
	binary.LittleEndian.PutUint16(blk, 0x2e66) // 0.0999755859375
	for j := range 32 {
		blk[2+j] = byte(int8(j*8 - 128))
	}
	y := make([]float32, 32)
	if err := Decode(y, Q8_0, blk); err != nil {
		t.Fatal(err)
	}
	for j := range 32 {
		if want := float64(j*8-128) * 0.0999755859375; float64(y[j]) != want {
			t.Fatalf("Q8_0 value %d = %v, want %v", j, y[j], want)
		}
	}
	if err := Decode(make([]float32, 32), Type(2), make([]byte, 18)); !errors.Is(err, ErrType) {
		t.Errorf("decoding Q4_0: %v, want ErrType", err)
	}
	if err := Encode(make([]byte, 34), Q8_0, append(make([]float32, 31), float32(math.Inf(1)))); err == nil {
		t.Error("Q8_0 of an Inf: no error")
	}
}

// TestQ8Bound: quantizing random blocks of many scales stays within Q8Bound of each value, and
// the bound is not loose by more than a small factor.
func TestQ8Bound(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n = 32 * 20000
	x := make([]float32, n)
	for b := 0; b < n/32; b++ {
		scale := math.Exp2(float64(r.IntN(40) - 30)) // 2^-30 .. 2^9: float16-subnormal scales too
		for j := range 32 {
			x[32*b+j] = float32(r.NormFloat64() * scale)
		}
	}
	enc := make([]byte, Q8_0.Bytes(n))
	if err := Encode(enc, Q8_0, x); err != nil {
		t.Fatal(err)
	}
	y := make([]float32, n)
	if err := Decode(y, Q8_0, enc); err != nil {
		t.Fatal(err)
	}
	worst := 0.0 // largest error as a fraction of the bound
	for b := 0; b < n/32; b++ {
		var amax float32
		for _, v := range x[32*b : 32*b+32] {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		bound := Q8Bound(amax)
		for j := 32 * b; j < 32*b+32; j++ {
			e := math.Abs(float64(x[j]) - float64(y[j]))
			if e > bound {
				t.Fatalf("block %d value %d: |%v − %v| = %g > bound %g (amax %g)", b, j, x[j], y[j], e, bound, amax)
			}
			worst = max(worst, e/bound)
		}
	}
	if worst < 0.5 {
		t.Errorf("largest error is only %.2f of the bound: the bound is loose", worst)
	}
	t.Logf("largest error %.3f of the bound", worst)
}

// TestQ8AgainstNumPy compares Q8_0 quantization bit for bit with a NumPy transcription of
// llama.cpp's gguf-py reference (quants.py: d = max|x|/127, id = 1/d, qs = np_roundf(x·id),
// d as float16), run by /usr/bin/python3.
func TestQ8AgainstNumPy(t *testing.T) {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import numpy").Run(); err != nil {
		t.Skipf("%s with numpy not available: %v", py, err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	const n = 32 * 4096
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * math.Exp2(float64(r.IntN(30)-20)))
		if i%97 == 0 {
			x[i] = float32(math.Round(float64(x[i]*8)) / 8) // exact ties after scaling, sometimes
		}
	}
	copy(x[:32], make([]float32, 32)) // an all-zero block
	dir := t.TempDir()
	raw := make([]byte, 4*n)
	if err := Encode(raw, F32, x); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "x.f32"), raw, 0o644)
	script := `
import sys, numpy as np
d = sys.argv[1]
x = np.fromfile(d + "/x.f32", dtype="<f4").reshape(-1, 32)
s = np.abs(x).max(axis=1, keepdims=True) / np.float32(127)
with np.errstate(divide="ignore"):
    inv = np.where(s == 0, np.float32(0), np.float32(1) / s).astype(np.float32)
v = (x * inv).astype(np.float32)
a = np.abs(v); fl = np.floor(a)
q = (np.sign(v) * (fl + np.floor(2 * (a - fl)))).astype(np.int8)
out = np.concatenate([s.astype("<f2").view(np.uint8).reshape(-1, 2), q.view(np.uint8)], axis=1)
out.tofile(d + "/q.bin")
`
	if out, err := exec.Command(py, "-c", script, dir).CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	want, err := os.ReadFile(filepath.Join(dir, "q.bin"))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, Q8_0.Bytes(n))
	if err := Encode(got, Q8_0, x); err != nil {
		t.Fatal(err)
	}
	if len(want) != len(got) {
		t.Fatalf("numpy wrote %d bytes, want %d", len(want), len(got))
	}
	bad := 0
	for b := 0; b < n/32; b++ {
		if !bytes.Equal(got[34*b:34*b+34], want[34*b:34*b+34]) {
			if bad++; bad <= 3 {
				t.Errorf("block %d: got % x\nwant % x", b, got[34*b:34*b+34], want[34*b:34*b+34])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d blocks differ from the NumPy reference", bad, n/32)
	}
}

// FuzzNewReader: no input makes the reader panic or allocate beyond the input's size.
func FuzzNewReader(f *testing.F) {
	var t testing.T
	_, _, _, file := sample(&t)
	f.Add(file)
	f.Add(file[:40])
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := NewReader("fuzz", bytes.NewReader(data), int64(len(data)))
		if err == nil {
			for _, ti := range g.Tensors {
				if _, err := g.Section(ti.Name); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
