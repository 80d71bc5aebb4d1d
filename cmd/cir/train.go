package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"

	"cir/engine"
	"cir/engine/cpu"
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

// gpuGroup is the GPUs of a data-parallel run and their communicators.
type gpuGroup struct {
	Backends []engine.Backend
	Comms    []engine.Comm
	close    func() error // the communicators'
}

// Close closes the communicators, then the backends.
func (g *gpuGroup) Close() error {
	var first error
	if g.close != nil {
		first = g.close()
	}
	for _, b := range g.Backends {
		if err := b.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func cmdTrain(e *env, args []string) error {
	fs := e.flags("train")
	cfgPath := fs.String("config", "", "run config (YAML); key=value arguments override it")
	resume := fs.Bool("resume", false, "continue from the newest checkpoint in run.out_dir")
	devices := fs.String("devices", "", "one rank per device (data parallelism, ZeRO-1): cuda:0,cuda:1,… | cuda:all | cpu,cpu,…; or one device: cpu | cuda:N | auto (default: run.device)")
	plan := fs.Bool("plan", false, "print the memory plan of one rank and exit, allocating nothing")
	memory := fs.String("memory", "", "with --plan: one device's memory to check the plan against, e.g. 80GB (default: the first GPU's)")
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
	if *devices != "" {
		overrides = append(overrides, "run.device="+*devices)
	}
	cfg, err := config.Load(*cfgPath, overrides)
	if err != nil {
		return err
	}
	if *resume {
		cfg.Run.Resume = true
	}
	devs, err := config.ParseDevices(cfg.Run.Device)
	if err != nil {
		return err
	}
	if *plan {
		return e.trainPlan(cfg, devs, *memory)
	}
	if *memory != "" {
		return errorf("it checks --plan's figures", "--memory without --plan")
	}
	ctx, stop := interruptContext(e.stderr)
	defer stop()
	if cfg.Compare.MaxCalls != "" {
		if devs.Group {
			return errorf("run the comparison on one device", "compare.max_calls with --devices %s", devs.String())
		}
		return e.trainCompare(ctx, cfg)
	}
	var sum *train.Summary
	if devs.Group {
		sum, err = e.trainGroup(ctx, cfg, devs)
	} else {
		sum, err = e.trainOne(ctx, cfg)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(e.stdout).Encode(sum)
}

// trainOne runs the job on one device.
func (e *env) trainOne(ctx context.Context, cfg config.Config) (*train.Summary, error) {
	b, err := e.runBackend(cfg.Run.Device, cfg.Run.Threads)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	t, err := train.NewTrainer(ctx, cfg, train.Options{Backend: b, Log: e.stderr})
	if err != nil {
		return nil, notStarted(ctx, err)
	}
	defer t.Close()
	return t.Run(ctx)
}

// trainGroup runs the job on the ranks of devs, one goroutine each.
func (e *env) trainGroup(ctx context.Context, cfg config.Config, devs config.Devices) (*train.Summary, error) {
	ranks, closeRanks, err := e.openRanks(devs, cfg.Run.Threads)
	if err != nil {
		return nil, err
	}
	defer closeRanks()
	g, err := train.NewGroup(ctx, cfg, train.Options{Log: e.stderr}, ranks)
	if err != nil {
		return nil, notStarted(ctx, err)
	}
	defer g.Close()
	return g.Run(ctx)
}

// notStarted is the error of a trainer that could not be built: an interruption when ctx was
// cancelled meanwhile.
func notStarted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w before training started (%v)", train.ErrInterrupted, err)
	}
	return err
}

// openRanks opens the devices of a data-parallel group and their Comms: in-process CPU ranks
// sharing threads (run.threads, or all cores) evenly, or GPUs with NCCL.
func (e *env) openRanks(devs config.Devices, threads int) ([]train.Rank, func(), error) {
	if devs.Kind == "cpu" {
		k, err := cpu.GEMMKernels()
		if err != nil {
			return nil, nil, errorf("make deps-run installs it", "%v", err)
		}
		if threads <= 0 {
			threads = runtime.NumCPU()
		}
		per := max(1, threads/devs.CPUs)
		comms := engine.LocalComms(devs.CPUs)
		ranks := make([]train.Rank, devs.CPUs)
		for r := range ranks {
			ranks[r] = train.Rank{Backend: cpu.New(per), Comm: comms[r]}
		}
		threadsEach := fmt.Sprintf("%d threads", per)
		if per == 1 {
			threadsEach = "1 thread"
		}
		e.stderr = &headerWriter{w: e.stderr, header: fmt.Sprintf("cpu: %d ranks of %s each; %s\n", devs.CPUs, threadsEach, k)}
		return ranks, func() {
			for _, rk := range ranks {
				rk.Backend.Close()
			}
		}, nil
	}
	if openCUDAGroup == nil {
		return nil, nil, errorf("build with 'make build' on a machine with nvcc, or use --devices cpu,cpu", "--devices %s: this binary was built without CUDA", devs.String())
	}
	g, err := openCUDAGroup(devs.GPUs)
	if err != nil {
		return nil, nil, fmt.Errorf("--devices %s: %w", devs.String(), err)
	}
	ranks := make([]train.Rank, len(g.Backends))
	for r := range ranks {
		ranks[r] = train.Rank{Backend: g.Backends[r], Comm: g.Comms[r]}
	}
	fmt.Fprintf(e.stderr, "%d GPUs, NCCL\n", len(ranks))
	return ranks, func() { g.Close() }, nil
}

// trainPlan prints the memory plan of one rank of the run on devs (--plan) without opening a
// device: on the CPU in f32, on GPUs in bf16 with the runtime's estimate, checked against
// memory (a size, or the first GPU's memory when one is present).
func (e *env) trainPlan(cfg config.Config, devs config.Devices, memory string) error {
	var mem int64
	if memory != "" {
		m, err := parseSize(memory)
		if err != nil {
			return errorf("a size such as 80GB or 141GiB", "--memory: %v", err)
		}
		mem = m
	}
	kind, ranks := devs.Kind, devs.Ranks()
	if kind == "auto" {
		kind, ranks = "cpu", 1
		if cudaDevices != nil {
			if n, _, err := cudaDevices(); err == nil && n > 0 {
				kind = "cuda"
			}
		}
	}
	dev := engine.Device{Kind: engine.CPU}
	if kind == "cuda" {
		dev = engine.Device{Kind: engine.CUDA}
		if cudaDevices != nil {
			if n, m, err := cudaDevices(); err == nil {
				if devs.All {
					ranks = n
				}
				if mem == 0 {
					mem = m
				}
			}
		}
		if ranks == 0 {
			return errorf("name the GPUs: --devices cuda:0,cuda:1,…", "--devices cuda:all: no GPU to count on this machine")
		}
	}
	arenas, err := train.PlanRank(cfg, dev, ranks)
	if err != nil {
		return err
	}
	train.WritePlan(e.stdout, arenas, dev, ranks, mem)
	return nil
}

// trainCompare runs, on one device, the comparison of budget schedules that compare.max_calls
// asks for and prints its summary.
func (e *env) trainCompare(ctx context.Context, cfg config.Config) error {
	b, err := e.runBackend(cfg.Run.Device, cfg.Run.Threads)
	if err != nil {
		return err
	}
	defer b.Close()
	r, err := compare.Run(ctx, cfg, train.Options{Backend: b, Log: e.stderr})
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, train.ErrInterrupted) {
			return fmt.Errorf("%w (%v)", train.ErrInterrupted, err)
		}
		return err
	}
	return json.NewEncoder(e.stdout).Encode(r.Summary(filepath.Join(cfg.Run.OutDir, compare.ReportFile)))
}
