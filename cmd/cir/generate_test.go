package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cir/tokenizer"
	"cir/train/rollout"
	"cir/train/sandbox"
)

// tinyModel writes a random model with the byte tokenizer and returns its directory.
func tinyModel(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	err := os.WriteFile(cfg, []byte(`{"model_type":"qwen2","vocab_size":259,"hidden_size":64,"intermediate_size":128,
		"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":1024}`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "m")
	if code, _, errOut := runGen("", "init", "--config", cfg, "--seed", "1", "--out", out); code != 0 {
		t.Fatalf("cir init: %s", errOut)
	}
	return out
}

func runGen(stdin string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

type genRecord struct {
	Tokens    []int32    `json:"tokens"`
	Roles     []string   `json:"roles"`
	Logprobs  []*float32 `json:"logprobs"`
	PromptLen int        `json:"prompt_len"`
	Text      string     `json:"text"`
	Calls     []any      `json:"calls"`
	Finish    string     `json:"finish"`
}

func TestGenerateCLI(t *testing.T) {
	dir := tinyModel(t)
	args := []string{"generate", "--model", dir, "--prompt", "What is 2+2?", "--max-response", "24",
		"--seed", "5", "--max-calls", "0", "--device", "cpu", "--threads", "1"}
	code, out, errOut := runGen("", append(args, "--json", "--n", "3")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d JSON lines, want 3:\n%s", len(lines), out)
	}
	tok := tokenizer.NewByte()
	var recs []genRecord
	for i, l := range lines {
		var r genRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		recs = append(recs, r)
		prompt := tok.Decode(r.Tokens[:r.PromptLen])
		if !strings.Contains(prompt, rollout.UserMessage("What is 2+2?")) || !strings.HasSuffix(prompt, "<|im_start|>assistant\n") {
			t.Errorf("line %d: prompt %q is not the templated instruction and problem", i, prompt)
		}
		n := len(r.Tokens) - r.PromptLen
		if len(r.Roles) != len(r.Tokens) || len(r.Logprobs) != n || n < 1 || n > 24 {
			t.Fatalf("line %d: %d tokens, %d roles, %d logprobs, prompt %d", i, len(r.Tokens), len(r.Roles), len(r.Logprobs), r.PromptLen)
		}
		for j, lp := range r.Logprobs {
			if r.Roles[r.PromptLen+j] != "policy" || lp == nil || *lp > 0 {
				t.Errorf("line %d token %d: role %s log-prob %v", i, j, r.Roles[r.PromptLen+j], lp)
			}
		}
		if r.Text != tok.Decode(r.Tokens[r.PromptLen:]) || r.Calls == nil {
			t.Errorf("line %d: text %q, calls %v", i, r.Text, r.Calls)
		}
		if (r.Finish == "length") != (n == 24) {
			t.Errorf("line %d: finish %s after %d tokens", i, r.Finish, n)
		}
	}
	if recs[0].Text == recs[1].Text && recs[1].Text == recs[2].Text {
		t.Error("three samples are identical")
	}
	// The same seed gives the same answers; answer 0 streamed as text is the same answer.
	code, again, _ := runGen("", append(args, "--json", "--n", "3")...)
	if code != 0 || again != out {
		t.Errorf("a second run with the same seed differs")
	}
	code, streamed, errOut := runGen("", args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if want := strings.TrimSuffix(strings.TrimSuffix(recs[0].Text, "<|im_end|>"), "<|endoftext|>") + "\n"; streamed != want {
		t.Errorf("streamed %q, want answer 0 %q", streamed, want)
	}
}

func TestGenerateCLIErrors(t *testing.T) {
	dir := tinyModel(t)
	tests := []struct {
		name   string
		args   []string
		errSub string
	}{
		{"no model", []string{"--prompt", "x"}, "--model is required"},
		{"no prompt", []string{"--model", dir}, "--prompt is required"},
		{"top-p", []string{"--model", dir, "--prompt", "x", "--top-p", "1.5"}, "--top-p"},
		{"temperature", []string{"--model", dir, "--prompt", "x", "--temperature", "-1"}, "--temperature"},
		{"n", []string{"--model", dir, "--prompt", "x", "--n", "0"}, "--n"},
		{"max-response", []string{"--model", dir, "--prompt", "x", "--max-response", "0"}, "--max-response"},
		{"sandbox timeout", []string{"--model", dir, "--prompt", "x", "--sandbox-timeout", "0"}, "--sandbox-timeout"},
		{"bad budget", []string{"--model", dir, "--prompt", "x", "--max-calls", "x"}, "--max-calls"},
		{"bad instruction", []string{"--model", dir, "--prompt", "x", "--instruction", "twice"}, "--instruction"},
		{"missing dir", []string{"--model", filepath.Join(dir, "nope"), "--prompt", "x"}, "nope"},
		{"prompt too long", []string{"--model", dir, "--prompt", strings.Repeat("y", 2000), "--device", "cpu"}, "prompt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runGen("", append([]string{"generate"}, tc.args...)...)
			if code != 1 || !strings.HasPrefix(errOut, "Error: ") || !strings.Contains(errOut, tc.errSub) {
				t.Errorf("exit %d, stderr %q; want exit 1 and an error naming %q", code, errOut, tc.errSub)
			}
		})
	}
}

func TestLazySandbox(t *testing.T) {
	cfg := sandbox.DefaultConfig()
	cfg.Workers, cfg.Lazy = 1, true
	sb := startSandbox(context.Background(), cfg)
	defer sb.close()
	r := sb.Exec(context.Background(), "print(6*7)", -1)
	if errors.Is(sb.startErr(), sandbox.ErrNoSandbox) {
		t.Skip(sb.startErr())
	}
	if r.Output != "42" || r.Kind != rollout.KindOK {
		t.Fatalf("result %+v (start error %v)", r, sb.startErr())
	}
	r = sb.Exec(context.Background(), "y = 2", 7)
	r2 := sb.Exec(context.Background(), "print(y * 3)", 7)
	sb.CloseSession(7)
	if r.Kind != rollout.KindOK || r2.Output != "6" {
		t.Fatalf("session results %+v, %+v", r, r2)
	}
	// A pool still starting when the command ends is stopped.
	sb2 := startSandbox(context.Background(), cfg)
	sb2.close()
}
