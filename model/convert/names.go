package convert

import (
	"fmt"
	"strings"

	"cir/model"
	"cir/model/gguf"
)

// spec is one tensor a Qwen2 checkpoint of a config holds: its Hugging Face and llama.cpp
// names, its row-major shape, and the config field behind each dim (for errors).
type spec struct {
	hf, gg string
	shape  []int64
	fields []string // HF config.json field of each dim
}

// layerNames maps the Hugging Face names of a decoder layer's tensors to llama.cpp's (its
// tensor_mapping for qwen2: no permutation of q/k, rotary in NeoX order as in HF).
var layerNames = []struct{ hf, gg string }{
	{"input_layernorm.weight", "attn_norm.weight"},
	{"self_attn.q_proj.weight", "attn_q.weight"},
	{"self_attn.k_proj.weight", "attn_k.weight"},
	{"self_attn.v_proj.weight", "attn_v.weight"},
	{"self_attn.q_proj.bias", "attn_q.bias"},
	{"self_attn.k_proj.bias", "attn_k.bias"},
	{"self_attn.v_proj.bias", "attn_v.bias"},
	{"self_attn.o_proj.weight", "attn_output.weight"},
	{"post_attention_layernorm.weight", "ffn_norm.weight"},
	{"mlp.gate_proj.weight", "ffn_gate.weight"},
	{"mlp.up_proj.weight", "ffn_up.weight"},
	{"mlp.down_proj.weight", "ffn_down.weight"},
}

// specs lists the tensors of a checkpoint of cfg, in model.Params.Named's order (a tied LM head
// is not listed).
func specs(cfg model.Config) []spec {
	V, C, I := int64(cfg.VocabSize), int64(cfg.HiddenSize), int64(cfg.IntermediateSize)
	q, kv := int64(cfg.NumHeads*cfg.HeadDim), int64(cfg.NumKVHeads*cfg.HeadDim)
	const (
		fV, fC, fI = "vocab_size", "hidden_size", "intermediate_size"
		fQ         = "num_attention_heads×head_dim"
		fKV        = "num_key_value_heads×head_dim"
	)
	shapes := map[string]struct {
		shape  []int64
		fields []string
	}{
		"input_layernorm.weight":          {[]int64{C}, []string{fC}},
		"self_attn.q_proj.weight":         {[]int64{q, C}, []string{fQ, fC}},
		"self_attn.k_proj.weight":         {[]int64{kv, C}, []string{fKV, fC}},
		"self_attn.v_proj.weight":         {[]int64{kv, C}, []string{fKV, fC}},
		"self_attn.q_proj.bias":           {[]int64{q}, []string{fQ}},
		"self_attn.k_proj.bias":           {[]int64{kv}, []string{fKV}},
		"self_attn.v_proj.bias":           {[]int64{kv}, []string{fKV}},
		"self_attn.o_proj.weight":         {[]int64{C, q}, []string{fC, fQ}},
		"post_attention_layernorm.weight": {[]int64{C}, []string{fC}},
		"mlp.gate_proj.weight":            {[]int64{I, C}, []string{fI, fC}},
		"mlp.up_proj.weight":              {[]int64{I, C}, []string{fI, fC}},
		"mlp.down_proj.weight":            {[]int64{C, I}, []string{fC, fI}},
	}
	out := []spec{{"model.embed_tokens.weight", "token_embd.weight", []int64{V, C}, []string{fV, fC}}}
	for l := range cfg.NumLayers {
		for _, n := range layerNames {
			if !cfg.QKVBias && strings.HasSuffix(n.hf, ".bias") {
				continue
			}
			s := shapes[n.hf]
			out = append(out, spec{fmt.Sprintf("model.layers.%d.%s", l, n.hf), fmt.Sprintf("blk.%d.%s", l, n.gg), s.shape, s.fields})
		}
	}
	out = append(out, spec{"model.norm.weight", "output_norm.weight", []int64{C}, []string{fC}})
	if !cfg.TieWordEmbeddings {
		out = append(out, spec{"lm_head.weight", "output.weight", []int64{V, C}, []string{fV, fC}})
	}
	return out
}

// ggufKeyOf names the GGUF metadata key (or tensor) behind an HF config field, for errors about
// a GGUF file.
var ggufKeyOf = map[string]string{
	"vocab_size":                   "the rows of token_embd.weight",
	"hidden_size":                  "qwen2.embedding_length",
	"intermediate_size":            "qwen2.feed_forward_length",
	"num_attention_heads×head_dim": "qwen2.attention.head_count×key_length",
	"num_key_value_heads×head_dim": "qwen2.attention.head_count_kv×key_length",
}

// mismatch describes how shape differs from s's, naming the config field behind the first
// differing dim (keyOf renames fields for GGUF files; nil keeps the HF names).
func (s spec) mismatch(shape []int64, keyOf map[string]string) string {
	if len(shape) != len(s.shape) {
		return fmt.Sprintf("has %d dims %v, want %d dims %v", len(shape), shape, len(s.shape), s.shape)
	}
	for i := range shape {
		if shape[i] != s.shape[i] {
			f := s.fields[i]
			if keyOf != nil {
				f = keyOf[f]
			}
			return fmt.Sprintf("has shape %v, but %s = %d wants %v", shape, f, s.shape[i], s.shape)
		}
	}
	return ""
}

// The GGUF metadata keys of the qwen2 architecture (llama.cpp's LLM_KV names).
const (
	kArch      = "general.architecture"
	kName      = "general.name"
	kFileType  = "general.file_type"
	kQuantVer  = "general.quantization_version"
	kBlocks    = "qwen2.block_count"
	kContext   = "qwen2.context_length"
	kEmbed     = "qwen2.embedding_length"
	kFFN       = "qwen2.feed_forward_length"
	kHeads     = "qwen2.attention.head_count"
	kHeadsKV   = "qwen2.attention.head_count_kv"
	kKeyLen    = "qwen2.attention.key_length"
	kValueLen  = "qwen2.attention.value_length"
	kRopeBase  = "qwen2.rope.freq_base"
	kRMSEps    = "qwen2.attention.layer_norm_rms_epsilon"
	kRopeScale = "qwen2.rope.scaling.type"
	kTokModel  = "tokenizer.ggml.model"
	kTokPre    = "tokenizer.ggml.pre"
	kTokens    = "tokenizer.ggml.tokens"
	kTokTypes  = "tokenizer.ggml.token_type"
	kMerges    = "tokenizer.ggml.merges"
	kBOS       = "tokenizer.ggml.bos_token_id"
	kEOS       = "tokenizer.ggml.eos_token_id"
	kPad       = "tokenizer.ggml.padding_token_id"
	kAddBOS    = "tokenizer.ggml.add_bos_token"
	kTemplate  = "tokenizer.chat_template"
	// kPrompt is cir's own key (llama.cpp ignores it): the prompt settings a cir model was
	// trained with, its directory's promptFile verbatim.
	kPrompt   = "cir.prompt_settings"
	archQwen2 = "qwen2"
	quantVer  = 2
	alignment = 32
)

// llama.cpp's file types (LlamaFileType) for the types cir writes.
var fileTypes = map[gguf.Type]uint32{gguf.F32: 0, gguf.F16: 1, gguf.Q8_0: 7, gguf.BF16: 32}

// ggufMeta is the architecture metadata of cfg for a file whose main type is main.
func ggufMeta(cfg model.Config, name string, main gguf.Type) []gguf.KV {
	kv := []gguf.KV{
		gguf.String(kArch, archQwen2),
		gguf.String(kName, name),
		gguf.Uint32(kBlocks, uint32(cfg.NumLayers)),
		gguf.Uint32(kContext, uint32(cfg.MaxPositions)),
		gguf.Uint32(kEmbed, uint32(cfg.HiddenSize)),
		gguf.Uint32(kFFN, uint32(cfg.IntermediateSize)),
		gguf.Uint32(kHeads, uint32(cfg.NumHeads)),
		gguf.Uint32(kHeadsKV, uint32(cfg.NumKVHeads)),
		gguf.Float32(kRopeBase, float32(cfg.RopeTheta)),
		gguf.Float32(kRMSEps, float32(cfg.RMSNormEps)),
	}
	if cfg.HeadDim*cfg.NumHeads != cfg.HiddenSize {
		kv = append(kv, gguf.Uint32(kKeyLen, uint32(cfg.HeadDim)), gguf.Uint32(kValueLen, uint32(cfg.HeadDim)))
	}
	return append(kv,
		gguf.Uint32(kFileType, fileTypes[main]),
		gguf.Uint32(kQuantVer, quantVer),
		gguf.Uint32(gguf.KeyAlignment, alignment))
}

// configFromGGUF reads the qwen2 architecture metadata of g into a model config; vocab is the
// rows of token_embd.weight. Tie and bias are read from which tensors exist.
func configFromGGUF(g *gguf.File) (model.Config, error) {
	ferr := func(key, format string, args ...any) error {
		return &gguf.FormatError{File: g.Path(), Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	arch, ok, err := g.Str(kArch)
	if err != nil {
		return model.Config{}, err
	}
	if !ok {
		return model.Config{}, ferr(kArch, "missing")
	}
	if arch != archQwen2 {
		return model.Config{}, ferr(kArch, "%q is not supported (cir converts %q models)", arch, archQwen2)
	}
	num := func(key string, required bool, def int) (int, error) {
		v, ok, err := g.Uint(key)
		switch {
		case err != nil:
			if kv, _ := g.Get(key); kv.Type == gguf.TypeArray {
				return 0, ferr(key, "per-layer values are not supported (want one integer)")
			}
			return 0, err
		case !ok && required:
			return 0, ferr(key, "missing")
		case !ok:
			return def, nil
		case v == 0 || v > 1<<24:
			return 0, ferr(key, "%d is out of range", v)
		}
		return int(v), nil
	}
	var c model.Config
	c.QKVBias = true
	c.BOSTokenID = -1
	for _, f := range []struct {
		key string
		dst *int
	}{{kBlocks, &c.NumLayers}, {kEmbed, &c.HiddenSize}, {kFFN, &c.IntermediateSize}, {kHeads, &c.NumHeads}} {
		if *f.dst, err = num(f.key, true, 0); err != nil {
			return c, err
		}
	}
	if c.NumKVHeads, err = num(kHeadsKV, false, c.NumHeads); err != nil {
		return c, err
	}
	if c.MaxPositions, err = num(kContext, false, 32768); err != nil {
		return c, err
	}
	if c.HeadDim, err = num(kKeyLen, false, c.HiddenSize/c.NumHeads); err != nil {
		return c, err
	}
	if v, err := num(kValueLen, false, c.HeadDim); err != nil {
		return c, err
	} else if v != c.HeadDim {
		return c, ferr(kValueLen, "%d differs from the key length %d (not a Qwen2 attention)", v, c.HeadDim)
	}
	if c.RopeTheta, ok, err = g.Float(kRopeBase); err != nil {
		return c, err
	} else if !ok {
		c.RopeTheta = 10000
	}
	if c.RMSNormEps, ok, err = g.Float(kRMSEps); err != nil {
		return c, err
	} else if !ok {
		return c, ferr(kRMSEps, "missing")
	}
	if s, ok, err := g.Str(kRopeScale); err != nil {
		return c, err
	} else if ok && s != "none" {
		return c, ferr(kRopeScale, "RoPE scaling %q is not supported", s)
	}
	emb, ok := g.Tensor("token_embd.weight")
	if !ok {
		return c, &gguf.FormatError{File: g.Path(), Tensor: "token_embd.weight", Msg: "missing"}
	}
	if len(emb.Dims) != 2 || emb.Dims[1] == 0 || emb.Dims[1] > 1<<24 {
		return c, &gguf.FormatError{File: g.Path(), Tensor: "token_embd.weight", Field: "dims", Msg: fmt.Sprintf("%v is not [embedding_length, vocab]", emb.Dims)}
	}
	c.VocabSize = int(emb.Dims[1])
	_, hasOut := g.Tensor("output.weight")
	c.TieWordEmbeddings = !hasOut
	_, c.QKVBias = g.Tensor("blk.0.attn_q.bias")
	c.Architectures = []string{"Qwen2ForCausalLM"}
	// The special ids of the carried tokenizer become config.json's, as HF's have them.
	for _, f := range []struct {
		key string
		set func(int)
	}{{kBOS, func(id int) { c.BOSTokenID = id }}, {kEOS, func(id int) { c.EOSTokenIDs = []int{id} }}} {
		id, ok, err := g.Uint(f.key)
		if err != nil {
			return c, err
		}
		if ok && id < uint64(c.VocabSize) {
			f.set(int(id))
		}
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: the qwen2 metadata does not make a valid model: %w", g.Path(), err)
	}
	return c, nil
}
