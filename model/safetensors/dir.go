package safetensors

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// The file names of an HF checkpoint directory.
const (
	SingleFile = "model.safetensors"            // an unsharded checkpoint
	IndexFile  = "model.safetensors.index.json" // the index of a sharded one
)

// ErrNoCheckpoint is wrapped by OpenDir's error for a directory with neither SingleFile nor
// IndexFile; it also matches fs.ErrNotExist.
var ErrNoCheckpoint = fmt.Errorf("no %s or %s: %w", SingleFile, IndexFile, fs.ErrNotExist)

// Set is the tensors of a checkpoint directory, one file or several shards, as one namespace.
// Its methods may be called from several goroutines at once, except Close.
type Set struct {
	dir   string
	files []*File
	owner map[string]*File
	names []string
	total int64 // metadata.total_size of the index, -1 when absent
}

// OpenDir opens the checkpoint in dir: model.safetensors when present (as HF prefers it), else
// the shards that model.safetensors.index.json names. The index must be consistent with its
// shards: every shard present, every tensor of the weight_map in the shard it names, no tensor
// in two shards, no tensor of a shard left out of the weight_map. Errors about the contents are
// *FormatError naming the file and tensor; a directory with neither file gives ErrNoCheckpoint.
func OpenDir(dir string) (*Set, error) {
	single := filepath.Join(dir, SingleFile)
	if _, err := os.Stat(single); err == nil {
		f, err := Open(single)
		if err != nil {
			return nil, err
		}
		s := &Set{dir: dir, files: []*File{f}, owner: map[string]*File{}, names: f.Names(), total: -1}
		for _, n := range s.names {
			s.owner[n] = f
		}
		return s, nil
	}
	index := filepath.Join(dir, IndexFile)
	data, err := os.ReadFile(index)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("safetensors: %s: %w", dir, ErrNoCheckpoint)
	}
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	weights, total, err := parseIndex(index, data)
	if err != nil {
		return nil, err
	}
	s := &Set{dir: dir, owner: map[string]*File{}, total: total}
	byShard := map[string]*File{}
	var shards []string
	for _, shard := range weights {
		if _, ok := byShard[shard]; !ok {
			byShard[shard] = nil
			shards = append(shards, shard)
		}
	}
	slices.Sort(shards)
	for _, shard := range shards {
		f, err := Open(filepath.Join(dir, shard))
		if err != nil {
			s.Close()
			if errors.Is(err, fs.ErrNotExist) {
				return nil, &FormatError{File: index, Field: "weight_map", Msg: fmt.Sprintf("shard %q is missing", shard), Err: err}
			}
			return nil, err
		}
		byShard[shard] = f
		s.files = append(s.files, f)
	}
	for _, shard := range shards {
		f := byShard[shard]
		for _, n := range f.names {
			switch want, ok := weights[n]; {
			case !ok:
				s.Close()
				return nil, &FormatError{File: index, Tensor: n, Field: "weight_map", Msg: fmt.Sprintf("not listed, but shard %q holds it", shard)}
			case want != shard:
				s.Close()
				return nil, &FormatError{File: index, Tensor: n, Field: "weight_map", Msg: fmt.Sprintf("in two shards: %q (as the index says) and %q", want, shard)}
			}
		}
	}
	names := make([]string, 0, len(weights))
	for n := range weights {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		shard := weights[n]
		f := byShard[shard]
		if _, ok := f.infos[n]; !ok {
			s.Close()
			return nil, &FormatError{File: index, Tensor: n, Field: "weight_map", Msg: fmt.Sprintf("mapped to shard %q, which lacks it", shard)}
		}
		s.owner[n] = f
	}
	s.names = names
	return s, nil
}

// parseIndex reads an index's weight_map (rejecting repeated names and shard names that are
// not plain file names) and metadata.total_size (-1 when absent).
func parseIndex(index string, data []byte) (map[string]string, int64, error) {
	ferr := func(tensor, field, format string, args ...any) error {
		return &FormatError{File: index, Tensor: tensor, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	var doc struct {
		Metadata  map[string]json.RawMessage `json:"metadata"`
		WeightMap json.RawMessage            `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, 0, &FormatError{File: index, Msg: "malformed JSON", Err: err}
	}
	if len(doc.WeightMap) == 0 || string(doc.WeightMap) == "null" {
		return nil, 0, ferr("", "weight_map", "missing")
	}
	dec := json.NewDecoder(bytes.NewReader(doc.WeightMap))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, 0, ferr("", "weight_map", "want an object of tensor name to shard file")
	}
	weights := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, 0, &FormatError{File: index, Field: "weight_map", Msg: "malformed JSON", Err: err}
		}
		name := tok.(string)
		var shard string
		if err := dec.Decode(&shard); err != nil {
			return nil, 0, ferr(name, "weight_map", "want a shard file name")
		}
		if _, dup := weights[name]; dup {
			return nil, 0, ferr(name, "weight_map", "listed twice")
		}
		if shard == "" || shard == "." || shard == ".." || filepath.Base(shard) != shard || filepath.IsAbs(shard) {
			return nil, 0, ferr(name, "weight_map", "shard %q is not a file name in the checkpoint directory", shard)
		}
		weights[name] = shard
	}
	if len(weights) == 0 {
		return nil, 0, ferr("", "weight_map", "is empty")
	}
	total := int64(-1)
	if raw, ok := doc.Metadata["total_size"]; ok {
		var f float64 // HF writes an integer; some tools write a float
		if err := json.Unmarshal(raw, &f); err != nil || f < 0 {
			return nil, 0, ferr("", "metadata.total_size", "want a non-negative number, got %.40s", raw)
		}
		total = int64(f)
	}
	return weights, total, nil
}

// Dir is the checkpoint directory.
func (s *Set) Dir() string { return s.dir }

// Files are the paths of the files in the set, sorted.
func (s *Set) Files() []string {
	out := make([]string, len(s.files))
	for i, f := range s.files {
		out[i] = f.path
	}
	return out
}

// TotalSize is the index's metadata.total_size, or -1 for an unsharded checkpoint or an index
// without it.
func (s *Set) TotalSize() int64 { return s.total }

// Names lists every tensor of the set, sorted.
func (s *Set) Names() []string { return slices.Clone(s.names) }

// Info describes the tensor name (its Offset is within its shard); ok is false when the set
// has no such tensor.
func (s *Set) Info(name string) (Info, bool) {
	f, ok := s.owner[name]
	if !ok {
		return Info{}, false
	}
	return f.Info(name)
}

// Shard is the path of the file holding the tensor name ("" when the set has none).
func (s *Set) Shard(name string) string {
	if f, ok := s.owner[name]; ok {
		return f.path
	}
	return ""
}

func (s *Set) file(name string) (*File, error) {
	f, ok := s.owner[name]
	if !ok {
		return nil, fmt.Errorf("%s: tensor %q: %w", s.dir, name, ErrNotFound)
	}
	return f, nil
}

// ReadF32 reads the tensor name into dst as float32; see File.ReadF32.
func (s *Set) ReadF32(name string, dst []float32) error {
	f, err := s.file(name)
	if err != nil {
		return err
	}
	return f.ReadF32(name, dst)
}

// ReadRaw reads the tensor name's stored bytes into dst; see File.ReadRaw.
func (s *Set) ReadRaw(name string, dst []byte) error {
	f, err := s.file(name)
	if err != nil {
		return err
	}
	return f.ReadRaw(name, dst)
}

// Section returns a reader of the tensor name's stored bytes; see File.Section.
func (s *Set) Section(name string) (*io.SectionReader, error) {
	f, err := s.file(name)
	if err != nil {
		return nil, err
	}
	return f.Section(name)
}

// Close closes every file of the set and returns the first error.
func (s *Set) Close() error {
	var first error
	for _, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

var shardName = regexp.MustCompile(`^model-[0-9]{5}-of-[0-9]{5}\.safetensors$`)

// WriteSharded writes tensors to dir as an HF checkpoint, each file with metadata
// {"format": "pt"}. Tensors are taken in name order and packed greedily into shards of at most
// maxShardBytes of data (a larger tensor gets a shard of its own). One shard is written as
// model.safetensors; several as model-00001-of-0000N.safetensors plus
// model.safetensors.index.json with metadata.total_size (the bytes of all tensors) and the
// weight_map, like HF's save_pretrained. Checkpoint files of an earlier save in dir that the new
// one does not use are removed, so OpenDir reads what was written. Errors about the tensors
// are *FormatError.
func WriteSharded(dir string, tensors []Tensor, maxShardBytes int64) error {
	specs, data, err := specsOf(dir, tensors)
	if err != nil {
		return err
	}
	return WriteShardedStream(dir, specs, maxShardBytes, func(s Spec, w io.Writer) error {
		_, err := w.Write(data[s.Name])
		return err
	})
}

// WriteShardedStream is WriteSharded with each tensor's data supplied by fill, as in
// WriteStream: one tensor is in flight at a time, whatever the size of the checkpoint.
func WriteShardedStream(dir string, specs []Spec, maxShardBytes int64, fill func(s Spec, w io.Writer) error) error {
	if maxShardBytes <= 0 {
		return fmt.Errorf("safetensors: WriteSharded %s: maxShardBytes must be positive, got %d", dir, maxShardBytes)
	}
	if _, err := order(dir, specs, nil); err != nil {
		return err
	}
	ss := slices.Clone(specs)
	slices.SortFunc(ss, func(a, b Spec) int { return strings.Compare(a.Name, b.Name) })
	var shards [][]Spec
	var cur []Spec
	var curBytes, total int64
	for _, s := range ss {
		n := s.Size()
		if len(cur) > 0 && curBytes+n > maxShardBytes {
			shards = append(shards, cur)
			cur, curBytes = nil, 0
		}
		cur = append(cur, s)
		curBytes += n
		total += n
	}
	if len(cur) > 0 || len(shards) == 0 {
		shards = append(shards, cur)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	meta := map[string]string{"format": "pt"}
	keep := map[string]bool{}
	if len(shards) == 1 {
		if err := WriteStream(filepath.Join(dir, SingleFile), shards[0], meta, fill); err != nil {
			return err
		}
		keep[SingleFile] = true
		return removeStale(dir, keep)
	}
	weights := map[string]string{}
	for i, sh := range shards {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		if err := WriteStream(filepath.Join(dir, name), sh, meta, fill); err != nil {
			return err
		}
		keep[name] = true
		for _, s := range sh {
			weights[s.Name] = name
		}
	}
	idx, err := json.MarshalIndent(map[string]any{
		"metadata":   map[string]any{"total_size": total},
		"weight_map": weights,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	idx = append(idx, '\n')
	if err := writeAtomic(filepath.Join(dir, IndexFile), func(w *bufio.Writer) error {
		_, err := w.Write(idx)
		return err
	}); err != nil {
		return err
	}
	keep[IndexFile] = true
	return removeStale(dir, keep)
}

// removeStale deletes the checkpoint files of dir (model.safetensors, its index, numbered
// shards) that keep does not name.
func removeStale(dir string, keep map[string]bool) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		if keep[n] || e.IsDir() || (n != SingleFile && n != IndexFile && !shardName.MatchString(n)) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			return fmt.Errorf("safetensors: removing a stale checkpoint file: %w", err)
		}
	}
	return nil
}
