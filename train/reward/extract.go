package reward

import (
	"strings"
)

// lastBoxed finds the last \boxed{...} or \fbox{...} (or "\boxed 5") in s and returns its
// content and the span [start, end) of the whole command. Unbalanced boxes are skipped.
func lastBoxed(s string) (inner string, start, end int, ok bool) {
	off := len(s)
	for off > 0 {
		i := lastIndex(s[:off], `\boxed`)
		j := lastIndex(s[:off], `\fbox`)
		name := len(`\boxed`)
		if j > i {
			i, name = j, len(`\fbox`)
		}
		if i < 0 {
			return "", 0, 0, false
		}
		off = i
		k := i + name
		if k < len(s) && s[k] == '{' {
			e := matchBrace(s, k)
			if e < 0 {
				continue
			}
			return s[k+1 : e], i, e + 1, true
		}
		if k < len(s) && s[k] == ' ' { // \boxed 5: up to the next space or $
			m := k + 1
			for m < len(s) && s[m] == ' ' {
				m++
			}
			e := m
			for e < len(s) && s[e] != ' ' && s[e] != '$' && s[e] != '\n' && !(s[e] == '\\' && e+1 < len(s) && s[e+1] == ']') {
				e++
			}
			if e > m {
				return s[m:e], i, e, true
			}
		}
	}
	return "", 0, 0, false
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

// isBoxGap reports whether the text between two boxes only joins them ("," "and" "$").
func isBoxGap(g string) bool {
	r := strings.NewReplacer(",", " ", ";", " ", "$", " ", `\quad`, " ", `\qquad`, " ", `\text{and}`, " ",
		`\text{ and }`, " ", `\(`, " ", `\)`, " ", `\[`, " ", `\]`, " ", `\,`, " ", "~", " ")
	for _, w := range strings.Fields(r.Replace(g)) {
		if w != "and" && w != "or" {
			return false
		}
	}
	return len(g) < 40
}

// maxBoxes caps how many adjacent boxes are joined into one set answer.
const maxBoxes = 200

// Extract returns the final answer of a model completion, ignoring fenced code blocks and
// their outputs (```python ... ```, ```output ... ```): the last balanced \boxed{...} or
// \fbox{...} or "\boxed 5" (several boxes next to each other, joined by commas or "and",
// form one set answer "a, b"); else what follows the last "final answer is" or "Answer:";
// else a one-line completion that is itself math ("\frac{1}{2}"); else the last math span
// ($...$, \(...\), \[...\]) of the last paragraph, or the last number standing as a word on
// the last line. It returns ok=false when there is no answer or a box is empty. It never
// panics.
func Extract(completion string) (answer string, ok bool) {
	// Code and its output are the interpreter's, not the model's answer.
	s := stripCode(completion)
	if inner, start, end, found := lastBoxed(s); found {
		parts := []string{inner}
		for len(parts) < maxBoxes {
			in2, s2, e2, ok2 := lastBoxed(s[:start])
			if !ok2 || !isBoxGap(s[e2:start]) {
				break
			}
			parts = append(parts, in2)
			start = s2
		}
		_ = end
		for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
			parts[i], parts[j] = parts[j], parts[i]
		}
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
			if parts[i] == "" {
				return "", false
			}
		}
		return strings.Join(parts, ", "), true
	}
	low := strings.ToLower(s)
	for _, key := range []string{"final answer is", "answer is:", "answer:", "answer is"} {
		i := strings.LastIndex(low, key)
		if i < 0 {
			continue
		}
		a := s[i+len(key):]
		if nl := strings.IndexByte(a, '\n'); nl >= 0 && strings.TrimSpace(a[:nl]) != "" {
			a = a[:nl]
		}
		a = strings.TrimSpace(a)
		a = strings.TrimLeft(a, ": ")
		if m, ok := lastMath(a); ok {
			return m, true
		}
		a = strings.TrimSuffix(strings.TrimSpace(a), ".")
		if a = strings.TrimSpace(a); a != "" && len(a) <= 200 {
			if looksLikeMath(a) {
				return a, true
			}
			// "The final answer is 5 apples": the first number that stands as a word.
			for _, w := range strings.Fields(a) {
				w = strings.TrimRight(w, ".,;:!?")
				if n, ok := lastNumber(w); ok && n == strings.TrimLeft(w, "$") {
					return n, true
				}
			}
			return a, true
		}
	}
	// A completion that is one line of math is the answer itself ("\frac{1}{2}", "x = 3").
	if t := strings.TrimSpace(s); t != "" && !strings.Contains(t, "\n") && len(t) <= 500 && looksLikeMath(t) {
		return unwrap(t), true
	}
	// The last paragraph's last math span (display math may span lines), else the last
	// line's last number.
	t := strings.TrimSpace(s)
	para := t
	if i := strings.LastIndex(t, "\n\n"); i >= 0 {
		para = t[i+2:]
	}
	if m, ok := lastMath(para); ok {
		return m, true
	}
	lines := strings.Split(t, "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if n, ok := lastNumber(last); ok {
		return n, true
	}
	return "", false
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

// lastMath returns the content of the last non-empty math span in s.
func lastMath(s string) (string, bool) {
	best, bestEnd := "", -1
	for _, d := range [][2]string{{`\[`, `\]`}, {`\(`, `\)`}, {"$$", "$$"}} {
		if e := strings.LastIndex(s, d[1]); e > bestEnd {
			if b := strings.LastIndex(s[:e], d[0]); b >= 0 && e > b+len(d[0]) {
				if in := strings.TrimSpace(s[b+len(d[0]) : e]); in != "" {
					best, bestEnd = in, e
				}
			}
		}
	}
	// Single dollars: pair them from the left so "$a$ and $b$" gives b.
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || (i > 0 && s[i-1] == '\\') {
			continue
		}
		if i+1 < len(s) && s[i+1] == '$' {
			i++
			continue
		}
		j := i + 1
		for j < len(s) && !(s[j] == '$' && s[j-1] != '\\') {
			j++
		}
		if j >= len(s) {
			break
		}
		if j > bestEnd {
			if in := strings.TrimSpace(s[i+1 : j]); in != "" {
				best, bestEnd = in, j
			}
		}
		i = j
	}
	if bestEnd < 0 {
		return "", false
	}
	// "x = 5" inside the span: keep it; Equivalent unwraps a variable on the left.
	return best, true
}

// lastNumber returns the last number in s that stands as a word (sign, digits, decimal
// point, fraction bar, thousands commas); digits glued to letters ("AZYUK2A", "x2") are not
// numbers.
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
		for start > 0 {
			c := s[start-1]
			if isDigit(c) || c == '.' || c == '/' || c == ',' && start >= 2 && isDigit(s[start-2]) && start+3 <= end && isDigit(s[start]) &&
				isDigit(s[start+1]) && isDigit(s[start+2]) && (start+3 == end || s[start+3] == ',') {
				start--
				continue
			}
			break
		}
		glued := start > 0 && (isLetter(s[start-1]) || s[start-1] == '_') || end < len(s) && isLetter(s[end])
		if !glued {
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
