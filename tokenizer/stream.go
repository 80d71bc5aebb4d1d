package tokenizer

import "strings"

// StreamDecoder turns ids into text one at a time without ever emitting part of a UTF-8
// character: bytes of a character still incomplete are held until the next id completes it
// (or shows it never will). The concatenation of all Add results and Flush equals
// Decode of all the ids. A StreamDecoder is not safe for concurrent use.
type StreamDecoder struct {
	t       Tokenizer
	src     byteSource
	pending []byte
	ids     []int32 // for tokenizers without byte access
	emitted int     // bytes of Decode(ids) already returned
}

// NewStreamDecoder returns a stream decoder for t.
func NewStreamDecoder(t Tokenizer) *StreamDecoder {
	d := &StreamDecoder{t: t}
	d.src, _ = t.(byteSource)
	return d
}

// Add appends one id and returns the text it completes (possibly empty).
func (d *StreamDecoder) Add(id int32) string {
	if d.src == nil {
		return d.addGeneric(id)
	}
	d.pending = d.src.appendBytes(d.pending, id)
	cut := incompleteTail(d.pending)
	if cut == 0 {
		return ""
	}
	out := string(appendLossy(nil, d.pending[:cut]))
	d.pending = append(d.pending[:0], d.pending[cut:]...)
	return out
}

// Flush returns the text still held (incomplete characters become U+FFFD) and resets the
// decoder for a new stream.
func (d *StreamDecoder) Flush() string {
	if d.src == nil {
		s := d.t.Decode(d.ids)[d.emitted:]
		d.ids, d.emitted = d.ids[:0], 0
		return s
	}
	out := string(appendLossy(nil, d.pending))
	d.pending = d.pending[:0]
	return out
}

// addGeneric serves tokenizers without byte access: it re-decodes all ids and returns the new
// text up to a trailing U+FFFD, which may still turn into a character.
func (d *StreamDecoder) addGeneric(id int32) string {
	d.ids = append(d.ids, id)
	s := d.t.Decode(d.ids)
	stable := strings.TrimRight(s, "\uFFFD")
	if len(stable) <= d.emitted || !strings.HasPrefix(stable, s[:d.emitted]) {
		return ""
	}
	out := stable[d.emitted:]
	d.emitted = len(stable)
	return out
}
