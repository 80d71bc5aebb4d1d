package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// qwenPattern is the Split regex of the Qwen2 pre-tokenizer. Go's regexp has no lookahead, so
// splitQwen implements it as a scanner with the semantics of the backtracking engine Hugging
// Face uses (Oniguruma): alternatives tried in order, greedy quantifiers, \s the Unicode
// White_Space property, (?i) with Unicode case folding.
const qwenPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// Character classes of the pattern.
const (
	clsL    = 1 << iota // \p{L}
	clsN                // \p{N}
	clsS                // \s (White_Space)
	clsCRLF             // [\r\n]
)

// asciiClass holds the classes of the ASCII characters.
var asciiClass = func() (t [utf8.RuneSelf]uint8) {
	for c := 0; c < utf8.RuneSelf; c++ {
		t[c] = classOf(rune(c))
	}
	return t
}()

func classOf(r rune) uint8 {
	var c uint8
	if unicode.IsLetter(r) {
		c |= clsL
	}
	if unicode.IsNumber(r) {
		c |= clsN
	}
	if unicode.IsSpace(r) {
		c |= clsS
	}
	if r == '\r' || r == '\n' {
		c |= clsCRLF
	}
	return c
}

// runeAt decodes the character at s[i] and returns it, its width and its classes. Ill-formed
// UTF-8 decodes as U+FFFD of width 1 (a symbol).
func runeAt(s string, i int) (rune, int, uint8) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1, asciiClass[c]
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	return r, w, classOf(r)
}

// runOf returns the end of the run of characters from i that have some class of want (any
// class when want is 0) and no class of reject.
func runOf(s string, i int, want, reject uint8) int {
	for i < len(s) {
		if b := s[i]; b < utf8.RuneSelf {
			if c := asciiClass[b]; c&reject != 0 || (want != 0 && c&want == 0) {
				return i
			}
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		if c := classOf(r); c&reject != 0 || (want != 0 && c&want == 0) {
			return i
		}
		i += w
	}
	return i
}

func isLetter(c uint8) bool { return c&clsL != 0 }

// contraction returns the length of a match of (?i:s|t|re|ve|m|ll|d) at s[i:], or 0. Under
// Unicode case folding 's' also matches U+017F (ſ).
func contraction(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	lower := func(j int) byte {
		if j >= len(s) {
			return 0
		}
		return s[j] | 0x20
	}
	switch lower(i) {
	case 's', 't', 'm', 'd':
		return 1
	case 'r', 'v':
		if lower(i+1) == 'e' {
			return 2
		}
	case 'l':
		if lower(i+1) == 'l' {
			return 2
		}
	}
	if len(s)-i >= 2 && s[i] == 0xC5 && s[i+1] == 0xBF { // ſ
		return 2
	}
	return 0
}

// matchQwen returns the length in bytes of the pre-tokenizer's match at s[i:] (i < len(s)).
// Every character is covered by some alternative, so the match is never empty.
func matchQwen(s string, i int) int {
	r, w, c := runeAt(s, i)
	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if r == '\'' {
		if n := contraction(s, i+1); n > 0 {
			return 1 + n
		}
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if isLetter(c) {
		return runOf(s, i+w, clsL, 0) - i
	}
	if c&(clsN|clsCRLF) == 0 && i+w < len(s) {
		if _, w2, c2 := runeAt(s, i+w); isLetter(c2) {
			return runOf(s, i+w+w2, clsL, 0) - i
		}
	}
	// \p{N}
	if c&clsN != 0 {
		return w
	}
	// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
	j := i
	if r == ' ' {
		j++
	}
	if e := runOf(s, j, 0, clsL|clsN|clsS); e > j {
		return runOf(s, e, clsCRLF, 0) - i
	}
	// Here s[i] is white space. \s*[\r\n]+ ends after the run's last line break.
	e, nl := i, -1
	for e < len(s) {
		_, w, c := runeAt(s, e)
		if c&clsS == 0 {
			break
		}
		e += w
		if c&clsCRLF != 0 {
			nl = e
		}
	}
	if nl >= 0 {
		return nl - i
	}
	// \s+(?!\S): the whole run at the end of the text, else the run less its last character.
	if e == len(s) {
		return e - i
	}
	if _, lw := utf8.DecodeLastRuneInString(s[i:e]); e-lw > i {
		return e - lw - i
	}
	// \s+
	return e - i
}

// splitQwen returns the pieces of s under the Qwen2 pre-tokenizer (Split, Isolated).
func splitQwen(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		n := matchQwen(s, i)
		out = append(out, s[i:i+n])
		i += n
	}
	return out
}
