package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cir/engine"
	"cir/engine/cpu"
	"cir/train/config"
	"cir/train/metrics"
	"cir/train/reward"
)

// toyGroupJob is the default job cut down to seconds (as toyJob), with six prompts a step so
// that three ranks each roll out two.
var toyGroupJob = []string{"sft.steps=20", "sft.warmup_steps=5", "data.toy.train=120", "data.toy.eval=5",
	"rollout.n=2", "rollout.prompts_per_step=6", "rollout.max_response=48", "run.steps=3", "run.save_every=0",
	"optim.mini_batches=2", "rl.ppo_epochs=2", "rollout.sandbox.workers=1", "rollout.sandbox.lazy=true",
	"run.threads=1"}

// parityScorer rewards a response whose bytes add up to an even number: about half of any
// model's samples, so that every RL step of a short test has a signal (the toy task's checker
// gives a barely trained model −1 everywhere, and its updates would be zero).
type parityScorer struct{}

func (parityScorer) Score(completion, _ string) reward.Result {
	sum := 0
	for _, c := range []byte(completion) {
		sum += int(c)
	}
	r := reward.Result{Reward: -1}
	if sum%2 == 0 {
		r.Correct, r.Reward = true, 1
	}
	return r
}

// toyGroup builds the default job cut down (toyGroupJob and extra) on n in-process CPU ranks
// of one thread each, writing under out.
func toyGroup(t testing.TB, n int, out string, extra ...string) *Group {
	t.Helper()
	bs := make([]engine.Backend, n)
	for r := range bs {
		b := cpu.New(1)
		t.Cleanup(func() { b.Close() })
		bs[r] = b
	}
	return toyGroupOn(t, bs, out, extra...)
}

// wrap, when set, wraps the Comms of the groups toyGroupOn builds.
var wrap func(engine.Comm) engine.Comm

// toyGroupOn is toyGroup on the given backends.
func toyGroupOn(t testing.TB, bs []engine.Backend, out string, extra ...string) *Group {
	t.Helper()
	cfg, err := config.Load(filepath.Join("..", "configs", "toy.yaml"), append(append([]string{
		"model.init=" + filepath.Join("..", "configs", "toy-model.json"), "run.out_dir=" + out}, toyGroupJob...), extra...))
	if err != nil {
		t.Fatal(err)
	}
	comms := engine.LocalComms(len(bs))
	ranks := make([]Rank, len(bs))
	for r, b := range bs {
		ranks[r] = Rank{Backend: b, Comm: comms[r]}
		if wrap != nil {
			ranks[r].Comm = wrap(comms[r])
		}
	}
	if len(bs) == 1 {
		ranks[0].Comm = nil
	}
	g, err := NewGroup(context.Background(), cfg, Options{Scorer: parityScorer{}}, ranks)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// groupParams returns rank 0's parameters after checking that every rank holds exactly them.
func groupParams(t *testing.T, g *Group) []float32 {
	t.Helper()
	p := params(t, g.Ranks[0])
	for r, tr := range g.Ranks[1:] {
		if q := params(t, tr); !slices.Equal(p, q) {
			t.Fatalf("rank %d's parameters differ from rank 0's", r+1)
		}
	}
	return p
}

// maxAbsDiff returns the largest |a−b| of two parameter vectors.
func maxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// timing lists the metrics that measure time, which runs do not share.
var timing = map[string]bool{"tokens_per_s": true, "rollout_s": true, "sandbox_s": true, "reward_s": true,
	"update_s": true, "step_s": true}

// sameRecords compares metrics records key by key, numbers within a relative 1e-6 (sums of
// the loss and entropy added in another order), time measurements excluded.
func sameRecords(t *testing.T, want, got []metrics.Record) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%d metrics records, want %d", len(got), len(want))
	}
	for i := range want {
		for k, w := range want[i] {
			if g, ok := got[i][k]; !timing[k] && (!ok || math.Abs(w-g) > 1e-6*max(1, math.Abs(w))) {
				t.Errorf("metrics record %d: %s = %v, want %v", i, k, g, w)
			}
		}
	}
}

// evalResults reads eval.json, the measured times zeroed.
func evalResults(t *testing.T, out string) map[string]EvalResult {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(out, "eval.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]EvalResult
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for k, r := range m {
		r.Seconds = 0
		m[k] = r
	}
	return m
}

// TestDataParallelRanks: the default job (warm-up, evaluations, RL steps with two mini-batches
// and two PPO epochs, the real sandbox) on 1, 2 and 3 in-process CPU ranks ends with the same
// parameters (max abs error ≤ 1e-5) on every rank, the same metrics and evaluations, while the
// ranks of a step roll out different prompts that together are the one-rank step's.
func TestDataParallelRanks(t *testing.T) {
	needSandbox(t)
	var want []float32
	var wantRecs []metrics.Record
	var wantEval map[string]EvalResult
	wantPrompts := map[int][]int{} // step → the training tasks rolled out
	for _, n := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("ranks=%d", n), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			g := toyGroup(t, n, out)
			prompts := make([]map[int][]int, n) // by rank: step → tasks
			for r, tr := range g.Ranks {
				prompts[r] = map[int][]int{}
				tr.hook = func(phase string, k int) {
					if phase == "prompt" {
						prompts[r][tr.Step] = append(prompts[r][tr.Step], k)
					}
				}
			}
			sum, err := g.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if sum.Checkpoint == "" || sum.HeldoutAccTools == nil {
				t.Fatalf("summary %+v", sum)
			}
			got := groupParams(t, g)
			recs, err := metrics.ReadFile(filepath.Join(out, "metrics.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			evals := evalResults(t, out)
			if n == 1 {
				for _, r := range recs {
					if r["grad_norm"] == 0 || r["reward_std"] == 0 {
						t.Fatalf("a step without signal (the test would compare no-op updates): %v", r)
					}
				}
				want, wantRecs, wantEval, wantPrompts = got, recs, evals, prompts[0]
				return
			}
			if d := maxAbsDiff(want, got); d > 1e-5 {
				t.Errorf("parameters on %d ranks: max abs error %.3g against one rank, tolerance 1e-5", n, d)
			} else {
				t.Logf("parameters on %d ranks: max abs error %.3g against one rank", n, d)
			}
			sameRecords(t, wantRecs, recs)
			if !reflect.DeepEqual(wantEval, evals) {
				t.Errorf("eval.json on %d ranks:\n%+v\none rank:\n%+v", n, evals, wantEval)
			}
			for step, all := range wantPrompts {
				var union []int
				for r := range prompts {
					mine := prompts[r][step]
					if len(mine) == 0 {
						t.Errorf("step %d: rank %d rolled out no prompt", step, r)
					}
					for q := range r {
						for _, j := range mine {
							if slices.Contains(prompts[q][step], j) {
								t.Errorf("step %d: ranks %d and %d both rolled out task %d", step, q, r, j)
							}
						}
					}
					union = append(union, mine...)
				}
				slices.Sort(union)
				sorted := slices.Sorted(slices.Values(all))
				if !slices.Equal(union, sorted) {
					t.Errorf("step %d: the ranks rolled out %v, one rank %v", step, union, sorted)
				}
			}
		})
	}
}

// failingBackend is a CPU backend whose Sync fails once armed: a device failure.
type failingBackend struct {
	*cpu.Backend
	armed atomic.Bool
}

var errInjected = errors.New("injected device failure")

func (f *failingBackend) Sync() error {
	if f.armed.Load() {
		return errInjected
	}
	return f.Backend.Sync()
}

// TestRankFailureStopsAll: a device failure injected on one rank, in the middle of a step's
// update (the others then wait in a collective) or of the rollout (the others are decoding),
// ends the run on every rank within seconds, and the group returns that error.
func TestRankFailureStopsAll(t *testing.T) {
	needSandbox(t)
	for _, phase := range []string{"update", "rollout"} {
		t.Run(phase, func(t *testing.T) {
			bs := make([]engine.Backend, 3)
			for r := range bs {
				f := &failingBackend{Backend: cpu.New(1)}
				t.Cleanup(func() { f.Close() })
				bs[r] = f
			}
			g := toyGroupOn(t, bs, filepath.Join(t.TempDir(), "run"), "sft.steps=0", "data.toy.eval=0")
			fail := g.Ranks[1]
			var failedAt time.Time
			fail.hook = func(p string, k int) {
				if p == phase && fail.Step == 1 && failedAt.IsZero() {
					failedAt = time.Now()
					bs[1].(*failingBackend).armed.Store(true)
				}
			}
			done := make(chan error, 1)
			go func() { _, err := g.Run(context.Background()); done <- err }()
			select {
			case err := <-done:
				if !errors.Is(err, errInjected) {
					t.Fatalf("Run: %v, want the injected error", err)
				}
				if d := time.Since(failedAt); d > 5*time.Second {
					t.Errorf("the other ranks stopped %v after the failure", d)
				}
				t.Logf("Run: %v (%v after the failure)", err, time.Since(failedAt))
			case <-time.After(2 * time.Minute):
				t.Fatal("the group did not stop after a rank failed (hang)")
			}
		})
	}
}

// TestResumeOnOtherRanks: a run saved on two ranks in the middle of a step's update (after
// its first mini-batch) resumes on one and on three ranks to the parameters of an
// uninterrupted run (max abs error ≤ 1e-5).
func TestResumeOnOtherRanks(t *testing.T) {
	needSandbox(t)
	// No warm-up or evaluation (TestDataParallelRanks has them): the steps' updates only.
	quick := []string{"sft.steps=0", "data.toy.eval=0"}
	ref := toyGroup(t, 2, filepath.Join(t.TempDir(), "ref"), quick...)
	init := groupParams(t, ref)
	if _, err := ref.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := groupParams(t, ref)
	if d := maxAbsDiff(init, want); d < 1e-4 {
		t.Fatalf("the uninterrupted run moved the parameters by %.3g at most: nothing to compare", d)
	}
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("ranks=%d", n), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			g := toyGroup(t, 2, out, quick...)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			hit := interruptAt(g.Ranks[1], cancel, "update", 1, 1)
			_, err := g.Run(ctx)
			var ie *InterruptError
			if !*hit || !errors.As(err, &ie) || ie.Checkpoint == "" {
				t.Fatalf("interruption reached %v; Run returned %v, want an InterruptError with a checkpoint", *hit, err)
			}
			r := toyGroup(t, n, out, append(quick, "run.resume=true")...)
			if _, err := r.Run(context.Background()); err != nil {
				t.Fatalf("resumed on %d ranks: %v", n, err)
			}
			if d := maxAbsDiff(want, groupParams(t, r)); d > 1e-5 {
				t.Errorf("saved on 2 ranks, resumed on %d: max abs error %.3g, tolerance 1e-5", n, d)
			} else {
				t.Logf("saved on 2 ranks, resumed on %d: max abs error %.3g", n, d)
			}
			if !strings.Contains(ie.Checkpoint, "step-") {
				t.Errorf("checkpoint %q", ie.Checkpoint)
			}
		})
	}
}

// timedComm is a Comm that adds the time spent in its collectives to *spent.
type timedComm struct {
	engine.Comm
	spent *atomic.Int64
}

func (c timedComm) time(start time.Time, err error) error {
	c.spent.Add(int64(time.Since(start)))
	return err
}
func (c timedComm) AllReduceSum(t engine.Tensor) error {
	return c.time(time.Now(), c.Comm.AllReduceSum(t))
}
func (c timedComm) ReduceScatterSum(out, in engine.Tensor) error {
	return c.time(time.Now(), c.Comm.ReduceScatterSum(out, in))
}
func (c timedComm) AllGather(out, in engine.Tensor) error {
	return c.time(time.Now(), c.Comm.AllGather(out, in))
}
func (c timedComm) Broadcast(t engine.Tensor, root int) error {
	return c.time(time.Now(), c.Comm.Broadcast(t, root))
}

// BenchmarkDataParallel: RL steps of the default job (randomly initialised model, no warm-up:
// its answers run to the length limit, 16 prompts × 4 samples of ≤ 128 tokens, the interpreter
// budget 0) on the machine's cores as one rank with all of them or as ranks of equal shares.
// It reports response tokens per second over the whole step (rollout, update) and the share
// of the ranks' time spent inside collectives (waiting for the other ranks included). One
// iteration is one step: -benchtime 3x.
func BenchmarkDataParallel(b *testing.B) {
	cores := runtime.NumCPU()
	for _, c := range []struct{ n, threads int }{{1, 1}, {1, cores}, {2, cores / 2}} {
		n := c.n
		if c.threads < 1 {
			continue
		}
		b.Run(fmt.Sprintf("ranks=%d,threads=%d", n, c.threads), func(b *testing.B) {
			var spent atomic.Int64
			wrap = func(c engine.Comm) engine.Comm { return timedComm{c, &spent} }
			defer func() { wrap = nil }()
			bs := make([]engine.Backend, n)
			for r := range bs {
				cb := cpu.New(c.threads)
				b.Cleanup(func() { cb.Close() })
				bs[r] = cb
			}
			out := filepath.Join(b.TempDir(), "run")
			g := toyGroupOn(b, bs, out, "sft.steps=0", "data.toy.eval=0", "rollout.n=4", "rollout.prompts_per_step=16",
				"rollout.max_response=128", "rollout.max_calls=0", "rl.ppo_epochs=1", "optim.mini_batches=2",
				fmt.Sprintf("run.steps=%d", b.N))
			b.ResetTimer()
			start := time.Now()
			if _, err := g.Run(context.Background()); err != nil {
				b.Fatal(err)
			}
			wall := time.Since(start)
			recs, err := metrics.ReadFile(filepath.Join(out, "metrics.jsonl"))
			if err != nil {
				b.Fatal(err)
			}
			tokens := 0.0
			for _, r := range recs {
				tokens += r["response_len_mean"] * 64
			}
			b.ReportMetric(tokens/wall.Seconds(), "tokens/s")
			b.ReportMetric(float64(spent.Load())/float64(n)/float64(wall), "collective_share")
		})
	}
}
