package reward

import (
	"errors"
	"math"
	"slices"
	"strings"
)

// Tolerances of numeric comparison, relative to the larger magnitude.
const (
	tolDecimal = 2e-6  // relative, when a side is written with a decimal point (0.333333 = 1/3)
	tolFloat64 = 1e-9  // a transcendental function was evaluated in float64
	tolHigh    = 1e-25 // everything else, evaluated with numPrec bits
	maxPM      = 16    // most alternatives one answer expands to through ±
	maxSet     = 256   // most elements of a compared set
)

// compare decides whether pred is equivalent to gold; both are raw answer strings.
func compare(pred, gold string, b *budget) bool {
	pn, gn := normalize(pred), normalize(gold)
	if pn == "" || gn == "" {
		return false
	}
	if pn == gn {
		return true
	}
	if text, choice, ok := textAnswer(gn); ok {
		if choice != 0 {
			c, ok := choiceLetter(strings.Trim(pn, " "))
			return ok && c == choice
		}
		return strings.ReplaceAll(text, " ", "") == strings.ToLower(strings.ReplaceAll(pn, " ", ""))
	}
	if len(pn) > maxAnswer || len(gn) > maxAnswer {
		return false
	}
	p, err := parseAnswer(pn)
	if err != nil {
		return false
	}
	g, err := parseAnswer(gn)
	if err != nil {
		return false
	}
	c := &cmp{b: b}
	return c.top(p, g)
}

// cmp carries the budget of one comparison.
type cmp struct {
	b   *budget
	err error
}

func (c *cmp) top(p, g *node) bool {
	var ok bool
	if p, ok = expandPM(p); !ok {
		return false
	}
	if g, ok = expandPM(g); !ok {
		return false
	}
	if g.op != opRel {
		p = unwrapEq(p)
	}
	if p.op != opRel {
		g = unwrapEq(g)
	}
	return c.eq(p, g)
}

// unwrapEq turns "x = 3" (a variable alone on one side of one or more equals signs) into
// its value, the last member of the chain, also inside a set. Other relations are kept, so
// "0 = 0" or "1 + 1 = 2" is not a number.
func unwrapEq(n *node) *node {
	switch n.op {
	case opRel:
		for _, r := range n.rels {
			if r != "=" {
				return n
			}
		}
		if n.args[0].op == opVar || isCall(n.args[0]) {
			return n.args[len(n.args)-1]
		}
		if len(n.args) == 2 && n.args[1].op == opVar && !hasVars(n.args[0]) {
			return n.args[0]
		}
	case opSet:
		args := make([]*node, len(n.args))
		for i, a := range n.args {
			args[i] = unwrapEq(a)
		}
		m := *n
		m.args = args
		return &m
	}
	return n
}

// isCall reports whether n reads as a function name applied to variables: f(x), p(a,b) is
// parsed as a product of a one-letter name and its arguments.
func isCall(n *node) bool {
	if n.op != opMul || len(n.args) != 2 || n.args[0].op != opVar || !strings.Contains("fghpqPQ", n.args[0].name) || len(n.args[0].name) != 1 {
		return false
	}
	return n.args[1].op == opVar || n.args[1].op == opTuple && !slices.ContainsFunc(n.args[1].args, func(a *node) bool { return a.op != opVar })
}

// expandPM expands ± into a set of alternatives (1 ± √2 becomes {1+√2, 1−√2}); a set's
// elements are expanded in place. It reports false past maxPM alternatives.
func expandPM(n *node) (*node, bool) {
	if n.op == opSet {
		var args []*node
		for _, a := range n.args {
			alts, ok := alternatives(a)
			if !ok {
				return nil, false
			}
			args = append(args, alts...)
		}
		m := *n
		m.args = args
		return &m, true
	}
	alts, ok := alternatives(n)
	if !ok {
		return nil, false
	}
	if len(alts) == 1 {
		return alts[0], true
	}
	return &node{op: opSet, args: alts}, true
}

// alternatives lists the values of a scalar tree under every choice of sign of its ± nodes.
func alternatives(n *node) ([]*node, bool) {
	if n == nil {
		return []*node{nil}, true
	}
	if !hasPM(n) {
		return []*node{n}, true
	}
	switch n.op {
	case opPM:
		as, ok1 := alternatives(n.args[0])
		bs, ok2 := alternatives(n.args[1])
		if !ok1 || !ok2 || 2*len(as)*len(bs) > maxPM {
			return nil, false
		}
		var out []*node
		for _, a := range as {
			for _, b := range bs {
				neg := &node{op: opNeg, args: []*node{b}}
				if a == nil {
					out = append(out, b, neg)
				} else {
					out = append(out, &node{op: opAdd, args: []*node{a, b}}, &node{op: opAdd, args: []*node{a, neg}})
				}
			}
		}
		return out, true
	case opAdd, opMul, opNeg, opDiv, opPow, opFunc, opFact:
		combos := [][]*node{nil}
		for _, a := range n.args {
			as, ok := alternatives(a)
			if !ok {
				return nil, false
			}
			var next [][]*node
			for _, c := range combos {
				for _, x := range as {
					next = append(next, append(slices.Clone(c), x))
				}
			}
			if len(next) > maxPM {
				return nil, false
			}
			combos = next
		}
		out := make([]*node, len(combos))
		for i, args := range combos {
			m := *n
			m.args = args
			out[i] = &m
		}
		return out, true
	}
	return nil, false // ± inside a tuple, interval or relation is not expanded
}

func hasPM(n *node) bool {
	if n == nil {
		return false
	}
	if n.op == opPM {
		return true
	}
	for _, a := range n.args {
		if hasPM(a) {
			return true
		}
	}
	return false
}

func hasVars(n *node) bool {
	if n == nil {
		return false
	}
	if n.op == opVar {
		return true
	}
	for _, a := range n.args {
		if hasVars(a) {
			return true
		}
	}
	return false
}

// decDigits returns the most digits after the point of a decimal literal in n, or −1 when n
// has no decimal literal.
func decDigits(n *node) int {
	if n == nil {
		return -1
	}
	d := -1
	if n.op == opNum && n.dec {
		d = n.digits
	}
	for _, a := range n.args {
		d = max(d, decDigits(a))
	}
	return d
}

func collectVars(n *node, into []string) []string {
	if n == nil {
		return into
	}
	if n.op == opVar && !slices.Contains(into, n.name) {
		into = append(into, n.name)
	}
	for _, a := range n.args {
		into = collectVars(a, into)
	}
	return into
}

func isScalar(n *node) bool {
	switch n.op {
	case opSet, opTuple, opInterval, opUnion, opMatrix, opRel, opText, opPM:
		return false
	}
	return true
}

// eq compares two expanded trees structurally, scalars by value.
func (c *cmp) eq(p, g *node) bool {
	if c.err != nil {
		return false
	}
	switch {
	case g.op == opSet && len(g.args) == 1 && p.op != opSet:
		return c.eq(p, g.args[0])
	case p.op == opSet && len(p.args) == 1 && g.op != opSet:
		return c.eq(p.args[0], g)
	case g.op == opSet && (p.op == opSet || p.op == opTuple && len(p.args) != 2):
		return c.unordered(p.args, g.args)
	case g.op == opTuple && p.op == opSet && p.open == 0 && (len(g.args) != 2 || g.open == '(' && g.close == ')'):
		return c.ordered(p.args, g.args)
	case p.op == opTuple && g.op == opTuple:
		if len(p.args) == 2 && (p.open != g.open || p.close != g.close) {
			return false
		}
		return c.ordered(p.args, g.args)
	case p.op == opMatrix && g.op == opMatrix:
		return p.rows == g.rows && p.cols == g.cols && c.ordered(p.args, g.args)
	case (p.op == opInterval || p.op == opTuple && len(p.args) == 2) && (g.op == opInterval || g.op == opTuple && len(g.args) == 2):
		return p.open == g.open && p.close == g.close && c.ordered(p.args, g.args)
	case p.op == opUnion && g.op == opUnion:
		return c.unordered(p.args, g.args)
	case p.op == opRel && g.op == opRel:
		return c.relations(p, g)
	case p.op == opRel && (g.op == opInterval || g.op == opUnion || g.op == opTuple && len(g.args) == 2):
		if iv := relInterval(p); iv != nil {
			return c.eq(iv, g)
		}
		return false
	case g.op == opRel && (p.op == opInterval || p.op == opUnion || p.op == opTuple && len(p.args) == 2):
		if iv := relInterval(g); iv != nil {
			return c.eq(p, iv)
		}
		return false
	case isScalar(p) && isScalar(g):
		return c.scalar(p, g)
	}
	return false
}

func (c *cmp) ordered(ps, gs []*node) bool {
	if len(ps) != len(gs) {
		return false
	}
	for i := range ps {
		if !c.eq(ps[i], gs[i]) {
			return false
		}
	}
	return true
}

// unordered matches two multisets greedily (equivalence is transitive up to tolerance).
func (c *cmp) unordered(ps, gs []*node) bool {
	if len(ps) != len(gs) || len(ps) > maxSet {
		return false
	}
	used := make([]bool, len(gs))
	for _, p := range ps {
		found := false
		for j, g := range gs {
			if !used[j] && c.eq(p, g) {
				used[j], found = true, true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// infSign returns +1 or −1 for ±∞ written alone, else 0.
func infSign(n *node) int {
	switch {
	case n.op == opConst && n.name == "inf":
		return 1
	case n.op == opNeg:
		return -infSign(n.args[0])
	}
	return 0
}

// points are the values given to variables, one set per evaluation point; the j-th variable
// gets points[k] + 0.1·j at point k.
var points = []float64{0.7183, 1.3761, -0.5419, 2.2397, 0.3137, -1.6123}

// scalar compares two scalar expressions: exactly over the rationals when both are rational,
// within tolDecimal when a side has a decimal literal, else numerically with high precision,
// at several points when they have variables.
func (c *cmp) scalar(p, g *node) bool {
	if sp, sg := infSign(p), infSign(g); sp != 0 || sg != 0 {
		return sp == sg
	}
	dec := max(decDigits(p), decDigits(g))
	gv := collectVars(g, nil)
	vars := collectVars(p, gv)
	if len(vars) > len(gv) {
		return false // a variable the reference lacks: "x", "42x/x" never equal a number
	}
	if len(vars) == 0 {
		if clearlyDiffer(p, g, nil) { // a float64 look settles most unequal pairs
			return false
		}
		ep, err1 := exactEval(p, c.b)
		eg, err2 := exactEval(g, c.b)
		if c.fatal(err1) || c.fatal(err2) {
			return false
		}
		if err1 == nil && err2 == nil {
			if ep.re.Cmp(eg.re) == 0 && (ep.real() && eg.real() || !ep.real() && !eg.real() && ep.im.Cmp(eg.im) == 0) {
				return true
			}
			if dec < 0 {
				return false
			}
		}
		if errors.Is(err1, errUndefined) || errors.Is(err2, errUndefined) {
			return false
		}
		return c.numeric(p, g, nil, dec) == 1
	}
	slices.Sort(vars)
	good := 0
	for k := range points {
		env := make(map[string]cnum, len(vars))
		env64 := make(map[string]complex128, len(vars))
		for j, v := range vars {
			x := points[(k+j)%len(points)] + 0.1*float64(j)
			env[v], env64[v] = cReal(newF().SetFloat64(x)), complex(x, 0)
		}
		if clearlyDiffer(p, g, env64) {
			return false
		}
		switch c.numeric(p, g, env, dec) {
		case 0:
			return false
		case 1:
			good++
		}
		if c.err != nil {
			return false
		}
	}
	return good >= 2
}

// fatal records a deadline or size error that ends the comparison.
func (c *cmp) fatal(err error) bool {
	if errors.Is(err, errDeadline) {
		c.err = err
		return true
	}
	return false
}

// numeric evaluates both sides at env: 1 equal, 0 different, −1 both undefined.
func (c *cmp) numeric(p, g *node, env map[string]cnum, dec int) int {
	ep := &numEval{vars: env, b: c.b}
	eg := &numEval{vars: env, b: c.b}
	a, err1 := ep.eval(p)
	b, err2 := eg.eval(g)
	if c.fatal(err1) || c.fatal(err2) {
		return 0
	}
	if err1 != nil || err2 != nil {
		if errors.Is(err1, errUndefined) && errors.Is(err2, errUndefined) {
			return -1
		}
		return 0
	}
	if near(a, b, tolerance(ep.low || eg.low, dec)) {
		return 1
	}
	return 0
}

// tol is a comparison tolerance: |a−b| ≤ rel·max(|a|,|b|), and, when abs > 0, also ≤ abs.
type tol struct{ rel, abs float64 }

func (t tol) scale(k float64) tol { return tol{t.rel * k, t.abs * k} }

// tolerance picks the tolerance of a comparison. A decimal written with d digits after the
// point must be the value rounded to those digits (within half a unit of the last place) and
// within tolDecimal relative: 0.333333 = 1/3, but 801730807.0 ≠ 801730806.
func tolerance(low bool, dec int) tol {
	switch {
	case dec >= 0:
		return tol{tolDecimal, 0.5 * math.Pow(10, -float64(dec))}
	case low:
		return tol{rel: tolFloat64}
	}
	return tol{rel: tolHigh}
}

// near reports whether a and b agree within t (both zero always agree).
func near(a, b cnum, t tol) bool {
	d := cAbs(cSub(a, b))
	if d.Sign() == 0 {
		return true
	}
	m := cAbs(a)
	if mb := cAbs(b); mb.Cmp(m) > 0 {
		m = mb
	}
	lim := newF().Mul(m, newF().SetFloat64(t.rel))
	// An absolute floor for values that should be zero but carry rounding error.
	if floor := newF().SetFloat64(t.rel * 1e-6); lim.Cmp(floor) < 0 {
		lim = floor
	}
	if t.abs > 0 {
		if abs := newF().SetFloat64(t.abs); abs.Cmp(lim) < 0 {
			lim = abs
		}
	}
	return d.Cmp(lim) <= 0
}

// relations compares two relations: equations up to a non-zero factor, inequalities up to a
// positive factor after turning > into <, chains member by member.
func (c *cmp) relations(p, g *node) bool {
	p, g = flipRel(p), flipRel(g)
	if !slices.Equal(p.rels, g.rels) {
		return false
	}
	if len(p.rels) > 1 {
		return c.ordered(p.args, g.args)
	}
	f := diff(p.args[0], p.args[1])
	h := diff(g.args[0], g.args[1])
	vars := collectVars(h, collectVars(f, nil))
	if len(vars) == 0 {
		return false // 0 = 0, 1 < 2: no unknown, never an answer
	}
	slices.Sort(vars)
	dec := max(decDigits(f), decDigits(h))
	var ratio cnum
	have, good := false, 0
	for k := range points {
		env := make(map[string]cnum, len(vars))
		for j, v := range vars {
			env[v] = cReal(newF().SetFloat64(points[(k+j)%len(points)] + 0.1*float64(j)))
		}
		e1 := &numEval{vars: env, b: c.b}
		e2 := &numEval{vars: env, b: c.b}
		a, err1 := e1.eval(f)
		b, err2 := e2.eval(h)
		if c.fatal(err1) || c.fatal(err2) {
			return false
		}
		if err1 != nil || err2 != nil {
			if errors.Is(err1, errUndefined) && errors.Is(err2, errUndefined) {
				continue
			}
			return false
		}
		tol := tolerance(e1.low || e2.low, dec)
		za, zb := near(a, cReal(newF()), tol), near(b, cReal(newF()), tol)
		if za || zb {
			if za != zb {
				return false
			}
			continue
		}
		r, err := cDiv(a, b)
		if err != nil {
			return false
		}
		if !have {
			ratio, have = r, true
			if p.rels[0] != "=" && p.rels[0] != "!=" && (r.im.Sign() != 0 || r.re.Sign() <= 0) {
				return false
			}
		} else if !near(r, ratio, tol.scale(10)) {
			return false
		}
		good++
	}
	return good >= 2
}

// diff builds a − b.
func diff(a, b *node) *node {
	return &node{op: opAdd, args: []*node{a, {op: opNeg, args: []*node{b}}}}
}

// flipRel rewrites a relation with > or ≥ into one with < or ≤ by reversing the chain.
func flipRel(n *node) *node {
	greater := false
	for _, r := range n.rels {
		if r == ">" || r == ">=" {
			greater = true
		}
	}
	if !greater {
		return n
	}
	m := &node{op: opRel}
	for i := len(n.args) - 1; i >= 0; i-- {
		m.args = append(m.args, n.args[i])
	}
	for i := len(n.rels) - 1; i >= 0; i-- {
		switch n.rels[i] {
		case ">":
			m.rels = append(m.rels, "<")
		case ">=":
			m.rels = append(m.rels, "<=")
		default:
			m.rels = append(m.rels, n.rels[i])
		}
	}
	return m
}

// relInterval turns an inequality in one bare variable with constant bounds into an interval:
// x > 3 → (3, ∞), 2 < x ≤ 5 → (2, 5].
func relInterval(n *node) *node {
	n = flipRel(n)
	inf := &node{op: opConst, name: "inf"}
	ninf := &node{op: opNeg, args: []*node{inf}}
	open := func(r string) (byte, bool) {
		switch r {
		case "<":
			return 0, true
		case "<=":
			return 1, true
		}
		return 0, false
	}
	switch len(n.args) {
	case 2:
		r, ok := open(n.rels[0])
		if !ok {
			return nil
		}
		if n.args[1].op == opVar && !hasVars(n.args[0]) { // a < x
			return &node{op: opInterval, args: []*node{n.args[0], inf}, open: "(["[r], close: ')'}
		}
		if n.args[0].op == opVar && !hasVars(n.args[1]) { // x < b
			return &node{op: opInterval, args: []*node{ninf, n.args[1]}, open: '(', close: ")]"[r]}
		}
	case 3:
		r1, ok1 := open(n.rels[0])
		r2, ok2 := open(n.rels[1])
		if ok1 && ok2 && n.args[1].op == opVar && !hasVars(n.args[0]) && !hasVars(n.args[2]) {
			return &node{op: opInterval, args: []*node{n.args[0], n.args[2]}, open: "(["[r1], close: ")]"[r2]}
		}
	}
	return nil
}
