package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"cir/engine"
	"cir/train"
	"cir/train/ckpt"
	"cir/train/config"
	"cir/train/metrics"
)

// runBackend opens the backend named by a run config's device and threads.
func (e *env) runBackend(device string, threads int) (engine.Backend, error) {
	fs := e.flags("train")
	open := e.deviceFlags(fs)
	args := []string{"--device", device}
	if threads > 0 {
		args = append(args, "--threads", fmt.Sprint(threads))
	}
	if err := fs.Parse(args); err != nil {
		return nil, errorf("run.device is cpu, cuda:N or auto", "run.device: %v", err)
	}
	return open()
}

func cmdTrain(e *env, args []string) error {
	fs := e.flags("train")
	cfgPath := fs.String("config", "", "run config (YAML); key=value arguments override it")
	resume := fs.Bool("resume", false, "continue from the newest checkpoint in run.out_dir")
	// Flags may stand before, between or after the key=value overrides.
	var overrides []string
	for {
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		overrides, args = append(overrides, fs.Arg(0)), fs.Args()[1:]
	}
	cfg, err := config.Load(*cfgPath, overrides)
	if err != nil {
		return err
	}
	if *resume {
		cfg.Run.Resume = true
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	b, err := e.runBackend(cfg.Run.Device, cfg.Run.Threads)
	if err != nil {
		return err
	}
	defer b.Close()
	ck, err := cfg.Reward.Checker()
	if err != nil {
		return err
	}
	job, err := train.Open(ctx, cfg, b, ck, e.stderr)
	if err != nil {
		return err
	}
	defer job.Close()
	out := cfg.Run.OutDir
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "config.yaml"), cfg.YAML(), 0o644); err != nil {
		return err
	}
	ckptDir := filepath.Join(out, "checkpoints")
	if cfg.Run.Resume {
		dir, err := job.Resume(ckptDir)
		if err != nil && !errors.Is(err, ckpt.ErrNoCheckpoint) {
			return err
		}
		if err == nil {
			fmt.Fprintf(e.stderr, "resumed from %s at step %d\n", dir, job.Step)
		}
	}
	fmt.Fprintf(e.stderr, "model: %.2fM parameters on %v; %d training and %d held-out problems\n",
		float64(job.Model.NumParams())/1e6, b.Device(), len(job.Train), len(job.Eval))

	summary := map[string]any{}
	evalCalls := job.Budget(cfg.Run.Steps)
	greedy := engine.SampleParams{TopP: 1}
	evaluate := func(name string, maxCalls int) (float64, error) {
		r, err := job.Evaluate(ctx, job.Eval, cfg.Run.EvalN, maxCalls, greedy, cfg.Run.Seed)
		if err != nil {
			return 0, err
		}
		fmt.Fprintf(e.stderr, "eval %-18s acc %.3f  pass@%d %.3f  calls %.2f  len %.0f  (%.1fs) %v\n",
			name, r.AvgAtK, r.K, r.PassAtK, r.MeanCalls, r.MeanLen, r.Seconds, r.ByKind)
		summary[name] = r
		return r.AvgAtK, nil
	}

	if !job.SFTDone && cfg.SFT.Steps > 0 {
		p := metrics.NewProgress(e.stderr, cfg.SFT.Steps)
		err := job.SFT(func(step int, loss float64) { p.Update(step, fmt.Sprintf("warm-up loss %.4f", loss)) })
		p.Done()
		if err != nil {
			return err
		}
	}
	if len(job.Eval) > 0 && job.Step == 0 {
		before, err := evaluate("before_rl", evalCalls)
		if err != nil {
			return err
		}
		job.BeforeRL = &before
	}

	mw, err := metrics.Create(filepath.Join(out, "metrics.jsonl"), job.Step)
	if err != nil {
		return err
	}
	defer mw.Close()
	p := metrics.NewProgress(e.stderr, cfg.Run.Steps)
	for job.Step < cfg.Run.Steps {
		if err := ctx.Err(); err != nil {
			p.Done()
			if _, serr := job.Save(ckptDir, cfg.Run.KeepLast); serr != nil {
				return serr
			}
			return fmt.Errorf("interrupted at step %d (checkpoint saved; continue with --resume)", job.Step)
		}
		m, err := job.RLStep(ctx)
		if err != nil {
			return err
		}
		if cfg.Run.EvalEvery > 0 && job.Step%cfg.Run.EvalEvery == 0 && job.Step < cfg.Run.Steps {
			r, err := job.Evaluate(ctx, job.Eval, cfg.Run.EvalN, job.MaxCalls(), greedy, cfg.Run.Seed)
			if err != nil {
				return err
			}
			m.EvalAccuracy = &r.AvgAtK
		}
		if err := mw.Write(m); err != nil {
			return err
		}
		p.Update(job.Step, fmt.Sprintf("reward %+.2f acc %.2f calls %.2f len %.0f", m.RewardMean, m.Accuracy, m.ToolCalls, m.ResponseLenMean))
		if cfg.Run.SaveEvery > 0 && job.Step%cfg.Run.SaveEvery == 0 && job.Step < cfg.Run.Steps {
			if _, err := job.Save(ckptDir, cfg.Run.KeepLast); err != nil {
				return err
			}
		}
	}
	p.Done()
	dir, err := job.Save(ckptDir, cfg.Run.KeepLast)
	if err != nil {
		return err
	}
	res := map[string]any{"rl_steps": job.Step, "checkpoint": dir}
	if len(job.Eval) > 0 {
		tools, err := evaluate("heldout_tools", evalCalls)
		if err != nil {
			return err
		}
		noTools, err := evaluate("heldout_no_tools", 0)
		if err != nil {
			return err
		}
		res["heldout_acc_tools"], res["heldout_acc_no_tools"] = tools, noTools
		if job.BeforeRL != nil {
			res["acc_before_rl"] = *job.BeforeRL
		}
	}
	if recs, err := metrics.ReadFile(filepath.Join(out, "metrics.jsonl")); err == nil && len(recs) > 0 {
		if err := plotFile(filepath.Join(out, "curves.png"), recs); err != nil {
			fmt.Fprintf(e.stderr, "plot: %v\n", err)
		} else {
			res["plot"] = filepath.Join(out, "curves.png")
		}
	}
	js, _ := json.MarshalIndent(summary, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "eval.json"), js, 0o644); err != nil {
		return err
	}
	res["minutes"] = time.Since(start).Minutes()
	return json.NewEncoder(e.stdout).Encode(res)
}

// plotFile draws the default curves of recs into a PNG at path.
func plotFile(path string, recs []metrics.Record) error {
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
