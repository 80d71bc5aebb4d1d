package reward

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestExtract(t *testing.T) {
	cases := []struct {
		name, completion, want string
		ok                     bool
	}{
		{"boxed", `So $x = \boxed{42}$.`, "42", true},
		{"last boxed wins", `First \boxed{1}, then we correct it: the answer is \boxed{2}.`, "2", true},
		{"nested braces", `\boxed{\frac{1}{2}}`, `\frac{1}{2}`, true},
		{"deep nesting", `\boxed{\left(\frac{\sqrt{3}}{2}, \{1\}\right)}`, `\left(\frac{\sqrt{3}}{2}, \{1\}\right)`, true},
		{"fbox", `\fbox{7}`, "7", true},
		{"boxed space", `The answer is $\boxed 5$.`, "5", true},
		{"unbalanced last box falls back", `\boxed{3} and later \boxed{4`, "3", true},
		{"adjacent boxes form a set", `The roots are \boxed{1} and \boxed{2}.`, "1, 2", true},
		{"comma-separated boxes", `$\boxed{1}, \boxed{-2}$`, "1, -2", true},
		{"separated boxes do not join", `\boxed{1} is wrong; the solution is \boxed{2}`, "2", true},
		{"empty box", `\boxed{}`, "", false},
		{"blank box", `\boxed{  }`, "", false},
		{"final answer is", "Thus the final answer is $\\frac{3}{4}$. I hope it is correct.", `\frac{3}{4}`, true},
		{"Answer:", "Work...\nAnswer: 17", "17", true},
		{"answer colon with period", "Answer: 3.5.", "3.5", true},
		{"answer with a unit word", "The final answer is 5 apples.", "5", true},
		{"answer as a list", "The answer is 12 and 13", "12 and 13", true},
		{"answer in words", "Answer: Evelyn", "Evelyn", true},
		{"answer after a name", "Final Answer: The largest $n$ is 34.", "34", true},
		{"answer after a unit phrase", "Final Answer: Jane started 3 hours ago.", "3", true},
		{"final answer heading", "**Final Answer**\n12 apples", "12", true},
		{"final answer in passing", "In the final answer we note 5 cases. Thus 7.", "7", true},
		{"final answer sentence ends", "The final answer is 5. I hope it is correct. Note 6.", "5", true},
		{"final answer in quotes", `Final Answer: The final answer is "$12$ and $13$". I hope it is correct.`, "$12$ and $13$", true},
		{"final answer after the last box", `First \boxed{10}. Final Answer: The final answer is $12$. I hope it is correct.`, "12", true},
		{"unparsed final answer falls through", `Final answer is $\sum_{k=0}^n\bigl(k\bigr)$. I hope. 42`, "42", true},
		{"inline math does not span lines", "Answer $ \n 9 \n $", "", false},
		{"display math spans lines", "Answer $$ \n 9 \n $$", "9", true},
		{"rightmost of span and number", "We use $d = 5$ and there are 12 ways", "12", true},
		{"unparsed span kept as text", `So $\sum_{k=1}^n k$`, `\sum_{k=1}^n k`, true},
		{"box after a separate display box", "$$\\boxed{20}$$ \\boxed{143}", "143", true},
		{"boxes in one display", `$$\boxed{(3, 3)} \text{ for part (a) and } \boxed{(1, 1)}$$`, "(3, 3), (1, 1)", true},
		{"last math span", "We get $x=2$ and so the area is $12$", "12", true},
		{"display math", "Hence\n\\[ \\frac{7}{2} \\]", `\frac{7}{2}`, true},
		{"last number", "After all that the total comes to 1,000 apples", "1,000", true},
		{"negative number", "so it equals -12", "-12", true},
		{"fraction number", "which is 3/4", "3/4", true},
		{"number only on the last line", "We found 12 earlier.\nTherefore it cannot be done", "", false},
		{"no answer", "I don't know.", "", false},
		{"empty", "", "", false},
		{"code only", "```python\nprint(6*7)\n```\n```output\n42\n```", "", false},
		{"unterminated code", "Let me compute.\n```python\nx = 41", "", false},
		{"bare fraction", `\frac{1}{2}`, `\frac{1}{2}`, true},
		{"bare equation", "x = 3", "x = 3", true},
		{"bare dollar math", "$(3,4]$", "(3,4]", true},
		{"bare prose", "no idea", "", false},
		{"box printed by code is not the answer", "```python\nprint(r'\\boxed{42}')\n```\n```output\n\\boxed{42}\n```\nDone.", "", false},
		{"box before code still counts", "\\boxed{7}\n```python\nprint(1)\n```", "7", true},
		{"boxed after code", "```python\nprint(6*7)\n```\n```output\n42\n```\nSo \\boxed{42}.", "42", true},
		{"thousands of unclosed boxes", strings.Repeat(`\boxed{`, 5000) + `\boxed{7}`, "7", true},
		{"unclosed boxes after the last box", `\boxed{7}` + strings.Repeat(`\boxed{`, 5000), "7", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := Extract(c.completion)
			if got != c.want || ok != c.ok {
				t.Errorf("Extract(%q) = %q, %v; want %q, %v", c.completion, got, ok, c.want, c.ok)
			}
		})
	}
}

func TestScore(t *testing.T) {
	ck := Default()
	cases := []struct {
		name, completion, gold string
		correct                bool
		answer                 string
	}{
		{"correct", `Therefore $\boxed{\frac{14}{3}}$.`, `\frac{14}{3}`, true, `\frac{14}{3}`},
		{"boxed gold", `\boxed{104}`, `\boxed{104}`, true, "104"},
		{"dollar gold", `\boxed{0.5}`, `$\frac12$`, true, "0.5"},
		{"wrong", `\boxed{41}`, "42", false, "41"},
		{"no answer", "I think it is hard.", "42", false, ""},
		{"every integer boxed", `\boxed{` + strings.Join(ints(0, 100), ", ") + `}`, "42", false, strings.Join(ints(0, 100), ", ")},
		{"every integer in its own box", func() string {
			var b strings.Builder
			for _, s := range ints(0, 100) {
				b.WriteString(`\boxed{` + s + `}, `)
			}
			return b.String()
		}(), "42", false, strings.Join(ints(0, 100), ", ")},
		{"boxed x", `\boxed{x}`, "42", false, "x"},
		{"empty box", `\boxed{}`, "42", false, ""},
		{"identity", `\boxed{0=0}`, "42", false, "0=0"},
		{"roots as boxes", `\boxed{1+\sqrt{5}}, \boxed{1-\sqrt{5}}, \boxed{-2}`, `\{1\pm\sqrt{5},-2\}`, true, `1+\sqrt{5}, 1-\sqrt{5}, -2`},
		{"no box in boxed mode", "The final answer is 28\\%.", `28\%`, false, ""},
		{"no box in boxed mode, bare answer", "42", "42", false, ""},
		{"gold is a worked solution", `\boxed{5}`, `Adding, $2+3=\boxed{5}$.`, true, "5"},
		{"gold solution, wrong answer", `\boxed{6}`, `Adding, $2+3=\boxed{5}$.`, false, "6"},
		{"gold with an answer sentence", `\boxed{7}`, "We count them.\nThe answer is 7.", true, "7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := ck.Score(c.completion, c.gold)
			want := -1.0
			if c.correct {
				want = 1
			}
			if r.Correct != c.correct || r.Reward != want || r.Answer != c.answer {
				t.Errorf("Score(%q, %q) = %+v; want correct=%v reward=%v answer=%q", c.completion, c.gold, r, c.correct, want, c.answer)
			}
		})
	}
}

// TestScoreLenient: the fallbacks of Lenient mode, which Boxed mode does not take.
func TestScoreLenient(t *testing.T) {
	lenient := &Checker{Correct: 1, Wrong: -1, Mode: Lenient}
	boxed := Default()
	cases := []struct {
		name, completion, gold string
		answer                 string
	}{
		{"final answer sentence", "The final answer is 28\\%.", `28\%`, `28\%`},
		{"bare answer", "42", "42", "42"},
		{"answer colon", "Work.\nAnswer: 17", "17", "17"},
		{"last math span", "So the area is $12$", "12", "12"},
		{"last number", "so the total comes to 1,000 apples", "1000", "1,000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if r := lenient.Score(c.completion, c.gold); !r.Correct || r.Answer != c.answer || r.Reward != 1 {
				t.Errorf("lenient Score(%q, %q) = %+v, want correct with answer %q", c.completion, c.gold, r, c.answer)
			}
			if r := boxed.Score(c.completion, c.gold); r.Correct || r.Answer != "" || r.Reward != -1 {
				t.Errorf("boxed Score(%q, %q) = %+v, want no answer, reward -1", c.completion, c.gold, r)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{Boxed, Lenient} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", m.String(), got, err, m)
		}
	}
	if _, err := ParseMode("strict"); !errors.Is(err, ErrMode) || !strings.Contains(err.Error(), `"strict"`) {
		t.Errorf("ParseMode(strict) error = %v, want ErrMode naming it", err)
	}
	var zero Checker
	if zero.Mode != Boxed || Default().Mode != Boxed {
		t.Errorf("the zero Checker and Default() must extract in Boxed mode")
	}
}

// TestScoreCompletions: whole completions in the styles Math-Verify's tests use (Lenient mode).
func TestScoreCompletions(t *testing.T) {
	cases := []struct {
		completion, gold string
		want             bool
	}{
		{"Answer \\[ 9 \\]", "$9$", true},
		{"Answer $ 9 $", "$9$", true},
		{"Answer $$ 9 $$", "$9$", true},
		{"Answer \\( 9 \\)", "$9$", true},
		{"Answer \\( (9+1) \\)", "$10$", true},
		{"Answer \\[ \n 9 \n \\]", "$9$", true},
		{"Final Answer: The final answer is $28 \\%$. I hope it is correct.", "$28\\%$", true},
		{"so it is $\\boxed{14{,}916}$", "14916", true},
		{"the sum is between $\\boxed{12\\text{ and }13}$", "12, 13", true},
		{"Thus $x-p=\\boxed{2-2p}$.", "$2-2p$", true},
		{"the only integer roots are $\\boxed{-2,1}.$", "$-2,1$", true},
		{"the polar coordinates are $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$", "$(3, \\frac{\\pi}{2})$", true},
		{"Therefore, $\\boxed{\\text{Evelyn}}$ is our answer.", "$\\text{Evelyn}$", true},
		{"$$\\frac{1}{2}\\times 3 \\times 10 = \\boxed{15\\mbox{ cm}^2}.$$", "$15\\mbox{ cm}^2$", true},
		{"So $7 \\le x \\le 47$, i.e. $\\boxed{7 \\le x \\le 47}$", "[7, 47]", true},
		{"The answer is \\boxed{5} apples, not \\boxed{6}", "5", false},
		{"The number is AZYUK2A", "2", false},
	}
	ck := &Checker{Correct: 1, Wrong: -1, Mode: Lenient}
	for _, c := range cases {
		if r := ck.Score(c.completion, c.gold); r.Correct != c.want {
			t.Errorf("Score(%q, %q) = %+v, want correct=%v", c.completion, c.gold, r, c.want)
		}
	}
}

func TestCheckerRewards(t *testing.T) {
	ck := &Checker{Correct: 2.5, Wrong: 0.25}
	if r := ck.Score(`\boxed{4}`, "4"); r.Reward != 2.5 || !r.Correct {
		t.Errorf("correct: got %+v, want reward 2.5", r)
	}
	if r := ck.Score(`\boxed{5}`, "4"); r.Reward != 0.25 || r.Correct {
		t.Errorf("wrong: got %+v, want reward 0.25", r)
	}
}

// TestTimeout: a check that cannot finish within its deadline is wrong and returns soon
// after the deadline; with time enough the same check is right.
func TestTimeout(t *testing.T) {
	// Two sets of 200 irrational values in opposite orders: ~20,000 high-precision comparisons.
	var fwd, rev []string
	for i := 1; i <= 200; i++ {
		fwd = append(fwd, `\sqrt{2}+`+itoa(i))
		rev = append([]string{`\sqrt{8}/2+` + itoa(i)}, rev...)
	}
	pred, gold := `\boxed{\{`+strings.Join(rev, ", ")+`\}}`, `\{`+strings.Join(fwd, ", ")+`\}`
	slow := &Checker{Correct: 1, Wrong: -1, Timeout: time.Minute}
	start := time.Now()
	if r := slow.Score(pred, gold); !r.Correct {
		t.Fatalf("with a minute the sets should match: %+v", r.Correct)
	}
	full := time.Since(start)
	fast := &Checker{Correct: 1, Wrong: -1, Timeout: time.Millisecond}
	start = time.Now()
	r := fast.Score(pred, gold)
	el := time.Since(start)
	if full > 20*time.Millisecond && r.Correct {
		t.Errorf("a check taking %v passed a 1ms deadline", full)
	}
	if el > full/2+50*time.Millisecond && full > 200*time.Millisecond {
		t.Errorf("with a 1ms deadline the check took %v (%v in full)", el, full)
	}
	t.Logf("full check %v, with a 1ms deadline %v", full, el)
}

// TestConcurrent: one Checker from many goroutines gives the same verdicts (run with -race).
func TestConcurrent(t *testing.T) {
	ck := Default()
	pairs := [][2]string{{`\boxed{\frac12}`, "0.5"}, {`\boxed{x^2-1}`, "(x-1)(x+1)"}, {`\boxed{3}`, "4"}, {`\boxed{(3,4]}`, "(3,4]"}}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				p := pairs[(g+i)%len(pairs)]
				want := p[1] != "4"
				if r := ck.Score(p[0], p[1]); r.Correct != want {
					errs <- p[0] + " vs " + p[1]
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("concurrent verdict wrong: %s", e)
	}
}
