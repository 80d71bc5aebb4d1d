package train

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"time"

	"cir/engine"
	"cir/model"
	"cir/tokenizer"
	"cir/train/config"
	"cir/train/data"
	"cir/train/rollout"
	"cir/train/sandbox"
)

// Job is a trainer with everything it was built from: the backend, the sandbox pool, the
// held-out tasks. Close releases them all.
type Job struct {
	*Trainer
	Backend engine.Backend
	Pool    *sandbox.Pool
	Eval    []Task
}

// Open builds a job from cfg on backend b: the tokenizer, the model (loaded or initialised),
// the tasks (toy or files), the sandbox pool, the decoder and the optimizer. Errors name the
// config key or file at fault.
func Open(ctx context.Context, cfg config.Config, b engine.Backend, scorer Scorer, log io.Writer) (*Job, error) {
	t, err := NewTrainer(cfg)
	if err != nil {
		return nil, err
	}
	t.Scorer = scorer
	j := &Job{Trainer: t, Backend: b}
	ok := false
	defer func() {
		if !ok {
			j.Close()
		}
	}()

	// Model.
	switch {
	case cfg.Model.Dir != "":
		if t.Model, err = model.Load(cfg.Model.Dir, b); err != nil {
			return nil, fmt.Errorf("model.dir: %w", err)
		}
	case cfg.Model.Init != "":
		mc, err := model.LoadConfig(cfg.Model.Init)
		if err != nil {
			return nil, fmt.Errorf("model.init: %w", err)
		}
		if t.Model, err = model.New(mc, b); err != nil {
			return nil, fmt.Errorf("model.init: %w", err)
		}
		t.Model.Init(cfg.Run.Seed, 0.02)
	default:
		return nil, fmt.Errorf("model: set model.dir (a checkpoint) or model.init (a config.json)")
	}
	t.Model.Log = log
	if cfg.Model.Reference != "" && cfg.RL.KLCoef != 0 {
		if t.Ref, err = model.Load(cfg.Model.Reference, b); err != nil {
			return nil, fmt.Errorf("model.reference: %w", err)
		}
	}

	// Tokenizer.
	switch cfg.Model.Tokenizer {
	case "byte":
		t.Tok = tokenizer.NewByte()
	case "":
		if cfg.Model.Dir == "" {
			return nil, fmt.Errorf("model.tokenizer: set a tokenizer.json, a model directory or \"byte\"")
		}
		if t.Tok, err = tokenizer.Load(cfg.Model.Dir); err != nil {
			return nil, fmt.Errorf("model.tokenizer: %w", err)
		}
	default:
		if t.Tok, err = tokenizer.Load(cfg.Model.Tokenizer); err != nil {
			return nil, fmt.Errorf("model.tokenizer: %w", err)
		}
	}
	if t.Tok.VocabSize() > t.Model.Cfg.VocabSize {
		return nil, fmt.Errorf("model.tokenizer: %d tokens but the model's vocabulary has %d", t.Tok.VocabSize(), t.Model.Cfg.VocabSize)
	}
	t.EOS = t.Tok.EOS()
	if len(t.EOS) == 0 {
		return nil, fmt.Errorf("model.tokenizer: no end-of-sequence token")
	}

	// Tasks.
	if t.Train, j.Eval, err = loadTasks(cfg, t.Tok); err != nil {
		return nil, err
	}
	if len(t.Train) == 0 {
		return nil, fmt.Errorf("data: no training problems (set data.train or data.toy.enabled)")
	}

	// Interpreter, decoder, optimizer. Stateful rollouts hold a session (an interpreter) per
	// trajectory in a decoder slot.
	slots := min(cfg.Rollout.PromptsPerStep*cfg.Rollout.N, 256)
	scfg := sandbox.Config{Workers: cfg.Rollout.SandboxWorkers,
		Timeout: time.Duration(cfg.Rollout.SandboxTimeout * float64(time.Second))}
	if cfg.Rollout.Stateful {
		scfg.MaxSessions = max(slots, sandbox.DefaultConfig().MaxSessions)
	}
	if j.Pool, err = sandbox.New(ctx, scfg); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	t.Exec = rollout.NewSandbox(j.Pool)
	if t.Dec, err = t.Model.NewDecoder(slots, cfg.Rollout.MaxPrompt+cfg.Rollout.MaxResponse); err != nil {
		return nil, err
	}
	if t.Opt, err = t.Model.NewAdamW(); err != nil {
		return nil, err
	}
	if err := t.Model.Reserve(cfg.Optim.MicroTokens); err != nil {
		return nil, err
	}
	ok = true
	return j, nil
}

// Close releases the job's sandbox, decoder, optimizer, model and backend.
func (j *Job) Close() error {
	if j.Pool != nil {
		j.Pool.Close()
	}
	t := j.Trainer
	if t.Dec != nil {
		t.Dec.Close()
	}
	if t.Opt != nil {
		t.Opt.Close()
	}
	if t.Ref != nil {
		t.Ref.Close()
	}
	if t.Model != nil {
		t.Model.Close()
	}
	return nil
}

// loadTasks builds the training and held-out tasks: the generated toy task, or the JSONL /
// parquet files of data.train and data.eval, prompts made with data.template.
func loadTasks(cfg config.Config, tok tokenizer.Tokenizer) (train, eval []Task, err error) {
	d := cfg.Data
	if d.Toy.Enabled {
		kinds, err := data.ParseKinds(d.Toy.Kinds)
		if err != nil {
			return nil, nil, fmt.Errorf("data.toy.kinds: %w", err)
		}
		direct, err := data.ParseDirect(d.Toy.Direct)
		if err != nil {
			return nil, nil, fmt.Errorf("data.toy.direct: %w", err)
		}
		teacher := rand.New(rand.NewPCG(d.Toy.Seed, 0x74656163))
		ps, err := data.Problems(d.Toy.Seed, d.Toy.Train, kinds)
		if err != nil {
			return nil, nil, fmt.Errorf("data.toy.train: %w", err)
		}
		for _, p := range ps {
			train = append(train, toyTask(p, tok, teacher.Float64() < direct[p.Kind]))
		}
		if ps, err = data.HeldOut(d.Toy.Seed, d.Toy.Eval, kinds); err != nil {
			return nil, nil, fmt.Errorf("data.toy.eval: %w", err)
		}
		for _, p := range ps {
			eval = append(eval, toyTask(p, tok, false))
		}
		return train, eval, nil
	}
	f := data.Fields{Problem: d.ProblemField, Answer: d.AnswerField}
	for _, set := range []struct {
		files []string
		out   *[]Task
	}{{d.Train, &train}, {d.Eval, &eval}} {
		for _, path := range set.files {
			ex, err := data.Load(path, f)
			if err != nil {
				return nil, nil, err
			}
			for _, e := range ex {
				t, err := FileTask(e.Problem, e.Answer, d.Template, tok, cfg.Rollout.MaxPrompt)
				if err != nil {
					return nil, nil, fmt.Errorf("%s: %w", e.Source, err)
				}
				t.Kind = subject(path)
				*set.out = append(*set.out, t)
			}
		}
	}
	return train, eval, nil
}

func subject(path string) string {
	b := filepath.Base(path)
	return b[:len(b)-len(filepath.Ext(b))]
}

// toyTask tokenizes a toy problem and, for the basic kinds only, its demonstration (tool text
// with role tool): the interpreter protocol, or with direct the answer alone. The composed
// kinds are left for RL to find.
func toyTask(p data.Problem, tok tokenizer.Tokenizer, direct bool) Task {
	t := Task{Problem: p.Prompt, Prompt: tok.EncodePlain(data.Format(p.Prompt)), Answer: p.Answer, Kind: string(p.Kind)}
	if !p.Kind.Basic() {
		return t
	}
	segs := p.Segments()
	if direct {
		segs = p.DirectSegments()
	}
	for _, s := range segs {
		ids := tok.EncodePlain(s.Text)
		role := rollout.RolePolicy
		if s.Tool {
			role = rollout.RoleTool
		}
		t.DemoIDs = append(t.DemoIDs, ids...)
		for range ids {
			t.DemoRoles = append(t.DemoRoles, role)
		}
	}
	return t
}

// FileTask makes the prompt of a dataset problem: with template "cir" the CIR instruction and
// the problem as the user turn of the chat template (generation prompt added); with "toy" the
// compact toy format. It returns an error when the prompt is longer than maxPrompt tokens.
func FileTask(problem, answer, template string, tok tokenizer.Tokenizer, maxPrompt int) (Task, error) {
	var ids []int32
	switch template {
	case "cir", "":
		ids = rollout.Prompt(tok, problem)
	case "toy":
		ids = tok.EncodePlain(data.Format(problem))
	default:
		return Task{}, fmt.Errorf("data.template: %q is not cir or toy", template)
	}
	if maxPrompt > 0 && len(ids) > maxPrompt {
		return Task{}, fmt.Errorf("prompt of %d tokens is longer than rollout.max_prompt=%d", len(ids), maxPrompt)
	}
	return Task{Problem: problem, Prompt: ids, Answer: answer}, nil
}
