// Package jinjatest renders templates with Python's jinja2 in the environment transformers
// renders chat templates in (render.py), the reference that tests of package jinja and of the
// prompts compare against. Tests that use it skip when Debian's Python lacks jinja2.
package jinjatest

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Python is the interpreter with jinja2 (make test installs python3-jinja2).
const Python = "/usr/bin/python3"

//go:embed render.py
var script []byte

// Request is one template and its variables (a JSON object).
type Request struct {
	Template string          `json:"template"`
	Vars     json.RawMessage `json:"vars"`
}

// Reply is jinja2's rendering of a Request, or its error (Out nil).
type Reply struct {
	Out   *string `json:"out"`
	Error string  `json:"error"`
}

// Render renders each request with jinja2. It skips the test when jinja2 is not installed.
func Render(t testing.TB, reqs []Request) []Reply {
	t.Helper()
	if err := exec.Command(Python, "-c", "import jinja2").Run(); err != nil {
		t.Skipf("%s with jinja2 is not installed (make test installs python3-jinja2): %v", Python, err)
	}
	path := filepath.Join(t.TempDir(), "render.py")
	if err := os.WriteFile(path, script, 0o644); err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for _, r := range reqs {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(Python, path)
	cmd.Stdin = &in
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("render.py: %v", err)
	}
	var reps []Reply
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var r Reply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("render.py output %q: %v", sc.Text(), err)
		}
		reps = append(reps, r)
	}
	if len(reps) != len(reqs) {
		t.Fatalf("render.py answered %d of %d requests", len(reps), len(reqs))
	}
	return reps
}

// Chat renders messages through the chat template of a tokenizer_config.json as
// transformers' apply_chat_template(messages, add_generation_prompt=True) does, with the
// config's special tokens as variables. It fails the test when jinja2 fails.
func Chat(t testing.TB, tokenizerConfig []byte, msgs []map[string]string) string {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(tokenizerConfig, &cfg); err != nil {
		t.Fatal(err)
	}
	tpl, _ := cfg["chat_template"].(string)
	vars := map[string]any{"messages": msgs, "add_generation_prompt": true, "tools": nil, "documents": nil}
	for _, k := range []string{"bos_token", "eos_token", "unk_token", "pad_token"} {
		if v, ok := cfg[k].(string); ok {
			vars[k] = v
		}
	}
	b, err := json.Marshal(vars)
	if err != nil {
		t.Fatal(err)
	}
	rep := Render(t, []Request{{Template: tpl, Vars: b}})[0]
	if rep.Out == nil {
		t.Fatalf("jinja2: %s", rep.Error)
	}
	return *rep.Out
}
