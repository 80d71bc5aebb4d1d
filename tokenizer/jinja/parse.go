package jinja

import (
	"fmt"
	"slices"
)

// ---- statements ----

type node interface{}

type dataNode struct{ text string }

type printNode struct{ x expr }

type ifNode struct {
	conds  []expr
	bodies [][]node
	els    []node
}

type forNode struct {
	targets []string // one name, or several to unpack
	iter    expr
	filter  expr // optional "if" clause
	body    []node
	els     []node
}

type setNode struct {
	targets []string // names; or one namespace attribute (attr set)
	attr    string   // ns.attr assignment when set
	x       expr
	body    []node // block set: {% set x %}...{% endset %}
}

type macroNode struct {
	name     string
	params   []string
	defaults []expr // aligned with the last len(defaults) params
	body     []node
	line     int
}

type loopCtl struct{ brk bool } // break or continue

type filterBlock struct {
	f    *filterExpr // its x is nil: the body's output is the input
	body []node
}

// ---- expressions ----

type expr interface{}

type constExpr struct{ v any }

type nameExpr struct {
	name string
	line int
}

type listExpr struct {
	items []expr
	tuple bool
}

type dictExpr struct{ keys, vals []expr }

type getattrExpr struct {
	x    expr
	name string
	line int
}

type getitemExpr struct {
	x, key expr
	line   int
}

type sliceExpr struct {
	x            expr
	lo, hi, step expr // nil when absent
	line         int
}

type kwarg struct {
	name string
	x    expr
}

type callExpr struct {
	fn     expr
	args   []expr
	kwargs []kwarg
	line   int
}

type filterExpr struct {
	x      expr
	name   string
	args   []expr
	kwargs []kwarg
	line   int
}

type testExpr struct {
	x      expr
	name   string
	args   []expr
	negate bool
	line   int
}

type unaryExpr struct {
	op   string // not, -, +
	x    expr
	line int
}

type binExpr struct {
	op   string // + - * / // % ** ~ and or
	l, r expr
	line int
}

type compareExpr struct {
	first expr
	ops   []string // == != < > <= >= in notin
	rest  []expr
	line  int
}

type condExpr struct {
	test, then, els expr // els may be nil (undefined)
}

// ---- parser ----

type parser struct {
	toks []token
	pos  int
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) next() token { t := p.toks[p.pos]; p.pos++; return t }

func (p *parser) errorf(t token, format string, a ...any) error {
	return &Error{Line: t.line, Msg: fmt.Sprintf(format, a...)}
}

func (p *parser) isOp(op string) bool {
	t := p.peek()
	return t.kind == tOp && t.val == op
}

func (p *parser) isName(name string) bool {
	t := p.peek()
	return t.kind == tName && t.val == name
}

func (p *parser) skipOp(op string) bool {
	if p.isOp(op) {
		p.pos++
		return true
	}
	return false
}

func (p *parser) skipName(name string) bool {
	if p.isName(name) {
		p.pos++
		return true
	}
	return false
}

func (p *parser) expectOp(op string) error {
	if !p.skipOp(op) {
		return p.errorf(p.peek(), "expected '%s', got %v", op, p.peek())
	}
	return nil
}

func (p *parser) expectName() (string, error) {
	t := p.next()
	if t.kind != tName {
		return "", p.errorf(t, "expected a name, got %v", t)
	}
	return t.val, nil
}

func (p *parser) expectBlockEnd() error {
	if t := p.next(); t.kind != tBlockEnd {
		return p.errorf(t, "expected end of statement '%%}', got %v", t)
	}
	return nil
}

// parseBody parses nodes until a block tag whose keyword is in ends (left unconsumed, the
// '{%' consumed) or the end of the template when ends is empty.
func (p *parser) parseBody(ends ...string) ([]node, string, error) {
	var out []node
	for {
		t := p.next()
		switch t.kind {
		case tEOF:
			if len(ends) > 0 {
				return nil, "", p.errorf(t, "unexpected end of template: missing '{%% %s %%}'", ends[len(ends)-1])
			}
			return out, "", nil
		case tData:
			out = append(out, &dataNode{t.val})
		case tVarBegin:
			x, err := p.parseExpr(true)
			if err != nil {
				return nil, "", err
			}
			if t := p.next(); t.kind != tVarEnd {
				return nil, "", p.errorf(t, "expected end of print statement '}}', got %v", t)
			}
			out = append(out, &printNode{x})
		case tBlockBegin:
			kw := p.peek()
			if kw.kind != tName {
				return nil, "", p.errorf(kw, "expected a statement keyword, got %v", kw)
			}
			if slices.Contains(ends, kw.val) {
				p.pos++
				return out, kw.val, nil
			}
			n, err := p.parseStatement()
			if err != nil {
				return nil, "", err
			}
			if n != nil {
				out = append(out, n)
			}
		default:
			return nil, "", p.errorf(t, "unexpected %v", t)
		}
	}
}

func (p *parser) parseStatement() (node, error) {
	kw := p.next()
	switch kw.val {
	case "if":
		return p.parseIf()
	case "for":
		return p.parseFor()
	case "set":
		return p.parseSet()
	case "macro":
		return p.parseMacro(kw)
	case "break", "continue":
		if err := p.expectBlockEnd(); err != nil {
			return nil, err
		}
		return &loopCtl{brk: kw.val == "break"}, nil
	case "generation":
		// transformers' AssistantTracker extension: marks the assistant's tokens; renders its body.
		if err := p.expectBlockEnd(); err != nil {
			return nil, err
		}
		body, _, err := p.parseBody("endgeneration")
		if err != nil {
			return nil, err
		}
		if err := p.expectBlockEnd(); err != nil {
			return nil, err
		}
		return &ifNode{conds: []expr{&constExpr{true}}, bodies: [][]node{body}}, nil
	case "filter":
		f, err := p.parseFilterTail(nil, kw)
		if err != nil {
			return nil, err
		}
		if err := p.expectBlockEnd(); err != nil {
			return nil, err
		}
		body, _, err := p.parseBody("endfilter")
		if err != nil {
			return nil, err
		}
		if err := p.expectBlockEnd(); err != nil {
			return nil, err
		}
		return &filterBlock{f: f, body: body}, nil
	}
	return nil, p.errorf(kw, "unsupported statement %q", kw.val)
}

func (p *parser) parseIf() (node, error) {
	n := &ifNode{}
	for {
		c, err := p.parseExpr(true)
		if err != nil {
			return nil, err
		}
		if err := p.expectBlockEnd(); err != nil {
			return nil, err
		}
		body, end, err := p.parseBody("elif", "else", "endif")
		if err != nil {
			return nil, err
		}
		n.conds = append(n.conds, c)
		n.bodies = append(n.bodies, body)
		switch end {
		case "elif":
			continue
		case "else":
			if err := p.expectBlockEnd(); err != nil {
				return nil, err
			}
			if n.els, _, err = p.parseBody("endif"); err != nil {
				return nil, err
			}
		}
		return n, p.expectBlockEnd()
	}
}

func (p *parser) parseFor() (node, error) {
	n := &forNode{}
	for {
		name, err := p.expectName()
		if err != nil {
			return nil, err
		}
		n.targets = append(n.targets, name)
		if !p.skipOp(",") {
			break
		}
	}
	if !p.skipName("in") {
		return nil, p.errorf(p.peek(), "expected 'in' in a for loop, got %v", p.peek())
	}
	var err error
	if n.iter, err = p.parseExpr(false); err != nil {
		return nil, err
	}
	if p.skipName("if") {
		if n.filter, err = p.parseExpr(true); err != nil {
			return nil, err
		}
	}
	if p.isName("recursive") {
		return nil, p.errorf(p.peek(), "recursive loops are not supported")
	}
	if err := p.expectBlockEnd(); err != nil {
		return nil, err
	}
	body, end, err := p.parseBody("else", "endfor")
	if err != nil {
		return nil, err
	}
	n.body = body
	if end == "else" {
		if err := p.expectBlockEnd(); err != nil {
			return nil, err
		}
		if n.els, _, err = p.parseBody("endfor"); err != nil {
			return nil, err
		}
	}
	return n, p.expectBlockEnd()
}

func (p *parser) parseSet() (node, error) {
	n := &setNode{}
	name, err := p.expectName()
	if err != nil {
		return nil, err
	}
	n.targets = []string{name}
	if p.skipOp(".") {
		if n.attr, err = p.expectName(); err != nil {
			return nil, err
		}
	} else {
		for p.skipOp(",") {
			name, err := p.expectName()
			if err != nil {
				return nil, err
			}
			n.targets = append(n.targets, name)
		}
	}
	if p.peek().kind == tBlockEnd && n.attr == "" && len(n.targets) == 1 {
		p.pos++
		if n.body, _, err = p.parseBody("endset"); err != nil {
			return nil, err
		}
		return n, p.expectBlockEnd()
	}
	if err := p.expectOp("="); err != nil {
		return nil, err
	}
	if n.x, err = p.parseTuple(); err != nil {
		return nil, err
	}
	return n, p.expectBlockEnd()
}

func (p *parser) parseMacro(kw token) (node, error) {
	n := &macroNode{line: kw.line}
	var err error
	if n.name, err = p.expectName(); err != nil {
		return nil, err
	}
	if err := p.expectOp("("); err != nil {
		return nil, err
	}
	for !p.skipOp(")") {
		if len(n.params) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, err
			}
			if p.skipOp(")") {
				break
			}
		}
		name, err := p.expectName()
		if err != nil {
			return nil, err
		}
		n.params = append(n.params, name)
		if p.skipOp("=") {
			d, err := p.parseExpr(true)
			if err != nil {
				return nil, err
			}
			n.defaults = append(n.defaults, d)
		} else if len(n.defaults) > 0 {
			return nil, p.errorf(p.peek(), "non-default argument %s follows default argument", name)
		}
	}
	if err := p.expectBlockEnd(); err != nil {
		return nil, err
	}
	if n.body, _, err = p.parseBody("endmacro"); err != nil {
		return nil, err
	}
	return n, p.expectBlockEnd()
}

// parseTuple parses an expression or an unparenthesised tuple (a, b).
func (p *parser) parseTuple() (expr, error) {
	x, err := p.parseExpr(true)
	if err != nil {
		return nil, err
	}
	if !p.isOp(",") {
		return x, nil
	}
	items := []expr{x}
	for p.skipOp(",") {
		if t := p.peek(); t.kind == tBlockEnd || t.kind == tVarEnd {
			break
		}
		y, err := p.parseExpr(true)
		if err != nil {
			return nil, err
		}
		items = append(items, y)
	}
	return &listExpr{items: items, tuple: true}, nil
}

// parseExpr parses a conditional expression (withCond) or an or-expression.
func (p *parser) parseExpr(withCond bool) (expr, error) {
	x, err := p.parseOr()
	if err != nil || !withCond {
		return x, err
	}
	for p.skipName("if") {
		test, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		var els expr
		if p.skipName("else") {
			if els, err = p.parseExpr(true); err != nil {
				return nil, err
			}
		}
		x = &condExpr{test: test, then: x, els: els}
	}
	return x, nil
}

func (p *parser) parseOr() (expr, error) {
	return p.parseBinary(tName, []string{"or"}, p.parseAnd)
}

func (p *parser) parseAnd() (expr, error) {
	return p.parseBinary(tName, []string{"and"}, p.parseNot)
}

func (p *parser) parseNot() (expr, error) {
	if p.isName("not") {
		t := p.next()
		x, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return &unaryExpr{op: "not", x: x, line: t.line}, nil
	}
	return p.parseCompare()
}

func (p *parser) parseCompare() (expr, error) {
	x, err := p.parseMath1()
	if err != nil {
		return nil, err
	}
	c := &compareExpr{first: x, line: p.peek().line}
	for {
		t := p.peek()
		var op string
		switch {
		case t.kind == tOp && slices.Contains([]string{"==", "!=", "<", ">", "<=", ">="}, t.val):
			op = t.val
			p.pos++
		case t.kind == tName && t.val == "in":
			op = "in"
			p.pos++
		case t.kind == tName && t.val == "not" && p.toks[p.pos+1].kind == tName && p.toks[p.pos+1].val == "in":
			op = "notin"
			p.pos += 2
		default:
			if len(c.ops) == 0 {
				return x, nil
			}
			return c, nil
		}
		r, err := p.parseMath1()
		if err != nil {
			return nil, err
		}
		c.ops = append(c.ops, op)
		c.rest = append(c.rest, r)
	}
}

// parseBinary parses sub (op sub)*, left-associative, where op is a token of kind (an
// operator, or a name such as "and") with one of the values ops.
func (p *parser) parseBinary(kind tokKind, ops []string, sub func() (expr, error)) (expr, error) {
	x, err := sub()
	for err == nil {
		t := p.peek()
		if t.kind != kind || !slices.Contains(ops, t.val) {
			break
		}
		p.pos++
		var r expr
		if r, err = sub(); err == nil {
			x = &binExpr{op: t.val, l: x, r: r, line: t.line}
		}
	}
	return x, err
}

func (p *parser) parseMath1() (expr, error) {
	return p.parseBinary(tOp, []string{"+", "-"}, p.parseConcat)
}

func (p *parser) parseConcat() (expr, error) {
	return p.parseBinary(tOp, []string{"~"}, p.parseMath2)
}

func (p *parser) parseMath2() (expr, error) {
	return p.parseBinary(tOp, []string{"*", "/", "//", "%"}, p.parsePow)
}

func (p *parser) parsePow() (expr, error) {
	return p.parseBinary(tOp, []string{"**"}, func() (expr, error) { return p.parseUnary(true) })
}

func (p *parser) parseUnary(withFilter bool) (expr, error) {
	var x expr
	var err error
	if t := p.peek(); t.kind == tOp && (t.val == "-" || t.val == "+") {
		p.pos++
		var y expr
		if y, err = p.parseUnary(false); err != nil {
			return nil, err
		}
		x = &unaryExpr{op: t.val, x: y, line: t.line}
	} else if x, err = p.parsePrimary(); err != nil {
		return nil, err
	}
	if x, err = p.parsePostfix(x); err != nil {
		return nil, err
	}
	if withFilter {
		return p.parseFilterExpr(x)
	}
	return x, nil
}

func (p *parser) parsePrimary() (expr, error) {
	t := p.next()
	switch t.kind {
	case tName:
		switch t.val {
		case "true", "True":
			return &constExpr{true}, nil
		case "false", "False":
			return &constExpr{false}, nil
		case "none", "None":
			return &constExpr{nil}, nil
		}
		return &nameExpr{name: t.val, line: t.line}, nil
	case tString:
		s := t.val
		for p.peek().kind == tString {
			s += p.next().val
		}
		return &constExpr{s}, nil
	case tInt, tFloat:
		return &constExpr{t.num}, nil
	case tOp:
		switch t.val {
		case "(":
			if p.skipOp(")") {
				return &listExpr{tuple: true}, nil
			}
			x, err := p.parseExpr(true)
			if err != nil {
				return nil, err
			}
			if p.skipOp(")") {
				return x, nil
			}
			items := []expr{x}
			for p.skipOp(",") {
				if p.isOp(")") {
					break
				}
				y, err := p.parseExpr(true)
				if err != nil {
					return nil, err
				}
				items = append(items, y)
			}
			if err := p.expectOp(")"); err != nil {
				return nil, err
			}
			return &listExpr{items: items, tuple: true}, nil
		case "[":
			l := &listExpr{}
			for !p.skipOp("]") {
				if len(l.items) > 0 {
					if err := p.expectOp(","); err != nil {
						return nil, err
					}
					if p.skipOp("]") {
						break
					}
				}
				x, err := p.parseExpr(true)
				if err != nil {
					return nil, err
				}
				l.items = append(l.items, x)
			}
			return l, nil
		case "{":
			d := &dictExpr{}
			for !p.skipOp("}") {
				if len(d.keys) > 0 {
					if err := p.expectOp(","); err != nil {
						return nil, err
					}
					if p.skipOp("}") {
						break
					}
				}
				k, err := p.parseExpr(true)
				if err != nil {
					return nil, err
				}
				if err := p.expectOp(":"); err != nil {
					return nil, err
				}
				v, err := p.parseExpr(true)
				if err != nil {
					return nil, err
				}
				d.keys, d.vals = append(d.keys, k), append(d.vals, v)
			}
			return d, nil
		}
	}
	return nil, p.errorf(t, "unexpected %v", t)
}

func (p *parser) parsePostfix(x expr) (expr, error) {
	for {
		t := p.peek()
		switch {
		case t.kind == tOp && t.val == ".":
			p.pos++
			n := p.next()
			switch n.kind {
			case tName:
				x = &getattrExpr{x: x, name: n.val, line: n.line}
			case tInt:
				x = &getitemExpr{x: x, key: &constExpr{n.num}, line: n.line}
			default:
				return nil, p.errorf(n, "expected an attribute name, got %v", n)
			}
		case t.kind == tOp && t.val == "[":
			p.pos++
			var err error
			if x, err = p.parseSubscript(x, t.line); err != nil {
				return nil, err
			}
		case t.kind == tOp && t.val == "(":
			p.pos++
			args, kwargs, err := p.parseArgs()
			if err != nil {
				return nil, err
			}
			x = &callExpr{fn: x, args: args, kwargs: kwargs, line: t.line}
		default:
			return x, nil
		}
	}
}

// parseSubscript parses after '[': an index or a slice.
func (p *parser) parseSubscript(x expr, line int) (expr, error) {
	var parts [3]expr
	i, colons := 0, 0
	for {
		switch {
		case p.skipOp("]"):
			if colons == 0 {
				if parts[0] == nil {
					return nil, p.errorf(p.peek(), "empty subscript")
				}
				return &getitemExpr{x: x, key: parts[0], line: line}, nil
			}
			return &sliceExpr{x: x, lo: parts[0], hi: parts[1], step: parts[2], line: line}, nil
		case p.skipOp(":"):
			colons++
			i++
			if colons > 2 {
				return nil, p.errorf(p.peek(), "too many ':' in a slice")
			}
		default:
			if parts[i] != nil {
				return nil, p.errorf(p.peek(), "expected ']' or ':', got %v", p.peek())
			}
			y, err := p.parseExpr(true)
			if err != nil {
				return nil, err
			}
			parts[i] = y
		}
	}
}

// parseArgs parses call arguments after '(' up to and including ')'.
func (p *parser) parseArgs() ([]expr, []kwarg, error) {
	var args []expr
	var kwargs []kwarg
	for !p.skipOp(")") {
		if len(args)+len(kwargs) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, nil, err
			}
			if p.skipOp(")") {
				break
			}
		}
		if t := p.peek(); t.kind == tName && p.toks[p.pos+1].kind == tOp && p.toks[p.pos+1].val == "=" {
			p.pos += 2
			x, err := p.parseExpr(true)
			if err != nil {
				return nil, nil, err
			}
			kwargs = append(kwargs, kwarg{t.val, x})
			continue
		}
		if len(kwargs) > 0 {
			return nil, nil, p.errorf(p.peek(), "positional argument follows keyword argument")
		}
		x, err := p.parseExpr(true)
		if err != nil {
			return nil, nil, err
		}
		args = append(args, x)
	}
	return args, kwargs, nil
}

func (p *parser) parseFilterExpr(x expr) (expr, error) {
	for {
		switch {
		case p.isOp("|"):
			t := p.next()
			f, err := p.parseFilterTail(x, t)
			if err != nil {
				return nil, err
			}
			x = f
		case p.isName("is"):
			t := p.next()
			neg := p.skipName("not")
			name, err := p.dottedName()
			if err != nil {
				return nil, err
			}
			if _, ok := tests[name]; !ok {
				return nil, p.errorf(t, "no test named %q", name)
			}
			te := &testExpr{x: x, name: name, negate: neg, line: t.line}
			if p.skipOp("(") {
				args, kwargs, err := p.parseArgs()
				if err != nil {
					return nil, err
				}
				if len(kwargs) > 0 {
					return nil, p.errorf(t, "keyword arguments to test %q are not supported", name)
				}
				te.args = args
			} else if n := p.peek(); n.kind == tString || n.kind == tInt || n.kind == tFloat ||
				(n.kind == tName && !slices.Contains([]string{"else", "or", "and"}, n.val)) ||
				(n.kind == tOp && (n.val == "[" || n.val == "{")) {
				if n.kind == tName && n.val == "is" {
					return nil, p.errorf(n, "you cannot chain multiple tests with is")
				}
				arg, err := p.parsePrimary()
				if err == nil {
					arg, err = p.parsePostfix(arg)
				}
				if err != nil {
					return nil, err
				}
				te.args = []expr{arg}
			}
			x = te
		case p.isOp("("):
			t := p.next()
			args, kwargs, err := p.parseArgs()
			if err != nil {
				return nil, err
			}
			x = &callExpr{fn: x, args: args, kwargs: kwargs, line: t.line}
		default:
			return x, nil
		}
	}
}

func (p *parser) dottedName() (string, error) {
	name, err := p.expectName()
	for err == nil && p.isOp(".") {
		p.pos++
		var n string
		n, err = p.expectName()
		name += "." + n
	}
	return name, err
}

// parseFilterTail parses a filter name and its arguments (after '|' or 'filter').
func (p *parser) parseFilterTail(x expr, at token) (*filterExpr, error) {
	name, err := p.dottedName()
	if err != nil {
		return nil, err
	}
	if _, ok := filters[name]; !ok {
		return nil, p.errorf(at, "no filter named %q", name)
	}
	f := &filterExpr{x: x, name: name, line: at.line}
	if p.skipOp("(") {
		if f.args, f.kwargs, err = p.parseArgs(); err != nil {
			return nil, err
		}
	}
	return f, nil
}
