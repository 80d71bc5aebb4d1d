// Package reward decides whether a model's final answer to a math problem equals the
// reference answer, and turns the verdict into the policy-gradient reward.
//
// ExtractBoxed (Boxed mode, the training reward) or Extract (Lenient mode, for evaluation)
// finds the answer in a completion; a gold goes through the same lenient extraction, so it
// may be a worked solution. Equivalent normalizes both sides, parses them into expression trees and compares them: exact (Gaussian) rationals
// first, a tolerance only when a side is written as a decimal, evaluation with 192-bit floats
// at several points for expressions with variables; tuples in order, sets in any order,
// intervals with their ends, matrices by shape, equations up to a non-zero factor,
// inequalities up to a positive one. Every check is bounded in size and time, and nothing
// here panics on any input.
//
// Verdicts follow Math-Verify (huggingface/Math-Verify) except where DIFFERENCES.md says why
// this package differs; TestMathVerifyAgreement measures the agreement on Math-Verify's own
// test suite. In short: a decimal must be the value rounded to the digits written; a comma is
// a decimal point only when the other side is one number; a variable the reference lacks
// never cancels; past the exact caps values compare to 192-bit relative precision; fenced
// code blocks and their outputs are not the model's answer; Boxed mode (the training reward)
// reads only the last \boxed{}.
package reward

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// DefaultTimeout is the deadline of one check when a Checker's Timeout is zero.
const DefaultTimeout = time.Second

// Mode selects where Checker.Score looks for the answer in a completion.
type Mode uint8

const (
	// Boxed takes only the last \boxed{} (with the boxes right before it that join it into
	// one answer, "\boxed{1} and \boxed{2}"); a completion without one is wrong. It is the
	// reference recipe's training reward and the default for RL.
	Boxed Mode = iota
	// Lenient also accepts "Final answer: ...", "the answer is ...", the last math span of the
	// last paragraph and the last number of the last line (Extract). It is the default for
	// evaluation and for `cir grade`.
	Lenient
)

// Modes lists the modes by name, in the order of their values.
var Modes = []string{"boxed", "lenient"}

// String returns the mode's name ("boxed" or "lenient").
func (m Mode) String() string {
	if int(m) < len(Modes) {
		return Modes[m]
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// ErrMode is wrapped by the error of ParseMode for an unknown name.
var ErrMode = errors.New("unknown extraction mode")

// ParseMode returns the mode named s: "boxed" or "lenient".
func ParseMode(s string) (Mode, error) {
	for i, n := range Modes {
		if s == n {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("%w %q (want boxed or lenient)", ErrMode, s)
}

// Result is the verdict on one completion.
type Result struct {
	Correct bool    // the extracted answer is equivalent to the reference
	Answer  string  // the extracted answer, "" when there is none
	Reward  float64 // Checker.Correct or Checker.Wrong
}

// Checker scores completions against reference answers. The zero value extracts in Boxed
// mode and gives rewards 0/0; use Default for +1/−1. A Checker is safe for concurrent use.
type Checker struct {
	Correct, Wrong float64       // rewards for an equivalent and for any other answer
	Timeout        time.Duration // deadline of one check; zero means DefaultTimeout
	Mode           Mode          // where the answer is looked for in a completion
}

// Default returns a Checker in Boxed mode with reward +1 for a correct answer and −1 otherwise.
func Default() *Checker { return &Checker{Correct: 1, Wrong: -1, Timeout: DefaultTimeout} }

// Score extracts the final answer of completion (by c.Mode) and compares it with the final
// answer of gold, which is extracted as leniently as any completion whatever the mode: a gold
// may be bare ("42"), in math delimiters, boxed, or a whole worked solution. A completion
// without an answer is wrong. It never panics (c must not be nil).
func (c *Checker) Score(completion, gold string) (r Result) {
	defer func() {
		if recover() != nil { // a safety net: a bug here must cost a reward, not the run
			r = Result{Reward: c.Wrong}
		}
	}()
	var ans string
	var ok bool
	if c.Mode == Lenient {
		ans, ok = Extract(completion)
	} else {
		ans, ok = ExtractBoxed(completion)
	}
	r = Result{Answer: ans, Reward: c.Wrong}
	if ok && c.equivalent(ans, goldAnswer(gold)) {
		r.Correct, r.Reward = true, c.Correct
	}
	return r
}

func (c *Checker) equivalent(pred, gold string) (eq bool) {
	t := c.Timeout
	if t <= 0 {
		t = DefaultTimeout
	}
	defer func() {
		if recover() != nil { // a safety net: a bug here must cost a reward, not the run
			eq = false
		}
	}()
	return compare(pred, gold, &budget{deadline: time.Now().Add(t)})
}

// Equivalent reports whether the answer pred equals the reference gold. pred is an answer
// already extracted (Extract's result); a box around it or math delimiters are removed, but
// prose around it is not searched — pass a whole completion to Checker.Score instead. gold is
// extracted like a completion (goldAnswer). It uses DefaultTimeout and never panics.
func Equivalent(pred, gold string) bool {
	return Default().equivalent(pred, goldAnswer(gold))
}
