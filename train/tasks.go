package train

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"

	"cir/train/config"
	"cir/train/data"
	"cir/train/rollout"
)

// loadTasks builds the training and held-out tasks: the generated toy task, or the JSONL /
// parquet files of data.train and data.eval, prompts made by p.
func loadTasks(cfg config.Config, p *Prompter) (train, eval []Task, err error) {
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
		chains, err := data.ParseChainDemos(d.Toy.ChainDemos)
		if err != nil {
			return nil, nil, fmt.Errorf("data.toy.chain_demos: %w", err)
		}
		for k, c := range chains {
			if k.Basic() || !slices.Contains(kinds, k) {
				return nil, nil, fmt.Errorf("data.toy.chain_demos: %s is not one of the composed kinds of data.toy.kinds", k)
			}
			if c+direct[k] > 1 {
				return nil, nil, fmt.Errorf("data.toy.chain_demos: %s's share %g and its data.toy.direct share %g add up to more than 1", k, c, direct[k])
			}
		}
		teacher := rand.New(rand.NewPCG(d.Toy.Seed, 0x74656163))
		ps, err := data.Problems(d.Toy.Seed, d.Toy.Train, kinds)
		if err != nil {
			return nil, nil, fmt.Errorf("data.toy.train: %w", err)
		}
		for _, pr := range ps {
			// One draw a problem: the direct share of the kind's problems, then its chain share.
			u := teacher.Float64()
			t, err := toyTask(pr, p, u < direct[pr.Kind], u >= direct[pr.Kind] && u < direct[pr.Kind]+chains[pr.Kind])
			if err != nil {
				return nil, nil, err
			}
			train = append(train, t)
		}
		if ps, err = data.HeldOut(d.Toy.Seed, d.Toy.Eval, kinds); err != nil {
			return nil, nil, fmt.Errorf("data.toy.eval: %w", err)
		}
		for _, pr := range ps {
			t, err := toyTask(pr, p, false, false)
			if err != nil {
				return nil, nil, err
			}
			eval = append(eval, t)
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
				t, err := p.Task(e, cfg.Rollout.MaxPrompt)
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

// toyTask makes the task of a toy problem and its demonstration (tool text with role tool):
// with direct the answer alone (the teacher's guess); else for a basic kind the one-call
// solution, for a composed kind its two-call chain with chain, else none (left for RL).
func toyTask(pr data.Problem, p *Prompter, direct, chain bool) (Task, error) {
	ids, err := p.IDs(pr.Prompt, nil)
	if err != nil {
		return Task{}, fmt.Errorf("data.toy: %w", err)
	}
	t := Task{Problem: pr.Prompt, Prompt: ids, Answer: pr.Answer, Kind: string(pr.Kind)}
	var segs []data.Segment
	switch {
	case direct:
		segs = pr.DirectSegments()
	case pr.Kind.Basic():
		segs = pr.Segments()
	case chain:
		segs = pr.ChainSegments()
	default:
		return t, nil
	}
	for _, s := range segs {
		ids := p.Tok.EncodePlain(s.Text)
		role := rollout.RolePolicy
		if s.Tool {
			role = rollout.RoleTool
		}
		t.DemoIDs = append(t.DemoIDs, ids...)
		for range ids {
			t.DemoRoles = append(t.DemoRoles, role)
		}
	}
	return t, nil
}
