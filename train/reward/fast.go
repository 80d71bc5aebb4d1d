package reward

import (
	"math"
	"math/cmplx"
)

// f64eval evaluates a scalar tree in complex128 as a cheap first look: ok is false for
// anything it does not model the way numEval does (factorials, floors, negative bases under
// fractional powers, overflow), and shaky is set when a sum cancels so much that float64
// cannot be trusted. It is used only to reject values that clearly differ.
func f64eval(n *node, env map[string]complex128, shaky *bool) (complex128, bool) {
	switch n.op {
	case opNum:
		f, _ := n.val.Float64()
		if math.IsInf(f, 0) || f == 0 && n.val.Sign() != 0 {
			return 0, false
		}
		return complex(f, 0), true
	case opVar:
		v, ok := env[n.name]
		return v, ok
	case opConst:
		switch n.name {
		case "pi":
			return math.Pi, true
		case "e":
			return math.E, true
		case "i":
			return 1i, true
		}
		return 0, false
	case opNeg:
		a, ok := f64eval(n.args[0], env, shaky)
		return pz(-a), ok
	case opAdd:
		var sum complex128
		var mag float64
		for _, x := range n.args {
			a, ok := f64eval(x, env, shaky)
			if !ok {
				return 0, false
			}
			sum += a
			mag += cmplx.Abs(a)
		}
		if cmplx.Abs(sum) < 1e-6*mag {
			*shaky = true
		}
		return sum, finite64(sum)
	case opMul:
		prod := complex(1, 0)
		for _, x := range n.args {
			a, ok := f64eval(x, env, shaky)
			if !ok {
				return 0, false
			}
			prod *= a
		}
		return prod, finite64(prod)
	case opDiv:
		a, ok1 := f64eval(n.args[0], env, shaky)
		b, ok2 := f64eval(n.args[1], env, shaky)
		if !ok1 || !ok2 || b == 0 {
			return 0, false
		}
		r := a / b
		return r, finite64(r)
	case opPow:
		a, ok1 := f64eval(n.args[0], env, shaky)
		b, ok2 := f64eval(n.args[1], env, shaky)
		if !ok1 || !ok2 || a == 0 {
			return 0, false
		}
		a, b = pz(a), pz(b)
		var r complex128
		switch {
		case imag(a) == 0 && imag(b) == 0 && real(a) > 0:
			r = complex(math.Pow(real(a), real(b)), 0)
		case imag(b) == 0 && real(b) == math.Trunc(real(b)) && math.Abs(real(b)) <= 64:
			r = 1
			k := int(math.Abs(real(b)))
			for range k {
				r *= a
			}
			if real(b) < 0 {
				r = 1 / r
			}
		case imag(a) == 0 && real(a) < 0:
			return 0, false // numEval takes real odd roots; leave it to numEval
		default:
			r = cmplx.Pow(a, b)
		}
		return r, finite64(r)
	case opFunc:
		if len(n.args) != 1 {
			return 0, false
		}
		a, ok := f64eval(n.args[0], env, shaky)
		if !ok {
			return 0, false
		}
		a = pz(a)
		var r complex128
		switch n.name {
		case "sqrt":
			r = cmplx.Sqrt(a)
		case "abs":
			r = complex(cmplx.Abs(a), 0)
		default:
			f, ok := cfuncs[n.name]
			if !ok {
				return 0, false
			}
			r = f(a)
		}
		return r, finite64(r)
	}
	return 0, false
}

// pz turns a negative zero imaginary part into +0, so that branch cuts (sqrt, log of a
// negative real) take the principal side as numEval does.
func pz(c complex128) complex128 {
	if imag(c) == 0 {
		return complex(real(c), 0)
	}
	return c
}

func finite64(c complex128) bool { return !cmplx.IsInf(c) && !cmplx.IsNaN(c) }

// clearlyDiffer reports whether a float64 look shows p and g apart by more than 1e-4
// relative, far beyond every tolerance of the exact comparison.
func clearlyDiffer(p, g *node, env map[string]complex128) bool {
	shaky := false
	a, ok1 := f64eval(p, env, &shaky)
	b, ok2 := f64eval(g, env, &shaky)
	if !ok1 || !ok2 || shaky {
		return false
	}
	d := cmplx.Abs(a - b)
	m := max(cmplx.Abs(a), cmplx.Abs(b))
	return d > 1e-4*m && d > 1e-300
}
