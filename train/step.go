package train

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"cir/engine"
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

// rollout samples n trajectories for each task (ids: the tasks' indices in the whole batch,
// which seed their samples) with the given budget, sampling rule and seed.
func (t *Trainer) rollout(ctx context.Context, tasks []Task, ids []int, n, maxCalls int, sp engine.SampleParams, seed uint64) ([]rollout.Trajectory, rollout.Stats, error) {
	return t.evaluator().sample(ctx, tasks, ids, n, maxCalls, sp, seed)
}

// batch is this rank's part of a step's scored rollout with everything its update needs, and
// how far the update got: a checkpoint taken during the update carries the whole batch (every
// rank's part), so that the resumed run finishes exactly the same update on any number of
// ranks.
type batch struct {
	Tokens    [][]int32
	PromptLen []int
	Mask      [][]bool    // loss mask of each response
	Adv       [][]float32 // advantages of each response token
	Old, Ref  [][]float32 // old and reference log-probs; nil until computed
	// Index is each sequence's index in the whole batch (ascending), Total the sequences of
	// the whole batch, Minis the loss totals of each of its mini-batches, AllTokens its
	// tokens; nil Index (a checkpoint of one rank before data parallelism) is 0, 1, ….
	Index     []int
	Total     int
	Minis     []rl.Totals
	AllTokens int
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

// mini is the range of indices of the whole batch of mini-batch mb of mbs.
func (b *batch) mini(mb, mbs int) (lo, hi int) { return mb * b.Total / mbs, (mb + 1) * b.Total / mbs }

// RLStep runs one RL step: rollouts on the current weights, rewards, advantages, old
// log-probs recomputed by the training forward, then rl.ppo_epochs passes of one PPO update
// per mini-batch. It returns the step's metrics. When ctx is done it returns ErrInterrupted:
// during the rollout the step is dropped (the task order rewound); after it the scored
// rollout and the updates done so far are kept, and the next RLStep (or a checkpoint's
// Resume) finishes the step from there. The ranks of a group call it together.
func (t *Trainer) RLStep(ctx context.Context) (metrics.Step, error) {
	start := time.Now()
	if t.pending == nil {
		b, err := t.collect(ctx)
		if err != nil {
			return metrics.Step{}, err
		}
		if b.Total == 0 { // dynamic sampling kept no group
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
	m.TokensPerSec = float64(b.AllTokens) / m.StepSec
	t.pending = nil
	t.Step++
	return m, nil
}

// outcome is what the batch-wide computations need of one trajectory, which the ranks
// exchange: its reward, what the metrics count, and its token counts in the loss mask (after
// the overlong filter) and in the whitening set.
type outcome struct {
	Index            int // in its round: prompt·n + sample
	Score            float64
	Hit, Truncated   bool
	Tokens, Response int // all its tokens, and those after the prompt
	Tool             int // response tokens of the interpreter
	Calls, CallsOK   int
	Masked, Whitened int
}

// collect samples and scores this rank's share of the step's rollout (whole groups: the
// prompts i of a round with i ≡ rank mod size), with dynamic sampling's refills, and computes
// the advantages from every rank's outcomes; the batch has no sequences when no group was
// kept. Interrupted, it rewinds the task order to where the step began.
func (t *Trainer) collect(ctx context.Context) (*batch, error) {
	cfg := t.Cfg
	start := time.Now()
	maxCalls := t.MaxCalls()
	cursor := t.sampler().Cursor()
	n := cfg.Rollout.N
	b := &batch{}
	var (
		all   []outcome // the kept trajectories of every rank, in the order of the whole batch
		tTool time.Duration
		tRew  time.Duration
	)
	kept := 0
	// Dynamic sampling: groups whose rewards are all equal carry no signal; drop them and
	// refill with fresh prompts, at most MaxResample extra rounds.
	for round := 0; round == 0 || (cfg.RL.DynamicSampling && kept < cfg.Rollout.PromptsPerStep && round <= cfg.RL.MaxResample); round++ {
		want := cfg.Rollout.PromptsPerStep - kept
		order := t.sampler().Next(want)
		ids := t.share(want)
		tasks := make([]Task, len(ids))
		for k, i := range ids {
			tasks[k] = t.Train[order[i]]
			t.at("prompt", order[i])
		}
		seed := cfg.Run.Seed*1_000_003 + uint64(t.Step)*101 + uint64(round)
		t.at("rollout", t.Step)
		tr, s, err := t.rollout(ctx, tasks, ids, n, maxCalls, cfg.Rollout.Sample(), seed)
		var mine []outcome
		var masks [][]bool
		if err == nil {
			tTool += s.ToolTime
			r0 := time.Now()
			mine, masks = t.score(tr, tasks, ids)
			tRew += time.Since(r0)
		}
		parts, err := t.settle(ctx, err, encode(mine))
		if err != nil {
			if serr := t.sampler().Seek(cursor); serr != nil {
				return nil, serr
			}
			return nil, err
		}
		round := make([]outcome, 0, want*n)
		for _, p := range parts {
			var o []outcome
			if err := decode(p, &o); err != nil {
				return nil, err
			}
			round = append(round, o...)
		}
		slices.SortFunc(round, func(a, b outcome) int { return a.Index - b.Index })
		if len(round) != want*n {
			return nil, fmt.Errorf("train: the ranks returned %d trajectories of %d", len(round), want*n)
		}
		keep := make([]bool, want)
		for i := range keep {
			keep[i] = true
		}
		if cfg.RL.DynamicSampling {
			scores, groups := make([]float64, len(round)), make([]int, len(round))
			for i, o := range round {
				scores[i], groups[i] = o.Score, o.Index/n
			}
			if keep, err = rl.KeepGroups(scores, groups); err != nil {
				return nil, err
			}
		}
		// The kept groups, in order, take the next places of the whole batch; this rank keeps
		// its own trajectories of them (in the order of the whole batch: its prompts ascend).
		place := make([]int, want)
		for g := range keep {
			if keep[g] {
				place[g] = kept
				all = append(all, round[g*n:(g+1)*n]...)
				kept++
			}
		}
		for k, x := range tr {
			if g := ids[x.Prompt]; keep[g] {
				b.Index = append(b.Index, place[g]*n+x.Sample)
				b.Tokens = append(b.Tokens, x.Tokens)
				b.PromptLen = append(b.PromptLen, x.PromptLen)
				b.Mask = append(b.Mask, masks[k])
			}
		}
		if !cfg.RL.DynamicSampling {
			break
		}
	}
	b.Total = len(all)
	m := metrics.Step{Step: t.Step + 1, LR: t.lr.At(t.Step), MaxCalls: maxCalls, Groups: kept,
		RolloutSec: (time.Since(start) - tRew).Seconds(), SandboxSec: tTool.Seconds(), RewardSec: tRew.Seconds()}
	t.rolloutMetrics(&m, all)
	b.LR, b.Record = m.LR, m
	if b.Total == 0 {
		return b, nil
	}
	// The whole batch's advantages (a group's index is its place), this rank's spread over
	// its tokens.
	scores, groups, whitened := make([]float64, b.Total), make([]int, b.Total), make([]int, b.Total)
	masked := make([]int, b.Total)
	for i, o := range all {
		scores[i], groups[i], whitened[i], masked[i] = o.Score, i/n, o.Whitened, o.Masked
		b.AllTokens += o.Tokens
	}
	adv, err := rl.SeqAdvantages(t.est, scores, groups, whitened)
	if err != nil {
		return nil, err
	}
	mine := make([]float64, len(b.Index))
	for k, i := range b.Index {
		mine[k] = adv[i]
	}
	b.Adv = rl.Spread(mine, b.Mask)
	b.Minis = make([]rl.Totals, cfg.Optim.MiniBatches)
	for mb := range b.Minis {
		lo, hi := b.mini(mb, cfg.Optim.MiniBatches)
		b.Minis[mb] = rl.CountTotals(masked[lo:hi])
	}
	return b, nil
}

// score rewards this rank's trajectories tr of tasks (whose indices in the round are ids) and
// returns their outcomes and loss masks.
func (t *Trainer) score(tr []rollout.Trajectory, tasks []Task, ids []int) ([]outcome, [][]bool) {
	cfg := t.Cfg
	outs := make([]outcome, len(tr))
	masks := make([][]bool, len(tr))
	for k, x := range tr {
		o := outcome{Index: ids[x.Prompt]*cfg.Rollout.N + x.Sample, Tokens: len(x.Tokens), Response: len(x.Tokens) - x.PromptLen,
			Truncated: x.Finish == rollout.FinishLength, Calls: len(x.Calls)}
		o.Hit = t.Scorer.Score(x.Text, tasks[x.Prompt].Answer).Correct
		o.Score = cfg.Reward.Wrong
		if o.Hit {
			o.Score = cfg.Reward.Correct
		}
		if cfg.RL.OverlongBuffer > 0 {
			o.Score += rl.OverlongPenalty(o.Response, cfg.Rollout.MaxResponse, cfg.RL.OverlongBuffer, cfg.RL.OverlongFactor)
		}
		for _, c := range x.Calls {
			if c.Kind == rollout.KindOK {
				o.CallsOK++
			}
		}
		for _, r := range x.Roles[x.PromptLen:] {
			if r == rollout.RoleTool {
				o.Tool++
			}
		}
		masks[k] = rl.MaskFromRoles(x.Roles[x.PromptLen:], cfg.RL.MaskToolTokens)
		if cfg.RL.OverlongFilter && o.Truncated {
			rl.MaskTruncated(masks[k:k+1], []bool{true})
		}
		o.Masked = rl.Counts(masks[k : k+1])[0]
		o.Whitened = o.Response // every response token (verl's response_mask)
		if t.whiten != rl.WhitenResponse {
			o.Whitened = o.Masked // the policy's tokens: the loss mask
		}
		outs[k] = o
	}
	return outs, masks
}

// rolloutMetrics adds the reward, length and tool statistics of the trajectories of the whole
// batch (every rank's, in order) to m.
func (t *Trainer) rolloutMetrics(m *metrics.Step, all []outcome) {
	n := float64(max(1, len(all)))
	var sum, sq, acc, lenSum, lenMax, clipped, calls, ok, toolToks, respToks float64
	for _, o := range all {
		sum += o.Score
		sq += o.Score * o.Score
		if o.Hit {
			acc++
		}
		l := float64(o.Response)
		lenSum += l
		lenMax = math.Max(lenMax, l)
		if o.Truncated {
			clipped++
		}
		calls += float64(o.Calls)
		m.ToolCallsMax = max(m.ToolCallsMax, o.Calls)
		ok += float64(o.CallsOK)
		respToks += l
		toolToks += float64(o.Tool)
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
// the PPO updates left of rl.ppo_epochs passes over Optim.MiniBatches mini-batches of the
// whole batch. Each rank computes the gradients of its own sequences of a mini-batch with the
// whole mini-batch's loss weights; applyUpdate sums them: the update of one rank holding the
// whole batch. An update whose gradient norm is not finite is skipped and counted.
// Interrupted (ErrInterrupted), b keeps what was done, the same on every rank.
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
		sums, err := t.settleSums(ctx, err, entSum, float64(entN))
		if err != nil {
			return err
		}
		b.Old = old
		b.Record.Entropy = sums[0] / math.Max(1, sums[1])
	}
	if cfg.RL.KLCoef != 0 && b.Ref == nil {
		ref, err := t.refLogp(ctx, seqs)
		if _, err = t.settle(ctx, err, nil); err != nil {
			return err
		}
		b.Ref = ref
	}
	mbs := cfg.Optim.MiniBatches
	g := logpGrad
	if cfg.RL.EntropyCoef != 0 {
		g = bothGrad
	}
	for ; b.Done < cfg.RL.PPOEpochs*mbs; b.Done++ {
		t.at("update", b.Done)
		mb := b.Done % mbs
		lo, hi := b.mini(mb, mbs)
		if lo == hi {
			continue
		}
		var mine []int // this rank's sequences of the mini-batch
		for k, i := range b.Index {
			if i >= lo && i < hi {
				mine = append(mine, k)
			}
		}
		masks := make([][]bool, len(mine))
		local := make([]seq, len(mine))
		for j, k := range mine {
			masks[j], local[j] = b.Mask[k], seqs[k]
		}
		w, err := rl.WeightsOf(t.agg, masks, cfg.Rollout.MaxResponse, b.Minis[mb])
		if err != nil {
			return err
		}
		var stats rl.Stats
		var klRef float64
		var perr error
		t.Model.ZeroGrad()
		err = t.pass(ctx, t.Model, local, temp, g, func(j int, logp, _, d, de []float32) {
			k := mine[j]
			s, err := t.ppo.PolicyLoss([][]float32{logp}, [][]float32{b.Old[k]}, [][]float32{b.Adv[k]}, [][]float32{w[j]}, [][]float32{d})
			if err == nil && b.Ref != nil {
				var kl float64
				kl, err = rl.KLLoss(t.kl, cfg.RL.KLCoef, [][]float32{logp}, [][]float32{b.Ref[k]}, [][]float32{w[j]}, [][]float32{d})
				s.Loss += cfg.RL.KLCoef * kl
				klRef += kl
			}
			if de != nil {
				// The entropy bonus: the loss gains −coef·Σ w·H.
				for i, wi := range w[j] {
					de[i] = float32(-cfg.RL.EntropyCoef * float64(wi))
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
		sums, err := t.settleSums(ctx, err, stats.Loss, float64(stats.Tokens), float64(stats.ClipLow),
			float64(stats.ClipHigh), float64(stats.DualClip), stats.KLSum, klRef)
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
		b.Stats.Add(rl.Stats{Loss: sums[0], Tokens: int(sums[1]), ClipLow: int(sums[2]), ClipHigh: int(sums[3]),
			DualClip: int(sums[4]), KLSum: sums[5]})
		b.KLRef += sums[6]
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
// and no reference yet (every rank holds the same policy).
func (t *Trainer) makeRef() error {
	if t.Ref == nil || t.refReady {
		return nil
	}
	t.Model.B.Copy(t.Ref.Params.All, t.Model.Params.All)
	t.refReady, t.refOwned = true, true
	return t.Model.B.Sync()
}
