package reward

import (
	"bufio"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// benchAnswer is one reference answer of the shared benchmarks.
type benchAnswer struct {
	file string
	line int
	gold string
}

// benchDir finds ../shared/data/benchmarks beside the repository root.
func benchDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Skip("no go.mod above the test directory")
		}
		dir = parent
	}
	b := filepath.Join(dir, "..", "shared", "data", "benchmarks")
	if _, err := os.Stat(b); err != nil {
		tb.Skipf("benchmarks not present: %v", err)
	}
	return b
}

// loadBenchAnswers reads every reference answer: `answer` (MATH) or `solution`.
func loadBenchAnswers(tb testing.TB) []benchAnswer {
	tb.Helper()
	dir := benchDir(tb)
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no benchmark files in %s: %v", dir, err)
	}
	var out []benchAnswer
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for n := 1; sc.Scan(); n++ {
			var rec struct {
				Answer   *string `json:"answer"`
				Solution string  `json:"solution"`
			}
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				tb.Fatalf("%s line %d: %v", f, n, err)
			}
			gold := rec.Solution
			if rec.Answer != nil {
				gold = *rec.Answer
			}
			out = append(out, benchAnswer{filepath.Base(f), n, gold})
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			tb.Fatal(err)
		}
	}
	return out
}

var (
	reFrac  = regexp.MustCompile(`\\frac\{([^{}]*)\}\{([^{}]*)\}`)
	reSqrt  = regexp.MustCompile(`\\sqrt\{([^{}]*)\}`)
	reMixed = regexp.MustCompile(`^[0-9]+ *\\frac`)
)

// rewrites returns the answer written other ways: a rational as p/q, \frac{p}{q} and a
// terminating decimal; LaTeX fractions, roots, \pi and \cdot in plain notation; boxed.
func rewrites(gold string) []string {
	out := []string{`\boxed{` + gold + `}`, "$" + gold + "$"}
	if n, err := parseAnswer(normalize(gold)); err == nil && !hasVars(n) && isScalar(n) {
		if v, err := exactEval(n, &budget{}); err == nil && v.real() {
			r := v.re
			out = append(out, r.RatString(), `\frac{`+r.Num().String()+`}{`+r.Denom().String()+`}`)
			d := new(big.Int).Set(r.Denom())
			for _, p := range []int64{2, 5} {
				for new(big.Int).Mod(d, big.NewInt(p)).Sign() == 0 {
					d.Quo(d, big.NewInt(p))
				}
			}
			if d.Cmp(big.NewInt(1)) == 0 && !r.IsInt() {
				out = append(out, r.FloatString(30))
			}
		}
	}
	plain := gold
	for range 4 {
		plain = reFrac.ReplaceAllString(plain, "(($1)/($2))")
		plain = reSqrt.ReplaceAllString(plain, " sqrt($1)")
	}
	plain = strings.NewReplacer(`\pi`, "pi", `\cdot`, "*", `\times`, "*", `\left`, "", `\right`, "", `\dfrac`, `\frac`).Replace(plain)
	if plain != gold && !reMixed.MatchString(gold) { // 1\frac{4}{5} is a mixed number, 1((4)/(5)) a product
		out = append(out, plain)
	}
	return out
}

func TestBenchmarkAnswers(t *testing.T) {
	answers := loadBenchAnswers(t)
	if len(answers) < 700 {
		t.Fatalf("read %d answers, want the 800 of the benchmarks", len(answers))
	}
	alts := 0
	for _, a := range answers {
		norm := normalize(a.gold)
		if _, _, text := textAnswer(norm); !text {
			if _, err := parseAnswer(norm); err != nil {
				t.Errorf("%s:%d: gold %q (normalized %q) does not parse: %v", a.file, a.line, a.gold, norm, err)
				continue
			}
		}
		if !Equivalent(a.gold, a.gold) {
			t.Errorf("%s:%d: gold %q is not equivalent to itself", a.file, a.line, a.gold)
		}
		for _, alt := range rewrites(unwrap(a.gold)) {
			alts++
			if !Equivalent(alt, a.gold) {
				t.Errorf("%s:%d: %q should equal gold %q", a.file, a.line, alt, a.gold)
			}
		}
		if r := Default().Score("So the answer is $\\boxed{"+unwrap(a.gold)+"}$.", a.gold); !r.Correct || r.Reward != 1 {
			t.Errorf("%s:%d: Score of a boxed gold %q = %+v", a.file, a.line, a.gold, r)
		}
	}
	t.Logf("%d answers, %d rewritten forms", len(answers), alts)
}
