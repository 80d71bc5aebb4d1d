//go:build cuda

package cuda

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"cir/engine"
	"cir/train"
	"cir/train/config"
	"cir/train/metrics"
	"cir/train/reward"
)

// firstByte rewards a response whose first byte is ASCII: a random byte-level model does that
// about half the time, so the advantages are not all zero.
type firstByte struct{}

func (firstByte) Score(completion, _ string) reward.Result {
	r := reward.Result{Reward: -1}
	if len(completion) > 0 && completion[0] < 128 {
		r.Correct, r.Reward = true, 1
	}
	return r
}

// TestDataParallelGPUs: an RL step of the toy job (no interpreter calls; two mini-batches, so
// two updates) on one GPU and on two GPUs with NCCL (the initial weights broadcast, each rank
// rolling out half the prompts; ZeRO-1: reduce-scattered gradients, sharded AdamW, all-gathered
// bf16 weights) gives the same trajectories (rewards, lengths: the same metrics), the same
// weights on both GPUs, and weights within a bf16 rounding of one GPU's (the gradients' sums
// are added in another order). Needs two GPUs (the emulator has them) and NCCL.
func TestDataParallelGPUs(t *testing.T) {
	b0, _ := gpu(t)
	b1 := secondGPU(t)
	run := func(bs []*Backend) ([]float32, []metrics.Record) {
		out := filepath.Join(t.TempDir(), "run")
		cfg, err := config.Load(filepath.Join("..", "..", "configs", "toy.yaml"), []string{
			"model.init=" + filepath.Join("..", "..", "configs", "toy-model.json"), "run.out_dir=" + out,
			"sft.steps=0", "data.toy.train=40", "data.toy.eval=0", "rollout.n=4", "rollout.prompts_per_step=2",
			"rollout.max_response=8", "rollout.max_calls=0", "run.steps=1", "optim.mini_batches=2", "rl.ppo_epochs=1",
			"optim.lr=1e-3"})
		if err != nil {
			t.Fatal(err)
		}
		ranks := make([]train.Rank, len(bs))
		for r, b := range bs {
			ranks[r].Backend = b
		}
		if len(bs) > 1 {
			comms, err := NewComms(bs)
			if err != nil {
				t.Skipf("NCCL: %v", err)
			}
			defer comms.Close()
			for r := range bs {
				ranks[r].Comm = comms.Rank(r)
			}
		}
		g, err := train.NewGroup(context.Background(), cfg, train.Options{Scorer: firstByte{}}, ranks)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		weights := func(tr *train.Trainer) []float32 {
			all := tr.Model.Params.All
			x := make([]float32, all.Len())
			tr.Model.B.Download(engine.HostF32(x, len(x)), all)
			if err := tr.Model.B.Sync(); err != nil {
				t.Fatal(err)
			}
			return x
		}
		init := weights(g.Ranks[0])
		if _, err := g.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		var p [][]float32
		for _, tr := range g.Ranks {
			p = append(p, weights(tr))
		}
		changed := 0
		for i := range init {
			if p[0][i] != init[i] {
				changed++
			}
		}
		if changed < len(init)/10 {
			t.Fatalf("the step changed %d of %d weights", changed, len(init))
		}
		for r := 1; r < len(p); r++ {
			for i := range p[0] {
				if p[r][i] != p[0][i] {
					t.Fatalf("rank %d's weights differ from rank 0's at %d: %v, %v", r, i, p[r][i], p[0][i])
				}
			}
		}
		recs, err := metrics.ReadFile(filepath.Join(out, "metrics.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		return p[0], recs
	}
	want, wantRecs := run([]*Backend{b0})
	got, recs := run([]*Backend{b0, b1})
	// The weights are bf16: they may differ by one rounding step (unit in the last place), no more.
	ulps := func(x float32) int32 {
		b := int32(math.Float32bits(x) >> 16) // sign and magnitude
		if b >= 0x8000 {
			b = 0x8000 - b // the negative values ordered below the positive ones
		}
		return b
	}
	moved, worst := 0, int32(0)
	for i := range want {
		if d := ulps(got[i]) - ulps(want[i]); d != 0 {
			moved++
			worst = max(worst, d, -d)
		}
	}
	t.Logf("2 GPUs against 1: %d of %d weights differ, by at most %d bf16 ulp", moved, len(want), worst)
	if worst > 1 || moved > len(want)/100 {
		t.Errorf("weights on 2 GPUs: %d of %d differ from one GPU's, by up to %d bf16 ulp; want at most 1 ulp, in under 1%%", moved, len(want), worst)
	}
	if len(recs) != len(wantRecs) {
		t.Fatalf("%d metrics records on 2 GPUs, %d on one", len(recs), len(wantRecs))
	}
	for i := range recs {
		// The trajectories: the same tokens sampled.
		for _, k := range []string{"reward_mean", "accuracy", "response_len_mean", "response_len_max", "clipped_share"} {
			if w, ok := wantRecs[i][k]; !ok || recs[i][k] != w {
				t.Errorf("step %d: %s = %v on 2 GPUs, %v on one", i+1, k, recs[i][k], w)
			}
		}
	}
}
