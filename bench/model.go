package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"cir/engine"
	"cir/engine/cpu"
	"cir/model"
)

// Python is Debian's interpreter, the one with PyTorch.
const Python = "/usr/bin/python3"

// TrainResult is the speed of training steps: forward, backward and AdamW on B sequences of T
// tokens.
type TrainResult struct {
	TokensPerS float64
	StepMs     float64
}

// Train times steps training steps of m (after one warm-up step) on random tokens.
func Train(m *model.Model, B, T, steps int) (TrainResult, error) {
	opt, err := m.NewAdamW()
	if err != nil {
		return TrainResult{}, err
	}
	defer opt.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	seqs := make([][]int32, B)
	dlogp := make([][]float32, B)
	for i := range seqs {
		seqs[i] = make([]int32, T)
		for j := range seqs[i] {
			seqs[i][j] = int32(rng.IntN(m.Cfg.VocabSize))
		}
		dlogp[i] = make([]float32, T-1)
		for j := range dlogp[i] {
			dlogp[i][j] = -1 / float32(B*(T-1))
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
		return TrainResult{}, err
	}
	t0 := time.Now()
	for i := 0; i < steps; i++ {
		if err := step(); err != nil {
			return TrainResult{}, err
		}
	}
	dt := time.Since(t0).Seconds() / float64(steps)
	return TrainResult{TokensPerS: float64(B*T) / dt, StepMs: dt * 1e3}, nil
}

// DecodePrompt is the prompt length of Decode.
const DecodePrompt = 16

// Decode times greedy KV-cache decoding of n tokens for B sequences after a 16-token prompt,
// and returns tokens per second.
func Decode(m *model.Model, B, n int) (float64, error) {
	d, err := m.NewDecoder(B, DecodePrompt+n+1)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	feeds := make([]model.Feed, B)
	for i := range feeds {
		toks := make([]int32, DecodePrompt)
		for j := range toks {
			toks[j] = int32(rng.IntN(m.Cfg.VocabSize))
		}
		feeds[i] = model.Feed{Slot: i, Pos: 0, Tokens: toks}
	}
	greedy := engine.SampleParams{Temperature: 0, TopP: 1}
	out, err := d.Step(feeds, greedy)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	for s := 0; s < n; s++ {
		for i := range feeds {
			feeds[i] = model.Feed{Slot: i, Pos: DecodePrompt + s, Tokens: []int32{out[i].Token}}
		}
		if out, err = d.Step(feeds, greedy); err != nil {
			return 0, err
		}
	}
	return float64(B*n) / time.Since(t0).Seconds(), nil
}

// TorchEnv is the environment of the PyTorch reference: its best setting here. Debian's
// PyTorch runs its GEMMs on Debian's OpenBLAS, whose own CPU detection falls back to SSE
// kernels on CPUs newer than it, so the reference gets the kernel set the CPU backend chose
// (measured best for it too: SkylakeX ahead of Haswell on AVX-512 CPUs).
func TorchEnv() []string {
	env := os.Environ()
	if k, err := cpu.GEMMKernels(); err == nil && k.Core != "" {
		env = append(env, "OPENBLAS_CORETYPE="+k.Core)
	}
	return env
}

// TorchSetting describes TorchEnv for reports, with PyTorch's version.
func TorchSetting() string {
	v := output(Python, "-c", "import torch; print(torch.__version__)")
	if k, err := cpu.GEMMKernels(); err == nil && k.Core != "" {
		v += ", OPENBLAS_CORETYPE=" + k.Core
	}
	return v
}

// Torch runs the PyTorch reference script (model.ReferenceScript) with args and returns the
// tokens_per_s of its last line, a JSON object.
func Torch(args ...string) (float64, error) {
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
	cmd := exec.Command(Python, append([]string{script}, args...)...)
	cmd.Stdout, cmd.Stderr, cmd.Env = &out, &errb, TorchEnv()
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

// TorchTrain times the reference's training step on the config at path.
func TorchTrain(cfgPath string, B, T, threads, steps int) (float64, error) {
	return Torch("bench-train", cfgPath, strconv.Itoa(B), strconv.Itoa(T), strconv.Itoa(threads), strconv.Itoa(steps))
}

// TorchDecode times the reference's KV-cache decoding on the config at path.
func TorchDecode(cfgPath string, B, n, threads int) (float64, error) {
	return Torch("bench-decode", cfgPath, strconv.Itoa(B), strconv.Itoa(n), strconv.Itoa(threads))
}

func lastLine(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}
