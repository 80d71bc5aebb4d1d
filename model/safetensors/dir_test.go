package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func randomTensors(n int) []Tensor {
	r := rand.New(rand.NewPCG(3, 5))
	var ts []Tensor
	for i := range n {
		rows, cols := 1+r.IntN(5), 1+r.IntN(9)
		x := make([]float32, rows*cols)
		for j := range x {
			x[j] = float32(r.NormFloat64())
		}
		name := fmt.Sprintf("model.layers.%d.w", i)
		if i%3 == 0 {
			ts = append(ts, BF16Tensor(name, []int64{int64(rows), int64(cols)}, x))
		} else {
			ts = append(ts, F32Tensor(name, []int64{int64(rows), int64(cols)}, x))
		}
	}
	ts = append(ts, F32Tensor("big", []int64{64}, make([]float32, 64))) // larger than a shard
	return ts
}

// reader is what File and Set have in common.
type reader interface {
	Names() []string
	Info(string) (Info, bool)
	ReadRaw(string, []byte) error
	ReadF32(string, []float32) error
}

func sameTensors(t *testing.T, a, b reader) {
	t.Helper()
	if !slices.Equal(a.Names(), b.Names()) {
		t.Fatalf("names differ: %q vs %q", a.Names(), b.Names())
	}
	for _, n := range a.Names() {
		ia, _ := a.Info(n)
		ib, _ := b.Info(n)
		if ia.DType != ib.DType || !slices.Equal(ia.Shape, ib.Shape) || ia.Size != ib.Size {
			t.Errorf("%q: %+v vs %+v", n, ia, ib)
		}
		ra, rb := make([]byte, ia.Size), make([]byte, ib.Size)
		if err := a.ReadRaw(n, ra); err != nil {
			t.Fatal(err)
		}
		if err := b.ReadRaw(n, rb); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ra, rb) {
			t.Errorf("%q: data differs", n)
		}
		fa, fb := make([]float32, ia.Elems()), make([]float32, ib.Elems())
		if err := a.ReadF32(n, fa); err != nil {
			t.Fatal(err)
		}
		if err := b.ReadF32(n, fb); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(fa, fb) {
			t.Errorf("%q: ReadF32 differs", n)
		}
	}
}

func TestShardedMatchesSingle(t *testing.T) {
	ts := randomTensors(12)
	single, sharded := t.TempDir(), t.TempDir()
	if err := Write(filepath.Join(single, SingleFile), ts, nil); err != nil {
		t.Fatal(err)
	}
	const maxShard = 100
	if err := WriteSharded(sharded, ts, maxShard); err != nil {
		t.Fatal(err)
	}
	a, err := OpenDir(single)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenDir(sharded)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sameTensors(t, a, b)
	f, err := Open(filepath.Join(single, SingleFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sameTensors(t, f, b)

	files := b.Files()
	if len(files) < 3 {
		t.Fatalf("%d shards, want several", len(files))
	}
	var total int64
	for i, p := range files {
		if want := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(files)); filepath.Base(p) != want {
			t.Errorf("shard %d is %s, want %s", i, filepath.Base(p), want)
		}
		sf, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		var size int64
		for _, n := range sf.Names() {
			info, _ := sf.Info(n)
			size += info.Size
			if b.Shard(n) != p {
				t.Errorf("Shard(%q) = %s, want %s", n, b.Shard(n), p)
			}
		}
		if size > maxShard && len(sf.Names()) > 1 {
			t.Errorf("%s holds %d bytes in %d tensors, over the %d limit", p, size, len(sf.Names()), maxShard)
		}
		if sf.Metadata()["format"] != "pt" {
			t.Errorf("%s metadata %v, want format pt", p, sf.Metadata())
		}
		total += size
		sf.Close()
	}
	if b.TotalSize() != total {
		t.Errorf("index total_size %d, shards hold %d", b.TotalSize(), total)
	}
	var idx struct {
		Metadata  map[string]int64  `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	data, _ := os.ReadFile(filepath.Join(sharded, IndexFile))
	if err := json.Unmarshal(data, &idx); err != nil || len(idx.WeightMap) != len(ts) || idx.Metadata["total_size"] != total {
		t.Errorf("index %s: %v", data, err)
	}

	// Re-saving into the same directory with large shards replaces the sharded files.
	if err := WriteSharded(sharded, ts, 1<<20); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(sharded)
	if len(entries) != 1 || entries[0].Name() != SingleFile {
		t.Errorf("after a single-file save the directory holds %v", entries)
	}
	c, err := OpenDir(sharded)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sameTensors(t, a, c)
	// And back to shards: the single file goes.
	if err := WriteSharded(sharded, ts, maxShard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(sharded, SingleFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale %s left after a sharded save", SingleFile)
	}
}

func TestWriteShardedBadInput(t *testing.T) {
	dir := t.TempDir()
	if err := WriteSharded(dir, randomTensors(2), 0); err == nil || !strings.Contains(err.Error(), "maxShardBytes") {
		t.Errorf("maxShardBytes 0: %v", err)
	}
	bad := append(randomTensors(2), Tensor{Name: "bad", DType: "F32", Shape: []int64{3}})
	var fe *FormatError
	if err := WriteSharded(dir, bad, 100); !errors.As(err, &fe) || fe.Tensor != "bad" {
		t.Errorf("bad tensor: %v", err)
	}
}

func TestOpenDirBadInput(t *testing.T) {
	shard := func(t *testing.T, dir, name string, tensors ...string) {
		var ts []Tensor
		for _, n := range tensors {
			ts = append(ts, F32Tensor(n, []int64{1}, []float32{1}))
		}
		if err := Write(filepath.Join(dir, name), ts, nil); err != nil {
			t.Fatal(err)
		}
	}
	const s1, s2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
	cases := []struct {
		name   string
		index  string
		shards map[string][]string
		tensor string
		msg    string
	}{
		{"missing shard", `{"weight_map":{"a":"` + s1 + `","b":"` + s2 + `"}}`, map[string][]string{s1: {"a"}}, "", "shard \"" + s2 + "\" is missing"},
		{"shard lacks tensor", `{"weight_map":{"a":"` + s1 + `","b":"` + s1 + `"}}`, map[string][]string{s1: {"a"}}, "b", "which lacks it"},
		{"unlisted tensor", `{"weight_map":{"a":"` + s1 + `"}}`, map[string][]string{s1: {"a", "c"}}, "c", "not listed"},
		{"name in two shards", `{"weight_map":{"a":"` + s1 + `","b":"` + s2 + `"}}`, map[string][]string{s1: {"a"}, s2: {"a", "b"}}, "a", "in two shards"},
		{"listed twice", `{"weight_map":{"a":"` + s1 + `","a":"` + s2 + `"}}`, map[string][]string{s1: {"a"}, s2: {"a"}}, "a", "listed twice"},
		{"path in shard name", `{"weight_map":{"a":"../x.safetensors"}}`, nil, "a", "not a file name"},
		{"no weight_map", `{"metadata":{}}`, nil, "", "weight_map: missing"},
		{"empty weight_map", `{"weight_map":{}}`, nil, "", "weight_map: is empty"},
		{"weight_map not object", `{"weight_map":[1]}`, nil, "", "want an object"},
		{"shard not string", `{"weight_map":{"a":1}}`, nil, "a", "want a shard file name"},
		{"bad total_size", `{"metadata":{"total_size":"x"},"weight_map":{"a":"` + s1 + `"}}`, map[string][]string{s1: {"a"}}, "", "total_size"},
		{"malformed", `{"weight_map":`, nil, "", "malformed JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			index := filepath.Join(dir, IndexFile)
			if err := os.WriteFile(index, []byte(c.index), 0o644); err != nil {
				t.Fatal(err)
			}
			for name, ts := range c.shards {
				shard(t, dir, name, ts...)
			}
			s, err := OpenDir(dir)
			if err == nil {
				s.Close()
				t.Fatalf("OpenDir succeeded, want an error containing %q", c.msg)
			}
			var fe *FormatError
			if !errors.As(err, &fe) || fe.File != index || fe.Tensor != c.tensor || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("OpenDir: %v; want a *FormatError for %s, tensor %q, containing %q", err, index, c.tensor, c.msg)
			}
		})
	}
	t.Run("empty dir", func(t *testing.T) {
		_, err := OpenDir(t.TempDir())
		if !errors.Is(err, ErrNoCheckpoint) || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("OpenDir of an empty dir: %v", err)
		}
	})
	t.Run("corrupt shard", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, IndexFile), []byte(`{"weight_map":{"a":"`+s1+`"}}`), 0o644)
		os.WriteFile(filepath.Join(dir, s1), []byte("junk"), 0o644)
		_, err := OpenDir(dir)
		var fe *FormatError
		if !errors.As(err, &fe) || fe.File != filepath.Join(dir, s1) {
			t.Errorf("OpenDir with a corrupt shard: %v", err)
		}
	})
}
