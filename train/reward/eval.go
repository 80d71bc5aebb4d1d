package reward

import (
	"errors"
	"math"
	"math/big"
	"math/cmplx"
	"time"
)

var (
	errNotExact  = errors.New("reward: not an exact rational")
	errUndefined = errors.New("reward: undefined value")
	errTooBig    = errors.New("reward: value too large to evaluate")
	errDeadline  = errors.New("reward: check deadline exceeded")
	errNotScalar = errors.New("reward: not a scalar")
)

// Caps that bound the work of one check.
const (
	maxRatBits  = 1 << 16   // bits of an exact numerator or denominator
	maxFact     = 3000      // largest n for an exact n!
	maxPowExp   = 1 << 40   // largest |n| for a numeric z^n by squaring
	numPrec     = 192       // bits of mantissa of numeric evaluation
	maxBinExp   = 1<<31 - 2 // largest binary exponent of a numeric value (big.Float's range)
	budgetCheck = 64        // steps between deadline checks
)

// budget bounds one check by a deadline, checked every budgetCheck steps.
type budget struct {
	deadline time.Time
	steps    int
}

func (b *budget) step() error {
	b.steps++
	if b.steps%budgetCheck == 0 && !b.deadline.IsZero() && time.Now().After(b.deadline) {
		return errDeadline
	}
	return nil
}

// gq is an exact Gaussian rational re + im·i; im is nil for a real value.
type gq struct{ re, im *big.Rat }

func (a gq) real() bool { return a.im == nil || a.im.Sign() == 0 }

func ratBits(r *big.Rat) int { return r.Num().BitLen() + r.Denom().BitLen() }

func checkBits(a gq) error {
	if ratBits(a.re) > maxRatBits || a.im != nil && ratBits(a.im) > maxRatBits {
		return errTooBig
	}
	return nil
}

// exactEval evaluates a variable-free tree over the Gaussian rationals. It fails with
// errNotExact for irrational parts (π, √2, sin), errUndefined for 0 in a denominator, and
// errTooBig past the size caps.
func exactEval(n *node, b *budget) (gq, error) {
	if err := b.step(); err != nil {
		return gq{}, err
	}
	switch n.op {
	case opNum:
		return gq{re: n.val}, nil
	case opConst:
		if n.name == "i" {
			return gq{re: new(big.Rat), im: big.NewRat(1, 1)}, nil
		}
		return gq{}, errNotExact
	case opNeg:
		a, err := exactEval(n.args[0], b)
		if err != nil {
			return gq{}, err
		}
		r := gq{re: new(big.Rat).Neg(a.re)}
		if a.im != nil {
			r.im = new(big.Rat).Neg(a.im)
		}
		return r, nil
	case opAdd:
		acc := gq{re: new(big.Rat)}
		for _, x := range n.args {
			a, err := exactEval(x, b)
			if err != nil {
				return gq{}, err
			}
			acc = gqAdd(acc, a)
		}
		return acc, checkBits(acc)
	case opMul:
		acc := gq{re: big.NewRat(1, 1)}
		for _, x := range n.args {
			a, err := exactEval(x, b)
			if err != nil {
				return gq{}, err
			}
			acc = gqMul(acc, a)
			if err := checkBits(acc); err != nil {
				return gq{}, err
			}
		}
		return acc, nil
	case opDiv:
		a, err := exactEval(n.args[0], b)
		if err != nil {
			return gq{}, err
		}
		d, err := exactEval(n.args[1], b)
		if err != nil {
			return gq{}, err
		}
		r, err := gqDiv(a, d)
		if err != nil {
			return gq{}, err
		}
		return r, checkBits(r)
	case opPow:
		e, err := exactEval(n.args[1], b)
		if err != nil {
			return gq{}, err
		}
		if !e.real() || !e.re.IsInt() {
			if e.real() && n.args[0].op != opConst {
				// A rational power of a rational that happens to be exact: 4^{1/2}, 8^{2/3}.
				if base, err := exactEval(n.args[0], b); err == nil && base.real() {
					if r, ok := ratRoot(base.re, e.re); ok {
						return gq{re: r}, nil
					}
				}
			}
			return gq{}, errNotExact
		}
		a, err := exactEval(n.args[0], b)
		if err != nil {
			return gq{}, err
		}
		return gqPow(a, e.re.Num())
	case opFunc:
		return exactFunc(n, b)
	case opFact:
		a, err := exactEval(n.args[0], b)
		if err != nil {
			return gq{}, err
		}
		if !a.real() || !a.re.IsInt() || a.re.Sign() < 0 {
			return gq{}, errNotExact
		}
		if !a.re.Num().IsInt64() || a.re.Num().Int64() > maxFact {
			return gq{}, errTooBig
		}
		f := new(big.Int).MulRange(1, a.re.Num().Int64())
		if a.re.Sign() == 0 {
			f.SetInt64(1)
		}
		return gq{re: new(big.Rat).SetInt(f)}, nil
	}
	return gq{}, errNotScalar
}

func exactFunc(n *node, b *budget) (gq, error) {
	args := make([]gq, len(n.args))
	for i, x := range n.args {
		a, err := exactEval(x, b)
		if err != nil {
			return gq{}, err
		}
		args[i] = a
	}
	switch n.name {
	case "sqrt":
		if len(args) == 1 && args[0].real() {
			x := args[0].re
			neg := x.Sign() < 0
			if neg {
				x = new(big.Rat).Neg(x)
			}
			if r, ok := ratRoot(x, big.NewRat(1, 2)); ok {
				if neg {
					return gq{re: new(big.Rat), im: r}, nil
				}
				return gq{re: r}, nil
			}
		}
	case "root":
		if len(args) == 2 && args[0].real() && args[1].real() && args[1].re.IsInt() && args[1].re.Sign() > 0 {
			if r, ok := ratRoot(args[0].re, new(big.Rat).Inv(args[1].re)); ok {
				return gq{re: r}, nil
			}
		}
	case "abs":
		if len(args) == 1 && args[0].real() {
			return gq{re: new(big.Rat).Abs(args[0].re)}, nil
		}
	case "binom":
		if len(args) == 2 && args[0].real() && args[1].real() && args[0].re.IsInt() && args[1].re.IsInt() {
			nn, k := args[0].re.Num(), args[1].re.Num()
			if !nn.IsInt64() || !k.IsInt64() || nn.Int64() > maxFact {
				return gq{}, errTooBig
			}
			if nn.Sign() >= 0 && k.Sign() >= 0 && k.Cmp(nn) <= 0 {
				return gq{re: new(big.Rat).SetInt(new(big.Int).Binomial(nn.Int64(), k.Int64()))}, nil
			}
			if nn.Sign() >= 0 {
				return gq{re: new(big.Rat)}, nil
			}
		}
	case "floor", "ceil":
		if len(args) == 1 && args[0].real() {
			q, m := new(big.Int).DivMod(args[0].re.Num(), args[0].re.Denom(), new(big.Int))
			if n.name == "ceil" && m.Sign() != 0 {
				q.Add(q, big.NewInt(1))
			}
			return gq{re: new(big.Rat).SetInt(q)}, nil
		}
	case "gcd", "lcm":
		if len(args) == 2 && args[0].real() && args[1].real() && args[0].re.IsInt() && args[1].re.IsInt() {
			x, y := new(big.Int).Abs(args[0].re.Num()), new(big.Int).Abs(args[1].re.Num())
			g := new(big.Int).GCD(nil, nil, x, y)
			if n.name == "gcd" {
				return gq{re: new(big.Rat).SetInt(g)}, nil
			}
			if g.Sign() == 0 {
				return gq{re: new(big.Rat)}, nil
			}
			return gq{re: new(big.Rat).SetInt(new(big.Int).Mul(x, new(big.Int).Quo(y, g)))}, nil
		}
	}
	return gq{}, errNotExact
}

// ratRoot returns x^e for rational e = p/q when the result is rational.
func ratRoot(x, e *big.Rat) (*big.Rat, bool) {
	q := e.Denom()
	if !q.IsInt64() || q.Int64() > 64 || x.Sign() < 0 {
		return nil, false
	}
	k := q.Int64()
	num, ok1 := intRoot(x.Num(), k)
	den, ok2 := intRoot(x.Denom(), k)
	if !ok1 || !ok2 {
		return nil, false
	}
	r := new(big.Rat).SetFrac(num, den)
	p := e.Num()
	if p.BitLen() > 20 {
		return nil, false
	}
	res, err := gqPow(gq{re: r}, p)
	if err != nil {
		return nil, false
	}
	return res.re, true
}

// intRoot returns the exact k-th root of a non-negative integer, if there is one.
func intRoot(x *big.Int, k int64) (*big.Int, bool) {
	if x.Sign() == 0 || x.Cmp(big.NewInt(1)) == 0 {
		return new(big.Int).Set(x), true
	}
	if k == 2 {
		r := new(big.Int).Sqrt(x)
		return r, new(big.Int).Mul(r, r).Cmp(x) == 0
	}
	// Newton on integers from a float estimate.
	f, _ := new(big.Float).SetInt(x).Float64()
	if math.IsInf(f, 0) {
		return nil, false
	}
	est := math.Round(math.Pow(f, 1/float64(k)))
	for _, d := range []float64{0, -1, 1} {
		r := big.NewInt(int64(est + d))
		if r.Sign() <= 0 {
			continue
		}
		if new(big.Int).Exp(r, big.NewInt(k), nil).Cmp(x) == 0 {
			return r, true
		}
	}
	return nil, false
}

func gqAdd(a, b gq) gq {
	r := gq{re: new(big.Rat).Add(a.re, b.re)}
	switch {
	case a.im != nil && b.im != nil:
		r.im = new(big.Rat).Add(a.im, b.im)
	case a.im != nil:
		r.im = a.im
	case b.im != nil:
		r.im = b.im
	}
	return r
}

func gqMul(a, b gq) gq {
	if a.real() && b.real() {
		return gq{re: new(big.Rat).Mul(a.re, b.re)}
	}
	ai, bi := a.im, b.im
	if ai == nil {
		ai = new(big.Rat)
	}
	if bi == nil {
		bi = new(big.Rat)
	}
	re := new(big.Rat).Sub(new(big.Rat).Mul(a.re, b.re), new(big.Rat).Mul(ai, bi))
	im := new(big.Rat).Add(new(big.Rat).Mul(a.re, bi), new(big.Rat).Mul(ai, b.re))
	return gq{re: re, im: im}
}

func gqDiv(a, d gq) (gq, error) {
	if d.real() {
		if d.re.Sign() == 0 {
			return gq{}, errUndefined
		}
		inv := new(big.Rat).Inv(d.re)
		return gqMul(a, gq{re: inv}), nil
	}
	// a / d = a · conj(d) / |d|²
	n2 := new(big.Rat).Add(new(big.Rat).Mul(d.re, d.re), new(big.Rat).Mul(d.im, d.im))
	conj := gq{re: d.re, im: new(big.Rat).Neg(d.im)}
	return gqMul(gqMul(a, conj), gq{re: new(big.Rat).Inv(n2)}), nil
}

func gqPow(a gq, e *big.Int) (gq, error) {
	if !e.IsInt64() {
		return gq{}, errTooBig
	}
	n := e.Int64()
	if a.real() && a.re.Sign() == 0 {
		if n < 0 {
			return gq{}, errUndefined
		}
		if n == 0 {
			return gq{re: big.NewRat(1, 1)}, nil
		}
		return gq{re: new(big.Rat)}, nil
	}
	if a.real() && (a.re.Cmp(big.NewRat(1, 1)) == 0) {
		return gq{re: big.NewRat(1, 1)}, nil
	}
	if a.real() && a.re.Cmp(big.NewRat(-1, 1)) == 0 {
		if n%2 == 0 {
			return gq{re: big.NewRat(1, 1)}, nil
		}
		return gq{re: big.NewRat(-1, 1)}, nil
	}
	abs := n
	if abs < 0 {
		abs = -abs
	}
	bits := ratBits(a.re)
	if a.im != nil {
		bits += ratBits(a.im)
	}
	if abs > maxRatBits || int64(bits)*abs > 2*maxRatBits {
		return gq{}, errTooBig
	}
	var r gq
	if a.real() {
		num := new(big.Int).Exp(a.re.Num(), big.NewInt(abs), nil)
		den := new(big.Int).Exp(a.re.Denom(), big.NewInt(abs), nil)
		r = gq{re: new(big.Rat).SetFrac(num, den)}
	} else {
		r = gq{re: big.NewRat(1, 1)}
		base := a
		for k := abs; k > 0; k >>= 1 {
			if k&1 == 1 {
				r = gqMul(r, base)
			}
			if k > 1 {
				base = gqMul(base, base)
			}
		}
	}
	if n < 0 {
		return gqDiv(gq{re: big.NewRat(1, 1)}, r)
	}
	return r, nil
}

// cnum is a complex number with big.Float parts of numPrec bits.
type cnum struct{ re, im *big.Float }

func newF() *big.Float { return new(big.Float).SetPrec(numPrec) }

func cReal(f *big.Float) cnum { return cnum{re: f, im: newF()} }

func cFromRat(r *big.Rat) cnum { return cReal(newF().SetRat(r)) }

var (
	bigPi, _, _ = big.ParseFloat("3.14159265358979323846264338327950288419716939937510582097494459230781640628620899863", 10, numPrec, big.ToNearestEven)
	bigE, _, _  = big.ParseFloat("2.71828182845904523536028747135266249775724709369995957496696762772407663035354759457", 10, numPrec, big.ToNearestEven)
)

// numEval evaluates a scalar tree numerically at the variable values in vars. low is set when
// a step went through float64 (transcendental functions), which limits the precision.
type numEval struct {
	vars map[string]cnum
	low  bool
	b    *budget
}

func finite(f *big.Float) bool {
	if f.IsInf() {
		return false
	}
	e := f.MantExp(nil)
	return e < maxBinExp && e > -maxBinExp
}

func (z cnum) ok() bool { return finite(z.re) && finite(z.im) }

func (z cnum) isZero() bool { return z.re.Sign() == 0 && z.im.Sign() == 0 }

// addF returns a + b, or a − b when sub. Operands whose exponents lie far apart are not
// aligned (math/big would allocate a mantissa as long as the gap): the smaller one is below
// the precision and is dropped.
func addF(a, b *big.Float, sub bool) *big.Float {
	if a.Sign() != 0 && b.Sign() != 0 && !a.IsInf() && !b.IsInf() {
		ea, eb := a.MantExp(nil), b.MantExp(nil)
		switch {
		case ea-eb > numPrec+8:
			return newF().Set(a)
		case eb-ea > numPrec+8:
			if sub {
				return newF().Neg(b)
			}
			return newF().Set(b)
		}
	}
	if sub {
		return newF().Sub(a, b)
	}
	return newF().Add(a, b)
}

func cAdd(a, b cnum) cnum {
	return cnum{addF(a.re, b.re, false), addF(a.im, b.im, false)}
}

func cSub(a, b cnum) cnum {
	return cnum{addF(a.re, b.re, true), addF(a.im, b.im, true)}
}

func cMul(a, b cnum) cnum {
	if a.im.Sign() == 0 && b.im.Sign() == 0 {
		return cReal(newF().Mul(a.re, b.re))
	}
	re := addF(newF().Mul(a.re, b.re), newF().Mul(a.im, b.im), true)
	im := addF(newF().Mul(a.re, b.im), newF().Mul(a.im, b.re), false)
	return cnum{re, im}
}

func cDiv(a, b cnum) (cnum, error) {
	if b.isZero() {
		return cnum{}, errUndefined
	}
	if b.im.Sign() == 0 {
		return cnum{newF().Quo(a.re, b.re), newF().Quo(a.im, b.re)}, nil
	}
	d := addF(newF().Mul(b.re, b.re), newF().Mul(b.im, b.im), false)
	re := addF(newF().Mul(a.re, b.re), newF().Mul(a.im, b.im), false)
	im := addF(newF().Mul(a.im, b.re), newF().Mul(a.re, b.im), true)
	return cnum{newF().Quo(re, d), newF().Quo(im, d)}, nil
}

func cAbs(a cnum) *big.Float {
	if a.im.Sign() == 0 {
		return newF().Abs(a.re)
	}
	return newF().Sqrt(addF(newF().Mul(a.re, a.re), newF().Mul(a.im, a.im), false))
}

func cSqrt(a cnum) cnum {
	if a.im.Sign() == 0 {
		if a.re.Sign() >= 0 {
			return cReal(newF().Sqrt(a.re))
		}
		return cnum{newF(), newF().Sqrt(newF().Neg(a.re))}
	}
	r := cAbs(a)
	two := newF().SetInt64(2)
	re := newF().Sqrt(newF().Quo(addF(r, a.re, false), two))
	im := newF().Sqrt(newF().Quo(addF(r, a.re, true), two))
	if a.im.Sign() < 0 {
		im.Neg(im)
	}
	return cnum{re, im}
}

func cPowInt(a cnum, n int64) (cnum, error) {
	if n < 0 {
		p, err := cPowInt(a, -n)
		if err != nil {
			return cnum{}, err
		}
		return cDiv(cReal(newF().SetInt64(1)), p)
	}
	r := cReal(newF().SetInt64(1))
	base := a
	for k := n; k > 0; k >>= 1 {
		if k&1 == 1 {
			r = cMul(r, base)
		}
		if k > 1 {
			base = cMul(base, base)
		}
		if !r.ok() || !base.ok() {
			return cnum{}, errTooBig
		}
	}
	return r, nil
}

// cRoot returns the real k-th root of a real x (negative x only for odd k), by Newton's method.
func cRoot(x *big.Float, k int64) (*big.Float, bool) {
	if x.Sign() == 0 {
		return newF(), true
	}
	neg := x.Sign() < 0
	if neg && k%2 == 0 {
		return nil, false
	}
	ax := newF().Abs(x)
	mant := newF()
	e := ax.MantExp(mant) // ax = mant · 2^e, mant in [0.5, 1)
	q := int64(e) / k
	rem := int64(e) - q*k
	m, _ := mant.Float64()
	y := newF().SetFloat64(math.Pow(m*math.Pow(2, float64(rem)), 1/float64(k)))
	y.SetMantExp(y, int(q))
	kf := newF().SetInt64(k)
	k1 := newF().SetInt64(k - 1)
	for range 6 {
		p := newF().SetInt64(1)
		for range k - 1 {
			p.Mul(p, y)
		}
		if p.Sign() == 0 {
			return nil, false
		}
		t := newF().Quo(ax, p)
		y = newF().Quo(addF(newF().Mul(k1, y), t, false), kf)
	}
	if neg {
		y.Neg(y)
	}
	return y, true
}

func toC128(a cnum) (complex128, bool) {
	re, _ := a.re.Float64()
	im, _ := a.im.Float64()
	if math.IsInf(re, 0) || math.IsInf(im, 0) {
		return 0, false
	}
	return complex(re, im), true
}

func fromC128(c complex128) (cnum, error) {
	if cmplx.IsNaN(c) || cmplx.IsInf(c) {
		return cnum{}, errUndefined
	}
	return cnum{newF().SetFloat64(real(c)), newF().SetFloat64(imag(c))}, nil
}

func (e *numEval) eval(n *node) (cnum, error) {
	if err := e.b.step(); err != nil {
		return cnum{}, err
	}
	switch n.op {
	case opNum:
		return cFromRat(n.val), nil
	case opVar:
		v, ok := e.vars[n.name]
		if !ok {
			return cnum{}, errNotScalar
		}
		return v, nil
	case opConst:
		switch n.name {
		case "pi":
			return cReal(bigPi), nil
		case "e":
			return cReal(bigE), nil
		case "i":
			return cnum{newF(), newF().SetInt64(1)}, nil
		}
		return cnum{}, errUndefined // infinity inside an expression
	case opNeg:
		a, err := e.eval(n.args[0])
		if err != nil {
			return cnum{}, err
		}
		return cnum{newF().Neg(a.re), newF().Neg(a.im)}, nil
	case opAdd, opMul:
		var acc cnum
		for i, x := range n.args {
			a, err := e.eval(x)
			if err != nil {
				return cnum{}, err
			}
			switch {
			case i == 0:
				acc = a
			case n.op == opAdd:
				acc = cAdd(acc, a)
			default:
				acc = cMul(acc, a)
			}
			if !acc.ok() {
				return cnum{}, errTooBig
			}
		}
		return acc, nil
	case opDiv:
		a, err := e.eval(n.args[0])
		if err != nil {
			return cnum{}, err
		}
		d, err := e.eval(n.args[1])
		if err != nil {
			return cnum{}, err
		}
		r, err := cDiv(a, d)
		if err != nil {
			return cnum{}, err
		}
		if !r.ok() {
			return cnum{}, errTooBig
		}
		return r, nil
	case opPow:
		return e.pow(n)
	case opFact:
		if x, err := exactEval(n.args[0], e.b); err == nil {
			if f, err := exactEval(n, e.b); err == nil {
				return cFromRat(f.re), nil
			} else if !errors.Is(err, errNotExact) {
				return cnum{}, err
			}
			_ = x
		}
		a, err := e.eval(n.args[0])
		if err != nil {
			return cnum{}, err
		}
		return e.float(func(c complex128) complex128 {
			if imag(c) != 0 || real(c) < 0 && real(c) == math.Trunc(real(c)) {
				return cmplx.NaN()
			}
			return complex(math.Gamma(real(c)+1), 0)
		}, a)
	case opFunc:
		return e.fn(n)
	}
	return cnum{}, errNotScalar
}

// float applies a float64 function, marking the result low precision.
func (e *numEval) float(f func(complex128) complex128, a cnum) (cnum, error) {
	c, ok := toC128(a)
	if !ok {
		return cnum{}, errTooBig
	}
	e.low = true
	return fromC128(f(c))
}

func (e *numEval) pow(n *node) (cnum, error) {
	// An exact exponent: integer powers by squaring, rational powers by roots.
	if ex, err := exactEval(n.args[1], e.b); err == nil && ex.real() {
		a, err := e.eval(n.args[0])
		if err != nil {
			return cnum{}, err
		}
		if ex.re.IsInt() {
			k := ex.re.Num()
			if !k.IsInt64() || k.Int64() > maxPowExp || k.Int64() < -maxPowExp {
				return cnum{}, errTooBig
			}
			return cPowInt(a, k.Int64())
		}
		q := ex.re.Denom()
		if a.im.Sign() == 0 && q.IsInt64() && q.Int64() <= 64 && (a.re.Sign() > 0 || q.Bit(0) == 1) {
			r, ok := cRoot(a.re, q.Int64())
			if ok && ex.re.Num().IsInt64() && ex.re.Num().Int64() < maxPowExp && ex.re.Num().Int64() > -maxPowExp {
				return cPowInt(cReal(r), ex.re.Num().Int64())
			}
		}
	} else if errors.Is(err, errDeadline) || errors.Is(err, errTooBig) {
		return cnum{}, err
	}
	a, err := e.eval(n.args[0])
	if err != nil {
		return cnum{}, err
	}
	x, err := e.eval(n.args[1])
	if err != nil {
		return cnum{}, err
	}
	ca, ok1 := toC128(a)
	cx, ok2 := toC128(x)
	if !ok1 || !ok2 {
		return cnum{}, errTooBig
	}
	e.low = true
	if ca == 0 {
		if real(cx) > 0 {
			return fromC128(0)
		}
		return cnum{}, errUndefined
	}
	if imag(ca) == 0 && real(ca) > 0 && imag(cx) == 0 {
		return fromC128(complex(math.Pow(real(ca), real(cx)), 0))
	}
	return fromC128(cmplx.Pow(ca, cx))
}

func (e *numEval) fn(n *node) (cnum, error) {
	if x, err := exactFunc(n, e.b); err == nil {
		r := cFromRat(x.re)
		if x.im != nil {
			r.im = newF().SetRat(x.im)
		}
		return r, nil
	}
	args := make([]cnum, len(n.args))
	for i, x := range n.args {
		a, err := e.eval(x)
		if err != nil {
			return cnum{}, err
		}
		args[i] = a
	}
	one := func() error {
		if len(args) != 1 {
			return errNotScalar
		}
		return nil
	}
	switch n.name {
	case "sqrt":
		if err := one(); err != nil {
			return cnum{}, err
		}
		return cSqrt(args[0]), nil
	case "root":
		if len(args) != 2 {
			return cnum{}, errNotScalar
		}
		if k, err := exactEval(n.args[1], e.b); err == nil && k.real() && k.re.IsInt() && k.re.Sign() > 0 && k.re.Num().IsInt64() && k.re.Num().Int64() <= 64 && args[0].im.Sign() == 0 {
			if r, ok := cRoot(args[0].re, k.re.Num().Int64()); ok {
				return cReal(r), nil
			}
		}
		ca, ok1 := toC128(args[0])
		ck, ok2 := toC128(args[1])
		if !ok1 || !ok2 || ck == 0 {
			return cnum{}, errUndefined
		}
		e.low = true
		return fromC128(cmplx.Pow(ca, 1/ck))
	case "abs":
		if err := one(); err != nil {
			return cnum{}, err
		}
		return cReal(cAbs(args[0])), nil
	case "logb":
		if len(args) != 2 {
			return cnum{}, errNotScalar
		}
		a, ok1 := toC128(args[0])
		b, ok2 := toC128(args[1])
		if !ok1 || !ok2 || a == 0 || b == 0 || b == 1 {
			return cnum{}, errUndefined
		}
		e.low = true
		return fromC128(cmplx.Log(a) / cmplx.Log(b))
	case "floor", "ceil":
		if err := one(); err != nil {
			return cnum{}, err
		}
		if args[0].im.Sign() != 0 {
			return cnum{}, errUndefined
		}
		if args[0].re.MantExp(nil) > numPrec+64 { // already an integer at this precision
			return cReal(args[0].re), nil
		}
		i, acc := args[0].re.Int(nil)
		if i == nil {
			return cnum{}, errTooBig
		}
		if n.name == "floor" && acc == big.Above && args[0].re.Sign() < 0 {
			i.Sub(i, big.NewInt(1))
		}
		if n.name == "ceil" && acc == big.Below && args[0].re.Sign() > 0 {
			i.Add(i, big.NewInt(1))
		}
		return cReal(newF().SetInt(i)), nil
	case "binom":
		if len(args) != 2 {
			return cnum{}, errNotScalar
		}
		a, ok1 := toC128(args[0])
		b, ok2 := toC128(args[1])
		if !ok1 || !ok2 || imag(a) != 0 || imag(b) != 0 {
			return cnum{}, errUndefined
		}
		e.low = true
		x, k := real(a), real(b)
		lg := func(v float64) float64 { r, _ := math.Lgamma(v + 1); return r }
		return fromC128(complex(math.Round(math.Exp(lg(x)-lg(k)-lg(x-k))*1e9)/1e9, 0))
	}
	if err := one(); err != nil {
		return cnum{}, err
	}
	f, ok := cfuncs[n.name]
	if !ok {
		return cnum{}, errNotScalar
	}
	return e.float(f, args[0])
}

var cfuncs = map[string]func(complex128) complex128{
	"sin": cmplx.Sin, "cos": cmplx.Cos, "tan": cmplx.Tan,
	"cot":  func(c complex128) complex128 { return 1 / cmplx.Tan(c) },
	"sec":  func(c complex128) complex128 { return 1 / cmplx.Cos(c) },
	"csc":  func(c complex128) complex128 { return 1 / cmplx.Sin(c) },
	"asin": cmplx.Asin, "acos": cmplx.Acos, "atan": cmplx.Atan,
	"sinh": cmplx.Sinh, "cosh": cmplx.Cosh, "tanh": cmplx.Tanh,
	"ln": cmplx.Log, "log": cmplx.Log, "exp": cmplx.Exp,
	"lg": cmplx.Log10,
}
