package model

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"cir/engine"
	"cir/model/safetensors"
)

// ErrCheckpoint is wrapped by every error about a checkpoint's contents (missing, extra or
// misshapen tensors).
var ErrCheckpoint = errors.New("checkpoint")

// Load reads an HF model directory (config.json and model.safetensors or a sharded
// model.safetensors.index.json; F32, F16 or BF16 tensors) onto b. Errors name the file and the
// field or tensor at fault.
func Load(dir string, b engine.Backend) (*Model, error) {
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	defer set.Close()
	m, err := New(cfg, b)
	if err != nil {
		return nil, err
	}
	if err := m.load(set, dir); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// LoadWeights replaces m's parameters with those of the HF model directory dir, which must
// match m's config.
func (m *Model) LoadWeights(dir string) error {
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		return err
	}
	defer set.Close()
	return m.load(set, dir)
}

func (m *Model) load(set *safetensors.Set, dir string) error {
	want := m.Params.Named(m.Cfg)
	known := make(map[string]bool, len(want))
	for _, nt := range want {
		known[nt.Name] = true
	}
	for _, name := range set.Names() {
		if known[name] || (m.Cfg.TieWordEmbeddings && name == "lm_head.weight") {
			continue
		}
		return fmt.Errorf("%s: unexpected tensor %q for this config: %w", dir, name, ErrCheckpoint)
	}
	var buf []float32
	for _, nt := range want {
		info, ok := set.Info(nt.Name)
		if !ok {
			return fmt.Errorf("%s: tensor %q missing: %w", dir, nt.Name, ErrCheckpoint)
		}
		shape := make([]int, len(info.Shape))
		for i, s := range info.Shape {
			shape[i] = int(s)
		}
		if !slices.Equal(shape, nt.Tensor.Shape) {
			return fmt.Errorf("%s: tensor %q has shape %v, the config wants %v: %w", dir, nt.Name, shape, nt.Tensor.Shape, ErrCheckpoint)
		}
		buf = slices.Grow(buf[:0], nt.Tensor.Len())[:nt.Tensor.Len()]
		if err := set.ReadF32(nt.Name, buf); err != nil {
			return err
		}
		m.B.Upload(nt.Tensor, engine.HostF32(buf, nt.Tensor.Shape...))
	}
	return m.B.Sync()
}

// Save writes the model as an HF directory: config.json and model.safetensors in F32, written
// atomically.
func (m *Model) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := m.Cfg.Save(filepath.Join(dir, "config.json")); err != nil {
		return err
	}
	return WriteTensors(filepath.Join(dir, "model.safetensors"), m.B, m.Params.Named(m.Cfg))
}

// WriteTensors downloads the named tensors from b and writes them as one F32 safetensors file.
func WriteTensors(path string, b engine.Backend, named []Named) error {
	ts := make([]safetensors.Tensor, 0, len(named))
	for _, nt := range named {
		x := make([]float32, nt.Tensor.Len())
		b.Download(engine.HostF32(x, nt.Tensor.Shape...), nt.Tensor)
		shape := make([]int64, len(nt.Tensor.Shape))
		for i, s := range nt.Tensor.Shape {
			shape[i] = int64(s)
		}
		ts = append(ts, safetensors.F32Tensor(nt.Name, shape, x))
	}
	if err := b.Sync(); err != nil {
		return err
	}
	return safetensors.Write(path, ts, map[string]string{"format": "pt"})
}
