package rl

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// BudgetStep says that from training step Step on, a trajectory may execute at most MaxCalls
// code blocks.
type BudgetStep struct {
	Step     int `yaml:"step" json:"step"`
	MaxCalls int `yaml:"max_calls" json:"max_calls"`
}

// Budget is the tool-budget schedule: steps in increasing order, the first at step 0.
type Budget []BudgetStep

// DefaultBudget is the paper's curriculum: 2 calls, 3 from step 100, 4 from step 200.
var DefaultBudget = Budget{{0, 2}, {100, 3}, {200, 4}}

// Validate reports an empty schedule, one not starting at step 0, steps not strictly
// increasing, or a negative budget.
func (b Budget) Validate() error {
	if len(b) == 0 {
		return fmt.Errorf("rl: empty tool-budget schedule")
	}
	if b[0].Step != 0 {
		return fmt.Errorf("rl: tool-budget schedule starts at step %d, want 0", b[0].Step)
	}
	for i, s := range b {
		if s.MaxCalls < 0 {
			return fmt.Errorf("rl: tool-budget entry %d: max_calls %d is negative", i, s.MaxCalls)
		}
		if i > 0 && s.Step <= b[i-1].Step {
			return fmt.Errorf("rl: tool-budget entry %d: step %d not after step %d", i, s.Step, b[i-1].Step)
		}
	}
	return nil
}

// At returns the budget in force at step: the MaxCalls of the last entry with Step ≤ step.
// It panics on an empty schedule (see Validate).
func (b Budget) At(step int) int {
	m := b[0].MaxCalls
	for _, s := range b {
		if s.Step <= step {
			m = s.MaxCalls
		}
	}
	return m
}

// String writes the schedule as ParseBudget reads it: "0:2,100:3,200:4".
func (b Budget) String() string {
	p := make([]string, len(b))
	for i, s := range b {
		p[i] = fmt.Sprintf("%d:%d", s.Step, s.MaxCalls)
	}
	return strings.Join(p, ",")
}

// ParseBudget reads a schedule written "step:max_calls,..." (a single number n means a
// constant budget n) and validates it.
func ParseBudget(s string) (Budget, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		b := Budget{{0, n}}
		return b, b.Validate()
	}
	var b Budget
	for _, part := range strings.Split(s, ",") {
		a, c, ok := strings.Cut(strings.TrimSpace(part), ":")
		step, err1 := strconv.Atoi(strings.TrimSpace(a))
		calls, err2 := strconv.Atoi(strings.TrimSpace(c))
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("rl: tool-budget entry %q: want step:max_calls", part)
		}
		b = append(b, BudgetStep{step, calls})
	}
	return b, b.Validate()
}

// LRKind names a learning-rate schedule.
type LRKind string

// The learning-rate schedules (HF transformers / verl semantics, steps counted from 0): all
// warm up linearly as step/Warmup for step < Warmup; then LRConstant stays at the base rate,
// LRCosine follows a half cosine from the base rate down to MinRatio·base at Total, LRLinear
// decays linearly to MinRatio·base at Total.
const (
	LRConstant LRKind = "constant"
	LRCosine   LRKind = "cosine"
	LRLinear   LRKind = "linear"
)

// LRKinds lists the supported schedules.
var LRKinds = []LRKind{LRConstant, LRCosine, LRLinear}

// LR is a learning-rate schedule.
type LR struct {
	Kind     LRKind
	Base     float64 // peak learning rate
	Warmup   int     // warm-up steps (0: none)
	Total    int     // total steps (the end of the decay)
	MinRatio float64 // floor of the decay, as a fraction of Base
}

// Validate reports an unknown kind or values outside their domain.
func (l LR) Validate() error {
	ok := false
	for _, k := range LRKinds {
		ok = ok || k == l.Kind
	}
	switch {
	case !ok:
		return fmt.Errorf("rl: unknown learning-rate schedule %q (want one of %v)", l.Kind, LRKinds)
	case !(l.Base >= 0) || math.IsInf(l.Base, 0):
		return fmt.Errorf("rl: learning rate %v is not a finite non-negative number", l.Base)
	case l.Warmup < 0:
		return fmt.Errorf("rl: warm-up steps %d is negative", l.Warmup)
	case l.MinRatio < 0 || l.MinRatio > 1:
		return fmt.Errorf("rl: minimum learning-rate ratio %v outside [0, 1]", l.MinRatio)
	case l.Kind != LRConstant && l.Total <= l.Warmup:
		return fmt.Errorf("rl: %s schedule needs total steps (%d) > warm-up steps (%d)", l.Kind, l.Total, l.Warmup)
	}
	return nil
}

// At returns the learning rate for optimizer step step (0-based).
func (l LR) At(step int) float64 {
	if step < l.Warmup {
		return l.Base * float64(step) / float64(l.Warmup)
	}
	if l.Kind == LRConstant {
		return l.Base
	}
	p := float64(step-l.Warmup) / float64(max(1, l.Total-l.Warmup))
	p = min(p, 1)
	var f float64
	if l.Kind == LRCosine {
		f = 0.5 * (1 + math.Cos(math.Pi*p))
	} else {
		f = 1 - p
	}
	return l.Base * (l.MinRatio + (1-l.MinRatio)*f)
}
