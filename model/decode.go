package model

import (
	"errors"
	"fmt"

	"cir/engine"
)

// ErrCacheFull is wrapped by Step when a sequence would grow past its slot's positions.
var ErrCacheFull = errors.New("KV cache full")

// Feed is one slot's work in a decoding step: Tokens go into the slot's cache at positions
// [Pos, Pos+len(Tokens)), then one token is sampled after the last of them with the uniform U.
type Feed struct {
	Slot, Pos int
	Tokens    []int32
	U         float32
}

// Sample is a sampled token and its log-probability under the unscaled model distribution.
type Sample struct {
	Token int32
	LogP  float32
}

// Decoder samples from a model with a KV cache of Slots sequences of up to MaxLen positions,
// feeding prefill chunks and single decode tokens of many slots in one batched forward pass.
// It shares the model's weights: an update of the model is seen by the next Step.
type Decoder struct {
	m              *Model
	slots, maxLen  int
	budget         int // tokens fed per Step at most
	cache, scratch *engine.Arena
	kc, vc         []engine.Tensor
	// per-step buffers
	ids, pos, slot, last, out engine.Tensor
	resA, resB, ln, rstd, o   engine.Tensor
	qkv, att, gateUp, h       engine.Tensor
	lastRows, logits, u, logp engine.Tensor
	hIDs, hPos, hSlot, hLast  []int32
	hU, hLogp                 []float32
	hOut                      []int32
}

// NewDecoder allocates a KV cache of slots × maxLen positions and the buffers of a step of up
// to Budget() = max(512, 2·slots) fed tokens. The error wraps engine.ErrOutOfMemory when the
// cache does not fit.
func (m *Model) NewDecoder(slots, maxLen int) (*Decoder, error) {
	if slots <= 0 || maxLen <= 0 {
		return nil, fmt.Errorf("decoder: %d slots of %d positions", slots, maxLen)
	}
	plan := engine.NewPlan("kv-cache")
	planCache(plan, m.Cfg, m.B.ActDType(), slots, maxLen)
	cache, err := engine.NewArena(m.B, "kv-cache", plan.Used())
	if err != nil {
		return nil, fmt.Errorf("KV cache of %d slots × %d positions: %w", slots, maxLen, err)
	}
	d := &Decoder{m: m, slots: slots, maxLen: maxLen, budget: decodeBudget(slots), cache: cache}
	d.kc, d.vc = planCache(cache, m.Cfg, m.B.ActDType(), slots, maxLen)
	plan = engine.NewPlan("decode")
	d.carve(plan)
	if d.scratch, err = engine.NewArena(m.B, "decode", plan.Used()); err != nil {
		cache.Close()
		return nil, err
	}
	d.carve(d.scratch)
	if m.Log != nil {
		fmt.Fprintf(m.Log, "decoder memory (%d slots × %d positions, %d tokens a step):\n", slots, maxLen, d.budget)
		engine.PrintPlan(m.Log, m.B.Device(), m.params, cache, d.scratch)
	}
	return d, nil
}

// decodeBudget is the most tokens a decoder of slots slots feeds in one step.
func decodeBudget(slots int) int { return max(512, 2*slots) }

// planCache carves the key and value caches of every layer, slots × maxLen positions each.
func planCache(a *engine.Arena, c Config, act engine.DType, slots, maxLen int) (kc, vc []engine.Tensor) {
	for l := 0; l < c.NumLayers; l++ {
		kc = append(kc, a.Tensor(fmt.Sprintf("k.%d", l), act, slots, maxLen, c.NumKVHeads, c.HeadDim))
		vc = append(vc, a.Tensor(fmt.Sprintf("v.%d", l), act, slots, maxLen, c.NumKVHeads, c.HeadDim))
	}
	return kc, vc
}

func (d *Decoder) carve(a *engine.Arena) {
	c, N, S := d.m.Cfg, d.budget, d.slots
	act, i32, f32 := d.m.B.ActDType(), engine.I32, engine.F32
	d.ids, d.pos, d.slot = a.Tensor("ids", i32, N), a.Tensor("pos", i32, N), a.Tensor("slot", i32, N)
	d.last, d.out = a.Tensor("last", i32, S), a.Tensor("sampled", i32, S)
	d.resA, d.resB = a.Tensor("res_a", act, N, c.HiddenSize), a.Tensor("res_b", act, N, c.HiddenSize)
	d.ln, d.rstd = a.Tensor("ln", act, N, c.HiddenSize), a.Tensor("rstd", f32, N)
	d.o = a.Tensor("proj_out", act, N, c.HiddenSize)
	d.qkv = a.Tensor("qkv", act, N, d.m.heads.QKV())
	d.att = a.Tensor("att", act, N, c.NumHeads*c.HeadDim)
	d.gateUp = a.Tensor("gate_up", act, N, 2*c.IntermediateSize)
	d.h = a.Tensor("swiglu", act, N, c.IntermediateSize)
	d.lastRows = a.Tensor("last_rows", act, S, c.HiddenSize)
	d.logits = a.Tensor("logits", f32, S, c.VocabSize) // fp32: the sampling softmax
	d.u, d.logp = a.Tensor("uniforms", f32, S), a.Tensor("logp", f32, S)
	d.hIDs, d.hPos, d.hSlot = make([]int32, N), make([]int32, N), make([]int32, N)
	d.hLast, d.hOut = make([]int32, S), make([]int32, S)
	d.hU, d.hLogp = make([]float32, S), make([]float32, S)
}

// Close frees the cache and buffers.
func (d *Decoder) Close() error {
	d.cache.Close()
	d.scratch.Close()
	return nil
}

// Slots is the number of cache slots.
func (d *Decoder) Slots() int { return d.slots }

// MaxLen is the number of positions of each slot.
func (d *Decoder) MaxLen() int { return d.maxLen }

// Budget is the most tokens one Step may feed.
func (d *Decoder) Budget() int { return d.budget }

// Fork copies the first n cached positions of slot src into slot dst.
func (d *Decoder) Fork(dst, src, n int) error {
	if dst < 0 || dst >= d.slots || src < 0 || src >= d.slots || n < 0 || n > d.maxLen {
		return fmt.Errorf("fork %d positions of slot %d into slot %d of %d×%d", n, src, dst, d.slots, d.maxLen)
	}
	row := d.m.Cfg.NumKVHeads * d.m.Cfg.HeadDim
	for l := range d.kc {
		for _, c := range []engine.Tensor{d.kc[l], d.vc[l]} {
			d.m.B.Copy(c.Slice(dst*d.maxLen*row, n*row), c.Slice(src*d.maxLen*row, n*row))
		}
	}
	return d.m.B.Sync()
}

// Step feeds every feed's tokens into its slot in one forward pass and samples one token after
// each feed's last token. Errors: a slot out of range or fed twice, no tokens, more tokens than
// the budget, an id outside the vocabulary, a position past MaxLen (wraps ErrCacheFull), or a
// device failure.
func (d *Decoder) Step(feeds []Feed, p engine.SampleParams) ([]Sample, error) {
	B := len(feeds)
	if B == 0 {
		return nil, nil
	}
	if B > d.slots {
		return nil, fmt.Errorf("step: %d feeds for %d slots", B, d.slots)
	}
	N := 0
	for i, f := range feeds {
		if f.Slot < 0 || f.Slot >= d.slots {
			return nil, fmt.Errorf("step: slot %d out of range [0,%d)", f.Slot, d.slots)
		}
		for _, g := range feeds[:i] {
			if g.Slot == f.Slot {
				return nil, fmt.Errorf("step: slot %d fed twice", f.Slot)
			}
		}
		if len(f.Tokens) == 0 {
			return nil, fmt.Errorf("step: slot %d fed no tokens", f.Slot)
		}
		if f.Pos < 0 || f.Pos+len(f.Tokens) > d.maxLen {
			return nil, fmt.Errorf("step: slot %d positions [%d,%d) of %d: %w", f.Slot, f.Pos, f.Pos+len(f.Tokens), d.maxLen, ErrCacheFull)
		}
		if N+len(f.Tokens) > d.budget {
			return nil, fmt.Errorf("step: more than %d tokens fed at once", d.budget)
		}
		for j, t := range f.Tokens {
			if t < 0 || int(t) >= d.m.Cfg.VocabSize {
				return nil, fmt.Errorf("step: slot %d token %d: id %d outside the vocabulary of %d", f.Slot, j, t, d.m.Cfg.VocabSize)
			}
			d.hIDs[N+j] = t
			d.hPos[N+j] = int32(f.Pos + j)
			d.hSlot[N+j] = int32(f.Slot)
		}
		N += len(f.Tokens)
		d.hLast[i] = int32(N - 1)
		d.hU[i] = f.U
	}
	m, b := d.m, d.m.B
	c, P := m.Cfg, m.Params
	eps, theta := float32(c.RMSNormEps), float32(c.RopeTheta)
	r := func(t engine.Tensor) engine.Tensor { return t.Rows(0, N) }
	b.Upload(r(d.ids), engine.HostI32(d.hIDs[:N], N))
	b.Upload(r(d.pos), engine.HostI32(d.hPos[:N], N))
	b.Upload(r(d.slot), engine.HostI32(d.hSlot[:N], N))
	b.Upload(d.last.Rows(0, B), engine.HostI32(d.hLast[:B], B))
	b.Upload(d.u.Rows(0, B), engine.HostF32(d.hU[:B], B))

	res, mid := r(d.resA), r(d.resB)
	b.Embedding(res, r(d.ids), P.Embed)
	b.RMSNorm(r(d.ln), r(d.rstd), res, P.Layers[0].LN1, eps)
	for l, L := range P.Layers {
		b.Matmul(r(d.qkv), r(d.ln), L.QKVW, L.QKVB)
		b.RoPE(r(d.qkv), r(d.pos), m.heads, theta)
		b.KVStore(d.kc[l], d.vc[l], r(d.qkv), r(d.slot), r(d.pos), m.heads)
		b.AttentionKV(r(d.att), r(d.qkv), d.kc[l], d.vc[l], r(d.slot), r(d.pos), m.heads)
		b.Matmul(r(d.o), r(d.att), L.OW, engine.Tensor{})
		b.AddRMSNorm(mid, r(d.ln), r(d.rstd), res, r(d.o), L.LN2, eps)
		b.Matmul(r(d.gateUp), r(d.ln), L.GateUpW, engine.Tensor{})
		b.SwiGLU(r(d.h), r(d.gateUp))
		b.Matmul(r(d.o), r(d.h), L.DownW, engine.Tensor{})
		w := P.Norm
		if l+1 < c.NumLayers {
			w = P.Layers[l+1].LN1
		}
		b.AddRMSNorm(res, r(d.ln), r(d.rstd), mid, r(d.o), w, eps)
	}
	rows := d.lastRows.Rows(0, B)
	b.Embedding(rows, d.last.Rows(0, B), r(d.ln))
	logits := d.logits.Rows(0, B)
	b.Matmul(logits, rows, P.LMHead, engine.Tensor{})
	b.Sample(d.out.Rows(0, B), d.logp.Rows(0, B), logits, d.u.Rows(0, B), p)
	b.Download(engine.HostI32(d.hOut[:B], B), d.out.Rows(0, B))
	b.Download(engine.HostF32(d.hLogp[:B], B), d.logp.Rows(0, B))
	if err := b.Sync(); err != nil {
		return nil, err
	}
	out := make([]Sample, B)
	for i := range out {
		out[i] = Sample{Token: d.hOut[i], LogP: d.hLogp[i]}
	}
	return out, nil
}
