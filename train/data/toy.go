package data

import (
	"fmt"
	"hash/fnv"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Format is the toy task's prompt for a problem: the problem and a newline, no instruction
// (for a byte-level model of a million parameters an instruction is a prefix to attend past:
// measured, it delays learning to copy the operands), as ToyChatTemplate renders it. The
// assistant text (Problem.Demo) follows directly.
func Format(problem string) string { return problem + "\n" }

// Kind names a toy problem generator.
type Kind string

// The toy kinds. The basic kinds are what the warm-up demonstrates, one call each. The P
// kinds of the multi-call job name a number P and an operation on it; each composed kind
// gives P as a product "AxB" (not a Python expression), so its natural solution is two calls:
// the product first, then the operation on the printed value (Problem.Chain).
const (
	Mul      Kind = "mul"      // Compute 482*913.              print(482*913)
	PowMod   Kind = "powmod"   // Compute 47^123 mod 456.       print(pow(47,123,456))
	DigitSum Kind = "digsum"   // Digit sum of 47^123.          print(sum(map(int,str(pow(47,123)))))
	PMul     Kind = "p_mul"    // P=4368. Compute P*37.         print(4368*37)
	PDigSum  Kind = "p_digsum" // P=4368. Digit sum of P.       print(sum(map(int,str(4368))))
	PPowMod  Kind = "p_powmod" // P=4368. Compute P^123 mod 456. print(pow(4368,123,456))
	// The composed kinds: P=48x91 with the operations of p_mul, p_digsum and p_powmod.
	Mul3      Kind = "mul3"       // P=48x91. Compute P*37.         print(48*91) → 4368, print(4368*37)
	MulDigSum Kind = "mul_digsum" // P=48x91. Digit sum of P.       print(48*91) → 4368, print(sum(map(int,str(4368))))
	MulPowMod Kind = "mul_powmod" // P=48x91. Compute P^123 mod 456. print(48*91) → 4368, print(pow(4368,123,456))
)

// Basic lists the kinds the supervised warm-up demonstrates.
var Basic = []Kind{Mul, PowMod, DigitSum, PMul, PDigSum, PPowMod}

// Composed lists the kinds whose solution takes two calls, left for RL to find unless the
// warm-up is told to demonstrate their chains (data.toy.chain_demos).
var Composed = []Kind{Mul3, MulDigSum, MulPowMod}

// AllKinds lists every kind, basic first.
var AllKinds = append(append([]Kind{}, Basic...), Composed...)

// Basic reports whether k is one of Basic, the kinds the warm-up demonstrates with their
// one-call solution (a composed kind gets its chain only where data.toy.chain_demos says).
func (k Kind) Basic() bool {
	for _, b := range Basic {
		if k == b {
			return true
		}
	}
	return false
}

// ParseKinds maps names to kinds; no names means AllKinds. It returns an error naming an
// unknown kind.
func ParseKinds(names []string) ([]Kind, error) {
	if len(names) == 0 {
		return AllKinds, nil
	}
	out := make([]Kind, len(names))
	for i, n := range names {
		ok := false
		for _, k := range AllKinds {
			if string(k) == n {
				out[i], ok = k, true
			}
		}
		if !ok {
			return nil, fmt.Errorf("data: unknown toy kind %q (want one of %v)", n, AllKinds)
		}
	}
	return out, nil
}

// Call is one code block and the output the interpreter shows for it.
type Call struct {
	Code, Output string
}

// Problem is one generated toy problem.
type Problem struct {
	Prompt string // the problem text (put it through Format)
	Answer string // the exact answer, as Python prints it
	Kind   Kind
	Calls  []Call // a one-call solution
	Chain  []Call // for composed kinds, the two-call solution (product first); nil otherwise
	// Guess is what a teacher writes without computing: a product rounded to two
	// significant digits, half the modulus, 4.5 per digit of the number whose digits are
	// summed.
	Guess string
}

// Demo is the assistant text of the one-call solution in the interpreter protocol, tool
// output filled in: "```python\nCODE\n```\n```output\nOUT\n```\n\\boxed{ANSWER}".
func (p Problem) Demo() string { return DemoText(p.Calls, p.Answer) }

// Segments is Demo split into the parts the policy writes (Tool false) and the parts the
// interpreter appends (Tool true), so a warm-up can mask tool tokens as RL does.
func (p Problem) Segments() []Segment { return DemoSegments(p.Calls, p.Answer) }

// ChainSegments is the two-call solution (Chain) as segments, nil for a kind without one.
func (p Problem) ChainSegments() []Segment {
	if p.Chain == nil {
		return nil
	}
	return DemoSegments(p.Chain, p.Answer)
}

// Segment is a piece of assistant text and who writes it.
type Segment struct {
	Text string
	Tool bool
}

// DemoSegments is the protocol text of calls followed by the boxed answer, as segments: each
// call is "```python\n"+code+"\n```" (policy) then "\n```output\n"+output+"\n```\n" (tool).
func DemoSegments(calls []Call, answer string) []Segment {
	var s []Segment
	for _, c := range calls {
		s = append(s, Segment{"```python\n" + c.Code + "\n```", false}, Segment{"\n```output\n" + c.Output + "\n```\n", true})
	}
	return append(s, Segment{"\\boxed{" + answer + "}", false})
}

// DemoText is the concatenation of DemoSegments.
func DemoText(calls []Call, answer string) string {
	var b strings.Builder
	for _, s := range DemoSegments(calls, answer) {
		b.WriteString(s.Text)
	}
	return b.String()
}

// heldOut reports whether a prompt belongs to the held-out split: one in eight prompts, by
// hash, so the splits are disjoint whatever the seeds.
func heldOut(prompt string) bool {
	h := fnv.New32a()
	h.Write([]byte(prompt))
	return h.Sum32()%8 == 0
}

// Problems returns n distinct training problems (never in the held-out split), cycling
// through kinds (AllKinds when empty), determined by seed. It returns an error when a kind has
// too few distinct problems for n, and panics on an unknown kind.
func Problems(seed uint64, n int, kinds []Kind) ([]Problem, error) {
	return generate(seed, n, kinds, false)
}

// HeldOut returns n distinct held-out problems, disjoint from every Problems set; errors as
// Problems.
func HeldOut(seed uint64, n int, kinds []Kind) ([]Problem, error) {
	return generate(seed, n, kinds, true)
}

// maxMisses is how many draws in a row may repeat a problem (or fall in the other split)
// before generate decides the kind is exhausted.
const maxMisses = 1000

func generate(seed uint64, n int, kinds []Kind, eval bool) ([]Problem, error) {
	if len(kinds) == 0 {
		kinds = AllKinds
	}
	salt := uint64(0x746f79)
	if eval {
		salt = 0x6576616c
	}
	r := rand.New(rand.NewPCG(seed, salt))
	seen := map[string]bool{}
	out := make([]Problem, 0, n)
	for misses := 0; len(out) < n; {
		k := kinds[len(out)%len(kinds)]
		p := Generate(r, k)
		if heldOut(p.Prompt) != eval || seen[p.Prompt] {
			if misses++; misses > maxMisses {
				return nil, fmt.Errorf("data: toy kind %s has too few distinct problems for %d (found %d of every kind)", k, n, len(out)/len(kinds))
			}
			continue
		}
		misses = 0
		seen[p.Prompt] = true
		out = append(out, p)
	}
	return out, nil
}

// digits returns a random number of d digits (no leading zero).
func digits(r *rand.Rand, d int) *big.Int {
	b := make([]byte, d)
	b[0] = byte('1' + r.IntN(9))
	for i := 1; i < d; i++ {
		b[i] = byte('0' + r.IntN(10))
	}
	x, _ := new(big.Int).SetString(string(b), 10)
	return x
}

func between(r *rand.Rand, lo, hi int) int { return lo + r.IntN(hi-lo+1) }

// twoDigits rounds the decimal integer s to two significant digits ("440066" → "440000").
func twoDigits(s string) string {
	if len(s) <= 2 {
		return s
	}
	x, _ := strconv.Atoi(s[:3])
	x = (x + 5) / 10
	return strconv.Itoa(x) + strings.Repeat("0", len(s)-2)
}

func digitSum(x *big.Int) *big.Int {
	s := 0
	for _, c := range x.String() {
		if c >= '0' && c <= '9' {
			s += int(c - '0')
		}
	}
	return big.NewInt(int64(s))
}

// Generate draws one problem of kind k from r. It panics on an unknown kind.
func Generate(r *rand.Rand, k Kind) Problem {
	p := Problem{Kind: k}
	one := func(code string, v *big.Int) {
		p.Answer = v.String()
		p.Calls = []Call{{code, p.Answer}}
	}
	switch k {
	case Mul:
		a, b := digits(r, 3), digits(r, 3)
		p.Prompt = fmt.Sprintf("Compute %v*%v.", a, b)
		one(fmt.Sprintf("print(%v*%v)", a, b), new(big.Int).Mul(a, b))
		p.Guess = twoDigits(p.Answer)
	case PowMod:
		b, e, m := digits(r, 2), digits(r, 3), digits(r, 3)
		p.Prompt = fmt.Sprintf("Compute %v^%v mod %v.", b, e, m)
		one(fmt.Sprintf("print(pow(%v,%v,%v))", b, e, m), new(big.Int).Exp(b, e, m))
		p.Guess = new(big.Int).Rsh(m, 1).String()
	case DigitSum:
		b, e := digits(r, 2), digits(r, 3)
		p.Prompt = fmt.Sprintf("Digit sum of %v^%v.", b, e)
		x := new(big.Int).Exp(b, e, nil)
		one(fmt.Sprintf("print(sum(map(int,str(pow(%v,%v)))))", b, e), digitSum(x))
		p.Guess = fmt.Sprint(len(x.String()) * 9 / 2)
	case PMul, PDigSum, PPowMod, Mul3, MulDigSum, MulPowMod:
		// P is a number of three or four digits (the P kinds) or a product AxB of two
		// two-digit numbers (the composed kinds), so that the second call of a chain applies
		// the operation to a number like a P problem's.
		a, b := digits(r, 2), digits(r, 2)
		v := new(big.Int).Mul(a, b)
		if k == PMul || k == PDigSum || k == PPowMod {
			v = big.NewInt(int64(between(r, 100, 9999)))
		}
		var op, code string // the operation on P, and its code with P as %s
		switch k {
		case PMul, Mul3:
			c := digits(r, 2)
			op, code = fmt.Sprintf("Compute P*%v.", c), "print(%s*"+c.String()+")"
			p.Answer = new(big.Int).Mul(v, c).String()
			p.Guess = twoDigits(p.Answer)
		case PDigSum, MulDigSum:
			op, code = "Digit sum of P.", "print(sum(map(int,str(%s))))"
			p.Answer = digitSum(v).String()
			p.Guess = fmt.Sprint(len(v.String()) * 9 / 2)
		default:
			e, m := big.NewInt(int64(between(r, 10, 999))), big.NewInt(int64(between(r, 10, 999)))
			op, code = fmt.Sprintf("Compute P^%v mod %v.", e, m), fmt.Sprintf("print(pow(%%s,%v,%v))", e, m)
			p.Answer = new(big.Int).Exp(v, e, m).String()
			p.Guess = new(big.Int).Rsh(m, 1).String()
		}
		if k == PMul || k == PDigSum || k == PPowMod {
			p.Prompt = fmt.Sprintf("P=%v. %s", v, op)
			p.Calls = []Call{{fmt.Sprintf(code, v), p.Answer}}
			break
		}
		p.Prompt = fmt.Sprintf("P=%vx%v. %s", a, b, op)
		p.Calls = []Call{{fmt.Sprintf(code, fmt.Sprintf("%v*%v", a, b)), p.Answer}}
		p.Chain = []Call{{fmt.Sprintf("print(%v*%v)", a, b), v.String()}, {fmt.Sprintf(code, v), p.Answer}}
	default:
		panic(fmt.Sprintf("data: unknown toy kind %q", k))
	}
	return p
}

// DirectSegments is the demonstration of a teacher that answers without calling the
// interpreter: "\\boxed{GUESS}", its estimate (Guess).
func (p Problem) DirectSegments() []Segment { return DemoSegments(nil, p.Guess) }

// ParseDirect parses a teacher specification "kind:share,kind:share": for each kind the share
// of warm-up demonstrations that state the answer without calling the interpreter (kinds not
// named: 0). An empty spec is no kind. It returns an error naming an unknown kind, a share
// outside [0, 1] or a malformed pair.
func ParseDirect(spec string) (map[Kind]float64, error) {
	if strings.TrimSpace(spec) == "" {
		return map[Kind]float64{}, nil
	}
	return parseShares(strings.Split(spec, ","), false)
}

// ParseChainDemos parses the warm-up's chain demonstrations, entries "kind" or "kind:share":
// for each named kind the share of its training problems whose two-call chain the warm-up
// demonstrates (a kind alone: all of them; kinds not named: none). It returns an error naming
// an unknown kind, a share outside [0, 1] or a malformed entry.
func ParseChainDemos(entries []string) (map[Kind]float64, error) {
	return parseShares(entries, true)
}

// parseShares parses "kind:share" pairs; with bare a pair may be a kind alone (share 1).
func parseShares(pairs []string, bare bool) (map[Kind]float64, error) {
	out := map[Kind]float64{}
	for _, pair := range pairs {
		name, share, ok := strings.Cut(strings.TrimSpace(pair), ":")
		if !ok && !bare {
			return nil, fmt.Errorf("data: %q is not kind:share", pair)
		}
		kinds, err := ParseKinds([]string{strings.TrimSpace(name)})
		if err != nil {
			return nil, err
		}
		v := 1.0
		if ok {
			v, err = strconv.ParseFloat(strings.TrimSpace(share), 64)
			if err != nil || !(v >= 0 && v <= 1) {
				return nil, fmt.Errorf("data: share %q of kind %s is not a number in [0, 1]", share, name)
			}
		}
		out[kinds[0]] = v
	}
	return out, nil
}

// Examples converts problems to dataset examples (Problem and Answer).
func Examples(ps []Problem) []Example {
	out := make([]Example, len(ps))
	for i, p := range ps {
		out[i] = Example{Problem: p.Prompt, Answer: p.Answer, Source: "toy:" + string(p.Kind)}
	}
	return out
}
