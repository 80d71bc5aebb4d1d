package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"cir/engine"
	"cir/engine/cpu"
	"cir/model"
	"cir/tokenizer"
)

func cmdInit(e *env, args []string) error {
	fs := e.flags("init")
	cfgPath := fs.String("config", "", "model config.json (HF Qwen2 fields)")
	seed := fs.Uint64("seed", 0, "random seed")
	out := fs.String("out", "", "output model directory")
	std := fs.Float64("init-std", 0.02, "standard deviation of the initial weights")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "config", "out"); err != nil {
		return err
	}
	cfg, err := model.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	b := cpu.New(0)
	defer b.Close()
	m, err := model.New(cfg, b)
	if err != nil {
		return err
	}
	defer m.Close()
	m.Init(*seed, *std)
	if err := m.Save(*out); err != nil {
		return err
	}
	tok := tokenizer.NewByte()
	if _, err := os.Stat(filepath.Join(*out, "tokenizer.json")); os.IsNotExist(err) && tok.VocabSize() <= cfg.VocabSize {
		if err := tok.Save(*out); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stderr, "wrote %s: %.2fM parameters\n", *out, float64(m.NumParams())/1e6)
	return nil
}

// readTokenLines reads JSONL lines {"tokens":[...]} and names the line of any error.
func readTokenLines(path string, vocab int) ([][]int32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var seqs [][]int32
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var rec struct {
			Tokens *[]int32 `json:"tokens"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		if rec.Tokens == nil || len(*rec.Tokens) < 2 {
			return nil, fmt.Errorf("%s:%d: want {\"tokens\":[...]} with at least two ids", path, line)
		}
		for i, t := range *rec.Tokens {
			if t < 0 || int(t) >= vocab {
				return nil, fmt.Errorf("%s:%d: token %d: id %d outside the vocabulary of %d", path, line, i, t, vocab)
			}
		}
		seqs = append(seqs, *rec.Tokens)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(seqs) == 0 {
		return nil, fmt.Errorf("%s: no sequences", path)
	}
	return seqs, nil
}

// batches splits seqs into consecutive groups of at most maxTokens tokens (a longer sequence
// goes alone).
func batches(seqs [][]int32, maxTokens int) [][][]int32 {
	var out [][][]int32
	lo, n := 0, 0
	for i, s := range seqs {
		if i > lo && n+len(s) > maxTokens {
			out = append(out, seqs[lo:i])
			lo, n = i, 0
		}
		n += len(s)
	}
	return append(out, seqs[lo:])
}

// loadModel opens the backend and loads a model directory onto it.
func loadModel(e *env, dir string, open func() (engine.Backend, error)) (*model.Model, engine.Backend, error) {
	b, err := open()
	if err != nil {
		return nil, nil, err
	}
	m, err := model.Load(dir, b)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return m, b, nil
}

// loadWithLines loads a model and reads the token lines of input against its vocabulary.
func loadWithLines(e *env, dir, input string, open func() (engine.Backend, error)) (*model.Model, engine.Backend, [][]int32, error) {
	m, b, err := loadModel(e, dir, open)
	if err != nil {
		return nil, nil, nil, err
	}
	seqs, err := readTokenLines(input, m.Cfg.VocabSize)
	if err != nil {
		m.Close()
		b.Close()
		return nil, nil, nil, err
	}
	return m, b, seqs, nil
}

func cmdLogprobs(e *env, args []string) error {
	fs := e.flags("logprobs")
	dir := fs.String("model", "", "model directory")
	input := fs.String("input", "", "JSONL file of {\"tokens\":[...]}")
	maxTok := fs.Int("batch-tokens", 4096, "tokens per forward pass")
	open := e.deviceFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "model", "input"); err != nil {
		return err
	}
	m, b, seqs, err := loadWithLines(e, *dir, *input, open)
	if err != nil {
		return err
	}
	defer b.Close()
	defer m.Close()
	w := bufio.NewWriter(e.stdout)
	defer w.Flush()
	for _, batch := range batches(seqs, *maxTok) {
		logp, _, err := m.Forward(batch)
		if err != nil {
			return err
		}
		for _, lp := range logp {
			loss := 0.0
			for _, x := range lp {
				loss -= float64(x)
			}
			rec := struct {
				Logprobs []float32 `json:"logprobs"`
				Loss     float64   `json:"loss"`
			}{lp, loss / float64(len(lp))}
			if err := json.NewEncoder(w).Encode(rec); err != nil {
				return err
			}
		}
	}
	return nil
}

func cmdGrad(e *env, args []string) error {
	fs := e.flags("grad")
	dir := fs.String("model", "", "model directory")
	input := fs.String("input", "", "JSONL file of {\"tokens\":[...]}")
	out := fs.String("out", "", "output safetensors file of gradients, HF names")
	maxTok := fs.Int("batch-tokens", 4096, "tokens per forward pass")
	open := e.deviceFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "model", "input", "out"); err != nil {
		return err
	}
	m, b, seqs, err := loadWithLines(e, *dir, *input, open)
	if err != nil {
		return err
	}
	defer b.Close()
	defer m.Close()
	loss, err := meanLossGrad(m, seqs, *maxTok)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "loss %.6f\n", loss)
	return model.WriteTensors(*out, b, m.Grads.Named(m.Cfg))
}

// meanLossGrad leaves in m.Grads the gradient of the mean token cross-entropy over every
// predicted token of seqs, and returns that loss.
func meanLossGrad(m *model.Model, seqs [][]int32, maxTokens int) (float64, error) {
	total := 0
	for _, s := range seqs {
		total += len(s) - 1
	}
	if err := m.Reserve(maxLen(seqs, maxTokens)); err != nil {
		return 0, err
	}
	m.ZeroGrad()
	loss := 0.0
	for _, batch := range batches(seqs, maxTokens) {
		logp, _, err := m.Forward(batch)
		if err != nil {
			return 0, err
		}
		d := make([][]float32, len(logp))
		for i, lp := range logp {
			d[i] = make([]float32, len(lp))
			for j, x := range lp {
				loss -= float64(x)
				d[i][j] = float32(-1 / float64(total))
			}
		}
		if err := m.Backward(d, nil); err != nil {
			return 0, err
		}
	}
	return loss / float64(total), nil
}

// maxLen is the largest number of tokens batches(seqs, maxTokens) puts in one batch.
func maxLen(seqs [][]int32, maxTokens int) int {
	n := 0
	for _, b := range batches(seqs, maxTokens) {
		t := 0
		for _, s := range b {
			t += len(s)
		}
		n = max(n, t)
	}
	return n
}
