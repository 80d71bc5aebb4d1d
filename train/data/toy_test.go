package data

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func TestToyProblems(t *testing.T) {
	const n = 126 // 14 of each kind
	train, again, other, held := must(Problems(3, n, nil)), must(Problems(3, n, nil)), must(Problems(4, n, nil)), must(HeldOut(3, n, nil))
	if len(train) != n || len(held) != n {
		t.Fatalf("%d train and %d held-out problems, want %d", len(train), len(held), n)
	}
	trainSet := map[string]bool{}
	counts := map[Kind]int{}
	same := 0
	for i, p := range train {
		if !reflect.DeepEqual(p, again[i]) {
			t.Fatalf("problem %d differs for the same seed: %+v vs %+v", i, p, again[i])
		}
		if p.Prompt == other[i].Prompt {
			same++
		}
		if trainSet[p.Prompt] {
			t.Errorf("duplicate training problem %q", p.Prompt)
		}
		trainSet[p.Prompt] = true
		counts[p.Kind]++
		if l := len(Format(p.Prompt)) + len(p.Demo()); l > 200 {
			t.Errorf("%q: prompt + demo is %d bytes, want ≤ 200", p.Prompt, l)
		}
		var b strings.Builder
		for _, s := range p.Segments() {
			b.WriteString(s.Text)
		}
		if b.String() != p.Demo() {
			t.Errorf("segments do not add up to the demo for %q", p.Prompt)
		}
		if !strings.HasSuffix(p.Demo(), `\boxed{`+p.Answer+`}`) || !strings.HasPrefix(p.Demo(), "```python\n") {
			t.Errorf("demo %q is not in the protocol", p.Demo())
		}
	}
	if same > n/10 {
		t.Errorf("seeds 3 and 4 share %d of %d problems", same, n)
	}
	for _, k := range AllKinds {
		if counts[k] != n/len(AllKinds) {
			t.Errorf("kind %s: %d problems, want %d", k, counts[k], n/len(AllKinds))
		}
	}
	for _, p := range held {
		if trainSet[p.Prompt] || !heldOut(p.Prompt) {
			t.Errorf("held-out problem %q is in the training split", p.Prompt)
		}
	}
	// Kinds restrict the set.
	for _, p := range must(Problems(1, 12, Basic)) {
		if !p.Kind.Basic() {
			t.Errorf("basic set has kind %s", p.Kind)
		}
		if p.Chain != nil {
			t.Errorf("basic kind %s has a two-call chain", p.Kind)
		}
	}
	for _, p := range must(Problems(1, 9, Composed)) {
		if p.Kind.Basic() {
			t.Errorf("composed kind %s reports Basic", p.Kind)
		}
		if len(p.Chain) != 2 || p.Chain[1].Output != p.Answer {
			t.Errorf("composed %s: chain %+v does not end at the answer %s", p.Kind, p.Chain, p.Answer)
		}
		// P=AxB: the chain computes A*B first, then the operation on the printed value, as
		// the P kind of the same operation writes it for a given P.
		var a, b int
		if _, err := fmt.Sscanf(p.Prompt, "P=%dx%d.", &a, &b); err != nil || p.Chain[0].Code != fmt.Sprintf("print(%d*%d)", a, b) ||
			p.Chain[0].Output != fmt.Sprint(a*b) || !strings.Contains(p.Chain[1].Code, fmt.Sprint(a*b)) {
			t.Errorf("composed %s: %q has chain %+v", p.Kind, p.Prompt, p.Chain)
		}
		if l := len(Format(p.Prompt)) + len(DemoText(p.Chain, p.Answer)); l > 200 {
			t.Errorf("%q: prompt + chain is %d bytes, want ≤ 200", p.Prompt, l)
		}
	}
}

func TestToyAnswersHandComputed(t *testing.T) {
	// Hand-checkable instances of the generators' arithmetic.
	if got := digitSum(big.NewInt(98765)).String(); got != "35" {
		t.Errorf("digit sum of 98765 = %s, want 35", got)
	}
	r := rand.New(rand.NewPCG(1, 1))
	for range 200 {
		p := Generate(r, PowMod)
		var b, e, m int64
		if _, err := fmt.Sscanf(p.Prompt, "Compute %d^%d mod %d.", &b, &e, &m); err != nil {
			t.Fatal(err)
		}
		// Square-and-multiply in int64, independent of math/big.
		want, x := int64(1)%m, b%m
		for ; e > 0; e >>= 1 {
			if e&1 == 1 {
				want = want * x % m
			}
			x = x * x % m
		}
		if p.Answer != big.NewInt(want).String() {
			t.Fatalf("%s = %s, want %d", p.Prompt, p.Answer, want)
		}
	}
	if _, err := ParseKinds([]string{"mul", "sqrt"}); err == nil || !strings.Contains(err.Error(), `"sqrt"`) {
		t.Errorf("unknown kind: err = %v", err)
	}
	if k, err := ParseKinds(nil); err != nil || len(k) != len(AllKinds) {
		t.Errorf("ParseKinds(nil) = %v, %v", k, err)
	}
}

// TestToyDemosMatchPython runs every demonstrated call through Python and checks that the
// output in the demo is exactly what Python prints.
func TestToyDemosMatchPython(t *testing.T) {
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no", py)
	}
	var calls []Call
	for _, p := range append(must(Problems(9, 60, nil)), must(HeldOut(9, 30, nil))...) {
		calls = append(calls, p.Calls...)
		calls = append(calls, p.Chain...)
	}
	var src strings.Builder
	for _, c := range calls {
		src.WriteString(c.Code + "\nprint('\\x00')\n")
	}
	out, err := exec.Command(py, "-c", src.String()).Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	got := strings.Split(string(out), "\x00\n")
	if len(got) != len(calls)+1 {
		t.Fatalf("python printed %d outputs for %d calls", len(got)-1, len(calls))
	}
	for i, c := range calls {
		if strings.TrimSpace(got[i]) != c.Output {
			t.Errorf("%s: python prints %q, demo shows %q", c.Code, strings.TrimSpace(got[i]), c.Output)
		}
	}
}

func TestParseChainDemos(t *testing.T) {
	tests := []struct {
		entries []string
		want    map[Kind]float64
		err     string
	}{
		{nil, map[Kind]float64{}, ""},
		{[]string{"mul3"}, map[Kind]float64{Mul3: 1}, ""},
		{[]string{"mul3:0.25", " mul_digsum : 0 "}, map[Kind]float64{Mul3: 0.25, MulDigSum: 0}, ""},
		{[]string{"sqrt"}, nil, `"sqrt"`},
		{[]string{"mul3:2"}, nil, `share "2" of kind mul3`},
		{[]string{"mul3:"}, nil, `share "" of kind mul3`},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.entries), func(t *testing.T) {
			got, err := ParseChainDemos(tc.entries)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("ParseChainDemos(%q) = %v, %v, want %v", tc.entries, got, err, tc.want)
			}
		})
	}
}

func TestParseDirect(t *testing.T) {
	tests := []struct {
		spec string
		want map[Kind]float64
		err  string
	}{
		{"", map[Kind]float64{}, ""},
		{"mul:0.7", map[Kind]float64{Mul: 0.7}, ""},
		{" mul : 1 , digsum:0", map[Kind]float64{Mul: 1, DigitSum: 0}, ""},
		{"mul", nil, `"mul" is not kind:share`},
		{"sqrt:0.5", nil, `"sqrt"`},
		{"mul:1.5", nil, `share "1.5" of kind mul`},
		{"mul:NaN", nil, `share "NaN"`},
		{"mul:x", nil, `share "x"`},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := ParseDirect(tc.spec)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("ParseDirect(%q) = %v, %v, want %v", tc.spec, got, err, tc.want)
			}
		})
	}
	r := rand.New(rand.NewPCG(1, 1))
	for _, k := range Basic {
		p := Generate(r, k)
		if d := p.DirectSegments(); len(d) != 1 || d[0].Tool || d[0].Text != `\boxed{`+p.Guess+`}` || p.Guess == "" {
			t.Errorf("%s: direct demonstration %v, guess %q", p.Prompt, d, p.Guess)
		}
	}
	for in, want := range map[string]string{"7": "7", "44": "44", "440066": "440000", "445000": "450000", "995000": "1000000", "104": "100"} {
		if got := twoDigits(in); got != want {
			t.Errorf("twoDigits(%s) = %s, want %s", in, got, want)
		}
	}
}

func must(ps []Problem, err error) []Problem {
	if err != nil {
		panic(err)
	}
	return ps
}

// TestToyExhausted: asking for more distinct problems than a kind has is an error naming the
// kind, not an endless loop (digit sums: 90 bases × 900 exponents, one in eight held out).
func TestToyExhausted(t *testing.T) {
	_, err := HeldOut(1, 30000, []Kind{DigitSum})
	if err == nil || !strings.Contains(err.Error(), "digsum") {
		t.Fatalf("err = %v, want one naming digsum", err)
	}
}
