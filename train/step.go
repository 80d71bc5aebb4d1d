package train

import (
	"context"
	"fmt"
	"math"
	"time"

	"cir/engine"
	"cir/model"
	"cir/train/metrics"
	"cir/train/rl"
	"cir/train/rollout"
)

// Budget is the tool budget at step.
func (t *Trainer) Budget(step int) int { return t.budget.At(step) }

// MaxCalls is the tool budget of the current step.
func (t *Trainer) MaxCalls() int { return t.budget.At(t.Step) }

// temperature is the rollout temperature, which the training forward divides the logits by
// (as verl does), so that old and new log-probs are those of the distribution sampled from.
func (t *Trainer) temperature() float32 { return float32(t.Cfg.Rollout.Temperature) }

// rollout samples n trajectories for each task with the given budget, sampling rule and seed.
func (t *Trainer) rollout(ctx context.Context, tasks []Task, n, maxCalls int, sp engine.SampleParams, seed uint64) ([]rollout.Trajectory, rollout.Stats, error) {
	return t.evaluator().sample(ctx, tasks, n, maxCalls, sp, seed)
}

// batch is a step's scored rollout with everything its update needs, and how far the update
// got: a checkpoint taken during the update carries it, so that the resumed run finishes
// exactly the same update.
type batch struct {
	Tokens    [][]int32
	PromptLen []int
	Mask      [][]bool    // loss mask of each response
	Adv       [][]float32 // advantages of each response token
	Old, Ref  [][]float32 // old and reference log-probs; nil until computed
	LR        float64
	Done      int // mini-batch updates done, epochs × mini-batches in order
	Stats     rl.Stats
	KLRef     float64
	GradNorm  float64 // the largest finite gradient norm of the updates
	Skipped   int     // updates skipped for a gradient norm that was not finite
	Record    metrics.Step
}

func (b *batch) seqs() []seq {
	s := make([]seq, len(b.Tokens))
	for i := range s {
		s[i] = seq{ids: b.Tokens[i], P: b.PromptLen[i]}
	}
	return s
}

// RLStep runs one RL step: rollouts on the current weights, rewards, advantages, old
// log-probs recomputed by the training forward, then rl.ppo_epochs passes of one PPO update
// per mini-batch. It returns the step's metrics. When ctx is done it returns ErrInterrupted:
// during the rollout the step is dropped (the task order rewound); after it the scored
// rollout and the updates done so far are kept, and the next RLStep (or a checkpoint's
// Resume) finishes the step from there.
func (t *Trainer) RLStep(ctx context.Context) (metrics.Step, error) {
	start := time.Now()
	if t.pending == nil {
		b, err := t.collect(ctx)
		if err != nil {
			return metrics.Step{}, err
		}
		if len(b.Tokens) == 0 { // dynamic sampling kept no group
			t.Step++
			b.Record.StepSec = time.Since(start).Seconds()
			return b.Record, nil
		}
		t.pending = b
	}
	b := t.pending
	u0 := time.Now()
	if err := t.update(ctx, b); err != nil {
		return metrics.Step{}, err
	}
	m := b.Record
	updates := float64(t.Cfg.RL.PPOEpochs * t.Cfg.Optim.MiniBatches)
	m.PolicyLoss = b.Stats.Loss / updates
	m.KLRef = b.KLRef / updates
	m.ClipFracLow = b.Stats.ClipFracLow()
	m.ClipFracHigh = b.Stats.ClipFracHigh()
	m.DualClipFrac = b.Stats.DualClipFrac()
	m.ApproxKL = b.Stats.ApproxKL()
	m.GradNorm = b.GradNorm
	m.SkippedUpdates = b.Skipped
	m.UpdateSec = time.Since(u0).Seconds()
	m.StepSec = m.RolloutSec + m.RewardSec + time.Since(u0).Seconds()
	tokens := 0
	for _, s := range b.Tokens {
		tokens += len(s)
	}
	m.TokensPerSec = float64(tokens) / m.StepSec
	t.pending = nil
	t.Step++
	return m, nil
}

// collect samples and scores the step's rollout (with dynamic sampling's refills) and
// computes the advantages; the batch has no sequences when no group was kept. Interrupted,
// it rewinds the task order to where the step began.
func (t *Trainer) collect(ctx context.Context) (*batch, error) {
	cfg := t.Cfg
	start := time.Now()
	maxCalls := t.MaxCalls()
	cursor := t.sampler().Cursor()
	var (
		trajs  []rollout.Trajectory
		scores []float64
		hits   []bool
		tTool  time.Duration
		tRew   time.Duration
	)
	kept := 0
	// Dynamic sampling: groups whose rewards are all equal carry no signal; drop them and
	// refill with fresh prompts, at most MaxResample extra rounds.
	for round := 0; round == 0 || (cfg.RL.DynamicSampling && kept < cfg.Rollout.PromptsPerStep && round <= cfg.RL.MaxResample); round++ {
		want := cfg.Rollout.PromptsPerStep - kept
		tasks := make([]Task, want)
		for i, j := range t.sampler().Next(want) {
			tasks[i] = t.Train[j]
		}
		seed := cfg.Run.Seed*1_000_003 + uint64(t.Step)*101 + uint64(round)
		t.at("rollout", t.Step)
		tr, s, err := t.rollout(ctx, tasks, cfg.Rollout.N, maxCalls, cfg.Rollout.Sample(), seed)
		if err != nil {
			if serr := t.sampler().Seek(cursor); serr != nil {
				return nil, serr
			}
			if ctx.Err() != nil {
				return nil, interrupted(ctx.Err())
			}
			return nil, err
		}
		tTool += s.ToolTime
		r0 := time.Now()
		sc := make([]float64, len(tr))
		hit := make([]bool, len(tr))
		groups := make([]int, len(tr))
		for i := range tr {
			task := tasks[tr[i].Prompt]
			hit[i] = t.Scorer.Score(tr[i].Text, task.Answer).Correct
			sc[i] = cfg.Reward.Wrong
			if hit[i] {
				sc[i] = cfg.Reward.Correct
			}
			if cfg.RL.OverlongBuffer > 0 {
				sc[i] += rl.OverlongPenalty(len(tr[i].Tokens)-tr[i].PromptLen, cfg.Rollout.MaxResponse, cfg.RL.OverlongBuffer, cfg.RL.OverlongFactor)
			}
			groups[i] = tr[i].Prompt
		}
		tRew += time.Since(r0)
		keep := make([]bool, len(tasks))
		for i := range keep {
			keep[i] = true
		}
		if cfg.RL.DynamicSampling {
			k, err := rl.KeepGroups(sc, groups)
			if err != nil {
				return nil, err
			}
			keep = k
		}
		for g := range tasks {
			if !keep[g] {
				continue
			}
			for i := range tr {
				if tr[i].Prompt == g {
					tr[i].Prompt = kept
					trajs = append(trajs, tr[i])
					scores = append(scores, sc[i])
					hits = append(hits, hit[i])
				}
			}
			kept++
		}
		if !cfg.RL.DynamicSampling {
			break
		}
	}
	m := metrics.Step{Step: t.Step + 1, LR: t.lr.At(t.Step), MaxCalls: maxCalls, Groups: kept,
		RolloutSec: (time.Since(start) - tRew).Seconds(), SandboxSec: tTool.Seconds(), RewardSec: tRew.Seconds()}
	t.rolloutMetrics(&m, trajs, scores, hits)
	n := len(trajs)
	b := &batch{Tokens: make([][]int32, n), PromptLen: make([]int, n), Mask: make([][]bool, n), LR: m.LR, Record: m}
	if n == 0 {
		return b, nil
	}
	groups := make([]int, n)
	whiten := make([][]bool, n)
	truncated := make([]bool, n)
	for i, tr := range trajs {
		groups[i] = tr.Prompt
		b.Tokens[i], b.PromptLen[i] = tr.Tokens, tr.PromptLen
		b.Mask[i] = rl.MaskFromRoles(tr.Roles[tr.PromptLen:], cfg.RL.MaskToolTokens)
		truncated[i] = tr.Finish == rollout.FinishLength
		whiten[i] = b.Mask[i]
		if t.whiten == rl.WhitenResponse {
			whiten[i] = make([]bool, len(tr.Tokens)-tr.PromptLen)
			for j := range whiten[i] {
				whiten[i][j] = true
			}
		}
	}
	if cfg.RL.OverlongFilter {
		rl.MaskTruncated(b.Mask, truncated)
	}
	var err error
	if b.Adv, err = rl.Advantages(t.est, scores, groups, b.Mask, whiten); err != nil {
		return nil, err
	}
	return b, nil
}

// rolloutMetrics adds the reward, length and tool statistics of trajs to m.
func (t *Trainer) rolloutMetrics(m *metrics.Step, trajs []rollout.Trajectory, scores []float64, hits []bool) {
	n := float64(max(1, len(trajs)))
	var sum, sq, acc, lenSum, lenMax, clipped, calls, ok, toolToks, respToks float64
	for i, tr := range trajs {
		sum += scores[i]
		sq += scores[i] * scores[i]
		if hits[i] {
			acc++
		}
		l := float64(len(tr.Tokens) - tr.PromptLen)
		lenSum += l
		lenMax = math.Max(lenMax, l)
		if tr.Finish == rollout.FinishLength {
			clipped++
		}
		calls += float64(len(tr.Calls))
		m.ToolCallsMax = max(m.ToolCallsMax, len(tr.Calls))
		for _, c := range tr.Calls {
			if c.Kind == rollout.KindOK {
				ok++
			}
		}
		for _, r := range tr.Roles[tr.PromptLen:] {
			respToks++
			if r == rollout.RoleTool {
				toolToks++
			}
		}
	}
	mean := sum / n
	m.RewardMean = mean
	m.RewardStd = math.Sqrt(math.Max(0, sq/n-mean*mean))
	m.Accuracy = acc / n
	m.ResponseLenMean = lenSum / n
	m.ResponseLenMax = int(lenMax)
	m.ClippedShare = clipped / n
	m.ToolCalls = calls / n
	m.ToolSuccess = ok / math.Max(1, calls)
	if t.Cfg.RL.MaskToolTokens {
		m.MaskedShare = toolToks / math.Max(1, respToks)
	}
}

// update finishes the step's update from where b says it stands: the old log-probs (and the
// reference's, with the KL term) by the training forward at the rollout temperature, then
// the PPO updates left of rl.ppo_epochs passes over Optim.MiniBatches mini-batches. An update
// whose gradient norm is not finite is skipped and counted. With a Comm, this rank computes
// the gradients of every Size-th sequence of each mini-batch (from its Rank) with the
// mini-batch's global loss weights, and the gradients are summed over the ranks before the
// step: the same update as one rank on the whole batch; every rank must hold the same b.
// Interrupted (ErrInterrupted), b keeps what was done.
func (t *Trainer) update(ctx context.Context, b *batch) error {
	cfg := t.Cfg
	seqs := b.seqs()
	temp := t.temperature()
	if b.Old == nil {
		t.at("old", t.Step)
		old := make([][]float32, len(seqs))
		var entSum float64
		var entN int
		err := t.pass(ctx, t.Model, seqs, temp, noGrad, func(i int, logp, ent, _, _ []float32) {
			old[i] = append([]float32(nil), logp...)
			for j, ok := range b.Mask[i] {
				if ok {
					entSum += float64(ent[j])
					entN++
				}
			}
		})
		if err != nil {
			return err
		}
		b.Old = old
		b.Record.Entropy = entSum / math.Max(1, float64(entN))
	}
	if cfg.RL.KLCoef != 0 && b.Ref == nil {
		ref, err := t.refLogp(ctx, seqs)
		if err != nil {
			return err
		}
		b.Ref = ref
	}
	n, mbs := len(seqs), cfg.Optim.MiniBatches
	rank, size := 0, 1
	if t.Comm != nil {
		rank, size = t.Comm.Rank(), t.Comm.Size()
	}
	g := logpGrad
	if cfg.RL.EntropyCoef != 0 {
		g = bothGrad
	}
	for ; b.Done < cfg.RL.PPOEpochs*mbs; b.Done++ {
		t.at("update", b.Done)
		mb := b.Done % mbs
		lo, hi := mb*n/mbs, (mb+1)*n/mbs
		if lo == hi {
			continue
		}
		w, err := rl.Weights(t.agg, b.Mask[lo:hi], cfg.Rollout.MaxResponse)
		if err != nil {
			return err
		}
		var mine []int // indices into seqs[lo:hi] this rank computes
		for i := rank; i < hi-lo; i += size {
			mine = append(mine, i)
		}
		local := make([]seq, len(mine))
		for k, i := range mine {
			local[k] = seqs[lo+i]
		}
		var stats rl.Stats
		var klRef float64
		var perr error
		t.Model.ZeroGrad()
		err = t.pass(ctx, t.Model, local, temp, g, func(k int, logp, _, d, de []float32) {
			i := mine[k]
			s, err := t.ppo.PolicyLoss([][]float32{logp}, [][]float32{b.Old[lo+i]}, [][]float32{b.Adv[lo+i]}, [][]float32{w[i]}, [][]float32{d})
			if err == nil && b.Ref != nil {
				var kl float64
				kl, err = rl.KLLoss(t.kl, cfg.RL.KLCoef, [][]float32{logp}, [][]float32{b.Ref[lo+i]}, [][]float32{w[i]}, [][]float32{d})
				s.Loss += cfg.RL.KLCoef * kl
				klRef += kl
			}
			if de != nil {
				// The entropy bonus: the loss gains −coef·Σ w·H.
				for j, wj := range w[i] {
					de[j] = float32(-cfg.RL.EntropyCoef * float64(wj))
				}
			}
			if err != nil && perr == nil {
				perr = err
			}
			stats.Add(s)
		})
		if err == nil {
			err = perr
		}
		if err == nil && t.Comm != nil {
			err = t.Comm.AllReduceSum(t.Model.Grads.All)
		}
		if err != nil {
			return err
		}
		norm, stepped, err := t.applyUpdate(b.LR)
		if err != nil {
			return err
		}
		if stepped {
			b.GradNorm = math.Max(b.GradNorm, norm)
		} else {
			b.Skipped++
		}
		b.Stats.Add(stats)
		b.KLRef += klRef
	}
	return nil
}

// refLogp returns the frozen reference's log-probs of the response tokens of seqs (at the
// rollout temperature, as verl), making the reference from the current policy when there is
// none yet.
func (t *Trainer) refLogp(ctx context.Context, seqs []seq) ([][]float32, error) {
	if err := t.makeRef(); err != nil {
		return nil, err
	}
	out := make([][]float32, len(seqs))
	err := t.pass(ctx, t.Ref, seqs, t.temperature(), noGrad, func(i int, logp, _, _, _ []float32) {
		out[i] = append([]float32(nil), logp...)
	})
	return out, err
}

// makeRef makes the KL reference a copy of the current policy, when the run has a KL term
// and no reference yet.
func (t *Trainer) makeRef() error {
	if t.Ref != nil || t.Cfg.RL.KLCoef == 0 {
		return nil
	}
	ref, err := model.New(t.Model.Cfg, t.Model.B)
	if err != nil {
		return fmt.Errorf("reference model: %w", err)
	}
	t.Model.B.Copy(ref.Params.All, t.Model.Params.All)
	t.Ref, t.refOwned = ref, true
	return t.Model.B.Sync()
}
