package sandbox

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// probe prints a digest of the interpreter's state a call could change: the entries of the
// dicts of key modules and of the classes they define (by object identity), sys.modules,
// limits and settings of sys, decimal, numpy, sympy and mpmath, the environment, working
// directory, umask, signal dispositions and timers, threads, gc, warnings, rlimits, the files
// in /tmp, the working directory and /dev/shm, and the processes of the namespace. Children of
// one worker start from the same memory image, so the digest of a call that starts pristine
// is the same every time in that worker (object identities differ between workers).
const probe = `import sys, os, gc, signal, resource, threading, warnings, decimal, math, random
import numpy as np, sympy, mpmath
from sympy.core.parameters import global_parameters
from sympy.printing.printer import Printer
from sympy.assumptions.assume import global_assumptions

def h(x):
    return "%08x" % (hash(x) & 0xffffffff)

def ids(d, skip=()):
    return tuple((k, id(v)) for k, v in sorted(d.items(), key=lambda kv: str(kv[0])) if k not in skip)

def module(name):
    m = sys.modules[name]
    parts = [ids(m.__dict__, ("stdin", "stdout", "stderr"))]
    for v in list(m.__dict__.values()):
        if isinstance(v, type) and v.__module__ == name:
            parts.append((v.__name__, ids(v.__dict__)))
    return h(tuple(parts))

mods = ["builtins", "sys", "os", "math", "random", "decimal", "signal", "numpy", "numpy.random",
        "sympy", "sympy.core.numbers", "sympy.core.basic", "sympy.printing.str",
        "sympy.printing.printer", "mpmath"]
out = [n + ":" + module(n) for n in mods]
um = os.umask(0)
os.umask(um)
state = [len(sys.modules), h(tuple(sorted(sys.modules))), sys.getrecursionlimit(),
         sys.get_int_max_str_digits(), sys.getswitchinterval(), sys.flags, tuple(sys.path),
         sys.gettrace(), sys.getprofile(), repr(decimal.getcontext()), repr(decimal.DefaultContext),
         repr(np.get_printoptions()), repr(np.geterr()), sorted(os.environ.items()), os.getcwd(), um,
         [repr(signal.getsignal(s)) for s in range(1, signal.NSIG) if s not in (9, 19, 32, 33)],
         [signal.getitimer(t) for t in (0, 1, 2)], threading.active_count(), gc.isenabled(),
         gc.get_threshold(), repr(warnings.filters),
         [resource.getrlimit(getattr(resource, r)) for r in dir(resource) if r.startswith("RLIMIT_")],
         (global_parameters.evaluate, global_parameters.distribute), repr(Printer._global_settings),
         repr(global_assumptions), mpmath.mp.prec]
out.append("state:" + h(repr(state)))
out.append("files:%s%s%s" % (os.listdir("/tmp"), os.listdir("."), os.listdir("/dev/shm")))
out.append("procs:%d" % len([p for p in os.listdir("/proc") if p.isdigit()]))
print(" ".join(out))`

// leakCase is a call that tries to leave state for later calls (and prints what it changed:
// firstWant), then a call that would see that state and what it must print instead.
type leakCase struct {
	name             string
	first, firstWant string
	second, want     string
}

var leakCases = []leakCase{
	// Attributes of library classes.
	{"class attribute", "import sympy\nsympy.Integer.leak = 3\nsympy.Symbol.__str__ = lambda self: 'LEAK'\nprint(sympy.Symbol('y'))", "LEAK",
		"import sympy\nprint(hasattr(sympy.Integer, 'leak'), sympy.Symbol('y'))", "False y"},
	// The strings sympify evaluates are built at run time: no static check could see them.
	{"printer class through sympify of a built string", `from sympy import sympify, Rational
def unhide(h):
    return bytes.fromhex(h).decode()
printer = unhide("5f5f696d706f72745f5f282773796d70792e7072696e74696e672e737472272c2066726f6d6c6973743d5b2778275d292e5374725072696e746572")
sympify(printer + unhide("2e5f64656661756c745f73657474696e67732e7570646174652873796d70795f696e7465676572733d5472756529"))
sympify(unhide("7365746174747228") + printer + unhide("2c20277072696e746d6574686f64272c20275f6c65616b2729"))
print(Rational(1, 2))`, "S(1)/2",
		"from sympy import Rational\nfrom sympy.printing.str import StrPrinter\nprint(Rational(1, 2), StrPrinter.printmethod)", "1/2 _sympystr"},
	{"module through parse_expr of a built string", `from sympy.parsing.sympy_parser import parse_expr
parse_expr("".join(["set", "attr(__import__('math'), 'pi', 3)"]))
import math
print(math.pi)`, "3", "import math\nprint(math.pi)", "3.141592653589793"},
	// Module globals and monkey-patched functions.
	{"module global", "import numpy as np\nnp.pi = 3\nprint(np.pi)", "3", "import numpy as np\nprint(np.pi)", "3.141592653589793"},
	{"monkey-patched function", "import math\nmath.sqrt = lambda x: -1\nprint(math.sqrt(4))", "-1", "import math\nprint(math.sqrt(4))", "2.0"},
	{"monkey-patched builtin", "import builtins\nbuiltins.len = lambda x: -1\nprint(len('ab'))", "-1", "print(len('ab'))", "2"},
	{"module container", "import numpy as np\nnp.typecodes['Leak'] = 'x'\nprint('Leak' in np.typecodes)", "True",
		"import numpy as np\nprint('Leak' in np.typecodes)", "False"},
	{"sympy assumptions", "from sympy.assumptions import global_assumptions\nfrom sympy import Q, Symbol, ask\nglobal_assumptions.add(Q.positive(Symbol('x')))\nprint(ask(Q.positive(Symbol('x'))))", "True",
		"from sympy import ask, Q, Symbol\nprint(ask(Q.positive(Symbol('x'))))", "None"},
	{"sympy evaluation", "from sympy.core.parameters import global_parameters\nfrom sympy import Symbol\nglobal_parameters.evaluate = False\nx = Symbol('x')\nprint(x + x)", "x + x",
		"from sympy import Symbol\nx = Symbol('x')\nprint(x + x)", "2*x"},
	{"sympy printing", "from sympy import init_printing, symbols, Rational\ninit_printing(order='rev-lex', use_unicode=False)\nprint(Rational(1, 2))", "1/2",
		"from sympy import symbols\nx = symbols('x')\nprint(x**2 + x + 1)", "x**2 + x + 1"},
	{"mpmath precision", "import mpmath\nmpmath.mp.dps = 50\nprint(mpmath.mp.dps)", "50", "import mpmath\nprint(mpmath.mp.dps)", "15"},
	{"numpy print options", "import numpy as np\nnp.set_printoptions(precision=2)\nprint(np.array([1/3]))", "[0.33]",
		"import numpy as np\nprint(np.array([1/3]))", "[0.33333333]"},
	{"numpy errors", "import numpy as np\nnp.seterr(all='raise')\nprint(np.geterr()['divide'])", "raise",
		"import numpy as np\nprint(np.float64(1) / 0)", "inf"},
	// Random states: a call that seeds does not fix the next call's numbers.
	{"random seed", "import random\nrandom.seed(0)\nprint(random.random())", "0.8444218515250481",
		"import random\nprint(random.random() not in (0.8444218515250481, 0.7579544029403025))", "True"},
	{"numpy seed", "import numpy as np\nnp.random.seed(0)\nprint(np.random.rand())", "0.5488135039273248",
		"import numpy as np\nprint(np.random.rand() not in (0.5488135039273248, 0.7151893663724195))", "True"},
	// Decimal contexts.
	{"decimal context", "import decimal\ndecimal.getcontext().prec = 5\nprint(decimal.Decimal(1) / 3)", "0.33333",
		"import decimal\nprint(decimal.Decimal(1) / 3)", "0.3333333333333333333333333333"},
	{"decimal template", "import decimal\ndecimal.DefaultContext.prec = 5\nprint(decimal.DefaultContext.prec)", "5",
		"import decimal\nprint(decimal.DefaultContext.prec)", "28"},
	// sys settings.
	{"recursion limit", "import sys\nsys.setrecursionlimit(50)\nprint(sys.getrecursionlimit())", "50",
		"def f(n):\n    return 0 if n == 0 else 1 + f(n - 1)\nprint(f(300))", "300"},
	{"int digits", "import sys\nsys.set_int_max_str_digits(640)\nprint(sys.get_int_max_str_digits())", "640",
		"print(len(str(10**1000)))", "1001"},
	{"sys.modules", "import sys\nsys.modules['fractions'] = None\ntry:\n    import fractions\nexcept ImportError:\n    print('blocked')", "blocked",
		"import fractions\nprint(fractions.Fraction(1, 3))", "1/3"},
	{"sys.stdout", "import sys, io\nprint('before')\nsys.stdout = io.StringIO()", "before", "print('seen')", "seen"},
	{"sys.path", "import sys\nsys.path.insert(0, '/tmp')\nopen('/tmp/json.py', 'w').write('LEAK = 1')\nprint(sys.path[0])", "/tmp",
		"import sys\nprint(sys.path[0] != '/tmp')", "True"},
	{"trace function", "import sys\nsys.settrace(lambda *a: None)\nprint(sys.gettrace() is not None)", "True",
		"import sys\nprint(sys.gettrace())", "None"},
	// Files.
	{"files in /tmp and the working directory", "import os\nopen('/tmp/f', 'w').write('x')\nopen('g', 'w').write('y')\nos.mkdir('/tmp/d', 0)\nprint(sorted(os.listdir('/tmp')), os.listdir('.'))", "['cwd', 'd', 'f'] ['g']",
		"import os\nprint(os.listdir('/tmp'), os.listdir('.'))", "['cwd'] []"},
	{"files in /dev/shm", "open('/dev/shm/leak', 'w').write('x')\nimport os\nprint(os.listdir('/dev/shm'))", "['leak']",
		"import os\nprint(os.listdir('/dev/shm'))", "[]"},
	{"files in / and /dev", "for p in ('/leak', '/dev/leak', '/usr/leak'):\n    try:\n        open(p, 'w')\n    except OSError as e:\n        print(e.errno)", "30\n30\n30",
		"import os\nprint(os.path.exists('/leak'), os.path.exists('/dev/leak'))", "False False"},
	// The process's own state.
	{"environment", "import os\nos.environ['LEAK'] = '1'\nos.putenv('LEAK2', '1')\nprint(os.environ['LEAK'])", "1",
		"import os, subprocess\nprint(os.environ.get('LEAK'), subprocess.run(['sh', '-c', 'echo ${LEAK2:-none}'], capture_output=True, text=True).stdout.strip())", "None none"},
	{"working directory", "import os\nos.chdir('/')\nprint(os.getcwd())", "/", "import os\nprint(os.getcwd())", "/tmp/cwd"},
	{"umask", "import os\nos.umask(0o777)\nprint(oct(os.umask(0o777)))", "0o777",
		"open('x', 'w').write('1')\nprint(open('x').read())", "1"},
	{"signal handler", "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nsignal.signal(signal.SIGTERM, lambda *a: None)\nprint(signal.getsignal(signal.SIGXCPU) == signal.SIG_IGN)", "True",
		"import signal\nprint(signal.getsignal(signal.SIGXCPU) == signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)", "True"},
	{"alarm", "import signal\nsignal.setitimer(signal.ITIMER_REAL, 0.3)\nprint('armed')", "armed",
		"import time\ntime.sleep(0.5)\nprint('alive')", "alive"},
	{"rlimit", "import resource\nresource.setrlimit(resource.RLIMIT_NOFILE, (10, 10))\nprint(resource.getrlimit(resource.RLIMIT_NOFILE))", "(10, 10)",
		"fs = [open('f%d' % i, 'w') for i in range(30)]\nprint(len(fs))", "30"},
	{"garbage collector", "import gc\ngc.disable()\nprint(gc.isenabled())", "False", "import gc\nprint(gc.isenabled())", "True"},
	{"warnings", "import warnings\nwarnings.simplefilter('error')\nprint(len(warnings.filters) > 0)", "True",
		"import numpy as np\nprint(np.float64(1) / 0)", "inf"},
	// Threads and processes.
	{"background thread", `import threading, time
def spam():
    time.sleep(0.1)
    while True:
        print("leak", flush=True)
        time.sleep(0.01)
threading.Thread(target=spam, daemon=True).start()
print(threading.active_count())`, "2",
		"import time, threading\ntime.sleep(0.2)\nprint('clean', threading.active_count())", "clean 1"},
	{"background process", "import subprocess\nsubprocess.Popen(['sh', '-c', 'sleep 0.2; echo leak; sleep 60'])\nprint('started')", "started",
		"import time, os\ntime.sleep(0.4)\nprint('clean', len([p for p in os.listdir('/proc') if p.isdigit()]))", "clean 2"},
	{"daemon", "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(0.2)\n        open('/tmp/late', 'w').write('x')\n        time.sleep(60)\n    os._exit(0)\nos.wait()\nprint('parent done')", "parent done",
		"import time, os\ntime.sleep(0.4)\nprint(os.listdir('/tmp'), len([p for p in os.listdir('/proc') if p.isdigit()]))", "['cwd'] 2"},
	// Kernel objects that outlive processes.
	{"System V IPC", "import ctypes\nlibc = ctypes.CDLL(None)\nprint(libc.shmget(1234, 4096, 0o1000 | 0o600) >= 0)", "True",
		"import ctypes\nlibc = ctypes.CDLL(None)\nprint(libc.shmget(1234, 4096, 0o600))", "-1"},
	{"POSIX message queue", "import ctypes\nrt = ctypes.CDLL('librt.so.1', use_errno=True)\nprint(rt.mq_open(b'/leak', 0o100 | 2, 0o600, None), ctypes.get_errno())", "-1 24",
		"import ctypes\nrt = ctypes.CDLL('librt.so.1', use_errno=True)\nprint(rt.mq_open(b'/leak', 2), ctypes.get_errno())", "-1 2"},
	{"keyring", keyCall("libc.syscall(%d, b'user', b'leak', b'secret', 6, ctypes.c_int(-4))", 0), "-1 1",
		keyCall("libc.syscall(%d, 10, ctypes.c_int(-4), b'user', b'leak', 0)", 2), "-1 1"},
	// A call that does not end normally.
	{"timeout after changes", "import math, os\nmath.pi = 3\nopen('/tmp/x', 'w').write('x')\nprint(math.pi, flush=True)\nwhile True:\n    pass", "Timeout Error",
		"import math, os\nprint(math.pi, os.listdir('/tmp'))", "3.141592653589793 ['cwd']"},
}

// keyCall is code that prints what a keyring system call returns and errno: call has a %d for
// the number of add_key (i = 0), request_key (1) or keyctl (2).
func keyCall(call string, i int) string {
	nrs := map[string][3]int{"amd64": {248, 249, 250}, "arm64": {217, 218, 219}}[runtime.GOARCH]
	return "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\n" +
		"print(" + fmt.Sprintf(call, nrs[i]) + ", ctypes.get_errno())"
}

// TestStatelessNoLeak runs every case on a pool of one worker: after the first call, the
// probe and the second call must see the interpreter as a call that ran first does.
func TestStatelessNoLeak(t *testing.T) {
	needSandbox(t)
	cfg := testConfig(t, 1)
	cfg.Timeout = 20 * time.Second // the probe takes a while on a busy machine
	p := newPool(t, cfg)
	ctx := context.Background()
	base := p.Run(ctx, probe)
	if base.Kind != KindOK || !strings.Contains(base.Output, "procs:2") {
		t.Fatalf("probe: %q (%s, %s)", base.Output, base.Kind, base.Detail)
	}
	for _, tc := range leakCases {
		t.Run(tc.name, func(t *testing.T) {
			fctx := ctx
			if tc.firstWant == TimeoutOutput { // the context's deadline becomes the call's limit
				var cancel context.CancelFunc
				fctx, cancel = context.WithTimeout(ctx, time.Second)
				defer cancel()
			}
			r := p.Run(fctx, tc.first)
			if r.Kind == KindCanceled && errors.Is(r.Err, context.DeadlineExceeded) {
				r.Output = TimeoutOutput // the deadline came before the worker's answer
			}
			if r.Output != tc.firstWant {
				t.Fatalf("the first call did not do what it should: %q (%s, %s), want %q", r.Output, r.Kind, r.Detail, tc.firstWant)
			}
			checkPristine(t, p.Run(ctx, probe), base)
			if r := p.Run(ctx, tc.second); r.Output != tc.want {
				t.Errorf("after %q: got %q (%s, %s), want %q", tc.first, r.Output, r.Kind, r.Detail, tc.want)
			}
			checkPristine(t, p.Run(ctx, probe), base)
		})
	}
}

// checkPristine compares a probe's output with the first one's, part by part.
func checkPristine(t *testing.T, r, base Result) {
	t.Helper()
	if r.Output == base.Output {
		return
	}
	got, want := strings.Fields(r.Output), strings.Fields(base.Output)
	var diff []string
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			diff = append(diff, got[i]+" (was "+want[i]+")")
		}
	}
	t.Errorf("the interpreter is not pristine: %v (%s, %s)", diff, r.Kind, r.Detail)
}
