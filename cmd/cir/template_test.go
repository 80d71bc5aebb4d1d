package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cir/tokenizer"
	"cir/tokenizer/jinja/jinjatest"
	"cir/train/rollout"
)

// TestTemplateCLI: cir template prints exactly what Python's jinja2 renders with the real
// Qwen2.5-Math-Instruct and Qwen3 chat templates for the CIR user message (with and without
// a system message), and --ids its token ids.
func TestTemplateCLI(t *testing.T) {
	problem := "Find x if 2^x = 1024. Answer in \\boxed{}: \"quotes\" & <tags> é"
	for _, name := range []string{"qwen2.5-math-instruct", "qwen3"} {
		for _, system := range []string{"", "You are a careful mathematician."} {
			t.Run(name+"/system="+system, func(t *testing.T) {
				b, err := os.ReadFile(filepath.Join("..", "..", "tokenizer", "testdata", "templates", name+".json"))
				if err != nil {
					t.Fatal(err)
				}
				dir := t.TempDir()
				os.WriteFile(filepath.Join(dir, tokenizer.ConfigFile), b, 0o644)
				var msgs []map[string]string
				args := []string{"template", "--model", dir, "--prompt", problem}
				if system != "" {
					msgs = append(msgs, map[string]string{"role": "system", "content": system})
					args = append(args, "--system", system)
				}
				msgs = append(msgs, map[string]string{"role": "user", "content": rollout.UserMessage(problem)})
				stdout, stderr, code := runCLI(t, "", args...)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, stderr)
				}
				if want := jinjatest.Chat(t, b, msgs); stdout != want {
					t.Fatalf("cir template printed\n%q\njinja2 renders\n%q", stdout, want)
				}
			})
		}
	}

	// --ids: the byte tokenizer of a toy checkpoint with the built-in template; the prompt
	// from stdin, as it is (its final newline kept).
	dir := tinyModel(t)
	text, _, code := runCLI(t, "Q?\n", "template", "--model", dir, "--prompt", "-")
	out, stderr, code2 := runCLI(t, "Q?\n", "template", "--model", dir, "--prompt", "-", "--ids")
	if code != 0 || code2 != 0 {
		t.Fatalf("exit %d, %d: %s", code, code2, stderr)
	}
	var ids []int32
	if err := json.Unmarshal([]byte(out), &ids); err != nil || tokenizer.NewByte().Decode(ids) != text ||
		!strings.Contains(text, "<|im_start|>user\n"+rollout.UserMessage("Q?\n")+"<|im_end|>") {
		t.Fatalf("ids %s (%v) and text %q disagree", out, err, text)
	}
	if toy, _, _ := runCLI(t, "", "template", "--model", dir, "--prompt", "Q?", "--template", "toy"); toy != "Q?\n" {
		t.Errorf("toy template: %q", toy)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"template", "--prompt", "x"}, "--model"},
		{[]string{"template", "--model", filepath.Join(dir, "nope"), "--prompt", "x"}, "nope"},
		{[]string{"template", "--model", dir, "--prompt", "x", "--instruction", "twice"}, "--instruction"},
		{[]string{"template", "--model", dir, "--prompt", "x", "--chat-template-kwargs", "[1]"}, "--chat-template-kwargs"},
	} {
		if _, stderr, code := runCLI(t, "", c.args...); code != 1 || !strings.HasPrefix(stderr, "Error: ") || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q; want an error naming %s", c.args, code, stderr, c.want)
		}
	}
}
