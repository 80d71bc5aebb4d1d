package bench

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"cir/engine"
	"cir/model"
)

// Sections are the parts of a full run, in order.
var Sections = []string{"gemm", "train", "decode", "tokenizer", "checker", "sandbox", "rollout", "convert", "gpu"}

// Options configure All.
type Options struct {
	Threads int      // CPU threads for cir and for PyTorch
	Src     string   // cir's source tree (for configs and the package benchmarks)
	Only    []string // sections to run (all when empty)
	Rounds  int      // cir/PyTorch rounds of the model benchmarks, best of each kept (default 2)
	Log     io.Writer
	// CPU opens the CPU backend on Threads threads. GPU opens the first GPU; nil in a binary
	// built without CUDA.
	CPU func() (engine.Backend, error)
	GPU func() (engine.Backend, error)
}

func (o *Options) logf(format string, a ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", a...)
	}
}

func (o *Options) want(section string) bool {
	return len(o.Only) == 0 || slices.Contains(o.Only, section)
}

// The configurations measured: the benchmark model and the default job's toy model.
const (
	BenchConfig = "configs/bench-20m.json"
	ToyConfig   = "configs/toy-model.json"
	GPUConfig   = "configs/qwen2.5-0.5b.json"
)

// All runs every benchmark section of o and returns the report; a section that cannot run
// gives rows that say why, never an error. gpu describes the GPU for the report.
func All(ctx context.Context, o Options, gpu string) *Report {
	if o.Rounds <= 0 {
		o.Rounds = 2
	}
	rep := &Report{Machine: Describe(o.Threads, gpu)}
	if o.want("train") || o.want("decode") {
		rep.Machine.PyTorch = TorchSetting()
	} else {
		rep.Machine.PyTorch = "not run"
	}
	add := func(rows ...Row) { rep.Rows = append(rep.Rows, rows...) }
	cfgPath := func(rel string) string { return filepath.Join(o.Src, rel) }
	for _, s := range Sections {
		if !o.want(s) || ctx.Err() != nil {
			continue
		}
		o.logf("bench: %s", s)
		switch s {
		case "gemm":
			add(o.gemm(cfgPath)...)
		case "train":
			add(o.train(cfgPath)...)
		case "decode":
			add(o.decode(cfgPath)...)
		case "tokenizer", "checker", "sandbox", "rollout":
			add(o.pkgBench(ctx, s)...)
		case "convert":
			add(o.convertRows(cfgPath)...)
		case "gpu":
			add(o.gpu(cfgPath)...)
		}
	}
	rep.Machine.End()
	return rep
}

// withModel opens a backend with open, builds a randomly initialised model of the config at
// path and runs f on it.
func withModel(open func() (engine.Backend, error), path string, f func(m *model.Model) error) error {
	cfg, err := model.LoadConfig(path)
	if err != nil {
		return err
	}
	b, err := open()
	if err != nil {
		return err
	}
	defer b.Close()
	m, err := model.New(cfg, b)
	if err != nil {
		return err
	}
	defer m.Close()
	m.Init(1, 0.02)
	return f(m)
}

// describe names a model config for a row.
func describe(name string, c model.Config, params int64) string {
	return fmt.Sprintf("%s Qwen2 (%.1fM params: hidden %d, %d layers, %d/%d heads, vocab %d)",
		name, float64(params)/1e6, c.HiddenSize, c.NumLayers, c.NumHeads, c.NumKVHeads, c.VocabSize)
}

func failRow(name, what string, err error) Row {
	return Row{Name: name, What: what, Err: err.Error()}
}

func (o *Options) gemm(cfgPath func(string) string) []Row {
	var rows []Row
	for _, c := range []struct {
		label, path string
		tokens      int
		perLayer    bool
	}{{"20M model", BenchConfig, 512, true}, {"toy model", ToyConfig, 2048, false}} {
		cfg, err := model.LoadConfig(cfgPath(c.path))
		if err != nil {
			rows = append(rows, failRow("gemm/"+c.label, "GEMMs, "+c.label, err))
			continue
		}
		b, err := o.CPU()
		if err != nil {
			rows = append(rows, failRow("gemm/"+c.label, "GEMMs, "+c.label, err))
			continue
		}
		r, _, _, err := GEMMRows(b, c.label, c.path, cfg, c.tokens, o.Threads, c.perLayer)
		b.Close()
		if err != nil {
			rows = append(rows, failRow("gemm/"+c.label, "GEMMs, "+c.label, err))
			continue
		}
		rows = append(rows, r...)
	}
	return rows
}

// pair times cir (f) and the PyTorch reference (ref) in alternating rounds and keeps the best
// of each, so that a busy spell of the machine does not land on one side only.
func (o *Options) pair(f, ref func() (float64, error)) (cir, torch float64, cirErr, torchErr error) {
	for r := 0; r < o.Rounds; r++ {
		if v, err := f(); err != nil {
			cirErr = err
		} else {
			cir = max(cir, v)
		}
		if v, err := ref(); err != nil {
			torchErr = err
		} else {
			torch = max(torch, v)
		}
	}
	if cir > 0 {
		cirErr = nil
	}
	if torch > 0 {
		torchErr = nil
	}
	return
}

// modelRow fills a row of cir's tokens/s against PyTorch's.
func modelRow(name, what, cmd string, cir, torch float64, cirErr, torchErr error) Row {
	row := Row{Name: name, What: what, Command: cmd, Value: cir, Unit: "tokens/s"}
	if cirErr != nil {
		row.Err = cirErr.Error()
		return row
	}
	if torchErr != nil {
		row.Ref = "PyTorch: " + torchErr.Error()
		return row
	}
	row.Ref, row.RefValue, row.Ratio = "PyTorch fp32", torch, cir/torch
	return row
}

func (o *Options) train(cfgPath func(string) string) []Row {
	var rows []Row
	for _, c := range []struct {
		name, path  string
		B, T, steps int
	}{{"20M", BenchConfig, 4, 128, 10}, {"toy", ToyConfig, 16, 128, 20}} {
		cmd := fmt.Sprintf("cir bench train --config %s --batch %d --seq %d --threads %d", c.path, c.B, c.T, o.Threads)
		what := ""
		cir, torch, cerr, terr := o.pair(func() (float64, error) {
			var tps float64
			err := withModel(o.CPU, cfgPath(c.path), func(m *model.Model) error {
				what = fmt.Sprintf("training step, %s, batch %d×%d, forward+backward+AdamW, %d threads",
					describe(c.name, m.Cfg, m.NumParams()), c.B, c.T, o.Threads)
				r, err := Train(m, c.B, c.T, c.steps)
				tps = r.TokensPerS
				return err
			})
			return tps, err
		}, func() (float64, error) {
			return TorchTrain(cfgPath(c.path), c.B, c.T, o.Threads, c.steps)
		})
		if what == "" {
			what = "training step, " + c.name
		}
		rows = append(rows, modelRow("train/"+c.name, what, cmd, cir, torch, cerr, terr))
	}
	return rows
}

func (o *Options) decode(cfgPath func(string) string) []Row {
	var rows []Row
	const n = 64
	for _, B := range []int{1, 16} {
		cmd := fmt.Sprintf("cir bench decode --config %s --batch %d --threads %d", BenchConfig, B, o.Threads)
		what := ""
		cir, torch, cerr, terr := o.pair(func() (float64, error) {
			var tps float64
			err := withModel(o.CPU, cfgPath(BenchConfig), func(m *model.Model) error {
				what = fmt.Sprintf("KV-cache decoding, %s, batch %d, %d tokens after a %d-token prompt, %d threads",
					describe("20M", m.Cfg, m.NumParams()), B, n, DecodePrompt, o.Threads)
				var err error
				tps, err = Decode(m, B, n)
				return err
			})
			return tps, err
		}, func() (float64, error) {
			return TorchDecode(cfgPath(BenchConfig), B, n, o.Threads)
		})
		if what == "" {
			what = fmt.Sprintf("KV-cache decoding, 20M, batch %d", B)
		}
		rows = append(rows, modelRow(fmt.Sprintf("decode/20M/B=%d", B), what, cmd, cir, torch, cerr, terr))
	}
	return rows
}

// gpu measures the GEMMs, a training step and decoding on the first GPU. Debian's PyTorch has
// no CUDA, so these rows have no reference measured here.
func (o *Options) gpu(cfgPath func(string) string) []Row {
	if o.GPU == nil {
		return []Row{{Name: "gpu", What: "GPU benchmarks", Skipped: "this binary was built without CUDA (make build with nvcc on PATH builds bin/cir-cuda)"}}
	}
	b, err := o.GPU()
	if err != nil {
		return []Row{{Name: "gpu", What: "GPU benchmarks", Skipped: "no usable GPU: " + err.Error()}}
	}
	b.Close()
	const noRef = "none measured here (Debian's PyTorch has no CUDA)"
	var rows []Row
	if cfg, err := model.LoadConfig(cfgPath(GPUConfig)); err != nil {
		rows = append(rows, failRow("gpu/gemm", "GPU GEMMs", err))
	} else if b, err := o.GPU(); err != nil {
		rows = append(rows, failRow("gpu/gemm", "GPU GEMMs", err))
	} else {
		r, _, _, err := GEMMRows(b, "Qwen2.5-0.5B", GPUConfig, cfg, 4096, o.Threads, true)
		b.Close()
		if err != nil {
			rows = append(rows, failRow("gpu/gemm", "GPU GEMMs", err))
		}
		for i := range r {
			r[i].Name, r[i].Ref = "gpu/"+r[i].Name, noRef
			r[i].Command = strings.Replace(r[i].Command, "--threads", "--device cuda:0 --threads", 1)
		}
		rows = append(rows, r...)
	}
	for _, c := range []struct {
		name, path  string
		B, T, steps int
	}{{"20M", BenchConfig, 4, 128, 10}, {"Qwen2.5-0.5B", GPUConfig, 1, 4096, 3}} {
		var row Row
		err := withModel(o.GPU, cfgPath(c.path), func(m *model.Model) error {
			r, err := Train(m, c.B, c.T, c.steps)
			row = Row{Name: "gpu/train/" + c.name, Value: r.TokensPerS, Unit: "tokens/s", Ref: noRef,
				What:    fmt.Sprintf("training step on the GPU, %s, batch %d×%d", describe(c.name, m.Cfg, m.NumParams()), c.B, c.T),
				Command: fmt.Sprintf("cir bench train --config %s --device cuda:0 --batch %d --seq %d --steps %d", c.path, c.B, c.T, c.steps)}
			return err
		})
		if err != nil {
			row = failRow("gpu/train/"+c.name, "training step on the GPU, "+c.name, err)
		}
		rows = append(rows, row)
	}
	for _, B := range []int{1, 64} {
		var row Row
		err := withModel(o.GPU, cfgPath(GPUConfig), func(m *model.Model) error {
			tps, err := Decode(m, B, 64)
			row = Row{Name: fmt.Sprintf("gpu/decode/B=%d", B), Value: tps, Unit: "tokens/s", Ref: noRef,
				What:    fmt.Sprintf("KV-cache decoding on the GPU, %s, batch %d", describe("Qwen2.5-0.5B", m.Cfg, m.NumParams()), B),
				Command: fmt.Sprintf("cir bench decode --config %s --device cuda:0 --batch %d", GPUConfig, B)}
			return err
		})
		if err != nil {
			row = failRow(fmt.Sprintf("gpu/decode/B=%d", B), "decoding on the GPU", err)
		}
		rows = append(rows, row)
	}
	return rows
}
