package reward

import (
	"strings"
)

// lastBoxed finds the last \boxed{...} or \fbox{...} (or "\boxed 5") in s and returns its
// content and the span [start, end) of the whole command. Unbalanced boxes are skipped.
func lastBoxed(s string) (inner string, start, end int, ok bool) {
	var b boxScanner
	return b.last(s, len(s))
}

// boxScanner finds the boxes of one text from the right. It first tries each box by scanning
// its braces; after the first unbalanced box it indexes every box and brace of the text once,
// so that a text full of unclosed "\boxed{" costs linear time, not quadratic.
type boxScanner struct {
	indexed bool
	pos     []int   // starts of every \boxed and \fbox, once indexed
	match   []int32 // index of the brace closing each '{', −1 when none, once indexed
}

// last finds the last box of s that ends at or before limit.
func (b *boxScanner) last(s string, limit int) (inner string, start, end int, ok bool) {
	if !b.indexed {
		for off := limit; off > 0; {
			i := lastIndex(s[:off], `\boxed`)
			if j := lastIndex(s[:off], `\fbox`); j > i {
				i = j
			}
			if i < 0 {
				return "", 0, 0, false
			}
			inner, end, found, unbalanced := b.boxAt(s, i, limit)
			if found {
				return inner, i, end, true
			}
			if unbalanced {
				b.index(s)
				break
			}
			off = i
		}
		if !b.indexed {
			return "", 0, 0, false
		}
	}
	for k := len(b.pos) - 1; k >= 0; k-- {
		if i := b.pos[k]; i < limit {
			if inner, end, found, _ := b.boxAt(s, i, limit); found {
				return inner, i, end, true
			}
		}
	}
	return "", 0, 0, false
}

// boxAt reads the box whose command starts at s[i], which must end by limit.
func (b *boxScanner) boxAt(s string, i, limit int) (inner string, end int, found, unbalanced bool) {
	k := i + len(`\boxed`)
	if strings.HasPrefix(s[i:], `\fbox`) {
		k = i + len(`\fbox`)
	}
	if k < limit && s[k] == '{' {
		var e int
		if b.indexed {
			e = int(b.match[k])
		} else {
			e = matchBrace(s, k)
		}
		if e < 0 || e >= limit {
			return "", 0, false, e < 0
		}
		return s[k+1 : e], e + 1, true, false
	}
	if k < limit && s[k] == ' ' { // \boxed 5: up to the next space or $
		m := k + 1
		for m < limit && s[m] == ' ' {
			m++
		}
		e := m
		for e < limit && s[e] != ' ' && s[e] != '$' && s[e] != '\n' && !(s[e] == '\\' && e+1 < limit && s[e+1] == ']') {
			e++
		}
		if e > m {
			return s[m:e], e, true, false
		}
	}
	return "", 0, false, false
}

// index records every box command and the closing brace of every '{' of s, with the same
// escapes as matchBrace.
func (b *boxScanner) index(s string) {
	b.indexed = true
	for off := 0; ; {
		i := strings.IndexByte(s[off:], '\\')
		if i < 0 {
			break
		}
		off += i
		if strings.HasPrefix(s[off:], `\boxed`) || strings.HasPrefix(s[off:], `\fbox`) {
			b.pos = append(b.pos, off)
		}
		off++
	}
	b.match = make([]int32, len(s))
	var stack []int32
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '{':
			b.match[i] = -1
			stack = append(stack, int32(i))
		case '}':
			if n := len(stack); n > 0 {
				b.match[stack[n-1]] = int32(i)
				stack = stack[:n-1]
			}
		}
	}
}

// lastIndex is strings.LastIndex by forward search, which is vectorized and fast when
// the pattern is rare, as boxes are in a long completion.
func lastIndex(s, sub string) int {
	last, off := -1, 0
	for {
		i := strings.Index(s[off:], sub)
		if i < 0 {
			return last
		}
		last = off + i
		off = last + 1
	}
}

// boxGapReplacer spaces out the joiners, spacing and delimiters of the text between boxes.
var boxGapReplacer = strings.NewReplacer(",", " , ", ";", " , ", `\quad`, " ", `\qquad`, " ", `\,`, " ", `\;`, " ",
	`\ `, " ", "~", " ", `\text`, " ", `\mbox`, " ", `\textrm`, " ", "{", " ", "}", " ", "$", " $ ", `\(`, " $ ",
	`\)`, " $ ", `\[`, " $ ", `\]`, " $ ")

// isBoxGap reports whether the text g between two boxes joins them into one answer: commas,
// "and"/"or" (also inside \text{}), spacing, and math delimiters only next to a joiner
// ("\boxed{1}, \boxed{2}", "\(\boxed{1}\) and \(\boxed{2}\)", "\boxed{(3,3)} \text{ for
// part (a) and } \boxed{(1,1)}"), but not two boxes in separate math spans with nothing
// between them ("$$\boxed{20}$$ \boxed{143}") or prose ("\boxed{5} apples, not \boxed{6}").
func isBoxGap(g string) bool {
	if len(g) > 60 || strings.Contains(g, "\n\n") {
		return false
	}
	joiner, delim, words := false, false, 0
	for _, w := range strings.Fields(boxGapReplacer.Replace(g)) {
		switch w {
		case ",", "and", "or":
			joiner = true
		case "$":
			delim = true
		default:
			words++
		}
	}
	// Words only inside \text{...} that also holds a joiner: "\text{ for part (a) and }".
	inText := strings.Contains(g, `\text`) || strings.Contains(g, `\mbox`)
	if words > 0 && !(inText && joiner && words <= 4) {
		return false
	}
	return joiner || !delim
}

// maxBoxes caps how many adjacent boxes are joined into one set answer.
const maxBoxes = 200

// ExtractBoxed returns the final answer of a model completion in Boxed mode: the last
// balanced \boxed{...} or \fbox{...} or "\boxed 5" outside fenced code blocks and their
// outputs, joined with the boxes right before it when only commas or "and" separate them
// ("\boxed{1} and \boxed{2}" is the set answer "1, 2"). It returns ok=false when there is no
// box or a box is empty. It never panics.
func ExtractBoxed(completion string) (answer string, ok bool) {
	answer, _, found, ok := boxedAnswer(stripCode(completion))
	return answer, found && ok
}

// boxedAnswer returns the joined last boxes of s and the end of the last one; found reports
// whether s has a box at all, ok whether every joined box is non-empty.
func boxedAnswer(s string) (answer string, end int, found, ok bool) {
	var bs boxScanner
	inner, start, end, found := bs.last(s, len(s))
	if !found {
		return "", 0, false, false
	}
	parts := []string{inner}
	for len(parts) < maxBoxes {
		in2, s2, e2, ok2 := bs.last(s, start)
		if !ok2 || !isBoxGap(s[e2:start]) {
			break
		}
		parts = append(parts, in2)
		start = s2
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
		if parts[i] == "" {
			return "", end, true, false
		}
	}
	return strings.Join(parts, ", "), end, true, true
}

// answerKeys introduce a final answer in prose, strongest first.
var answerKeys = []string{"final answer is", "final answer:", "final answer", "answer is:", "answer:", "answer is"}

// Extract returns the final answer of a model completion in Lenient mode, ignoring fenced
// code blocks and their outputs (```python ... ```, ```output ... ```), as the reference
// evaluation and Math-Verify do:
//   - the boxed answer (ExtractBoxed), unless a "final answer is ..." sentence follows the
//     last box;
//   - else the answer of the last "final answer is", "Final Answer:", "answer:" or "the answer
//     is" sentence: its first math span, or what follows the last "is" ("Final Answer: The
//     largest $n$ is 34"), or the sentence itself when it is math, or its first number;
//   - else a one-line completion that is itself math ("\frac{1}{2}", "x = 3");
//   - else, in the last paragraph, the rightmost of its last math span and the last number
//     standing as a word on its last line.
//
// A candidate that does not parse as an answer is passed over for the next (the last math
// span is kept if nothing else is found: it may still equal the gold as text). It returns
// ok=false when there is no answer or a box is empty. It never panics.
func Extract(completion string) (answer string, ok bool) {
	// Code and its output are the interpreter's, not the model's answer.
	s := stripCode(completion)
	if a, end, found, ok := boxedAnswer(s); found {
		if i := lastIndexFold(s[end:], answerKeys[0]); i >= 0 {
			if b, ok2 := answerAfter(s[end+i+len(answerKeys[0]):], answerKeys[0]); ok2 {
				return b, true
			}
		}
		return a, ok
	}
	for _, key := range answerKeys {
		if i := lastIndexFold(s, key); i >= 0 {
			if a, ok := answerAfter(s[i+len(key):], key); ok {
				return a, true
			}
		}
	}
	// A completion that is one line of math is the answer itself ("\frac{1}{2}", "x = 3").
	t := strings.TrimSpace(s)
	if t != "" && !strings.Contains(t, "\n") && len(t) <= 500 && looksLikeMath(t) {
		return unwrap(t), true
	}
	// The last paragraph: the rightmost of its math spans (that parse) and the numbers on its
	// last line outside them.
	para := t
	if i := strings.LastIndex(t, "\n\n"); i >= 0 {
		para = t[i+2:]
	}
	lineStart := strings.LastIndexByte(para, '\n') + 1
	spans := mathSpans(para)
	pos := len(para)
	unparsed := "" // the rightmost span, kept when none parses: it may still equal the gold as text
	for i := len(spans) - 1; i >= -1; i-- {
		lo := 0
		if i >= 0 {
			lo = spans[i].end
		}
		if lo = max(lo, lineStart); lo < pos {
			if n, ok := lastNumber(para[lo:pos]); ok {
				return n, true
			}
		}
		if i < 0 {
			break
		}
		if in := spans[i].inner; in != "" {
			if parses(in) {
				return in, true
			}
			if unparsed == "" {
				unparsed = in
			}
		}
		pos = spans[i].start
	}
	return unparsed, unparsed != ""
}

// answerAfter reads the answer of the sentence rest that follows an answer key.
func answerAfter(rest, key string) (string, bool) {
	// A bare "final answer" counts as a heading ("**Final Answer**" then the answer on the next
	// line) or with an "is" after it ("The final answer to part (a) is 5").
	bare := key == "final answer"
	heading := bare && strings.HasPrefix(strings.TrimLeft(rest, " *:\r"), "\n")
	rest = strings.TrimLeft(rest, " \t\r\n:*\"'\\")
	if len(rest) > 1000 { // an answer sentence is short; do not scan the rest of the text
		rest = rest[:1000]
	}
	seg := strings.TrimSpace(rest[:sentenceEnd(rest)])
	seg = strings.TrimRight(strings.Trim(seg, "\"'*\\"), " .,;:")
	if seg == "" || len(seg) > 500 {
		return "", false
	}
	if !strings.HasSuffix(key, "is") {
		// "Final Answer: The largest $n$ is 34": the answer follows the last "is".
		if k := lastWordIs(seg); k >= 0 {
			seg = strings.TrimLeft(seg[k+len(" is "):], " :")
		} else if bare && !heading {
			return "", false
		}
	}
	if sp := mathSpans(seg); len(sp) > 0 && sp[0].start == 0 {
		a := sp[0].inner
		if after := strings.TrimSpace(seg[sp[0].end:]); after != "" && startsJoiner(after) {
			a = seg // "$12$ and $13$"
		}
		return a, parses(a)
	}
	if looksLikeMath(seg) {
		return seg, true
	}
	// "The final answer is 5 apples": the first number that stands as a word.
	for _, w := range strings.Fields(seg) {
		w = strings.TrimRight(w, ".,;:!?")
		if n, ok := lastNumber(w); ok && n == strings.TrimLeft(w, "$") {
			return n, true
		}
	}
	if _, _, text := textAnswer(normalize(seg)); text && len(seg) <= 200 {
		return seg, true // "Answer: Evelyn"
	}
	return "", false
}

// startsJoiner reports whether s begins with a word or sign that joins two answers.
func startsJoiner(s string) bool {
	return strings.HasPrefix(s, ",") || strings.HasPrefix(s, ";") || strings.HasPrefix(s, "and ") ||
		strings.HasPrefix(s, "or ")
}

// lastWordIs returns the index of the last " is " in s outside math spans, or -1.
func lastWordIs(s string) int {
	best := -1
	off := 0
	for _, sp := range append(mathSpans(s), span{start: len(s), end: len(s)}) {
		if i := strings.LastIndex(s[off:sp.start], " is "); i >= 0 {
			best = off + i
		}
		off = sp.end
	}
	return best
}

// sentenceEnd returns where the sentence that starts s ends: at a newline, or at '.', '!' or
// '?' followed by a space or the end (not a decimal point), math spans skipped whole.
func sentenceEnd(s string) int {
	spans := mathSpans(s)
	k := 0
	for i := 0; i < len(s); i++ {
		for k < len(spans) && spans[k].end <= i {
			k++
		}
		if k < len(spans) && i >= spans[k].start {
			if spans[k].end > i {
				i = spans[k].end - 1
			}
			continue
		}
		switch s[i] {
		case '\n':
			return i
		case '.', '!', '?':
			if i+1 == len(s) || s[i+1] == ' ' || s[i+1] == '\n' || s[i+1] == '\r' {
				return i
			}
		}
	}
	return len(s)
}

// lastIndexFold is strings.LastIndex for a lower-case ASCII key, ignoring case in s.
func lastIndexFold(s, key string) int {
	for i := len(s) - len(key); i >= 0; i-- {
		if s[i]|0x20 != key[0] {
			continue
		}
		j := 1
		for j < len(key) && (s[i+j] == key[j] || key[j] >= 'a' && key[j] <= 'z' && s[i+j]|0x20 == key[j]) {
			j++
		}
		if j == len(key) {
			return i
		}
	}
	return -1
}

// parses reports whether a reads as an answer: math that parses, or words.
func parses(a string) bool {
	n := normalize(a)
	if n == "" || len(n) > maxAnswer {
		return false
	}
	if _, _, text := textAnswer(n); text {
		return true
	}
	_, err := parseAnswer(n)
	return err == nil
}

// stripCode removes fenced code blocks (and an unterminated last one) from s.
func stripCode(s string) string {
	if !strings.Contains(s, "```") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "```")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		j := strings.Index(s[i+3:], "```")
		if j < 0 {
			return b.String()
		}
		s = s[i+3+j+3:]
	}
}

// span is one math span of a text: s[start:end] with its delimiters, inner its content.
type span struct {
	start, end int
	inner      string
}

// mathSpans lists the math spans of s in order: $$...$$ and \[...\] (which may span lines),
// $...$ and \(...\) (which may not). An escaped \$ is not a delimiter.
func mathSpans(s string) []span {
	var out []span
	noClose := map[string]int{} // a closer not found from this offset is not found from later ones
	for i := 0; i < len(s); i++ {
		var open, closer string
		inline := false
		switch c := s[i]; {
		case c == '$' && (i == 0 || s[i-1] != '\\'):
			if i+1 < len(s) && s[i+1] == '$' {
				open, closer = "$$", "$$"
			} else {
				open, closer, inline = "$", "$", true
			}
		case c == '\\' && i+1 < len(s) && (s[i+1] == '[' || s[i+1] == '(') && (i == 0 || s[i-1] != '\\'):
			if s[i+1] == '[' {
				open, closer = `\[`, `\]`
			} else {
				open, closer, inline = `\(`, `\)`, true
			}
		default:
			continue
		}
		from := i + len(open)
		j := -1
		if f, ok := noClose[closer]; !ok || from < f {
			if j = closeAt(s, from, closer); j < 0 {
				noClose[closer] = from
			}
		}
		if j < 0 || inline && strings.ContainsAny(s[from:j], "\n") {
			i += len(open) - 1
			continue
		}
		out = append(out, span{i, j + len(closer), strings.TrimSpace(s[from:j])})
		i = j + len(closer) - 1
	}
	return out
}

// closeAt finds the closing delimiter c in s from from; a "$" preceded by a backslash is not
// one.
func closeAt(s string, from int, c string) int {
	for from <= len(s) {
		j := strings.Index(s[from:], c)
		if j < 0 {
			return -1
		}
		j += from
		if c[0] == '$' && j > 0 && s[j-1] == '\\' {
			from = j + 1
			continue
		}
		return j
	}
	return -1
}

// lastNumber returns the last number in s that stands as a word: sign, digits, decimal
// point, fraction bar, thousands commas ("1,000.99"), or one decimal comma ("2,74", the
// comparison decides whether it is one). Digits glued to letters before them ("AZYUK2A",
// "x2") are not numbers; a unit after them is allowed ("1,000.99m²").
func lastNumber(s string) (string, bool) {
	end := len(s)
	for {
		for end > 0 && !isDigit(s[end-1]) {
			end--
		}
		if end == 0 {
			return "", false
		}
		start := end
		plain := true // s[start:end] is digits only so far
		for start > 0 {
			c := s[start-1]
			switch {
			case isDigit(c):
			case c == '.' || c == '/':
				plain = false
			case c == ',' && start >= 2 && isDigit(s[start-2]) && start+3 <= end && isDigit(s[start]) &&
				isDigit(s[start+1]) && isDigit(s[start+2]) && (start+3 == end || s[start+3] == ',' || s[start+3] == '.'):
				plain = false // a thousands separator
			case c == ',' && plain && start >= 2 && isDigit(s[start-2]) && end-start != 3 && !listBefore(s, start-1):
				plain = false // a decimal comma
			case c == ' ' && spacedGroup(s, start, end):
				plain = false // a space between digit groups ("10 000")
			default:
				goto done
			}
			start--
		}
	done:
		if !(start > 0 && (isLetter(s[start-1]) || s[start-1] == '_')) {
			if start > 0 && s[start-1] == '-' {
				start--
			}
			if n := strings.Trim(s[start:end], "./,"); n != "" && n != "-" {
				return n, true
			}
		}
		end = start
		for end > 0 && (isLetter(s[end-1]) || s[end-1] == '_') {
			end--
		}
	}
}

// spacedGroup reports whether the space at s[start-1] separates digit groups of the number
// that ends at s[end]: three digits follow it, then the end, another space or a decimal
// point, and 1–3 digits (or another spaced group) come before it.
func spacedGroup(s string, start, end int) bool {
	if start < 2 || start+3 > end || !isDigit(s[start-2]) {
		return false
	}
	for k := start; k < start+3; k++ {
		if !isDigit(s[k]) {
			return false
		}
	}
	if start+3 < end && s[start+3] != ' ' && s[start+3] != '.' {
		return false
	}
	k := start - 2
	for k >= 0 && isDigit(s[k]) {
		k--
	}
	return start-2-k <= 3
}

// listBefore reports whether the digits that end at s[comma-1] follow another comma, so the
// comma at s[comma] separates list items ("1,2,3").
func listBefore(s string, comma int) bool {
	k := comma - 1
	for k >= 0 && isDigit(s[k]) {
		k--
	}
	return k >= 0 && s[k] == ','
}

// looksLikeMath reports whether a line is an answer written alone: it parses, and has no
// word of two or more letters other than function names (so prose is not read as a product
// of variables).
func looksLikeMath(line string) bool {
	norm := normalize(line)
	if _, _, text := textAnswer(norm); text {
		return false
	}
	for _, t := range lex(norm) {
		if t.kind == tWord && len(t.text) > 1 && t.text != "and" && t.text != "or" {
			if _, f := funcNames[t.text]; !f && t.text != "pi" {
				return false
			}
		}
	}
	_, err := parseAnswer(norm)
	return err == nil
}

// goldAnswer returns the final answer of a reference answer, extracted as leniently as a
// completion when it is a worked solution: one with a box or an "answer" sentence ("... so
// the answer is \boxed{5}."). Any other gold is the answer as it stands (compare unwraps its
// delimiters), and so is one in which Extract finds nothing.
func goldAnswer(gold string) string {
	if !strings.Contains(gold, `\boxed`) && !strings.Contains(gold, `\fbox`) && !containsFold(gold, "answer") {
		return gold
	}
	if a, ok := Extract(gold); ok {
		return a
	}
	return gold
}

// containsFold reports whether s contains the lower-case ASCII word sub in any case.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		j := 0
		for j < len(sub) && (s[i+j]|0x20) == sub[j] {
			j++
		}
		if j == len(sub) {
			return true
		}
	}
	return false
}
