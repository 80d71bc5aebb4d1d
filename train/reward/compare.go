package reward

import (
	"errors"
	"math"
	"math/big"
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
	pn, pPct := normalizePct(pred)
	gn, gPct := normalizePct(gold)
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
	p, err := parseLastEq(pn)
	if err != nil {
		return false
	}
	g, err := parseLastEq(gn)
	if err != nil {
		return false
	}
	// A lone "a,b" is a decimal with a decimal comma when the other side is one number
	// ("1,22" = 1.22), and a pair when it is a list ("-2,1" = "1, -2").
	if d, ok := decimalComma(pn); ok && isScalar(g) {
		if p, err = parseAnswer(d); err != nil {
			return false
		}
	} else if d, ok := decimalComma(gn); ok && isScalar(p) {
		if g, err = parseAnswer(d); err != nil {
			return false
		}
	}
	c := &cmp{b: b}
	return c.top(p, g, pPct, gPct)
}

// parseLastEq parses s, and when that fails and s is a chain of two or more equals signs with
// no list in it, its last side alone ("1 = \zzz = x = 0" is 0), as Math-Verify does.
func parseLastEq(s string) (*node, error) {
	n, err := parseAnswer(s)
	if err == nil || strings.Count(s, "=") < 2 || strings.ContainsAny(s, ",;") {
		return n, err
	}
	i := strings.LastIndexByte(s, '=')
	if i > 0 && strings.IndexByte("<>!\\", s[i-1]) >= 0 {
		return n, err
	}
	return parseAnswer(strings.TrimSpace(s[i+1:]))
}

// decimalComma returns s with its comma made a decimal point when s is a single number
// written with one comma that is not a thousands separator ("1,22", "0,111", "1000,99").
func decimalComma(s string) (string, bool) {
	i := strings.IndexByte(s, ',')
	if i < 0 || strings.Count(s, ",") != 1 {
		return "", false
	}
	intPart := strings.TrimPrefix(strings.TrimPrefix(s[:i], "-"), "+")
	if !allDigits(intPart) || !allDigits(s[i+1:]) || thousandsAt(s, i-len(intPart), i) {
		return "", false
	}
	return s[:i] + "." + s[i+1:], true
}

// allDigits reports whether t is one or more ASCII digits.
func allDigits(t string) bool {
	for k := 0; k < len(t); k++ {
		if !isDigit(t[k]) {
			return false
		}
	}
	return t != ""
}

// cmp carries the budget of one comparison.
type cmp struct {
	b   *budget
	err error
}

// top compares two whole answers. Equations unwrap as Math-Verify does: the answer of a
// chain of = and ≈ is its last exact side ("x = 5+5+1 = 7 = 11" is 11, "x = 1/3 ≈ 0.33" is
// 1/3, "x ≈ 11" is 11) when the reference is not an equation; a reference unwraps only when it
// assigns to names ("x = 3", "(p, q) = (3, 2)", "AB = 4"); two assignments compare their
// names and values. A percentage (pPct, gPct: a trailing percent sign or word) equals its
// number over 100; a reference percentage also equals its number, and a predicted one the
// reference number it spells ("28%" for 28).
func (c *cmp) top(p, g *node, pPct, gPct bool) bool {
	var ok bool
	if p, ok = expandPM(p); !ok {
		return false
	}
	if g, ok = expandPM(g); !ok {
		return false
	}
	p, g = matrixValue(p), matrixValue(g)
	if isAssignment(p) && isAssignment(g) {
		return c.eq(p.args[0], g.args[0]) && c.eq(chainValue(p), chainValue(g))
	}
	if g.op != opRel {
		p = unwrapChains(p)
	}
	if p.op != opRel {
		g = unwrapAssignments(g)
	}
	if pPct == gPct || !isScalar(p) || !isScalar(g) {
		return c.eq(p, g)
	}
	hundred := &node{op: opNum, val: big.NewRat(100, 1)}
	if gPct {
		return c.eq(p, g) || c.eq(p, &node{op: opDiv, args: []*node{g, hundred}})
	}
	plain := p.op == opNum || p.op == opNeg && p.args[0].op == opNum
	return c.eq(&node{op: opDiv, args: []*node{p, hundred}}, g) || plain && c.eq(p, g)
}

// chainValue returns the value a chain of = and ≈ states: its last member written after an
// "="; with only ≈, the approximation of a name ("x ≈ 11" is 11) or else the exact first side
// ("\frac{22}{7} ≈ 3.14" is 22/7); "5 = x" is 5. It returns nil for any other relation.
func chainValue(n *node) *node {
	if n.op != opRel {
		return nil
	}
	var v *node
	for i, r := range n.rels {
		switch r {
		case "=":
			v = n.args[i+1]
		case "≈":
		default:
			return nil
		}
	}
	if v == nil { // only ≈: the approximation of a name ("x ≈ 11"), else the exact first side
		v = n.args[len(n.args)-1]
		if !onlyNames(n.args[0]) {
			v = n.args[0]
		}
	}
	if len(n.args) == 2 && v.op == opVar && !hasVars(n.args[0]) {
		return n.args[0]
	}
	return v
}

// isAssignment reports whether n is a chain of = and ≈ whose left side is names only:
// "x = 3", "f(x) = 2x", "(p, q) = (3, 2)", "\frac{NO}{BO} = \frac{1}{\sqrt6}".
func isAssignment(n *node) bool {
	return n.op == opRel && chainValue(n) != nil && onlyNames(n.args[0])
}

// onlyNames reports whether n is built from variables alone: x, AB, x_1, NO/BO, (p, q).
func onlyNames(n *node) bool {
	switch n.op {
	case opVar:
		return true
	case opMul, opDiv, opTuple:
		for _, a := range n.args {
			if !onlyNames(a) {
				return false
			}
		}
		return true
	}
	return false
}

// unwrapChains replaces every chain of = and ≈ in n (also inside sets and tuples) by its
// value.
func unwrapChains(n *node) *node {
	return mapItems(n, func(m *node) *node {
		if v := chainValue(m); v != nil {
			return v
		}
		return m
	})
}

// unwrapAssignments replaces every assignment in n (also inside sets and tuples) by its value.
func unwrapAssignments(n *node) *node {
	return mapItems(n, func(m *node) *node {
		if isAssignment(m) {
			return chainValue(m)
		}
		return m
	})
}

// mapItems applies f to n, or to the items of a set or tuple (recursively).
func mapItems(n *node, f func(*node) *node) *node {
	if n.op != opSet && n.op != opTuple {
		return f(n)
	}
	args := make([]*node, len(n.args))
	for i, a := range n.args {
		args[i] = mapItems(a, f)
	}
	m := *n
	m.args = args
	return &m
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

// unordered matches two sets: as multisets first (equivalence is transitive up to
// tolerance, so greedy matching is enough), then, when that fails, with repeated elements
// dropped, as Math-Verify's sets do ({(3,17), (3,17), (1,2)} is {(3,17), (1,2)}).
func (c *cmp) unordered(ps, gs []*node) bool {
	if len(ps) > maxSet || len(gs) > maxSet {
		return false
	}
	if len(ps) == len(gs) && c.matchAll(ps, gs) {
		return true
	}
	dp, dg := c.distinct(ps), c.distinct(gs)
	if len(dp) == len(ps) && len(dg) == len(gs) || len(dp) != len(dg) {
		return false
	}
	return c.matchAll(dp, dg)
}

// matchAll matches the elements of ps to those of gs one to one, greedily.
func (c *cmp) matchAll(ps, gs []*node) bool {
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

// distinct returns xs without the elements equal to an earlier one.
func (c *cmp) distinct(xs []*node) []*node {
	out := make([]*node, 0, len(xs))
	for _, x := range xs {
		if !slices.ContainsFunc(out, func(y *node) bool { return c.eq(x, y) }) {
			out = append(out, x)
		}
	}
	return out
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

// relInterval turns an inequality in one bare variable (or f(x)) with constant bounds into an
// interval: x > 3 → (3, ∞), 2 < x ≤ 5 → (2, 5], 0 < f(x) < 1 → (0, 1); and a ≤ |x| ≤ b with
// 0 ≤ a into the union [−b, −a] ∪ [a, b].
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
	isUnknown := func(m *node) bool { return m.op == opVar || isCall(m) }
	switch len(n.args) {
	case 2:
		r, ok := open(n.rels[0])
		if !ok {
			return nil
		}
		if isUnknown(n.args[1]) && !hasVars(n.args[0]) { // a < x
			return &node{op: opInterval, args: []*node{n.args[0], inf}, open: "(["[r], close: ')'}
		}
		if isUnknown(n.args[0]) && !hasVars(n.args[1]) { // x < b
			return &node{op: opInterval, args: []*node{ninf, n.args[1]}, open: '(', close: ")]"[r]}
		}
	case 3:
		r1, ok1 := open(n.rels[0])
		r2, ok2 := open(n.rels[1])
		if !ok1 || !ok2 || hasVars(n.args[0]) || hasVars(n.args[2]) {
			return nil
		}
		lo, mid, hi := n.args[0], n.args[1], n.args[2]
		if isUnknown(mid) {
			return &node{op: opInterval, args: []*node{lo, hi}, open: "(["[r1], close: ")]"[r2]}
		}
		if mid.op == opFunc && mid.name == "abs" && len(mid.args) == 1 && isUnknown(mid.args[0]) {
			if v, err := exactEval(lo, &budget{}); err != nil || !v.real() || v.re.Sign() < 0 {
				return nil
			}
			neg := func(m *node) *node { return &node{op: opNeg, args: []*node{m}} }
			return &node{op: opUnion, args: []*node{
				{op: opInterval, args: []*node{neg(hi), neg(lo)}, open: "(["[r2], close: ")]"[r1]},
				{op: opInterval, args: []*node{lo, hi}, open: "(["[r1], close: ")]"[r2]},
			}}
		}
	}
	return nil
}

// maxMatrixDim caps the rows and columns of a matrix evaluated by matrixValue.
const maxMatrixDim = 12

// matrixValue evaluates sums, products and scalar multiples of matrices ("A + B", "A B",
// "2A", "-A") into one matrix of entry expressions; any other tree is returned as it is.
func matrixValue(n *node) *node {
	if n.op == opAdd || n.op == opMul || n.op == opNeg {
		// Entries share the factors' entries; a long product would expand exponentially.
		if m, ok := matrixExpr(n, 0); ok && sizeAtMost(m, maxNodes*4, new(int)) {
			return m
		}
	}
	return n
}

// sizeAtMost reports whether the tree n, expanded (shared subtrees counted each time they
// occur), has at most limit nodes; count carries the nodes seen so far.
func sizeAtMost(n *node, limit int, count *int) bool {
	if n == nil {
		return true
	}
	if *count++; *count > limit {
		return false
	}
	for _, a := range n.args {
		if !sizeAtMost(a, limit, count) {
			return false
		}
	}
	return true
}

func matrixExpr(n *node, depth int) (*node, bool) {
	if depth > 32 {
		return nil, false
	}
	switch n.op {
	case opMatrix:
		return n, n.rows <= maxMatrixDim && n.cols <= maxMatrixDim
	case opNeg:
		m, ok := matrixExpr(n.args[0], depth+1)
		if !ok {
			return nil, false
		}
		return mapEntries(m, func(e *node) *node { return &node{op: opNeg, args: []*node{e}} }), true
	case opAdd:
		var acc *node
		for _, a := range n.args {
			m, ok := matrixExpr(a, depth+1)
			if !ok || acc != nil && (m.rows != acc.rows || m.cols != acc.cols) {
				return nil, false
			}
			if acc == nil {
				acc = m
				continue
			}
			sum := *acc
			sum.args = make([]*node, len(acc.args))
			for i := range acc.args {
				sum.args[i] = &node{op: opAdd, args: []*node{acc.args[i], m.args[i]}}
			}
			acc = &sum
		}
		return acc, acc != nil
	case opMul:
		var acc *node
		var scalars []*node
		for _, a := range n.args {
			if isScalar(a) && !hasMatrix(a) {
				scalars = append(scalars, a)
				continue
			}
			m, ok := matrixExpr(a, depth+1)
			if !ok {
				return nil, false
			}
			if acc == nil {
				acc = m
				continue
			}
			if acc.cols != m.rows {
				return nil, false
			}
			prod := &node{op: opMatrix, rows: acc.rows, cols: m.cols, args: make([]*node, acc.rows*m.cols)}
			for i := range acc.rows {
				for j := range m.cols {
					terms := make([]*node, acc.cols)
					for k := range acc.cols {
						terms[k] = &node{op: opMul, args: []*node{acc.args[i*acc.cols+k], m.args[k*m.cols+j]}}
					}
					prod.args[i*m.cols+j] = &node{op: opAdd, args: terms}
				}
			}
			acc = prod
		}
		if acc == nil {
			return nil, false
		}
		if len(scalars) > 0 {
			acc = mapEntries(acc, func(e *node) *node { return &node{op: opMul, args: append(slices.Clone(scalars), e)} })
		}
		return acc, true
	}
	return nil, false
}

// mapEntries returns the matrix m with f applied to each entry.
func mapEntries(m *node, f func(*node) *node) *node {
	r := *m
	r.args = make([]*node, len(m.args))
	for i, e := range m.args {
		r.args[i] = f(e)
	}
	return &r
}

// hasOp reports whether the tree n has a node with operator o.
func hasOp(n *node, o op) bool {
	if n == nil {
		return false
	}
	if n.op == o {
		return true
	}
	for _, a := range n.args {
		if hasOp(a, o) {
			return true
		}
	}
	return false
}

func hasPM(n *node) bool     { return hasOp(n, opPM) }
func hasVars(n *node) bool   { return hasOp(n, opVar) }
func hasMatrix(n *node) bool { return hasOp(n, opMatrix) }
