package reward

import "testing"

// formatCase is one completion scored against a gold in Lenient mode (and, when the
// completion has a box, in Boxed mode too, with the same verdict).
type formatCase struct {
	completion, gold string
	want             bool
}

// formatCases are our own examples of each kind of answer that Math-Verify's suite showed
// this checker missing, with near misses that must stay wrong.
var formatCases = map[string][]formatCase{
	"thousands in LaTeX spacing": {
		{`\boxed{1{,}000}`, "1000", true},
		{`\boxed{3{,}141{,}592}`, "3141592", true},
		{`The sum is $14 {, }916$.`, "14916", true},
		{`\boxed{2\,500}`, "2500", true},
		{`\boxed{12\!345}`, "12345", true},
		{`\boxed{65\,536}`, "65535", false},
	},
	"spaces between digit groups": {
		{`\boxed{1 234 567}`, "1234567", true},
		{"The total is 10 000 dollars.", "10000", true},
		{`\boxed{100 000}`, "10^5", true},
		{`\boxed{1 2345}`, "12345", false},
		{`\boxed{4 4/9}`, "40/9", true},
		{`\boxed{4 4/9}`, "16/9", false},
		{`\boxed{2 1/2}`, "2.5", true},
		{`\boxed{7 5/3}`, "7", false},
	},
	"decimal comma": {
		{`\boxed{3,75}`, "3.75", true},
		{`\boxed{0,5}`, `\frac12`, true},
		{"Le prix est 2,74 €.", "2.74", true},
		{`\boxed{1000,25}`, "1000.25", true},
		{`\boxed{3,75}`, "375", false},
		{`\boxed{-2,1}`, "1, -2", true},
		{`\boxed{1, -2}`, "-2,1", true},
		{`\boxed{2,500}`, "2.5", false},
	},
	"number with a unit or currency": {
		{`\boxed{\$1{,}250.50}`, "1250.5", true},
		{"So she pays 1,250.50€.", "1250.5", true},
		{"The area is 1,000.5m².", "1000.5", true},
		{`\boxed{42\text{ m}^2}`, "42", true},
		{`\boxed{60 \text{ km/h}}`, "60", true},
		{"It costs 12.5 dollars.", "12.5", true},
		{"The code is XK2B9", "9", false},
	},
	"sets and tuples in \\left( \\right) or doubled backslashes": {
		{`\boxed{\left( 2, -\frac{1}{3} \right)}`, "(2, -1/3)", true},
		{`\boxed{\left\{ 1, 3 \right\}}`, `\{3, 1\}`, true},
		{`\boxed{(0.5, 3)}`, `\\left( \\frac{1}{2}, 3 \\right)`, true},
		{`\\boxed{\\frac{3}{4}}`, "0.75", true},
		{`\boxed{\left( 3, \frac{1}{2} \right)}`, `\\left( \\frac{1}{2}, 3 \\right)`, false},
		{`\boxed{\left[ 1, 2 \right)}`, `\\left[1, 2\\right)`, true},
	},
	"intervals and matrices that agree numerically": {
		{`\boxed{\left[\frac{1}{2}, \sqrt{2}\right)}`, "[0.5, 1.414214)", true},
		{`\boxed{[0.5, 1.41)}`, `\left[\frac{1}{2}, \sqrt{2}\right)`, false},
		{`\boxed{\begin{pmatrix} 0.5 & 0.25 \\ 1 & 2 \end{pmatrix}}`, `\begin{pmatrix} \frac12 & \frac14 \\ 1 & 2 \end{pmatrix}`, true},
		{`\boxed{2\begin{pmatrix}1 & 0\\0 & 1\end{pmatrix}}`, `\begin{pmatrix}2&0\\0&2\end{pmatrix}`, true},
		{`$\begin{pmatrix}1 & 1\\0 & 1\end{pmatrix}\begin{pmatrix}1 & 2\\0 & 1\end{pmatrix}$`, `\begin{pmatrix}1&3\\0&1\end{pmatrix}`, true},
		{`$\begin{pmatrix}1 & 2\\0 & 1\end{pmatrix}\begin{pmatrix}1 & 1\\0 & 1\end{pmatrix}$`, `\begin{pmatrix}1&3\\0&1\end{pmatrix}`, true},
		{`$\begin{pmatrix}1 & 0\\1 & 1\end{pmatrix}\begin{pmatrix}1 & 1\\0 & 1\end{pmatrix}$`, `\begin{pmatrix}1&1\\1&1\end{pmatrix}`, false},
		{`\boxed{\begin{pmatrix}1\\2\end{pmatrix} + \begin{pmatrix}3\\4\end{pmatrix}}`, `\begin{pmatrix}4\\6\end{pmatrix}`, true},
	},
	"chains of equalities and approximations": {
		{`\boxed{x = 3 + 4 = 7}`, "7", true},
		{`\boxed{1 + 2 + 3 = 6}`, "6", true},
		{`\boxed{AB = 2\sqrt{3}}`, `\sqrt{12}`, true},
		{`\boxed{\frac{22}{7} \approx 3.14}`, `\frac{22}{7}`, true},
		{`\boxed{x \approx 3.14}`, "3.14", true},
		{`\boxed{x = \frac{1}{3} \approx 0.33}`, `\frac13`, true},
		{`\boxed{x = 5 + 6 = 11}`, "x = 11", true},
		{`\boxed{y = 7}`, "x = 7", false},
		{`\boxed{x = 3 + 4 = 8}`, "7", false},
	},
	"gold that is a worked solution": {
		{`\boxed{4}`, `We have $2+2 = 4$, so the answer is $\boxed{4}$.`, true},
		{`\boxed{2}`, `We have $2+2 = 4$, so the answer is $\boxed{4}$.`, false},
		{`\boxed{12}`, "Count the cases.\n\nThere are 3 in each of 4 rows.\nThe answer is 12.", true},
		{`\boxed{\frac{5}{2}}`, "Since $2x = 5$, we get $x = \\boxed{\\dfrac52}$.", true},
	},
	"Final Answer sentence": {
		{"Final Answer: x = 3", "3", true},
		{"Final Answer: The value of $x$ is 3.", "3", true},
		{"**Final Answer:** The smallest $n$ is $17$.", "17", true},
		{"Final Answer: The final answer is $\\frac{2}{3}$. I hope it is correct.", "2/3", true},
		{"Final Answer: Sam ran 5 miles farther.", "5", true},
		{"Final Answer: The largest $n$ is 34.", "43", false},
		{"$\\boxed{10}$ was my first guess. Final Answer: The final answer is $12$. I hope it is correct.", "12", true},
	},
	"several boxes forming one answer": {
		{`The solutions are $\boxed{2}$ and $\boxed{-3}$.`, "-3, 2", true},
		{`\boxed{(1, 2)} \text{ and } \boxed{(3, 4)}`, "(3,4), (1,2)", true},
		{`$$\boxed{k = 4} \quad \text{and} \quad \boxed{m = 9}$$`, "k = 4, m = 9", true},
		{`\(\boxed{1}\), \(\boxed{5}\)`, "1, 5", true},
		{`$$\boxed{20}$$ Actually, \boxed{24}`, "24", true},
		{`\boxed{3} is wrong, so the answer is \boxed{5}`, "3, 5", false},
		{`The solutions are $\boxed{2}$ and $\boxed{-3}$.`, "2", false},
	},
	"percentages in words": {
		{`\boxed{45 percent}`, `45\%`, true},
		{`\boxed{45\%}`, "45", true},
		{`\boxed{45\%}`, "0.45", true},
		{`\boxed{0.45}`, `45\%`, true},
		{"The answer is 12 per cent.", `12\%`, true},
		{`\boxed{45}`, "0.45", false},
		{`\boxed{4 \frac{4}{9}\%}`, `\frac{40}{900}`, true},
		{`\boxed{45 \text{ percent}}`, "45", true},
		{`\boxed{-5\%}`, "-5", true},
		{`\boxed{-5\%}`, "-0.05", true},
		{`\boxed{5\%}`, "-5", false},
	},
	"interval and the equivalent inequality": {
		{`\boxed{x \ge -1}`, `[-1, \infty)`, true},
		{`\boxed{(-\infty, 4)}`, "x < 4", true},
		{`\boxed{-3 < x \le 5}`, "(-3, 5]", true},
		{`\boxed{1 \le |x| \le 2}`, `[-2,-1] \cup [1,2]`, true},
		{`\boxed{0 < f(x) < 1}`, "(0, 1)", true},
		{`\boxed{x > -1}`, `[-1, \infty)`, false},
		{`\boxed{1 \le |x| \le 2}`, "[1, 2]", false},
	},
}

func TestAnswerFormats(t *testing.T) {
	lenient := &Checker{Correct: 1, Wrong: -1, Mode: Lenient}
	boxed := Default()
	for kind, cases := range formatCases {
		t.Run(kind, func(t *testing.T) {
			for _, c := range cases {
				r := lenient.Score(c.completion, c.gold)
				if r.Correct != c.want {
					t.Errorf("lenient Score(%q, %q) = %v (answer %q), want %v", c.completion, c.gold, r.Correct, r.Answer, c.want)
				}
				if _, ok := ExtractBoxed(c.completion); ok && lenient.Score(c.completion, c.gold).Answer == mustBoxed(c.completion) {
					if b := boxed.Score(c.completion, c.gold); b.Correct != c.want {
						t.Errorf("boxed Score(%q, %q) = %v (answer %q), want %v", c.completion, c.gold, b.Correct, b.Answer, c.want)
					}
				}
			}
		})
	}
}

func mustBoxed(s string) string { a, _ := ExtractBoxed(s); return a }
