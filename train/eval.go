package train

import (
	"context"
	"sort"
	"strconv"

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
// sampling rule sp and seed.
func (e *Evaluator) sample(ctx context.Context, tasks []Task, n, maxCalls int, sp engine.SampleParams, seed uint64) ([]rollout.Trajectory, rollout.Stats, error) {
	prompts := make([][]int32, len(tasks))
	for i, task := range tasks {
		prompts[i] = task.Prompt
	}
	c := e.Settings.Config(n, maxCalls, e.EOS, seed)
	c.Sample = sp
	eng := rollout.Engine{Policy: Policy(e.Dec), Tok: e.Tok, Exec: e.Exec, Config: c, OnAppend: e.onAppend}
	return eng.Run(ctx, prompts)
}

// Evaluate samples k responses per task with at most maxCalls executions each (greedy when
// sp's temperature is 0) and grades them.
func (t *Trainer) Evaluate(ctx context.Context, tasks []Task, k, maxCalls int, sp engine.SampleParams, seed uint64) (EvalResult, error) {
	t.at("eval", t.Step)
	return t.evaluator().Evaluate(ctx, tasks, k, maxCalls, sp, seed)
}

func (t *Trainer) evaluator() *Evaluator {
	e := &Evaluator{Dec: t.Dec, Tok: t.Tok, Exec: t.Exec, Scorer: t.Scorer, EOS: t.EOS, Settings: t.Cfg.Rollout.Settings}
	if t.hook != nil {
		n := 0
		e.onAppend = func(int, []int32, rollout.Role) { n++; t.at("token", n) }
	}
	return e
}

// Evaluate samples k responses per task with at most maxCalls executions each (greedy when
// sp's temperature is 0) and grades them. Interrupted, it returns ErrInterrupted.
func (e *Evaluator) Evaluate(ctx context.Context, tasks []Task, k, maxCalls int, sp engine.SampleParams, seed uint64) (EvalResult, error) {
	r := EvalResult{Problems: len(tasks), K: k, MaxCalls: maxCalls, ByKind: map[string]float64{}, CallsByKind: map[string]float64{}}
	if len(tasks) == 0 {
		return r, nil
	}
	trajs, st, err := e.sample(ctx, tasks, k, maxCalls, sp, seed)
	if err != nil {
		if ctx.Err() != nil {
			return r, interrupted(ctx.Err())
		}
		return r, err
	}
	correct := make([]int, len(tasks))
	kindN := map[string]int{}
	for _, tr := range trajs {
		task := tasks[tr.Prompt]
		ok := e.Scorer.Score(tr.Text, task.Answer).Correct
		if ok {
			correct[tr.Prompt]++
			r.ByKind[task.Kind]++
		}
		kindN[task.Kind]++
		r.CallsByKind[task.Kind] += float64(len(tr.Calls))
		r.MeanCalls += float64(len(tr.Calls))
		r.MeanLen += float64(len(tr.Tokens) - tr.PromptLen)
	}
	n := float64(len(trajs))
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
	r.Seconds = st.Wall.Seconds()
	return r, nil
}
