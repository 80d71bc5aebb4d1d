package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"cir/engine"
	"cir/train/ckpt"
	"cir/train/metrics"
)

// Summary is what a Run measured, the last line cir train prints.
type Summary struct {
	RLSteps           int      `json:"rl_steps"`
	Checkpoint        string   `json:"checkpoint"`
	AccBeforeRL       *float64 `json:"acc_before_rl,omitempty"`
	HeldoutAccTools   *float64 `json:"heldout_acc_tools,omitempty"`
	HeldoutAccNoTools *float64 `json:"heldout_acc_no_tools,omitempty"`
	Plot              string   `json:"plot,omitempty"`
	Minutes           float64  `json:"minutes"`
	// Evals are the held-out evaluations by name (before_rl, heldout_tools,
	// heldout_no_tools), as eval.json holds them.
	Evals map[string]EvalResult `json:"-"`
}

// InterruptError is the error of a Run stopped by its context: it wraps ErrInterrupted and
// names the checkpoint to continue from.
type InterruptError struct {
	Step       int
	Checkpoint string
	Err        error
}

// Error says where the run stopped and how to continue it.
func (e *InterruptError) Error() string {
	return fmt.Sprintf("interrupted at step %d; checkpoint %s (continue with --resume)", e.Step, e.Checkpoint)
}

// Unwrap returns the interruption.
func (e *InterruptError) Unwrap() error { return e.Err }

// Run drives the whole job of the config: it resumes from the newest checkpoint with
// run.resume, runs the warm-up, measures held-out accuracy before RL (with the budget
// run.eval_max_calls, as every held-out evaluation), runs the RL steps to run.steps (metrics.jsonl, a periodic evaluation every run.eval_every steps, a checkpoint
// every run.save_every), writes the final checkpoint, evaluates with and without tools, and
// writes eval.json and curves.png into run.out_dir. Progress goes to the trainer's Log.
//
// When ctx ends, at any of these moments, Run stops within the current unit of work (a
// warm-up step, a rollout, a mini-batch update, an evaluation), writes a checkpoint from
// which a run with run.resume continues exactly (bit-identically on the CPU), and returns an
// *InterruptError.
//
// The ranks of a group run it together (Group.Run): rank 0 alone writes the files and logs;
// the summary's paths are rank 0's.
func (t *Trainer) Run(ctx context.Context) (*Summary, error) {
	start := time.Now()
	cfg := t.Cfg
	out := cfg.Run.OutDir
	main := t.main()
	if main {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(out, "config.yaml"), cfg.YAML(), 0o644); err != nil {
			return nil, err
		}
	}
	ckptDir := filepath.Join(out, "checkpoints")
	if cfg.Run.Resume {
		dir, err := t.Resume(ckptDir)
		if err != nil && !errors.Is(err, ckpt.ErrNoCheckpoint) {
			return nil, err
		}
		if err == nil {
			fmt.Fprintf(t.Log, "resumed from %s at step %d\n", dir, t.Step)
		}
	}
	fmt.Fprintf(t.Log, "model: %.2fM parameters on %v; %d training and %d held-out problems\n",
		float64(t.Model.NumParams())/1e6, t.devices(), len(t.Train), len(t.Eval))

	stop := func(err error) error {
		if !errors.Is(err, ErrInterrupted) {
			return err
		}
		dir, serr := t.Save(ckptDir, cfg.Run.KeepLast)
		if serr != nil {
			return fmt.Errorf("%w; writing the checkpoint failed: %v", err, serr)
		}
		return &InterruptError{Step: t.Step, Checkpoint: dir, Err: err}
	}

	evals := map[string]EvalResult{}
	evalCalls := t.Budget(cfg.Run.Steps)
	if cfg.Run.EvalMaxCalls >= 0 {
		evalCalls = cfg.Run.EvalMaxCalls
	}
	greedy := engine.SampleParams{TopP: 1}
	evaluate := func(name string, maxCalls int) (float64, error) {
		r, err := t.Evaluate(ctx, t.Eval, cfg.Run.EvalN, maxCalls, greedy, cfg.Run.Seed)
		if err != nil {
			return 0, err
		}
		fmt.Fprintf(t.Log, "eval %-18s acc %.3f  pass@%d %.3f  calls %.2f  len %.0f  (%.1fs) %v\n",
			name, r.AvgAtK, r.K, r.PassAtK, r.MeanCalls, r.MeanLen, r.Seconds, r.ByKind)
		evals[name] = r
		return r.AvgAtK, nil
	}

	if !t.SFTDone && cfg.SFT.Steps > 0 {
		p := metrics.NewProgress(t.Log, cfg.SFT.Steps)
		p.Start(t.SFTStep)
		err := t.SFT(ctx, func(step int, loss float64) {
			p.Update(step, fmt.Sprintf("warm-up loss %.4f", loss))
		})
		p.Done()
		if err != nil {
			return nil, stop(err)
		}
	}
	if err := t.makeRef(); err != nil {
		return nil, err
	}
	if len(t.Eval) > 0 && t.Step == 0 && t.BeforeRL == nil && t.pending == nil {
		before, err := evaluate("before_rl", evalCalls)
		if err != nil {
			return nil, stop(err)
		}
		t.BeforeRL = &before
	}

	var mw *metrics.Writer
	if main {
		var err error
		if mw, err = metrics.Create(filepath.Join(out, "metrics.jsonl"), t.Step); err != nil {
			return nil, err
		}
		defer mw.Close()
	}
	p := metrics.NewProgress(t.Log, cfg.Run.Steps)
	p.Start(t.Step)
	if t.record != nil {
		if err := t.finishStep(ctx, mw, p, t.record.Record); err != nil {
			p.Done()
			return nil, stop(err)
		}
	}
	for t.Step < cfg.Run.Steps {
		// The ranks agree to start the step (one alone must not stop here).
		if _, err := t.settle(ctx, ctx.Err(), nil); err != nil {
			p.Done()
			return nil, stop(err)
		}
		m, err := t.RLStep(ctx)
		if err != nil {
			p.Done()
			return nil, stop(err)
		}
		if err := t.finishStep(ctx, mw, p, m); err != nil {
			p.Done()
			return nil, stop(err)
		}
	}
	p.Done()
	dir, err := t.Save(ckptDir, cfg.Run.KeepLast)
	if err != nil {
		return nil, err
	}
	sum := &Summary{RLSteps: t.Step, Checkpoint: dir, AccBeforeRL: t.BeforeRL, Evals: evals}
	if len(t.Eval) > 0 {
		tools, err := evaluate("heldout_tools", evalCalls)
		if err != nil {
			return nil, &InterruptError{Step: t.Step, Checkpoint: dir, Err: err}
		}
		noTools, err := evaluate("heldout_no_tools", 0)
		if err != nil {
			return nil, &InterruptError{Step: t.Step, Checkpoint: dir, Err: err}
		}
		sum.HeldoutAccTools, sum.HeldoutAccNoTools = &tools, &noTools
	}
	if main {
		if recs, err := metrics.ReadFile(filepath.Join(out, "metrics.jsonl")); err == nil && len(recs) > 0 {
			path := filepath.Join(out, "curves.png")
			if err := PlotFile(path, recs); err != nil {
				fmt.Fprintf(t.Log, "plot: %v\n", err)
			} else {
				sum.Plot = path
			}
		}
		js, _ := json.MarshalIndent(evals, "", "  ")
		if err := os.WriteFile(filepath.Join(out, "eval.json"), js, 0o644); err != nil {
			return nil, err
		}
	}
	sum.Minutes = time.Since(start).Minutes()
	return sum, nil
}

// devices names the devices of the run: the backend's, or the group's size and kind.
func (t *Trainer) devices() string {
	if t.size() == 1 {
		return t.Model.B.Device().String()
	}
	return fmt.Sprintf("%d × %v", t.size(), t.Model.B.Device().Kind)
}

// finishStep completes the record of a finished step: its periodic evaluation when one is
// due (an interruption there keeps the record for the checkpoint), the metrics line (rank 0's
// writer; nil on the others), the progress display and the checkpoint cadence.
func (t *Trainer) finishStep(ctx context.Context, mw *metrics.Writer, p *metrics.Progress, m metrics.Step) error {
	cfg := t.Cfg
	if cfg.Run.EvalEvery > 0 && t.Step%cfg.Run.EvalEvery == 0 && t.Step < cfg.Run.Steps {
		t.record = &pendingEval{Record: m}
		r, err := t.Evaluate(ctx, t.Eval, cfg.Run.EvalN, t.MaxCalls(), engine.SampleParams{TopP: 1}, cfg.Run.Seed)
		if err != nil {
			return err
		}
		m.EvalAccuracy = &r.AvgAtK
	}
	t.record = nil
	if mw != nil {
		if err := mw.Write(m); err != nil {
			return err
		}
	}
	p.Update(t.Step, fmt.Sprintf("reward %+.2f acc %.2f calls %.2f len %.0f", m.RewardMean, m.Accuracy, m.ToolCalls, m.ResponseLenMean))
	if cfg.Run.SaveEvery > 0 && t.Step%cfg.Run.SaveEvery == 0 && t.Step < cfg.Run.Steps {
		if _, err := t.Save(filepath.Join(cfg.Run.OutDir, "checkpoints"), cfg.Run.KeepLast); err != nil {
			return err
		}
	}
	return nil
}

// PlotFile draws the default curves of recs into a PNG at path.
func PlotFile(path string, recs []metrics.Record) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = metrics.Plot(f, recs, metrics.DefaultCurves, 3, 1500, 1100)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
