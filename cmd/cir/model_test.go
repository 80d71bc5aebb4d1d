package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cir/engine/cpu"
	"cir/model"
	"cir/model/safetensors"
)

func runCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, strings.NewReader(stdin), &o, &e)
	return o.String(), e.String(), code
}

// TestModelCommands: cir init, logprobs and grad on a small random model. logprobs agrees with
// the model's own forward, loss is the mean negative log-prob, grad names every HF tensor, and
// bad input is an error naming the line.
func TestModelCommands(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(`{"vocab_size": 300, "hidden_size": 32, "intermediate_size": 48,
		"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}`), 0o644)
	mdir := filepath.Join(dir, "m")
	if _, e, code := runCLI(t, "", "init", "--config", cfg, "--seed", "3", "--out", mdir); code != 0 {
		t.Fatalf("init: %s", e)
	}
	if _, err := os.Stat(filepath.Join(mdir, "cir_byte_tokenizer.json")); err != nil {
		t.Errorf("init wrote no byte tokenizer: %v", err)
	}
	in := filepath.Join(dir, "in.jsonl")
	seqs := [][]int32{{1, 2, 3, 4, 5}, {7, 299, 0}}
	var lines []string
	for _, s := range seqs {
		js, _ := json.Marshal(map[string]any{"tokens": s})
		lines = append(lines, string(js))
	}
	os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	out, e, code := runCLI(t, "", "logprobs", "--model", mdir, "--input", in, "--device", "cpu")
	if code != 0 {
		t.Fatalf("logprobs: %s", e)
	}
	b := cpu.New(1)
	defer b.Close()
	m, err := model.Load(mdir, b)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	want, _, err := m.Forward(seqs)
	if err != nil {
		t.Fatal(err)
	}
	recs := strings.Split(strings.TrimSpace(out), "\n")
	if len(recs) != len(seqs) {
		t.Fatalf("%d output lines for %d inputs", len(recs), len(seqs))
	}
	for i, line := range recs {
		var r struct {
			Logprobs []float32
			Loss     float64
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Logprobs) != len(seqs[i])-1 {
			t.Fatalf("line %d: %d log-probs for %d tokens", i, len(r.Logprobs), len(seqs[i]))
		}
		mean := 0.0
		for j, x := range r.Logprobs {
			if x != want[i][j] {
				t.Errorf("line %d token %d: %g, model forward %g", i, j, x, want[i][j])
			}
			mean -= float64(x) / float64(len(r.Logprobs))
		}
		if math.Abs(mean-r.Loss) > 1e-6 {
			t.Errorf("line %d: loss %g, mean negative log-prob %g", i, r.Loss, mean)
		}
	}

	g := filepath.Join(dir, "g.safetensors")
	if _, e, code := runCLI(t, "", "grad", "--model", mdir, "--input", in, "--out", g, "--device", "cpu"); code != 0 {
		t.Fatalf("grad: %s", e)
	}
	f, err := safetensors.Open(g)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, want := len(f.Names()), len(m.Params.Named(m.Cfg)); got != want {
		t.Errorf("grad wrote %d tensors, the model has %d", got, want)
	}
	if _, ok := f.Info("model.layers.1.self_attn.k_proj.bias"); !ok {
		t.Errorf("grad lacks model.layers.1.self_attn.k_proj.bias: %v", f.Names())
	}

	os.WriteFile(in, []byte(lines[0]+"\n{\"tokens\": [1, 2\n"), 0o644)
	if _, e, code := runCLI(t, "", "logprobs", "--model", mdir, "--input", in); code != 1 || !strings.Contains(e, "in.jsonl:2") {
		t.Errorf("malformed line 2: exit %d, %q", code, e)
	}
	os.WriteFile(in, []byte(`{"tokens": [1, 300]}`+"\n"), 0o644)
	if _, e, code := runCLI(t, "", "logprobs", "--model", mdir, "--input", in); code != 1 || !strings.Contains(e, "outside the vocabulary") {
		t.Errorf("id 300: exit %d, %q", code, e)
	}
	if _, e, code := runCLI(t, "", "logprobs", "--model", filepath.Join(dir, "nope"), "--input", in); code != 1 || !strings.HasPrefix(e, "Error: ") {
		t.Errorf("missing model: exit %d, %q", code, e)
	}
}
