package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cir/train/data"
	"cir/train/rollout"
)

// TestToyCheckpointWithoutFlags: a checkpoint of a toy run carries its prompt format (the toy
// chat template and no instruction), so that cir template, generate and eval give it the
// prompt it was trained on without a flag. The model, a tiny one warmed up on a single
// problem until it knows the demonstration by heart, answers through cir generate with the
// code block, the sandbox's output and the boxed answer; given the CIR prompt instead it
// would not. Flags still override the checkpoint's settings.
func TestToyCheckpointWithoutFlags(t *testing.T) {
	needSandbox(t)
	dir := t.TempDir()
	modelCfg := tinyToyModel(t, dir)
	out := filepath.Join(dir, "run")
	_, stderr, code := runCLI(t, "", "train", "--config", filepath.Join("..", "..", "configs", "toy.yaml"),
		"model.init="+modelCfg, "run.out_dir="+out, "run.threads=1", "run.steps=0",
		"data.toy.kinds=[mul]", "data.toy.direct=", "data.toy.train=1", "data.toy.eval=0",
		"sft.steps=300", "sft.lr=1e-2", "sft.warmup_steps=10", "sft.batch_size=4")
	if code != 0 {
		t.Fatalf("cir train: exit %d: %s", code, stderr)
	}
	ckpt := filepath.Join(out, "checkpoints", "step-000000")
	p := must(data.Problems(1, 1, []data.Kind{data.Mul}))[0]

	if b, err := os.ReadFile(filepath.Join(ckpt, "chat_template.jinja")); err != nil || string(b) != data.ToyChatTemplate {
		t.Errorf("checkpoint chat_template.jinja: %q, %v", b, err)
	}
	if text, stderr, code := runCLI(t, "", "template", "--model", ckpt, "--prompt", p.Prompt); code != 0 || text != p.Prompt+"\n" {
		t.Errorf("cir template: %q (exit %d: %s), want the problem and a newline", text, code, stderr)
	}
	if text, _, _ := runCLI(t, "", "template", "--model", ckpt, "--prompt", p.Prompt, "--instruction", "always"); text != rollout.UserMessage(p.Prompt)+"\n" {
		t.Errorf("cir template --instruction always: %q, want the instruction, the problem and a newline", text)
	}

	stdout, stderr, code := runCLI(t, "", "generate", "--model", ckpt, "--prompt", p.Prompt)
	if code != 0 {
		t.Fatalf("cir generate: exit %d: %s", code, stderr)
	}
	if want := p.Demo() + "\n"; stdout != want {
		t.Errorf("cir generate printed\n%q\nwant the demonstration\n%q\n(stderr: %s)", stdout, want, stderr)
	}
	// The same through stdin: the text as given, so a final newline would be a second one.
	if same, _, _ := runCLI(t, p.Prompt, "generate", "--model", ckpt, "--prompt", "-"); same != stdout {
		t.Errorf("--prompt - gives %q, --prompt %q", same, stdout)
	}

	bench := filepath.Join(dir, "bench.jsonl")
	line, _ := json.Marshal(map[string]string{"problem": p.Prompt, "answer": p.Answer})
	os.WriteFile(bench, append(line, '\n'), 0o644)
	// Greedy, so that the check is of the prompt, not of a sample.
	stdout, stderr, code = runCLI(t, "", "eval", "--model", ckpt, "--bench", bench, "--temperature", "0")
	var res struct {
		Tools struct {
			AvgAtK    float64 `json:"avg_at_k"`
			MeanCalls float64 `json:"mean_calls"`
		} `json:"tools"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &res) != nil || res.Tools.AvgAtK != 1 || res.Tools.MeanCalls != 1 {
		t.Errorf("cir eval: %s (exit %d: %s), want accuracy 1 with one call", stdout, code, stderr)
	}
	if !strings.Contains(stderr, "tools") {
		t.Errorf("cir eval printed no progress: %s", stderr)
	}
}

// tinyToyModel writes the config.json of a tiny byte-level model into dir and returns its
// path (a model.init for cir train): warm-ups of a hundred steps teach it a demonstration by
// heart in seconds.
func tinyToyModel(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "model.json")
	err := os.WriteFile(path, []byte(`{"model_type":"qwen2","vocab_size":259,"hidden_size":64,"intermediate_size":128,
		"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":256,
		"tie_word_embeddings":true,"eos_token_id":258}`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
