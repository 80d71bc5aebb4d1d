package tokenizer

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// preTok is how a BPE tokenizer splits normalized text into words.
type preTok int

const (
	preQwen  preTok = iota // the Qwen2 Split regex, then ByteLevel
	preWhole               // ByteLevel alone without its regex: the whole segment is one word
)

// addedToken is an entry of tokenizer.json's added_tokens.
type addedToken struct {
	content        string
	id             int32
	special        bool
	lstrip, rstrip bool
}

// BPE is a byte-level BPE tokenizer loaded from a Hugging Face tokenizer.json (the Qwen2
// family). Its methods are safe for concurrent use.
type BPE struct {
	tokens  [][]byte         // id → the raw bytes it decodes to (nil: unused id)
	byteID  [256]int32       // byte → id of its one-byte token
	merges  map[uint64]merge // (left id, right id) → rank and merged id
	added   []addedToken     // longest content first
	addedID map[string]int32 // content → id of every added token
	first   [256]bool        // first bytes of added tokens
	nfc     bool
	pre     preTok
	eos     []int32
	source  []byte // the tokenizer.json it was parsed from, for Save

	cache [cacheSize]atomic.Pointer[cacheEntry] // direct-mapped word cache, lock-free
	seed  maphash.Seed
}

// cacheEntry is a word and its ids.
type cacheEntry struct {
	word string
	ids  []int32
}

// merge is the result of merging a pair: its rank (lower merges first) and the new token.
type merge struct {
	rank uint32
	id   int32
}

// cacheSize is the number of slots of the word cache (a power of two); words longer than
// maxCachedLen bytes are not cached.
const (
	cacheSize    = 1 << 16
	maxCachedLen = 64
)

// Encode returns the ids of text: added tokens in the text (special or not) map to their ids,
// the rest is NFC-normalized, pre-tokenized and byte-pair encoded, as Hugging Face's
// tokenizer.encode(text, add_special_tokens=False) does. Ill-formed UTF-8 in text is kept
// byte for byte (each bad byte pre-tokenizes as a symbol), so Decode shows it as U+FFFD.
func (t *BPE) Encode(text string) []int32 { return t.encode(text, true) }

// EncodePlain is Encode with special tokens treated as plain text (Hugging Face's
// split_special_tokens=True); added tokens that are not special still map to their ids.
func (t *BPE) EncodePlain(text string) []int32 { return t.encode(text, false) }

func (t *BPE) encode(text string, specials bool) []int32 {
	out := make([]int32, 0, len(text)/3+1)
	for len(text) > 0 {
		start, end, id := t.findAdded(text, specials)
		out = t.encodeSegment(text[:start], out)
		if id < 0 {
			break
		}
		out = append(out, id)
		text = text[end:]
	}
	return out
}

// findAdded finds the leftmost-longest added token in text and returns its extent (widened by
// lstrip/rstrip white space) and id, or (len(text), len(text), -1).
func (t *BPE) findAdded(text string, specials bool) (start, end int, id int32) {
	if len(t.added) == 0 {
		return len(text), len(text), -1
	}
	for i := 0; i < len(text); i++ {
		if !t.first[text[i]] {
			continue
		}
		for k := range t.added {
			a := &t.added[k]
			if (a.special && !specials) || len(text)-i < len(a.content) || text[i:i+len(a.content)] != a.content {
				continue
			}
			start, end = i, i+len(a.content)
			if a.lstrip {
				for start > 0 {
					r, w := utf8.DecodeLastRuneInString(text[:start])
					if !unicode.IsSpace(r) {
						break
					}
					start -= w
				}
			}
			if a.rstrip {
				for end < len(text) {
					r, w := utf8.DecodeRuneInString(text[end:])
					if !unicode.IsSpace(r) {
						break
					}
					end += w
				}
			}
			return start, end, a.id
		}
	}
	return len(text), len(text), -1
}

// encodeSegment appends the ids of a text segment that holds no added token.
func (t *BPE) encodeSegment(s string, out []int32) []int32 {
	if s == "" {
		return out
	}
	if t.nfc && !isASCII(s) {
		s = norm.NFC.String(s)
	}
	if t.pre == preWhole {
		return t.appendWord(s, out)
	}
	for i := 0; i < len(s); {
		n := matchQwen(s, i)
		out = t.appendWord(s[i:i+n], out)
		i += n
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// appendWord appends the BPE ids of one pre-tokenized word, through the cache.
func (t *BPE) appendWord(w string, out []int32) []int32 {
	if len(w) == 1 {
		return append(out, t.byteID[w[0]])
	}
	if len(w) > maxCachedLen {
		return t.bpe(w, out)
	}
	slot := &t.cache[maphash.String(t.seed, w)&(cacheSize-1)]
	if e := slot.Load(); e != nil && e.word == w {
		return append(out, e.ids...)
	}
	n := len(out)
	out = t.bpeSmall(w, out)
	slot.Store(&cacheEntry{word: strings.Clone(w), ids: slices.Clone(out[n:])})
	return out
}

// noMerge marks a pair without a merge.
var noMerge = merge{rank: ^uint32(0)}

// pairMerge returns the merge of the pair (a, b), or noMerge.
func (t *BPE) pairMerge(a, b int32) merge {
	if m, ok := t.merges[uint64(uint32(a))<<32|uint64(uint32(b))]; ok {
		return m
	}
	return noMerge
}

// bpeSmall is bpe for words of at most maxCachedLen bytes, without allocating: it keeps the
// merge of each adjacent pair in an array and applies the lowest-ranked (leftmost on ties)
// until none is left, which is the order of bpe's heap.
func (t *BPE) bpeSmall(w string, out []int32) []int32 {
	var idBuf [maxCachedLen]int32
	var pairBuf [maxCachedLen]merge
	n := len(w)
	ids, pairs := idBuf[:n], pairBuf[:n]
	for i := 0; i < n; i++ {
		ids[i] = t.byteID[w[i]]
	}
	for i := 0; i+1 < n; i++ {
		pairs[i] = t.pairMerge(ids[i], ids[i+1])
	}
	for n > 1 {
		best := -1
		for i := 0; i+1 < n; i++ {
			if pairs[i].rank != noMerge.rank && (best < 0 || pairs[i].rank < pairs[best].rank) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		ids[best] = pairs[best].id
		copy(ids[best+1:n], ids[best+2:n])
		copy(pairs[best:n-1], pairs[best+1:n-1])
		n--
		if best+1 < n {
			pairs[best] = t.pairMerge(ids[best], ids[best+1])
		}
		if best > 0 {
			pairs[best-1] = t.pairMerge(ids[best-1], ids[best])
		}
	}
	return append(out, ids[:n]...)
}

// symbol is a node of the doubly linked list of a word's current tokens.
type symbol struct {
	id         int32
	prev, next int32 // indices, -1 at the ends
}

// candidate is a possible merge of the symbol at pos with its successor.
type candidate struct {
	rank uint32
	pos  int32
	id   int32
}

func (a candidate) less(b candidate) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

// bpe appends the ids of word w: starting from its bytes, repeatedly apply the lowest-ranked
// merge among adjacent pairs, leftmost first on ties (Hugging Face's Word::merge_all).
func (t *BPE) bpe(w string, out []int32) []int32 {
	syms := make([]symbol, len(w))
	for i := 0; i < len(w); i++ {
		syms[i] = symbol{id: t.byteID[w[i]], prev: int32(i - 1), next: int32(i + 1)}
	}
	syms[len(w)-1].next = -1
	heap := make([]candidate, 0, len(w))
	push := func(c candidate) {
		heap = append(heap, c)
		for j := len(heap) - 1; j > 0; {
			p := (j - 1) / 2
			if !heap[j].less(heap[p]) {
				break
			}
			heap[j], heap[p] = heap[p], heap[j]
			j = p
		}
	}
	pop := func() candidate {
		top := heap[0]
		last := len(heap) - 1
		heap[0] = heap[last]
		heap = heap[:last]
		for j := 0; ; {
			l, m := 2*j+1, j
			if l < len(heap) && heap[l].less(heap[m]) {
				m = l
			}
			if l+1 < len(heap) && heap[l+1].less(heap[m]) {
				m = l + 1
			}
			if m == j {
				break
			}
			heap[j], heap[m] = heap[m], heap[j]
			j = m
		}
		return top
	}
	pair := func(pos int32) {
		s := &syms[pos]
		if s.next < 0 {
			return
		}
		if m, ok := t.merges[uint64(uint32(s.id))<<32|uint64(uint32(syms[s.next].id))]; ok {
			push(candidate{rank: m.rank, pos: pos, id: m.id})
		}
	}
	for i := range syms {
		pair(int32(i))
	}
	for len(heap) > 0 {
		c := pop()
		s := &syms[c.pos]
		if s.id < 0 || s.next < 0 {
			continue
		}
		m, ok := t.merges[uint64(uint32(s.id))<<32|uint64(uint32(syms[s.next].id))]
		if !ok || m.id != c.id {
			continue // stale: one side changed since the candidate was queued
		}
		right := &syms[s.next]
		s.id = c.id
		right.id = -1
		s.next = right.next
		if s.next >= 0 {
			syms[s.next].prev = c.pos
		}
		if s.prev >= 0 {
			pair(s.prev)
		}
		pair(c.pos)
	}
	for i := int32(0); i >= 0; i = syms[i].next {
		out = append(out, syms[i].id)
	}
	return out
}

// Decode returns the text of ids: token bytes concatenated, ill-formed UTF-8 replaced by
// U+FFFD (Hugging Face's decode with skip_special_tokens=False). Unknown ids are skipped.
func (t *BPE) Decode(ids []int32) string {
	var b []byte
	for _, id := range ids {
		b = t.appendBytes(b, id)
	}
	return string(appendLossy(nil, b))
}

// appendBytes appends the raw bytes of token id (nothing for an unknown id).
func (t *BPE) appendBytes(dst []byte, id int32) []byte {
	if id < 0 || int(id) >= len(t.tokens) {
		return dst
	}
	return append(dst, t.tokens[id]...)
}

// VocabSize returns one more than the largest token id (vocabulary and added tokens).
func (t *BPE) VocabSize() int { return len(t.tokens) }

// TokenID returns the id of an added token such as "<|im_end|>".
func (t *BPE) TokenID(special string) (int32, bool) {
	id, ok := t.addedID[special]
	return id, ok
}

// EOS returns the ids that end a generation: <|im_end|> and <|endoftext|>, those present.
func (t *BPE) EOS() []int32 { return append([]int32(nil), t.eos...) }

// resetCache empties the word cache (for benchmarks).
func (t *BPE) resetCache() {
	for i := range t.cache {
		t.cache[i].Store(nil)
	}
}
