package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"

	"cir/tokenizer"
	"cir/train"
	"cir/train/rollout"
	"cir/train/sandbox"
)

func cmdGenerate(e *env, args []string) error {
	fs := e.flags("generate")
	dir := fs.String("model", "", "model directory (config.json, weights, tokenizer.json, its chat template)")
	promptArg := fs.String("prompt", "", "the problem; '-' reads it from stdin as it is (a final newline included)")
	seed := fs.Uint64("seed", 0, "random seed")
	n := fs.Int("n", 1, "answers to sample")
	asJSON := fs.Bool("json", false, "print one JSON object per answer instead of streaming text")
	raw := fs.Bool("raw", false, "sample after the prompt as given, without the instruction and chat template")
	rs := addSettings(fs, true)
	open := e.deviceFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "model", "prompt"); err != nil {
		return err
	}
	hint := "see 'cir generate --help'"
	if *n < 1 {
		return errorf(hint, "generate: --n %d must be ≥ 1", *n)
	}
	if err := rs.resolve(*dir); err != nil {
		return err
	}
	maxCalls, err := rs.maxCalls()
	if err != nil {
		return err
	}
	problem, err := readPrompt(e, *promptArg)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}

	tok, err := tokenizer.Load(*dir)
	if err != nil {
		return err
	}
	var prompt []int32
	if *raw {
		prompt = tok.Encode(problem)
	} else {
		p, err := train.NewPrompter(tok, *dir, rs.P)
		if err != nil {
			return err
		}
		if prompt, err = p.IDs(problem, nil); err != nil {
			return err
		}
	}
	if len(prompt) == 0 {
		return errorf(hint, "generate: --prompt is empty")
	}
	if len(prompt) > rs.S.MaxPrompt {
		return errorf("raise --max-prompt for longer prompts", "generate: prompt of %d tokens is longer than --max-prompt %d", len(prompt), rs.S.MaxPrompt)
	}

	m, b, err := loadModel(e, *dir, open)
	if err != nil {
		return err
	}
	defer b.Close()
	defer m.Close()
	if tok.VocabSize() > m.Cfg.VocabSize {
		return errorf("the model's tokenizer.json must match its config.json", "generate: tokenizer of %d ids for a model vocabulary of %d", tok.VocabSize(), m.Cfg.VocabSize)
	}
	maxLen := len(prompt) + rs.S.MaxResponse
	if lim := m.Cfg.MaxPositions; lim > 0 && maxLen > lim {
		maxLen = lim
	}
	if len(prompt) >= maxLen {
		return errorf("use a shorter prompt", "generate: prompt of %d tokens fills the model's %d positions", len(prompt), maxLen)
	}
	dec, err := m.NewDecoder(*n, maxLen)
	if err != nil {
		return err
	}
	defer dec.Close()

	ctx, stop := interruptContext(e.stderr)
	defer stop()
	var exec rollout.Executor
	var sb *lazySandbox
	if maxCalls > 0 {
		// Warm workers take seconds to start: start them while the model decodes.
		sb = startSandbox(ctx, rs.S.SandboxConfig(*n))
		defer sb.close()
		exec = sb
	}
	eng := &rollout.Engine{
		Policy: train.Policy(dec),
		Tok:    tok,
		Exec:   exec,
		Config: rs.S.Config(*n, maxCalls, tok.EOS(), mixSeed(*seed)),
	}
	out := bufio.NewWriter(e.stdout)
	defer out.Flush()
	stream := !*asJSON && *n == 1
	var sd *tokenizer.StreamDecoder
	if stream {
		sd = tokenizer.NewStreamDecoder(tok)
		eos := tok.EOS()
		eng.OnAppend = func(_ int, ids []int32, _ rollout.Role) {
			for _, id := range ids {
				if !containsID(eos, id) {
					out.WriteString(sd.Add(id))
				}
			}
			out.Flush()
		}
	}
	trs, st, err := eng.Run(ctx, [][]int32{prompt})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("generate: %w", train.ErrInterrupted)
		}
		return err
	}
	if stream {
		out.WriteString(sd.Flush() + "\n")
		out.Flush()
	}
	if sb != nil && st.Calls > 0 {
		if err := sb.startErr(); err != nil {
			fmt.Fprintf(e.stderr, "warning: the sandbox did not start, code was not run: %v\n", err)
		}
	}
	switch {
	case *asJSON:
		for _, tr := range trs {
			if err := writeTrajectory(out, tr); err != nil {
				return err
			}
		}
	case !stream:
		for i, tr := range trs {
			fmt.Fprintf(out, "=== answer %d (%s, %d calls) ===\n%s\n", i, tr.Finish, len(tr.Calls), tr.Text)
		}
	}
	resp := st.Sampled + st.ToolToks
	fmt.Fprintf(e.stderr, "%d answers, %d tokens (%d sampled, %d tool) in %.2fs: %.1f tok/s sampled; %d calls, idle %.1f%%\n",
		len(trs), resp, st.Sampled, st.ToolToks, st.Wall.Seconds(), float64(st.Sampled)/st.Wall.Seconds(), st.Calls, 100*st.IdleShare())
	return nil
}

func containsID(ids []int32, id int32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// writeTrajectory prints tr as one JSON line: tokens (prompt included), roles, logprobs
// (aligned with the tokens after the prompt; null for tool tokens), text and calls.
func writeTrajectory(w io.Writer, tr rollout.Trajectory) error {
	type call struct {
		Code      string  `json:"code"`
		Output    string  `json:"output"`
		Kind      string  `json:"kind"`
		LatencyMS float64 `json:"latency_ms"`
	}
	rec := struct {
		Tokens    []int32        `json:"tokens"`
		Roles     []rollout.Role `json:"roles"`
		Logprobs  []*float32     `json:"logprobs"`
		PromptLen int            `json:"prompt_len"`
		Text      string         `json:"text"`
		Calls     []call         `json:"calls"`
		Skipped   int            `json:"skipped_calls"`
		Finish    rollout.Finish `json:"finish"`
	}{Tokens: tr.Tokens, Roles: tr.Roles, PromptLen: tr.PromptLen, Text: tr.Text, Skipped: tr.Skipped, Finish: tr.Finish,
		Logprobs: make([]*float32, len(tr.LogProbs)), Calls: []call{}}
	for i := range tr.LogProbs {
		if !math.IsNaN(float64(tr.LogProbs[i])) {
			rec.Logprobs[i] = &tr.LogProbs[i]
		}
	}
	for _, c := range tr.Calls {
		rec.Calls = append(rec.Calls, call{c.Code, c.Output, string(c.Kind), float64(c.Latency.Microseconds()) / 1000})
	}
	return json.NewEncoder(w).Encode(rec)
}

// startSandbox starts a sandbox pool in the background and returns an Executor whose calls
// wait for it.
func startSandbox(ctx context.Context, cfg sandbox.Config) *lazySandbox {
	pctx, cancel := context.WithCancel(ctx)
	sb := &lazySandbox{ready: make(chan struct{}), cancel: cancel, workers: cfg.Workers}
	if sb.workers == 0 {
		sb.workers = sandbox.DefaultConfig().Workers
	}
	go func() {
		defer close(sb.ready)
		sb.pool, sb.err = sandbox.New(pctx, cfg)
		if sb.err == nil {
			sb.exec = rollout.NewSandbox(sb.pool)
		}
	}()
	return sb
}

// startErr waits for the pool's start and returns its error.
func (l *lazySandbox) startErr() error {
	<-l.ready
	return l.err
}

// lazySandbox is an Executor whose pool starts in the background; a call waits for it.
type lazySandbox struct {
	ready   chan struct{}
	cancel  context.CancelFunc
	pool    *sandbox.Pool
	exec    *rollout.Sandbox
	err     error
	workers int // calls the pool will run at once
}

// Concurrency returns the pool's number of workers (rollout.Concurrent).
func (l *lazySandbox) Concurrency() int { return l.workers }

func (l *lazySandbox) Exec(ctx context.Context, code string, session int) rollout.ExecResult {
	select {
	case <-l.ready:
	case <-ctx.Done():
		return rollout.ExecResult{Output: "Timeout Error", Kind: rollout.KindTimeout}
	}
	if l.err != nil {
		return rollout.ExecResult{Output: "Execution Error", Kind: rollout.KindCrash}
	}
	return l.exec.Exec(ctx, code, session)
}

func (l *lazySandbox) CloseSession(session int) {
	<-l.ready
	if l.exec != nil {
		l.exec.CloseSession(session)
	}
}

// close stops the pool's start if it is still starting, and closes the pool.
func (l *lazySandbox) close() {
	l.cancel()
	<-l.ready
	if l.pool != nil {
		l.pool.Close()
	}
}

// mixSeed spreads a user's seed over 64 bits (SplitMix64's finaliser) before it seeds the
// rollout's PCG streams: PCG seeded with small numbers starts poorly (seed 0's first uniform
// is 0.99999, so the default seed sampled the first token from the distribution's far tail).
func mixSeed(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
