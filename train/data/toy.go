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
// measured, it delays learning to copy the operands). The assistant text (Problem.Demo)
// follows directly; no chat template.
func Format(problem string) string { return problem + "\n" }

// Kind names a toy problem generator.
type Kind string

// The toy kinds. The basic kinds are what the warm-up demonstrates; each composed kind puts a
// product where a basic kind has a number, which the warm-up never shows.
const (
	Mul       Kind = "mul"        // Compute 482*913.              print(482*913)
	PowMod    Kind = "powmod"     // Compute 47^123 mod 456.       print(pow(47,123,456))
	DigitSum  Kind = "digsum"     // Digit sum of 47^123.          print(sum(map(int,str(pow(47,123)))))
	Mul3      Kind = "mul3"       // Compute 482*913*127.          print(482*913*127)
	MulDigSum Kind = "mul_digsum" // Digit sum of 4821*9127.       print(sum(map(int,str(4821*9127))))
	MulPowMod Kind = "mul_powmod" // Compute (48*91)^123 mod 1000. print(pow((48*91),123,1000))
)

// Basic lists the kinds the supervised warm-up demonstrates.
var Basic = []Kind{Mul, PowMod, DigitSum}

// Composed lists the kinds left for RL to find.
var Composed = []Kind{Mul3, MulDigSum, MulPowMod}

// AllKinds lists every kind, basic first.
var AllKinds = append(append([]Kind{}, Basic...), Composed...)

// Basic reports whether the warm-up should demonstrate kind k (it is one of Basic); a warm-up
// that also trains on the composed kinds' demonstrations leaves RL nothing to find.
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
	Calls  []Call // the canonical solution: one call
	Chain  []Call // for composed kinds, a two-call solution (product first); nil otherwise
	// Guess is what a teacher writes without computing: the product rounded to two
	// significant digits, half the modulus, 4.5 per digit of the power (basic kinds only).
	Guess string
}

// Demo is the assistant text of the canonical solution in the interpreter protocol, tool
// output filled in: "```python\nCODE\n```\n```output\nOUT\n```\n\\boxed{ANSWER}".
func (p Problem) Demo() string { return DemoText(p.Calls, p.Answer) }

// Segments is Demo split into the parts the policy writes (Tool false) and the parts the
// interpreter appends (Tool true), so a warm-up can mask tool tokens as RL does.
func (p Problem) Segments() []Segment { return DemoSegments(p.Calls, p.Answer) }

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
	case Mul3:
		a, b, c := digits(r, 2), digits(r, 2), digits(r, 2)
		p.Prompt = fmt.Sprintf("Compute %v*%v*%v.", a, b, c)
		ab := new(big.Int).Mul(a, b)
		one(fmt.Sprintf("print(%v*%v*%v)", a, b, c), new(big.Int).Mul(ab, c))
		p.Chain = []Call{{fmt.Sprintf("print(%v*%v)", a, b), ab.String()}, {fmt.Sprintf("print(%v*%v)", ab, c), p.Answer}}
	case MulDigSum:
		a, b := digits(r, between(r, 2, 3)), digits(r, between(r, 2, 3))
		ab := new(big.Int).Mul(a, b)
		p.Prompt = fmt.Sprintf("Digit sum of %v*%v.", a, b)
		one(fmt.Sprintf("print(sum(map(int,str(%v*%v))))", a, b), digitSum(ab))
		p.Chain = []Call{{fmt.Sprintf("print(%v*%v)", a, b), ab.String()}, {fmt.Sprintf("print(sum(map(int,str(%v))))", ab), p.Answer}}
	case MulPowMod:
		a, b := digits(r, 2), digits(r, 2)
		e, m := big.NewInt(int64(between(r, 10, 999))), big.NewInt(int64(between(r, 10, 999)))
		ab := new(big.Int).Mul(a, b)
		p.Prompt = fmt.Sprintf("Compute (%v*%v)^%v mod %v.", a, b, e, m)
		one(fmt.Sprintf("print(pow((%v*%v),%v,%v))", a, b, e, m), new(big.Int).Exp(ab, e, m))
		p.Chain = []Call{{fmt.Sprintf("print(%v*%v)", a, b), ab.String()}, {fmt.Sprintf("print(pow(%v,%v,%v))", ab, e, m), p.Answer}}
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
	out := map[Kind]float64{}
	if strings.TrimSpace(spec) == "" {
		return out, nil
	}
	for _, pair := range strings.Split(spec, ",") {
		name, share, ok := strings.Cut(strings.TrimSpace(pair), ":")
		if !ok {
			return nil, fmt.Errorf("data: %q is not kind:share", pair)
		}
		kinds, err := ParseKinds([]string{strings.TrimSpace(name)})
		if err != nil {
			return nil, err
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(share), 64)
		if err != nil || !(v >= 0 && v <= 1) {
			return nil, fmt.Errorf("data: share %q of kind %s is not a number in [0, 1]", share, name)
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
