package model

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The public config.json files of the Qwen2.5 base models.
const (
	qwen25_05B = `{
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151643,
  "hidden_act": "silu",
  "hidden_size": 896,
  "initializer_range": 0.02,
  "intermediate_size": 4864,
  "max_position_embeddings": 32768,
  "max_window_layers": 24,
  "model_type": "qwen2",
  "num_attention_heads": 14,
  "num_hidden_layers": 24,
  "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 32768,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.40.1",
  "use_cache": true,
  "use_mrope": false,
  "use_sliding_window": false,
  "vocab_size": 151936
}`
	qwen25_15B = `{
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151643,
  "hidden_act": "silu",
  "hidden_size": 1536,
  "initializer_range": 0.02,
  "intermediate_size": 8960,
  "max_position_embeddings": 131072,
  "max_window_layers": 28,
  "model_type": "qwen2",
  "num_attention_heads": 12,
  "num_hidden_layers": 28,
  "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 131072,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.40.1",
  "use_cache": true,
  "use_mrope": false,
  "use_sliding_window": false,
  "vocab_size": 151936
}`
	qwen25_7B = `{
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151643,
  "hidden_act": "silu",
  "hidden_size": 3584,
  "initializer_range": 0.02,
  "intermediate_size": 18944,
  "max_position_embeddings": 131072,
  "max_window_layers": 28,
  "model_type": "qwen2",
  "num_attention_heads": 28,
  "num_hidden_layers": 28,
  "num_key_value_heads": 4,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 131072,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.1",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 152064
}`
)

func TestRealConfigs(t *testing.T) {
	cases := []struct {
		name   string
		json   string
		want   Config
		params int64 // the published parameter count
	}{
		{"Qwen2.5-0.5B", qwen25_05B, Config{VocabSize: 151936, HiddenSize: 896, IntermediateSize: 4864, NumLayers: 24,
			NumHeads: 14, NumKVHeads: 2, HeadDim: 64, MaxPositions: 32768, RopeTheta: 1e6, RMSNormEps: 1e-6,
			TieWordEmbeddings: true, QKVBias: true, BOSTokenID: 151643, EOSTokenIDs: []int{151643}, TorchDType: "bfloat16"}, 494_032_768},
		{"Qwen2.5-1.5B", qwen25_15B, Config{VocabSize: 151936, HiddenSize: 1536, IntermediateSize: 8960, NumLayers: 28,
			NumHeads: 12, NumKVHeads: 2, HeadDim: 128, MaxPositions: 131072, RopeTheta: 1e6, RMSNormEps: 1e-6,
			TieWordEmbeddings: true, QKVBias: true, BOSTokenID: 151643, EOSTokenIDs: []int{151643}, TorchDType: "bfloat16"}, 1_543_714_304},
		{"Qwen2.5-7B", qwen25_7B, Config{VocabSize: 152064, HiddenSize: 3584, IntermediateSize: 18944, NumLayers: 28,
			NumHeads: 28, NumKVHeads: 4, HeadDim: 128, MaxPositions: 131072, RopeTheta: 1e6, RMSNormEps: 1e-6,
			TieWordEmbeddings: false, QKVBias: true, BOSTokenID: 151643, EOSTokenIDs: []int{151643}, TorchDType: "bfloat16"}, 7_615_616_512},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(c.json))
			if err != nil {
				t.Fatal(err)
			}
			c.want.Architectures = []string{"Qwen2ForCausalLM"}
			extra := got.Extra
			got.Extra = nil
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
			for _, k := range []string{"sliding_window", "use_cache", "transformers_version", "hidden_act", "use_sliding_window"} {
				if _, ok := extra[k]; !ok {
					t.Errorf("Extra lacks %q: %v", k, extra)
				}
			}
			if n := got.NumParams(); n != c.params {
				t.Errorf("NumParams() = %d, published %d", n, c.params)
			}
			if n := countParams(got); n != c.params {
				t.Errorf("tensor-by-tensor count %d, published %d", n, c.params)
			}
			// Writing and re-reading gives the same config, and the same JSON object as the
			// original file.
			got.Extra = extra
			out, err := got.JSON()
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseConfig(out)
			if err != nil {
				t.Fatalf("re-parsing %s: %v", out, err)
			}
			if !reflect.DeepEqual(back, got) {
				t.Errorf("round trip changed the config:\n%+v\n%+v", back, got)
			}
			var orig, again map[string]any
			json.Unmarshal([]byte(c.json), &orig)
			json.Unmarshal(out, &again)
			delete(again, "head_dim") // written explicitly; the HF default gives the same value
			if !reflect.DeepEqual(orig, again) {
				t.Errorf("JSON() = %s\nwant the fields of %s", out, c.json)
			}
			if !strings.Contains(string(out), `"rope_theta": 1000000.0`) {
				t.Errorf("rope_theta not written as a float: %s", out)
			}
		})
	}
}

// countParams enumerates the HF tensors of a Qwen2 model with their shapes and sums their sizes,
// independently of NumParams.
func countParams(c Config) int64 {
	type shape []int
	C, I, q, kv := c.HiddenSize, c.IntermediateSize, c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
	tensors := map[string]shape{"model.embed_tokens.weight": {c.VocabSize, C}, "model.norm.weight": {C}}
	if !c.TieWordEmbeddings {
		tensors["lm_head.weight"] = shape{c.VocabSize, C}
	}
	for l := range c.NumLayers {
		p := "model.layers." + string(rune('a'+l%26)) + strings.Repeat("x", l/26) + "."
		tensors[p+"input_layernorm.weight"] = shape{C}
		tensors[p+"post_attention_layernorm.weight"] = shape{C}
		tensors[p+"self_attn.q_proj.weight"] = shape{q, C}
		tensors[p+"self_attn.k_proj.weight"] = shape{kv, C}
		tensors[p+"self_attn.v_proj.weight"] = shape{kv, C}
		tensors[p+"self_attn.o_proj.weight"] = shape{C, q}
		if c.QKVBias {
			tensors[p+"self_attn.q_proj.bias"] = shape{q}
			tensors[p+"self_attn.k_proj.bias"] = shape{kv}
			tensors[p+"self_attn.v_proj.bias"] = shape{kv}
		}
		tensors[p+"mlp.gate_proj.weight"] = shape{I, C}
		tensors[p+"mlp.up_proj.weight"] = shape{I, C}
		tensors[p+"mlp.down_proj.weight"] = shape{C, I}
	}
	var n int64
	for _, s := range tensors {
		e := int64(1)
		for _, d := range s {
			e *= int64(d)
		}
		n += e
	}
	return n
}

func TestNumParamsVariants(t *testing.T) {
	base := Config{VocabSize: 97, HiddenSize: 40, IntermediateSize: 72, NumLayers: 3, NumHeads: 4, NumKVHeads: 2,
		HeadDim: 14, MaxPositions: 64, RopeTheta: 1e4, RMSNormEps: 1e-6}
	for _, tie := range []bool{false, true} {
		for _, bias := range []bool{false, true} {
			c := base
			c.TieWordEmbeddings, c.QKVBias = tie, bias
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if got, want := c.NumParams(), countParams(c); got != want {
				t.Errorf("tie=%v bias=%v: NumParams() = %d, want %d", tie, bias, got, want)
			}
		}
	}
}

const minimal = `{"vocab_size": 100, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 8}`

// with returns the minimal config with fields set (a nil value deletes the field).
func with(fields map[string]any) []byte {
	var m map[string]any
	json.Unmarshal([]byte(minimal), &m)
	for k, v := range fields {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return b
}

func TestDefaults(t *testing.T) {
	base := Config{VocabSize: 100, HiddenSize: 64, IntermediateSize: 128, NumLayers: 2, NumHeads: 8, NumKVHeads: 8,
		HeadDim: 8, MaxPositions: 32768, RopeTheta: 10000, RMSNormEps: 1e-6, QKVBias: true, BOSTokenID: -1}
	cases := []struct {
		name   string
		json   []byte
		modify func(*Config)
	}{
		{"minimal", []byte(minimal), func(*Config) {}},
		{"nulls mean defaults", with(map[string]any{"num_key_value_heads": json.RawMessage("null"), "rope_theta": json.RawMessage("null"),
			"bos_token_id": json.RawMessage("null"), "eos_token_id": json.RawMessage("null"), "rope_scaling": json.RawMessage("null")}), func(*Config) {}},
		{"gqa and head_dim", with(map[string]any{"num_key_value_heads": 2, "head_dim": 16}), func(c *Config) { c.NumKVHeads, c.HeadDim = 2, 16 }},
		{"head_dim when hidden does not divide", with(map[string]any{"hidden_size": 60, "head_dim": 10}), func(c *Config) { c.HiddenSize, c.HeadDim = 60, 10 }},
		{"no qkv bias", with(map[string]any{"attention_bias": false}), func(c *Config) { c.QKVBias = false }},
		{"explicit qkv bias", with(map[string]any{"attention_bias": true}), func(*Config) {}},
		{"tied", with(map[string]any{"tie_word_embeddings": true}), func(c *Config) { c.TieWordEmbeddings = true }},
		{"eos list", with(map[string]any{"eos_token_id": []int{7, 9}, "bos_token_id": 3}), func(c *Config) { c.EOSTokenIDs, c.BOSTokenID = []int{7, 9}, 3 }},
		{"eos int", with(map[string]any{"eos_token_id": 0}), func(c *Config) { c.EOSTokenIDs = []int{0} }},
		{"integral floats", with(map[string]any{"vocab_size": 100.0, "num_hidden_layers": json.RawMessage("2.0")}), func(*Config) {}},
		{"dtype key", with(map[string]any{"dtype": "float32"}), func(c *Config) { c.TorchDType = "float32" }},
		{"model_type qwen2", with(map[string]any{"model_type": "qwen2", "rope_theta": 500, "rms_norm_eps": 1e-5, "max_position_embeddings": 64}),
			func(c *Config) { c.RopeTheta, c.RMSNormEps, c.MaxPositions = 500, 1e-5, 64 }},
		{"default rope scaling", with(map[string]any{"rope_scaling": map[string]any{"rope_type": "default"}}), func(*Config) {}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseConfig(c.json)
			if err != nil {
				t.Fatal(err)
			}
			want := base
			c.modify(&want)
			got.Extra = nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestBadConfigs(t *testing.T) {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	cases := []struct {
		name  string
		json  []byte
		field string
		msg   string
	}{
		{"not json", []byte(`{"vocab_size":`), "", "not a JSON object"},
		{"array", []byte(`[1]`), "", "not a JSON object"},
		{"null", []byte(`null`), "", "not a JSON object"},
		{"trailing", []byte(minimal + `{}`), "", "trailing data"},
		{"trailing bracket", []byte(minimal + ` ]`), "", "trailing data"},
		{"llama", with(map[string]any{"model_type": "llama"}), "model_type", `"llama" is not supported`},
		{"qwen2_5", with(map[string]any{"model_type": "qwen2_5"}), "model_type", "not supported"},
		{"model_type number", with(map[string]any{"model_type": 2}), "model_type", "want a string"},
		{"missing vocab", with(map[string]any{"vocab_size": nil}), "vocab_size", "missing"},
		{"null vocab", with(map[string]any{"vocab_size": raw("null")}), "vocab_size", "is null"},
		{"string vocab", with(map[string]any{"vocab_size": "100"}), "vocab_size", "want an integer"},
		{"fractional vocab", with(map[string]any{"vocab_size": 100.5}), "vocab_size", "want an integer"},
		{"zero vocab", with(map[string]any{"vocab_size": 0}), "vocab_size", "must be positive"},
		{"huge vocab", with(map[string]any{"vocab_size": raw("1e12")}), "vocab_size", "want an integer"},
		{"out of int32", with(map[string]any{"vocab_size": raw("4294967296")}), "vocab_size", "out of range"},
		{"too large", with(map[string]any{"intermediate_size": 1 << 25}), "intermediate_size", "too large"},
		{"malformed reported before missing", []byte(`{"hidden_size": "wide"}`), "hidden_size", "want an integer"},
		{"missing hidden", with(map[string]any{"hidden_size": nil}), "hidden_size", "missing"},
		{"negative layers", with(map[string]any{"num_hidden_layers": -1}), "num_hidden_layers", "must be positive"},
		{"zero heads", with(map[string]any{"num_attention_heads": 0}), "num_attention_heads", "must be positive"},
		{"hidden not divisible", with(map[string]any{"hidden_size": 60}), "hidden_size", "not divisible by num_attention_heads 8"},
		{"kv heads do not divide", with(map[string]any{"num_key_value_heads": 3}), "num_key_value_heads", "does not divide num_attention_heads 8"},
		{"zero kv heads", with(map[string]any{"num_key_value_heads": 0}), "num_key_value_heads", "must be positive"},
		{"odd head_dim", with(map[string]any{"head_dim": 7}), "head_dim", "must be even"},
		{"zero max positions", with(map[string]any{"max_position_embeddings": 0}), "max_position_embeddings", "must be positive"},
		{"zero theta", with(map[string]any{"rope_theta": 0}), "rope_theta", "positive and finite"},
		{"negative theta", with(map[string]any{"rope_theta": -1}), "rope_theta", "positive and finite"},
		{"string theta", with(map[string]any{"rope_theta": "1e6"}), "rope_theta", "want a number"},
		{"zero eps", with(map[string]any{"rms_norm_eps": 0}), "rms_norm_eps", "positive and finite"},
		{"tie string", with(map[string]any{"tie_word_embeddings": "yes"}), "tie_word_embeddings", "want true or false"},
		{"bias number", with(map[string]any{"attention_bias": 1}), "attention_bias", "want true or false"},
		{"bos outside vocab", with(map[string]any{"bos_token_id": 100}), "bos_token_id", "outside the vocabulary"},
		{"negative bos", with(map[string]any{"bos_token_id": -5}), "bos_token_id", "outside the vocabulary"},
		{"eos outside vocab", with(map[string]any{"eos_token_id": []int{1, 100}}), "eos_token_id", "100 is outside the vocabulary"},
		{"eos list of strings", with(map[string]any{"eos_token_id": []string{"a"}}), "eos_token_id", "item 0"},
		{"eos object", with(map[string]any{"eos_token_id": map[string]int{}}), "eos_token_id", "want an integer or a list"},
		{"dtype", with(map[string]any{"torch_dtype": "float8"}), "torch_dtype", `"float8" is not supported`},
		{"architectures string", with(map[string]any{"architectures": "Qwen2ForCausalLM"}), "architectures", "want a list of strings"},
		{"gelu", with(map[string]any{"hidden_act": "gelu"}), "hidden_act", `"gelu" is not supported`},
		{"sliding window", with(map[string]any{"use_sliding_window": true}), "use_sliding_window", "not supported"},
		{"yarn", with(map[string]any{"rope_scaling": map[string]any{"type": "yarn", "factor": 4}}), "rope_scaling", `"yarn" is not supported`},
		{"rope_scaling list", with(map[string]any{"rope_scaling": []int{1}}), "rope_scaling", "want an object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig(c.json)
			var ce *ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, ErrConfig) {
				t.Fatalf("ParseConfig(%s): %v (%T), want a *ConfigError", c.json, err, err)
			}
			if ce.Field != c.field || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("ParseConfig(%s): %v (field %q); want field %q and %q", c.json, err, ce.Field, c.field, c.msg)
			}
			if c.field != "" && !strings.Contains(err.Error(), `"`+c.field+`"`) {
				t.Errorf("error %q does not name the field %q", err, c.field)
			}
		})
	}
}

func TestValidateLiterals(t *testing.T) {
	ok := Config{VocabSize: 130, HiddenSize: 40, IntermediateSize: 72, NumLayers: 1, NumHeads: 4, NumKVHeads: 1,
		HeadDim: 14, MaxPositions: 64, RopeTheta: 500, RMSNormEps: 1e-6, QKVBias: true, TieWordEmbeddings: true}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid config (head_dim*heads != hidden_size): %v", err)
	}
	cases := []struct {
		field  string
		modify func(*Config)
	}{
		{"head_dim", func(c *Config) { c.HeadDim = 0 }},
		{"num_key_value_heads", func(c *Config) { c.NumKVHeads = 3 }},
		{"rms_norm_eps", func(c *Config) { c.RMSNormEps = -1 }},
		{"rope_theta", func(c *Config) { c.RopeTheta = 0 }},
		{"max_position_embeddings", func(c *Config) { c.MaxPositions = 0 }},
		{"eos_token_id", func(c *Config) { c.EOSTokenIDs = []int{-1} }},
	}
	for _, c := range cases {
		cfg := ok
		c.modify(&cfg)
		var ce *ConfigError
		if err := cfg.Validate(); !errors.As(err, &ce) || ce.Field != c.field {
			t.Errorf("%s: Validate() = %v, want an error for the field", c.field, err)
		}
	}
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	c := Config{VocabSize: 61, HiddenSize: 36, IntermediateSize: 52, NumLayers: 3, NumHeads: 3, NumKVHeads: 3,
		HeadDim: 12, MaxPositions: 64, RopeTheta: 1e6, RMSNormEps: 1e-5, TieWordEmbeddings: true,
		BOSTokenID: -1, EOSTokenIDs: []int{1, 2}, TorchDType: "float32"}
	path := filepath.Join(dir, "config.json")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	c.Architectures = []string{"Qwen2ForCausalLM"}
	back.Extra = nil
	if !reflect.DeepEqual(back, c) {
		t.Errorf("loaded %+v\nsaved  %+v", back, c)
	}
	data, _ := os.ReadFile(path)
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"model_type": "qwen2", "hidden_act": "silu", "attention_bias": false,
		"architectures": []any{"Qwen2ForCausalLM"}, "eos_token_id": []any{1.0, 2.0}, "num_key_value_heads": 3.0} {
		if !reflect.DeepEqual(m[k], v) {
			t.Errorf("config.json %s = %v, want %v", k, m[k], v)
		}
	}
	if _, ok := m["bos_token_id"]; ok {
		t.Error("config.json has a bos_token_id for BOSTokenID -1")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("config.json mode %v, want 0644", st.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("Save left %d files, want 1", len(entries))
	}
	if err := SaveConfig(filepath.Join(dir, "other.json"), c); err != nil {
		t.Error(err)
	}
	if fromDir, err := LoadConfig(dir); err != nil || fromDir.VocabSize != c.VocabSize {
		t.Errorf("LoadConfig of the directory: %v", err)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadConfig(filepath.Join(dir, "none.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	path := filepath.Join(dir, "config.json")
	os.WriteFile(path, with(map[string]any{"num_key_value_heads": 3}), 0o644)
	_, err := LoadConfig(path)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.File != path || !strings.HasPrefix(err.Error(), path+": ") {
		t.Errorf("bad file: %v, want a *ConfigError starting with the path", err)
	}
	c, _ := ParseConfig([]byte(minimal))
	c.Extra = map[string]json.RawMessage{"broken": json.RawMessage("{")}
	if _, err := c.JSON(); !errors.As(err, &ce) || ce.Field != "broken" {
		t.Errorf("JSON with an invalid extra value: %v", err)
	}
}

// FuzzParseConfig: ParseConfig never panics, rejects with a *ConfigError, and what it accepts
// is valid and survives JSON() and ParseConfig unchanged.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{minimal, qwen25_05B, qwen25_7B, `{"vocab_size":1e3}`, `{"eos_token_id":[]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a *ConfigError", err, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails Validate: %v", err)
		}
		out, err := c.JSON()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", out, err)
		}
		if len(c.Architectures) == 0 {
			c.Architectures = []string{"Qwen2ForCausalLM"}
		}
		c.Extra, back.Extra = nil, nil
		if !reflect.DeepEqual(c, back) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", c, back)
		}
	})
}
