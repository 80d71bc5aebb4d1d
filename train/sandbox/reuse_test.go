package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// leakCase is a call that tries to leave state behind and a call after it that would see it.
type leakCase struct {
	name          string
	first, second string
	want          string // the second call's output
	// restored: the dynamic checks put this state back instead of retiring the child, so the
	// second call may run on the same child.
	restored bool
	// static: only the static check catches it (the dynamic checks cannot see it).
	static bool
	// pure: the static check passes the first call (the dynamic checks must catch it).
	pure bool
}

var leakCases = []leakCase{
	{name: "variable", first: "x = 5", second: "print(x)",
		want: "NameError: name 'x' is not defined", restored: true, pure: true},
	{name: "module attribute", first: "import numpy as np\nnp.pi = 3",
		second: "import numpy as np\nprint(np.pi)", want: "3.141592653589793"},
	{name: "setattr", first: "import math\nsetattr(math, 'pi', 3)",
		second: "import math\nprint(math.pi)", want: "3.141592653589793"},
	{name: "module __dict__", first: "import math\nmath.__dict__['pi'] = 3",
		second: "import math\nprint(math.pi)", want: "3.141592653589793"},
	{name: "builtins", first: "import builtins\nbuiltins.print = None", second: "print(1)", want: "1"},
	{name: "module container", first: "import numpy as np\nt = np.typecodes\nt['Leak'] = 'x'",
		second: "import numpy as np\nprint('Leak' in np.typecodes)", want: "False"},
	{name: "module object", first: "import numpy as np\nm = np.ma.masked_print_option\nm.set_display('??')",
		second: "import numpy as np\nprint(np.ma.masked_array([1, 2], mask=[0, 1]))", want: "[1 --]", static: true},
	{name: "numpy print options", first: "import numpy as np\nnp.set_printoptions(precision=2)",
		second: "import numpy as np\nprint(np.array([1/3]))", want: "[0.33333333]"},
	{name: "numpy errors", first: "import numpy as np\nnp.seterr(all='raise')",
		second: "import numpy as np\nprint(np.float64(1) / 0)", want: "inf"},
	{name: "decimal precision", first: "import decimal\ndecimal.getcontext().prec = 5",
		second: "import decimal\nprint(decimal.Decimal(1) / 3)",
		want:   "0.3333333333333333333333333333", restored: true},
	{name: "decimal traps by alias", first: "import decimal\nt = decimal.getcontext().traps\nt[decimal.Inexact] = True",
		second: "import decimal\nprint(decimal.Decimal(1) / 3)",
		want:   "0.3333333333333333333333333333", restored: true, pure: true},
	{name: "decimal template", first: "import decimal\ndecimal.DefaultContext.prec = 5",
		second: "import decimal\nprint(decimal.DefaultContext.prec)", want: "28"},
	{name: "decimal flags", first: "import decimal\ndecimal.Decimal(1) / 3",
		second: "import decimal\nprint(decimal.getcontext().flags[decimal.Inexact])", want: "False", restored: true, pure: true},
	{name: "recursion limit", first: "import sys\nsys.setrecursionlimit(50)",
		second: "def f(n):\n    return 0 if n == 0 else 1 + f(n - 1)\nprint(f(300))", want: "300"},
	{name: "int digits", first: "import sys\nsys.set_int_max_str_digits(640)",
		second: "print(len(str(10**1000)))", want: "1001"},
	{name: "sys.modules", first: "import sys\nsys.modules['fractions'] = None",
		second: "import fractions\nprint(fractions.Fraction(1, 3))", want: "1/3"},
	{name: "sys.stdout", first: "import sys, io\nsys.stdout = io.StringIO()", second: "print('seen')", want: "seen"},
	{name: "thread", first: `import threading, time
def spam():
    while True:
        print("leak", flush=True)
        time.sleep(0.01)
threading.Thread(target=spam, daemon=True).start()`,
		second: "import time\ntime.sleep(0.2)\nprint('clean')", want: "clean"},
	{name: "subprocess", first: "import subprocess\nsubprocess.Popen(['sh', '-c', 'sleep 0.1; echo leak'])",
		second: "import time\ntime.sleep(0.3)\nprint('clean')", want: "clean"},
	{name: "files", first: "open('/tmp/f', 'w').write('x')\nopen('g', 'w').write('y')",
		second: "import os\nprint(os.listdir('/tmp'), os.listdir('.'))", want: "['cwd'] []"},
	{name: "class with attributes", first: "class A:\n    def __init__(self):\n        self.x = 1\nprint(A().x)",
		second: "print(2)", want: "2", restored: true},
	{name: "sympy assumptions", first: "from sympy.assumptions import global_assumptions\nfrom sympy import Q, Symbol\nglobal_assumptions.add(Q.positive(Symbol('x')))",
		second: "from sympy import ask, Q, Symbol\nprint(ask(Q.positive(Symbol('x'))))", want: "None"},
	{name: "sympy parameters", first: "from sympy.core.parameters import global_parameters\nglobal_parameters.evaluate = False",
		second: "from sympy import Symbol\nx = Symbol('x')\nprint(x + x)", want: "2*x"},
	{name: "sympy printing", first: "from sympy import init_printing\ninit_printing(order='rev-lex')",
		second: "from sympy import symbols\nx = symbols('x')\nprint(x**2 + x + 1)", want: "x**2 + x + 1"},
	{name: "sympify runs code", first: "from sympy import sympify\nsympify(\"setattr(Integer, 'leak', 3)\")",
		second: "from sympy import Integer\nprint(hasattr(Integer, 'leak'))", want: "False", static: true},
	{name: "mpmath precision", first: "import mpmath\nmpmath.mp.dps = 50",
		second: "import mpmath\nprint(mpmath.mp.dps)", want: "15"},
	{name: "generator finally", first: "def g():\n    try:\n        yield 1\n    finally:\n        print('late')\nit = g()\nnext(it)\nl = [it]\nl.append(l)",
		second: "print('clean')", want: "clean", restored: true},
	{name: "finalizer", first: "class A:\n    def __del__(self):\n        print('late')\na = A()\nl = [a, None]\nl[1] = l",
		second: "print('clean')", want: "clean", restored: true},
	{name: "unflushed output", first: "print('a', end='')", second: "print('b')", want: "b", restored: true, pure: true},
	{name: "recursion error", first: "def f(n):\n    return f(n + 1)\nf(0)", second: "print('ok')", want: "ok", pure: true},
	{name: "alarm", first: "import signal\nsignal.setitimer(signal.ITIMER_REAL, 0.3)",
		second: "import time\ntime.sleep(0.5)\nprint('alive')", want: "alive"},
	{name: "signal handler", first: "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)",
		second: "print('ok')", want: "ok"},
	{name: "working directory", first: "import os\nos.chdir('/')",
		second: "open('x', 'w').write('1')\nprint(open('x').read())", want: "1"},
	{name: "umask", first: "import os\nos.umask(0o777)",
		second: "open('x', 'w').write('1')\nprint(open('x').read())", want: "1"},
	{name: "System V IPC", first: "import ctypes\nlibc = ctypes.CDLL(None)\nprint(libc.shmget(1234, 4096, 0o1000 | 0o600) >= 0)",
		second: "import ctypes\nlibc = ctypes.CDLL(None)\nprint(libc.shmget(1234, 4096, 0o600))", want: "-1"},
	{name: "environment", first: "import os\nos.environ['LEAK'] = '1'",
		second: "import os\nprint(os.environ.get('LEAK'))", want: "None"},
	{name: "warnings", first: "import warnings\nwarnings.simplefilter('error')",
		second: "import numpy as np\nprint(np.float64(1) / 0)", want: "inf"},
	{name: "garbage collector", first: "import gc\ngc.disable()", second: "import gc\nprint(gc.isenabled())", want: "True"},
	{name: "rlimit", first: "import resource\nresource.setrlimit(resource.RLIMIT_NOFILE, (10, 10))",
		second: "fs = [open('f%d' % i, 'w') for i in range(30)]\nprint(len(fs))", want: "30"},
}

// runLeakCases runs every case on p (one worker): two pure calls first, so that a used
// child is there, then the case's calls. Without reuse checks (forced), the second call of a
// case that is neither restored nor static must not run on the child the first call used.
func runLeakCases(t *testing.T, p *Pool, forced bool) {
	ctx := context.Background()
	for _, tc := range leakCases {
		if forced && tc.static {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			for range 2 {
				if r := p.Run(ctx, "print(0)"); r.Output != "0" {
					t.Fatalf("warm-up call: %+v", r)
				}
			}
			first := p.Run(ctx, tc.first)
			if first.Err != nil || first.Kind == KindCrash {
				t.Fatalf("first call: %+v", first)
			}
			_, before := p.Reuse()
			r := p.Run(ctx, tc.second)
			_, after := p.Reuse()
			if r.Output != tc.want {
				t.Errorf("after %q: got %q (%s, %s), want %q", tc.first, r.Output, r.Kind, r.Detail, tc.want)
			}
			if forced && !tc.restored && after > before {
				t.Errorf("the child that ran %q served the next call", tc.first)
			}
		})
	}
}

// TestReuseNoLeak checks that no state of a stateless call reaches the next, on a pool whose
// children serve several calls.
func TestReuseNoLeak(t *testing.T) {
	needSandbox(t)
	p := newPool(t, testConfig(t, 1))
	runLeakCases(t, p, false)
}

// TestReuseDynamicChecks runs the same cases on a worker whose static check lets everything
// through: the checks after a call must catch what the static check would have.
func TestReuseDynamicChecks(t *testing.T) {
	needSandbox(t)
	const anchor = "def pure(code):\n"
	if !strings.Contains(workerScript, anchor) {
		t.Fatal("worker.py no longer has the line this test hooks")
	}
	cfg := testConfig(t, 1)
	p, err := newTestPool(cfg, strings.Replace(workerScript, anchor, anchor+"    return True\n", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	runLeakCases(t, p, true)
}

// TestReuseRandom checks that random states behave as with a fresh fork per call: random and
// numpy.random differ from call to call (whatever a call seeded), sympy's generators and
// counters start where the worker left them in every call (they differ between workers, as
// sympy seeds them when it is imported).
func TestReuseRandom(t *testing.T) {
	needSandbox(t)
	p := newPool(t, testConfig(t, 1))
	ctx := context.Background()
	differ := []struct{ seeded, draw, afterSeed string }{
		{"import random\nrandom.seed(0)\nprint(random.random())", "import random\nprint(random.random())", "0.7579544029403025"},
		{"import numpy as np\nnp.random.seed(0)\nprint(np.random.rand())", "import numpy as np\nprint(np.random.rand())", "0.7151893663724195"},
	}
	for _, tc := range differ {
		seen := map[string]bool{}
		for range 4 {
			p.Run(ctx, tc.seeded)
			r := p.Run(ctx, tc.draw)
			if r.Kind != KindOK || r.Output == tc.afterSeed {
				t.Errorf("%q after a seeded call: %q (%s)", tc.draw, r.Output, r.Kind)
			}
			seen[r.Output] = true
		}
		if len(seen) < 3 {
			t.Errorf("%q repeats across calls: %v", tc.draw, seen)
		}
	}
	for _, code := range []string{
		"from sympy import Dummy\nprint(Dummy(), Dummy().dummy_index)",
		"from sympy.core.random import randint\nprint(randint(0, 10**9))",
		"from sympy import lambdify, symbols\nx = symbols('x')\nf = lambdify(x, x**2)\nprint(f.__code__.co_filename)",
	} {
		want := p.Run(ctx, code)
		for range 4 {
			if r := p.Run(ctx, code); r.Output != want.Output || r.Kind != KindOK {
				t.Errorf("%q: %q (%s), then %q: state carried from call to call", code, want.Output, want.Kind, r.Output)
			}
		}
	}
}

// pureSnippets are ordinary calls the static check must pass, so that they leave their child
// for the next call.
var pureSnippets = []string{
	"print(sum(i * i for i in range(10)))",
	"import math\nprint(math.comb(10, 3), math.gcd(12, 18))",
	"from itertools import permutations\nprint(len(list(permutations(range(5)))))",
	"import numpy as np\na = np.arange(10)\na[a > 5] = 0\nprint(a.sum())",
	"import numpy as np\nprint(np.linalg.det(np.array([[1, 2], [3, 4]])))",
	"import numpy as np\nnp.random.seed(0)\nprint(np.random.randint(10))",
	"import sympy as sp\nx = sp.symbols('x')\nprint(sp.solve(x**2 - 4, x))",
	"from sympy import *\nx, y = symbols('x y')\nprint(factor(x**2 - y**2), integrate(x * exp(x), x))",
	"from sympy import Matrix, Rational, sqrt, simplify\nprint(Matrix([[1, 2], [3, 4]]).det(), simplify(sqrt(8) * Rational(1, 2)))",
	"from sympy import isprime, primerange, factorint\nprint(sum(primerange(1, 100)), isprime(97), factorint(360))",
	"from fractions import Fraction\nprint(Fraction(1, 3) + Fraction(1, 6))",
	"from decimal import Decimal, getcontext\ngetcontext()\nprint(Decimal(2).sqrt())",
	"from collections import defaultdict, Counter, deque\nd = defaultdict(list)\nd[1].append(2)\nc = Counter('hello')\nc.update('world')\nq = deque()\nq.appendleft(1)\nprint(d, c.most_common(1), q)",
	"memo = {}\ndef fib(n):\n    if n < 2:\n        return n\n    if n not in memo:\n        memo[n] = fib(n - 1) + fib(n - 2)\n    return memo[n]\nprint(fib(50))",
	"from functools import lru_cache\n@lru_cache(maxsize=None)\ndef f(n):\n    return n if n < 2 else f(n - 1) + f(n - 2)\nprint(f(80))",
	"def gen(n):\n    for i in range(n):\n        yield i * i\nprint(list(gen(5)))",
	"grid = [[0] * 3 for _ in range(3)]\ngrid[1][1] = 5\nadj = {}\nadj.setdefault(1, []).append(2)\nprint(grid, adj)",
	"import heapq\nh = []\nheapq.heappush(h, 3)\nheapq.heappush(h, 1)\nprint(heapq.heappop(h))",
	"import random\nrandom.seed(1)\nprint(random.randint(1, 6))",
	"import statistics\nprint(statistics.median([3, 1, 2]))",
	"from dataclasses import dataclass\n@dataclass\nclass P:\n    x: int\n    y: int\nprint(P(1, 2))",
	"class Node:\n    pass\nprint(len([Node(), Node()]))",
	"try:\n    1 / 0\nexcept ZeroDivisionError:\n    print('caught')",
	"if __name__ == '__main__':\n    print('main')",
	"import time\nprint(time.time() > 0)",
	"raise ValueError('bad')",
	"x = 6\nx * 7",
	"def f(:\n    pass",
}

// TestReuseHappens checks that ordinary calls run on a used child: the fast path must not
// silently vanish (a fingerprint that changes with every call, a static check that rejects
// common code).
func TestReuseHappens(t *testing.T) {
	needSandbox(t)
	cfg := testConfig(t, 1)
	p, err := newTestPool(cfg, strings.Replace(workerScript, "DEBUG = False", "DEBUG = True", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	w := p.peekWorker(t)
	ctx := context.Background()
	p.Run(ctx, "print(0)")
	for _, code := range pureSnippets {
		first := p.Run(ctx, code)
		if first.Kind == KindCrash || first.Err != nil {
			t.Errorf("%q: %+v", code, first)
			continue
		}
		_, before := p.Reuse()
		r := p.Run(ctx, code)
		if _, after := p.Reuse(); after != before+1 {
			t.Errorf("%q did not leave its child for the next call (%q, then %q)", code, first.Output, r.Output)
		}
		if r.Output != first.Output && !strings.Contains(code, "random") {
			t.Errorf("%q: %q, then %q", code, first.Output, r.Output)
		}
	}
	if t.Failed() {
		time.Sleep(100 * time.Millisecond)
		t.Logf("worker stderr:\n%s", w.stderr.String())
	}
	calls, reused := p.Reuse()
	t.Logf("%d of %d calls ran on a used child", reused, calls)
}

// TestReuseLimits checks that the limits hold on a child that has served calls: CPU time
// (counted from the call's start), memory, and the worker surviving it all.
func TestReuseLimits(t *testing.T) {
	needSandbox(t)
	cfg := testConfig(t, 1)
	cfg.CPUTime = time.Second
	cfg.Timeout = 10 * time.Second
	p := newPool(t, cfg)
	ctx := context.Background()
	// Together these use more CPU time than the limit: it must count from each call's start.
	busy := "x = 0\nfor i in range(2 * 10**6):\n    x += i\nprint(x > 0)" // a fraction of a second
	for i := range 8 {
		if r := p.Run(ctx, busy); r.Output != "True" {
			t.Fatalf("call %d: %+v", i, r)
		}
	}
	for _, tc := range []struct {
		code, want string
		kind       ErrorKind
	}{
		{"while True:\n    pass", TimeoutOutput, KindTimeout},
		{"x = bytearray(16 << 30)", "MemoryError", KindException},
		{"print('ok')", "ok", KindOK},
	} {
		p.Run(ctx, "print(0)")
		p.Run(ctx, "print(0)")
		_, before := p.Reuse()
		start := time.Now()
		r := p.Run(ctx, tc.code)
		d := time.Since(start)
		if _, after := p.Reuse(); after != before+1 {
			t.Errorf("%q did not run on a used child", tc.code)
		}
		if r.Output != tc.want || r.Kind != tc.kind {
			t.Errorf("%q: %q (%s), want %q (%s)", tc.code, r.Output, r.Kind, tc.want, tc.kind)
		}
		if tc.kind == KindTimeout && d > 8*time.Second { // 1 to 2 s of CPU time on a busy machine
			t.Errorf("%q: stopped after %v, by the wall limit (%v), not the CPU limit (%v)", tc.code, d, cfg.Timeout, cfg.CPUTime)
		}
	}
	if w := p.peekWorker(t); w.id != 1 {
		t.Errorf("the worker was replaced: %s", fmt.Sprint(w.id))
	}
}

// TestPureCheck runs the worker's static check (pure() in worker.py) on its own: it must pass
// ordinary code and stop what only it can stop.
func TestPureCheck(t *testing.T) {
	needSandbox(t)
	const cut = "# ---- The forked child"
	i := strings.Index(workerScript, cut)
	if i < 0 {
		t.Fatal("worker.py no longer has the line this test cuts at")
	}
	driver := "\nimport json as _json, sys as _sys\n" +
		"_sys.stdout.write(_json.dumps([pure(c) for c in _json.load(_sys.stdin)]))\n"
	dir := t.TempDir()
	script := filepath.Join(dir, "pure.py")
	if err := os.WriteFile(script, []byte(workerScript[:i]+driver), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		code string
		pure bool
	}{
		{"import numpy as np\nprint(np.pi, np.random.rand() < 2, np.linalg.norm([3, 4]))", true},
		{"import numpy as np\nnp.typecodes.update({})", false},
		{"import numpy as np\nprint(np.typecodes['All'])", true},
		{"import numpy as np\nnp.ma.masked_print_option.set_display('x')", false},
		{"from sympy import *\nx = symbols('x')\nprint(S.Reals.contains(x), S.Half, Q.positive(x), pi.evalf(30))", true},
		{"from mpmath import mp\nprint(mp.sqrt(2))", true},
		{"import datetime\nprint(datetime.datetime.now().year > 2000)", true},
		{"from fractions import Fraction\nprint(Fraction.from_float(0.5))", true},
		{"import decimal\nprint(decimal.DefaultContext.prec)", true},
		{"import decimal\ndecimal.DefaultContext.clear_flags()", false},
		{"import decimal\ndecimal.getcontext().traps.update({})", false},
		{"import typing\nx: typing.List[int] = [1]\nprint(x)", true},
		{"class A:\n    def __init__(self, items):\n        self.items = items\n    def add(self, x):\n        self.items.append(x)", false},
		{"class A:\n    def __eq__(self, other):\n        return True", false},
		{"class A(metaclass=type):\n    pass", false},
		{"import fractions\nclass F(fractions.Fraction):\n    pass", false},
		{"import collections\nd = collections.deque()\ncollections.deque.append(d, 1)", true},
		{"import numpy as np\na = np.zeros(3)\na.fill(1)\nnp.add.at(a, [0], 1)\nprint(np.add.reduce(a))", true},
		{"import math\nprint(math.pi.as_integer_ratio())", true},
		{"async def f():\n    pass", false},
		{"def g():\n    with open('x') as f:\n        yield f", false},
		{"print('__import__')", false},
		{"from sympy import parse_expr\nparse_expr('exec(1)')", false},
		{"import os", false},
		{"from . import x", false},
		{"import numpy.ctypeslib", false},
		{"from numpy import set_printoptions as s\ns(precision=3)", false},
		{"import operator\nf = operator.attrgetter('x')", false},
		{"x = [1]\nx += [2]\nimport math\nmath += 1", false},
		{"(" + strings.Repeat("[", 150) + strings.Repeat("]", 150) + ")", true},
		{"def f(:", true}, // nothing runs
		{"import numpy as np\nprint(np.loadtxt('/proc/self/stat', dtype=str)[0])", false},
		{"import numpy as np\nnp.save('a.npy', np.zeros(2))", false},
	}
	for _, tc := range leakCases {
		cases = append(cases, struct {
			code string
			pure bool
		}{tc.first, tc.pure})
	}
	for _, code := range pureSnippets {
		cases = append(cases, struct {
			code string
			pure bool
		}{code, true})
	}
	var codes []string
	for _, tc := range cases {
		codes = append(codes, tc.code)
	}
	in, _ := json.Marshal(codes)
	cmd := exec.Command("/usr/bin/python3", "-I", "-B", script, "preload", "sandbox", dir)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v: %s", err, stderr.String())
	}
	var got []bool
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(cases) {
		t.Fatalf("output %q: %v", out, err)
	}
	for i, tc := range cases {
		if got[i] != tc.pure {
			t.Errorf("pure(%q) = %v, want %v", tc.code, got[i], tc.pure)
		}
	}
}
