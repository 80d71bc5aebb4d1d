// Package jinja renders Jinja2 templates the way Python's jinja2 (3.x) renders them, for the
// chat templates of Hugging Face checkpoints (tokenizer_config.json's chat_template). It
// implements the language those templates use: {{ }}, {% if/elif/else %}, {% for %} with
// loop variables, else, filters and break/continue, {% set %} (names, tuples, namespace
// attributes, blocks), {% macro %}, {% filter %}, {% raw %}, transformers' {% generation %},
// whitespace control ('-', '+', trim_blocks, lstrip_blocks), Python's operators, literals,
// slicing and string/dict/list methods, and jinja2's filters, tests and globals (range,
// dict, namespace) plus transformers' raise_exception and strftime_now, with its tojson
// (Python's json.dumps with ensure_ascii=False). Undefined values behave as jinja2's default
// Undefined. Template inheritance, includes, imports, recursive loops and autoescaping are not
// supported (a clear error at parse time). Templates cannot reach anything outside the values
// they are given.
package jinja

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// Options are the environment settings that change how a template is lexed.
type Options struct {
	TrimBlocks   bool // remove the first newline after a block or comment tag
	LStripBlocks bool // strip spaces and tabs from the start of a line up to a block tag
}

// HF is the environment transformers renders chat templates in: trim_blocks and
// lstrip_blocks on.
var HF = Options{TrimBlocks: true, LStripBlocks: true}

// Error is a template syntax or rendering error, with the template line it happened on.
type Error struct {
	Line int
	Msg  string
}

// Error says where and what.
func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("jinja: line %d: %s", e.Line, e.Msg)
	}
	return "jinja: " + e.Msg
}

// RaiseError is the error of a template that called raise_exception(message), as
// transformers' templates do on a conversation they do not accept.
type RaiseError struct{ Message string }

// Error returns the template's message.
func (e *RaiseError) Error() string { return "the template raised an error: " + e.Message }

// Template is a parsed template. It is safe for concurrent use.
type Template struct {
	body []node
}

// Parse parses a template source with the given options. Errors are *Error with the line.
func Parse(src string, opt Options) (*Template, error) {
	toks, err := lex(src, opt)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	body, _, err := p.parseBody()
	if err != nil {
		return nil, err
	}
	return &Template{body: body}, nil
}

// Render renders the template with the given variables (converted by FromGo). Errors are
// *Error, or *RaiseError when the template raised one.
func (t *Template) Render(vars map[string]any) (string, error) {
	root := &scope{vars: map[string]any{}}
	for k, v := range vars {
		x, err := FromGo(v)
		if err != nil {
			return "", err
		}
		root.vars[k] = x
	}
	r := &renderer{}
	if err := r.exec(t.body, root); err != nil {
		var ce *ctlErr
		if errors.As(err, &ce) {
			return "", &Error{Msg: "'break' or 'continue' outside a loop"}
		}
		return "", err
	}
	return r.out.String(), nil
}

// scope is one level of variables: the template's, a loop iteration's, a macro call's.
type scope struct {
	vars   map[string]any
	parent *scope
}

func (s *scope) lookup(name string) (any, bool) {
	for ; s != nil; s = s.parent {
		if v, ok := s.vars[name]; ok {
			return v, true
		}
	}
	if g, ok := globals[name]; ok {
		return g, true
	}
	return nil, false
}

type renderer struct {
	out   strings.Builder
	depth int
}

// ctlErr carries break/continue out of a loop body.
type ctlErr struct{ brk bool }

func (*ctlErr) Error() string { return "loop control" }

func lineErr(line int, err error) error {
	if err == nil {
		return nil
	}
	var je *Error
	var re *RaiseError
	var ce *ctlErr
	if errors.As(err, &je) || errors.As(err, &re) || errors.As(err, &ce) {
		return err
	}
	return &Error{Line: line, Msg: err.Error()}
}

func (r *renderer) exec(body []node, sc *scope) error {
	for _, n := range body {
		if err := r.execOne(n, sc); err != nil {
			return err
		}
	}
	return nil
}

func (r *renderer) execOne(n node, sc *scope) error {
	switch n := n.(type) {
	case *dataNode:
		r.out.WriteString(n.text)
	case *printNode:
		v, err := r.eval(n.x, sc)
		if err != nil {
			return err
		}
		r.out.WriteString(str(v))
	case *ifNode:
		for i, c := range n.conds {
			v, err := r.eval(c, sc)
			if err != nil {
				return err
			}
			if truth(v) {
				return r.exec(n.bodies[i], sc)
			}
		}
		return r.exec(n.els, sc)
	case *forNode:
		return r.execFor(n, sc)
	case *setNode:
		return r.execSet(n, sc)
	case *macroNode:
		sc.vars[n.name] = r.macro(n, sc)
	case *loopCtl:
		return &ctlErr{brk: n.brk}
	case *filterBlock:
		sub := &renderer{depth: r.depth}
		if err := sub.exec(n.body, sc); err != nil {
			return err
		}
		v, err := r.applyFilter(n.f, sub.out.String(), sc)
		if err != nil {
			return err
		}
		r.out.WriteString(str(v))
	default:
		return fmt.Errorf("jinja: internal error: unknown node %T", n)
	}
	return nil
}

func (r *renderer) execSet(n *setNode, sc *scope) error {
	var v any
	if n.body != nil {
		sub := &renderer{depth: r.depth}
		if err := sub.exec(n.body, sc); err != nil {
			return err
		}
		v = sub.out.String()
	} else {
		var err error
		if v, err = r.eval(n.x, sc); err != nil {
			return err
		}
	}
	if n.attr != "" {
		obj, _ := sc.lookup(n.targets[0])
		ns, ok := obj.(*Namespace)
		if !ok {
			return &Error{Msg: fmt.Sprintf("cannot assign attribute on non-namespace object %s", n.targets[0])}
		}
		ns.d.Set(n.attr, v)
		return nil
	}
	if len(n.targets) == 1 {
		sc.vars[n.targets[0]] = v
		return nil
	}
	items, err := unpack(v, len(n.targets))
	if err != nil {
		return err
	}
	for i, t := range n.targets {
		sc.vars[t] = items[i]
	}
	return nil
}

func unpack(v any, n int) ([]any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	if len(items) != n {
		return nil, fmt.Errorf("cannot unpack %d values into %d names", len(items), n)
	}
	return items, nil
}

// loopInfo is the loop variable of a for loop.
type loopInfo struct {
	index0, length int
	items          []any
	depth          int
}

func (l *loopInfo) attr(name string) (any, bool) {
	i := l.index0
	switch name {
	case "index":
		return int64(i + 1), true
	case "index0":
		return int64(i), true
	case "revindex":
		return int64(l.length - i), true
	case "revindex0":
		return int64(l.length - i - 1), true
	case "first":
		return i == 0, true
	case "last":
		return i == l.length-1, true
	case "length":
		return int64(l.length), true
	case "depth":
		return int64(l.depth), true
	case "depth0":
		return int64(l.depth - 1), true
	case "previtem":
		if i == 0 {
			return Undefined{"there is no previous item"}, true
		}
		return l.items[i-1], true
	case "nextitem":
		if i+1 >= l.length {
			return Undefined{"there is no next item"}, true
		}
		return l.items[i+1], true
	case "cycle":
		return &Func{Name: "cycle", Fn: func(args []any, _ *Dict) (any, error) {
			if len(args) == 0 {
				return nil, fmt.Errorf("no items for cycling given")
			}
			return args[i%len(args)], nil
		}}, true
	}
	return nil, false
}

func (r *renderer) execFor(n *forNode, sc *scope) error {
	iv, err := r.eval(n.iter, sc)
	if err != nil {
		return err
	}
	all, err := iterate(iv)
	if err != nil {
		return err
	}
	bind := func(s *scope, item any) error {
		if len(n.targets) == 1 {
			s.vars[n.targets[0]] = item
			return nil
		}
		parts, err := unpack(item, len(n.targets))
		if err != nil {
			return err
		}
		for i, t := range n.targets {
			s.vars[t] = parts[i]
		}
		return nil
	}
	items := all
	if n.filter != nil {
		items = nil
		for _, it := range all {
			s := &scope{vars: map[string]any{}, parent: sc}
			if err := bind(s, it); err != nil {
				return err
			}
			v, err := r.eval(n.filter, s)
			if err != nil {
				return err
			}
			if truth(v) {
				items = append(items, it)
			}
		}
	}
	if len(items) == 0 {
		return r.exec(n.els, sc)
	}
	const depth = 1 // loops are not recursive
	for i, it := range items {
		s := &scope{vars: map[string]any{}, parent: sc}
		s.vars["loop"] = &loopInfo{index0: i, length: len(items), items: items, depth: depth}
		if err := bind(s, it); err != nil {
			return err
		}
		if err := r.exec(n.body, s); err != nil {
			var ce *ctlErr
			if errors.As(err, &ce) {
				if ce.brk {
					break
				}
				continue
			}
			return err
		}
	}
	return nil
}

// iterate lists the items a for loop visits: a list's elements, a dict's keys, a string's
// characters; Undefined is empty.
func iterate(v any) ([]any, error) {
	switch x := v.(type) {
	case []any:
		return x, nil
	case Tuple:
		return x, nil
	case *Dict:
		return append([]any(nil), x.keys...), nil
	case string:
		out := make([]any, 0, len(x))
		for _, r := range x {
			out = append(out, string(r))
		}
		return out, nil
	case Undefined:
		return nil, nil
	}
	return nil, fmt.Errorf("'%s' object is not iterable", typeName(v))
}

const maxDepth = 200

func (r *renderer) macro(n *macroNode, def *scope) *Func {
	return &Func{Name: n.name, Fn: func(args []any, kwargs *Dict) (any, error) {
		if r.depth >= maxDepth {
			return nil, &Error{Line: n.line, Msg: "macro recursion too deep"}
		}
		s := &scope{vars: map[string]any{}, parent: def}
		if len(args) > len(n.params) {
			return nil, fmt.Errorf("macro '%s' takes not more than %d argument(s)", n.name, len(n.params))
		}
		for i, p := range n.params {
			switch {
			case i < len(args):
				s.vars[p] = args[i]
			default:
				if v, ok := kwargs.Get(p); ok {
					s.vars[p] = v
					continue
				}
				if d := i - (len(n.params) - len(n.defaults)); d >= 0 {
					v, err := r.eval(n.defaults[d], s)
					if err != nil {
						return nil, err
					}
					s.vars[p] = v
				} else {
					s.vars[p] = Undefined{fmt.Sprintf("parameter '%s' was not provided", p)}
				}
			}
		}
		sub := &renderer{depth: r.depth + 1}
		if err := sub.exec(n.body, s); err != nil {
			return nil, err
		}
		return sub.out.String(), nil
	}}
}

func (r *renderer) eval(x expr, sc *scope) (any, error) {
	switch x := x.(type) {
	case *constExpr:
		return x.v, nil
	case *nameExpr:
		if v, ok := sc.lookup(x.name); ok {
			return v, nil
		}
		return Undefined{fmt.Sprintf("'%s' is undefined", x.name)}, nil
	case *listExpr:
		items := make([]any, len(x.items))
		for i, e := range x.items {
			v, err := r.eval(e, sc)
			if err != nil {
				return nil, err
			}
			items[i] = v
		}
		if x.tuple {
			return Tuple(items), nil
		}
		return items, nil
	case *dictExpr:
		d := NewDict()
		for i := range x.keys {
			k, err := r.eval(x.keys[i], sc)
			if err != nil {
				return nil, err
			}
			if !hashable(k) {
				return nil, fmt.Errorf("unhashable type: '%s'", typeName(k))
			}
			v, err := r.eval(x.vals[i], sc)
			if err != nil {
				return nil, err
			}
			d.Set(k, v)
		}
		return d, nil
	case *getattrExpr:
		obj, err := r.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		if u, ok := obj.(Undefined); ok {
			return nil, lineErr(x.line, u.err())
		}
		return getattr(obj, x.name), nil
	case *getitemExpr:
		obj, err := r.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		if u, ok := obj.(Undefined); ok {
			return nil, lineErr(x.line, u.err())
		}
		k, err := r.eval(x.key, sc)
		if err != nil {
			return nil, err
		}
		v, err := getitem(obj, k)
		return v, lineErr(x.line, err)
	case *sliceExpr:
		obj, err := r.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		if u, ok := obj.(Undefined); ok {
			return nil, lineErr(x.line, u.err())
		}
		var b [3]any
		for i, e := range []expr{x.lo, x.hi, x.step} {
			if e == nil {
				continue
			}
			if b[i], err = r.eval(e, sc); err != nil {
				return nil, err
			}
		}
		v, err := slice(obj, b[0], b[1], b[2])
		return v, lineErr(x.line, err)
	case *callExpr:
		fn, err := r.eval(x.fn, sc)
		if err != nil {
			return nil, err
		}
		args, kwargs, err := r.evalArgs(x.args, x.kwargs, sc)
		if err != nil {
			return nil, err
		}
		f, ok := fn.(*Func)
		if !ok {
			if u, ok := fn.(Undefined); ok {
				return nil, lineErr(x.line, u.err())
			}
			return nil, lineErr(x.line, fmt.Errorf("'%s' object is not callable", typeName(fn)))
		}
		v, err := f.Fn(args, kwargs)
		return v, lineErr(x.line, err)
	case *filterExpr:
		v, err := r.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		return r.applyFilter(x, v, sc)
	case *testExpr:
		v, err := r.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		args, _, err := r.evalArgs(x.args, nil, sc)
		if err != nil {
			return nil, err
		}
		ok, err := tests[x.name](v, args)
		if err != nil {
			return nil, lineErr(x.line, err)
		}
		return ok != x.negate, nil
	case *unaryExpr:
		v, err := r.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		if x.op == "not" {
			return !truth(v), nil
		}
		v, err = unary(x.op, v)
		return v, lineErr(x.line, err)
	case *binExpr:
		l, err := r.eval(x.l, sc)
		if err != nil {
			return nil, err
		}
		switch x.op {
		case "and":
			if !truth(l) {
				return l, nil
			}
			return r.eval(x.r, sc)
		case "or":
			if truth(l) {
				return l, nil
			}
			return r.eval(x.r, sc)
		}
		rv, err := r.eval(x.r, sc)
		if err != nil {
			return nil, err
		}
		v, err := binary(x.op, l, rv)
		return v, lineErr(x.line, err)
	case *compareExpr:
		l, err := r.eval(x.first, sc)
		if err != nil {
			return nil, err
		}
		for i, op := range x.ops {
			rv, err := r.eval(x.rest[i], sc)
			if err != nil {
				return nil, err
			}
			ok, err := compareOp(op, l, rv)
			if err != nil {
				return nil, lineErr(x.line, err)
			}
			if !ok {
				return false, nil
			}
			l = rv
		}
		return true, nil
	case *condExpr:
		c, err := r.eval(x.test, sc)
		if err != nil {
			return nil, err
		}
		if truth(c) {
			return r.eval(x.then, sc)
		}
		if x.els == nil {
			return Undefined{"the inline if-expression evaluated to false and no else section was defined"}, nil
		}
		return r.eval(x.els, sc)
	}
	return nil, fmt.Errorf("jinja: internal error: unknown expression %T", x)
}

func (r *renderer) evalArgs(args []expr, kws []kwarg, sc *scope) ([]any, *Dict, error) {
	out := make([]any, len(args))
	for i, a := range args {
		v, err := r.eval(a, sc)
		if err != nil {
			return nil, nil, err
		}
		out[i] = v
	}
	kw := NewDict()
	for _, k := range kws {
		v, err := r.eval(k.x, sc)
		if err != nil {
			return nil, nil, err
		}
		kw.Set(k.name, v)
	}
	return out, kw, nil
}

func (r *renderer) applyFilter(f *filterExpr, v any, sc *scope) (any, error) {
	args, kwargs, err := r.evalArgs(f.args, f.kwargs, sc)
	if err != nil {
		return nil, err
	}
	out, err := filters[f.name](v, args, kwargs)
	return out, lineErr(f.line, err)
}

// getattr is jinja2's obj.name: an attribute (a method, a namespace's or loop's field), or
// else the item named name; Undefined when there is neither.
func getattr(obj any, name string) any {
	if m, ok := method(obj, name); ok {
		return m
	}
	switch x := obj.(type) {
	case *Dict:
		if v, ok := x.Get(name); ok {
			return v
		}
	case *Namespace:
		if v, ok := x.d.Get(name); ok {
			return v
		}
	case *loopInfo:
		if v, ok := x.attr(name); ok {
			return v
		}
	}
	return Undefined{fmt.Sprintf("'%s object' has no attribute '%s'", typeName(obj), name)}
}

// getitem is jinja2's obj[key]: the item, or else the attribute named key; Undefined when
// there is neither.
func getitem(obj, key any) (any, error) {
	switch x := obj.(type) {
	case *Dict:
		if !hashable(key) {
			return nil, fmt.Errorf("unhashable type: '%s'", typeName(key))
		}
		if v, ok := x.Get(key); ok {
			return v, nil
		}
	case []any, Tuple, string:
		if i, ok := intOf(key); ok {
			var n int
			if s, ok := x.(string); ok {
				rs := []rune(s)
				n = len(rs)
				if i < 0 {
					i += int64(n)
				}
				if i >= 0 && i < int64(n) {
					return string(rs[i]), nil
				}
			} else {
				l := asList(x)
				n = len(l)
				if i < 0 {
					i += int64(n)
				}
				if i >= 0 && i < int64(n) {
					return l[i], nil
				}
			}
		}
	}
	if s, ok := key.(string); ok {
		return getattr(obj, s), nil
	}
	return Undefined{fmt.Sprintf("'%s object' has no attribute %s", typeName(obj), repr(key))}, nil
}

// intOf returns v as an integer index (bools count).
func intOf(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// slice is Python's obj[lo:hi:step] for lists, tuples and strings.
func slice(obj, lo, hi, step any) (any, error) {
	bound := func(v any, what string) (int64, bool, error) {
		if v == nil {
			return 0, false, nil
		}
		i, ok := intOf(v)
		if !ok {
			return 0, false, fmt.Errorf("slice indices must be integers or None, not %s", typeName(v))
		}
		return i, true, nil
	}
	var items []any
	var runes []rune
	switch x := obj.(type) {
	case []any:
		items = x
	case Tuple:
		items = x
	case string:
		runes = []rune(x)
	default:
		return nil, fmt.Errorf("'%s' object is not subscriptable", typeName(obj))
	}
	n := int64(len(items))
	if runes != nil || obj == "" {
		n = int64(len(runes))
	}
	st, hasSt, err := bound(step, "step")
	if err != nil {
		return nil, err
	}
	if !hasSt {
		st = 1
	}
	if st == 0 {
		return nil, fmt.Errorf("slice step cannot be zero")
	}
	l, hasL, err := bound(lo, "start")
	if err != nil {
		return nil, err
	}
	h, hasH, err := bound(hi, "stop")
	if err != nil {
		return nil, err
	}
	// Python's PySlice_AdjustIndices.
	adjust := func(v int64, has bool, def int64) int64 {
		if !has {
			return def
		}
		if v < 0 {
			v += n
			if v < 0 {
				if st < 0 {
					return -1
				}
				return 0
			}
		} else if v >= n {
			if st < 0 {
				return n - 1
			}
			return n
		}
		return v
	}
	var start, stop int64
	if st > 0 {
		start, stop = adjust(l, hasL, 0), adjust(h, hasH, n)
	} else {
		start, stop = adjust(l, hasL, n-1), adjust(h, hasH, -1)
	}
	var idx []int64
	for i := start; (st > 0 && i < stop) || (st < 0 && i > stop); i += st {
		idx = append(idx, i)
	}
	if _, ok := obj.(string); ok {
		var b strings.Builder
		for _, i := range idx {
			b.WriteRune(runes[i])
		}
		return b.String(), nil
	}
	out := make([]any, len(idx))
	for k, i := range idx {
		out[k] = items[i]
	}
	if _, ok := obj.(Tuple); ok {
		return Tuple(out), nil
	}
	return out, nil
}

// num returns a number operand: int64 (bools count as ints) or float64.
func num(v any) (any, bool) {
	switch x := v.(type) {
	case int64, float64:
		return x, true
	case bool:
		if x {
			return int64(1), true
		}
		return int64(0), true
	}
	return nil, false
}

func toFloat(v any) float64 {
	if i, ok := v.(int64); ok {
		return float64(i)
	}
	return v.(float64)
}

func unary(op string, v any) (any, error) {
	n, ok := num(v)
	if !ok {
		if u, ok := v.(Undefined); ok {
			return nil, u.err()
		}
		return nil, fmt.Errorf("bad operand type for unary %s: '%s'", op, typeName(v))
	}
	if op == "+" {
		return n, nil
	}
	if i, ok := n.(int64); ok {
		return -i, nil
	}
	return -n.(float64), nil
}

func binary(op string, l, r any) (any, error) {
	if op == "~" {
		return str(l) + str(r), nil
	}
	for _, v := range []any{l, r} {
		if u, ok := v.(Undefined); ok {
			return nil, u.err()
		}
	}
	ln, lok := num(l)
	rn, rok := num(r)
	if lok && rok {
		return arith(op, ln, rn)
	}
	switch op {
	case "+":
		switch x := l.(type) {
		case string:
			if y, ok := r.(string); ok {
				return x + y, nil
			}
			return nil, fmt.Errorf("can only concatenate str (not \"%s\") to str", typeName(r))
		case []any:
			if y, ok := r.([]any); ok {
				return append(append([]any(nil), x...), y...), nil
			}
			return nil, fmt.Errorf("can only concatenate list (not \"%s\") to list", typeName(r))
		case Tuple:
			if y, ok := r.(Tuple); ok {
				return append(append(Tuple(nil), x...), y...), nil
			}
			return nil, fmt.Errorf("can only concatenate tuple (not \"%s\") to tuple", typeName(r))
		}
	case "*":
		seq, cnt := l, r
		if _, ok := intOf(seq); ok {
			seq, cnt = r, l
		}
		if n, ok := intOf(cnt); ok {
			switch x := seq.(type) {
			case string:
				return strings.Repeat(x, int(max(n, 0))), nil
			case []any, Tuple:
				var out []any
				for range max(n, 0) {
					out = append(out, asList(x)...)
				}
				if _, ok := x.(Tuple); ok {
					return Tuple(out), nil
				}
				if out == nil {
					out = []any{}
				}
				return out, nil
			}
		}
	case "%":
		if f, ok := l.(string); ok {
			return printf(f, r)
		}
	}
	return nil, fmt.Errorf("unsupported operand type(s) for %s: '%s' and '%s'", op, typeName(l), typeName(r))
}

func arith(op string, l, r any) (any, error) {
	li, lint := l.(int64)
	ri, rint := r.(int64)
	if lint && rint {
		switch op {
		case "+":
			return li + ri, nil
		case "-":
			return li - ri, nil
		case "*":
			return li * ri, nil
		case "/":
			if ri == 0 {
				return nil, fmt.Errorf("division by zero")
			}
			return float64(li) / float64(ri), nil
		case "//":
			if ri == 0 {
				return nil, fmt.Errorf("integer division or modulo by zero")
			}
			q := li / ri
			if (li%ri != 0) && ((li < 0) != (ri < 0)) {
				q--
			}
			return q, nil
		case "%":
			if ri == 0 {
				return nil, fmt.Errorf("integer division or modulo by zero")
			}
			m := li % ri
			if m != 0 && ((m < 0) != (ri < 0)) {
				m += ri
			}
			return m, nil
		case "**":
			if ri < 0 {
				return math.Pow(float64(li), float64(ri)), nil
			}
			p := int64(1)
			for range ri {
				p *= li
			}
			return p, nil
		}
	}
	a, b := toFloat(l), toFloat(r)
	switch op {
	case "+":
		return a + b, nil
	case "-":
		return a - b, nil
	case "*":
		return a * b, nil
	case "/":
		if b == 0 {
			return nil, fmt.Errorf("float division by zero")
		}
		return a / b, nil
	case "//":
		if b == 0 {
			return nil, fmt.Errorf("float floor division by zero")
		}
		return math.Floor(a / b), nil
	case "%":
		if b == 0 {
			return nil, fmt.Errorf("float modulo")
		}
		m := math.Mod(a, b)
		if m != 0 && ((m < 0) != (b < 0)) {
			m += b
		}
		return m, nil
	case "**":
		return math.Pow(a, b), nil
	}
	return nil, fmt.Errorf("unknown operator %s", op)
}

// equal is Python's ==.
func equal(a, b any) bool {
	if an, ok := num(a); ok {
		if bn, ok := num(b); ok {
			ai, aint := an.(int64)
			bi, bint := bn.(int64)
			if aint && bint {
				return ai == bi
			}
			return toFloat(an) == toFloat(bn)
		}
		return false
	}
	switch x := a.(type) {
	case nil:
		return b == nil
	case Undefined:
		_, ok := b.(Undefined)
		return ok
	case string:
		y, ok := b.(string)
		return ok && x == y
	case []any, Tuple:
		_, al := a.([]any)
		_, bl := b.([]any)
		_, bt := b.(Tuple)
		if !(bl || bt) || al != bl {
			return false
		}
		xs, ys := asList(a), asList(b)
		if len(xs) != len(ys) {
			return false
		}
		for i := range xs {
			if !equal(xs[i], ys[i]) {
				return false
			}
		}
		return true
	case *Dict:
		y, ok := b.(*Dict)
		if !ok || x.Len() != y.Len() {
			return false
		}
		for _, k := range x.keys {
			v, ok := y.Get(k)
			if !ok || !equal(x.vals[hashKey(k)], v) {
				return false
			}
		}
		return true
	}
	return a == b
}

// compare orders two values as Python's < does (numbers, strings, lists); it returns an
// error for values Python cannot order.
func compare(a, b any) (int, error) {
	if an, ok := num(a); ok {
		if bn, ok := num(b); ok {
			ai, aint := an.(int64)
			bi, bint := bn.(int64)
			switch {
			case aint && bint:
				return cmpOrdered(ai, bi), nil
			default:
				return cmpOrdered(toFloat(an), toFloat(bn)), nil
			}
		}
	}
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y), nil
		}
	case []any, Tuple:
		_, al := a.([]any)
		_, bl := b.([]any)
		_, bt := b.(Tuple)
		if (bl || bt) && al == bl {
			xs, ys := asList(a), asList(b)
			for i := 0; i < len(xs) && i < len(ys); i++ {
				if equal(xs[i], ys[i]) {
					continue
				}
				return compare(xs[i], ys[i])
			}
			return cmpOrdered(len(xs), len(ys)), nil
		}
	}
	return 0, fmt.Errorf("'<' not supported between instances of '%s' and '%s'", typeName(a), typeName(b))
}

func cmpOrdered[T int | int64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func compareOp(op string, l, r any) (bool, error) {
	switch op {
	case "==":
		return equal(l, r), nil
	case "!=":
		return !equal(l, r), nil
	case "in", "notin":
		ok, err := contains(r, l)
		return ok == (op == "in"), err
	}
	for _, v := range []any{l, r} {
		if u, ok := v.(Undefined); ok {
			return false, u.err()
		}
	}
	c, err := compare(l, r)
	if err != nil {
		return false, fmt.Errorf("'%s' not supported between instances of '%s' and '%s'", op, typeName(l), typeName(r))
	}
	switch op {
	case "<":
		return c < 0, nil
	case ">":
		return c > 0, nil
	case "<=":
		return c <= 0, nil
	}
	return c >= 0, nil
}

// contains is Python's item in container.
func contains(container, item any) (bool, error) {
	switch x := container.(type) {
	case string:
		s, ok := item.(string)
		if !ok {
			return false, fmt.Errorf("'in <string>' requires string as left operand, not %s", typeName(item))
		}
		return strings.Contains(x, s), nil
	case []any, Tuple:
		for _, e := range asList(x) {
			if equal(e, item) {
				return true, nil
			}
		}
		return false, nil
	case *Dict:
		if !hashable(item) {
			return false, fmt.Errorf("unhashable type: '%s'", typeName(item))
		}
		_, ok := x.Get(item)
		return ok, nil
	case Undefined:
		return false, x.err()
	}
	return false, fmt.Errorf("argument of type '%s' is not iterable", typeName(container))
}

// length is Python's len(v); Undefined has length 0.
func length(v any) (int, error) {
	switch x := v.(type) {
	case string:
		return utf8.RuneCountInString(x), nil
	case []any:
		return len(x), nil
	case Tuple:
		return len(x), nil
	case *Dict:
		return x.Len(), nil
	case Undefined:
		return 0, nil
	}
	return 0, fmt.Errorf("object of type '%s' has no len()", typeName(v))
}
