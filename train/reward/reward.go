// Package reward decides whether a model's final answer to a math problem equals the
// reference answer, and turns the verdict into the policy-gradient reward.
//
// Extract finds the answer in a completion (the last \boxed{}); Equivalent normalizes both
// sides, parses them into expression trees and compares them: exact rationals first, a
// relative tolerance only when a side is written as a decimal, high-precision evaluation at
// several points for expressions with variables; tuples in order, sets in any order,
// intervals with their ends, matrices by shape, equations up to a non-zero factor. Every
// check is bounded in size and time, and nothing here panics on any input.
package reward

import (
	"time"
)

// DefaultTimeout is the deadline of one check when a Checker's Timeout is zero.
const DefaultTimeout = time.Second

// Result is the verdict on one completion.
type Result struct {
	Correct bool    // the extracted answer is equivalent to the reference
	Answer  string  // the extracted answer, "" when there is none
	Reward  float64 // Checker.Correct or Checker.Wrong
}

// Checker scores completions against reference answers. The zero value gives rewards 0/0;
// use Default for +1/−1. A Checker is safe for concurrent use.
type Checker struct {
	Correct, Wrong float64       // rewards for an equivalent and for any other answer
	Timeout        time.Duration // deadline of one check; zero means DefaultTimeout
}

// Default returns a Checker with reward +1 for a correct answer and −1 otherwise.
func Default() *Checker { return &Checker{Correct: 1, Wrong: -1, Timeout: DefaultTimeout} }

// Score extracts the final answer of completion and compares it with gold (bare, $...$ or
// boxed). A completion without an answer is wrong. It never panics.
func (c *Checker) Score(completion, gold string) Result {
	ans, ok := Extract(completion)
	r := Result{Answer: ans, Reward: c.Wrong}
	if ok && c.equivalent(ans, gold) {
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
// prose around it is not searched — pass a whole completion to Checker.Score instead. gold may
// be bare, $...$ or boxed. It uses DefaultTimeout and never panics.
func Equivalent(pred, gold string) bool {
	return Default().equivalent(pred, gold)
}
