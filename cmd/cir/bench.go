package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"cir/bench"
	"cir/engine"
	"cir/engine/cpu"
	"cir/model"
)

const benchHint = "cir bench all|gemm|train|decode --help"

func cmdBench(e *env, args []string) error {
	if len(args) == 0 {
		return errorf(benchHint, "bench: which benchmark?")
	}
	switch args[0] {
	case "all":
		return benchAll(e, args[1:])
	case "gemm":
		return benchGEMM(e, args[1:])
	case "train":
		return benchTrain(e, args[1:])
	case "decode":
		return benchDecode(e, args[1:])
	}
	return errorf(benchHint, "bench: unknown benchmark %q", args[0])
}

// benchModel parses a benchmark's flags (--config is required) and builds a randomly
// initialised model of that config on the chosen backend.
func benchModel(e *env, fs *flag.FlagSet, args []string, cfgPath *string, open func() (engine.Backend, error)) (*model.Model, engine.Backend, error) {
	if err := parse(fs, args); err != nil {
		return nil, nil, err
	}
	if err := required(fs, "config"); err != nil {
		return nil, nil, err
	}
	cfg, err := model.LoadConfig(*cfgPath)
	if err != nil {
		return nil, nil, err
	}
	b, err := open()
	if err != nil {
		return nil, nil, err
	}
	m, err := model.New(cfg, b)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	m.Init(1, 0.02)
	m.Log = e.stderr
	return m, b, nil
}

// compareTorch times the PyTorch reference with ref and adds its tokens/s and the ratio to res;
// a missing PyTorch is reported on stderr, not an error.
func (e *env) compareTorch(res map[string]any, ref func() (float64, error)) {
	r, err := ref()
	if err != nil {
		fmt.Fprintf(e.stderr, "skipping the PyTorch comparison: %v\n", err)
		return
	}
	res["torch_tokens_per_s"] = r
	res["torch_setting"] = bench.TorchSetting()
	res["ratio"] = res["tokens_per_s"].(float64) / r
}

func benchTrain(e *env, args []string) error {
	fs := e.flags("bench")
	cfgPath := fs.String("config", "", "model config.json")
	B := fs.Int("batch", 4, "sequences a step")
	T := fs.Int("seq", 128, "tokens a sequence")
	steps := fs.Int("steps", 10, "timed steps after one warm-up step")
	ref := fs.Bool("torch", true, "also time the PyTorch reference on the same machine")
	m, b, err := benchModel(e, fs, args, cfgPath, e.deviceFlags(fs))
	if err != nil {
		return err
	}
	defer b.Close()
	defer m.Close()
	if *B < 1 || *T < 2 || *steps < 1 {
		return errorf("see 'cir bench train --help'", "bench train: --batch ≥ 1, --seq ≥ 2 and --steps ≥ 1, got %d, %d, %d", *B, *T, *steps)
	}
	r, err := bench.Train(m, *B, *T, *steps)
	if err != nil {
		return err
	}
	res := map[string]any{"device": b.Device().String(), "params": m.NumParams(), "batch": *B, "seq": *T,
		"tokens_per_s": r.TokensPerS, "step_ms": r.StepMs}
	if *ref && b.Device().Kind == engine.CPU {
		e.compareTorch(res, func() (float64, error) { return bench.TorchTrain(*cfgPath, *B, *T, threadsFlag(fs), *steps) })
	}
	return json.NewEncoder(e.stdout).Encode(res)
}

func benchDecode(e *env, args []string) error {
	fs := e.flags("bench")
	cfgPath := fs.String("config", "", "model config.json")
	B := fs.Int("batch", 1, "sequences decoded together")
	n := fs.Int("new", 64, fmt.Sprintf("tokens decoded per sequence after a %d-token prompt", bench.DecodePrompt))
	ref := fs.Bool("torch", true, "also time the PyTorch reference on the same machine")
	m, b, err := benchModel(e, fs, args, cfgPath, e.deviceFlags(fs))
	if err != nil {
		return err
	}
	defer b.Close()
	defer m.Close()
	if *B < 1 || *n < 1 {
		return errorf("see 'cir bench decode --help'", "bench decode: --batch and --new must be ≥ 1, got %d and %d", *B, *n)
	}
	tps, err := bench.Decode(m, *B, *n)
	if err != nil {
		return err
	}
	res := map[string]any{"device": b.Device().String(), "params": m.NumParams(), "batch": *B, "tokens_per_s": tps}
	if *ref && b.Device().Kind == engine.CPU {
		e.compareTorch(res, func() (float64, error) { return bench.TorchDecode(*cfgPath, *B, *n, threadsFlag(fs)) })
	}
	return json.NewEncoder(e.stdout).Encode(res)
}

// gemmLayerJSON is one layer of `cir bench gemm`'s output.
type gemmLayerJSON struct {
	Name        string  `json:"name"`
	N           int     `json:"n"`
	C           int     `json:"c"`
	OC          int     `json:"oc"`
	FwdGFLOPS   float64 `json:"forward_gflops"`
	BwdGFLOPS   float64 `json:"backward_gflops"`
	FwdOfPeak   float64 `json:"forward_pct_of_peak,omitempty"`
	BwdOfPeak   float64 `json:"backward_pct_of_peak,omitempty"`
	PerForwards int     `json:"per_forward"`
}

func benchGEMM(e *env, args []string) error {
	fs := e.flags("bench")
	cfgPath := fs.String("config", "", "model config.json whose linear layers are measured")
	tokens := fs.Int("tokens", 512, "tokens a batch (N of every GEMM)")
	open := e.deviceFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "config"); err != nil {
		return err
	}
	if *tokens < 1 {
		return errorf("see 'cir bench gemm --help'", "bench gemm: --tokens must be ≥ 1, got %d", *tokens)
	}
	cfg, err := model.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	b, err := open()
	if err != nil {
		return err
	}
	defer b.Close()
	label := strings.TrimSuffix(filepath.Base(*cfgPath), ".json")
	_, res, peak, err := bench.GEMMRows(b, label, *cfgPath, cfg, *tokens, threadsFlag(fs), false)
	if err != nil {
		return err
	}
	pct := func(v float64) float64 {
		if peak == 0 {
			return 0
		}
		return 100 * v / peak
	}
	threads := threadsFlag(fs)
	out := map[string]any{"device": b.Device().String(), "threads": threads, "config": *cfgPath, "tokens": *tokens,
		"peak_gflops": peak / 1e9, "step_gflops": bench.StepRate(res) / 1e9, "step_pct_of_peak": pct(bench.StepRate(res))}
	var layers []gemmLayerJSON
	fmt.Fprintf(e.stderr, "%-8s %18s %9s %9s", "layer", "N×OC×C", "fwd GF/s", "bwd GF/s")
	if peak > 0 {
		fmt.Fprintf(e.stderr, "  (of the %.0f GFLOP/s FMA peak of %d threads)", peak/1e9, threads)
	}
	fmt.Fprintln(e.stderr)
	for _, r := range res {
		layers = append(layers, gemmLayerJSON{r.Name, r.N, r.C, r.OC, r.Forward / 1e9, r.Backward / 1e9, pct(r.Forward), pct(r.Backward), r.PerLayer})
		fmt.Fprintf(e.stderr, "%-8s %18s %9.1f %9.1f", r.Name, fmt.Sprintf("%d×%d×%d", r.N, r.OC, r.C), r.Forward/1e9, r.Backward/1e9)
		if peak > 0 {
			fmt.Fprintf(e.stderr, "  %3.0f%% %3.0f%%", pct(r.Forward), pct(r.Backward))
		}
		fmt.Fprintln(e.stderr)
	}
	out["layers"] = layers
	if b.Device().Kind == engine.CPU {
		if k, err := cpu.GEMMKernels(); err == nil {
			out["kernels"] = k.String()
		}
	}
	return json.NewEncoder(e.stdout).Encode(out)
}

func benchAll(e *env, args []string) error {
	fs := e.flags("bench")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file")
	mdOut := fs.String("md", "", "also write the report as Markdown to this file (the README's performance section)")
	only := fs.String("only", "", "comma-separated sections to run, of "+strings.Join(bench.Sections, ","))
	src := fs.String("src", ".", "cir's source tree: configs and the packages' benchmarks")
	rounds := fs.Int("rounds", 2, "alternating cir/PyTorch rounds of the model benchmarks (best of each kept)")
	threads := fs.Int("threads", runtime.NumCPU(), "CPU threads for cir and PyTorch")
	if err := parse(fs, args); err != nil {
		return err
	}
	o := bench.Options{Threads: *threads, Rounds: *rounds, Log: e.stderr}
	if *only != "" {
		for _, s := range strings.Split(*only, ",") {
			if !slices.Contains(bench.Sections, s) {
				return errorf("sections: "+strings.Join(bench.Sections, ","), "bench all: unknown section %q", s)
			}
			o.Only = append(o.Only, s)
		}
	}
	root, err := bench.Source(*src)
	if err != nil {
		return errorf("run it in a checkout of cir or pass --src", "bench all: %v", err)
	}
	o.Src = root
	if *threads < 1 {
		return errorf("see 'cir bench all --help'", "bench all: --threads must be ≥ 1, got %d", *threads)
	}
	if _, err := cpu.GEMMKernels(); err != nil {
		return errorf("make deps-run installs it", "%v", err)
	}
	o.CPU = func() (engine.Backend, error) { return cpu.New(*threads), nil }
	gpu := "none: this binary was built without CUDA"
	if openCUDA != nil {
		o.GPU = func() (engine.Backend, error) { return openCUDA(0) }
		if b, err := openCUDA(0); err != nil {
			gpu = "none usable: " + err.Error()
		} else {
			gpu = b.Device().String()
			b.Close()
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep := bench.All(ctx, o, gpu)
	if *jsonOut != "" {
		if err := writeFileWith(*jsonOut, rep.WriteJSON); err != nil {
			return err
		}
	}
	if *mdOut != "" {
		if err := writeFileWith(*mdOut, rep.WriteMarkdown); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bench all: interrupted")
	}
	return rep.WriteMarkdown(e.stdout)
}

// threadsFlag is the value of the --threads flag deviceFlags registered on fs.
func threadsFlag(fs *flag.FlagSet) int {
	return fs.Lookup("threads").Value.(flag.Getter).Get().(int)
}

// writeFileWith writes path through write, replacing it only once the whole file is written.
func writeFileWith(path string, write func(w io.Writer) error) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
