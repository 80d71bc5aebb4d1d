package reward

import (
	"strings"
)

// tokKind is the kind of a lexical token of a normalized answer.
type tokKind uint8

const (
	tEOF  tokKind = iota
	tNum          // digits with at most one '.', thousands separators already removed
	tWord         // a run of ASCII letters
	tCmd          // a LaTeX command without its backslash: "frac", "{", "}", "\\", ","
	tSym          // one punctuation character
)

// token is one lexical token; space says whether whitespace preceded it.
type token struct {
	kind  tokKind
	text  string
	space bool
}

// lex splits a normalized answer into tokens. It never fails: unknown bytes become symbols.
func lex(s string) []token {
	toks := make([]token, 0, len(s)/2+2)
	space := false
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			space = true
			i++
			continue
		case isDigit(c) || (c == '.' && i+1 < len(s) && isDigit(s[i+1])):
			j := i
			dot := false
			for j < len(s) {
				if isDigit(s[j]) {
					j++
				} else if s[j] == '.' && !dot && j+1 < len(s) && isDigit(s[j+1]) {
					dot = true
					j++
				} else if s[j] == ',' && !dot && thousandsAt(s, i, j) {
					j++
				} else {
					break
				}
			}
			toks = append(toks, token{tNum, strings.ReplaceAll(s[i:j], ",", ""), space})
			i = j
		case isLetter(c):
			j := i
			for j < len(s) && isLetter(s[j]) {
				j++
			}
			toks = append(toks, token{tWord, s[i:j], space})
			i = j
		case c == '\\':
			j := i + 1
			for j < len(s) && isLetter(s[j]) {
				j++
			}
			if j == i+1 { // a control symbol: \{ \} \\ \, \| ...
				if j < len(s) {
					j++
				}
			}
			name := s[i+1 : j]
			toks = append(toks, token{tCmd, name, space})
			i = j
		default:
			toks = append(toks, token{tSym, s[i : i+1], space})
			i++
		}
		space = false
	}
	return append(toks, token{kind: tEOF})
}

// thousandsAt reports whether the comma at s[j] inside the number starting at s[start] is a
// thousands separator: the integer part so far has 1–3 digits (or is already grouped) and the
// comma is followed by exactly three digits and then no further digit. A list like "3, 5, 7"
// (space after the comma) or "1,2" is not grouped.
func thousandsAt(s string, start, j int) bool {
	if j+4 > len(s) || !isDigit(s[j+1]) || !isDigit(s[j+2]) || !isDigit(s[j+3]) {
		return false
	}
	if j+4 < len(s) && isDigit(s[j+4]) {
		return false
	}
	// Right after an opening bracket or another comma the comma separates items: [3,193].
	k := start - 1
	for k >= 0 && s[k] == ' ' {
		k--
	}
	if k >= 0 && strings.IndexByte("([{,;", s[k]) >= 0 {
		return false
	}
	first := strings.IndexByte(s[start:j], ',')
	if first < 0 {
		first = j - start
	}
	// The first group has 1–3 digits and does not start with 0 ("0,123" is a list).
	return first >= 1 && first <= 3 && s[start] != '0'
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
