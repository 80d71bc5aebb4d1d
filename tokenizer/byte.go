package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ByteMarker is the file Byte.Save writes into a model directory; Load finds the byte
// tokenizer through it.
const ByteMarker = "cir_byte_tokenizer.json"

// byteSpecials are the byte tokenizer's special tokens, with ids 256, 257, 258.
var byteSpecials = []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}

// Byte is the tiny vocabulary for toy models: ids 0–255 are the bytes, 256 <|endoftext|>,
// 257 <|im_start|>, 258 <|im_end|>. There is no normalization, so Decode(Encode(x)) == x for
// valid UTF-8 x.
type Byte struct{}

// NewByte returns the byte tokenizer.
func NewByte() *Byte { return &Byte{} }

// byteMarker is the content of the marker file.
type byteMarker struct {
	Type     string   `json:"type"`
	Specials []string `json:"specials"`
}

// Save writes the marker file ByteMarker into dir (created if needed), so that Load(dir)
// returns the byte tokenizer.
func (b *Byte) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tokenizer: save byte vocabulary: %w", err)
	}
	data, _ := json.MarshalIndent(byteMarker{Type: "cir-byte", Specials: byteSpecials}, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, ByteMarker), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("tokenizer: save byte vocabulary: %w", err)
	}
	return nil
}

func loadByte(path string, data []byte) (*Byte, error) {
	var m byteMarker
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, &FormatError{File: path, Err: fmt.Errorf("not valid JSON: %w", err)}
	}
	if m.Type != "cir-byte" {
		return nil, &FormatError{File: path, Field: "type", Err: fmt.Errorf("%q, want \"cir-byte\"", m.Type)}
	}
	if strings.Join(m.Specials, " ") != strings.Join(byteSpecials, " ") {
		return nil, &FormatError{File: path, Field: "specials", Err: fmt.Errorf("%q, want %q", m.Specials, byteSpecials)}
	}
	return &Byte{}, nil
}

// Encode returns the bytes of text as ids, with the special tokens written in it as 256–258.
func (b *Byte) Encode(text string) []int32 {
	out := make([]int32, 0, len(text))
	for i := 0; i < len(text); {
		if text[i] == '<' {
			if k := byteSpecialAt(text[i:]); k >= 0 {
				out = append(out, int32(256+k))
				i += len(byteSpecials[k])
				continue
			}
		}
		out = append(out, int32(text[i]))
		i++
	}
	return out
}

func byteSpecialAt(s string) int {
	for k, sp := range byteSpecials {
		if strings.HasPrefix(s, sp) {
			return k
		}
	}
	return -1
}

// EncodePlain returns the bytes of text as ids.
func (b *Byte) EncodePlain(text string) []int32 {
	out := make([]int32, len(text))
	for i := 0; i < len(text); i++ {
		out[i] = int32(text[i])
	}
	return out
}

// Decode returns the text of ids: bytes concatenated with ill-formed UTF-8 replaced by U+FFFD,
// specials as their text. Ids outside 0–258 are skipped.
func (b *Byte) Decode(ids []int32) string {
	var buf []byte
	for _, id := range ids {
		buf = b.appendBytes(buf, id)
	}
	return string(appendLossy(nil, buf))
}

func (b *Byte) appendBytes(dst []byte, id int32) []byte {
	switch {
	case id >= 0 && id < 256:
		return append(dst, byte(id))
	case id >= 256 && int(id) < 256+len(byteSpecials):
		return append(dst, byteSpecials[id-256]...)
	}
	return dst
}

// VocabSize returns 259.
func (b *Byte) VocabSize() int { return 256 + len(byteSpecials) }

// TokenID returns the id of <|endoftext|>, <|im_start|> or <|im_end|>.
func (b *Byte) TokenID(special string) (int32, bool) {
	for k, sp := range byteSpecials {
		if sp == special {
			return int32(256 + k), true
		}
	}
	return 0, false
}

// EOS returns the ids of <|im_end|> and <|endoftext|>.
func (b *Byte) EOS() []int32 { return []int32{258, 256} }
