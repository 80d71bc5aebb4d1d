package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// Config is a Qwen2-architecture model's shape and hyper-parameters, as read from and written
// to an HF `config.json` (model_type "qwen2"). The JSON names are given next to each field.
type Config struct {
	VocabSize        int // vocab_size
	HiddenSize       int // hidden_size
	IntermediateSize int // intermediate_size
	NumLayers        int // num_hidden_layers
	NumHeads         int // num_attention_heads
	NumKVHeads       int // num_key_value_heads; default NumHeads
	HeadDim          int // head_dim; default HiddenSize/NumHeads
	MaxPositions     int // max_position_embeddings; default 32768 (HF's Qwen2 default)

	RopeTheta  float64 // rope_theta; default 10000
	RMSNormEps float64 // rms_norm_eps; default 1e-6

	TieWordEmbeddings bool // tie_word_embeddings; default false
	// QKVBias says whether q_proj, k_proj and v_proj carry a bias (o_proj never does). Qwen2
	// always has them; it defaults to true and is set from "attention_bias" when present.
	QKVBias bool

	BOSTokenID  int    // bos_token_id; -1 when absent or null
	EOSTokenIDs []int  // eos_token_id, an int or a list of ints in the JSON; nil when absent
	TorchDType  string // torch_dtype (or "dtype"): "", "float32", "bfloat16" or "float16"

	// Architectures is "architectures"; ["Qwen2ForCausalLM"] is written when it is empty.
	Architectures []string
	// Extra holds the fields of config.json that Config does not model, kept verbatim so a
	// load/save round trip does not lose them.
	Extra map[string]json.RawMessage
}

// ErrConfig is wrapped by every error about a model configuration.
var ErrConfig = errors.New("invalid model config")

// ConfigError is the error for a bad field of a configuration: File is the config.json path
// ("" when parsed from bytes), Field the JSON name of the field ("" for the document as a whole).
// It matches ErrConfig with errors.Is.
type ConfigError struct {
	File  string
	Field string
	Msg   string
	Err   error // an underlying cause, or nil
}

// Error formats the error as "file: field: message".
func (e *ConfigError) Error() string {
	var b bytes.Buffer
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Field != "" {
		fmt.Fprintf(&b, "field %q: ", e.Field)
	}
	b.WriteString(e.Msg)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying cause and ErrConfig.
func (e *ConfigError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrConfig, e.Err}
	}
	return []error{ErrConfig}
}

func fieldErr(field, format string, args ...any) *ConfigError {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// maxDim bounds every size of a config, so that parameter counts cannot overflow int64.
const maxDim = 1 << 24

// The JSON names of the fields Config models.
const (
	kVocab     = "vocab_size"
	kHidden    = "hidden_size"
	kInter     = "intermediate_size"
	kLayers    = "num_hidden_layers"
	kHeads     = "num_attention_heads"
	kKVHeads   = "num_key_value_heads"
	kHeadDim   = "head_dim"
	kMaxPos    = "max_position_embeddings"
	kTheta     = "rope_theta"
	kEps       = "rms_norm_eps"
	kTie       = "tie_word_embeddings"
	kBias      = "attention_bias"
	kBOS       = "bos_token_id"
	kEOS       = "eos_token_id"
	kDType     = "torch_dtype"
	kDTypeNew  = "dtype"
	kModelType = "model_type"
	kArch      = "architectures"
)

// LoadConfig reads and validates an HF Qwen2 config.json; path may also be a model directory
// holding one. Errors are *ConfigError naming the file and the field at fault, or the os error
// for an unreadable file.
func LoadConfig(path string) (Config, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "config.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("model config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.File = path
		}
		return Config{}, err
	}
	return c, nil
}

// ParseConfig parses and validates the bytes of an HF Qwen2 config.json, applying HF's defaults
// for absent optional fields. vocab_size, hidden_size, intermediate_size, num_hidden_layers and
// num_attention_heads are required. Errors are *ConfigError naming the field.
func ParseConfig(data []byte) (Config, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return Config{}, &ConfigError{Msg: "not a JSON object", Err: err}
	}
	if raw == nil {
		return Config{}, &ConfigError{Msg: "not a JSON object (null)"}
	}
	if _, err := dec.Token(); err != io.EOF {
		return Config{}, &ConfigError{Msg: "trailing data after the JSON object"}
	}
	c := Config{BOSTokenID: -1, QKVBias: true, RopeTheta: 10000, RMSNormEps: 1e-6, MaxPositions: 32768}
	p := parser{raw: raw}

	if s, ok := p.str(kModelType); ok && s != "qwen2" {
		p.fail(fieldErr(kModelType, "%q is not supported (cir builds Qwen2 models: \"qwen2\")", s))
	}
	c.VocabSize = p.intReq(kVocab)
	c.HiddenSize = p.intReq(kHidden)
	c.IntermediateSize = p.intReq(kInter)
	c.NumLayers = p.intReq(kLayers)
	c.NumHeads = p.intReq(kHeads)
	if v, ok := p.int(kKVHeads); ok {
		c.NumKVHeads = v
	} else {
		c.NumKVHeads = c.NumHeads
	}
	if v, ok := p.int(kHeadDim); ok {
		c.HeadDim = v
	} else if p.err == nil && p.missing == nil && c.NumHeads > 0 {
		if c.HiddenSize%c.NumHeads != 0 {
			p.fail(fieldErr(kHidden, "%d is not divisible by num_attention_heads %d (set head_dim explicitly)", c.HiddenSize, c.NumHeads))
		}
		c.HeadDim = c.HiddenSize / c.NumHeads
	}
	if v, ok := p.int(kMaxPos); ok {
		c.MaxPositions = v
	}
	if v, ok := p.float(kTheta); ok {
		c.RopeTheta = v
	}
	if v, ok := p.float(kEps); ok {
		c.RMSNormEps = v
	}
	if v, ok := p.bool(kTie); ok {
		c.TieWordEmbeddings = v
	}
	if v, ok := p.bool(kBias); ok {
		c.QKVBias = v
	}
	if v, ok := p.int(kBOS); ok {
		c.BOSTokenID = v
	}
	c.EOSTokenIDs = p.intOrList(kEOS)
	if s, ok := p.str(kDType); ok {
		c.TorchDType = s
	} else if s, ok := p.str(kDTypeNew); ok {
		c.TorchDType = s
	}
	c.Architectures = p.strList(kArch)
	p.unsupported()
	if p.err == nil {
		p.err = p.missing
	}
	if p.err != nil {
		return Config{}, p.err
	}
	for k, v := range raw {
		if !known(k) {
			if c.Extra == nil {
				c.Extra = make(map[string]json.RawMessage)
			}
			c.Extra[k] = slices.Clone(v)
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func known(k string) bool {
	switch k {
	case kVocab, kHidden, kInter, kLayers, kHeads, kKVHeads, kHeadDim, kMaxPos, kTheta, kEps,
		kTie, kBias, kBOS, kEOS, kDType, kDTypeNew, kModelType, kArch:
		return true
	}
	return false
}

// parser pulls typed fields out of a decoded JSON object, keeping the first error.
type parser struct {
	raw     map[string]json.RawMessage
	err     error
	missing error // the first missing required field, reported after malformed values
}

func (p *parser) fail(err *ConfigError) {
	if p.err == nil {
		p.err = err
	}
}

// get returns the raw value of key; absent and null are both "not present".
func (p *parser) get(key string) (json.RawMessage, bool) {
	v, ok := p.raw[key]
	if !ok || string(bytes.TrimSpace(v)) == "null" {
		return nil, false
	}
	return v, true
}

// integer decodes v as an integer, accepting integral JSON numbers written as floats (1.0).
func integer(v json.RawMessage) (int, error) {
	var n json.Number // also accepts a quoted number: rule strings out first
	if t := bytes.TrimSpace(v); len(t) == 0 || t[0] == '"' || json.Unmarshal(t, &n) != nil {
		return 0, fmt.Errorf("want an integer, got %s", short(v))
	}
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		if i < math.MinInt32 || i > math.MaxInt32 {
			return 0, fmt.Errorf("%d is out of range", i)
		}
		return int(i), nil
	}
	f, err := n.Float64()
	if err != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		return 0, fmt.Errorf("want an integer, got %s", n)
	}
	return int(f), nil
}

func short(v json.RawMessage) string {
	s := string(bytes.TrimSpace(v))
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

func (p *parser) int(key string) (int, bool) {
	v, ok := p.get(key)
	if !ok {
		return 0, false
	}
	i, err := integer(v)
	if err != nil {
		p.fail(fieldErr(key, "%v", err))
		return 0, false
	}
	return i, true
}

func (p *parser) intReq(key string) int {
	i, ok := p.int(key)
	if !ok && p.missing == nil {
		if v, present := p.raw[key]; !present {
			p.missing = fieldErr(key, "missing")
		} else if string(bytes.TrimSpace(v)) == "null" {
			p.missing = fieldErr(key, "is null")
		}
	}
	return i
}

func (p *parser) float(key string) (float64, bool) {
	v, ok := p.get(key)
	if !ok {
		return 0, false
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil {
		p.fail(fieldErr(key, "want a number, got %s", short(v)))
		return 0, false
	}
	return f, true
}

func (p *parser) bool(key string) (bool, bool) {
	v, ok := p.get(key)
	if !ok {
		return false, false
	}
	var b bool
	if err := json.Unmarshal(v, &b); err != nil {
		p.fail(fieldErr(key, "want true or false, got %s", short(v)))
		return false, false
	}
	return b, true
}

func (p *parser) str(key string) (string, bool) {
	v, ok := p.get(key)
	if !ok {
		return "", false
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		p.fail(fieldErr(key, "want a string, got %s", short(v)))
		return "", false
	}
	return s, true
}

func (p *parser) strList(key string) []string {
	v, ok := p.get(key)
	if !ok {
		return nil
	}
	var s []string
	if err := json.Unmarshal(v, &s); err != nil {
		p.fail(fieldErr(key, "want a list of strings, got %s", short(v)))
		return nil
	}
	return s
}

func (p *parser) intOrList(key string) []int {
	v, ok := p.get(key)
	if !ok {
		return nil
	}
	if t := bytes.TrimSpace(v); len(t) > 0 && t[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(t, &items); err != nil {
			p.fail(fieldErr(key, "want an integer or a list of integers, got %s", short(v)))
			return nil
		}
		out := make([]int, 0, len(items))
		for i, it := range items {
			n, err := integer(it)
			if err != nil {
				p.fail(fieldErr(key, "item %d: %v", i, err))
				return nil
			}
			out = append(out, n)
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	n, err := integer(v)
	if err != nil {
		p.fail(fieldErr(key, "want an integer or a list of integers: %v", err))
		return nil
	}
	return []int{n}
}

// unsupported rejects HF Qwen2 options that would change the computation in ways cir does not
// implement (they are kept in Extra otherwise).
func (p *parser) unsupported() {
	if s, ok := p.str("hidden_act"); ok && s != "silu" {
		p.fail(fieldErr("hidden_act", "%q is not supported (only \"silu\")", s))
	}
	if b, ok := p.bool("use_sliding_window"); ok && b {
		p.fail(fieldErr("use_sliding_window", "sliding-window attention is not supported (set it to false)"))
	}
	if v, ok := p.get("rope_scaling"); ok {
		var m map[string]any
		if err := json.Unmarshal(v, &m); err != nil {
			p.fail(fieldErr("rope_scaling", "want an object or null, got %s", short(v)))
			return
		}
		typ, _ := m["rope_type"].(string)
		if typ == "" {
			typ, _ = m["type"].(string)
		}
		if len(m) > 0 && typ != "default" {
			p.fail(fieldErr("rope_scaling", "RoPE scaling %q is not supported (set it to null)", typ))
		}
	}
}

// Validate checks that the config describes a buildable model: positive sizes (at most 2^24),
// num_attention_heads a multiple of num_key_value_heads, an even head_dim, a positive finite
// rope_theta and rms_norm_eps, token ids inside the vocabulary, a known torch_dtype. Errors are
// *ConfigError naming the JSON field.
func (c Config) Validate() error {
	sizes := []struct {
		name string
		v    int
	}{
		{kVocab, c.VocabSize}, {kHidden, c.HiddenSize}, {kInter, c.IntermediateSize},
		{kLayers, c.NumLayers}, {kHeads, c.NumHeads}, {kKVHeads, c.NumKVHeads},
		{kHeadDim, c.HeadDim}, {kMaxPos, c.MaxPositions},
	}
	for _, s := range sizes {
		if s.v <= 0 {
			return fieldErr(s.name, "must be positive, got %d", s.v)
		}
		if s.v > maxDim {
			return fieldErr(s.name, "%d is too large (at most %d)", s.v, maxDim)
		}
	}
	if c.NumHeads%c.NumKVHeads != 0 {
		return fieldErr(kKVHeads, "%d does not divide num_attention_heads %d", c.NumKVHeads, c.NumHeads)
	}
	if c.HeadDim%2 != 0 {
		return fieldErr(kHeadDim, "must be even for rotary embeddings, got %d", c.HeadDim)
	}
	if !(c.RopeTheta > 0) || math.IsInf(c.RopeTheta, 0) {
		return fieldErr(kTheta, "must be positive and finite, got %g", c.RopeTheta)
	}
	if !(c.RMSNormEps > 0) || math.IsInf(c.RMSNormEps, 0) {
		return fieldErr(kEps, "must be positive and finite, got %g", c.RMSNormEps)
	}
	if c.BOSTokenID < -1 || c.BOSTokenID >= c.VocabSize {
		return fieldErr(kBOS, "%d is outside the vocabulary [0, %d)", c.BOSTokenID, c.VocabSize)
	}
	for _, id := range c.EOSTokenIDs {
		if id < 0 || id >= c.VocabSize {
			return fieldErr(kEOS, "%d is outside the vocabulary [0, %d)", id, c.VocabSize)
		}
	}
	switch c.TorchDType {
	case "", "float32", "bfloat16", "float16":
	default:
		return fieldErr(kDType, "%q is not supported (float32, bfloat16 or float16)", c.TorchDType)
	}
	return nil
}

// JSON returns the config as an HF-compatible config.json (model_type "qwen2", keys sorted,
// indented, with the fields of Extra). It fails only on an Extra value that is not valid JSON.
func (c Config) JSON() ([]byte, error) {
	m := make(map[string]any, len(c.Extra)+20)
	for k, v := range c.Extra {
		if !json.Valid(v) {
			return nil, fieldErr(k, "extra value is not valid JSON")
		}
		m[k] = v
	}
	arch := c.Architectures
	if len(arch) == 0 {
		arch = []string{"Qwen2ForCausalLM"}
	}
	m[kModelType] = "qwen2"
	m[kArch] = arch
	m[kVocab] = c.VocabSize
	m[kHidden] = c.HiddenSize
	m[kInter] = c.IntermediateSize
	m[kLayers] = c.NumLayers
	m[kHeads] = c.NumHeads
	m[kKVHeads] = c.NumKVHeads
	m[kHeadDim] = c.HeadDim
	m[kMaxPos] = c.MaxPositions
	m[kTheta] = pyFloat(c.RopeTheta)
	m[kEps] = pyFloat(c.RMSNormEps)
	m[kTie] = c.TieWordEmbeddings
	if !c.QKVBias {
		m[kBias] = false
	}
	if c.BOSTokenID >= 0 {
		m[kBOS] = c.BOSTokenID
	}
	switch len(c.EOSTokenIDs) {
	case 0:
	case 1:
		m[kEOS] = c.EOSTokenIDs[0]
	default:
		m[kEOS] = c.EOSTokenIDs
	}
	if c.TorchDType != "" {
		m[kDType] = c.TorchDType
	}
	if _, ok := m["hidden_act"]; !ok {
		m["hidden_act"] = "silu"
	}
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("model config: %w", err)
	}
	return append(out, '\n'), nil
}

// pyFloat is a float64 that marshals the way Python's json writes floats (always with a '.' or
// an exponent), so HF reads it back as a float.
type pyFloat float64

// MarshalJSON writes f with a decimal point or exponent.
func (f pyFloat) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(float64(f))
	if err != nil {
		return nil, err
	}
	if !bytes.ContainsAny(b, ".eE") {
		b = append(b, ".0"...)
	}
	return b, nil
}

// Save writes c.JSON() to path atomically (a temporary file in the same directory, then rename).
func (c Config) Save(path string) error {
	data, err := c.JSON()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("model config: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("model config %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("model config %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("model config %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("model config %s: %w", path, err)
	}
	return nil
}

// SaveConfig writes c to path as an HF config.json; it is c.Save(path).
func SaveConfig(path string, c Config) error { return c.Save(path) }

// NumParams is the number of parameters of the model c describes, counting a tied lm_head once
// (it agrees with HF's num_parameters()). Call it on a validated config; it does not panic.
func (c Config) NumParams() int64 {
	V, C, I := int64(c.VocabSize), int64(c.HiddenSize), int64(c.IntermediateSize)
	H, KV, D := int64(c.NumHeads), int64(c.NumKVHeads), int64(c.HeadDim)
	layer := C*H*D + 2*C*KV*D + H*D*C // q, k, v, o
	if c.QKVBias {
		layer += H*D + 2*KV*D
	}
	layer += 3 * C * I // gate, up, down
	layer += 2 * C     // input and post-attention RMSNorm
	n := V*C + int64(c.NumLayers)*layer + C
	if !c.TieWordEmbeddings {
		n += V * C
	}
	return n
}
