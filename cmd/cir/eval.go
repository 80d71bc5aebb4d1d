package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"cir/engine"
	"cir/tokenizer"
	"cir/train"
	"cir/train/config"
	"cir/train/data"
	"cir/train/reward"
	"cir/train/rollout"
	"cir/train/sandbox"
)

func cmdEval(e *env, args []string) error {
	fs := e.flags("eval")
	dir := fs.String("model", "", "model directory (HF layout)")
	tokPath := fs.String("tokenizer", "", "tokenizer.json or directory (default: the model's)")
	bench := fs.String("bench", "", "benchmark JSONL (problem, and answer or solution)")
	n := fs.Int("n", 1, "samples per problem (avg@k and pass@k with k = n)")
	maxCalls := fs.Int("max-calls", 4, "code executions per answer in the with-tools run")
	maxNew := fs.Int("max-new", 4096, "response tokens at most")
	temp := fs.Float64("temperature", 0, "sampling temperature (0: greedy; use > 0 with --n > 1)")
	topP := fs.Float64("top-p", 1, "top-p")
	template := fs.String("template", "cir", "prompt template: cir (instruction + chat template) or toy")
	limit := fs.Int("limit", 0, "evaluate only the first N problems (0: all)")
	seed := fs.Uint64("seed", 1, "sampling seed")
	slots := fs.Int("slots", 64, "sequences decoded at once")
	open := e.deviceFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "model", "bench"); err != nil {
		return err
	}
	if *n < 1 {
		return errorf("use --n 1 or more", "eval: --n %d", *n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	m, b, err := loadModel(e, *dir, open)
	if err != nil {
		return err
	}
	defer b.Close()
	defer m.Close()
	if *tokPath == "" {
		*tokPath = *dir
	}
	tok, err := tokenizer.Load(*tokPath)
	if err != nil {
		return err
	}
	ex, err := data.Load(*bench, data.Fields{})
	if err != nil {
		return err
	}
	if len(ex) == 0 {
		return errorf("give a JSONL file with a problem and an answer a line", "eval: %s holds no problems", *bench)
	}
	if *limit > 0 && *limit < len(ex) {
		ex = ex[:*limit]
	}
	tasks := make([]train.Task, len(ex))
	for i, x := range ex {
		if tasks[i], err = train.FileTask(x.Problem, x.Answer, *template, tok, 0); err != nil {
			return fmt.Errorf("%s: %w", x.Source, err)
		}
		tasks[i].Kind = x.Subject
	}
	cfg := config.Default()
	cfg.Rollout.MaxResponse = *maxNew
	t, err := train.NewTrainer(cfg)
	if err != nil {
		return err
	}
	// Evaluation reads answers leniently, as the reference evaluation does.
	t.Model, t.Tok, t.EOS, t.Scorer = m, tok, tok.EOS(), &reward.Checker{Correct: 1, Wrong: -1, Mode: reward.Lenient}
	maxPrompt := 0
	for _, task := range tasks {
		maxPrompt = max(maxPrompt, len(task.Prompt))
	}
	if t.Dec, err = m.NewDecoder(*slots, maxPrompt+*maxNew); err != nil {
		return err
	}
	defer t.Dec.Close()
	pool, err := sandbox.New(ctx, sandbox.DefaultConfig())
	if err != nil {
		return err
	}
	defer pool.Close()
	t.Exec = rollout.NewSandbox(pool)

	sp := engine.SampleParams{Temperature: float32(*temp), TopP: float32(*topP)}
	res := map[string]any{"model": *dir, "bench": filepath.Base(*bench), "problems": len(tasks), "k": *n}
	for _, run := range []struct {
		name  string
		calls int
	}{{"tools", *maxCalls}, {"no_tools", 0}} {
		t0 := time.Now()
		r, err := t.Evaluate(ctx, tasks, *n, run.calls, sp, *seed)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "%-8s avg@%d %.4f  pass@%d %.4f  calls %.2f  length %.0f  (%s)\n",
			run.name, *n, r.AvgAtK, *n, r.PassAtK, r.MeanCalls, r.MeanLen, time.Since(t0).Round(time.Second))
		res[run.name] = r
	}
	return json.NewEncoder(e.stdout).Encode(res)
}
