// Package model is the Qwen2 decoder-only transformer on an engine.Backend: parameter and
// activation plans, each layer's forward and backward, decoding with a KV cache, seeded
// initialisation, and Hugging Face checkpoints.
package model

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"

	"cir/engine"
)

// Model is a Qwen2 model on a backend: its parameters and, once training starts, gradients and
// the activations of one packed batch. It is not safe for concurrent use.
type Model struct {
	Cfg    Config
	B      engine.Backend
	Params Params
	Grads  Params // absent until the first Backward

	heads  engine.Heads
	params *engine.Arena
	grads  *engine.Arena
	acts   *acts
	ranks  int           // data-parallel ranks the flat buffers are padded for
	flat   engine.Tensor // Params.All and its padding: ranks × ShardLen elements
	gflat  engine.Tensor // the same for Grads.All (after Reserve)
	// Log receives the memory plans; nil is silent.
	Log io.Writer
}

// New allocates a model of cfg on b with zero parameters. The error names the invalid field of
// cfg, or wraps engine.ErrOutOfMemory.
func New(cfg Config, b engine.Backend) (*Model, error) { return NewReplica(cfg, b, 1) }

// NewReplica allocates, as New, one replica of a model trained data-parallel over ranks ranks
// with the optimizer state sharded (ZeRO-1): its flat parameter and gradient buffers are padded
// to ranks equal shards of ShardLen(cfg, ranks) elements (zeros past the parameters), so that
// gradients can be reduce-scattered and parameters all-gathered shard by shard. ranks must be
// at least 1.
func NewReplica(cfg Config, b engine.Backend, ranks int) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ranks < 1 {
		return nil, fmt.Errorf("model: %d data-parallel ranks", ranks)
	}
	dt := b.ParamDType()
	plan := engine.NewPlan("params")
	planParams(plan, cfg, dt, ranks)
	a, err := engine.NewArena(b, "params", plan.Used())
	if err != nil {
		return nil, err
	}
	m := &Model{Cfg: cfg, B: b, params: a, ranks: ranks,
		heads: engine.Heads{Q: cfg.NumHeads, KV: cfg.NumKVHeads, D: cfg.HeadDim}}
	m.flat = planParams(a, cfg, dt, ranks)
	m.Params = viewParams(cfg, m.flat.Slice(0, paramElems(cfg)))
	return m, nil
}

// ShardLen is the number of elements of each rank's shard of cfg's flat parameters when ranks
// data-parallel ranks split them: ⌈P/ranks⌉ rounded up to the parameter alignment, P the
// parameters with their alignment padding. One rank's shard is all of them.
func ShardLen(cfg Config, ranks int) int {
	n := (paramElems(cfg) + ranks - 1) / ranks
	return (n + paramAlign - 1) / paramAlign * paramAlign
}

// planParams carves the padded flat buffer of cfg's parameters (or gradients) from a.
func planParams(a *engine.Arena, cfg Config, dt engine.DType, ranks int) engine.Tensor {
	return a.Tensor(a.Name, dt, ranks*ShardLen(cfg, ranks))
}

// Ranks is the number of data-parallel ranks the model's buffers are padded for (1 for New).
func (m *Model) Ranks() int { return m.ranks }

// Flat is the padded flat parameter buffer: Ranks()·ShardLen elements, Params.All first.
func (m *Model) Flat() engine.Tensor { return m.flat }

// FlatGrads is the padded flat gradient buffer (F32, as Flat), absent before Reserve.
func (m *Model) FlatGrads() engine.Tensor { return m.gflat }

// Close frees the model's device memory.
func (m *Model) Close() error {
	for _, a := range []*engine.Arena{m.params, m.grads} {
		if a != nil {
			a.Close()
		}
	}
	if m.acts != nil {
		m.acts.arena.Close()
	}
	return nil
}

// Init fills the parameters as Hugging Face's Qwen2 does: weights of linear layers and
// embeddings from N(0, std²), biases zero, norm weights one. The values are drawn on the host
// from a PCG stream seeded by seed, so every backend gets the same model.
func (m *Model) Init(seed uint64, std float64) {
	rng := rand.New(rand.NewPCG(seed, 0x636972))
	for _, nt := range m.Params.Named(m.Cfg) {
		x := make([]float32, nt.Tensor.Len())
		switch {
		case hasSuffix(nt.Name, "norm.weight"):
			for i := range x {
				x[i] = 1
			}
		case hasSuffix(nt.Name, ".bias"):
		default:
			for i := range x {
				x[i] = float32(rng.NormFloat64() * std)
			}
		}
		m.B.Upload(nt.Tensor, engine.HostF32(x, nt.Tensor.Shape...))
	}
}

func hasSuffix(s, suf string) bool { return len(s) >= len(suf) && s[len(s)-len(suf):] == suf }

// NumParams is the number of parameters (a tied head counted once).
func (m *Model) NumParams() int64 {
	var n int64
	for _, nt := range m.Params.Named(m.Cfg) {
		n += int64(nt.Tensor.Len())
	}
	return n
}

// acts holds the activations of one packed batch of up to maxN tokens, saved for the backward,
// and the scratch of the backward.
type acts struct {
	arena  *engine.Arena
	maxN   int
	chunk  int // rows of the LM head computed at once
	ids    engine.Tensor
	tgt    engine.Tensor
	pos    engine.Tensor
	starts engine.Tensor
	res    []engine.Tensor // L+1 residual streams (N,C)
	resMid []engine.Tensor // after attention (N,C)
	ln1    []engine.Tensor
	rstd1  []engine.Tensor
	qkv    []engine.Tensor
	att    []engine.Tensor
	lse    []engine.Tensor
	ln2    []engine.Tensor
	rstd2  []engine.Tensor
	gateUp []engine.Tensor
	h      []engine.Tensor
	lnf    engine.Tensor
	rstdf  engine.Tensor
	logits engine.Tensor // (chunk,V)
	logp   engine.Tensor
	lseCE  engine.Tensor
	ent    engine.Tensor
	// backward scratch
	o, dres, dln         engine.Tensor
	dqkv, datt, dgu, dh  engine.Tensor
	dlogits, dlogp, dlnf engine.Tensor
	dent                 engine.Tensor
	hostIDs, hostTgt     []int32
	hostPos, hostStarts  []int32
	hostLogp, hostEnt    []float32
	hostDlogp, hostDent  []float32
	temp                 float32 // the logits of the last Forward were divided by it
	outLogp, outEnt      [][]float32
	seqs                 engine.Seqs
	lens                 []int
}

// planActs carves the activations for batches of up to maxN tokens from a (a plan or a real
// arena).
func (m *Model) planActs(a *engine.Arena, maxN int) *acts {
	c := m.Cfg
	act, f32, i32 := m.B.ActDType(), engine.F32, engine.I32
	L, C, V, I := c.NumLayers, c.HiddenSize, c.VocabSize, c.IntermediateSize
	chunk := min(maxN, max(128, (64<<20)/(V*4)))
	s := &acts{arena: a, maxN: maxN, chunk: chunk}
	s.ids = a.Tensor("ids", i32, maxN)
	s.tgt = a.Tensor("targets", i32, maxN)
	s.pos = a.Tensor("pos", i32, maxN)
	s.starts = a.Tensor("starts", i32, maxN+1)
	perLayer := func(name string, dt engine.DType, n int, shape ...int) []engine.Tensor {
		ts := make([]engine.Tensor, n)
		for l := range ts {
			ts[l] = a.Tensor(fmt.Sprintf("%s.%d", name, l), dt, shape...)
		}
		return ts
	}
	s.res = perLayer("res", act, L+1, maxN, C)
	s.resMid = perLayer("res_mid", act, L, maxN, C)
	s.ln1 = perLayer("ln1", act, L, maxN, C)
	s.rstd1 = perLayer("rstd1", f32, L, maxN)
	s.qkv = perLayer("qkv", act, L, maxN, m.heads.QKV())
	s.att = perLayer("att", act, L, maxN, c.NumHeads*c.HeadDim)
	s.lse = perLayer("att_lse", f32, L, maxN, c.NumHeads)
	s.ln2 = perLayer("ln2", act, L, maxN, C)
	s.rstd2 = perLayer("rstd2", f32, L, maxN)
	s.gateUp = perLayer("gate_up", act, L, maxN, 2*I)
	s.h = perLayer("swiglu", act, L, maxN, I)
	s.lnf = a.Tensor("lnf", act, maxN, C)
	s.rstdf = a.Tensor("rstdf", f32, maxN)
	s.logits = a.Tensor("logits", f32, chunk, V) // fp32: the softmax of the loss (as vLLM/verl)
	s.logp = a.Tensor("logp", f32, maxN)
	s.lseCE = a.Tensor("lse", f32, maxN)
	s.ent = a.Tensor("entropy", f32, maxN)
	s.o = a.Tensor("proj_out", act, maxN, C)
	s.dres = a.Tensor("dres", act, maxN, C)
	s.dln = a.Tensor("dln", act, maxN, C)
	s.dqkv = a.Tensor("dqkv", act, maxN, m.heads.QKV())
	s.datt = a.Tensor("datt", act, maxN, c.NumHeads*c.HeadDim)
	s.dgu = a.Tensor("dgate_up", act, maxN, 2*I)
	s.dh = a.Tensor("dswiglu", act, maxN, I)
	s.dlogits = a.Tensor("dlogits", act, chunk, V)
	s.dlogp = a.Tensor("dlogp", f32, maxN)
	s.dent = a.Tensor("dent", f32, maxN)
	s.dlnf = a.Tensor("dlnf", act, maxN, C)
	s.hostIDs = make([]int32, maxN)
	s.hostTgt = make([]int32, maxN)
	s.hostPos = make([]int32, maxN)
	s.hostStarts = make([]int32, 0, maxN+1)
	s.hostLogp = make([]float32, maxN)
	s.hostEnt = make([]float32, maxN)
	s.hostDlogp = make([]float32, maxN)
	s.hostDent = make([]float32, maxN)
	return s
}

// Reserve plans and allocates activations for packed batches of up to maxN tokens (and the
// gradients), printing the memory plan to m.Log. Forward calls it when a batch outgrows the
// plan. The error wraps engine.ErrOutOfMemory when the device has too little.
func (m *Model) Reserve(maxN int) error {
	if m.acts != nil && m.acts.maxN >= maxN {
		return nil
	}
	plan := engine.NewPlan("activations")
	m.planActs(plan, maxN)
	if m.acts != nil {
		m.acts.arena.Close()
		m.acts = nil
	}
	a, err := engine.NewArena(m.B, "activations", plan.Used())
	if err != nil {
		return fmt.Errorf("activations for %d tokens: %w", maxN, err)
	}
	m.acts = m.planActs(a, maxN)
	if m.grads == nil {
		gp := engine.NewPlan("grads")
		planParams(gp, m.Cfg, engine.F32, m.ranks)
		g, err := engine.NewArena(m.B, "grads", gp.Used())
		if err != nil {
			return err
		}
		m.grads = g
		m.gflat = planParams(g, m.Cfg, engine.F32, m.ranks)
		m.Grads = viewParams(m.Cfg, m.gflat.Slice(0, paramElems(m.Cfg)))
	}
	if m.Log != nil {
		fmt.Fprintf(m.Log, "memory plan (%s, %.1fM parameters, batches of %d tokens):\n",
			m.B.Device(), float64(m.NumParams())/1e6, maxN)
		engine.PrintPlan(m.Log, m.B.Device(), m.params, m.grads, a)
	}
	return nil
}

// ZeroGrad sets every gradient to zero.
func (m *Model) ZeroGrad() {
	if m.grads != nil {
		m.B.Zero(m.gflat)
	}
}

// Forward runs a packed batch of token sequences (each at least one token; ids in the
// vocabulary) and returns, per sequence, logp[i] = log p(seq[i+1] | seq[..i]) and the entropy of
// that predicted distribution (len(seq)-1 values each). The returned slices are reused by the
// next Forward. The activations stay for Backward. Errors: an id outside the vocabulary, an
// empty sequence, a device failure.
func (m *Model) Forward(seqs [][]int32) (logp, ent [][]float32, err error) {
	return m.ForwardTemperature(seqs, 1)
}

// ForwardTemperature is Forward with the logits divided by temperature before the softmax,
// as verl's actor does with the rollout temperature: logp and the entropy are those of the
// distribution the rollout sampled from, and Backward differentiates through the division.
// Errors: as Forward, and a temperature that is not positive.
func (m *Model) ForwardTemperature(seqs [][]int32, temperature float32) (logp, ent [][]float32, err error) {
	if !(temperature > 0) || math.IsInf(float64(temperature), 0) {
		return nil, nil, fmt.Errorf("temperature %v, want > 0", temperature)
	}
	N := 0
	for b, s := range seqs {
		if len(s) == 0 {
			return nil, nil, fmt.Errorf("sequence %d is empty", b)
		}
		for i, t := range s {
			if t < 0 || int(t) >= m.Cfg.VocabSize {
				return nil, nil, fmt.Errorf("sequence %d, token %d: id %d outside the vocabulary of %d", b, i, t, m.Cfg.VocabSize)
			}
		}
		N += len(s)
	}
	if N == 0 {
		return nil, nil, fmt.Errorf("empty batch")
	}
	if err := m.Reserve(N); err != nil {
		return nil, nil, err
	}
	s := m.acts
	s.temp = temperature
	s.hostStarts = append(s.hostStarts[:0], 0)
	s.lens = s.lens[:0]
	maxLen := 0
	n := 0
	for _, q := range seqs {
		for i, t := range q {
			s.hostIDs[n+i] = t
			s.hostPos[n+i] = int32(i)
			s.hostTgt[n+i] = 0
			if i+1 < len(q) {
				s.hostTgt[n+i] = q[i+1]
			}
		}
		n += len(q)
		maxLen = max(maxLen, len(q))
		s.hostStarts = append(s.hostStarts, int32(n))
		s.lens = append(s.lens, len(q))
	}
	b := m.B
	b.Upload(s.ids.Rows(0, N), engine.HostI32(s.hostIDs[:N], N))
	b.Upload(s.tgt.Rows(0, N), engine.HostI32(s.hostTgt[:N], N))
	b.Upload(s.pos.Rows(0, N), engine.HostI32(s.hostPos[:N], N))
	nb := len(s.hostStarts)
	b.Upload(s.starts.Rows(0, nb), engine.HostI32(s.hostStarts, nb))
	s.seqs = engine.Seqs{Starts: s.hostStarts, Dev: s.starts.Rows(0, nb), MaxLen: maxLen}

	m.forwardLayers(N)
	m.forwardHead(N)
	b.Download(engine.HostF32(s.hostLogp[:N], N), s.logp.Rows(0, N))
	b.Download(engine.HostF32(s.hostEnt[:N], N), s.ent.Rows(0, N))
	if err := b.Sync(); err != nil {
		return nil, nil, err
	}
	s.outLogp, s.outEnt = s.outLogp[:0], s.outEnt[:0]
	for i := range seqs {
		lo, hi := int(s.hostStarts[i]), int(s.hostStarts[i+1])-1
		s.outLogp = append(s.outLogp, s.hostLogp[lo:hi])
		s.outEnt = append(s.outEnt, s.hostEnt[lo:hi])
	}
	return s.outLogp, s.outEnt, nil
}

// forwardLayers runs the embedding and every decoder layer over the first N tokens, leaving
// the final norm's output in lnf.
func (m *Model) forwardLayers(N int) {
	b, s, p, c := m.B, m.acts, m.Params, m.Cfg
	eps, theta := float32(c.RMSNormEps), float32(c.RopeTheta)
	r := func(t engine.Tensor) engine.Tensor { return t.Rows(0, N) }
	b.Embedding(r(s.res[0]), r(s.ids), p.Embed)
	b.RMSNorm(r(s.ln1[0]), r(s.rstd1[0]), r(s.res[0]), p.Layers[0].LN1, eps)
	for l, L := range p.Layers {
		b.Matmul(r(s.qkv[l]), r(s.ln1[l]), L.QKVW, L.QKVB)
		b.RoPE(r(s.qkv[l]), r(s.pos), m.heads, theta)
		b.Attention(r(s.att[l]), r(s.lse[l]), r(s.qkv[l]), s.seqs, m.heads)
		b.Matmul(r(s.o), r(s.att[l]), L.OW, engine.Tensor{})
		b.AddRMSNorm(r(s.resMid[l]), r(s.ln2[l]), r(s.rstd2[l]), r(s.res[l]), r(s.o), L.LN2, eps)
		b.Matmul(r(s.gateUp[l]), r(s.ln2[l]), L.GateUpW, engine.Tensor{})
		b.SwiGLU(r(s.h[l]), r(s.gateUp[l]))
		b.Matmul(r(s.o), r(s.h[l]), L.DownW, engine.Tensor{})
		if l+1 < c.NumLayers {
			b.AddRMSNorm(r(s.res[l+1]), r(s.ln1[l+1]), r(s.rstd1[l+1]), r(s.resMid[l]), r(s.o), p.Layers[l+1].LN1, eps)
		} else {
			b.AddRMSNorm(r(s.res[l+1]), r(s.lnf), r(s.rstdf), r(s.resMid[l]), r(s.o), p.Norm, eps)
		}
	}
}

// forwardHead computes the LM head chunk by chunk: per-token log-probs of the targets, the
// log-sum-exp and the entropy, never holding more than chunk rows of logits.
func (m *Model) forwardHead(N int) {
	b, s := m.B, m.acts
	for i := 0; i < N; i += s.chunk {
		j := min(N, i+s.chunk)
		logits := s.logits.Rows(0, j-i)
		b.Matmul(logits, s.lnf.Rows(i, j), m.Params.LMHead, engine.Tensor{})
		if s.temp != 1 {
			b.Scale(logits, 1/s.temp)
		}
		b.CrossEntropy(s.logp.Rows(i, j), s.lseCE.Rows(i, j), s.ent.Rows(i, j), logits, s.tgt.Rows(i, j))
	}
}

// Backward back-propagates dlogp and dent (the gradients of the loss with respect to each
// log-prob and entropy the last Forward returned, same shapes; dent may be nil when the loss
// has no entropy term) through that Forward and adds the parameter gradients into m.Grads. It
// returns an error on mismatched shapes or a device failure.
func (m *Model) Backward(dlogp, dent [][]float32) error {
	s := m.acts
	if s == nil || len(s.lens) == 0 {
		return fmt.Errorf("backward without a forward")
	}
	if len(s.lens) != len(dlogp) || (dent != nil && len(dent) != len(dlogp)) {
		return fmt.Errorf("backward: %d log-prob and %d entropy gradient rows for a forward of %d sequences", len(dlogp), len(dent), len(s.lens))
	}
	N := int(s.hostStarts[len(s.hostStarts)-1])
	fill := func(dst []float32, src [][]float32, what string) error {
		for i, d := range src {
			lo := int(s.hostStarts[i])
			if len(d) != s.lens[i]-1 {
				return fmt.Errorf("backward: sequence %d has %d %s gradients, want %d", i, len(d), what, s.lens[i]-1)
			}
			copy(dst[lo:], d)
			dst[lo+len(d)] = 0 // the last token predicts nothing
		}
		return nil
	}
	if err := fill(s.hostDlogp, dlogp, "log-prob"); err != nil {
		return err
	}
	b, p, g, c := m.B, m.Params, m.Grads, m.Cfg
	r := func(t engine.Tensor) engine.Tensor { return t.Rows(0, N) }
	b.Upload(r(s.dlogp), engine.HostF32(s.hostDlogp[:N], N))
	var dentT engine.Tensor
	if dent != nil {
		if err := fill(s.hostDent, dent, "entropy"); err != nil {
			return err
		}
		dentT = s.dent
		b.Upload(r(s.dent), engine.HostF32(s.hostDent[:N], N))
	}
	rows := func(t engine.Tensor, i, j int) engine.Tensor {
		if t.Nil() {
			return t
		}
		return t.Rows(i, j)
	}

	// LM head, chunk by chunk: recompute the logits (divided by the temperature), then
	// dlogits and the matmul backward (dlogits divided by the temperature too).
	for i := 0; i < N; i += s.chunk {
		j := min(N, i+s.chunk)
		logits, dlogits := s.logits.Rows(0, j-i), s.dlogits.Rows(0, j-i)
		b.Matmul(logits, s.lnf.Rows(i, j), p.LMHead, engine.Tensor{})
		if s.temp != 1 {
			b.Scale(logits, 1/s.temp)
		}
		b.CrossEntropyBackward(dlogits, s.dlogp.Rows(i, j), rows(dentT, i, j), logits, s.lseCE.Rows(i, j), s.ent.Rows(i, j), s.tgt.Rows(i, j))
		if s.temp != 1 {
			b.Scale(dlogits, 1/s.temp)
		}
		b.MatmulBackward(s.dlnf.Rows(i, j), g.LMHead, engine.Tensor{}, dlogits, s.lnf.Rows(i, j), p.LMHead)
	}
	b.Zero(r(s.dres))
	L := c.NumLayers
	b.RMSNormBackward(r(s.dres), g.Norm, r(s.dlnf), r(s.res[L]), p.Norm, r(s.rstdf))
	theta := float32(c.RopeTheta)
	for l := L - 1; l >= 0; l-- {
		P, G := p.Layers[l], g.Layers[l]
		// res[l+1] = resMid[l] + down(swiglu(gate_up(ln2))): dres flows to both.
		b.MatmulBackward(r(s.dh), G.DownW, engine.Tensor{}, r(s.dres), r(s.h[l]), P.DownW)
		b.SwiGLUBackward(r(s.dgu), r(s.dh), r(s.gateUp[l]))
		b.MatmulBackward(r(s.dln), G.GateUpW, engine.Tensor{}, r(s.dgu), r(s.ln2[l]), P.GateUpW)
		b.RMSNormBackward(r(s.dres), G.LN2, r(s.dln), r(s.resMid[l]), P.LN2, r(s.rstd2[l]))
		// resMid[l] = res[l] + o_proj(attention(rope(qkv(ln1)))).
		b.MatmulBackward(r(s.datt), G.OW, engine.Tensor{}, r(s.dres), r(s.att[l]), P.OW)
		b.AttentionBackward(r(s.dqkv), r(s.datt), r(s.att[l]), r(s.lse[l]), r(s.qkv[l]), s.seqs, m.heads)
		b.RoPEBackward(r(s.dqkv), r(s.pos), m.heads, theta)
		b.MatmulBackward(r(s.dln), G.QKVW, G.QKVB, r(s.dqkv), r(s.ln1[l]), P.QKVW)
		b.RMSNormBackward(r(s.dres), G.LN1, r(s.dln), r(s.res[l]), P.LN1, r(s.rstd1[l]))
	}
	b.EmbeddingBackward(g.Embed, r(s.dres), r(s.ids))
	return b.Sync()
}

// AdamW is the optimizer state of one shard of the flat parameters (all of them for a model of
// one rank): F32 moments and, on a backend whose parameters are not F32, F32 master weights.
type AdamW struct {
	M, V, Master engine.Tensor
	Lo           int // the shard's first element in the flat parameters
	Step         int
	arena        *engine.Arena
}

// NewAdamW allocates zeroed optimizer state for all of m's parameters, the master weights
// copied from them. It fails on a replica of several ranks, whose ranks each hold a shard
// (NewAdamWShard).
func (m *Model) NewAdamW() (*AdamW, error) {
	if m.ranks != 1 {
		return nil, fmt.Errorf("model: NewAdamW on a replica of %d ranks (each rank holds a shard: NewAdamWShard)", m.ranks)
	}
	return m.NewAdamWShard(0)
}

// NewAdamWShard allocates zeroed optimizer state for rank's shard of m's flat parameters
// (ZeRO-1), the master weights copied from the parameters.
func (m *Model) NewAdamWShard(rank int) (*AdamW, error) {
	if rank < 0 || rank >= m.ranks {
		return nil, fmt.Errorf("model: shard %d of %d", rank, m.ranks)
	}
	plan := engine.NewPlan("adamw")
	planAdamW(plan, m.Cfg, m.B.ParamDType(), m.ranks)
	a, err := engine.NewArena(m.B, "adamw", plan.Used())
	if err != nil {
		return nil, err
	}
	o := planAdamW(a, m.Cfg, m.B.ParamDType(), m.ranks)
	o.Lo = rank * ShardLen(m.Cfg, m.ranks)
	m.SetMaster(o)
	return o, nil
}

// planAdamW carves the optimizer state of one shard from a.
func planAdamW(a *engine.Arena, cfg Config, param engine.DType, ranks int) *AdamW {
	n := ShardLen(cfg, ranks)
	o := &AdamW{arena: a, M: a.Tensor("m", engine.F32, n), V: a.Tensor("v", engine.F32, n)}
	if param != engine.F32 {
		o.Master = a.Tensor("master", engine.F32, n)
	}
	return o
}

// SetMaster copies the parameters of o's shard into its master weights (when it has them):
// after the parameters were set other than by Step (loaded, or broadcast by another rank).
func (m *Model) SetMaster(o *AdamW) {
	if !o.Master.Nil() {
		m.B.Copy(o.Master, m.ShardParams(o))
	}
}

// ShardParams is the part of the flat parameters o updates.
func (m *Model) ShardParams(o *AdamW) engine.Tensor { return m.flat.Slice(o.Lo, o.M.Len()) }

// ShardGrads is the part of the flat gradients o's updates read.
func (m *Model) ShardGrads(o *AdamW) engine.Tensor { return m.gflat.Slice(o.Lo, o.M.Len()) }

// Reset zeroes the moments and the step count on backend b, as a fresh NewAdamW; the master
// weights are kept.
func (o *AdamW) Reset(b engine.Backend) {
	b.Zero(o.M)
	b.Zero(o.V)
	o.Step = 0
}

// Close frees the optimizer state.
func (o *AdamW) Close() error { return o.arena.Close() }

// OptimStep is one optimizer update's settings.
type OptimStep struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
	// ClipNorm > 0 scales the gradients so that their global L2 norm is at most ClipNorm, as
	// torch.nn.utils.clip_grad_norm_ does.
	ClipNorm float64
}

// GradNorm is the global L2 norm of the gradients.
func (m *Model) GradNorm() float64 { return math.Sqrt(m.B.SumSquares(m.Grads.All)) }

// Update clips the gradients and applies one AdamW step to the parameters of o; it returns the
// gradient norm before clipping. With o a shard of a replica, the norm is that of the shard's
// gradients only: a data-parallel rank computes the global norm and calls Step.
func (m *Model) Update(o *AdamW, h OptimStep) (float64, error) {
	norm := math.Sqrt(m.B.SumSquares(m.ShardGrads(o)))
	return norm, m.Step(o, h, norm)
}

// Step applies one AdamW step to the parameters of o's shard, their gradients first scaled so
// that the global gradient norm, norm, is at most ClipNorm.
func (m *Model) Step(o *AdamW, h OptimStep, norm float64) error {
	scale := 1.0
	if h.ClipNorm > 0 {
		scale = min(1, h.ClipNorm/(norm+1e-6))
	}
	o.Step++
	m.B.AdamW(m.ShardParams(o), o.Master, m.ShardGrads(o), o.M, o.V, engine.AdamWParams{
		LR: float32(h.LR), Beta1: float32(h.Beta1), Beta2: float32(h.Beta2), Eps: float32(h.Eps),
		WeightDecay: float32(h.WeightDecay), GradScale: float32(scale), Step: o.Step,
	})
	return m.B.Sync()
}
