package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConvertCLI: a model from cir init goes to GGUF (Q8_0 and lossless) and back through the
// command line, --verify prints the log-prob difference (0 when lossless), and the errors are
// the CLI's.
func TestConvertCLI(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "m")
	if code, _, errs := runTokCLI("", "init", "--config", filepath.Join("..", "..", "configs", "toy-model.json"), "--seed", "1", "--out", m); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	g := filepath.Join(dir, "m.gguf")
	code, out, errs := runTokCLI("", "convert", "--in", m, "--out", g, "--dtype", "bf16", "--verify")
	if code != 0 || !strings.Contains(errs, "wrote "+g+" (gguf, bf16)") {
		t.Fatalf("to GGUF: exit %d\n%s", code, errs)
	}
	if !strings.HasPrefix(out, "max |Δ log-prob| ") || strings.HasPrefix(out, "max |Δ log-prob| 0 ") {
		t.Errorf("f32 → bf16 verify: %q, want a nonzero difference", out)
	}
	back := filepath.Join(dir, "back")
	code, out, errs = runTokCLI("", "convert", "--in", g, "--out", back, "--verify")
	if code != 0 || !strings.HasPrefix(out, "max |Δ log-prob| 0 over 252 tokens of 4 random sequences") {
		t.Fatalf("GGUF → HF (lossless): exit %d, stdout %q\n%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(back, "config.json")); err != nil {
		t.Error(err)
	}
	q := filepath.Join(dir, "q.gguf")
	if code, _, errs = runTokCLI("", "convert", "--in", m, "--out", q, "--dtype", "q8_0"); code != 0 || !strings.Contains(errs, "changed by rounding to q8_0") {
		t.Errorf("to Q8_0: exit %d\n%s", code, errs)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"convert", "--in", m, "--out", back}, "destination exists (pass --force to replace it)"},
		{[]string{"convert", "--in", m}, "--out is required"},
		{[]string{"convert", "--in", m, "--out", filepath.Join(dir, "x"), "--max-shard-size", "5 parsecs"}, "--max-shard-size"},
		{[]string{"convert", "--in", m, "--out", filepath.Join(dir, "x"), "--dtype", "q8_0", "--to", "hf"}, "GGUF destinations only"},
		{[]string{"convert", "--in", filepath.Join(dir, "nope"), "--out", filepath.Join(dir, "x")}, "nope"},
	} {
		code, _, errs := runTokCLI("", c.args...)
		if code != 1 || !strings.HasPrefix(errs, "Error: ") || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and %q", c.args, code, errs, c.want)
		}
	}
	if code, _, _ := runTokCLI("", "convert", "--in", m, "--out", back, "--force"); code != 0 {
		t.Error("--force did not replace the destination")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"5GB": 5e9, "500MB": 5e8, "2GiB": 2 << 30, "1.5 GB": 1.5e9, "4096": 4096, "10kb": 10000} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GB", "-1GB", "0", "5 parsecs", "1e30GB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q): no error", in)
		}
	}
}
