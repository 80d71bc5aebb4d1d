package train

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"testing"

	"cir/engine/cpu"
	"cir/train/config"
	"cir/train/metrics"
)

// interruptAt returns a hook that cancels when the trainer reaches phase at RL step step (and
// unit n, or any when n < 0), and a flag saying whether it did.
func interruptAt(tr *Trainer, cancel func(), phase string, step, n int) *bool {
	hit := new(bool)
	tr.hook = func(p string, k int) {
		if p == phase && tr.Step == step && (n < 0 || k == n) && !*hit {
			*hit = true
			cancel()
		}
	}
	return hit
}

// resumeToEnd runs the job of make (a fresh trainer on the same out_dir with run.resume) to its
// end and returns its final parameters.
func resumeToEnd(t *testing.T, make func(...string) *Trainer) []float32 {
	t.Helper()
	tr := make("run.resume=true")
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	return params(t, tr)
}

// TestRunInterruptedResumes: a Run stopped at each kind of moment (the rollout of a step, its
// old log-probs, between two mini-batch updates, the evaluation before RL, a periodic
// evaluation, the final one) returns an InterruptError naming a checkpoint, and a run resumed
// from it ends with exactly the parameters and the metrics records of an uninterrupted run.
func TestRunInterruptedResumes(t *testing.T) {
	job := []string{"run.steps=6", "run.eval_every=2", "run.save_every=0", "run.keep_last=0"}
	wants := map[string][]float32{}
	want := func(kl string) []float32 {
		if w, ok := wants[kl]; ok {
			return w
		}
		ref := tinyTrainer(t, 11, append(append([]string(nil), job...), "rl.kl_coef="+kl)...)
		if _, err := ref.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		wants[kl] = params(t, ref)
		return wants[kl]
	}
	cases := []struct {
		name, phase string
		step, n     int
		kl          string
	}{
		{"rollout of step 3", "rollout", 2, -1, "0"},
		{"old log-probs of step 4", "old", 3, -1, "0"},
		{"second mini-batch of step 2", "update", 1, 1, "0"},
		{"second mini-batch of step 2 with the KL term", "update", 1, 1, "0.5"},
		{"evaluation before RL", "eval", 0, -1, "0"},
		{"periodic evaluation after step 4", "eval", 4, -1, "0"},
		{"final evaluation", "eval", 6, -1, "0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			make := func(extra ...string) *Trainer {
				return tinyTrainer(t, 11, append(append(append([]string(nil), job...), "run.out_dir="+out, "rl.kl_coef="+tc.kl), extra...)...)
			}
			tr := make()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			hit := interruptAt(tr, cancel, tc.phase, tc.step, tc.n)
			_, err := tr.Run(ctx)
			var ie *InterruptError
			if !*hit || !errors.As(err, &ie) || !errors.Is(err, ErrInterrupted) || ie.Checkpoint == "" {
				t.Fatalf("hook reached %v; Run returned %v, want an InterruptError with a checkpoint", *hit, err)
			}
			sameParams(t, want(tc.kl), resumeToEnd(t, make))
			recs, err := metrics.ReadFile(filepath.Join(out, "metrics.jsonl"))
			if err != nil || len(recs) != 6 {
				t.Fatalf("metrics.jsonl: %d records, %v; want 6", len(recs), err)
			}
			for i, r := range recs {
				_, hasEval := r["eval_accuracy"]
				if r["step"] != float64(i+1) || hasEval != ((i+1)%2 == 0 && i+1 < 6) {
					t.Errorf("record %d: step %v, evaluation %v", i, r["step"], hasEval)
				}
			}
		})
	}
}

// needSandbox skips a test without bubblewrap and Debian's Python with numpy and sympy.
func needSandbox(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("bwrap not installed (make test installs bubblewrap)")
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import numpy, sympy").Run(); err != nil {
		t.Skip("/usr/bin/python3 with numpy and sympy not available (make test installs them)")
	}
}

// toyJob is the default job (configs/toy.yaml) cut down to seconds, on the real sandbox.
func toyJob(t *testing.T, out string, extra ...string) *Trainer {
	t.Helper()
	cfg, err := config.Load(filepath.Join("..", "configs", "toy.yaml"), append([]string{
		"model.init=" + filepath.Join("..", "configs", "toy-model.json"), "run.out_dir=" + out, "run.threads=1",
		"sft.steps=30", "sft.warmup_steps=5", "data.toy.train=120", "data.toy.eval=4", "rollout.n=2",
		"rollout.prompts_per_step=2", "rollout.max_response=48", "run.steps=4", "run.save_every=0",
		"rollout.sandbox.workers=1", "rollout.sandbox.lazy=true"}, extra...))
	if err != nil {
		t.Fatal(err)
	}
	b := cpu.New(1)
	t.Cleanup(func() { b.Close() })
	tr, err := NewTrainer(context.Background(), cfg, Options{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// TestToyJobInterruptedResumes: the default job, stopped in the middle of the rollout of step 3
// (after 20 of its tokens) or of its warm-up, resumes to the final weights of an uninterrupted
// run.
func TestToyJobInterruptedResumes(t *testing.T) {
	needSandbox(t)
	ref := toyJob(t, filepath.Join(t.TempDir(), "ref"))
	if _, err := ref.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := params(t, ref)
	for _, tc := range []struct {
		name string
		arm  func(tr *Trainer, cancel func()) *bool
	}{
		{"rollout of step 3", func(tr *Trainer, cancel func()) *bool { return interruptAt(tr, cancel, "token", 2, 20) }},
		{"warm-up step 12", func(tr *Trainer, cancel func()) *bool { return interruptAt(tr, cancel, "sft", 0, 12) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			tr := toyJob(t, out)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			hit := tc.arm(tr, cancel)
			_, err := tr.Run(ctx)
			if !*hit || !errors.Is(err, ErrInterrupted) {
				t.Fatalf("interruption reached %v; Run returned %v", *hit, err)
			}
			sameParams(t, want, resumeToEnd(t, func(extra ...string) *Trainer { return toyJob(t, out, extra...) }))
		})
	}
}
