package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ErrNoTokenizer is returned (wrapped) by Load for a directory holding neither a
// tokenizer.json nor the byte tokenizer's marker file.
var ErrNoTokenizer = errors.New("no tokenizer in directory")

// FormatError reports a tokenizer file that cannot be used: the file, the JSON field at fault
// and why.
type FormatError struct {
	File  string // path of the file
	Field string // JSON field, e.g. "model.merges[12]"
	Err   error
}

// Error returns the file, the field and the reason.
func (e *FormatError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("tokenizer %s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("tokenizer %s: field %s: %v", e.File, e.Field, e.Err)
}

// Unwrap returns the reason.
func (e *FormatError) Unwrap() error { return e.Err }

// Load opens a tokenizer: a tokenizer.json file, the byte tokenizer's marker file
// (ByteMarker), or a model directory holding one of them (the marker wins).
func Load(pathOrDir string) (Tokenizer, error) {
	st, err := os.Stat(pathOrDir)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	path := pathOrDir
	if st.IsDir() {
		path = filepath.Join(pathOrDir, ByteMarker)
		if _, err := os.Stat(path); err != nil {
			path = filepath.Join(pathOrDir, "tokenizer.json")
			if _, err := os.Stat(path); err != nil {
				return nil, fmt.Errorf("tokenizer: %s has no tokenizer.json or %s: %w", pathOrDir, ByteMarker, ErrNoTokenizer)
			}
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if filepath.Base(path) == ByteMarker {
		b, err := loadByte(path, data)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	t, err := ParseJSON(path, data)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// jsonTokenizer is the part of Hugging Face's tokenizer.json that is read.
type jsonTokenizer struct {
	AddedTokens []struct {
		ID         *int32 `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Special    bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	Decoder      json.RawMessage `json:"decoder"`
	Model        *struct {
		Type                    string           `json:"type"`
		Dropout                 *float64         `json:"dropout"`
		UnkToken                *string          `json:"unk_token"`
		ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string          `json:"end_of_word_suffix"`
		ByteFallback            bool             `json:"byte_fallback"`
		IgnoreMerges            bool             `json:"ignore_merges"`
		Vocab                   map[string]int32 `json:"vocab"`
		Merges                  json.RawMessage  `json:"merges"`
	} `json:"model"`
}

// component is a normalizer, pre-tokenizer or decoder entry.
type component struct {
	Type          string          `json:"type"`
	Normalizers   []component     `json:"normalizers"`
	Pretokenizers []component     `json:"pretokenizers"`
	Pattern       json.RawMessage `json:"pattern"`
	Behavior      string          `json:"behavior"`
	Invert        bool            `json:"invert"`
	AddPrefix     bool            `json:"add_prefix_space"`
	UseRegex      *bool           `json:"use_regex"`
}

// ParseJSON builds a tokenizer from the contents of a Hugging Face tokenizer.json; name is used
// in errors. It accepts a byte-level BPE model (no byte fallback, dropout, or subword affixes),
// an NFC or absent normalizer, the Qwen2 pre-tokenizer (or ByteLevel without its regex) and a
// ByteLevel or absent decoder; anything else is a *FormatError naming the field.
func ParseJSON(name string, data []byte) (*BPE, error) {
	bad := func(field, format string, a ...any) error {
		return &FormatError{File: name, Field: field, Err: fmt.Errorf(format, a...)}
	}
	var j jsonTokenizer
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, &FormatError{File: name, Err: fmt.Errorf("not valid JSON: %w", err)}
	}
	m := j.Model
	switch {
	case m == nil:
		return nil, bad("model", "missing")
	case m.Type != "BPE":
		return nil, bad("model.type", "%q is not supported (want \"BPE\")", m.Type)
	case m.Dropout != nil && *m.Dropout != 0:
		return nil, bad("model.dropout", "BPE dropout is not supported")
	case m.ByteFallback:
		return nil, bad("model.byte_fallback", "byte fallback is not supported")
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return nil, bad("model.continuing_subword_prefix", "not supported")
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return nil, bad("model.end_of_word_suffix", "not supported")
	case m.IgnoreMerges:
		return nil, bad("model.ignore_merges", "not supported")
	case len(m.Vocab) == 0:
		return nil, bad("model.vocab", "missing or empty")
	}
	t := &BPE{addedID: map[string]int32{}, seed: maphash.MakeSeed(), source: data}
	var err error
	if t.nfc, err = parseNormalizer(j.Normalizer); err != nil {
		return nil, bad("normalizer", "%v", err)
	}
	if t.pre, err = parsePreTokenizer(j.PreTokenizer); err != nil {
		return nil, bad("pre_tokenizer", "%v", err)
	}
	if len(j.Decoder) > 0 && string(j.Decoder) != "null" {
		var d component
		if err := json.Unmarshal(j.Decoder, &d); err != nil || d.Type != "ByteLevel" {
			return nil, bad("decoder", "only ByteLevel is supported")
		}
	}

	maxID := int32(-1)
	for tok, id := range m.Vocab {
		if id < 0 {
			return nil, bad("model.vocab", "token %q has negative id %d", tok, id)
		}
		maxID = max(maxID, id)
	}
	for i, a := range j.AddedTokens {
		switch {
		case a.ID == nil || *a.ID < 0:
			return nil, bad(fmt.Sprintf("added_tokens[%d].id", i), "missing or negative")
		case a.Content == "":
			return nil, bad(fmt.Sprintf("added_tokens[%d].content", i), "empty")
		case a.SingleWord:
			return nil, bad(fmt.Sprintf("added_tokens[%d].single_word", i), "single_word tokens are not supported (%q)", a.Content)
		}
		maxID = max(maxID, *a.ID)
	}
	if maxID >= 1<<24 {
		return nil, bad("model.vocab", "id %d is implausibly large", maxID)
	}
	t.tokens = make([][]byte, maxID+1)
	vocab := make(map[string]int32, len(m.Vocab))
	for tok, id := range m.Vocab {
		if t.tokens[id] != nil {
			return nil, bad("model.vocab", "id %d is used twice", id)
		}
		t.tokens[id] = byteLevelBytes(tok)
		vocab[tok] = id
	}
	for b := 0; b < 256; b++ {
		id, ok := vocab[string(byteToRune[b])]
		if !ok {
			return nil, bad("model.vocab", "lacks the byte-level token for byte 0x%02x (%q); not a byte-level vocabulary", b, string(byteToRune[b]))
		}
		t.byteID[b] = id
	}
	for i, a := range j.AddedTokens {
		id := *a.ID
		if old, ok := vocab[a.Content]; ok && old != id {
			return nil, bad(fmt.Sprintf("added_tokens[%d]", i), "%q has id %d but the vocabulary gives it %d", a.Content, id, old)
		}
		// Hugging Face's ByteLevel decoder maps every token's characters through the byte table,
		// added tokens' too.
		t.tokens[id] = byteLevelBytes(a.Content)
		t.addedID[a.Content] = id
		t.added = append(t.added, addedToken{content: a.Content, id: id, special: a.Special, lstrip: a.LStrip, rstrip: a.RStrip})
		t.first[a.Content[0]] = true
	}
	sort.SliceStable(t.added, func(a, b int) bool { return len(t.added[a].content) > len(t.added[b].content) })
	for _, s := range []string{"<|im_end|>", "<|endoftext|>"} {
		if id, ok := t.addedID[s]; ok {
			t.eos = append(t.eos, id)
		}
	}

	pairs, err := parseMerges(m.Merges)
	if err != nil {
		return nil, bad("model.merges", "%v", err)
	}
	t.merges = make(map[uint64]merge, len(pairs))
	for r, p := range pairs {
		field := fmt.Sprintf("model.merges[%d]", r)
		a, ok1 := vocab[p[0]]
		b, ok2 := vocab[p[1]]
		c, ok3 := vocab[p[0]+p[1]]
		if !ok1 || !ok2 || !ok3 {
			return nil, bad(field, "merge %q + %q uses a token missing from model.vocab", p[0], p[1])
		}
		// A repeated pair takes its last rank, as in Hugging Face's merge map.
		t.merges[uint64(uint32(a))<<32|uint64(uint32(b))] = merge{rank: uint32(r), id: c}
	}
	return t, nil
}

// parseMerges reads merges in either format: "a b" strings or ["a", "b"] pairs.
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var pairs [][2]string
	if err := json.Unmarshal(raw, &pairs); err == nil {
		return pairs, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err != nil {
		return nil, fmt.Errorf("want a list of \"a b\" strings or [a, b] pairs: %w", err)
	}
	pairs = make([][2]string, len(strs))
	for i, s := range strs {
		a, b, ok := strings.Cut(s, " ")
		if !ok || a == "" || b == "" || strings.Contains(b, " ") {
			return nil, fmt.Errorf("entry %d (%q) is not two tokens separated by one space", i, s)
		}
		pairs[i] = [2]string{a, b}
	}
	return pairs, nil
}

func parseNormalizer(raw json.RawMessage) (nfc bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return false, nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return false, err
	}
	switch c.Type {
	case "NFC":
		return true, nil
	case "Sequence":
		for _, n := range c.Normalizers {
			if n.Type != "NFC" {
				return false, fmt.Errorf("normalizer %q is not supported (only NFC)", n.Type)
			}
			nfc = true
		}
		return nfc, nil
	}
	return false, fmt.Errorf("%q is not supported (only NFC)", c.Type)
}

func parsePreTokenizer(raw json.RawMessage) (preTok, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, errors.New("missing (a byte-level pre-tokenizer is required)")
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return 0, err
	}
	byteLevel := func(c component) error {
		if c.Type != "ByteLevel" {
			return fmt.Errorf("%q is not supported here (want ByteLevel)", c.Type)
		}
		if c.AddPrefix {
			return errors.New("ByteLevel add_prefix_space is not supported")
		}
		if c.UseRegex == nil || *c.UseRegex {
			return errors.New("ByteLevel with its GPT-2 regex (use_regex) is not supported")
		}
		return nil
	}
	if c.Type == "ByteLevel" {
		return preWhole, byteLevel(c)
	}
	if c.Type != "Sequence" || len(c.Pretokenizers) != 2 {
		return 0, fmt.Errorf("%q is not supported (want the Qwen2 Sequence of Split and ByteLevel)", c.Type)
	}
	split := c.Pretokenizers[0]
	var pat struct{ Regex string }
	if split.Type != "Split" || json.Unmarshal(split.Pattern, &pat) != nil {
		return 0, errors.New("pretokenizers[0] must be a Split with a Regex pattern")
	}
	if pat.Regex != qwenPattern {
		return 0, fmt.Errorf("pretokenizers[0].pattern %q is not the Qwen2 pattern", pat.Regex)
	}
	if split.Behavior != "Isolated" || split.Invert {
		return 0, errors.New("pretokenizers[0] must have behavior Isolated and invert false")
	}
	if err := byteLevel(c.Pretokenizers[1]); err != nil {
		return 0, fmt.Errorf("pretokenizers[1]: %w", err)
	}
	return preQwen, nil
}

// Save writes the tokenizer.json t was parsed from into dir (created if needed), so that
// Load(dir) returns an equal tokenizer.
func (t *BPE) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tokenizer: save: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), t.source, 0o644); err != nil {
		return fmt.Errorf("tokenizer: save: %w", err)
	}
	return nil
}
