// Package tokenizer turns text into token ids and back: Qwen2's byte-level BPE loaded from a
// Hugging Face tokenizer.json (encoding identical to Hugging Face's), a tiny byte vocabulary
// for toy models, a streaming decoder that never splits a UTF-8 character, and chat templates
// (a checkpoint's own, rendered by package jinja, or the built-in Qwen2.5 one).
package tokenizer

// Tokenizer is what the rest of cir uses to encode and decode text. Implementations are safe
// for concurrent use.
type Tokenizer interface {
	// Encode returns the ids of text; special tokens written in the text map to their ids.
	Encode(text string) []int32
	// EncodePlain returns the ids of text with special tokens treated as plain text.
	EncodePlain(text string) []int32
	// Decode returns the text of ids, ill-formed UTF-8 replaced by U+FFFD.
	Decode(ids []int32) string
	// VocabSize returns the number of ids (one more than the largest).
	VocabSize() int
	// TokenID returns the id of a special token such as "<|im_end|>".
	TokenID(special string) (int32, bool)
	// EOS returns the ids that end a generation (<|im_end|>, <|endoftext|>).
	EOS() []int32
	// Save writes the files Load needs into a model directory.
	Save(dir string) error
}

// byteSource is implemented by tokenizers that can give each token's raw bytes, which the
// stream decoder needs to hold back incomplete characters.
type byteSource interface {
	appendBytes(dst []byte, id int32) []byte
}

var (
	_ Tokenizer  = (*BPE)(nil)
	_ Tokenizer  = (*Byte)(nil)
	_ byteSource = (*BPE)(nil)
	_ byteSource = (*Byte)(nil)
)
