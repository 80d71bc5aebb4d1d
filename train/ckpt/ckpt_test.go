package ckpt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type meta struct {
	Step   int
	RNG    [4]uint64
	Cursor struct{ Epoch, Pos int }
	LR     float64
	Perm   []int
}

func sample() (meta, []Tensor) {
	m := meta{Step: 123, RNG: [4]uint64{1, 2, math.MaxUint64, 4}, LR: 1e-6, Perm: []int{3, 1, 2, 0}}
	m.Cursor.Epoch, m.Cursor.Pos = 2, 17
	r := rand.New(rand.NewPCG(7, 8))
	big := make([]float32, 300_001)
	for i := range big {
		big[i] = float32(r.NormFloat64())
	}
	special := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, math.MaxFloat32}
	return m, []Tensor{{"adam.m", big}, {"empty", nil}, {"special", special}, {"adam.v", big[:1000]}}
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestRoundTrip(t *testing.T) {
	m, ts := sample()
	path := filepath.Join(t.TempDir(), StateFile)
	if err := WriteFile(path, m, ts); err != nil {
		t.Fatal(err)
	}
	var got meta
	back, err := ReadFile(path, &got, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(m) {
		t.Errorf("metadata = %+v, want %+v", got, m)
	}
	if len(back) != len(ts) {
		t.Fatalf("%d tensors, want %d", len(back), len(ts))
	}
	for i := range ts {
		if back[i].Name != ts[i].Name || !sameBits(back[i].Data, ts[i].Data) {
			t.Errorf("tensor %d (%s): differs after the round trip", i, ts[i].Name)
		}
	}
	st, _ := os.Stat(path)
	if raw := 4 * (300_001 + 6 + 1000); st.Size() >= int64(raw)*2 {
		t.Errorf("file is %d bytes for %d bytes of tensors", st.Size(), raw)
	}

	// Reading into caller buffers.
	bufs := map[string][]float32{}
	_, err = ReadFile(path, &got, func(name string, n int) ([]float32, error) {
		bufs[name] = make([]float32, n)
		return bufs[name], nil
	})
	if err != nil || !sameBits(bufs["adam.v"], ts[3].Data) {
		t.Errorf("read into buffers: %v", err)
	}
	_, err = ReadFile(path, &got, func(name string, n int) ([]float32, error) { return make([]float32, n+1), nil })
	if err == nil || !strings.Contains(err.Error(), "adam.m") {
		t.Errorf("wrong-size buffer: err = %v, want one naming the tensor", err)
	}
	var wrong struct{ Step string }
	if _, err := ReadFile(path, &wrong, nil); err == nil {
		t.Error("metadata of another type decoded without error")
	}
}

func TestCorruption(t *testing.T) {
	m, ts := sample()
	var buf bytes.Buffer
	if err := Write(&buf, m, ts); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x55
		return b
	}
	version := bytes.Clone(good)
	version[8] = 9
	tests := []struct {
		name string
		data []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrCorrupt, "too short"},
		{"truncated in magic", good[:5], ErrCorrupt, "too short"},
		{"wrong magic", append([]byte("GGUFxxxx"), good[8:]...), ErrCorrupt, "magic"},
		{"version", version, ErrVersion, "version 9"},
		{"truncated after magic", good[:12], ErrCorrupt, ""},
		{"truncated in header", good[:40], ErrCorrupt, ""},
		{"truncated in tensors", good[:len(good)/2], ErrCorrupt, ""},
		{"truncated by one byte", good[:len(good)-1], ErrCorrupt, ""},
		{"bad zstd frame header", flip(13), ErrCorrupt, ""},
		{"bad zstd data", flip(len(good) / 2), ErrCorrupt, ""},
		{"bad checksum", flip(len(good) - 2), ErrCorrupt, ""},
		{"trailing garbage", append(bytes.Clone(good), "junk"...), ErrCorrupt, ""},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			var got meta
			_, err := ReadFile(path, &got, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want one wrapping %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want one naming %s and saying %q", err, path, tc.msg)
			}
		})
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), &meta{}, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want os.ErrNotExist", err)
	}
}

func TestAtomicWriteFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := AtomicWrite(path, func(w io.Writer) error {
		io.WriteString(w, "partial")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("file = %q after a failed write, want old", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d entries in the directory, want 1 (temporary file left behind)", len(ents))
	}
}

func TestCheckpointDirs(t *testing.T) {
	root := filepath.Join(t.TempDir(), "ckpt")
	if _, _, err := Latest(root); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("empty root: err = %v, want ErrNoCheckpoint", err)
	}
	for step := 10; step <= 50; step += 10 {
		tmp, err := Begin(root, step)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(filepath.Join(tmp, StateFile), meta{Step: step}, nil); err != nil {
			t.Fatal(err)
		}
		dir, err := Commit(root, step, tmp, 2)
		if err != nil {
			t.Fatal(err)
		}
		if dir != StepDir(root, step) {
			t.Errorf("Commit returned %s, want %s", dir, StepDir(root, step))
		}
	}
	steps, err := Steps(root)
	if err != nil || fmt.Sprint(steps) != "[40 50]" {
		t.Errorf("steps after pruning = %v, %v; want [40 50]", steps, err)
	}
	dir, step, err := Latest(root)
	if err != nil || step != 50 || filepath.Base(dir) != "step-000050" {
		t.Fatalf("Latest = %s, %d, %v", dir, step, err)
	}
	var m meta
	if _, err := ReadFile(filepath.Join(dir, StateFile), &m, nil); err != nil || m.Step != 50 {
		t.Errorf("state in latest: step %d, %v", m.Step, err)
	}
	if ents, _ := filepath.Glob(filepath.Join(root, ".tmp-*")); len(ents) != 0 {
		t.Errorf("temporary directories left: %v", ents)
	}

	// An uncommitted Begin is invisible.
	if _, err := Begin(root, 60); err != nil {
		t.Fatal(err)
	}
	if _, step, _ := Latest(root); step != 50 {
		t.Errorf("after an uncommitted Begin, Latest step = %d, want 50", step)
	}
	// Without the pointer, the highest step directory.
	os.Remove(filepath.Join(root, LatestFile))
	if _, step, err := Latest(root); err != nil || step != 50 {
		t.Errorf("without pointer: step %d, %v", step, err)
	}
	// A pointer naming a directory that is gone falls back to the highest step.
	os.WriteFile(filepath.Join(root, LatestFile), []byte("step-000010\n"), 0o644)
	if _, step, err := Latest(root); err != nil || step != 50 {
		t.Errorf("dangling pointer: step %d, %v; want 50", step, err)
	}
	os.WriteFile(filepath.Join(root, LatestFile), []byte("../etc\n"), 0o644)
	if _, _, err := Latest(root); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), LatestFile) {
		t.Errorf("malformed pointer: err = %v", err)
	}
	// Re-committing a step replaces it and leaves nothing aside.
	tmp, _ := Begin(root, 50)
	WriteFile(filepath.Join(tmp, StateFile), meta{Step: 5050}, nil)
	if _, err := Commit(root, 50, tmp, 0); err != nil {
		t.Fatal(err)
	}
	var m2 meta
	if _, err := ReadFile(filepath.Join(StepDir(root, 50), StateFile), &m2, nil); err != nil || m2.Step != 5050 {
		t.Errorf("re-committed step 50 holds step %d, %v", m2.Step, err)
	}
	if left, _ := filepath.Glob(filepath.Join(root, ".old-*")); len(left) != 0 {
		t.Errorf("left aside: %v", left)
	}
	// Prune never removes the checkpoint the pointer names.
	os.WriteFile(filepath.Join(root, LatestFile), []byte("step-000040\n"), 0o644)
	if err := Prune(root, 1); err != nil {
		t.Fatal(err)
	}
	if steps, _ := Steps(root); fmt.Sprint(steps) != "[40 50]" {
		t.Errorf("steps after Prune(1) with latest=40: %v, want [40 50]", steps)
	}
}

func BenchmarkState(b *testing.B) {
	for _, n := range []int{1 << 20, 16 << 20} {
		r := rand.New(rand.NewPCG(1, 1))
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(r.NormFloat64()) * 1e-3
		}
		ts := []Tensor{{"m", data}}
		path := filepath.Join(b.TempDir(), StateFile)
		b.Run(fmt.Sprintf("write/n=%dM", n>>20), func(b *testing.B) {
			b.SetBytes(int64(4 * n))
			for b.Loop() {
				if err := WriteFile(path, meta{}, ts); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("read/n=%dM", n>>20), func(b *testing.B) {
			b.SetBytes(int64(4 * n))
			for b.Loop() {
				var m meta
				if _, err := ReadFile(path, &m, func(string, int) ([]float32, error) { return data, nil }); err != nil {
					b.Fatal(err)
				}
			}
			st, _ := os.Stat(path)
			b.ReportMetric(float64(st.Size())/float64(4*n), "ratio")
		})
	}
}
