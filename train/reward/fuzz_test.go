package reward

import (
	"testing"
	"time"
)

// fuzzSeeds are inputs that once broke, or nearly broke, a parser of this kind.
var fuzzSeeds = []string{
	"", "{", "}", "\\", "\\frac", "\\frac{", "\\frac{1}", "\\sqrt[", "\\sqrt[3", "\\begin{pmatrix}",
	"\\begin{pmatrix} 1 & \\end{pmatrix}", "\\begin{pmatrix}1\\\\2&3\\end{pmatrix}", "((((", "))))",
	"|", "||", "|x", "x^", "x_", "x^{", "2^{10^{9}}", "10^{10^{10^{10}}}", "(10^{100})!", "\\binom{-1}{2}",
	"1,000,000", "1,", ",1", ",,", "1..2", ".", "-", "--1", "+-+-1", "\\pm", "\\pm\\pm\\pm\\pm\\pm1",
	"\\left(", "\\right)", "\\boxed{", "\\boxed{\\boxed{1}}", "$$", "$", "\\(\\)", "x=", "=x", "<", "x<y<z<w<v<u",
	"\\{", "\\}", "\\{1,2", "(1,2]", "[1,2)", "(1]", "\\infty-\\infty", "0^0", "0^{-1}", "\\log_1 5", "\\log_0 0",
	"\\sqrt{-1}^{\\sqrt{-1}}", "i^i", "e^{1000000}", "\\sin(10^{100})", "\\tan(\\pi/2)", "1/0", "0/0",
	"\\text{", "\\text{abc", "\\mbox{}^", "5\\text{ cm}^", "x \\in", "\\lfloor", "\\lfloor x", "\\lceil 1 \\rfloor",
	"2^2023", "2^-", "\\frac12\\frac34", "1\\frac{1}{0}", "\\sqrt[0]{5}", "\\sqrt[-2]{4}", "\\sqrt[1/2]{4}",
	"8^{1/0}", "(-8)^{1/3}", "(-8)^{2/3}", "\\cot 0", "\\arccos 2", "10!!", "3!^{2}", "a_{", "a_{1}^{2}_3",
	"\\alpha\\beta\\gamma", "\\emptyset\\cup\\emptyset", "U", "x U y", "and", "or", "1 and", "\\%\\$",
	"−1", "×", "√2", "π", "≤≥≠", "\u00a0", "\xff\xfe", "1e5", "0x1F", "\\frac{\\frac{\\frac{1}{2}}{3}}{4}",
	"4 4/9", "4 4/0", "1 000 4/9", "1 000", "1\\,000", "14 {, }916", "{,}", "{ ,", "1,22", "-2,1", "0,111", "2,74 €",
	"\\\\frac{1}{2}", "\\\\", "\\\\\\", "x \\approx 3", "\\approx", "a:b", ":", "12:00", "1::2",
	"p=5,q=2;p=7,q=2", "p=5, q=2 and p=7, q=2", ";", ",;", "a=b=c=d=e=f=g", "1 = \\zzz = x = 0",
	"\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}\\begin{pmatrix}1\\\\2\\end{pmatrix}", "2\\begin{pmatrix}1\\end{pmatrix}+1",
	"28 percent", "28%", "%", "percent", "4 4/9pct", "1 \\le |x| \\le 2", "|x| \\le", "0<f(x)<1",
	"Final Answer: The largest $n$ is 34.", "final answer is", "Answer:", "answer is $", "$$\\boxed{1}$$ \\boxed{2}",
	"\\boxed{1} \\text{ and } \\boxed{2}", "$ \n 9 \n $", "\\( \n \\)", "10 000 dollars", "1,000.99m²",
}

// FuzzCompare checks that extracting (both modes, and a gold's answer), parsing and comparing
// any pair of strings neither panics nor runs past its deadline by much. The seed corpus runs
// in every `go test`.
func FuzzCompare(f *testing.F) {
	for i, s := range fuzzSeeds {
		f.Add(s, fuzzSeeds[(i*7+3)%len(fuzzSeeds)])
		f.Add(s, s)
	}
	f.Add("\\frac{1}{2}", "0.5")
	f.Add("(3,4]", "x>3")
	f.Add("5x - 7y + 11z + 4 = 0", "y=2x")
	f.Fuzz(func(t *testing.T, a, b string) {
		start := time.Now()
		_ = normalize(a)
		if n, err := parseAnswer(normalize(a)); err == nil {
			_, _ = expandPM(n)
		}
		_, _ = Extract(a)
		_, _ = ExtractBoxed(a)
		_ = goldAnswer(b)
		compare(a, b, &budget{deadline: time.Now().Add(200 * time.Millisecond)})
		for _, m := range []Mode{Boxed, Lenient} {
			ck := &Checker{Correct: 1, Wrong: -1, Mode: m, Timeout: 200 * time.Millisecond}
			if r := ck.Score(a, b); r.Reward != 1 && r.Reward != -1 || r.Correct != (r.Reward == 1) {
				t.Errorf("Score(%q, %q) = %+v", a, b, r)
			}
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("compare(%q, %q) took %v", a, b, el)
		}
	})
}
