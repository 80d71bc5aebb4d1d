package convert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"cir/model"
	"cir/model/gguf"
	"cir/tokenizer"
)

// llama.cpp's token types (llama_token_type).
const (
	tokNormal      int32 = 1
	tokControl     int32 = 3
	tokUserDefined int32 = 4
	tokUnused      int32 = 5
)

// vocab is a tokenizer in GGUF's terms: the gpt2 (byte-level BPE) model of llama.cpp with
// tokens by id, their types, merges as "a b", special ids (-1 when absent) and the chat
// template.
type vocab struct {
	tokens       []string
	types        []int32
	merges       []string
	bos, eos     int
	pad          int
	chatTemplate string
	prompt       string // the model directory's promptFile, verbatim ("" when it has none)
}

// promptFile is the file of a cir model directory with the prompt settings it was trained
// with (train/data.PromptFile), carried through GGUF as kPrompt.
const promptFile = "cir_prompt.json"

// byteSpecials are the byte tokenizer's special tokens, ids 256–258 (tokenizer.Byte).
var byteSpecials = []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}

// byteLevel is GPT-2's byte-to-character table (bytes_to_unicode), which byte-level BPE
// vocabularies spell their tokens in: printable Latin-1 bytes stand for themselves, the others
// map to U+0100 onwards in byte order.
var byteLevel = func() [256]string {
	var t [256]string
	n := 0
	for b := range 256 {
		if (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff) {
			t[b] = string(rune(b))
		} else {
			t[b] = string(rune(256 + n))
			n++
		}
	}
	return t
}()

// looksSpecial is llama.cpp's converter's test for an added token that is a control token even
// when the tokenizer does not mark it special.
func looksSpecial(s string) bool {
	return (strings.HasPrefix(s, "<|") && strings.HasSuffix(s, "|>")) ||
		(strings.HasPrefix(s, "<｜") && strings.HasSuffix(s, "｜>"))
}

// padTo extends v to n tokens with llama.cpp's unused "[PADi]" entries (a model's vocab_size
// is often larger than its tokenizer's).
func (v *vocab) padTo(n int) {
	for i := len(v.tokens); i < n; i++ {
		v.tokens = append(v.tokens, fmt.Sprintf("[PAD%d]", i))
		v.types = append(v.types, tokUnused)
	}
}

// hfVocab reads the tokenizer of the HF model directory dir (a tokenizer.json of the Qwen2
// kind, or cir's byte vocabulary) for a model of cfg.
func hfVocab(dir string, cfg model.Config) (*vocab, error) {
	tok, err := tokenizer.Load(dir)
	if err != nil {
		if errors.Is(err, tokenizer.ErrNoTokenizer) {
			return nil, fmt.Errorf("%s has no tokenizer.json or %s, and a GGUF file must carry its vocabulary: %w", dir, tokenizer.ByteMarker, err)
		}
		return nil, err
	}
	if tok.VocabSize() > cfg.VocabSize {
		return nil, fmt.Errorf("%s: the tokenizer has %d tokens but config.json's vocab_size is %d", dir, tok.VocabSize(), cfg.VocabSize)
	}
	tc, err := readTokenizerConfig(dir)
	if err != nil {
		return nil, err
	}
	v := &vocab{bos: cfg.BOSTokenID, eos: -1, pad: -1}
	if len(cfg.EOSTokenIDs) > 0 {
		v.eos = cfg.EOSTokenIDs[0]
	}
	if v.chatTemplate, err = chatTemplate(dir, tc); err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(dir, promptFile)); err == nil {
		v.prompt = string(b)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ids := map[string]int{}
	if _, isByte := tok.(*tokenizer.Byte); isByte {
		for b := range 256 {
			v.tokens = append(v.tokens, byteLevel[b])
			v.types = append(v.types, tokNormal)
		}
		for _, s := range byteSpecials {
			ids[s] = len(v.tokens)
			v.tokens = append(v.tokens, s)
			v.types = append(v.types, tokControl)
		}
		v.pad = ids["<|endoftext|>"]
		if v.eos < 0 {
			v.eos = ids["<|im_end|>"]
		}
	} else {
		path := filepath.Join(dir, "tokenizer.json")
		if err := bpeVocab(v, path, ids); err != nil {
			return nil, err
		}
	}
	v.padTo(cfg.VocabSize)
	// Named special tokens in tokenizer_config.json win over config.json's ids, as in
	// llama.cpp's converter.
	for _, s := range []struct {
		key string
		dst *int
	}{{"bos_token", &v.bos}, {"eos_token", &v.eos}, {"pad_token", &v.pad}} {
		name, ok := tc.token(s.key)
		if !ok {
			continue
		}
		id, found := ids[name]
		if !found {
			return nil, fmt.Errorf("%s: field %q: token %q is not in the vocabulary", filepath.Join(dir, "tokenizer_config.json"), s.key, name)
		}
		*s.dst = id
	}
	return v, nil
}

// bpeVocab fills v from a Qwen2-kind tokenizer.json (already accepted by tokenizer.Load).
func bpeVocab(v *vocab, path string, ids map[string]int) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var j struct {
		AddedTokens []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens"`
		PreTokenizer struct {
			Type string `json:"type"`
		} `json:"pre_tokenizer"`
		Model struct {
			Vocab  map[string]int  `json:"vocab"`
			Merges json.RawMessage `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &j); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if j.PreTokenizer.Type != "Sequence" {
		return fmt.Errorf("%s: field pre_tokenizer: %q without Qwen2's split has no llama.cpp equivalent (GGUF needs the qwen2 pre-tokenizer)", path, j.PreTokenizer.Type)
	}
	n := 0
	for _, id := range j.Model.Vocab {
		n = max(n, id+1)
	}
	for _, a := range j.AddedTokens {
		n = max(n, a.ID+1)
	}
	v.tokens = make([]string, n)
	v.types = make([]int32, n)
	for i := range n {
		v.tokens[i] = fmt.Sprintf("[PAD%d]", i)
		v.types[i] = tokUnused
	}
	for s, id := range j.Model.Vocab {
		v.tokens[id], v.types[id] = s, tokNormal
		ids[s] = id
	}
	for _, a := range j.AddedTokens {
		t := tokUserDefined
		if a.Special || looksSpecial(a.Content) {
			t = tokControl
		}
		v.tokens[a.ID], v.types[a.ID] = a.Content, t
		ids[a.Content] = a.ID
	}
	var pairs [][2]string
	if err := json.Unmarshal(j.Model.Merges, &pairs); err == nil {
		for _, p := range pairs {
			v.merges = append(v.merges, p[0]+" "+p[1])
		}
	} else if err := json.Unmarshal(j.Model.Merges, &v.merges); err != nil {
		return fmt.Errorf("%s: field model.merges: %w", path, err)
	}
	return nil
}

// tokenizerConfig is tokenizer_config.json, as raw fields.
type tokenizerConfig map[string]json.RawMessage

func readTokenizerConfig(dir string) (tokenizerConfig, error) {
	path := filepath.Join(dir, "tokenizer_config.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return tokenizerConfig{}, nil
	}
	if err != nil {
		return nil, err
	}
	var tc tokenizerConfig
	if err := json.Unmarshal(data, &tc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tc, nil
}

// token returns the content of a special-token field: a string or {"content": ...}.
func (tc tokenizerConfig) token(key string) (string, bool) {
	raw, ok := tc[key]
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil && s != "" {
		return s, true
	}
	var o struct{ Content string }
	if json.Unmarshal(raw, &o) == nil && o.Content != "" {
		return o.Content, true
	}
	return "", false
}

// chatTemplate returns the directory's chat template: chat_template.jinja when present (newer
// transformers save it there), else tokenizer_config.json's chat_template (a string, or a list
// of named templates, of which "default" is taken), else "".
func chatTemplate(dir string, tc tokenizerConfig) (string, error) {
	if b, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja")); err == nil {
		return string(b), nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	raw, ok := tc["chat_template"]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var named []struct{ Name, Template string }
	if json.Unmarshal(raw, &named) == nil {
		for _, n := range named {
			if n.Name == "default" {
				return n.Template, nil
			}
		}
	}
	return "", fmt.Errorf("%s: field chat_template: want a string or a list with a \"default\" template", filepath.Join(dir, "tokenizer_config.json"))
}

// kv is the tokenizer metadata of v.
func (v *vocab) kv() []gguf.KV {
	kv := []gguf.KV{
		gguf.String(kTokModel, "gpt2"),
		gguf.String(kTokPre, "qwen2"),
		gguf.Strings(kTokens, v.tokens),
		gguf.Int32s(kTokTypes, v.types),
		gguf.Strings(kMerges, v.merges),
	}
	for _, s := range []struct {
		key string
		id  int
	}{{kBOS, v.bos}, {kEOS, v.eos}, {kPad, v.pad}} {
		if s.id >= 0 {
			kv = append(kv, gguf.Uint32(s.key, uint32(s.id)))
		}
	}
	kv = append(kv, gguf.Bool(kAddBOS, false))
	if v.chatTemplate != "" {
		kv = append(kv, gguf.String(kTemplate, v.chatTemplate))
	}
	if v.prompt != "" {
		kv = append(kv, gguf.String(kPrompt, v.prompt))
	}
	return kv
}

// ggufVocab reads the tokenizer metadata of g; it returns nil when g carries none.
func ggufVocab(g *gguf.File) (*vocab, error) {
	ferr := func(key, format string, args ...any) error {
		return &gguf.FormatError{File: g.Path(), Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	m, ok, err := g.Str(kTokModel)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, nil
	}
	if m != "gpt2" {
		return nil, ferr(kTokModel, "%q is not supported (cir reads the byte-level BPE \"gpt2\" model)", m)
	}
	if pre, ok, err := g.Str(kTokPre); err != nil {
		return nil, err
	} else if ok && pre != "qwen2" {
		return nil, ferr(kTokPre, "%q is not supported (only Qwen2's pre-tokenizer, \"qwen2\")", pre)
	}
	v := &vocab{bos: -1, eos: -1, pad: -1}
	strs := func(key string, required bool) ([]string, error) {
		kv, ok := g.Get(key)
		if !ok {
			if required {
				return nil, ferr(key, "missing")
			}
			return nil, nil
		}
		s, isStrs := kv.Value.([]string)
		if !isStrs {
			return nil, ferr(key, "want an array of strings, got %v of %v", kv.Type, kv.Elem)
		}
		return s, nil
	}
	if v.tokens, err = strs(kTokens, true); err != nil {
		return nil, err
	}
	if v.merges, err = strs(kMerges, false); err != nil {
		return nil, err
	}
	if kv, ok := g.Get(kTokTypes); ok {
		t, isI32 := kv.Value.([]int32)
		if !isI32 || len(t) != len(v.tokens) {
			return nil, ferr(kTokTypes, "want %d int32 token types, one per token", len(v.tokens))
		}
		v.types = t
	} else {
		v.types = make([]int32, len(v.tokens))
		for i := range v.types {
			v.types[i] = tokNormal
		}
	}
	for _, s := range []struct {
		key string
		dst *int
	}{{kBOS, &v.bos}, {kEOS, &v.eos}, {kPad, &v.pad}} {
		id, ok, err := g.Uint(s.key)
		if err != nil {
			return nil, err
		}
		if ok {
			if id >= uint64(len(v.tokens)) {
				return nil, ferr(s.key, "%d is outside the %d tokens", id, len(v.tokens))
			}
			*s.dst = int(id)
		}
	}
	if v.chatTemplate, _, err = g.Str(kTemplate); err != nil {
		return nil, err
	}
	if v.prompt, _, err = g.Str(kPrompt); err != nil {
		return nil, err
	}
	return v, nil
}

// isByteVocab reports whether v is cir's byte vocabulary (written by hfVocab for a toy model).
func (v *vocab) isByteVocab() bool {
	if len(v.tokens) < 259 || len(v.merges) != 0 {
		return false
	}
	for b := range 256 {
		if v.tokens[b] != byteLevel[b] {
			return false
		}
	}
	for i, s := range byteSpecials {
		if v.tokens[256+i] != s {
			return false
		}
	}
	for i := 259; i < len(v.tokens); i++ {
		if v.types[i] != tokUnused {
			return false
		}
	}
	return true
}

// qwenPattern is the Qwen2 pre-tokenizer's split regex (tokenizer.json's pre_tokenizer), which
// llama.cpp's "qwen2" pre-tokenizer implements.
const qwenPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// writeHF writes v as Hugging Face tokenizer files into dir: cir's byte-vocabulary marker for
// a byte vocabulary, else a Qwen2 tokenizer.json (normal tokens in the BPE vocabulary, control
// and user-defined tokens as added tokens, special for control ones; unused ids left out);
// and a tokenizer_config.json with the special tokens and the chat template.
func (v *vocab) writeHF(dir string, maxLen int) error {
	tc := map[string]any{
		"add_bos_token":                false,
		"add_prefix_space":             false,
		"clean_up_tokenization_spaces": false,
		"errors":                       "replace",
		"model_max_length":             maxLen,
		"split_special_tokens":         false,
		"bos_token":                    nil,
		"unk_token":                    nil,
	}
	name := func(id int) any {
		if id < 0 {
			return nil
		}
		return v.tokens[id]
	}
	tc["eos_token"] = name(v.eos)
	tc["pad_token"] = name(v.pad)
	if v.bos >= 0 {
		tc["bos_token"] = name(v.bos)
	}
	if v.chatTemplate != "" {
		tc["chat_template"] = v.chatTemplate
	}
	if v.prompt != "" {
		if err := os.WriteFile(filepath.Join(dir, promptFile), []byte(v.prompt), 0o644); err != nil {
			return err
		}
	}
	if v.isByteVocab() {
		if err := tokenizer.NewByte().Save(dir); err != nil {
			return err
		}
		return writeJSON(filepath.Join(dir, "tokenizer_config.json"), tc)
	}
	type added struct {
		ID         int    `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	}
	var adds []added
	vocabMap := map[string]int{}
	decoder := map[string]added{}
	for id, s := range v.tokens {
		switch v.types[id] {
		case tokUnused:
		case tokControl, tokUserDefined:
			a := added{ID: id, Content: s, Special: v.types[id] == tokControl}
			adds = append(adds, a)
			decoder[fmt.Sprint(id)] = a
		default:
			if old, dup := vocabMap[s]; dup {
				return fmt.Errorf("token %q has ids %d and %d", s, old, id)
			}
			vocabMap[s] = id
		}
	}
	merges := make([][2]string, len(v.merges))
	for i, m := range v.merges {
		a, b, ok := strings.Cut(m, " ")
		if !ok {
			return fmt.Errorf("%s item %d: %q is not two tokens separated by a space", kMerges, i, m)
		}
		merges[i] = [2]string{a, b}
	}
	byteLevelStep := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
	tj := map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": adds,
		"normalizer":   map[string]any{"type": "NFC"},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]string{"Regex": qwenPattern}, "behavior": "Isolated", "invert": false},
			byteLevelStep,
		}},
		"post_processor": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocabMap, "merges": merges,
		},
	}
	if err := writeJSON(filepath.Join(dir, "tokenizer.json"), tj); err != nil {
		return err
	}
	tc["added_tokens_decoder"] = decoder
	tc["tokenizer_class"] = "Qwen2Tokenizer"
	return writeJSON(filepath.Join(dir, "tokenizer_config.json"), tc)
}

// writeJSON writes v as indented JSON without HTML escaping.
func writeJSON(path string, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
