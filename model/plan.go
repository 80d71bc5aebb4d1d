package model

import (
	"fmt"

	"cir/engine"
)

// RunShape is what the memory of one rank of a training run depends on besides the model.
type RunShape struct {
	Device               engine.Device
	ParamDType, ActDType engine.DType
	Ranks                int  // data-parallel ranks; the optimizer state is split over them (ZeRO-1)
	Tokens               int  // the largest packed batch of the training forward (Reserve)
	Slots, MaxLen        int  // the decoder's KV cache (NewDecoder)
	Reference            bool // a frozen copy of the weights for the KL term
}

// PlanMemory returns, without allocating anything, the arenas one rank of a run of shape s
// allocates for a model of cfg, each with its size: the parameters and gradients (padded for
// s.Ranks shards), the rank's optimizer shard, the activations of s.Tokens tokens, the KV cache
// and the decoding buffers, and the KL reference when s.Reference. The sizes are those
// NewReplica, Reserve, NewAdamWShard, NewDecoder and New allocate. The error names an invalid
// field of cfg or s.
func PlanMemory(cfg Config, s RunShape) ([]*engine.Arena, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if s.Ranks < 1 || s.Tokens < 1 || s.Slots < 1 || s.MaxLen < 1 {
		return nil, fmt.Errorf("model: memory plan of %d ranks, %d tokens, %d slots of %d positions", s.Ranks, s.Tokens, s.Slots, s.MaxLen)
	}
	m := &Model{Cfg: cfg, B: planBackend{dev: s.Device, param: s.ParamDType, act: s.ActDType}, ranks: s.Ranks,
		heads: engine.Heads{Q: cfg.NumHeads, KV: cfg.NumKVHeads, D: cfg.HeadDim}}
	params, grads := engine.NewPlan("params"), engine.NewPlan("grads")
	planParams(params, cfg, s.ParamDType, s.Ranks)
	planParams(grads, cfg, engine.F32, s.Ranks)
	opt := engine.NewPlan("adamw")
	planAdamW(opt, cfg, s.ParamDType, s.Ranks)
	acts := engine.NewPlan("activations")
	m.planActs(acts, s.Tokens)
	cache := engine.NewPlan("kv-cache")
	planCache(cache, cfg, s.ActDType, s.Slots, s.MaxLen)
	dec := engine.NewPlan("decode")
	(&Decoder{m: m, slots: s.Slots, maxLen: s.MaxLen, budget: decodeBudget(s.Slots)}).carve(dec)
	out := []*engine.Arena{params, grads, opt, acts, cache, dec}
	if s.Reference {
		ref := engine.NewPlan("reference")
		planParams(ref, cfg, s.ParamDType, 1)
		out = append(out, ref)
	}
	return out, nil
}

// planBackend stands in for a backend when planning: it answers the device and the dtypes;
// nothing else of it is called.
type planBackend struct {
	engine.Backend
	dev        engine.Device
	param, act engine.DType
}

func (p planBackend) Device() engine.Device    { return p.dev }
func (p planBackend) ParamDType() engine.DType { return p.param }
func (p planBackend) ActDType() engine.DType   { return p.act }
