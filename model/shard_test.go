package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"cir/engine"
	"cir/engine/cpu"
)

// countingBackend records the bytes of every allocation.
type countingBackend struct {
	*cpu.Backend
	bytes []int64
}

func (c *countingBackend) Alloc(n int64) (unsafe.Pointer, error) {
	c.bytes = append(c.bytes, n)
	return c.Backend.Alloc(n)
}

// TestPlanMemoryMatchesAllocation: the memory plan of a rank (parameters and gradients padded
// for the ranks, the optimizer shard, activations, KV cache, decoding buffers, a reference)
// lists exactly the allocations that NewReplica, Reserve, NewAdamWShard, NewDecoder and New
// make, arena by arena.
func TestPlanMemoryMatchesAllocation(t *testing.T) {
	cfg := parityConfigs[0].cfg
	for _, ranks := range []int{1, 3} {
		t.Run(fmt.Sprintf("ranks=%d", ranks), func(t *testing.T) {
			b := &countingBackend{Backend: cpu.New(1)}
			defer b.Close()
			const tokens, slots, maxLen = 40, 3, 24
			m, err := NewReplica(cfg, b, ranks)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if err := m.Reserve(tokens); err != nil {
				t.Fatal(err)
			}
			o, err := m.NewAdamWShard(ranks - 1)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			d, err := m.NewDecoder(slots, maxLen)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			ref, err := New(cfg, b)
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			// Allocation order: params, activations, grads, adamw, kv-cache, decode, reference.
			got := b.bytes
			plan, err := PlanMemory(cfg, RunShape{ParamDType: engine.F32, ActDType: engine.F32, Ranks: ranks,
				Tokens: tokens, Slots: slots, MaxLen: maxLen, Reference: true})
			if err != nil {
				t.Fatal(err)
			}
			byName := map[string]int64{}
			for _, a := range plan {
				byName[a.Name] = a.Used()
			}
			want := []int64{byName["params"], byName["activations"], byName["grads"], byName["adamw"],
				byName["kv-cache"], byName["decode"], byName["reference"]}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("allocations %v, plan %v", got, want)
			}
			if n := m.Flat().Len(); n != ranks*ShardLen(cfg, ranks) || n < int(m.Params.All.Len()) || o.M.Len() != ShardLen(cfg, ranks) {
				t.Fatalf("flat %d elements, shard %d, parameters %d", n, o.M.Len(), m.Params.All.Len())
			}
		})
	}
}

// TestShardedStepMatchesWhole: the AdamW steps of the three shards of a 3-rank replica, each
// with the global gradient norm, leave exactly the parameters of one step of a one-rank model
// on the same gradients, and the padding stays zero.
func TestShardedStepMatchesWhole(t *testing.T) {
	cfg := parityConfigs[0].cfg
	b := cpu.New(1)
	defer b.Close()
	h := OptimStep{LR: 1e-2, Beta1: 0.9, Beta2: 0.99, Eps: 1e-8, WeightDecay: 0.1, ClipNorm: 0.5}
	rng := rand.New(rand.NewPCG(3, 4))
	grads := make([]float32, paramElems(cfg))
	for i := range grads {
		grads[i] = float32(rng.NormFloat64())
	}
	run := func(ranks int) ([]float32, []float32) {
		m, err := NewReplica(cfg, b, ranks)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		m.Init(5, 0.1)
		if err := m.Reserve(8); err != nil {
			t.Fatal(err)
		}
		norm := 0.0
		for _, g := range grads {
			norm += float64(g) * float64(g)
		}
		norm = math.Sqrt(norm)
		for step := 0; step < 2; step++ {
			b.Upload(m.Grads.All, engine.HostF32(grads, len(grads)))
			for r := 0; r < ranks; r++ {
				o, err := m.NewAdamWShard(r)
				if err != nil {
					t.Fatal(err)
				}
				o.Step = step
				if err := m.Step(o, h, norm); err != nil {
					t.Fatal(err)
				}
				o.Close()
			}
		}
		x := make([]float32, m.Flat().Len())
		b.Download(engine.HostF32(x, len(x)), m.Flat())
		return x[:paramElems(cfg)], x[paramElems(cfg):]
	}
	want, _ := run(1)
	got, pad := run(3)
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("parameter %d: %g with three shards, %g whole", i, got[i], want[i])
		}
	}
	for i, x := range pad {
		if x != 0 {
			t.Fatalf("padding element %d became %g", i, x)
		}
	}
}
