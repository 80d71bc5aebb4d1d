package train

import (
	"context"
	"math"
	"testing"

	"cir/train/reward"
)

// TestTemperatureDividesLogits: with rollout temperature 0.5 the old log-probs of the update
// are log softmax(logits/0.5) of the sampled tokens. The reference is computed from the
// temperature-1 forward alone: for every position, the log-probs of all vocabulary ids (one
// sequence per id), divided by 0.5 and renormalised in float64.
func TestTemperatureDividesLogits(t *testing.T) {
	const T = 0.5
	ctx := context.Background()
	tr := tinyTrainer(t, 4, "rollout.temperature=0.5")
	b, err := tr.collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	V := tr.Model.Cfg.VocabSize
	want := map[[2]int]float64{}
	for i := 0; i < 6; i++ {
		toks, P := b.Tokens[i], b.PromptLen[i]
		for j := 0; P+j < len(toks); j++ {
			seqs := make([][]int32, V)
			for v := range seqs {
				seqs[v] = append(append([]int32(nil), toks[:P+j]...), int32(v))
			}
			logp, _, err := tr.Model.Forward(seqs)
			if err != nil {
				t.Fatal(err)
			}
			mx := math.Inf(-1)
			for v := range seqs {
				mx = math.Max(mx, float64(logp[v][P+j-1])/T)
			}
			sum := 0.0
			for v := range seqs {
				sum += math.Exp(float64(logp[v][P+j-1])/T - mx)
			}
			x := toks[P+j]
			want[[2]int{i, j}] = float64(logp[x][P+j-1])/T - mx - math.Log(sum)
		}
	}
	if err := tr.update(ctx, b); err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for k, w := range want {
		worst = math.Max(worst, math.Abs(float64(b.Old[k[0]][k[1]])-w))
	}
	if worst > 1e-5 {
		t.Fatalf("old log-probs at temperature %g: max abs error %.3g against log softmax(logits/%g), tolerance 1e-5", T, worst, T)
	}
	t.Logf("old log-probs at temperature %g: max abs error %.3g over %d tokens", T, worst, len(want))
}

// TestPPOEpochs: rl.ppo_epochs passes over the step's mini-batches, one optimizer step each,
// and the passes after the first change the parameters further.
func TestPPOEpochs(t *testing.T) {
	ctx := context.Background()
	one, three := tinyTrainer(t, 6), tinyTrainer(t, 6, "rl.ppo_epochs=3")
	for _, tr := range []*Trainer{one, three} {
		if _, err := tr.RLStep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if one.Opt.Step != 2 || three.Opt.Step != 6 {
		t.Fatalf("optimizer steps %d with one epoch and %d with three, want 2 and 6 (2 mini-batches)", one.Opt.Step, three.Opt.Step)
	}
	p1, p3 := params(t, one), params(t, three)
	same := 0
	for i := range p1 {
		if p1[i] == p3[i] {
			same++
		}
	}
	if same == len(p1) {
		t.Fatal("three epochs left the parameters of one")
	}
}

// constScorer gives every answer the same reward, so every advantage is 0.
type constScorer struct{}

func (constScorer) Score(string, string) reward.Result {
	return reward.Result{Correct: true, Reward: 1}
}

// TestEntropyBonus: with every advantage 0 the policy gradient vanishes; without an entropy
// bonus the parameters stay put, with rl.entropy_coef they move and the entropy rises.
func TestEntropyBonus(t *testing.T) {
	ctx := context.Background()
	run := func(coef string) (*Trainer, []float64) {
		tr := tinyTrainer(t, 2, "rl.entropy_coef="+coef, "rl.estimator=grpo")
		tr.Scorer = constScorer{}
		var ent []float64
		for range 4 {
			m, err := tr.RLStep(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ent = append(ent, m.Entropy)
		}
		return tr, ent
	}
	start := params(t, tinyTrainer(t, 2))
	off, entOff := run("0")
	on, entOn := run("0.5")
	moved := func(tr *Trainer) int {
		n := 0
		for i, x := range params(t, tr) {
			if x != start[i] {
				n++
			}
		}
		return n
	}
	if n := moved(off); n != 0 {
		t.Errorf("without the bonus %d parameters moved under zero advantages", n)
	}
	if moved(on) == 0 || !(entOn[3] > entOn[0]) {
		t.Errorf("with the bonus: %d parameters moved, entropy %v (without: %v); want movement and a rising entropy", moved(on), entOn, entOff)
	}
	t.Logf("entropy per step: %v with the bonus, %v without", entOn, entOff)
}

// TestNonFiniteGradientSkipped: an update whose gradient norm is NaN is not applied and is
// counted in the step's metrics; the other mini-batch's update is.
func TestNonFiniteGradientSkipped(t *testing.T) {
	ctx := context.Background()
	tr := tinyTrainer(t, 8)
	b, err := tr.collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Mask[0][0], b.Adv[0][0] = true, float32(math.NaN()) // row 0 is in the first mini-batch
	tr.pending = b
	m, err := tr.RLStep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.SkippedUpdates != 1 || tr.Opt.Step != 1 || math.IsNaN(m.GradNorm) || !(m.GradNorm > 0) {
		t.Fatalf("skipped %d updates, %d optimizer steps, gradient norm %v; want 1, 1 and the finite norm", m.SkippedUpdates, tr.Opt.Step, m.GradNorm)
	}
	for i, x := range params(t, tr) {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			t.Fatalf("parameter %d is %v", i, x)
		}
	}
}
