package train

import (
	"fmt"
	"io"

	"cir/engine"
	"cir/model"
	"cir/train/config"
)

// runtimeReserve is what a GPU rank needs besides its arenas, an estimate: the CUDA context,
// NCCL's buffers, cuBLASLt's workspace and the ops' scratch buffers.
const runtimeReserve = 1 << 30

// DTypes are the weight and activation dtypes of the backends of a device kind: F32 on the
// CPU, BF16 on a GPU.
func DTypes(kind engine.Kind) (param, act engine.DType) {
	if kind == engine.CUDA {
		return engine.BF16, engine.BF16
	}
	return engine.F32, engine.F32
}

// PlanRank returns, without allocating anything, what one rank of a run of cfg over ranks
// data-parallel ranks on devices of dev's kind allocates: the arenas of model.PlanMemory for
// the rank's shape and the exchange buffer of a group. It reads the model's config (model.dir
// or model.init); the error names the key at fault.
func PlanRank(cfg config.Config, dev engine.Device, ranks int) ([]*engine.Arena, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ranks < 1 {
		return nil, fmt.Errorf("train: a plan for %d ranks", ranks)
	}
	mc, err := modelConfig(cfg)
	if err != nil {
		return nil, err
	}
	s := rankShape(cfg, ranks)
	param, act := DTypes(dev.Kind)
	arenas, err := model.PlanMemory(mc, model.RunShape{Device: dev, ParamDType: param, ActDType: act, Ranks: ranks,
		Tokens: s.Tokens, Slots: s.Slots, MaxLen: s.MaxLen, Reference: s.Reference})
	if err != nil {
		return nil, err
	}
	if ranks > 1 {
		x := engine.NewPlan("exchange")
		planExchange(x, ranks)
		arenas = append(arenas, x)
	}
	return arenas, nil
}

// planNotes says what each arena of a rank's plan holds.
var planNotes = map[string]string{
	"params":      "weights, replicated",
	"grads":       "fp32 gradients, replicated, reduce-scattered at each update",
	"adamw":       "this rank's shard of the fp32 moments (and master weights)",
	"activations": "training forward and backward of the largest batch",
	"kv-cache":    "decoding: the rank's share of a step's trajectories",
	"decode":      "decoding step buffers",
	"reference":   "frozen KL reference",
	"exchange":    "buffer for the ranks' host data",
}

// WritePlan writes the memory plan of one rank of ranks on device dev: each arena with its
// size, on a GPU an estimate of the runtime's own memory, the total and, when memory (the
// device's bytes) is known, whether it fits.
func WritePlan(w io.Writer, arenas []*engine.Arena, dev engine.Device, ranks int, memory int64) {
	head := "memory plan"
	if ranks > 1 {
		head = fmt.Sprintf("memory plan per rank (%d ranks, optimizer state sharded: ZeRO-1)", ranks)
	}
	fmt.Fprintf(w, "%s on %v:\n", head, dev)
	var total int64
	row := func(name string, bytes int64, note string) {
		fmt.Fprintf(w, "  %-12s %10.2f GiB  %s\n", name, float64(bytes)/(1<<30), note)
	}
	for _, a := range arenas {
		row(a.Name, a.Used(), planNotes[a.Name])
		total += a.Used()
	}
	if dev.Kind == engine.CUDA {
		row("runtime", runtimeReserve, "CUDA context, NCCL, cuBLASLt workspace, scratch (estimate)")
		total += runtimeReserve
	}
	row("total", total, "")
	if memory > 0 {
		gib := func(b int64) float64 { return float64(b) / (1 << 30) }
		if total <= memory {
			fmt.Fprintf(w, "  fits in %.2f GiB per device (%.2f GiB spare)\n", gib(memory), gib(memory-total))
		} else {
			fmt.Fprintf(w, "  does NOT fit in %.2f GiB per device (%.2f GiB short)\n", gib(memory), gib(total-memory))
		}
	}
}
