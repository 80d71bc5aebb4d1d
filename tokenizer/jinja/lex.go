package jinja

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

type tokKind uint8

const (
	tData tokKind = iota
	tVarBegin
	tVarEnd
	tBlockBegin
	tBlockEnd
	tName
	tString
	tInt
	tFloat
	tOp
	tEOF
)

type token struct {
	kind tokKind
	val  string // the text of a data, name or operator token; the decoded value of a string
	num  any    // int64 or float64 for number tokens
	line int
}

func (t token) String() string {
	switch t.kind {
	case tData:
		return "template data"
	case tVarBegin:
		return "'{{'"
	case tVarEnd:
		return "'}}'"
	case tBlockBegin:
		return "'{%'"
	case tBlockEnd:
		return "'%}'"
	case tString:
		return strconv.Quote(t.val)
	case tEOF:
		return "end of template"
	}
	return "'" + t.val + "'"
}

// isSpace is Python's str.isspace for one rune (which also counts the ASCII information
// separators U+001C..U+001F, unlike Go's unicode.IsSpace).
func isSpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

// rstripSpace is Python's str.rstrip() with no argument.
func rstripSpace(s string) string { return strings.TrimRightFunc(s, isSpace) }

// lstripSpace is Python's str.lstrip() with no argument.
func lstripSpace(s string) string { return strings.TrimLeftFunc(s, isSpace) }

// normalizeNewlines turns \r\n and \r into \n, as Jinja's lexer does with template text.
func normalizeNewlines(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// lexer splits a template source into tokens the way jinja2's lexer does, with its
// whitespace control: '-' on a tag strips the whitespace beside it, '+' keeps it,
// TrimBlocks drops the first newline after a block or comment tag, and LStripBlocks drops
// the spaces and tabs before a block or comment tag that starts a line.
type lexer struct {
	src  string
	pos  int
	line int
	opt  Options
	out  []token
	// lineStarting: the text consumed so far ends a line (or nothing was consumed).
	lineStarting bool
}

func lex(src string, opt Options) ([]token, error) {
	// Jinja drops one trailing newline of the source (keep_trailing_newline=False).
	switch {
	case strings.HasSuffix(src, "\r\n"):
		src = src[:len(src)-2]
	case strings.HasSuffix(src, "\n"), strings.HasSuffix(src, "\r"):
		src = src[:len(src)-1]
	}
	l := &lexer{src: src, line: 1, opt: opt, lineStarting: true}
	if err := l.run(); err != nil {
		return nil, err
	}
	l.out = append(l.out, token{kind: tEOF, line: l.line})
	return l.out, nil
}

func (l *lexer) errorf(format string, a ...any) error {
	return &Error{Line: l.line, Msg: fmt.Sprintf(format, a...)}
}

func (l *lexer) emitData(text string) {
	if text != "" {
		l.out = append(l.out, token{kind: tData, val: normalizeNewlines(text), line: l.line})
	}
}

// advance moves past n bytes, counting lines.
func (l *lexer) advance(n int) {
	s := l.src[l.pos : l.pos+n]
	l.line += strings.Count(s, "\n") + strings.Count(s, "\r") - strings.Count(s, "\r\n")
	l.pos += n
	if n > 0 {
		l.lineStarting = s[len(s)-1] == '\n'
	}
}

// stripBefore applies a tag's whitespace control to the text in front of it. block is true
// for block and comment tags (the ones LStripBlocks applies to).
func (l *lexer) stripBefore(text string, sign byte, block bool, lineStarting bool) string {
	switch {
	case sign == '-':
		return rstripSpace(text)
	case sign != '+' && l.opt.LStripBlocks && block:
		lpos := strings.LastIndexByte(text, '\n') + 1
		if lpos > 0 || lineStarting {
			rest := text[lpos:]
			if rest != "" && strings.TrimFunc(rest, isSpace) == "" {
				return text[:lpos]
			}
		}
	}
	return text
}

func (l *lexer) run() error {
	for l.pos < len(l.src) {
		rest := l.src[l.pos:]
		i := strings.Index(rest, "{")
		for i >= 0 && !(i+1 < len(rest) && (rest[i+1] == '{' || rest[i+1] == '%' || rest[i+1] == '#')) {
			j := strings.Index(rest[i+1:], "{")
			if j < 0 {
				i = -1
				break
			}
			i += 1 + j
		}
		if i < 0 {
			l.emitData(rest)
			l.advance(len(rest))
			return nil
		}
		kind := rest[i+1]
		var sign byte
		if i+2 < len(rest) && (rest[i+2] == '-' || rest[i+2] == '+') {
			sign = rest[i+2]
		}
		text := rest[:i]
		lineStarting := l.lineStarting
		// A raw block: {% raw %} ... {% endraw %}.
		if kind == '%' {
			if n, endSign, ok := rawBegin(rest[i:]); ok {
				l.emitData(l.stripBefore(text, sign, true, lineStarting))
				l.advance(i + n)
				if endSign == '-' {
					l.afterTag('-', true)
				}
				if err := l.raw(); err != nil {
					return err
				}
				continue
			}
		}
		l.emitData(l.stripBefore(text, sign, kind != '{', lineStarting))
		open := 2
		if sign != 0 {
			open = 3
		}
		l.advance(i + open)
		switch kind {
		case '#':
			if err := l.comment(); err != nil {
				return err
			}
		case '{':
			l.out = append(l.out, token{kind: tVarBegin, line: l.line})
			if err := l.tag(false); err != nil {
				return err
			}
		case '%':
			l.out = append(l.out, token{kind: tBlockBegin, line: l.line})
			if err := l.tag(true); err != nil {
				return err
			}
		}
	}
	return nil
}

// rawBegin reports whether s starts with a {% raw %} tag, its length and the sign before its
// '%}' ('-' or 0; Jinja keeps the newline after it even with TrimBlocks).
func rawBegin(s string) (int, byte, bool) {
	p := 2
	if p < len(s) && (s[p] == '-' || s[p] == '+') {
		p++
	}
	p = skipSpace(s, p)
	if !strings.HasPrefix(s[p:], "raw") {
		return 0, 0, false
	}
	p = skipSpace(s, p+3)
	var sign byte
	if p < len(s) && s[p] == '-' {
		sign = '-'
		p++
	}
	if !strings.HasPrefix(s[p:], "%}") {
		return 0, 0, false
	}
	return p + 2, sign, true
}

func skipSpace(s string, p int) int {
	for p < len(s) {
		r, n := utf8.DecodeRuneInString(s[p:])
		if !isSpace(r) {
			break
		}
		p += n
	}
	return p
}

// afterTag consumes the whitespace that a tag end removes: all of it after '-', one newline
// after a block or comment end with TrimBlocks, nothing after '+'.
func (l *lexer) afterTag(sign byte, block bool) {
	switch {
	case sign == '-':
		l.advance(skipSpace(l.src, l.pos) - l.pos)
	case sign == '+':
	case block && l.opt.TrimBlocks && strings.HasPrefix(l.src[l.pos:], "\n"):
		l.advance(1)
	}
}

// raw reads the text up to {% endraw %} as data.
func (l *lexer) raw() error {
	rest := l.src[l.pos:]
	for off := 0; ; {
		i := strings.Index(rest[off:], "{%")
		if i < 0 {
			return l.errorf("missing end of raw directive")
		}
		at := off + i
		p := at + 2
		var sign byte
		if p < len(rest) && (rest[p] == '-' || rest[p] == '+') {
			sign = rest[p]
			p++
		}
		p = skipSpace(rest, p)
		if !strings.HasPrefix(rest[p:], "endraw") {
			off = at + 2
			continue
		}
		p = skipSpace(rest, p+6)
		var esign byte
		if p < len(rest) && (rest[p] == '-' || rest[p] == '+') {
			esign = rest[p]
			p++
		}
		if !strings.HasPrefix(rest[p:], "%}") {
			off = at + 2
			continue
		}
		l.emitData(l.stripBefore(rest[:at], sign, true, l.lineStarting))
		l.advance(p + 2)
		l.afterTag(esign, true)
		return nil
	}
}

func (l *lexer) comment() error {
	rest := l.src[l.pos:]
	i := strings.Index(rest, "#}")
	if i < 0 {
		return l.errorf("missing end of comment tag")
	}
	var sign byte
	if i > 0 && (rest[i-1] == '-' || rest[i-1] == '+') {
		sign = rest[i-1]
	}
	l.advance(i + 2)
	l.afterTag(sign, true)
	return nil
}

// operators, longest first.
var operators = []string{"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "[", "]", "(", ")",
	"{", "}", "<", ">", "=", ".", ":", "|", ",", ";"}

// tag tokenizes the inside of a {{ }} or {% %} tag up to its end.
func (l *lexer) tag(block bool) error {
	var balance []byte
	start := l.line
	for {
		l.advance(skipSpace(l.src, l.pos) - l.pos)
		rest := l.src[l.pos:]
		if rest == "" {
			if block {
				return &Error{Line: start, Msg: "unexpected end of template: missing '%}'"}
			}
			return &Error{Line: start, Msg: "unexpected end of template: missing '}}'"}
		}
		if len(balance) == 0 {
			end, kind := "}}", tVarEnd
			if block {
				end, kind = "%}", tBlockEnd
			}
			var sign byte
			n := 0
			switch {
			case strings.HasPrefix(rest, "-"+end):
				sign, n = '-', 3
			case block && strings.HasPrefix(rest, "+"+end):
				sign, n = '+', 3
			case strings.HasPrefix(rest, end):
				n = 2
			}
			if n > 0 {
				l.out = append(l.out, token{kind: kind, line: l.line})
				l.advance(n)
				l.afterTag(sign, block)
				return nil
			}
		}
		c := rest[0]
		switch {
		case c == '\'' || c == '"':
			s, n, err := unquote(rest)
			if err != nil {
				return l.errorf("%v", err)
			}
			l.out = append(l.out, token{kind: tString, val: s, line: l.line})
			l.advance(n)
		case c >= '0' && c <= '9':
			tok, n, err := number(rest)
			if err != nil {
				return l.errorf("%v", err)
			}
			tok.line = l.line
			l.out = append(l.out, tok)
			l.advance(n)
		case c == '_' || c >= 0x80 || unicode.IsLetter(rune(c)):
			n := 0
			for n < len(rest) {
				r, w := utf8.DecodeRuneInString(rest[n:])
				if !(r == '_' || unicode.IsLetter(r) || (n > 0 && (unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Mc, r)))) {
					break
				}
				n += w
			}
			if n == 0 {
				return l.errorf("unexpected char %q", rest[:1])
			}
			l.out = append(l.out, token{kind: tName, val: rest[:n], line: l.line})
			l.advance(n)
		default:
			op := ""
			for _, o := range operators {
				if strings.HasPrefix(rest, o) {
					op = o
					break
				}
			}
			if op == "" {
				r, _ := utf8.DecodeRuneInString(rest)
				return l.errorf("unexpected char %q", r)
			}
			switch op {
			case "(", "[", "{":
				balance = append(balance, op[0])
			case ")", "]", "}":
				want := map[string]byte{")": '(', "]": '[', "}": '{'}[op]
				if len(balance) == 0 || balance[len(balance)-1] != want {
					return l.errorf("unexpected '%s'", op)
				}
				balance = balance[:len(balance)-1]
			}
			l.out = append(l.out, token{kind: tOp, val: op, line: l.line})
			l.advance(len(op))
		}
	}
}

// number reads an integer or float literal (with Python's '_' separators, and 0x/0o/0b
// integers).
func number(s string) (token, int, error) {
	digits := func(p int, ok func(byte) bool) int {
		for p < len(s) && (ok(s[p]) || (s[p] == '_' && p+1 < len(s) && ok(s[p+1]))) {
			p++
		}
		return p
	}
	dec := func(b byte) bool { return b >= '0' && b <= '9' }
	if len(s) > 2 && s[0] == '0' && strings.ContainsRune("xXoObB", rune(s[1])) {
		base := map[byte]int{'x': 16, 'X': 16, 'o': 8, 'O': 8, 'b': 2, 'B': 2}[s[1]]
		p := digits(2, func(b byte) bool {
			switch base {
			case 16:
				return dec(b) || (b|0x20 >= 'a' && b|0x20 <= 'f')
			case 8:
				return b >= '0' && b <= '7'
			}
			return b == '0' || b == '1'
		})
		v, err := strconv.ParseInt(strings.ReplaceAll(s[2:p], "_", ""), base, 64)
		if err != nil {
			return token{}, 0, fmt.Errorf("bad number %q", s[:p])
		}
		return token{kind: tInt, num: v}, p, nil
	}
	p := digits(0, dec)
	isFloat := false
	if p+1 < len(s) && s[p] == '.' && dec(s[p+1]) {
		p = digits(p+1, dec)
		isFloat = true
	}
	if p < len(s) && (s[p] == 'e' || s[p] == 'E') {
		q := p + 1
		if q < len(s) && (s[q] == '+' || s[q] == '-') {
			q++
		}
		if q < len(s) && dec(s[q]) {
			p = digits(q, dec)
			isFloat = true
		}
	}
	text := strings.ReplaceAll(s[:p], "_", "")
	if isFloat {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil && !isRangeErr(err) {
			return token{}, 0, fmt.Errorf("bad number %q", s[:p])
		}
		return token{kind: tFloat, num: f}, p, nil
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return token{}, 0, fmt.Errorf("integer %s is out of range", s[:p])
	}
	return token{kind: tInt, num: v}, p, nil
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// unquote reads a quoted string literal at the start of s and decodes its escapes as Python's
// unicode-escape codec does (which is what jinja2 applies): \n, \t, \\, \', \", \xhh, \uhhhh,
// \Uhhhhhhhh, octal, a backslash-newline continuation; an unknown escape keeps its backslash.
func unquote(s string) (string, int, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); {
		c := s[i]
		switch {
		case c == q:
			return normalizeNewlines(b.String()), i + 1, nil
		case c == '\\' && i+1 < len(s):
			e := s[i+1]
			i += 2
			switch e {
			case '\n':
			case '\\', '\'', '"':
				b.WriteByte(e)
			case 'a':
				b.WriteByte('\a')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'v':
				b.WriteByte('\v')
			case 'x', 'u', 'U':
				n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
				if i+n > len(s) {
					return "", 0, fmt.Errorf("truncated \\%c escape in a string", e)
				}
				v, err := strconv.ParseUint(s[i:i+n], 16, 32)
				if err != nil || v > unicode.MaxRune {
					return "", 0, fmt.Errorf("bad \\%c escape in a string", e)
				}
				b.WriteRune(rune(v))
				i += n
			case '0', '1', '2', '3', '4', '5', '6', '7':
				j := i - 1
				for j < len(s) && j < i+2 && s[j] >= '0' && s[j] <= '7' {
					j++
				}
				v, _ := strconv.ParseUint(s[i-1:j], 8, 32)
				b.WriteRune(rune(v))
				i = j
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}
