package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sync"

	"cir/engine"
	"cir/model"
	"cir/tokenizer"
	"cir/train/config"
	"cir/train/rollout"
	"cir/train/sandbox"
)

// Options are what NewTrainer and NewGroup need besides the config.
type Options struct {
	Backend engine.Backend // NewTrainer: where the model lives; the caller closes it after the trainer
	Scorer  Scorer         // nil: reward.Checker with the config's reward values
	Log     io.Writer      // progress and the memory plan; nil: discarded
}

// Rank is one device of a data-parallel group in this process: its backend and its member of
// the group's Comm (nil in a group of one rank). The caller closes both after the group.
type Rank struct {
	Backend engine.Backend
	Comm    engine.Comm
}

// NewTrainer builds a complete trainer on one device from cfg: the model (loaded from
// model.dir or initialised from model.init with run.seed), the tokenizer and the chat
// template, the training and held-out tasks, the sandbox pool (when a budget allows a call),
// the decoder, the optimizer and, with rl.kl_coef > 0, the KL reference. Errors name the config
// key or file at fault; ctx bounds the sandbox's start.
func NewTrainer(ctx context.Context, cfg config.Config, opt Options) (*Trainer, error) {
	if opt.Backend == nil {
		return nil, fmt.Errorf("train: no backend")
	}
	g, err := NewGroup(ctx, cfg, opt, []Rank{{Backend: opt.Backend}})
	if err != nil {
		return nil, err
	}
	t := g.Ranks[0]
	t.ownPool = true
	return t, nil
}

// Group is a data-parallel run in one process: one Trainer (rank) per device, each with its
// model replica, decoder and shard of the optimizer state, sharing the tokenizer, the tasks
// and one sandbox pool. Rank 0 of the whole group alone writes the run's files and logs.
type Group struct {
	Ranks []*Trainer // in the order of NewGroup's ranks
	pool  *sandbox.Pool
}

// NewGroup builds the trainers of the ranks of this process (see NewTrainer), ranks[i] on its
// backend with its Comm (all nil for one rank): the global rank 0 loads or initialises the
// model and broadcasts it; each rank allocates everything it will use (the activations of
// the longest sequence included), and rank 0's Log gets the memory plan of a rank.
func NewGroup(ctx context.Context, cfg config.Config, opt Options, ranks []Rank) (*Group, error) {
	size, err := groupSize(ranks)
	if err != nil {
		return nil, err
	}
	base, err := newTrainer(cfg)
	if err != nil {
		return nil, err
	}
	base.Scorer, base.Log = opt.Scorer, opt.Log
	if base.Log == nil {
		base.Log = io.Discard
	}
	if base.Scorer == nil {
		if base.Scorer, err = cfg.Reward.Checker(); err != nil {
			return nil, err
		}
	}
	mc, err := modelConfig(cfg)
	if err != nil {
		return nil, err
	}
	if err := base.loadTokenizer(mc); err != nil {
		return nil, err
	}
	if base.Train, base.Eval, err = loadTasks(cfg, base.Prompter); err != nil {
		return nil, err
	}
	if len(base.Train) == 0 {
		return nil, fmt.Errorf("data: no training problems (set data.train or data.toy.enabled)")
	}
	shape := rankShape(cfg, size)
	g := &Group{}
	ok := false
	defer func() {
		if !ok {
			g.Close()
		}
	}()
	if base.maxBudget() > 0 {
		if g.pool, err = sandbox.New(ctx, cfg.Rollout.SandboxConfig(shape.Slots*len(ranks))); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		base.Pool, base.Exec = g.pool, rollout.NewSandbox(g.pool)
	}
	for _, rk := range ranks {
		t := new(Trainer)
		*t = *base
		t.Comm = rk.Comm
		if !t.main() {
			t.Log = io.Discard
		}
		g.Ranks = append(g.Ranks, t)
		if err := t.allocate(rk.Backend, mc, size, shape); err != nil {
			if len(ranks) > 1 {
				err = fmt.Errorf("%v: %w", rk.Backend.Device(), err)
			}
			return nil, err
		}
	}
	if size > 1 {
		err := g.each(ctx, func(_ context.Context, t *Trainer) error {
			if err := t.Comm.Broadcast(t.Model.Flat(), 0); err != nil {
				return fmt.Errorf("broadcasting the initial weights: %w", err)
			}
			if t.refReady {
				if err := t.Comm.Broadcast(t.Ref.Params.All, 0); err != nil {
					return fmt.Errorf("broadcasting the KL reference: %w", err)
				}
			}
			t.Model.SetMaster(t.Opt)
			return t.Model.B.Sync()
		})
		if err != nil {
			return nil, err
		}
	}
	if t := g.Ranks[0]; t.main() {
		arenas, err := model.PlanMemory(mc, shape.model(t.Model.B, size))
		if err != nil {
			return nil, err
		}
		if t.xchg != nil {
			arenas = append(arenas, t.xchg.arena)
		}
		var memory int64 // the device's, where the backend knows it (a GPU)
		if m, ok := t.Model.B.(interface{ MemInfo() (free, total int64) }); ok {
			_, memory = m.MemInfo()
		}
		WritePlan(t.Log, arenas, t.Model.B.Device(), size, memory)
	}
	ok = true
	return g, nil
}

// groupSize checks the ranks of a group and returns the number of ranks of the whole group.
func groupSize(ranks []Rank) (int, error) {
	if len(ranks) == 0 {
		return 0, fmt.Errorf("train: no devices")
	}
	if len(ranks) == 1 && ranks[0].Comm == nil {
		if ranks[0].Backend == nil {
			return 0, fmt.Errorf("train: no backend")
		}
		return 1, nil
	}
	size := -1
	for i, rk := range ranks {
		if rk.Backend == nil || rk.Comm == nil {
			return 0, fmt.Errorf("train: rank %d of a group lacks its backend or its Comm", i)
		}
		if size >= 0 && rk.Comm.Size() != size {
			return 0, fmt.Errorf("train: ranks of groups of %d and %d", size, rk.Comm.Size())
		}
		size = rk.Comm.Size()
	}
	if size < len(ranks) {
		return 0, fmt.Errorf("train: %d devices in a group of %d ranks", len(ranks), size)
	}
	return size, nil
}

// modelConfig reads the model's config: model.dir's config.json or model.init.
func modelConfig(cfg config.Config) (model.Config, error) {
	switch {
	case cfg.Model.Dir != "":
		mc, err := model.LoadConfig(filepath.Join(cfg.Model.Dir, "config.json"))
		if err != nil {
			return mc, fmt.Errorf("model.dir: %w", err)
		}
		return mc, nil
	case cfg.Model.Init != "":
		mc, err := model.LoadConfig(cfg.Model.Init)
		if err != nil {
			return mc, fmt.Errorf("model.init: %w", err)
		}
		return mc, nil
	}
	return model.Config{}, fmt.Errorf("model: set model.dir (a checkpoint) or model.init (a config.json)")
}

// loadTokenizer loads the tokenizer and the prompter of the config, checked against the model's
// vocabulary.
func (t *Trainer) loadTokenizer(mc model.Config) error {
	cfg := t.Cfg
	tokDir := cfg.Model.Dir
	var err error
	switch cfg.Model.Tokenizer {
	case "byte":
		t.Tok = tokenizer.NewByte()
	case "":
		if cfg.Model.Dir == "" {
			return fmt.Errorf("model.tokenizer: set a tokenizer.json, a model directory or \"byte\"")
		}
		if t.Tok, err = tokenizer.Load(cfg.Model.Dir); err != nil {
			return fmt.Errorf("model.tokenizer: %w", err)
		}
	default:
		if t.Tok, err = tokenizer.Load(cfg.Model.Tokenizer); err != nil {
			return fmt.Errorf("model.tokenizer: %w", err)
		}
		tokDir = TokenizerDir(cfg.Model.Tokenizer)
	}
	if t.Tok.VocabSize() > mc.VocabSize {
		return fmt.Errorf("model.tokenizer: %d tokens but the model's vocabulary has %d", t.Tok.VocabSize(), mc.VocabSize)
	}
	t.EOS = t.Tok.EOS()
	if len(t.EOS) == 0 {
		return fmt.Errorf("model.tokenizer: no end-of-sequence token")
	}
	t.Prompter, err = NewPrompter(t.Tok, tokDir, cfg.Data.PromptSettings)
	return err
}

// shape is what one rank allocates: the activations of Tokens tokens and a decoder of Slots
// slots of MaxLen positions.
type shape struct {
	Tokens, Slots, MaxLen int
	Reference             bool
}

// rankShape is the shape of a rank of a run of cfg over size ranks: activations for a
// micro-batch or the longest sequence, whichever is larger (so that no batch allocates during
// the run), and cache slots for rollout.slots or else the rank's share of a step's
// trajectories (at most 256); trajectories beyond the slots wait for a free one.
func rankShape(cfg config.Config, size int) shape {
	r := cfg.Rollout
	share := (r.PromptsPerStep + size - 1) / size
	maxLen := r.MaxPrompt + r.MaxResponse
	slots := min(share*r.N, 256)
	if r.Slots > 0 {
		slots = r.Slots
	}
	return shape{Tokens: max(cfg.Optim.MicroTokens, maxLen), Slots: slots, MaxLen: maxLen,
		Reference: cfg.RL.KLCoef != 0}
}

// model is the model.RunShape of s for size ranks on backend b.
func (s shape) model(b engine.Backend, size int) model.RunShape {
	return model.RunShape{Device: b.Device(), ParamDType: b.ParamDType(), ActDType: b.ActDType(), Ranks: size,
		Tokens: s.Tokens, Slots: s.Slots, MaxLen: s.MaxLen, Reference: s.Reference}
}

// allocate makes the rank's model replica (loaded or initialised on rank 0, zeros elsewhere
// until the broadcast), its KL reference, decoder, optimizer shard, activations and exchange
// buffer.
func (t *Trainer) allocate(b engine.Backend, mc model.Config, size int, s shape) error {
	cfg := t.Cfg
	var err error
	if t.Model, err = model.NewReplica(mc, b, size); err != nil {
		return err
	}
	if t.main() {
		if cfg.Model.Dir != "" {
			if err := t.Model.LoadWeights(cfg.Model.Dir); err != nil {
				return fmt.Errorf("model.dir: %w", err)
			}
		} else {
			t.Model.Init(cfg.Run.Seed, 0.02)
		}
	}
	if s.Reference {
		rc := mc
		if cfg.Model.Reference != "" {
			if rc, err = model.LoadConfig(filepath.Join(cfg.Model.Reference, "config.json")); err != nil {
				return fmt.Errorf("model.reference: %w", err)
			}
		}
		if t.Ref, err = model.New(rc, b); err != nil {
			return fmt.Errorf("reference model: %w", err)
		}
		if cfg.Model.Reference != "" {
			t.refReady = true
			if t.main() {
				if err := t.Ref.LoadWeights(cfg.Model.Reference); err != nil {
					return fmt.Errorf("model.reference: %w", err)
				}
			}
		}
	}
	if t.Dec, err = t.Model.NewDecoder(s.Slots, s.MaxLen); err != nil {
		return err
	}
	if t.Opt, err = t.Model.NewAdamWShard(t.rank()); err != nil {
		return err
	}
	if err := t.Model.Reserve(s.Tokens); err != nil {
		return err
	}
	t.xchg, err = newExchange(b, size)
	return err
}

// Close closes the ranks' trainers and the sandbox pool (not the backends or the Comms).
func (g *Group) Close() error {
	for _, t := range g.Ranks {
		t.Close()
	}
	if g.pool != nil {
		g.pool.Close()
	}
	return nil
}

// Run runs the job (Trainer.Run) on every rank at once and returns the summary of the first
// rank of this process (rank 0's, with the files it wrote, on the node that has it). A rank
// that fails aborts the group: the others stop at their next collective or, if they are
// decoding or computing, within their current unit of work, and Run returns the failed rank's
// error.
func (g *Group) Run(ctx context.Context) (*Summary, error) {
	sums := make([]*Summary, len(g.Ranks))
	err := g.each(ctx, func(ctx context.Context, t *Trainer) error {
		s, err := t.Run(ctx)
		for i, u := range g.Ranks {
			if u == t {
				sums[i] = s
			}
		}
		return err
	})
	return sums[0], err
}

// each runs fn on every rank at once, each on its own goroutine locked to its OS thread (with
// its GPU current there), with a context that the failure of any rank cancels. The first rank
// to fail with an error other than an interruption aborts the group's Comm and cancels the
// other ranks' contexts, so that no rank waits for one that has stopped. It returns the error
// of the failed rank (not the aborts it caused in the others), or an interruption.
func (g *Group) each(ctx context.Context, fn func(ctx context.Context, t *Trainer) error) error {
	type cancelled struct {
		ctx    context.Context
		cancel context.CancelCauseFunc
	}
	cs := make([]cancelled, len(g.Ranks))
	for i := range cs {
		cs[i].ctx, cs[i].cancel = context.WithCancelCause(ctx)
	}
	var once sync.Once
	abort := func(t *Trainer, err error) {
		once.Do(func() {
			ae := &engine.AbortError{Rank: t.rank(), Err: err}
			if t.Comm != nil {
				t.Comm.Abort(err)
			}
			for _, c := range cs {
				c.cancel(ae)
			}
		})
	}
	errs := make([]error, len(g.Ranks))
	var wg sync.WaitGroup
	for i, t := range g.Ranks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if l, ok := t.Model.B.(interface{ LockThread() func() }); ok {
				defer l.LockThread()()
			}
			err := fn(cs[i].ctx, t)
			var ae *engine.AbortError
			if err != nil && !errors.As(err, &ae) && !errors.Is(err, ErrInterrupted) {
				abort(t, err)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, c := range cs {
		c.cancel(nil)
	}
	// The failed rank's own error first, then an interruption, then whatever an abort left.
	for _, pick := range []func(error) bool{
		func(err error) bool {
			var ae *engine.AbortError
			return !errors.As(err, &ae) && !errors.Is(err, ErrInterrupted)
		},
		func(err error) bool { return errors.Is(err, ErrInterrupted) },
		func(error) bool { return true },
	} {
		for _, err := range errs {
			if err != nil && pick(err) {
				return err
			}
		}
	}
	return nil
}
