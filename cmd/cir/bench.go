package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"cir/engine"
	"cir/model"
)

// python is Debian's interpreter, the one with PyTorch.
const python = "/usr/bin/python3"

func cmdBench(e *env, args []string) error {
	if len(args) == 0 {
		return errorf("cir bench train|decode --help", "bench: which benchmark?")
	}
	switch args[0] {
	case "train":
		return benchTrain(e, args[1:])
	case "decode":
		return benchDecode(e, args[1:])
	}
	return errorf("cir bench train|decode --help", "bench: unknown benchmark %q", args[0])
}

// runReference runs the PyTorch reference script with args and returns the tokens_per_s of
// its last line, a JSON object.
func runReference(args ...string) (float64, error) {
	dir, err := os.MkdirTemp("", "cir-ref")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "qwen2_ref.py")
	if err := os.WriteFile(script, model.ReferenceScript, 0o644); err != nil {
		return 0, err
	}
	var out, errb bytes.Buffer
	cmd := exec.Command(python, append([]string{script}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("PyTorch reference: %v: %s", err, lastLine(errb.Bytes()))
	}
	var res struct {
		TokensPerS float64 `json:"tokens_per_s"`
	}
	if err := json.Unmarshal(lastLine(out.Bytes()), &res); err != nil || res.TokensPerS <= 0 {
		return 0, fmt.Errorf("PyTorch reference printed %q", lastLine(out.Bytes()))
	}
	return res.TokensPerS, nil
}

// compareReference times the PyTorch reference and adds its tokens/s and the ratio to res; a
// missing PyTorch is reported on stderr, not an error.
func (e *env) compareReference(res map[string]any, args ...string) {
	r, err := runReference(args...)
	if err != nil {
		fmt.Fprintf(e.stderr, "skipping the PyTorch comparison: %v\n", err)
		return
	}
	res["torch_tokens_per_s"] = r
	res["ratio"] = res["tokens_per_s"].(float64) / r
}

func lastLine(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
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
	opt, err := m.NewAdamW()
	if err != nil {
		return err
	}
	defer opt.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	seqs := make([][]int32, *B)
	dlogp := make([][]float32, *B)
	for i := range seqs {
		seqs[i] = make([]int32, *T)
		for j := range seqs[i] {
			seqs[i][j] = int32(rng.IntN(m.Cfg.VocabSize))
		}
		dlogp[i] = make([]float32, *T-1)
		for j := range dlogp[i] {
			dlogp[i][j] = -1 / float32(*B*(*T-1))
		}
	}
	step := func() error {
		m.ZeroGrad()
		if _, _, err := m.Forward(seqs); err != nil {
			return err
		}
		if err := m.Backward(dlogp, nil); err != nil {
			return err
		}
		_, err := m.Update(opt, model.OptimStep{LR: 1e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, ClipNorm: 1})
		return err
	}
	if err := step(); err != nil {
		return err
	}
	t0 := time.Now()
	for i := 0; i < *steps; i++ {
		if err := step(); err != nil {
			return err
		}
	}
	dt := time.Since(t0).Seconds() / float64(*steps)
	res := map[string]any{"device": b.Device().String(), "params": m.NumParams(), "batch": *B, "seq": *T,
		"tokens_per_s": float64(*B**T) / dt, "step_ms": dt * 1e3}
	if *ref && b.Device().Kind == engine.CPU {
		e.compareReference(res, "bench-train", *cfgPath, strconv.Itoa(*B), strconv.Itoa(*T), fs.Lookup("threads").Value.String(), strconv.Itoa(*steps))
	}
	return json.NewEncoder(e.stdout).Encode(res)
}

func benchDecode(e *env, args []string) error {
	fs := e.flags("bench")
	cfgPath := fs.String("config", "", "model config.json")
	B := fs.Int("batch", 1, "sequences decoded together")
	n := fs.Int("new", 64, "tokens decoded per sequence after a 16-token prompt")
	ref := fs.Bool("torch", true, "also time the PyTorch reference on the same machine")
	m, b, err := benchModel(e, fs, args, cfgPath, e.deviceFlags(fs))
	if err != nil {
		return err
	}
	defer b.Close()
	defer m.Close()
	const prompt = 16
	d, err := m.NewDecoder(*B, prompt+*n+1)
	if err != nil {
		return err
	}
	defer d.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	feeds := make([]model.Feed, *B)
	for i := range feeds {
		toks := make([]int32, prompt)
		for j := range toks {
			toks[j] = int32(rng.IntN(m.Cfg.VocabSize))
		}
		feeds[i] = model.Feed{Slot: i, Pos: 0, Tokens: toks}
	}
	greedy := engine.SampleParams{Temperature: 0, TopP: 1}
	out, err := d.Step(feeds, greedy)
	if err != nil {
		return err
	}
	t0 := time.Now()
	for s := 0; s < *n; s++ {
		for i := range feeds {
			feeds[i] = model.Feed{Slot: i, Pos: prompt + s, Tokens: []int32{out[i].Token}}
		}
		if out, err = d.Step(feeds, greedy); err != nil {
			return err
		}
	}
	dt := time.Since(t0).Seconds()
	res := map[string]any{"device": b.Device().String(), "params": m.NumParams(), "batch": *B,
		"tokens_per_s": float64(*B**n) / dt}
	if *ref && b.Device().Kind == engine.CPU {
		e.compareReference(res, "bench-decode", *cfgPath, strconv.Itoa(*B), strconv.Itoa(*n), fs.Lookup("threads").Value.String())
	}
	return json.NewEncoder(e.stdout).Encode(res)
}
