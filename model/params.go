package model

import (
	"fmt"

	"cir/engine"
)

// paramAlign is the alignment, in elements, of every parameter inside the flat buffer: 256 bytes
// of F32 and 128 of BF16, so one layout serves weights, gradients, master weights and moments
// whatever their dtype.
const paramAlign = 64

// Layer holds one decoder layer's parameters (or gradients). q, k and v projections are packed
// into QKVW (QKV, C) and QKVB (QKV) in that order; gate and up into GateUpW (2I, C).
type Layer struct {
	LN1, QKVW, QKVB, OW, LN2, GateUpW, DownW engine.Tensor
}

// Params is every parameter of the model as views of one flat buffer, so optimizers and
// collectives run over All in one call. The same type holds gradients.
type Params struct {
	Embed, Norm, LMHead engine.Tensor // LMHead is Embed when embeddings are tied
	Layers              []Layer
	All                 engine.Tensor
}

// Named is one HF-named tensor: a view of (part of) a parameter.
type Named struct {
	Name   string
	Tensor engine.Tensor
}

// layoutParams assigns cfg's packed parameters in storage order, each from next(shape).
func layoutParams(cfg Config, next func(shape ...int) engine.Tensor) Params {
	C, D := cfg.HiddenSize, cfg.HeadDim
	qkv := (cfg.NumHeads + 2*cfg.NumKVHeads) * D
	p := Params{Layers: make([]Layer, cfg.NumLayers)}
	p.Embed = next(cfg.VocabSize, C)
	for l := range p.Layers {
		L := &p.Layers[l]
		L.LN1 = next(C)
		L.QKVW = next(qkv, C)
		if cfg.QKVBias {
			L.QKVB = next(qkv)
		}
		L.OW = next(C, cfg.NumHeads*D)
		L.LN2 = next(C)
		L.GateUpW = next(2*cfg.IntermediateSize, C)
		L.DownW = next(C, cfg.IntermediateSize)
	}
	p.Norm = next(C)
	p.LMHead = p.Embed
	if !cfg.TieWordEmbeddings {
		p.LMHead = next(cfg.VocabSize, C)
	}
	return p
}

// alignedElems is the number of elements of shape rounded up to paramAlign.
func alignedElems(shape []int) int {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return (n + paramAlign - 1) / paramAlign * paramAlign
}

// paramElems is the length of the flat parameter buffer of cfg, padding included.
func paramElems(cfg Config) int {
	n := 0
	layoutParams(cfg, func(shape ...int) engine.Tensor {
		n += alignedElems(shape)
		return engine.Tensor{}
	})
	return n
}

// viewParams lays cfg's parameters over the flat buffer all (paramElems(cfg) elements).
func viewParams(cfg Config, all engine.Tensor) Params {
	off := 0
	p := layoutParams(cfg, func(shape ...int) engine.Tensor {
		t := all.Slice(off, shape...)
		off += alignedElems(shape)
		return t
	})
	p.All = all
	return p
}

// Named lists every tensor under its Hugging Face name, packed tensors split into their HF
// parts, in a fixed order. A tied LM head is not listed (HF checkpoints omit it).
func (p Params) Named(cfg Config) []Named {
	D := cfg.HeadDim
	q, kv, I := cfg.NumHeads*D, cfg.NumKVHeads*D, cfg.IntermediateSize
	out := []Named{{"model.embed_tokens.weight", p.Embed}}
	for l, L := range p.Layers {
		pre := fmt.Sprintf("model.layers.%d.", l)
		add := func(n string, t engine.Tensor) { out = append(out, Named{pre + n, t}) }
		add("input_layernorm.weight", L.LN1)
		add("self_attn.q_proj.weight", L.QKVW.Rows(0, q))
		add("self_attn.k_proj.weight", L.QKVW.Rows(q, q+kv))
		add("self_attn.v_proj.weight", L.QKVW.Rows(q+kv, q+2*kv))
		if cfg.QKVBias {
			add("self_attn.q_proj.bias", L.QKVB.Rows(0, q))
			add("self_attn.k_proj.bias", L.QKVB.Rows(q, q+kv))
			add("self_attn.v_proj.bias", L.QKVB.Rows(q+kv, q+2*kv))
		}
		add("self_attn.o_proj.weight", L.OW)
		add("post_attention_layernorm.weight", L.LN2)
		add("mlp.gate_proj.weight", L.GateUpW.Rows(0, I))
		add("mlp.up_proj.weight", L.GateUpW.Rows(I, 2*I))
		add("mlp.down_proj.weight", L.DownW)
	}
	out = append(out, Named{"model.norm.weight", p.Norm})
	if !cfg.TieWordEmbeddings {
		out = append(out, Named{"lm_head.weight", p.LMHead})
	}
	return out
}
