package reward

import (
	"strings"
)

// maxAnswer caps the length in bytes of an answer that is parsed; longer answers are
// compared as strings only.
const maxAnswer = 25000

// unwrap strips what surrounds an answer without changing it: whitespace, math delimiters
// ($...$, \(...\), \[...\]), a box around the whole answer, a trailing period or comma (but
// not the dots of an ellipsis).
func unwrap(s string) string {
	for range 8 {
		prev := s
		s = strings.TrimSpace(s)
		if n := len(s); n > 0 && (s[n-1] == '.' || s[n-1] == ',') && !(n >= 2 && s[n-2] == '.') {
			s = strings.TrimSpace(s[:n-1])
		}
		for _, d := range [][2]string{{"$$", "$$"}, {"$", "$"}, {`\(`, `\)`}, {`\[`, `\]`}} {
			if len(s) >= len(d[0])+len(d[1]) && strings.HasPrefix(s, d[0]) && strings.HasSuffix(s, d[1]) {
				s = s[len(d[0]) : len(s)-len(d[1])]
			}
		}
		if inner, start, end, ok := lastBoxed(s); ok && start == 0 && end == len(s) {
			s = inner
		}
		if s == prev {
			break
		}
	}
	return s
}

// undouble turns an answer whose backslashes are all doubled, as in a string escaped twice
// ("\\frac{1}{2}", "\\left( 3, \\pi \\right)"), back into LaTeX. A doubled command is two
// backslashes before a letter; the answer is doubled when it has one and no single-backslash
// command, and then every run of backslashes is halved (a doubled row break "\\\\" stays
// a row break).
func undouble(s string) string {
	if !strings.Contains(s, `\\`) {
		return s
	}
	doubled := false
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] == '\\' {
			j++
		}
		if j < len(s) && isLetter(s[j]) {
			switch j - i {
			case 2:
				doubled = true
			case 1, 3:
				return s // a single-backslash command: not doubled
			}
		}
		i = j
	}
	if !doubled {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] == '\\' {
			j++
		}
		b.WriteString(strings.Repeat(`\`, (j-i+1)/2))
		i = j
	}
	return b.String()
}

// groupCommas rewrites the LaTeX group "{,}" (with any spaces inside) into a comma, and drops
// the spaces around it between digits: "14 {, }916" is 14,916.
func groupCommas(s string) string {
	if !strings.Contains(s, "{") {
		return s
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '{' {
			j := i + 1
			for j < len(s) && s[j] == ' ' {
				j++
			}
			if j < len(s) && s[j] == ',' {
				k := j + 1
				for k < len(s) && s[k] == ' ' {
					k++
				}
				if k < len(s) && s[k] == '}' {
					t := len(out)
					for t > 0 && out[t-1] == ' ' {
						t--
					}
					if t > 0 && isDigit(out[t-1]) {
						out = out[:t]
					}
					out = append(out, ',')
					i = k
					for i+2 < len(s) && s[i+1] == ' ' && isDigit(s[i+2]) {
						i++
					}
					continue
				}
			}
		}
		out = append(out, s[i])
	}
	return string(out)
}

// percentWords are the words that mark a percentage after a number.
var percentWords = []string{"percentage", "percent", "per cent", "pct"}

// trimPercent removes a percent sign or word that ends an answer ("28\%", "28 %", "28
// percent", "4 4/9pct") and reports whether there was one.
func trimPercent(s string) (string, bool) {
	t := strings.TrimRight(s, " ")
	for _, suf := range []string{`\%`, "%"} {
		if strings.HasSuffix(t, suf) {
			return strings.TrimRight(strings.TrimSuffix(t, suf), " "), true
		}
	}
	for _, w := range percentWords {
		if len(t) > len(w) && strings.EqualFold(t[len(t)-len(w):], w) {
			before := strings.TrimRight(t[:len(t)-len(w)], " ")
			// A number, a group or a math delimiter must come before the word.
			if before == "" {
				continue
			}
			if c := before[len(before)-1]; isDigit(c) || c == '}' || c == '$' || c == ')' {
				return before, true
			}
		}
	}
	return s, false
}

var replacer = strings.NewReplacer(
	`\\`, `\\`, // a row break stays as it is
	`\rightarrow`, `\to`, `\leftarrow`, `\gets`, `\Rightarrow`, `\implies`,
	`\left`, "", `\right`, "", `\bigl`, "", `\bigr`, "", `\Bigl`, "", `\Bigr`, "",
	`\big`, "", `\Big`, "", `\displaystyle`, "", `\textstyle`, "",
	`\dfrac`, `\frac`, `\tfrac`, `\frac`, `\cfrac`, `\frac`, `\dbinom`, `\binom`, `\tbinom`, `\binom`,
	`\!`, "", `\,`, " ", `\;`, " ", `\:`, " ", `\ `, " ", "~", " ", `\qquad`, " ", `\quad`, " ",
	`^{\circ}`, "", `^\circ`, "", `^{\circ }`, "", `\circ`, "", "°", "", `\degree`, "",
	`\%`, "", "%", "", `\$`, "", "$", "",
	`{,}`, ",", `\lbrace`, `\{`, `\rbrace`, `\}`, `\lvert`, "|", `\rvert`, "|", `\vert`, "|",
	`\|`, "|", `\mid`, "|", `\lt`, "<", `\gt`, ">", `\neq`, `\ne`,
	"−", "-", "–", "-", "×", `\times`, "·", `\cdot`, "π", `\pi`, "√", `\sqrt`, "≤", `\le`, "≥", `\ge`,
	`\mathbb{R}`, `(-\infty, \infty)`, `\mathbb R`, `(-\infty, \infty)`,
	"≠", `\ne`, "∞", `\infty`, "±", `\pm`, "∪", `\cup`, "\u00a0", " ", "≈", `\approx `,
)

// textCmds are commands whose braced argument is text.
var textCmds = []string{`\text`, `\textbf`, `\textit`, `\textrm`, `\textsf`, `\texttt`, `\mathrm`,
	`\mathbf`, `\mathit`, `\mathsf`, `\mbox`, `\hbox`, `\operatorname`, `\textnormal`, `\boldsymbol`}

// units are trailing words dropped after a value ("5 cm", "\text{ degrees}").
var units = map[string]bool{
	"degree": true, "degrees": true, "deg": true, "cm": true, "mm": true, "km": true, "meter": true,
	"meters": true, "metres": true, "inch": true, "inches": true, "in": true, "foot": true, "feet": true,
	"ft": true, "yard": true, "yards": true, "mile": true, "miles": true, "unit": true, "units": true,
	"square": true, "sq": true, "cubic": true, "cent": true, "cents": true, "dollar": true,
	"dollars": true, "hour": true, "hours": true, "minute": true, "minutes": true, "min": true,
	"second": true, "seconds": true, "sec": true, "day": true, "days": true, "week": true,
	"weeks": true, "year": true, "years": true, "mph": true, "kg": true, "pounds": true, "lb": true,
	"lbs": true, "ounces": true, "oz": true, "liters": true, "mL": true, "ml": true, "people": true,
	"students": true, "ways": true, "times": true, "percent": true, "radians": true, "rad": true,
	"points": true, "percentage": true, "yuan": true, "euros": true, "pct": true, "coins": true, "games": true, "steps": true, "numbers": true, "integers": true,
}

// normalize rewrites a LaTeX or plain answer into the form the lexer reads, never dropping
// meaning: spacing and sizing commands, \dfrac-style variants, degree signs, percent and
// dollar signs, text wrappers and trailing units, thousands separators written as {,} or ,\!
// and a leading "x \in".
func normalize(s string) string {
	n, _ := normalizePct(s)
	return n
}

// normalizePct is normalize that also reports whether the answer ended with a percent sign
// or word, which normalize drops.
func normalizePct(s string) (string, bool) {
	s = unwrap(undouble(s))
	s, pct := trimPercent(s)
	s = unwrap(s)
	// Boxes inside the answer ("x = \boxed{5}") are unwrapped.
	for range 4 {
		inner, start, end, ok := lastBoxed(s)
		if !ok {
			break
		}
		s = s[:start] + inner + s[end:]
	}
	// ",\!" and ",\! " between digit groups are thousands separators.
	if strings.Contains(s, `,\!`) {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if strings.HasPrefix(s[i:], `,\!`) {
				b.WriteByte(',')
				i += 2
				for i+1 < len(s) && s[i+1] == ' ' {
					i++
				}
				continue
			}
			b.WriteByte(s[i])
		}
		s = b.String()
	}
	s = replacer.Replace(groupCommas(s))
	s = stripText(s)
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(s, ".")
	s = dropUnits(s)
	// "x \in [a, b]" is the interval.
	if len(s) > 4 && isLetter(s[0]) {
		rest := strings.TrimLeft(s[1:], " ")
		if strings.HasPrefix(rest, `\in `) || strings.HasPrefix(rest, `\in[`) || strings.HasPrefix(rest, `\in(`) {
			s = strings.TrimSpace(rest[3:])
		}
	}
	return strings.TrimSpace(s), pct
}

// stripText removes a trailing text group that follows a value (a unit, "\text{ cm}^2") and
// unwraps every other text command to its content.
func stripText(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	for range 16 {
		best, bi := -1, -1
		for k, c := range textCmds {
			i := indexCmd(s, c)
			if i >= 0 && (best < 0 || i < best) {
				best, bi = i, k
			}
		}
		if best < 0 {
			return s
		}
		c := textCmds[bi]
		j := best + len(c)
		for j < len(s) && s[j] == ' ' {
			j++
		}
		if j >= len(s) || s[j] != '{' {
			s = s[:best] + s[best+len(c):]
			continue
		}
		end := matchBrace(s, j)
		if end < 0 {
			return s
		}
		content := s[j+1 : end]
		after := end + 1
		// A trailing exponent on a unit: \mbox{ cm}^2, \text{cm}^{2}.
		tail := s[after:]
		if strings.HasPrefix(tail, "^") {
			k := 1
			if k < len(tail) && tail[k] == '{' {
				if e := matchBrace(tail, k); e > 0 {
					k = e + 1
				}
			} else if k < len(tail) {
				k++
			}
			tail = tail[k:]
		}
		before := strings.TrimSpace(s[:best])
		if strings.TrimSpace(tail) == "" && before != "" && isUnitText(content) {
			s = before
			continue
		}
		s = s[:best] + " " + content + " " + s[after:]
	}
	return s
}

// isUnitText reports whether text content reads as a unit: letters, spaces, powers and "/"
// ("km/h") only, not a connective.
func isUnitText(t string) bool {
	t = strings.TrimSpace(t)
	if t == "" {
		return true
	}
	switch t {
	case "and", "or", "i", "e":
		return false
	}
	for i := 0; i < len(t); i++ {
		if !isLetter(t[i]) && t[i] != ' ' && t[i] != '^' && t[i] != '/' && !isDigit(t[i]) {
			return false
		}
	}
	return true
}

// indexCmd finds the command c in s not followed by another letter.
func indexCmd(s, c string) int {
	off := 0
	for {
		i := strings.Index(s[off:], c)
		if i < 0 {
			return -1
		}
		i += off
		if e := i + len(c); e >= len(s) || !isLetter(s[e]) {
			return i
		}
		off = i + len(c)
	}
}

// dropUnits drops trailing unit words after a value: "5 cm", "12 square units", "90 degrees".
func dropUnits(s string) string {
	for range 3 {
		i := strings.LastIndexByte(s, ' ')
		if i <= 0 {
			return s
		}
		w := s[i+1:]
		if k := strings.IndexByte(w, '^'); k > 0 {
			w = w[:k]
		}
		if !units[w] {
			return s
		}
		before := strings.TrimSpace(s[:i])
		if before == "" {
			return s
		}
		c := before[len(before)-1]
		if !isDigit(c) && c != '}' && c != ')' && !isLetter(c) {
			return s
		}
		s = before
	}
	return s
}

// matchBrace returns the index of the brace closing the one at s[open], or -1.
func matchBrace(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++ // skip escaped characters such as \{ and \}
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// textAnswer returns the answer as lower-case text when it reads as words rather than math
// ("Evelyn", "\text{east}", "ellipse"), and the multiple-choice letter when it is one ("(C)",
// "\textbf{(C)}", "C").
func textAnswer(norm string) (text string, choice byte, ok bool) {
	t := strings.TrimSpace(norm)
	if c, ok := choiceLetter(t); ok {
		return "", c, true
	}
	letters := 0
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case isLetter(c):
			letters++
		case c == ' ' || c == '-' || c == '\'':
		default:
			return "", 0, false
		}
	}
	if letters < 2 {
		return "", 0, false
	}
	// Single letters or function names are math.
	for _, w := range strings.Fields(t) {
		if len(w) >= 3 {
			if _, f := funcNames[strings.ToLower(w)]; !f && w != "pi" {
				return strings.ToLower(strings.Join(strings.Fields(t), " ")), 0, true
			}
		}
	}
	return "", 0, false
}

// choiceLetter recognises a multiple-choice answer: A–E alone or in parentheses.
func choiceLetter(t string) (byte, bool) {
	t = strings.TrimSpace(t)
	if len(t) == 3 && t[0] == '(' && t[2] == ')' {
		t = t[1:2]
	}
	if len(t) == 2 && t[1] == ')' {
		t = t[:1]
	}
	if len(t) == 1 && t[0] >= 'A' && t[0] <= 'E' {
		return t[0], true
	}
	return 0, false
}
