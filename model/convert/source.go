package convert

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"cir/model"
	"cir/model/gguf"
	"cir/model/safetensors"
	"cir/train/ckpt"
)

// tensor is one tensor of a source checkpoint, under its spec's names, with its stored type.
type tensor struct {
	spec
	typ  gguf.Type // F32, F16, BF16 or Q8_0
	file string    // the file holding it, for errors
	open func() (*io.SectionReader, error)
}

func (t tensor) elems() int64 {
	n := int64(1)
	for _, d := range t.shape {
		n *= d
	}
	return n
}

// Source is an opened checkpoint: an HF model directory (a training checkpoint is one, with a
// trainer-state file beside the weights) or a GGUF file.
type Source struct {
	Path    string       // the resolved checkpoint: a directory, or the GGUF file
	GGUF    bool         // a GGUF file
	Config  model.Config // the model it holds
	tensors []tensor     // in specs order
	byName  map[string]int
	gg      *gguf.File
	set     *safetensors.Set
}

// Close closes the source's files.
func (s *Source) Close() error {
	if s.gg != nil {
		return s.gg.Close()
	}
	if s.set != nil {
		return s.set.Close()
	}
	return nil
}

// Bytes is the size of the source's tensor data.
func (s *Source) Bytes() int64 {
	var n int64
	for _, t := range s.tensors {
		n += t.typ.Bytes(t.elems())
	}
	return n
}

// Resolve finds the checkpoint path names: a GGUF file or an HF model directory as it is; a
// training run directory (holding checkpoints/) or a checkpoints directory (holding step-N
// directories) gives its newest checkpoint.
func Resolve(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return path, nil
	}
	if exists(filepath.Join(path, "config.json")) {
		return path, nil
	}
	for _, root := range []string{filepath.Join(path, "checkpoints"), path} {
		steps, err := ckpt.Steps(root)
		if err != nil {
			return "", err
		}
		if len(steps) > 0 {
			dir, _, err := ckpt.Latest(root)
			return dir, err
		}
	}
	return "", fmt.Errorf("%s: no config.json, checkpoints/ or step-N checkpoint directories (want an HF model directory, a training run, or a GGUF file): %w", path, fs.ErrNotExist)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Open opens the checkpoint at path (see Resolve) and checks that its tensors are exactly those
// of its config: names, shapes, and a type cir reads (F32, F16, BF16; Q8_0 in GGUF). Errors
// name the file and the field, key or tensor at fault.
func Open(path string) (*Source, error) {
	p, err := Resolve(path)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return openHF(p)
	}
	if filepath.Ext(p) == ".safetensors" {
		return nil, fmt.Errorf("%s: give the model directory holding it and its config.json, not the safetensors file", p)
	}
	return openGGUF(p)
}

var stTypes = map[string]gguf.Type{"F32": gguf.F32, "F16": gguf.F16, "BF16": gguf.BF16}

func openHF(dir string) (*Source, error) {
	cfgPath := filepath.Join(dir, "config.json")
	cfg, err := model.LoadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Source{Path: dir, Config: cfg, set: set, byName: map[string]int{}}
	want := specs(cfg)
	known := map[string]bool{}
	for _, sp := range want {
		known[sp.hf] = true
	}
	for _, n := range set.Names() {
		if !known[n] && !(cfg.TieWordEmbeddings && n == "lm_head.weight") {
			set.Close()
			return nil, fmt.Errorf("%s: tensor %q is not part of the Qwen2 model config.json describes (num_hidden_layers %d, tie_word_embeddings %v, attention biases %v)",
				set.Shard(n), n, cfg.NumLayers, cfg.TieWordEmbeddings, cfg.QKVBias)
		}
	}
	for _, sp := range want {
		info, ok := set.Info(sp.hf)
		if !ok {
			set.Close()
			return nil, fmt.Errorf("%s: tensor %q is missing, but config.json (%s) implies it", dir, sp.hf, cfgPath)
		}
		file := set.Shard(sp.hf)
		if m := sp.mismatch(info.Shape, nil); m != "" {
			set.Close()
			return nil, fmt.Errorf("%s: tensor %q %s (config.json contradicts the tensors: %s)", file, sp.hf, m, cfgPath)
		}
		typ, ok := stTypes[info.DType]
		if !ok {
			set.Close()
			return nil, fmt.Errorf("%s: tensor %q: dtype %s is not supported (F32, F16 or BF16)", file, sp.hf, info.DType)
		}
		name := sp.hf
		s.byName[name] = len(s.tensors)
		s.tensors = append(s.tensors, tensor{spec: sp, typ: typ, file: file,
			open: func() (*io.SectionReader, error) { return set.Section(name) }})
	}
	return s, nil
}

var readableTypes = []gguf.Type{gguf.F32, gguf.F16, gguf.BF16, gguf.Q8_0}

func openGGUF(path string) (*Source, error) {
	g, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	cfg, err := configFromGGUF(g)
	if err != nil {
		g.Close()
		return nil, err
	}
	s := &Source{Path: path, GGUF: true, Config: cfg, gg: g, byName: map[string]int{}}
	want := specs(cfg)
	known := map[string]bool{}
	for _, sp := range want {
		known[sp.gg] = true
	}
	for _, t := range g.Tensors {
		if !known[t.Name] {
			g.Close()
			return nil, &gguf.FormatError{File: path, Tensor: t.Name, Msg: fmt.Sprintf("is not part of the qwen2 model the metadata describes (%s %d)", kBlocks, cfg.NumLayers)}
		}
	}
	for _, sp := range want {
		ti, ok := g.Tensor(sp.gg)
		if !ok {
			g.Close()
			return nil, &gguf.FormatError{File: path, Tensor: sp.gg, Msg: "missing, but the qwen2 metadata implies it"}
		}
		if m := sp.mismatch(ti.Shape(), ggufKeyOf); m != "" {
			g.Close()
			return nil, &gguf.FormatError{File: path, Tensor: sp.gg, Field: "dims", Msg: fmt.Sprintf("(as a row-major shape) %s: the metadata contradicts the tensor", m)}
		}
		if !slices.Contains(readableTypes, ti.Type) {
			g.Close()
			return nil, &gguf.FormatError{File: path, Tensor: sp.gg, Field: "type", Msg: fmt.Sprintf("%v is not supported (cir reads F32, F16, BF16 and Q8_0; convert the original checkpoint instead)", ti.Type)}
		}
		name := sp.gg
		s.byName[sp.hf] = len(s.tensors)
		s.tensors = append(s.tensors, tensor{spec: sp, typ: ti.Type, file: path,
			open: func() (*io.SectionReader, error) { return g.Section(name) }})
	}
	return s, nil
}

// vocab returns the source's tokenizer in GGUF terms (nil for a GGUF file without one).
func (s *Source) vocab() (*vocab, error) {
	if s.GGUF {
		return ggufVocab(s.gg)
	}
	return hfVocab(s.Path, s.Config)
}

// ReadF32 reads the tensor with the Hugging Face name into dst (exactly its element count),
// converting from its stored type (Q8_0 dequantized).
func (s *Source) ReadF32(name string, dst []float32) error {
	i, ok := s.byName[name]
	if !ok {
		return fmt.Errorf("%s: tensor %q: %w", s.Path, name, safetensors.ErrNotFound)
	}
	t := s.tensors[i]
	if int64(len(dst)) != t.elems() {
		return fmt.Errorf("%s: tensor %q: destination holds %d values, the tensor %d", s.Path, name, len(dst), t.elems())
	}
	sec, err := t.open()
	if err != nil {
		return err
	}
	buf := make([]byte, t.typ.Bytes(min(t.elems(), chunkElems)))
	for off := int64(0); off < t.elems(); off += chunkElems {
		k := min(chunkElems, t.elems()-off)
		raw := buf[:t.typ.Bytes(k)]
		if _, err := io.ReadFull(sec, raw); err != nil {
			return t.readErr(err)
		}
		if err := gguf.Decode(dst[off:off+k], t.typ, raw); err != nil {
			return err
		}
	}
	return nil
}

func (t tensor) readErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = fmt.Errorf("file ends inside the tensor (truncated after it was opened?): %w", err)
	}
	return fmt.Errorf("%s: tensor %q: %w", t.file, t.hf, err)
}
