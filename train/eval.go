package train

import (
	"context"
	"slices"
	"sort"
	"strconv"
	"time"

	"cir/engine"
	"cir/model"
	"cir/train/rollout"
)

// EvalResult summarises an evaluation of k samples per problem.
type EvalResult struct {
	Problems int     `json:"problems"`
	K        int     `json:"k"`
	MaxCalls int     `json:"max_calls"`
	AvgAtK   float64 `json:"avg_at_k"`  // mean accuracy over all samples
	PassAtK  float64 `json:"pass_at_k"` // share of problems with a correct sample
	// PassAt is the unbiased pass@j estimated from the k samples, for j = 1, 2, 4, … < k and k
	// (keyed by j in decimal); pass@1 equals AvgAtK.
	PassAt      map[string]float64 `json:"pass_at"`
	MeanCalls   float64            `json:"mean_calls"`
	MeanLen     float64            `json:"mean_len"`                // response tokens
	ByKind      map[string]float64 `json:"by_kind,omitempty"`       // accuracy of each kind
	CallsByKind map[string]float64 `json:"calls_by_kind,omitempty"` // executed calls per answer of each kind
	Seconds     float64            `json:"seconds"`
}

// PassAt is the unbiased estimator of pass@k from n samples of which c are correct:
// 1 − C(n−c, k) / C(n, k). It panics if k > n.
func PassAt(n, c, k int) float64 {
	if k > n {
		panic("train: pass@k with k > n")
	}
	if n-c < k {
		return 1
	}
	p := 1.0
	for i := n - c + 1; i <= n; i++ {
		p *= 1 - float64(k)/float64(i)
	}
	return 1 - p
}

// Evaluator samples and grades answers to tasks: a decoder, the interpreter and the shared
// sampling settings, without an optimizer (cir eval uses it; Trainer.Evaluate is one).
type Evaluator struct {
	Dec      *model.Decoder
	Tok      rollout.Tokenizer
	Exec     rollout.Executor // may be nil when no budget allows a call
	Scorer   Scorer
	EOS      []int32
	Settings rollout.Settings
	// onAppend, when set, is the rollout engine's OnAppend (the trainer's test hook).
	onAppend func(traj int, ids []int32, role rollout.Role)
}

// sample runs the rollout of n samples of each task with a budget of maxCalls executions, the
// sampling rule sp and seed; ids, when set, are the tasks' indices in a larger batch of which
// this is a share (they seed the samples).
func (e *Evaluator) sample(ctx context.Context, tasks []Task, ids []int, n, maxCalls int, sp engine.SampleParams, seed uint64) ([]rollout.Trajectory, rollout.Stats, error) {
	prompts := make([][]int32, len(tasks))
	for i, task := range tasks {
		prompts[i] = task.Prompt
	}
	c := e.Settings.Config(n, maxCalls, e.EOS, seed)
	c.Sample, c.PromptIDs = sp, ids
	eng := rollout.Engine{Policy: Policy(e.Dec), Tok: e.Tok, Exec: e.Exec, Config: c, OnAppend: e.onAppend}
	return eng.Run(ctx, prompts)
}

// Evaluate samples k responses per task with at most maxCalls executions each (greedy when
// sp's temperature is 0) and grades them. The ranks of a group call it together: each samples
// its share of the tasks, and all return the result of the whole set.
func (t *Trainer) Evaluate(ctx context.Context, tasks []Task, k, maxCalls int, sp engine.SampleParams, seed uint64) (EvalResult, error) {
	t.at("eval", t.Step)
	start := time.Now()
	ids := t.share(len(tasks))
	mine := make([]Task, len(ids))
	for j, i := range ids {
		mine[j] = tasks[i]
	}
	var outs []graded
	var err error
	if len(mine) > 0 {
		outs, _, err = t.evaluator().grade(ctx, mine, ids, k, maxCalls, sp, seed)
	}
	parts, err := t.settle(ctx, err, encode(outs))
	if err != nil {
		return EvalResult{}, err
	}
	var all []graded
	for _, p := range parts {
		var o []graded
		if err := decode(p, &o); err != nil {
			return EvalResult{}, err
		}
		all = append(all, o...)
	}
	slices.SortFunc(all, func(a, b graded) int { return a.Index - b.Index })
	return summarize(tasks, k, maxCalls, all, time.Since(start)), nil
}

func (t *Trainer) evaluator() *Evaluator {
	e := &Evaluator{Dec: t.Dec, Tok: t.Tok, Exec: t.Exec, Scorer: t.Scorer, EOS: t.EOS, Settings: t.Cfg.Rollout.Settings}
	if t.hook != nil {
		n := 0
		e.onAppend = func(int, []int32, rollout.Role) { n++; t.at("token", n) }
	}
	return e
}

// graded is one graded sample of an evaluation, which the ranks exchange.
type graded struct {
	Index         int // task·k + sample, the task's index in the whole set
	Correct       bool
	Calls, Length int // executions, response tokens
}

// grade samples k responses to each of tasks (ids: their indices in the whole set) and grades
// them.
func (e *Evaluator) grade(ctx context.Context, tasks []Task, ids []int, k, maxCalls int, sp engine.SampleParams, seed uint64) ([]graded, time.Duration, error) {
	trajs, st, err := e.sample(ctx, tasks, ids, k, maxCalls, sp, seed)
	if err != nil {
		return nil, 0, err
	}
	out := make([]graded, len(trajs))
	for i, tr := range trajs {
		out[i] = graded{Index: ids[tr.Prompt]*k + tr.Sample, Correct: e.Scorer.Score(tr.Text, tasks[tr.Prompt].Answer).Correct,
			Calls: len(tr.Calls), Length: len(tr.Tokens) - tr.PromptLen}
	}
	return out, st.Wall, nil
}

// Evaluate samples k responses per task with at most maxCalls executions each (greedy when
// sp's temperature is 0) and grades them. Interrupted, it returns ErrInterrupted.
func (e *Evaluator) Evaluate(ctx context.Context, tasks []Task, k, maxCalls int, sp engine.SampleParams, seed uint64) (EvalResult, error) {
	if len(tasks) == 0 {
		return summarize(tasks, k, maxCalls, nil, 0), nil
	}
	outs, wall, err := e.grade(ctx, tasks, indices(len(tasks)), k, maxCalls, sp, seed)
	if err != nil {
		if ctx.Err() != nil {
			return EvalResult{}, interrupted(ctx.Err())
		}
		return EvalResult{}, err
	}
	return summarize(tasks, k, maxCalls, outs, wall), nil
}

// summarize computes the result of an evaluation of k samples of each of tasks from every
// graded sample (in the order of their indices).
func summarize(tasks []Task, k, maxCalls int, all []graded, wall time.Duration) EvalResult {
	r := EvalResult{Problems: len(tasks), K: k, MaxCalls: maxCalls, ByKind: map[string]float64{}, CallsByKind: map[string]float64{}}
	if len(tasks) == 0 {
		return r
	}
	correct := make([]int, len(tasks))
	kindN := map[string]int{}
	for _, g := range all {
		task := tasks[g.Index/k]
		if g.Correct {
			correct[g.Index/k]++
			r.ByKind[task.Kind]++
		}
		kindN[task.Kind]++
		r.CallsByKind[task.Kind] += float64(g.Calls)
		r.MeanCalls += float64(g.Calls)
		r.MeanLen += float64(g.Length)
	}
	n := float64(len(all))
	r.PassAt = map[string]float64{}
	for j := 1; ; j *= 2 {
		j = min(j, k)
		sum := 0.0
		for _, c := range correct {
			sum += PassAt(k, c, j)
		}
		r.PassAt[strconv.Itoa(j)] = sum / float64(len(tasks))
		if j == k {
			break
		}
	}
	for _, c := range correct {
		r.AvgAtK += float64(c) / float64(k)
	}
	r.AvgAtK /= float64(len(tasks))
	r.PassAtK = r.PassAt[strconv.Itoa(k)]
	r.MeanCalls /= n
	r.MeanLen /= n
	kinds := make([]string, 0, len(kindN))
	for kd := range kindN {
		kinds = append(kinds, kd)
	}
	sort.Strings(kinds)
	for _, kd := range kinds {
		r.ByKind[kd] /= float64(kindN[kd])
		r.CallsByKind[kd] /= float64(kindN[kd])
	}
	if len(kinds) == 1 && kinds[0] == "" {
		r.ByKind, r.CallsByKind = nil, nil
	}
	r.Seconds = wall.Seconds()
	return r
}
