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

// token is one lexical token; space says whether whitespace preceded it, nl whether that
// whitespace held more than spaces (a line break or a tab).
type token struct {
	kind      tokKind
	text      string
	space, nl bool
}

// lex splits a normalized answer into tokens. It never fails: unknown bytes become symbols.
func lex(s string) []token {
	toks := make([]token, 0, len(s)/2+2)
	space, nl := false, false
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			space = true
			nl = nl || c != ' '
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
				} else if s[j] == ' ' && !dot && spaceGroupAt(s, i, j) {
					j++
				} else {
					break
				}
			}
			text := s[i:j]
			if strings.ContainsAny(text, ", ") {
				text = strings.NewReplacer(",", "", " ", "").Replace(text)
			}
			toks = append(toks, token{tNum, text, space, nl})
			i = j
		case isLetter(c):
			j := i
			for j < len(s) && isLetter(s[j]) {
				j++
			}
			toks = append(toks, token{tWord, s[i:j], space, nl})
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
			toks = append(toks, token{tCmd, name, space, nl})
			i = j
		default:
			toks = append(toks, token{tSym, s[i : i+1], space, nl})
			i++
		}
		space, nl = false, false
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

// spaceGroupAt reports whether the space at s[j] inside the number starting at s[start]
// separates digit groups ("1 000", "12 345 678", also "1\,000" once normalized): the first
// group has 1–3 digits and does not start with 0, every group has three digits, and the
// number is not an exponent or subscript ("x^2 100"). The next group must not be followed by
// another digit or a fraction bar ("4 4/9" is a mixed number, not 44/9).
func spaceGroupAt(s string, start, j int) bool {
	if j+4 > len(s) || !isDigit(s[j+1]) || !isDigit(s[j+2]) || !isDigit(s[j+3]) {
		return false
	}
	if j+4 < len(s) && (isDigit(s[j+4]) || s[j+4] == '/') {
		return false
	}
	if start > 0 && (s[start-1] == '^' || s[start-1] == '_' || s[start-1] == '{' && start > 1 && (s[start-2] == '^' || s[start-2] == '_')) {
		return false
	}
	if strings.IndexByte(s[start:j], ',') >= 0 {
		return false
	}
	first := strings.IndexByte(s[start:j], ' ')
	if first < 0 {
		first = j - start
	}
	return first >= 1 && first <= 3 && s[start] != '0'
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
