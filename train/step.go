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

// sampleParams is the rollout's sampling rule from the config.
func (t *Trainer) sampleParams() engine.SampleParams {
	r := t.Cfg.Rollout
	return engine.SampleParams{Temperature: float32(r.Temperature), TopP: float32(r.TopP), TopK: r.TopK}
}

// Budget is the tool budget at step.
func (t *Trainer) Budget(step int) int { return t.budget.At(step) }

// MaxCalls is the tool budget of the current step.
func (t *Trainer) MaxCalls() int { return t.budget.At(t.Step) }

// rollout samples n trajectories for each task with the given budget and seed.
func (t *Trainer) rollout(ctx context.Context, tasks []Task, n, maxCalls int, sp engine.SampleParams, seed uint64) ([]rollout.Trajectory, rollout.Stats, error) {
	prompts := make([][]int32, len(tasks))
	for i, task := range tasks {
		prompts[i] = task.Prompt
	}
	eng := rollout.Engine{Policy: Policy(t.Dec), Tok: t.Tok, Exec: t.Exec, Config: rollout.Config{
		Sample: sp, N: n, EOS: t.EOS, MaxNew: t.Cfg.Rollout.MaxResponse, MaxCalls: maxCalls,
		Stateful: t.Cfg.Rollout.Stateful, Seed: seed,
	}}
	return eng.Run(ctx, prompts)
}

// RLStep runs one RL step: rollouts on the current weights, rewards, advantages, old
// log-probs recomputed by the training forward, then one PPO update per mini-batch. It returns
// the step's metrics.
func (t *Trainer) RLStep(ctx context.Context) (metrics.Step, error) {
	cfg := t.Cfg
	start := time.Now()
	maxCalls := t.MaxCalls()
	lr := t.lr.At(t.Step)
	var (
		tasks  []Task
		trajs  []rollout.Trajectory
		scores []float64
		hits   []bool
		st     rollout.Stats
		tRew   time.Duration
	)
	kept, dropped := 0, 0
	// Dynamic sampling: groups whose rewards are all equal carry no signal; drop them and
	// refill with fresh prompts, at most MaxResample extra rounds.
	for round := 0; round == 0 || (cfg.RL.DynamicSampling && kept < cfg.Rollout.PromptsPerStep && round <= cfg.RL.MaxResample); round++ {
		want := cfg.Rollout.PromptsPerStep - kept
		batch := make([]Task, want)
		for i, j := range t.sampler().Next(want) {
			batch[i] = t.Train[j]
		}
		seed := cfg.Run.Seed*1_000_003 + uint64(t.Step)*101 + uint64(round)
		tr, s, err := t.rollout(ctx, batch, cfg.Rollout.N, maxCalls, t.sampleParams(), seed)
		if err != nil {
			return metrics.Step{}, err
		}
		st.Wall += s.Wall
		st.Idle += s.Idle
		st.ToolTime += s.ToolTime
		st.Sampled += s.Sampled
		st.Calls += s.Calls
		r0 := time.Now()
		sc := make([]float64, len(tr))
		hit := make([]bool, len(tr))
		groups := make([]int, len(tr))
		for i := range tr {
			task := batch[tr[i].Prompt]
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
		keep := make([]bool, len(batch))
		for i := range keep {
			keep[i] = true
		}
		if cfg.RL.DynamicSampling {
			k, err := rl.KeepGroups(sc, groups)
			if err != nil {
				return metrics.Step{}, err
			}
			keep = k
		}
		for g, task := range batch {
			if !keep[g] {
				dropped++
				continue
			}
			kept++
			tasks = append(tasks, task)
			for i := range tr {
				if tr[i].Prompt == g {
					tr[i].Prompt = len(tasks) - 1
					trajs = append(trajs, tr[i])
					scores = append(scores, sc[i])
					hits = append(hits, hit[i])
				}
			}
		}
		if !cfg.RL.DynamicSampling {
			break
		}
	}
	tRollout := time.Since(start) - tRew

	m := metrics.Step{Step: t.Step + 1, LR: lr, MaxCalls: maxCalls, Groups: kept,
		RolloutSec: tRollout.Seconds(), SandboxSec: st.ToolTime.Seconds(), RewardSec: tRew.Seconds()}
	t.rolloutMetrics(&m, trajs, scores, hits)
	if len(trajs) == 0 {
		t.Step++
		m.StepSec = time.Since(start).Seconds()
		return m, nil
	}

	u0 := time.Now()
	n := len(trajs)
	groups := make([]int, n)
	mask := make([][]bool, n)
	seqs := make([]seq, n)
	truncated := make([]bool, n)
	for i, tr := range trajs {
		groups[i] = tr.Prompt
		mask[i] = rl.MaskFromRoles(tr.Roles[tr.PromptLen:], cfg.RL.MaskToolTokens)
		seqs[i] = seq{ids: tr.Tokens, P: tr.PromptLen}
		truncated[i] = tr.Finish == rollout.FinishLength
	}
	if cfg.RL.OverlongFilter {
		rl.MaskTruncated(mask, truncated)
	}
	adv, err := rl.Advantages(t.est, scores, groups, mask)
	if err != nil {
		return metrics.Step{}, err
	}
	old := make([][]float32, n)
	var entSum float64
	var entN int
	err = t.pass(t.Model, seqs, false, func(i int, logp, ent, _ []float32) {
		old[i] = append([]float32(nil), logp...)
		for j, ok := range mask[i] {
			if ok {
				entSum += float64(ent[j])
				entN++
			}
		}
	})
	if err != nil {
		return metrics.Step{}, err
	}
	m.Entropy = entSum / math.Max(1, float64(entN))

	var ref [][]float32
	if cfg.RL.KLCoef != 0 {
		if ref, err = t.refLogp(seqs); err != nil {
			return metrics.Step{}, err
		}
	}
	stats, gnorm, klRef, err := t.update(seqs, mask, old, adv, ref, lr)
	if err != nil {
		return metrics.Step{}, err
	}
	mbs := cfg.Optim.MiniBatches
	t.Step++
	m.PolicyLoss = stats.Loss / float64(mbs)
	m.KLRef = klRef / float64(mbs)
	m.ClipFracLow = stats.ClipFracLow()
	m.ClipFracHigh = stats.ClipFracHigh()
	m.DualClipFrac = stats.DualClipFrac()
	m.ApproxKL = stats.ApproxKL()
	m.GradNorm = gnorm
	m.UpdateSec = time.Since(u0).Seconds()
	m.StepSec = time.Since(start).Seconds()
	tokens := 0
	for _, s := range seqs {
		tokens += len(s.ids)
	}
	m.TokensPerSec = float64(tokens) / m.StepSec
	return m, nil
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

// update applies one PPO update per mini-batch of the trajectories seqs (mask, old log-probs
// and advantages per response token) at learning rate lr, and returns the loss statistics and
// the largest gradient norm and, with ref (the reference's log-probs; nil without the KL
// term), the summed weighted KL. With a Comm, this rank computes the gradients of every Size-th
// sequence of each mini-batch (from its Rank) with the mini-batch's global loss weights, and
// the gradients are summed over the ranks before the step: the same update as one rank on all
// of seqs. Every rank must be given the same seqs.
func (t *Trainer) update(seqs []seq, mask [][]bool, old, adv, ref [][]float32, lr float64) (stats rl.Stats, gnorm, klRef float64, err error) {
	n, mbs := len(seqs), t.Cfg.Optim.MiniBatches
	rank, size := 0, 1
	if t.Comm != nil {
		rank, size = t.Comm.Rank(), t.Comm.Size()
	}
	for b := 0; b < mbs; b++ {
		lo, hi := b*n/mbs, (b+1)*n/mbs
		if lo == hi {
			continue
		}
		w, err := rl.Weights(t.agg, mask[lo:hi], t.Cfg.Rollout.MaxResponse)
		if err != nil {
			return stats, 0, 0, err
		}
		var mine []int // indices into seqs[lo:hi] this rank computes
		for i := rank; i < hi-lo; i += size {
			mine = append(mine, i)
		}
		local := make([]seq, len(mine))
		for k, i := range mine {
			local[k] = seqs[lo+i]
		}
		t.Model.ZeroGrad()
		var perr error
		err = t.pass(t.Model, local, true, func(k int, logp, _, d []float32) {
			i := mine[k]
			s, err := t.ppo.PolicyLoss([][]float32{logp}, [][]float32{old[lo+i]}, [][]float32{adv[lo+i]}, [][]float32{w[i]}, [][]float32{d})
			if err == nil && ref != nil {
				var kl float64
				kl, err = rl.KLLoss(t.kl, t.Cfg.RL.KLCoef, [][]float32{logp}, [][]float32{ref[lo+i]}, [][]float32{w[i]}, [][]float32{d})
				s.Loss += t.Cfg.RL.KLCoef * kl
				klRef += kl
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
			return stats, 0, 0, err
		}
		g, err := t.Model.Update(t.Opt, t.optimStep(lr))
		if err != nil {
			return stats, 0, 0, err
		}
		gnorm = math.Max(gnorm, g)
	}
	return stats, gnorm, klRef, nil
}

// refLogp returns the frozen reference's log-probs of the response tokens of seqs, making the
// reference from the current policy when there is none yet.
func (t *Trainer) refLogp(seqs []seq) ([][]float32, error) {
	if t.Ref == nil {
		ref, err := model.New(t.Model.Cfg, t.Model.B)
		if err != nil {
			return nil, fmt.Errorf("reference model: %w", err)
		}
		t.Model.B.Copy(ref.Params.All, t.Model.Params.All)
		t.Ref = ref
	}
	out := make([][]float32, len(seqs))
	err := t.pass(t.Ref, seqs, false, func(i int, logp, _, _ []float32) { out[i] = append([]float32(nil), logp...) })
	return out, err
}
