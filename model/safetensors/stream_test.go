package safetensors

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteStreamMatchesWrite: the streamed file equals Write's byte for byte, sharded or not,
// and Section reads each tensor's stored bytes.
func TestWriteStreamMatchesWrite(t *testing.T) {
	ts := randomTensors(7)
	byName := map[string][]byte{}
	var specs []Spec
	for _, x := range ts {
		byName[x.Name] = x.Data
		specs = append(specs, x.Spec())
	}
	fill := func(s Spec, w io.Writer) error {
		d := byName[s.Name]
		// in two pieces, as a converter writes chunks
		if _, err := w.Write(d[:len(d)/2]); err != nil {
			return err
		}
		_, err := w.Write(d[len(d)/2:])
		return err
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.safetensors"), filepath.Join(dir, "b.safetensors")
	if err := Write(a, ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	if err := WriteStream(b, specs, map[string]string{"format": "pt"}, fill); err != nil {
		t.Fatal(err)
	}
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if !bytes.Equal(da, db) {
		t.Fatalf("streamed file differs from Write's (%d vs %d bytes)", len(db), len(da))
	}
	for _, max := range []int64{40, 1 << 20} {
		d1, d2 := filepath.Join(dir, "s1"), filepath.Join(dir, "s2")
		os.RemoveAll(d1)
		os.RemoveAll(d2)
		if err := WriteSharded(d1, ts, max); err != nil {
			t.Fatal(err)
		}
		if err := WriteShardedStream(d2, specs, max, fill); err != nil {
			t.Fatal(err)
		}
		ents, _ := os.ReadDir(d1)
		for _, e := range ents {
			x, _ := os.ReadFile(filepath.Join(d1, e.Name()))
			y, err := os.ReadFile(filepath.Join(d2, e.Name()))
			if err != nil || !bytes.Equal(x, y) {
				t.Fatalf("max %d: %s differs (%v)", max, e.Name(), err)
			}
		}
		s, err := OpenDir(d2)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ts {
			sec, err := s.Section(x.Name)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(sec)
			if err != nil || !bytes.Equal(got, x.Data) {
				t.Fatalf("Section(%q) = %d bytes, %v; want its %d bytes", x.Name, len(got), err, len(x.Data))
			}
		}
		if _, err := s.Section("nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Section of a missing tensor: %v, want ErrNotFound", err)
		}
		s.Close()
	}
}

// TestWriteStreamBadFill: a fill that writes too few or too many bytes, or fails, is an error
// naming the tensor, and no file is left behind.
func TestWriteStreamBadFill(t *testing.T) {
	specs := []Spec{{Name: "w", DType: "F32", Shape: []int64{2, 3}}}
	for _, c := range []struct {
		name string
		fill func(Spec, io.Writer) error
		want string
	}{
		{"short", func(s Spec, w io.Writer) error { _, err := w.Write(make([]byte, 20)); return err }, "20 bytes written"},
		{"long", func(s Spec, w io.Writer) error { _, err := w.Write(make([]byte, 28)); return err }, "28 bytes written"},
		{"error", func(s Spec, w io.Writer) error { return errors.New("disk on fire") }, "disk on fire"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "x.safetensors")
			err := WriteStream(path, specs, nil, c.fill)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `"w"`) {
				t.Fatalf("got %v, want an error naming tensor \"w\" with %q", err, c.want)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("left %d files behind", len(ents))
			}
		})
	}
}
