package reward

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// python is Debian's Python, which has sympy (see DESIGN.md).
const python = "/usr/bin/python3"

// sympyScript reads one expression a line (Python syntax) and prints its expansion.
const sympyScript = `
import sys, sympy
x = sympy.Symbol('x')
for line in sys.stdin:
    e = sympy.sympify(line.strip(), locals={'x': x})
    print(sympy.sstr(sympy.expand(e)))
`

// randExpr writes a random expression over small integers, square roots, π and optionally x,
// in plain syntax that both sympy and this package read.
func randExpr(r *rand.Rand, depth int, withX bool) string {
	if depth == 0 || r.IntN(4) == 0 {
		switch k := r.IntN(8); {
		case k < 4:
			return fmt.Sprint(r.IntN(12) + 1)
		case k == 4:
			return fmt.Sprintf("sqrt(%d)", r.IntN(20)+2)
		case k == 5:
			return "pi"
		case withX:
			return "x"
		default:
			return fmt.Sprint(r.IntN(5) + 1)
		}
	}
	a, b := randExpr(r, depth-1, withX), randExpr(r, depth-1, withX)
	switch r.IntN(6) {
	case 0, 1:
		return "(" + a + ")+(" + b + ")"
	case 2:
		return "(" + a + ")-(" + b + ")"
	case 3, 4:
		return "(" + a + ")*(" + b + ")"
	default:
		return "(" + a + ")**" + fmt.Sprint(r.IntN(3)+1)
	}
}

// TestSympyDifferential: each random expression equals its expansion by sympy, and
// not that plus 1/1000. Skipped when Debian's Python with sympy is absent.
func TestSympyDifferential(t *testing.T) {
	if _, err := os.Stat(python); err != nil {
		t.Skip("no " + python)
	}
	if err := exec.Command(python, "-c", "import sympy").Run(); err != nil {
		t.Skip("no sympy")
	}
	r := rand.New(rand.NewPCG(1, 2))
	var exprs []string
	for i := range 150 {
		exprs = append(exprs, randExpr(r, 3, i%2 == 0))
	}
	cmd := exec.Command(python, "-c", sympyScript)
	cmd.Stdin = strings.NewReader(strings.Join(exprs, "\n") + "\n")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("sympy: %v: %s", err, errb.String())
	}
	simp := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(simp) != len(exprs) {
		t.Fatalf("sympy returned %d lines for %d expressions", len(simp), len(exprs))
	}
	bad := 0
	for i, e := range exprs {
		s := simp[i]
		if !Equivalent(s, e) {
			bad++
			t.Errorf("%q should equal sympy's %q", e, s)
		}
		if Equivalent("("+s+")+1/1000", e) {
			bad++
			t.Errorf("%q should not equal %q + 1/1000", e, s)
		}
	}
	t.Logf("%d expressions checked against sympy, %d disagreements", len(exprs), bad)
}
