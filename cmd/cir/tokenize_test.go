package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cir/tokenizer"
)

// runTokCLI runs cir with args and stdin and returns its exit code, stdout and stderr.
func runTokCLI(stdin string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestTokenizeCLI(t *testing.T) {
	dir := t.TempDir()
	if err := tokenizer.NewByte().Save(dir); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, stdin string
		args        []string
		code        int
		out, errSub string
	}{
		{"tokenize", "hi<|im_end|>", []string{"tokenize", "--tokenizer", dir}, 0, "[104,105,258]\n", ""},
		{"tokenize plain", "<|im_end|>", []string{"tokenize", "--tokenizer", dir, "--plain"}, 0, "[60,124,105,109,95,101,110,100,124,62]\n", ""},
		{"tokenize jsonl", "{\"text\":\"a\"}\n\n{\"text\":\"\"}\n", []string{"tokenize", "--tokenizer", dir, "--jsonl"}, 0, "{\"ids\":[97]}\n{\"ids\":[]}\n", ""},
		{"tokenize jsonl bad", "{\"text\":\"a\"}\n{\"txt\":1}\n", []string{"tokenize", "--tokenizer", dir, "--jsonl"}, 1, "{\"ids\":[97]}\n", "stdin line 2"},
		{"no tokenizer flag", "", []string{"tokenize"}, 1, "", "--tokenizer is required"},
		{"missing tokenizer", "", []string{"tokenize", "--tokenizer", filepath.Join(dir, "nope")}, 1, "", "nope"},
		{"empty dir", "", []string{"tokenize", "--tokenizer", t.TempDir()}, 1, "", "no tokenizer"},
		{"detokenize", "[104,105] [258]\n", []string{"detokenize", "--tokenizer", dir}, 0, "hi<|im_end|>", ""},
		{"detokenize jsonl", "{\"ids\":[104,105]}\n", []string{"detokenize", "--tokenizer", dir, "--jsonl"}, 0, "{\"text\":\"hi\"}\n", ""},
		{"detokenize range", "[1,999]", []string{"detokenize", "--tokenizer", dir}, 1, "", "id 999 out of range"},
		{"detokenize not json", "hello", []string{"detokenize", "--tokenizer", dir}, 1, "", "stdin array 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runTokCLI(c.stdin, c.args...)
			if code != c.code || out != c.out || !strings.Contains(errOut, c.errSub) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr containing %q", code, out, errOut, c.code, c.out, c.errSub)
			}
			if c.code != 0 && !strings.HasPrefix(errOut, "Error: ") {
				t.Errorf("stderr %q does not start with Error:", errOut)
			}
		})
	}
}

// TestTokenizeCLIQwen round-trips text through tokenize and detokenize with the Qwen vocabulary
// when it has been fetched.
func TestTokenizeCLIQwen(t *testing.T) {
	path := filepath.Join("..", "..", "testdata-cache", "qwen3", "tokenizer.json")
	if _, err := os.Stat(path); err != nil {
		t.Skip("Qwen tokenizer.json not fetched (run `make tokenizer-deps`)")
	}
	code, out, errOut := runTokCLI("Hello world", "tokenize", "--tokenizer", path)
	if code != 0 || out != "[9707,1879]\n" {
		t.Fatalf("tokenize: exit %d, %q, %q", code, out, errOut)
	}
	code, out, errOut = runTokCLI(out, "detokenize", "--tokenizer", path)
	if code != 0 || out != "Hello world" {
		t.Fatalf("detokenize: exit %d, %q, %q", code, out, errOut)
	}
}
