package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cir/tokenizer"
	"cir/train/rollout"
)

// jinjaRender renders a chat template's messages with Python's jinja2 as transformers'
// apply_chat_template(messages, add_generation_prompt=True) does (the reference script of
// package jinja), with the special tokens of the tokenizer_config.json cfg.
func jinjaRender(t *testing.T, cfg map[string]any, msgs []map[string]string) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import jinja2").Run(); err != nil {
		t.Skipf("%s with jinja2 is not installed (make test installs python3-jinja2): %v", py, err)
	}
	vars := map[string]any{"messages": msgs, "add_generation_prompt": true, "tools": nil, "documents": nil}
	for _, k := range []string{"bos_token", "eos_token", "pad_token", "unk_token"} {
		if v, ok := cfg[k].(string); ok {
			vars[k] = v
		}
	}
	req, _ := json.Marshal(map[string]any{"template": cfg["chat_template"], "vars": vars})
	cmd := exec.Command(py, filepath.Join("..", "..", "tokenizer", "jinja", "testdata", "render.py"))
	cmd.Stdin = bytes.NewReader(append(req, '\n'))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("render.py: %v", err)
	}
	var rep struct {
		Out   *string
		Error string
	}
	if err := json.Unmarshal(out, &rep); err != nil || rep.Out == nil {
		t.Fatalf("render.py: %s %v", out, err)
	}
	return *rep.Out
}

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
				var cfg map[string]any
				if err := json.Unmarshal(b, &cfg); err != nil {
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
				if want := jinjaRender(t, cfg, msgs); stdout != want {
					t.Fatalf("cir template printed\n%q\njinja2 renders\n%q", stdout, want)
				}
			})
		}
	}

	// --ids: the byte tokenizer of a toy checkpoint with the built-in template; the prompt
	// from stdin.
	dir := tinyModel(t)
	text, _, code := runCLI(t, "Q?\n", "template", "--model", dir, "--prompt", "-")
	out, stderr, code2 := runCLI(t, "Q?\n", "template", "--model", dir, "--prompt", "-", "--ids")
	if code != 0 || code2 != 0 {
		t.Fatalf("exit %d, %d: %s", code, code2, stderr)
	}
	var ids []int32
	if err := json.Unmarshal([]byte(out), &ids); err != nil || tokenizer.NewByte().Decode(ids) != text ||
		!strings.Contains(text, "<|im_start|>user\n"+rollout.UserMessage("Q?")+"<|im_end|>") {
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
