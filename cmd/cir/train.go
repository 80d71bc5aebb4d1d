package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"cir/engine"
	"cir/train"
	"cir/train/compare"
	"cir/train/config"
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
	ctx, stop := interruptContext(e.stderr)
	defer stop()
	b, err := e.runBackend(cfg.Run.Device, cfg.Run.Threads)
	if err != nil {
		return err
	}
	defer b.Close()
	if cfg.Compare.MaxCalls != "" {
		return runCompare(ctx, e, cfg, train.Options{Backend: b, Log: e.stderr})
	}
	t, err := train.NewTrainer(ctx, cfg, train.Options{Backend: b, Log: e.stderr})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w before training started (%v)", train.ErrInterrupted, err)
		}
		return err
	}
	defer t.Close()
	sum, err := t.Run(ctx)
	if err != nil {
		return err
	}
	return json.NewEncoder(e.stdout).Encode(sum)
}

// runCompare runs the comparison of budget schedules that compare.max_calls asks for and
// prints its summary.
func runCompare(ctx context.Context, e *env, cfg config.Config, opt train.Options) error {
	r, err := compare.Run(ctx, cfg, opt)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, train.ErrInterrupted) {
			return fmt.Errorf("%w (%v)", train.ErrInterrupted, err)
		}
		return err
	}
	return json.NewEncoder(e.stdout).Encode(r.Summary(filepath.Join(cfg.Run.OutDir, compare.ReportFile)))
}
