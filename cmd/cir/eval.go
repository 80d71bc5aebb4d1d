package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"cir/tokenizer"
	"cir/train"
	"cir/train/data"
	"cir/train/reward"
	"cir/train/rollout"
	"cir/train/sandbox"
)

func cmdEval(e *env, args []string) error {
	fs := e.flags("eval")
	dir := fs.String("model", "", "model directory (HF layout)")
	tokPath := fs.String("tokenizer", "", "tokenizer.json or directory (default: the model's); its chat template is used")
	bench := fs.String("bench", "", "benchmark JSONL (problem, and answer or solution)")
	n := fs.Int("n", 1, "samples per problem (avg@k and pass@k with k = n)")
	limit := fs.Int("limit", 0, "evaluate only the first N problems (0: all)")
	seed := fs.Uint64("seed", 1, "sampling seed")
	slots := fs.Int("slots", 64, "sequences decoded at once")
	rs := addSettings(fs, true)
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
	if *tokPath == "" {
		*tokPath = *dir
	}
	// The prompt format lives with the chat template: in the tokenizer's directory.
	if err := rs.resolve(train.TokenizerDir(*tokPath)); err != nil {
		return err
	}
	maxCalls, err := rs.maxCalls()
	if err != nil {
		return err
	}
	ctx, stop := interruptContext(e.stderr)
	defer stop()
	m, b, err := loadModel(e, *dir, open)
	if err != nil {
		return err
	}
	defer b.Close()
	defer m.Close()
	tok, err := tokenizer.Load(*tokPath)
	if err != nil {
		return err
	}
	prompter, err := train.NewPrompter(tok, train.TokenizerDir(*tokPath), rs.P)
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
	maxPrompt := 0
	for i, x := range ex {
		if tasks[i], err = prompter.Task(x, rs.S.MaxPrompt); err != nil {
			return errorf("raise --max-prompt for longer prompts", "%s: %v", x.Source, err)
		}
		tasks[i].Kind = x.Subject
		maxPrompt = max(maxPrompt, len(tasks[i].Prompt))
	}
	// Evaluation reads answers leniently, as the reference evaluation does.
	sc := reward.Default()
	sc.Mode = reward.Lenient
	ev := &train.Evaluator{Tok: tok, EOS: tok.EOS(), Scorer: sc, Settings: rs.S}
	if ev.Dec, err = m.NewDecoder(*slots, maxPrompt+rs.S.MaxResponse); err != nil {
		return err
	}
	defer ev.Dec.Close()
	if maxCalls > 0 {
		pool, err := sandbox.New(ctx, rs.S.SandboxConfig(*slots))
		if err != nil {
			return err
		}
		defer pool.Close()
		ev.Exec = rollout.NewSandbox(pool)
	}

	sp := rs.S.Sample()
	res := map[string]any{"model": *dir, "bench": filepath.Base(*bench), "problems": len(tasks), "k": *n}
	for _, run := range []struct {
		name  string
		calls int
	}{{"tools", maxCalls}, {"no_tools", 0}} {
		t0 := time.Now()
		r, err := ev.Evaluate(ctx, tasks, *n, run.calls, sp, mixSeed(*seed))
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "%-8s avg@%d %.4f  pass@%d %.4f  calls %.2f  length %.0f  (%s)\n",
			run.name, *n, r.AvgAtK, *n, r.PassAtK, r.MeanCalls, r.MeanLen, time.Since(t0).Round(time.Second))
		res[run.name] = r
	}
	return json.NewEncoder(e.stdout).Encode(res)
}
