package model

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cir/engine"
	"cir/engine/cpu"
	"cir/model/safetensors"
)

func hostParams(t *testing.T, m *Model) []float32 {
	t.Helper()
	x := make([]float32, m.Params.All.Len())
	m.B.Download(engine.HostF32(x, len(x)), m.Params.All)
	return x
}

// TestSaveLoadRoundTrip: Save then Load gives bit-identical parameters, from a single file and
// from a sharded checkpoint.
func TestSaveLoadRoundTrip(t *testing.T) {
	for ci := range parityConfigs {
		m := newTestModel(t, ci)
		dir := t.TempDir()
		if err := m.Save(dir); err != nil {
			t.Fatal(err)
		}
		m2, err := Load(dir, m.B)
		if err != nil {
			t.Fatal(err)
		}
		a, b := hostParams(t, m), hostParams(t, m2)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s: element %d: saved %g, loaded %g", parityConfigs[ci].name, i, a[i], b[i])
			}
		}
		m2.Close()

		// The same tensors as a sharded checkpoint.
		sharded := t.TempDir()
		f, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		var ts []safetensors.Tensor
		for _, n := range f.Names() {
			info, _ := f.Info(n)
			x := make([]float32, info.Elems())
			if err := f.ReadF32(n, x); err != nil {
				t.Fatal(err)
			}
			ts = append(ts, safetensors.F32Tensor(n, info.Shape, x))
		}
		f.Close()
		if err := safetensors.WriteSharded(sharded, ts, 4096); err != nil {
			t.Fatal(err)
		}
		cfg, _ := os.ReadFile(filepath.Join(dir, "config.json"))
		os.WriteFile(filepath.Join(sharded, "config.json"), cfg, 0o644)
		m3, err := Load(sharded, m.B)
		if err != nil {
			t.Fatal(err)
		}
		c := hostParams(t, m3)
		for i := range a {
			if a[i] != c[i] {
				t.Fatalf("%s sharded: element %d: saved %g, loaded %g", parityConfigs[ci].name, i, a[i], c[i])
			}
		}
		m3.Close()
	}
}

// TestLoadErrors: a checkpoint that does not fit its config is an error naming the tensor.
func TestLoadErrors(t *testing.T) {
	m := newTestModel(t, 0)
	named := m.Params.Named(m.Cfg)
	write := func(t *testing.T, ts []safetensors.Tensor) string {
		dir := t.TempDir()
		if err := m.Cfg.Save(filepath.Join(dir, "config.json")); err != nil {
			t.Fatal(err)
		}
		if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), ts, nil); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	tensors := func(skip string, extra ...safetensors.Tensor) []safetensors.Tensor {
		var ts []safetensors.Tensor
		for _, nt := range named {
			if nt.Name == skip {
				continue
			}
			shape := []int64{}
			for _, s := range nt.Tensor.Shape {
				shape = append(shape, int64(s))
			}
			ts = append(ts, safetensors.F32Tensor(nt.Name, shape, make([]float32, nt.Tensor.Len())))
		}
		return append(ts, extra...)
	}
	cases := []struct {
		name, want string
		ts         []safetensors.Tensor
	}{
		{"missing", "model.layers.1.mlp.up_proj.weight", tensors("model.layers.1.mlp.up_proj.weight")},
		{"extra", "model.layers.9.foo", tensors("", safetensors.F32Tensor("model.layers.9.foo", []int64{2}, []float32{1, 2}))},
		{"shape", "model.norm.weight", append(tensors("model.norm.weight"), safetensors.F32Tensor("model.norm.weight", []int64{3}, []float32{1, 2, 3}))},
	}
	b := cpu.New(1)
	defer b.Close()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(write(t, c.ts), b)
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrCheckpoint) {
				t.Fatalf("got %v, want an ErrCheckpoint naming %s", err, c.want)
			}
		})
	}
	t.Run("malformed config", func(t *testing.T) {
		dir := write(t, tensors(""))
		os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"hidden_size": "wide"}`), 0o644)
		if _, err := Load(dir, b); err == nil || !strings.Contains(err.Error(), "hidden_size") {
			t.Fatalf("got %v, want an error naming hidden_size", err)
		}
	})
}
