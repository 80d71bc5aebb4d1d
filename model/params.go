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

// paramShapes lists the packed parameters of cfg in storage order with their shapes.
func paramShapes(cfg Config) (names []string, shapes [][]int) {
	C, D := cfg.HiddenSize, cfg.HeadDim
	qkv := (cfg.NumHeads + 2*cfg.NumKVHeads) * D
	add := func(n string, s ...int) { names = append(names, n); shapes = append(shapes, s) }
	add("model.embed_tokens.weight", cfg.VocabSize, C)
	for l := 0; l < cfg.NumLayers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		add(p+"input_layernorm.weight", C)
		add(p+"self_attn.qkv.weight", qkv, C)
		if cfg.QKVBias {
			add(p+"self_attn.qkv.bias", qkv)
		}
		add(p+"self_attn.o_proj.weight", C, cfg.NumHeads*D)
		add(p+"post_attention_layernorm.weight", C)
		add(p+"mlp.gate_up.weight", 2*cfg.IntermediateSize, C)
		add(p+"mlp.down_proj.weight", C, cfg.IntermediateSize)
	}
	add("model.norm.weight", C)
	if !cfg.TieWordEmbeddings {
		add("lm_head.weight", cfg.VocabSize, C)
	}
	return names, shapes
}

// numel is the product of a shape.
func numel(shape []int) int {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return n
}

// paramElems is the length of the flat parameter buffer of cfg, padding included.
func paramElems(cfg Config) int {
	_, shapes := paramShapes(cfg)
	n := 0
	for _, s := range shapes {
		n += (numel(s) + paramAlign - 1) / paramAlign * paramAlign
	}
	return n
}

// viewParams lays cfg's parameters over the flat buffer all (paramElems(cfg) elements).
func viewParams(cfg Config, all engine.Tensor) Params {
	names, shapes := paramShapes(cfg)
	p := Params{All: all, Layers: make([]Layer, cfg.NumLayers)}
	off := 0
	for i, n := range names {
		t := all.Slice(off, shapes[i]...)
		off += (numel(shapes[i]) + paramAlign - 1) / paramAlign * paramAlign
		var l int
		var field string
		if _, err := fmt.Sscanf(n, "model.layers.%d.%s", &l, &field); err == nil {
			L := &p.Layers[l]
			switch field {
			case "input_layernorm.weight":
				L.LN1 = t
			case "self_attn.qkv.weight":
				L.QKVW = t
			case "self_attn.qkv.bias":
				L.QKVB = t
			case "self_attn.o_proj.weight":
				L.OW = t
			case "post_attention_layernorm.weight":
				L.LN2 = t
			case "mlp.gate_up.weight":
				L.GateUpW = t
			case "mlp.down_proj.weight":
				L.DownW = t
			}
			continue
		}
		switch n {
		case "model.embed_tokens.weight":
			p.Embed = t
		case "model.norm.weight":
			p.Norm = t
		case "lm_head.weight":
			p.LMHead = t
		}
	}
	if cfg.TieWordEmbeddings {
		p.LMHead = p.Embed
	}
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
