package reward

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// op is the operator of an expression-tree node.
type op uint8

const (
	opNum      op = iota // val; dec marks a literal written with a decimal point
	opVar                // name
	opConst              // name: "pi", "e", "i", "inf"
	opAdd                // args summed
	opMul                // args multiplied
	opNeg                // -args[0]
	opDiv                // args[0] / args[1]
	opPow                // args[0] ^ args[1]
	opFunc               // name(args...)
	opFact               // args[0]!
	opPM                 // args[0] ± args[1]; args[0] is nil for a unary ±
	opTuple              // ordered args; open/close are the brackets
	opSet                // unordered args
	opInterval           // args[0], args[1]; open/close '(' or '[' and ')' or ']'
	opUnion              // union of intervals or sets
	opMatrix             // args row-major, rows × cols
	opRel                // chain args[0] rels[0] args[1] rels[1] args[2] ...
	opText               // name: a word answer
)

// node is one node of a parsed answer.
type node struct {
	op          op
	val         *big.Rat
	dec         bool // written with a decimal point
	digits      int  // digits after the decimal point
	name        string
	args        []*node
	open, close byte
	rows, cols  int
	rels        []string // "=", "<", "<=", ">", ">=", "!="
}

// errParse is wrapped by the errors of answers that are not well-formed math.
var errParse = errors.New("reward: cannot parse answer")

// maxNodes caps the size of a parsed answer, maxDigits the length of one number.
const (
	maxNodes  = 2000
	maxDigits = 20000
)

// parser is a recursive-descent parser over the tokens of one normalized answer.
type parser struct {
	toks  []token
	pos   int
	nodes int
	depth int
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}
func (p *parser) is(kind tokKind, text string) bool {
	t := p.toks[p.pos]
	return t.kind == kind && t.text == text
}
func (p *parser) sym(s string) bool { return p.is(tSym, s) }
func (p *parser) cmd(s string) bool { return p.is(tCmd, s) }

func (p *parser) fail(format string, a ...any) error {
	return fmt.Errorf("%w: %s at token %d", errParse, fmt.Sprintf(format, a...), p.pos)
}

func (p *parser) mk(n node) (*node, error) {
	p.nodes++
	if p.nodes > maxNodes {
		return nil, p.fail("answer too large")
	}
	return &n, nil
}

// parseAnswer parses a normalized answer into a tree. A top-level comma list becomes an
// opSet (the answer lists several values in no particular order).
func parseAnswer(s string) (*node, error) {
	p := &parser{toks: lex(s)}
	if p.peek().kind == tEOF {
		return nil, p.fail("empty answer")
	}
	items, seps, err := p.listSeps()
	if err != nil {
		return nil, err
	}
	if p.peek().kind != tEOF {
		return nil, p.fail("unexpected %q", p.peek().text)
	}
	if len(items) == 1 {
		return items[0], nil
	}
	if g := groupItems(items, seps); g != nil {
		return p.mk(node{op: opSet, args: g})
	}
	return p.mk(node{op: opSet, args: items})
}

// groupItems splits a top-level list that mixes commas with a weaker separator (a semicolon,
// or "and"/"or" between equations) into the groups the weaker one separates, each group of
// several items a tuple: "p=5, q=2; p=7, q=2" and "p=5, q=2 and p=7, q=2" are the two pairs
// (5, 2) and (7, 2). It returns nil when the list is flat ("1, 2 and 3").
func groupItems(items []*node, seps []byte) []*node {
	comma, semi, word := false, false, false
	for _, s := range seps {
		switch s {
		case ',':
			comma = true
		case ';':
			semi = true
		default:
			word = true
		}
	}
	if !comma || !semi && !word {
		return nil
	}
	if !semi {
		for _, it := range items {
			if it.op != opRel {
				return nil
			}
		}
	}
	var groups []*node
	cur := []*node{items[0]}
	flush := func() {
		if len(cur) == 1 {
			groups = append(groups, cur[0])
		} else {
			groups = append(groups, &node{op: opTuple, args: cur, open: '(', close: ')'})
		}
	}
	for i, s := range seps {
		if s != ',' {
			flush()
			cur = nil
		}
		cur = append(cur, items[i+1])
	}
	flush()
	return groups
}

// isSep reports whether the next token separates list items.
func (p *parser) isSep() bool {
	t := p.peek()
	return t.kind == tSym && (t.text == "," || t.text == ";") ||
		t.kind == tWord && (t.text == "and" || t.text == "or")
}

// list parses items separated by commas, semicolons, "and" or "or".
func (p *parser) list() ([]*node, error) {
	items, _, err := p.listSeps()
	return items, err
}

// listSeps is list that also returns the separator after each item but the last: ',' (also
// an Oxford ", and"), ';', or 'a' for "and"/"or".
func (p *parser) listSeps() ([]*node, []byte, error) {
	var items []*node
	var seps []byte
	for {
		n, err := p.relation()
		if err != nil {
			return nil, nil, err
		}
		items = append(items, n)
		if !p.isSep() {
			return items, seps, nil
		}
		t := p.next()
		switch {
		case t.text == ";":
			seps = append(seps, ';')
		case t.kind == tWord:
			seps = append(seps, 'a')
		default:
			seps = append(seps, ',')
			if p.isSep() && p.peek().kind == tWord { // ", and"
				p.next()
			}
		}
	}
}

var relCmds = map[string]string{
	"le": "<=", "leq": "<=", "leqslant": "<=", "ge": ">=", "geq": ">=", "geqslant": ">=",
	"lt": "<", "gt": ">", "ne": "!=", "neq": "!=", "approx": "≈",
}

// relOp returns the relation at the current token and how many tokens it spans.
func (p *parser) relOp() (string, int) {
	t := p.peek()
	if t.kind == tCmd {
		if r, ok := relCmds[t.text]; ok {
			return r, 1
		}
		return "", 0
	}
	if t.kind != tSym {
		return "", 0
	}
	n := p.toks[p.pos+1]
	adj := n.kind == tSym && !n.space
	switch t.text {
	case "=":
		return "=", 1
	case "<":
		if adj && n.text == "=" {
			return "<=", 2
		}
		return "<", 1
	case ">":
		if adj && n.text == "=" {
			return ">=", 2
		}
		return ">", 1
	case "!":
		if adj && n.text == "=" {
			return "!=", 2
		}
	}
	return "", 0
}

// relation parses a chain a rel b rel c.
func (p *parser) relation() (*node, error) {
	first, err := p.ratio()
	if err != nil {
		return nil, err
	}
	r, k := p.relOp()
	if k == 0 {
		return first, nil
	}
	n := &node{op: opRel, args: []*node{first}}
	for k > 0 {
		p.pos += k
		rhs, err := p.ratio()
		if err != nil {
			return nil, err
		}
		n.args = append(n.args, rhs)
		n.rels = append(n.rels, r)
		if len(n.rels) > 4 {
			return nil, p.fail("relation chain too long")
		}
		r, k = p.relOp()
	}
	return p.mk(*n)
}

// ratio parses a : b, the quotient a/b ("7:32"; "12:00" has no value).
func (p *parser) ratio() (*node, error) {
	a, err := p.union()
	if err != nil || !p.sym(":") {
		return a, err
	}
	p.next()
	b, err := p.union()
	if err != nil {
		return nil, err
	}
	return p.mk(node{op: opDiv, args: []*node{a, b}})
}

// union parses a \cup b \cup c.
func (p *parser) union() (*node, error) {
	first, err := p.sum()
	if err != nil {
		return nil, err
	}
	if !p.cmd("cup") && !(p.peek().kind == tWord && p.peek().text == "U") {
		return first, nil
	}
	args := []*node{first}
	for p.cmd("cup") || p.peek().kind == tWord && p.peek().text == "U" {
		p.next()
		n, err := p.sum()
		if err != nil {
			return nil, err
		}
		args = append(args, n)
	}
	return p.mk(node{op: opUnion, args: args})
}

// sum parses terms joined by + - \pm \mp.
func (p *parser) sum() (*node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > 200 {
		return nil, p.fail("nesting too deep")
	}
	var acc *node
	for first := true; ; first = false {
		sign := ""
		switch {
		case p.sym("+"), p.sym("-"):
			sign = p.next().text
		case p.cmd("pm"), p.cmd("mp"):
			sign = "pm"
			p.next()
		case !first:
			return acc, nil
		}
		if !first && sign == "" {
			return acc, nil
		}
		t, err := p.product()
		if err != nil {
			return nil, err
		}
		switch sign {
		case "-":
			if t, err = p.mk(node{op: opNeg, args: []*node{t}}); err != nil {
				return nil, err
			}
		case "pm":
			if acc, err = p.mk(node{op: opPM, args: []*node{acc, t}}); err != nil {
				return nil, err
			}
			continue
		}
		if acc == nil {
			acc = t
		} else if acc.op == opAdd {
			acc.args = append(acc.args, t)
		} else if acc, err = p.mk(node{op: opAdd, args: []*node{acc, t}}); err != nil {
			return nil, err
		}
	}
}

// startsFactor reports whether the current token can begin an implicitly multiplied factor.
func (p *parser) startsFactor() bool {
	t := p.peek()
	switch t.kind {
	case tNum:
		return true
	case tWord:
		return t.text != "and" && t.text != "or" && t.text != "U"
	case tCmd:
		switch t.text {
		case "frac", "sqrt", "binom", "pi", "infty", "{", "lfloor", "lceil", "begin", "left", "mathrm":
			return true
		}
		_, f := funcNames[t.text]
		_, g := greek[t.text]
		return f || g
	case tSym:
		return t.text == "(" || t.text == "{" || t.text == "["
	}
	return false
}

// product parses factors joined by * / \times \cdot \div or juxtaposition.
func (p *parser) product() (*node, error) {
	from := p.pos
	acc, err := p.unary()
	if err != nil {
		return nil, err
	}
	if p.pos == from+1 && p.toks[from].kind == tNum && isIntLit(acc) {
		if acc, err = p.mixed(acc); err != nil {
			return nil, err
		}
	}
	for {
		switch {
		case p.sym("*") && p.toks[p.pos+1].kind == tSym && p.toks[p.pos+1].text == "*" && !p.toks[p.pos+1].space:
			return acc, nil // ** is a power, handled by postfix
		case p.sym("*"), p.cmd("times"), p.cmd("cdot"), p.cmd("ast"):
			p.next()
			f, err := p.unary()
			if err != nil {
				return nil, err
			}
			if acc, err = p.mulNode(acc, f); err != nil {
				return nil, err
			}
		case p.sym("/"), p.cmd("div"):
			p.next()
			f, err := p.unary()
			if err != nil {
				return nil, err
			}
			if acc, err = p.mk(node{op: opDiv, args: []*node{acc, f}}); err != nil {
				return nil, err
			}
		case p.startsFactor():
			// A mixed number: an integer followed by a numeric \frac (1\frac{4}{5} = 9/5).
			if acc.op == opNum && !acc.dec && acc.val.IsInt() && p.cmd("frac") {
				f, err := p.power()
				if err != nil {
					return nil, err
				}
				if f.op == opDiv && isIntLit(f.args[0]) && isIntLit(f.args[1]) {
					if acc, err = p.mk(node{op: opAdd, args: []*node{acc, f}}); err != nil {
						return nil, err
					}
				} else if acc, err = p.mulNode(acc, f); err != nil {
					return nil, err
				}
				continue
			}
			f, err := p.power()
			if err != nil {
				return nil, err
			}
			if acc, err = p.mulNode(acc, f); err != nil {
				return nil, err
			}
		default:
			return acc, nil
		}
	}
}

// mixed reads a plain mixed number after the integer n: "4 4/9" is 40/9, "0 4/9" is 4/9. The
// fraction follows after one space, digits on both sides of the bar; a fraction of 1 or more
// or over 0 ("11 6/6", "4 4/0") makes the whole number undefined, never equal to anything.
// Anything else leaves n as it is.
func (p *parser) mixed(n *node) (*node, error) {
	t := p.toks[p.pos:]
	if len(t) < 4 || t[0].kind != tNum || !t[0].space || t[0].nl || strings.IndexByte(t[0].text, '.') >= 0 ||
		!(t[1].kind == tSym && t[1].text == "/" && !t[1].space) || t[2].kind != tNum || t[2].space ||
		strings.IndexByte(t[2].text, '.') >= 0 || t[3].kind == tNum || t[3].kind == tSym && t[3].text == "^" && !t[3].space {
		return n, nil
	}
	num, err := p.num(t[0].text, false)
	if err != nil {
		return nil, err
	}
	den, err := p.num(t[2].text, false)
	if err != nil {
		return nil, err
	}
	p.pos += 3
	if den.val.Sign() == 0 || num.val.Cmp(den.val) >= 0 {
		zero, err := p.mk(node{op: opNum, val: new(big.Rat)})
		if err != nil {
			return nil, err
		}
		return p.mk(node{op: opDiv, args: []*node{n, zero}})
	}
	frac, err := p.mk(node{op: opDiv, args: []*node{num, den}})
	if err != nil {
		return nil, err
	}
	return p.mk(node{op: opAdd, args: []*node{n, frac}})
}

func isIntLit(n *node) bool { return n.op == opNum && !n.dec && n.val.IsInt() }

func (p *parser) mulNode(a, b *node) (*node, error) {
	if a.op == opMul {
		a.args = append(a.args, b)
		return a, nil
	}
	return p.mk(node{op: opMul, args: []*node{a, b}})
}

// unary parses a leading sign, then a power.
func (p *parser) unary() (*node, error) {
	if p.sym("-") {
		p.next()
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return p.mk(node{op: opNeg, args: []*node{x}})
	}
	if p.sym("+") {
		p.next()
		return p.unary()
	}
	if p.cmd("pm") || p.cmd("mp") {
		p.next()
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return p.mk(node{op: opPM, args: []*node{nil, x}})
	}
	return p.power()
}

// power parses postfix a^b (right-associative), a!, a_{sub}.
func (p *parser) power() (*node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > 200 {
		return nil, p.fail("nesting too deep")
	}
	base, err := p.primary()
	if err != nil {
		return nil, err
	}
	return p.postfix(base)
}

func (p *parser) postfix(base *node) (*node, error) {
	var err error
	for {
		switch {
		case p.sym("!") && !(p.toks[p.pos+1].kind == tSym && p.toks[p.pos+1].text == "=" && !p.toks[p.pos+1].space):
			p.next()
			if base, err = p.mk(node{op: opFact, args: []*node{base}}); err != nil {
				return nil, err
			}
		case p.sym("_"):
			p.next()
			sub, err := p.script()
			if err != nil {
				return nil, err
			}
			switch base.op {
			case opNum: // a base subscript: 52_8 is compared by its digits
			case opVar:
				base.name += "_" + treeString(sub)
			default:
				return nil, p.fail("subscript on an expression")
			}
		case p.sym("^") || p.sym("*") && p.toks[p.pos+1].kind == tSym && p.toks[p.pos+1].text == "*" && !p.toks[p.pos+1].space:
			if p.next().text == "*" { // Python's **
				p.next()
			}
			var exp *node
			if p.sym("-") || p.sym("+") { // 2^-1
				exp, err = p.unary()
			} else {
				exp, err = p.script()
			}
			if err != nil {
				return nil, err
			}
			if base, err = p.mk(node{op: opPow, args: []*node{base, exp}}); err != nil {
				return nil, err
			}
		default:
			return base, nil
		}
	}
}

// script parses the argument of ^ or _: a braced group or a single token.
func (p *parser) script() (*node, error) {
	t := p.peek()
	if t.kind == tSym && t.text == "{" {
		return p.group()
	}
	// A number takes all its digits: 2^2023 is written for 2^{2023} (TeX would read 2^2 023).
	if t.kind == tWord && len(t.text) > 1 {
		if _, f := funcNames[t.text]; !f {
			p.toks[p.pos].text = t.text[1:]
			return p.mk(node{op: opVar, name: t.text[:1]})
		}
	}
	return p.primary()
}

// group parses { list } as one expression (a list inside braces is a set).
func (p *parser) group() (*node, error) {
	p.next() // {
	if p.sym("}") {
		return nil, p.fail("empty group")
	}
	items, err := p.list()
	if err != nil {
		return nil, err
	}
	if !p.sym("}") {
		return nil, p.fail("missing }")
	}
	p.next()
	if len(items) == 1 {
		return items[0], nil
	}
	return p.mk(node{op: opSet, args: items})
}

// arg parses a TeX macro argument: a braced group, or one digit/letter/command.
func (p *parser) arg() (*node, error) {
	t := p.peek()
	switch {
	case t.kind == tSym && t.text == "{":
		return p.group()
	case t.kind == tNum:
		if len(t.text) > 1 {
			p.toks[p.pos].text = t.text[1:]
			p.toks[p.pos].space = false
			return p.num(t.text[:1], false)
		}
		p.next()
		return p.num(t.text, false)
	case t.kind == tWord:
		if len(t.text) > 1 {
			p.toks[p.pos].text = t.text[1:]
			p.toks[p.pos].space = false
		} else {
			p.next()
		}
		return p.letter(t.text[:1])
	}
	return p.primary()
}

func (p *parser) num(text string, dec bool) (*node, error) {
	if len(text) > maxDigits {
		return nil, p.fail("number too long")
	}
	r, ok := smallRat(text)
	if !ok {
		if r, ok = new(big.Rat).SetString(text); !ok {
			return nil, p.fail("bad number %q", text)
		}
	}
	n := node{op: opNum, val: r, dec: dec}
	if i := strings.IndexByte(text, '.'); i >= 0 {
		n.dec, n.digits = true, len(text)-i-1
	}
	return p.mk(n)
}

// smallRat parses digits with at most one '.' and at most 18 digits without big.Rat's
// general parser.
func smallRat(text string) (*big.Rat, bool) {
	if len(text) > 19 {
		return nil, false
	}
	var v, den int64 = 0, 1
	dot := false
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '.' && !dot:
			dot = true
		case isDigit(c):
			v = v*10 + int64(c-'0')
			if dot {
				den *= 10
			}
		default:
			return nil, false
		}
	}
	if den == 1 {
		return new(big.Rat).SetInt64(v), true
	}
	return new(big.Rat).SetFrac64(v, den), true
}

func (p *parser) letter(l string) (*node, error) {
	switch l {
	case "e", "i":
		return p.mk(node{op: opConst, name: l})
	}
	return p.mk(node{op: opVar, name: l})
}

// funcNames maps function commands and words to canonical names.
var funcNames = map[string]string{
	"sin": "sin", "cos": "cos", "tan": "tan", "cot": "cot", "sec": "sec", "csc": "csc",
	"arcsin": "asin", "arccos": "acos", "arctan": "atan", "asin": "asin", "acos": "acos", "atan": "atan",
	"sinh": "sinh", "cosh": "cosh", "tanh": "tanh",
	"ln": "ln", "log": "log", "exp": "exp", "lg": "lg",
	"sqrt": "sqrt", "abs": "abs", "gcd": "gcd", "lcm": "lcm",
}

// greek letters are variables (pi is a constant).
var greek = map[string]bool{
	"alpha": true, "beta": true, "gamma": true, "delta": true, "epsilon": true, "varepsilon": true,
	"zeta": true, "eta": true, "theta": true, "vartheta": true, "kappa": true, "lambda": true,
	"mu": true, "nu": true, "xi": true, "rho": true, "sigma": true, "tau": true, "phi": true,
	"varphi": true, "chi": true, "psi": true, "omega": true, "Delta": true, "Omega": true, "Theta": true,
}

// primary parses a number, a symbol, a bracketed construct or a command.
func (p *parser) primary() (*node, error) {
	t := p.next()
	switch t.kind {
	case tEOF:
		return nil, p.fail("unexpected end")
	case tNum:
		return p.num(t.text, false)
	case tWord:
		return p.word(t.text)
	case tSym:
		switch t.text {
		case "(", "[":
			return p.bracket(t.text[0])
		case "{":
			p.pos--
			return p.group()
		case "|":
			x, err := p.sum()
			if err != nil {
				return nil, err
			}
			if !p.sym("|") {
				return nil, p.fail("missing closing |")
			}
			p.next()
			return p.mk(node{op: opFunc, name: "abs", args: []*node{x}})
		}
		return nil, p.fail("unexpected %q", t.text)
	}
	// Commands.
	switch t.text {
	case "frac":
		a, err := p.arg()
		if err != nil {
			return nil, err
		}
		b, err := p.arg()
		if err != nil {
			return nil, err
		}
		return p.mk(node{op: opDiv, args: []*node{a, b}})
	case "binom":
		a, err := p.arg()
		if err != nil {
			return nil, err
		}
		b, err := p.arg()
		if err != nil {
			return nil, err
		}
		return p.mk(node{op: opFunc, name: "binom", args: []*node{a, b}})
	case "sqrt":
		var idx *node
		if p.sym("[") {
			p.next()
			var err error
			if idx, err = p.sum(); err != nil {
				return nil, err
			}
			if !p.sym("]") {
				return nil, p.fail("missing ] of \\sqrt")
			}
			p.next()
		}
		x, err := p.arg()
		if err != nil {
			return nil, err
		}
		if idx == nil {
			return p.mk(node{op: opFunc, name: "sqrt", args: []*node{x}})
		}
		return p.mk(node{op: opFunc, name: "root", args: []*node{x, idx}})
	case "pi":
		return p.mk(node{op: opConst, name: "pi"})
	case "infty", "infin":
		return p.mk(node{op: opConst, name: "inf"})
	case "{": // \{ a, b \}
		items, err := p.list()
		if err != nil {
			return nil, err
		}
		if !p.cmd("}") {
			return nil, p.fail("missing \\}")
		}
		p.next()
		return p.mk(node{op: opSet, args: items, open: '{'})
	case "lfloor", "lceil":
		x, err := p.sum()
		if err != nil {
			return nil, err
		}
		want := "rfloor"
		if t.text == "lceil" {
			want = "rceil"
		}
		if !p.cmd(want) {
			return nil, p.fail("missing \\%s", want)
		}
		p.next()
		return p.mk(node{op: opFunc, name: t.text[1:], args: []*node{x}})
	case "begin":
		return p.matrix()
	case "emptyset", "varnothing":
		return p.mk(node{op: opSet})
	}
	if g := greek[t.text]; g {
		return p.mk(node{op: opVar, name: t.text})
	}
	if name, ok := funcNames[t.text]; ok {
		return p.function(name)
	}
	return nil, p.fail("unknown command \\%s", t.text)
}

// word parses a run of letters: a function name, a constant, or single-letter variables
// multiplied together.
func (p *parser) word(w string) (*node, error) {
	if name, ok := funcNames[w]; ok {
		return p.function(name)
	}
	switch w {
	case "pi":
		return p.mk(node{op: opConst, name: "pi"})
	case "inf", "infty", "oo":
		return p.mk(node{op: opConst, name: "inf"})
	}
	if len(w) > 1 {
		// Split: x y z as a product; leave the rest of the word for the product loop.
		p.pos--
		p.toks[p.pos].text = w[1:]
		p.toks[p.pos].space = false
		return p.letter(w[:1])
	}
	return p.letter(w)
}

// function parses a function application: name[^k] [_base] (args) or name x.
func (p *parser) function(name string) (*node, error) {
	var power, base *node
	var err error
	for p.sym("^") || p.sym("_") {
		isPow := p.next().text == "^"
		s, err := p.script()
		if err != nil {
			return nil, err
		}
		if isPow {
			power = s
		} else {
			base = s
		}
	}
	var args []*node
	if p.sym("(") {
		p.next()
		if args, err = p.list(); err != nil {
			return nil, err
		}
		if !p.sym(")") {
			return nil, p.fail("missing ) of %s", name)
		}
		p.next()
	} else if name == "sqrt" && p.sym("{") {
		a, err := p.group()
		if err != nil {
			return nil, err
		}
		args = []*node{a}
	} else {
		// \sin x, \cos 2x, \arccos \frac{1}{8}: a product of powers without + or -.
		a, err := p.power()
		if err != nil {
			return nil, err
		}
		for p.startsFactor() && !p.isFuncStart() {
			f, err := p.power()
			if err != nil {
				return nil, err
			}
			if a, err = p.mulNode(a, f); err != nil {
				return nil, err
			}
		}
		args = []*node{a}
	}
	if base != nil && (name == "log" || name == "lg") {
		args = append(args, base)
		name = "logb"
	}
	if len(args) == 0 {
		return nil, p.fail("%s without argument", name)
	}
	f, err := p.mk(node{op: opFunc, name: name, args: args})
	if err != nil {
		return nil, err
	}
	if power != nil {
		return p.mk(node{op: opPow, args: []*node{f, power}})
	}
	return f, nil
}

func (p *parser) isFuncStart() bool {
	t := p.peek()
	if t.kind == tCmd || t.kind == tWord {
		_, ok := funcNames[t.text]
		return ok
	}
	return false
}

// bracket parses ( ... ) or [ ... ], possibly closed by the other kind: a group, a tuple or
// an interval.
func (p *parser) bracket(open byte) (*node, error) {
	items, err := p.list()
	if err != nil {
		return nil, err
	}
	t := p.next()
	if t.kind != tSym || (t.text != ")" && t.text != "]") {
		return nil, p.fail("missing closing bracket")
	}
	cl := t.text[0]
	if len(items) == 1 && open == '(' && cl == ')' {
		return items[0], nil
	}
	if len(items) == 1 {
		if open == '[' && cl == ']' {
			return items[0], nil
		}
		return nil, p.fail("half-open bracket around one item")
	}
	if len(items) == 2 && (open == '(') != (cl == ')') {
		return p.mk(node{op: opInterval, args: items, open: open, close: cl})
	}
	return p.mk(node{op: opTuple, args: items, open: open, close: cl})
}

// matrix parses \begin{pmatrix} a & b \\ c & d \end{pmatrix} (also bmatrix, matrix, array).
func (p *parser) matrix() (*node, error) {
	env, err := p.envName()
	if err != nil {
		return nil, err
	}
	if env == "array" && p.sym("{") { // column spec
		for !p.sym("}") && p.peek().kind != tEOF {
			p.next()
		}
		p.next()
	}
	var cells []*node
	rows, cols, col := 0, 0, 0
	for {
		c, err := p.sum()
		if err != nil {
			return nil, err
		}
		cells = append(cells, c)
		col++
		switch {
		case p.sym("&"):
			p.next()
			continue
		case p.cmd("\\"):
			p.next()
		case p.cmd("end"):
		default:
			return nil, p.fail("bad matrix cell separator")
		}
		if rows == 0 {
			cols = col
		} else if col != cols {
			return nil, p.fail("ragged matrix")
		}
		rows++
		col = 0
		if p.cmd("end") {
			p.next()
			if _, err := p.envName(); err != nil {
				return nil, err
			}
			return p.mk(node{op: opMatrix, args: cells, rows: rows, cols: cols})
		}
	}
}

func (p *parser) envName() (string, error) {
	if !p.sym("{") {
		return "", p.fail("missing environment name")
	}
	p.next()
	var b strings.Builder
	for !p.sym("}") {
		t := p.next()
		if t.kind == tEOF {
			return "", p.fail("unterminated environment name")
		}
		b.WriteString(t.text)
	}
	p.next()
	switch n := b.String(); n {
	case "pmatrix", "bmatrix", "matrix", "vmatrix", "Bmatrix", "array", "smallmatrix":
		return n, nil
	default:
		return "", p.fail("unknown environment %q", n)
	}
}

// treeString renders a node compactly (for subscripts and debugging).
func treeString(n *node) string {
	if n == nil {
		return "_"
	}
	switch n.op {
	case opNum:
		return n.val.RatString()
	case opVar, opConst, opText:
		return n.name
	}
	var b strings.Builder
	fmt.Fprintf(&b, "(%d%s", n.op, n.name)
	for _, a := range n.args {
		b.WriteByte(' ')
		b.WriteString(treeString(a))
	}
	b.WriteByte(')')
	return b.String()
}
