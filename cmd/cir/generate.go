package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"time"

	"cir/engine"
	"cir/tokenizer"
	"cir/train"
	"cir/train/rollout"
	"cir/train/sandbox"
)

func cmdGenerate(e *env, args []string) error {
	fs := e.flags("generate")
	dir := fs.String("model", "", "model directory (config.json, weights, tokenizer.json)")
	promptArg := fs.String("prompt", "", "the problem; '-' reads it from stdin")
	maxNew := fs.Int("max-new", 1024, "most tokens after the prompt (policy and tool)")
	temp := fs.Float64("temperature", 1.0, "sampling temperature; 0 is greedy")
	topP := fs.Float64("top-p", 1.0, "nucleus sampling threshold in (0, 1]")
	topK := fs.Int("top-k", 0, "keep the K most likely tokens; 0 keeps all")
	seed := fs.Uint64("seed", 0, "random seed")
	maxCalls := fs.Int("max-calls", 2, "code executions per answer")
	n := fs.Int("n", 1, "answers to sample")
	asJSON := fs.Bool("json", false, "print one JSON object per answer instead of streaming text")
	stateful := fs.Bool("stateful", false, "keep one Python session per answer")
	timeout := fs.Float64("timeout", 5, "wall-time limit of one execution in `seconds`")
	raw := fs.Bool("raw", false, "sample after the prompt as given, without the instruction and chat template")
	open := e.deviceFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "model", "prompt"); err != nil {
		return err
	}
	hint := "see 'cir generate --help'"
	switch {
	case *maxNew < 1:
		return errorf(hint, "generate: --max-new %d must be ≥ 1", *maxNew)
	case *n < 1:
		return errorf(hint, "generate: --n %d must be ≥ 1", *n)
	case *maxCalls < 0:
		return errorf(hint, "generate: --max-calls %d must be ≥ 0", *maxCalls)
	case !(*temp >= 0):
		return errorf(hint, "generate: --temperature %g must be ≥ 0", *temp)
	case !(*topP > 0 && *topP <= 1):
		return errorf(hint, "generate: --top-p %g must be in (0, 1]", *topP)
	case *topK < 0:
		return errorf(hint, "generate: --top-k %d must be ≥ 0", *topK)
	case !(*timeout > 0) || *timeout > 3600:
		return errorf("give seconds in (0, 3600]", "generate: --timeout %v is out of range", *timeout)
	}
	problem := *promptArg
	if problem == "-" {
		b, err := io.ReadAll(e.stdin)
		if err != nil {
			return fmt.Errorf("generate: reading the prompt from stdin: %w", err)
		}
		problem = strings.TrimRight(string(b), "\n")
	}

	tok, err := tokenizer.Load(*dir)
	if err != nil {
		return err
	}
	var prompt []int32
	if *raw {
		prompt = tok.Encode(problem)
	} else {
		prompt = rollout.Prompt(tok, problem)
	}
	if len(prompt) == 0 {
		return errorf(hint, "generate: --prompt is empty")
	}

	m, b, err := loadModel(e, *dir, open)
	if err != nil {
		return err
	}
	defer b.Close()
	defer m.Close()
	if prompt[len(prompt)-1] >= int32(m.Cfg.VocabSize) || tok.VocabSize() > m.Cfg.VocabSize {
		return errorf("the model's tokenizer.json must match its config.json", "generate: tokenizer of %d ids for a model vocabulary of %d", tok.VocabSize(), m.Cfg.VocabSize)
	}
	maxLen := len(prompt) + *maxNew
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

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var exec rollout.Executor
	var sb *lazySandbox
	if *maxCalls > 0 {
		// Warm workers take seconds to start: start them while the model decodes.
		cfg := sandbox.DefaultConfig()
		cfg.Timeout = time.Duration(*timeout * float64(time.Second))
		if *stateful { // a session per answer
			cfg.MaxSessions = max(cfg.MaxSessions, *n)
		}
		sb = startSandbox(ctx, cfg)
		defer sb.close()
		exec = sb
	}
	eng := &rollout.Engine{
		Policy: train.Policy(dec),
		Tok:    tok,
		Exec:   exec,
		Config: rollout.Config{
			Sample:   engine.SampleParams{Temperature: float32(*temp), TopP: float32(*topP), TopK: *topK},
			N:        *n,
			EOS:      tok.EOS(),
			MaxNew:   *maxNew,
			MaxCalls: *maxCalls,
			Stateful: *stateful,
			Seed:     *seed,
		},
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
