package tokenizer

import "unicode/utf8"

// byteToRune maps each byte to the printable character GPT-2's byte-level BPE uses for it
// (bytes_to_unicode): printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100
// and up, in byte order.
var byteToRune [256]rune

// runeToByte inverts byteToRune; runes outside the table are absent.
var runeToByte = map[rune]byte{}

func init() {
	n := rune(0)
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = 256 + n
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
	}
}

// byteLevelBytes returns the raw bytes a byte-level token string stands for, the way Hugging
// Face's ByteLevel decoder does: every character is mapped back through the byte table, and a
// token with any character outside the table stands for its own UTF-8 bytes.
func byteLevelBytes(tok string) []byte {
	out := make([]byte, 0, len(tok))
	for _, r := range tok {
		b, ok := runeToByte[r]
		if !ok {
			return []byte(tok)
		}
		out = append(out, b)
	}
	return out
}

// subpartLen returns the length of the maximal prefix of b (non-empty) that is a prefix of some
// well-formed UTF-8 sequence, and how many bytes that sequence needs in all. A lone byte that
// cannot start a sequence gives (1, 1).
func subpartLen(b []byte) (n, need int) {
	c := b[0]
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c < 0x80:
		return 1, 1
	case c >= 0xC2 && c <= 0xDF:
		need = 2
	case c == 0xE0:
		need, lo = 3, 0xA0
	case c == 0xED:
		need, hi = 3, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		need = 3
	case c == 0xF0:
		need, lo = 4, 0x90
	case c == 0xF4:
		need, hi = 4, 0x8F
	case c >= 0xF1 && c <= 0xF3:
		need = 4
	default:
		return 1, 1
	}
	n = 1
	if len(b) < 2 || b[1] < lo || b[1] > hi {
		return n, need
	}
	n = 2
	for n < need && n < len(b) && b[n] >= 0x80 && b[n] <= 0xBF {
		n++
	}
	return n, need
}

// appendLossy appends b to dst as UTF-8, replacing each maximal ill-formed subpart by U+FFFD:
// the substitution of Python's bytes.decode(errors="replace") and Rust's from_utf8_lossy,
// which Hugging Face's byte-level decoder uses.
func appendLossy(dst, b []byte) []byte {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		if r, size := utf8.DecodeRune(b[i:]); r != utf8.RuneError || size > 1 {
			dst = append(dst, b[i:i+size]...)
			i += size
			continue
		}
		n, _ := subpartLen(b[i:])
		dst = append(dst, "\uFFFD"...)
		i += n
	}
	return dst
}

// incompleteTail returns where a trailing incomplete (but so far well-formed) UTF-8 sequence
// starts in b, or len(b) when b does not end inside one.
func incompleteTail(b []byte) int {
	for k := 1; k <= 3 && k <= len(b); k++ {
		p := len(b) - k
		c := b[p]
		if c < 0x80 {
			return len(b)
		}
		if c < 0xC0 { // continuation byte: keep looking for the lead
			continue
		}
		n, need := subpartLen(b[p:])
		if n == k && need > k {
			return p
		}
		return len(b)
	}
	return len(b)
}
