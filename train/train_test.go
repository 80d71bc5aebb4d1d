package train

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cir/engine"
	"cir/engine/cpu"
	"cir/model"
	"cir/tokenizer"
	"cir/train/config"
	"cir/train/reward"
)

// firstByteScorer rewards a response whose first byte is ASCII (< 128): a random byte-level
// model does that about 44% of the time, so the task has signal from the first step.
type firstByteScorer struct{}

func (firstByteScorer) Score(completion, _ string) reward.Result {
	ok := len(completion) > 0 && completion[0] < 128
	r := reward.Result{Correct: ok, Reward: -1}
	if ok {
		r.Reward = 1
	}
	return r
}

var tinyModel = model.Config{VocabSize: 259, HiddenSize: 32, IntermediateSize: 64, NumLayers: 2, NumHeads: 4,
	NumKVHeads: 2, HeadDim: 8, MaxPositions: 64, RopeTheta: 10000, RMSNormEps: 1e-6, TieWordEmbeddings: true}

// tinyTrainer builds a trainer with NewTrainer on the CPU with the first-byte task: 8 prompts
// ("say a:" ...), groups of 8, responses of at most 4 tokens, no interpreter, run files under
// a temporary directory.
func tinyTrainer(t *testing.T, seed uint64, overrides ...string) *Trainer {
	t.Helper()
	dir := t.TempDir()
	modelCfg := filepath.Join(dir, "config.json")
	if err := tinyModel.Save(modelCfg); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, p := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		lines = append(lines, fmt.Sprintf(`{"problem": "say %s:", "answer": %q}`, p, p))
	}
	data := filepath.Join(dir, "train.jsonl")
	if err := os.WriteFile(data, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	base := []string{"model.init=" + modelCfg, "model.tokenizer=byte", "data.train=" + data, "data.eval=" + data, "data.template=toy",
		"rollout.n=8", "rollout.prompts_per_step=8", "rollout.max_response=4", "rollout.max_prompt=12",
		"rollout.max_calls=0", "optim.lr=3e-3", "optim.weight_decay=0", "optim.mini_batches=2",
		"optim.micro_tokens=256", fmt.Sprintf("run.seed=%d", seed), "run.steps=100", "run.out_dir=" + filepath.Join(dir, "run")}
	if err := cfg.Apply(append(base, overrides...)); err != nil {
		t.Fatal(err)
	}
	b := cpu.New(1)
	t.Cleanup(func() { b.Close() })
	tr, err := NewTrainer(context.Background(), cfg, Options{Backend: b, Scorer: firstByteScorer{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func params(t *testing.T, tr *Trainer) []float32 {
	x := make([]float32, tr.Model.Params.All.Len())
	tr.Model.B.Download(engine.HostF32(x, len(x)), tr.Model.Params.All)
	return x
}

// TestRLRewardRises: a short RL run on the first-byte task raises the mean reward.
func TestRLRewardRises(t *testing.T) {
	tr := tinyTrainer(t, 3)
	var first, last float64
	const steps = 30
	for s := 0; s < steps; s++ {
		m, err := tr.RLStep(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if s < 3 {
			first += m.RewardMean / 3
		}
		if s >= steps-3 {
			last += m.RewardMean / 3
		}
		if math.IsNaN(m.PolicyLoss) || m.GradNorm <= 0 {
			t.Fatalf("step %d: loss %v, grad norm %v", s, m.PolicyLoss, m.GradNorm)
		}
	}
	t.Logf("mean reward: first steps %.3f, last steps %.3f", first, last)
	if last < first+0.5 {
		t.Fatalf("reward did not rise: first steps %.3f, last steps %.3f (want +0.5)", first, last)
	}
}

// TestResumeBitIdentical: k steps, a checkpoint, a fresh trainer resumed from it and k more
// steps give exactly the parameters of 2k uninterrupted steps; with the KL term too (the
// reference, a copy of the initial policy, travels in the checkpoint).
func TestResumeBitIdentical(t *testing.T) {
	const k = 3
	ctx := context.Background()
	for _, overrides := range [][]string{nil, {"rl.kl_coef=0.5"}} {
		t.Run(strings.Join(append([]string{"plain"}, overrides...), ","), func(t *testing.T) {
			a := tinyTrainer(t, 5, overrides...)
			for i := 0; i < 2*k; i++ {
				if _, err := a.RLStep(ctx); err != nil {
					t.Fatal(err)
				}
			}
			want := params(t, a)

			root := t.TempDir()
			b := tinyTrainer(t, 5, overrides...)
			for i := 0; i < k; i++ {
				if _, err := b.RLStep(ctx); err != nil {
					t.Fatal(err)
				}
			}
			before := 0.0 // zero, which gob would drop from a pointer field
			b.BeforeRL = &before
			if _, err := b.Save(root, 2); err != nil {
				t.Fatal(err)
			}
			c := tinyTrainer(t, 5, overrides...)
			dir, err := c.Resume(root)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tokenizer.Load(dir); err != nil {
				t.Errorf("checkpoint without its tokenizer: %v", err)
			}
			if c.Step != k || c.BeforeRL == nil || *c.BeforeRL != before {
				t.Fatalf("resumed at step %d with accuracy before RL %v, want %d and %v", c.Step, c.BeforeRL, k, before)
			}
			for i := 0; i < k; i++ {
				if _, err := c.RLStep(ctx); err != nil {
					t.Fatal(err)
				}
			}
			sameParams(t, want, params(t, c))
		})
	}
}

// sameParams fails unless two parameter vectors are bit-identical.
func sameParams(t *testing.T, want, got []float32) {
	t.Helper()
	diff := 0
	for i := range want {
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			diff++
		}
	}
	if diff > 0 {
		t.Fatalf("%d of %d parameters differ between the resumed and the uninterrupted run", diff, len(want))
	}
}

// TestPassAt: the unbiased estimator against the ratio of binomials computed exactly.
func TestPassAt(t *testing.T) {
	for n := 1; n <= 12; n++ {
		for c := 0; c <= n; c++ {
			for k := 1; k <= n; k++ {
				want := 1.0
				if n-c >= k {
					num := new(big.Int).Binomial(int64(n-c), int64(k))
					den := new(big.Int).Binomial(int64(n), int64(k))
					r, _ := new(big.Rat).SetFrac(num, den).Float64()
					want = 1 - r
				}
				if got := PassAt(n, c, k); math.Abs(got-want) > 1e-12 {
					t.Fatalf("pass@%d with %d of %d correct: %g, want %g", k, c, n, got, want)
				}
			}
		}
	}
}

// TestEvaluate: avg@k, pass@j and the per-kind accuracy of Evaluate against a count over the
// same samples (the rollout is deterministic for a seed): pass@j as the share of the j-subsets
// of a problem's k samples that hold a correct one, enumerated.
func TestEvaluate(t *testing.T) {
	tr := tinyTrainer(t, 9)
	tasks := append([]Task(nil), tr.Train...)
	for i := range tasks {
		tasks[i].Kind = []string{"even", "odd"}[i%2]
	}
	const k, seed = 5, 3
	sp := engine.SampleParams{Temperature: 1, TopP: 1}
	got, err := tr.Evaluate(context.Background(), tasks, k, 0, sp, seed)
	if err != nil {
		t.Fatal(err)
	}
	trajs, _, err := tr.rollout(context.Background(), tasks, nil, k, 0, sp, seed)
	if err != nil {
		t.Fatal(err)
	}
	ok := make([][]bool, len(tasks))
	var hits, kindHits [2]float64
	for _, x := range trajs {
		c := tr.Scorer.Score(x.Text, tasks[x.Prompt].Answer).Correct
		ok[x.Prompt] = append(ok[x.Prompt], c)
		if c {
			hits[0]++
			kindHits[x.Prompt%2]++
		}
	}
	wantAvg := hits[0] / float64(len(trajs))
	if math.Abs(got.AvgAtK-wantAvg) > 1e-12 || math.Abs(got.ByKind["even"]-kindHits[0]/(float64(len(trajs))/2)) > 1e-12 ||
		math.Abs(got.ByKind["odd"]-kindHits[1]/(float64(len(trajs))/2)) > 1e-12 {
		t.Errorf("avg@%d %v by kind %v, want %v (even %v, odd %v hits)", k, got.AvgAtK, got.ByKind, wantAvg, kindHits[0], kindHits[1])
	}
	if wantAvg == 0 || wantAvg == 1 {
		t.Fatalf("accuracy %v: the test needs mixed outcomes", wantAvg)
	}
	for j, key := range map[int]string{1: "1", 2: "2", 4: "4", 5: "5"} {
		want := 0.0
		for _, s := range ok {
			subsets, pass := 0, 0
			for m := 0; m < 1<<k; m++ {
				if bits.OnesCount(uint(m)) != j {
					continue
				}
				subsets++
				for i := 0; i < k; i++ {
					if m>>i&1 == 1 && s[i] {
						pass++
						break
					}
				}
			}
			want += float64(pass) / float64(subsets) / float64(len(ok))
		}
		if math.Abs(got.PassAt[key]-want) > 1e-12 {
			t.Errorf("pass@%d = %v, want %v", j, got.PassAt[key], want)
		}
	}
	if len(got.PassAt) != 4 || got.PassAtK != got.PassAt["5"] {
		t.Errorf("pass@ %v, pass@k %v", got.PassAt, got.PassAtK)
	}
}

// TestKLAnchorsPolicy: with the low-variance KL term against the policy RL started from, the
// KL is reported and the parameters move less from the start than without it.
func TestKLAnchorsPolicy(t *testing.T) {
	ctx := context.Background()
	dist := func(tr *Trainer, start []float32) float64 {
		var d float64
		for i, x := range params(t, tr) {
			d += float64(x-start[i]) * float64(x-start[i])
		}
		return math.Sqrt(d)
	}
	free, kl := tinyTrainer(t, 3), tinyTrainer(t, 3, "rl.kl_coef=5")
	start := params(t, free)
	var lastKL float64
	for s := 0; s < 12; s++ {
		if _, err := free.RLStep(ctx); err != nil {
			t.Fatal(err)
		}
		m, err := kl.RLStep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		lastKL = m.KLRef
	}
	if kl.Ref == nil || !(lastKL > 0) {
		t.Fatalf("reference %v, reported KL %v", kl.Ref != nil, lastKL)
	}
	df, dk := dist(free, start), dist(kl, start)
	t.Logf("distance from the start: %.4g without KL, %.4g with (last KL %.3g)", df, dk, lastKL)
	if dk >= df {
		t.Fatalf("the KL term did not anchor the policy: distance %.4g with KL, %.4g without", dk, df)
	}
}
