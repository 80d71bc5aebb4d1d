# The sandbox worker: runs as PID 1 of its own PID namespace inside bubblewrap.
#
# It reads framed JSON requests on fd 3 and writes framed JSON replies on fd 4 (a frame is a
# 4-byte little-endian length and the JSON bytes). Each request runs in a child process forked
# ahead of the call (in a new session, with resource limits); stdout goes to a pipe the worker
# reads, bounded. Being PID 1, the worker cannot be killed by the code it runs (the kernel drops
# signals sent to a namespace's init from inside it). After a call that leaves no child to reuse
# (below), every other process of the namespace is killed and reaped, /tmp is wiped and System
# V IPC objects are removed, so nothing a call starts or writes survives it.
#
# Reuse. Forking this process (numpy and sympy loaded) costs about 12 ms of CPU on the
# development machine, several times what everything else of a trivial call costs, so a child
# that stays clean serves the next stateless call too, with the semantics of a fresh fork: no
# state of one call is visible to the next. The worker keeps up to two children: `used`, which
# has served calls and stayed clean, and `spare`, never used. A call runs on `used` when its code
# (and every prelude cell of a session) is pure (1); otherwise, or when there is no used child,
# on `spare`. The child stays for the next call only when (1), (2), (3) and (4) all hold; else
# every process but the worker is killed, /tmp wiped, and a new spare forked, as before.
#  1. Static: pure() passes the code (it runs in the worker, before the call). The code
#     imports only PURE_MODULES (loaded by the worker, no state of their own beyond what the
#     other rules and fingerprint() cover), absolutely, and uses:
#     - no name or attribute in BANNED (exec, eval, compile, open, getattr, setattr, vars,
#       globals, input, exit, ..., set_printoptions, seterr, setcontext, init_printing,
#       register, attrgetter, process_time, setrecursionlimit, numpy's and sympy's file
#       functions, ...), no dunder name but __name__, no attribute whose name starts with "_";
#     - no attribute store or delete (obj.x = ..., even on its own objects);
#     - no element store or delete (x[i] = ..., del x[i]) but into a variable of its own,
#       directly indexed or through what its methods return (grid[i][j], d.setdefault(k, [])[0]),
#       no augmented assignment to an imported name;
#     - of what it imports (and the attributes read from it, as found in module and class
#       dicts without running code): only modules, classes, functions, immutable values and
#       sympy's and mpmath's objects may be held, passed or have methods called; a mutable
#       container (np.typecodes, sympy's global_assumptions) may only have elements read;
#     - no method of MUTATORS (append, update, add, sort, fill, ...) called on something
#       reached through an attribute of a variable (self.items) or derived from an import by
#       calls or indexing (decimal.getcontext().traps);
#     - no class with keywords (metaclass=), with bases other than its own classes and
#       builtins, or with dunder methods outside SAFE_DUNDERS (no __del__, __eq__, __hash__,
#       __getattr__, __init_subclass__, ...); no async code; no generator if there is any try
#       or with (nothing of the call runs after it);
#     - no string constant with "__" (but "__main__") or a BANNED_IN_STRINGS word: sympy's
#       sympify and parse_expr evaluate strings as Python.
#  2. The call ended normally or with an ordinary exception: not a time or CPU limit, a signal,
#     output over the limit, a cancel, MemoryError or RecursionError; and the child has served
#     fewer than MAX_CALLS calls.
#  3. Afterwards (tidy(), in the child, stdout sent to /dev/null, after the worker has
#     replied): the call's globals are dropped and the garbage collected; random and
#     numpy.random are reseeded from os.urandom (as after a fork), the other random.Random
#     instances (sympy's) get back the worker's states, sympy's Dummy and lambdify counters
#     their values, and the decimal context is reset. Then fingerprint() must equal the
#     worker's (taken before its first fork): sys.modules (size and entries), every entry of
#     the watched module dicts (builtins, PURE_MODULES, key numpy/sympy/mpmath submodules) and
#     of sys but its streams, the length of every module-level dict, list and set of the pure
#     modules (but named caches), recursion and int-digit limits, switch interval, sys hooks,
#     path, trace and profile functions, gc settings, warnings filters, thread count, locale,
#     numpy print/error/buffer settings, decimal's template contexts, sympy's global
#     parameters, global assumptions and printer settings, mpmath's precision and modes; and
#     process_state() must equal the child's before its first pure call: its stream objects,
#     signal dispositions, interval timers, blocked signals, umask, environment and open fds;
#     plus one thread, the working directory, the rlimits set at its first call, and less than
#     MAX_GROWTH more address space. It reports "ready" within READY_WAIT.
#  4. The worker finds no process in the namespace but its children (checked when the result
#     arrives and after "ready"), /tmp holding only the empty working directory, and no System
#     V IPC object (they outlive processes; after any other call they are removed).
# A reused call gets fresh globals, a fresh random state, a CPU limit counted from its start
# (soft only: pure code cannot catch SIGXCPU) and the same other limits. Object addresses (id(),
# default reprs, hash of plain objects) and library caches (sympy's, re's) are not reset: they
# are as arbitrary as between fresh children. Sessions (prelude cells and a seed) follow the same
# rules. Without the PID namespace (unsafe mode) nothing is reused.
import ast
import ctypes
import fcntl
import gc
import json
import math
import os
import random
import re
import resource
import select
import shutil
import signal
import struct
import sys
import time
import traceback
import types

REQ_FD, RESP_FD = 3, 4
TAIL_BYTES = 4096
MAX_CALLS = 500  # calls one child serves at most
MAX_GROWTH = 64 << 20  # address space a child may gain over its calls
READY_WAIT = 1.0  # seconds a child has to tidy up after a call (else it is replaced)
DEBUG = False  # tests set it: reasons a child was not reused go to stderr
# argv: preload|lazy, sandbox|unsafe, the private temporary directory (/tmp in the sandbox).
PRELOAD = sys.argv[1] == "preload"
IN_NAMESPACE = sys.argv[2] == "sandbox"
TMP = sys.argv[3]
CWD = os.path.join(TMP, "cwd")
# Reuse needs the PID namespace: the worker sees every process there and kills them all.
REUSE = IN_NAMESPACE

# Modules a pure call may import: loaded by the worker (below), and without state a call could
# change except through what BANNED and fingerprint() cover.
PURE_MODULES = frozenset((
    "array bisect cmath collections copy dataclasses datetime decimal enum fractions functools "
    "heapq itertools json keyword math mpmath numbers numpy operator pprint random re statistics "
    "string struct sympy textwrap time typing unicodedata").split())

# Names and attributes a pure call may not use at all: builtins that reach state or run code,
# functions that change global settings, and ways around the other rules.
BANNED = frozenset((
    # builtins
    "exec eval compile open getattr setattr delattr vars globals locals breakpoint input help "
    "exit quit copyright credits license "
    # numpy
    "set_printoptions seterr seterrcall seterrobj setbufsize set_string_function set_numeric_ops "
    "add_newdoc add_docstring add_newdoc_ufunc as_strided ctypes ctypeslib "
    # files (/proc tells a process's history): numpy's and sympy's readers, writers, compilers
    "load loadtxt genfromtxt fromfile fromregex recfromcsv recfromtxt save savetxt savez "
    "savez_compressed memmap open_memmap tofile dump DataSource preview autowrap ufuncify "
    # decimal, sympy, mpmath
    "setcontext init_printing init_session interactive_traversal set_global_settings cacheit "
    "setup "
    # operator, functools, importing
    "attrgetter methodcaller setitem delitem iadd iconcat ior iand ixor isub imul update_wrapper "
    "wraps register import_module lazy_import "
    # process state
    "process_time process_time_ns thread_time thread_time_ns clock_gettime clock_gettime_ns "
    "setrecursionlimit set_int_max_str_digits settrace setprofile").split())

# Words that may not appear in a pure call's strings: sympy evaluates strings as Python.
BANNED_IN_STRINGS = re.compile(
    r"__|\b(exec|eval|compile|open|getattr|setattr|delattr|vars|globals|locals|breakpoint|"
    r"input|help|exit|quit|import|lambda)\b")

# Methods that change the object they are called on.
MUTATORS = frozenset((
    "append extend insert pop remove clear update add discard setdefault popitem sort reverse "
    "appendleft extendleft popleft rotate difference_update intersection_update "
    "symmetric_difference_update move_to_end fill put itemset resize setflags byteswap "
    "partition seed setstate set_state").split())

# Dunder methods a pure call's classes may define: none runs after the call or from a library's
# cache (no __del__, __eq__, __hash__, __getattr__, __set_name__, __init_subclass__, ...).
SAFE_DUNDERS = frozenset((
    "__init__ __repr__ __str__ __format__ __len__ __iter__ __next__ __reversed__ __getitem__ "
    "__contains__ __call__ __bool__ __int__ __float__ __index__ __neg__ __pos__ __abs__ "
    "__invert__ __round__ __lt__ __le__ __gt__ __ge__ __enter__ __exit__").split()
    + ["__%s%s__" % (p, op) for p in ("", "r", "i") for op in (
        "add sub mul matmul truediv floordiv mod divmod pow lshift rshift and or xor").split()])

if PRELOAD:
    import numpy  # noqa: F401
    import sympy  # noqa: F401

WARM_WORKER = """
import array, bisect, cmath, collections, copy, dataclasses, datetime, decimal, enum, fractions
import functools, heapq, itertools, json, keyword, math, mpmath, numbers, operator, pprint
import random, re, statistics, string, struct, textwrap, time, typing, unicodedata
import numpy as np, sympy as sp
import sympy.abc
from sympy import *
x, y, n = symbols("x y n")
f = Function("f")
items = [solve(x**2 - 2, x), factorint(360), simplify(sin(x)**2 + cos(x)**2), expand((x + y)**3),
    integrate(x * exp(x), x), diff(sin(x) * x, x), limit(sin(x) / x, x, 0), series(sin(x), x),
    summation(n**2, (n, 1, 10)), Matrix([[1, 2], [3, 4]]).inv(), roots(x**3 - 1), nsimplify(0.5),
    Poly(x**3 - 1).factor_list(), N(pi, 30), nsolve(x**2 - 2, x, 1), dsolve(f(x).diff(x) - f(x)),
    isprime(97), divisors(60), totient(10), binomial(10, 3), Rational(1, 3), latex(x**2 / y),
    linsolve([x + y - 2, x - y], (x, y)), solveset(x**2 - 1, x, S.Reals), apart(1 / (x**2 - 1)),
    factor(x**2 - 1), gcd(12, 18), mod_inverse(3, 7), continued_fraction(sqrt(2)), sqrt(8),
    np.linalg.solve(np.eye(2), np.ones(2)), np.polyfit([1, 2, 3], [1, 2, 3], 1), np.fft.fft([1, 2]),
    np.linalg.eig(np.eye(2)), np.roots([1, 0, -1]), np.array([1.5, 2]), statistics.mean([1, 2]),
    fractions.Fraction(1, 3) + 1, decimal.Decimal(1) / 3]
for v in items:
    print(v, repr(v), str(v))
pprint(x**2 / y)
print(lambdify(x, x**2)(3))
"""

if PRELOAD:
    # Load what common calls load lazily (a call that loads a module cannot leave its child for
    # the next), with the output thrown away.
    _saved = os.dup(1)
    try:
        _null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(_null, 1)
        os.close(_null)
        exec(compile(WARM_WORKER, "<warm-up>", "exec"), {"__name__": "__warm__"})
        sys.stdout.flush()
    except BaseException:
        pass
    finally:
        os.dup2(_saved, 1)
        os.close(_saved)
    import decimal
    decimal.setcontext(decimal.Context())  # the warm-up's flags are not a call's


def watched_modules():
    """The modules whose dicts fingerprint() compares entry by entry."""
    names = ["builtins"] + sorted(PURE_MODULES) + [
        "numpy.random", "numpy.linalg", "numpy.fft", "numpy.core", "sympy.core",
        "sympy.core.numbers", "sympy.ntheory", "sympy.solvers", "mpmath.ctx_mp"]
    return [sys.modules[m] for m in names if m in sys.modules]


def module_containers():
    """Every dict, list and set held by a module of PURE_MODULES (or builtins, sys), but caches
    that ordinary calls fill: fingerprint() compares their lengths."""
    skip = {("re", "_cache"), ("sympy.core.core", "all_classes"),
            ("sympy.polys.rings", "_ring_cache"), ("sympy.polys.fields", "_field_cache"),
            ("sympy.utilities.lambdify", "MPMATH"), ("sympy.utilities.lambdify", "MATH"),
            ("sympy.utilities.lambdify", "NUMPY"), ("sympy.utilities.lambdify", "SCIPY"),
            ("sympy.utilities.lambdify", "CUPY"), ("sympy.utilities.lambdify", "JAX"),
            ("sympy.utilities.lambdify", "TENSORFLOW"), ("sympy.utilities.lambdify", "SYMPY"),
            ("sympy.utilities.lambdify", "NUMEXPR"), ("sys", "modules"),
            ("sys", "path_importer_cache")}
    out = []
    for name, m in list(sys.modules.items()):
        if not isinstance(m, types.ModuleType) or (
                name.split(".")[0] not in PURE_MODULES and name not in ("builtins", "sys")):
            continue
        for k, v in list(m.__dict__.items()):
            if type(v) in (dict, list, set, bytearray) and (name, k) not in skip:
                out.append(v)
    return out


def find_randoms():
    """The random.Random instances of the loaded modules but random's own and SystemRandom:
    a forked child starts with the worker's states of them, so a reused one gets them back."""
    out = []
    for o in gc.get_objects():
        if isinstance(o, random.Random) and not isinstance(o, random.SystemRandom) \
                and o is not random._inst:
            out.append(o)
    return out


WATCHED = watched_modules()
STREAMS = ("stdin", "stdout", "stderr")
CONTAINERS = module_containers()
RANDOMS = find_randoms()
STATE_SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGALRM, signal.SIGXCPU, signal.SIGPIPE,
                 signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP, signal.SIGSEGV]

# Objects that exist now are never collected: the collector of a forked child would otherwise
# write to every one of them and copy the whole heap page by page.
gc.freeze()

# Children start with oom_score_adj 1000, so that the out-of-memory killer takes the call's
# processes before the worker: the worker raises its own around each fork (a write in the
# child would cost it copy-on-write faults). The file is opened while /proc/self is still ours.
try:
    OOM_FD = os.open("/proc/self/oom_score_adj", os.O_RDWR)
    OOM_ADJ = os.read(OOM_FD, 16).strip()
except OSError:
    OOM_FD = None
libc = ctypes.CDLL(None, use_errno=True)
try:
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: no ptrace or /proc/1/fd from the code
    if not IN_NAMESPACE:
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans come back to us
except Exception:
    pass
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(s, signal.SIG_IGN)


def debug(*args):
    if DEBUG:
        try:
            os.write(2, (" ".join(str(a) for a in args) + "\n").encode())
        except OSError:
            pass


# ---- The static check -----------------------------------------------------------------------


def pure(code):
    """Whether code may run on a used child and leave it for the next call (rule 1 of the
    header). Code that does not parse runs nothing: pure."""
    try:
        tree = ast.parse(code, "<string>")
    except (SyntaxError, ValueError):
        return True
    except BaseException:
        return False
    try:
        return Purity(tree).ok()
    except BaseException:  # a pathological tree: do not bother
        return False


GUARDS = (ast.Try, ast.With) + ((ast.TryStar,) if hasattr(ast, "TryStar") else ())


def dunder(name):
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


UNKNOWN = object()  # Purity.resolve: what a name stands for cannot be told
OPAQUE = object()  # Purity.resolve: reached through an object whose attributes are all safe
IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset, range, slice,
             type(Ellipsis))
DESCRIPTORS = (classmethod, staticmethod, property, types.MethodDescriptorType,
               types.ClassMethodDescriptorType, types.GetSetDescriptorType,
               types.MemberDescriptorType, types.WrapperDescriptorType)


def mutable_container(obj):
    import collections.abc as abc
    return isinstance(obj, (dict, list, set, bytearray, abc.MutableMapping, abc.MutableSequence,
                            abc.MutableSet)) or type(obj).__name__ == "ndarray"


def opaque(obj):
    """sympy's and mpmath's objects (S, Q, mp, expressions): their attributes are values,
    functions and contexts whose state fingerprint() watches."""
    return type(obj).__module__.split(".")[0] in ("sympy", "mpmath")


def safe_value(obj):
    """Whether a call may hold and use obj (something it imported) freely: not a container or
    an object with state of its own."""
    if mutable_container(obj):
        return False
    return isinstance(obj, IMMUTABLE + DESCRIPTORS + (types.ModuleType, type)) \
        or callable(obj) or opaque(obj)


class Purity:
    def __init__(self, tree):
        self.nodes = list(ast.walk(tree))
        self.parent = {}
        for node in self.nodes:
            for c in ast.iter_child_nodes(node):
                self.parent[c] = node
        self.bound = {}  # a name the code imports → (module, attribute path)

    def ok(self):
        stars, has_yield, has_guard = [], False, False
        for node in self.nodes:
            if isinstance(node, ast.Import):
                for a in node.names:
                    if not self.importable(a.name):
                        return False
                    if a.asname:
                        self.bound[a.asname] = (a.name, ())
                    else:
                        root = a.name.split(".")[0]
                        self.bound[root] = (root, ())
            elif isinstance(node, ast.ImportFrom):
                if node.level or not node.module or not self.importable(node.module):
                    return False
                for a in node.names:
                    if a.name == "*":
                        stars.append(node.module)
                    elif a.name.startswith("_") or a.name in BANNED:
                        return False
                    else:
                        self.bound[a.asname or a.name] = (node.module, (a.name,))
            elif isinstance(node, (ast.Yield, ast.YieldFrom)):
                has_yield = True
            elif isinstance(node, GUARDS):
                has_guard = True
            elif isinstance(node, (ast.AsyncFunctionDef, ast.AsyncFor, ast.AsyncWith, ast.Await)):
                return False
        if has_yield and has_guard:
            return False  # a generator's finally or __exit__ may run after the call
        for m in stars:
            mod = sys.modules.get(m)
            if mod is None:
                return False
            public = mod.__dict__.get("__all__")
            if not isinstance(public, (list, tuple)):
                public = [k for k in mod.__dict__ if k[:1] != "_"]
            for k in public:
                if isinstance(k, str):
                    self.bound.setdefault(k, (m, (k,)))
        return all(self.check(node) for node in self.nodes)

    @staticmethod
    def importable(name):
        parts = name.split(".")
        return parts[0] in PURE_MODULES and not any(
            p.startswith("_") or p in BANNED for p in parts)

    def check(self, node):
        if isinstance(node, ast.Name):
            if node.id in BANNED or (dunder(node.id) and node.id != "__name__"):
                return False
            if node.id in self.bound and isinstance(node.ctx, ast.Load):
                return self.imported(node)
            return True
        if isinstance(node, ast.Attribute):
            return not (node.attr.startswith("_") or node.attr in BANNED
                        or isinstance(node.ctx, (ast.Store, ast.Del)))
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)):
            return self.root(node.value) == "local"
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            return node.target.id not in self.bound
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in MUTATORS:
            return self.root(node.func.value) in ("local", "imported")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return not dunder(node.name) or node.name in SAFE_DUNDERS
        if isinstance(node, ast.ClassDef):
            return not node.keywords and all(
                isinstance(b, ast.Name) and b.id not in self.bound for b in node.bases)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value == "__main__" or not BANNED_IN_STRINGS.search(node.value)
        return True

    def imported(self, node):
        """Checks an imported name and the attributes read from it (np.linalg.norm): what they
        stand for must be safe to hold (safe_value), or be read from (an element of a
        container: np.typecodes["All"]); methods may be called on modules, classes and opaque
        objects only."""
        path, top = [], node
        while True:
            up = self.parent.get(top)
            if not (isinstance(up, ast.Attribute) and up.value is top):
                break
            top = up
            path.append(top.attr)
        obj = self.resolve(node.id, path)
        up = self.parent.get(top)
        if obj is OPAQUE:
            return True
        if obj is UNKNOWN:  # an attribute of an object: reading it is fine, calling it not
            return not (isinstance(up, ast.Call) and up.func is top)
        if isinstance(up, ast.Subscript) and up.value is top and isinstance(up.ctx, ast.Load):
            return True
        return safe_value(obj)

    def resolve(self, name, path):
        """What an imported name with attributes stands for, found in module and class dicts
        without running any code; UNKNOWN when it cannot be told, OPAQUE when it goes through
        an opaque object."""
        module, attrs = self.bound[name]
        obj = sys.modules.get(module, UNKNOWN)
        for a in list(attrs) + path:
            if isinstance(obj, types.ModuleType):
                sub = sys.modules.get(obj.__name__ + "." + a, UNKNOWN)
                obj = obj.__dict__.get(a, sub)
            elif isinstance(obj, type):
                for klass in obj.__mro__:
                    if a in klass.__dict__:
                        obj = klass.__dict__[a]
                        break
                else:
                    return UNKNOWN
            elif obj is not UNKNOWN and not mutable_container(obj) and (
                    opaque(obj) or isinstance(obj, IMMUTABLE) or callable(obj)):
                return OPAQUE  # its methods change nothing (a number's, a ufunc's)
            else:
                return UNKNOWN
        return obj

    def root(self, node):
        """What an expression that is changed in place (an element stored, a mutating method
        called) starts from: "local" (a variable of the code, indexed or through what its
        methods return: adj.setdefault(k, [])), "imported" (an imported name read directly:
        imported() checks it), or "other" (an attribute of a variable, self.items, or anything
        derived from an import: decimal.getcontext().traps)."""
        path, through = [], False
        while True:
            if isinstance(node, ast.Attribute):
                path.append(node.attr)
                node = node.value
            elif isinstance(node, ast.Subscript):
                through = True
                node = node.value
            elif isinstance(node, ast.Call):
                through = True
                node = node.func
                if isinstance(node, ast.Attribute):  # a method: what it is called on counts
                    node = node.value
            else:
                break
        if not isinstance(node, ast.Name):
            return "other"
        if node.id not in self.bound:
            return "local" if not path else "other"
        return "other" if through else "imported"


def pure_request(req):
    return all(pure(c) for c in (req.get("prelude") or [])) and pure(req.get("code", ""))


# ---- The forked child -----------------------------------------------------------------------


def read_exact(fd, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_frame(fd=REQ_FD):
    """Reads one framed JSON object; None at EOF or on garbage."""
    hdr = read_exact(fd, 4)
    body = read_exact(fd, struct.unpack("<I", hdr)[0]) if hdr is not None else None
    if body is None:
        return None
    try:
        msg = json.loads(body)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None


def frame(obj):
    data = json.dumps(obj).encode()
    return struct.pack("<I", len(data)) + data


def write_all(fd, data):
    while data:
        n = os.write(fd, data)
        data = data[n:]


def send(obj):
    write_all(RESP_FD, frame(obj))


def limit(res, value):
    if value is not None and value >= 0:
        try:
            resource.setrlimit(res, (value, value))
        except (ValueError, OSError):
            pass


WARM_UP = """
import math
def f(n):
    return [i * i for i in range(n)]
x = {"a": f(3), "b": math.sqrt(2.0)}
print(x, repr(x))
"""


def warm_up():
    """Touches, while the child waits for its request, the memory a call touches, so that the
    copy-on-write faults after fork are not paid during the call (they cost milliseconds)."""
    try:
        json.loads(json.dumps({"code": WARM_UP, "prelude": [], "seed": 1, "cpu": 1, "out": 1}))
        g = {"__name__": "__main__", "__builtins__": __builtins__}
        tree = ast.parse(WARM_UP, "<string>")
        exec(compile(tree, "<string>", "exec"), g)
        eval(compile(ast.Expression(ast.parse("x", mode="eval").body), "<string>", "eval"), g)
        try:
            {}["k"]
        except KeyError as e:
            traceback.format_exception_only(type(e), e)
        sys.stdout.flush()
    except BaseException:
        pass


def fingerprint():
    """The interpreter's global state a pure call could conceivably change (rule 3 of the
    header). The worker takes it once; every child starts with the same."""
    fp = [len(sys.modules), sys.getrecursionlimit(), sys.get_int_max_str_digits(),
          sys.getswitchinterval(), sys.displayhook, sys.excepthook, sys.unraisablehook,
          sys.breakpointhook, sys.gettrace(), sys.getprofile(), tuple(sys.path),
          len(sys.meta_path), len(sys.path_hooks), gc.isenabled(), gc.get_threshold(),
          [(m.__name__, len(m.__dict__), hash(tuple(map(id, m.__dict__.values()))))
           for m in WATCHED],
          # sys but the streams, which a child replaces with its own
          hash(tuple(id(v) for k, v in sys.__dict__.items() if k not in STREAMS)),
          hash(tuple(map(id, sys.modules.values()))),
          [len(c) for c in CONTAINERS]]
    w = sys.modules.get("warnings")
    if w is not None:
        fp.append(tuple(map(repr, w.filters)))
    t = sys.modules.get("threading")
    if t is not None:
        fp.append(t.active_count())
    loc = sys.modules.get("locale")
    if loc is not None:
        fp.append(loc.setlocale(loc.LC_ALL))
    np = sys.modules.get("numpy")
    if np is not None:
        fp += [np.get_printoptions(), np.geterr(), np.getbufsize(), np.geterrcall()]
    dec = sys.modules.get("decimal")
    if dec is not None:
        fp += [repr(dec.DefaultContext), repr(dec.BasicContext), repr(dec.ExtendedContext)]
    par = sys.modules.get("sympy.core.parameters")
    if par is not None:
        gp = par.global_parameters
        fp.append((gp.evaluate, gp.distribute, gp.exp_is_pow))
    ass = sys.modules.get("sympy.assumptions.assume")
    if ass is not None:
        fp.append(tuple(map(repr, ass.global_assumptions)))
    pr = sys.modules.get("sympy.printing.printer")
    if pr is not None:
        fp.append(repr(pr.Printer._global_settings))
    mp = sys.modules.get("mpmath")
    if mp is not None:
        fp.append((mp.mp.prec, mp.mp.pretty, mp.fp.pretty, mp.mp.trap_complex))
    return fp


def process_state():
    """The process's own state a call could change: streams, signal dispositions, timers and
    mask, umask, environment, open files. A child takes it when it starts (cheaply: its
    memory is still the worker's, and touching it costs copy-on-write faults)."""
    u = os.umask(0o22)
    os.umask(u)
    return [sys.stdin, sys.stdout, sys.stderr, sys.stdout.closed, u,
            [signal.getsignal(s) for s in STATE_SIGNALS],
            [signal.getitimer(t) for t in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL,
                                           signal.ITIMER_PROF)],
            signal.pthread_sigmask(signal.SIG_BLOCK, []), tuple(sorted(os.environ.items())),
            sorted(os.listdir("/proc/self/fd"))]


def rlimits():
    return [resource.getrlimit(r) for r in (resource.RLIMIT_AS, resource.RLIMIT_FSIZE,
            resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC, resource.RLIMIT_CORE)] + [
            resource.getrlimit(resource.RLIMIT_CPU)[1]]


def vm_bytes():
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


class Baseline:
    """What every child starts as, for tidy() to put back and compare: taken by the worker."""

    def __init__(self):
        self.randoms = [(r, r.getstate()) for r in RANDOMS]
        sym = sys.modules.get("sympy.core.symbol")
        self.dummy = sym.Dummy._count if sym is not None else None
        lam = sys.modules.get("sympy.utilities.lambdify")
        self.lambdify = lam._lambdify_generated_counter if lam is not None else None
        dec = sys.modules.get("decimal")
        self.decimal = dec.getcontext().copy() if dec is not None else None
        self.fp = fingerprint()


def reseed(forked=False):
    """Random states as after a fork: random reseeds itself from os.urandom (its fork
    handler), numpy's legacy generator is seeded here (seed(None) is 10x slower than from 4
    bytes)."""
    if not forked:
        random.seed()
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed(int.from_bytes(os.urandom(4), "little"))


def tidy(base, g, proc, limits, vm):
    """Makes a child that ran a pure call (with globals g) as it was at its start, or says why
    it cannot: base is the worker's Baseline, proc the child's process_state() and vm its
    address space at its start, limits its rlimits() after its first call set them."""
    os.dup2(0, 1)  # nothing printed from here on reaches a call's output
    g.clear()
    gc.collect()
    gc.freeze()  # what is left now is not the next call's to collect
    try:
        sys.stdout.flush()
    except BaseException:
        return "stdout"
    reseed()
    for r, st in base.randoms:
        r.setstate(st)
    sym = sys.modules.get("sympy.core.symbol")
    if sym is not None and base.dummy is not None:
        sym.Dummy._count = base.dummy
    lam = sys.modules.get("sympy.utilities.lambdify")
    if lam is not None and base.lambdify is not None:
        lam._lambdify_generated_counter = base.lambdify
    dec = sys.modules.get("decimal")
    if dec is not None and base.decimal is not None:
        dec.setcontext(base.decimal.copy())
    fp = fingerprint()
    if fp != base.fp:
        if DEBUG:
            diff = []
            for i, (a, b) in enumerate(zip(base.fp, fp)):
                if a != b and isinstance(a, list) and len(a) == len(b):
                    diff += ["%d.%d: %.100r != %.100r" % (i, j, x, y)
                             for j, (x, y) in enumerate(zip(a, b)) if x != y]
                elif a != b:
                    diff.append("%d: %.200r != %.200r" % (i, a, b))
            return "fingerprint: " + "; ".join(diff)
        return "fingerprint"
    if process_state() != proc:
        return "process state"
    if len(os.listdir("/proc/self/task")) != 1:
        return "threads"
    if os.getcwd() != CWD:
        return "working directory"
    if vm_bytes() > vm + MAX_GROWTH:
        return "memory"
    if rlimits() != limits:
        return "limits"
    os.dup2(4, 1)
    return None


def child_main(req_r, out_w, res_w):
    """Runs in the forked child: fd 5 carries requests (framed), fd 1 (and 4) is stdout, fd 3
    the results (a line of JSON each). Forked ahead of its first call, so no call waits for
    fork; a pure call leaves it ready for the next."""
    os.setsid()
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(s, signal.SIG_DFL)
    # Move the pipes out of the way first (any of them may sit on 3, 4 or 5), then into place.
    devnull = os.open("/dev/null", os.O_RDWR)
    fds = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in (res_w, out_w, req_r, devnull)]
    for target, fd in zip((3, 4, 5, 0), fds):
        os.dup2(fd, target)
    os.dup2(0, 1)
    os.dup2(0, 2)
    os.closerange(6, 1 << 16)
    os.chdir(CWD)
    reseed(forked=True)
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    warm_up()
    # The process state to compare after pure calls is taken at the first (a child that only
    # runs an impure call is spared the cost: everything a fresh child touches costs it a
    # copy-on-write fault).
    proc = vm = limits = None
    for calls in range(1, MAX_CALLS + 1):
        req = read_frame(5)
        if req is None:
            os._exit(0)
        keep = bool(req.get("keep"))
        if keep and proc is None:
            proc, vm = process_state(), vm_bytes()
        if limits is None:
            limit(resource.RLIMIT_AS, req.get("mem", 0))
            limit(resource.RLIMIT_FSIZE, req.get("fsize", 0))
            limit(resource.RLIMIT_NOFILE, req.get("nofile", 0))
            limit(resource.RLIMIT_NPROC, req.get("nproc", 0))
            limit(resource.RLIMIT_CORE, 0)
            limits = rlimits()
        cpu = req.get("cpu", 0)
        if cpu > 0:
            # CPU time counts over the child's life: the limit is counted from now. Pure code
            # cannot catch SIGXCPU, so its hard limit stays for the calls after it.
            ru = resource.getrusage(resource.RUSAGE_SELF)
            soft = math.ceil(ru.ru_utime + ru.ru_stime + cpu)
            hard = resource.getrlimit(resource.RLIMIT_CPU)[1] if keep else soft + 1
            resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        res, clean, g = call(req, keep)
        keep = keep and clean and calls < MAX_CALLS
        res["keep"] = keep
        try:
            # The newline ends the call for the worker: it need not wait for this process.
            os.write(3, json.dumps(res).encode() + b"\n")
        except BaseException:
            os._exit(0)
        if not keep:
            os._exit(0)
        why = tidy(BASE, g, proc, limits, vm)
        del g
        if why is not None:
            os.write(3, json.dumps({"ready": False, "why": why}).encode() + b"\n")
            os._exit(0)
        os.write(3, b'{"ready": true}\n')
    os._exit(0)


def call(req, keep):
    """Runs the request's prelude cells and code. Returns the result for the worker and
    whether the child is still clean (rule 2 of the header)."""
    clean = True
    seed = req.get("seed")  # a session's: its cells replay with the same random numbers
    if seed is not None:
        random.seed(seed)
        np = sys.modules.get("numpy")
        if np is not None:
            np.random.seed(seed % (1 << 32))
    g = {"__name__": "__main__", "__builtins__": __builtins__}
    os.dup2(0, 1)  # the prelude's output is not shown
    for cell in req.get("prelude") or []:
        try:
            exec(compile(cell, "<string>", "exec"), g)
        except (MemoryError, RecursionError):
            clean = False
        except BaseException:
            pass
        try:
            sys.stdout.flush()
        except BaseException:
            clean = False
    os.dup2(4, 1)
    if not keep:  # what the code sees of fds: 0 to 3
        os.close(4)
        os.close(5)
    res = {"status": "ok", "value": None}
    try:
        tree = ast.parse(req["code"], "<string>")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, "<string>", "exec"), g)
        if last is not None:
            v = eval(compile(last, "<string>", "eval"), g)
            if v is not None:
                r = repr(v)
                cap = req.get("out", 1 << 20)
                res["value"] = r if len(r) <= cap else r[: cap // 2] + r[-cap // 2:]
    except SystemExit:
        pass
    except BaseException as e:
        res["status"] = "exception"
        if isinstance(e, (MemoryError, RecursionError)):
            clean = False
        try:
            lines = traceback.format_exception_only(type(e), e)
            res["error"] = lines[-1].strip() if lines else type(e).__name__
        except BaseException:
            res["error"] = type(e).__name__
    try:
        sys.stdout.flush()
    except BaseException:
        clean = False
    return res, clean, g


# ---- The worker -----------------------------------------------------------------------------


def kill_others():
    """Sends SIGKILL to every process but the worker: the calls' and the children's.

    In the sandbox the worker is PID 1 of its namespace, so kill(-1) reaches every other
    process there and orphans are reparented to it. Without the sandbox the worker is a child
    subreaper and kills its children and their process groups (descendants come back to it as
    orphans when their parents die; kill_all repeats until none is left)."""
    if IN_NAMESPACE:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return
    for pid in children(os.getpid()):
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except OSError:
                pass


def kill_all():
    """Kills and reaps every process but the worker: on return the worker has no child."""
    while True:
        kill_others()
        try:
            while True:
                pid, _ = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
        except ChildProcessError:
            return
        time.sleep(0.001)


def children(ppid):
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
            if int(stat[stat.rindex(b")") + 2:].split()[1]) == ppid:
                out.append(int(name))
        except (OSError, ValueError):
            pass
    return out


def others(allowed):
    """The processes of the namespace but the worker and the allowed pids."""
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc")
            if p.isdigit() and int(p) != me and int(p) not in allowed]


def sysv_ipc():
    """The System V IPC objects of the namespace, as (kind, id): they outlive the processes
    that made them (the IPC namespace is the worker's, not a call's)."""
    out = []
    for kind in ("shm", "sem", "msg"):
        try:
            with open("/proc/sysvipc/" + kind, "rb") as f:
                out += [(kind, int(line.split()[1])) for line in f.read().splitlines()[1:]]
        except (OSError, ValueError, IndexError):
            pass
    return out


def remove_ipc():
    for kind, ident in sysv_ipc():
        if kind == "sem":
            libc.semctl(ident, 0, 0)  # IPC_RMID
        else:
            getattr(libc, kind + "ctl")(ident, 0, None)


def tmp_clean():
    """Whether /tmp holds nothing but the empty working directory."""
    try:
        return os.listdir(TMP) == ["cwd"] and not os.listdir(CWD) and os.path.isdir(CWD) \
            and not os.path.islink(CWD)
    except OSError:
        return False


def wipe_tmp():
    for name in os.listdir(TMP):
        path = os.path.join(TMP, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                for root, dirs, _ in os.walk(path):
                    for d in dirs:
                        try:
                            os.chmod(os.path.join(root, d), 0o700, follow_symlinks=False)
                        except OSError:
                            pass
                os.chmod(path, 0o700)
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        except OSError:
            pass


def oom(adj):
    """Sets the worker's oom_score_adj (see OOM_FD); gives up on it if it cannot go back."""
    global OOM_FD
    if OOM_FD is None:
        return
    try:
        os.lseek(OOM_FD, 0, os.SEEK_SET)
        os.write(OOM_FD, adj)
        if adj == OOM_ADJ:
            os.lseek(OOM_FD, 0, os.SEEK_SET)
            if os.read(OOM_FD, 16).strip() != OOM_ADJ:
                raise OSError("oom_score_adj stays raised")
    except OSError as e:
        debug("oom_score_adj: %s" % e)
        os.close(OOM_FD)
        OOM_FD = None


class Child:
    """A forked child, blocked reading its next request."""

    def __init__(self):
        req_r, self.req_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.res_r, res_w = os.pipe()
        self.calls = 0  # calls it has served and stayed clean after
        self.limits = None  # the fixed limits it applied at its first call
        self.rest = b""  # what it wrote on the result pipe after its last result line
        gc.freeze()
        oom(b"1000")
        self.pid = os.fork()
        if self.pid != 0:
            oom(OOM_ADJ)
        if self.pid == 0:
            try:
                child_main(req_r, out_w, res_w)
            except BaseException as e:  # a bug of this file: tell the worker what it was
                try:
                    msg = {"status": "internal", "error": "%s: %s" % (type(e).__name__, e)}
                    os.write(3, json.dumps(msg).encode() + b"\n")
                except BaseException:
                    pass
            finally:
                os._exit(70)
        for fd in (req_r, out_w, res_w):
            os.close(fd)
        for fd in (self.out_r, self.res_r):
            os.set_blocking(fd, False)
        self.pidfd = os.pidfd_open(self.pid)

    def alive(self):
        return not select.select([self.pidfd], [], [], 0)[0]

    def await_ready(self):
        """Waits for the line that says the child tidied up after a call and is clean."""
        deadline = time.monotonic() + READY_WAIT
        poll = select.poll()
        poll.register(self.res_r, select.POLLIN)
        poll.register(self.pidfd, select.POLLIN)
        while b"\n" not in self.rest:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for fd, _ in poll.poll(max(1, int(left * 1000))):
                if fd == self.pidfd:
                    return False
                try:
                    data = os.read(self.res_r, 4096)
                except BlockingIOError:
                    continue
                if not data:
                    return False
                self.rest += data
        line, self.rest = self.rest.split(b"\n", 1)
        if line != b'{"ready": true}':
            debug("child %d not reused: %s" % (self.pid, line.decode("utf-8", "replace")))
            return False
        return not self.rest and self.alive()

    def close(self):
        for fd in (self.req_w, self.out_r, self.res_r, self.pidfd):
            try:
                os.close(fd)
            except OSError:
                pass

    def discard(self):
        """Kills and reaps the child (it has no process of its own: it is idle or dead)."""
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except OSError:
            pass
        self.close()


def run(req, ch, allowed):
    """Runs one request on child ch and returns the reply and whether ch stays for the next
    call. When it does not, every process but the worker has been sent SIGKILL; reaping them
    is left to cleanup. allowed are the pids of the worker's other children."""
    timeout = float(req.pop("timeout", 5))
    req_id = req.get("id")
    cap = int(req.get("out", 1 << 20))
    t0 = time.monotonic()
    try:
        write_all(ch.req_w, frame(req))
    except OSError:
        pass  # the child is gone: its status says why
    out_r, res_r, pid = ch.out_r, ch.res_r, ch.pid
    poll = select.poll()
    for fd in (out_r, res_r, ch.pidfd, REQ_FD):
        poll.register(fd, select.POLLIN)
    head, tail, resbuf = bytearray(), bytearray(), bytearray(ch.rest)
    ch.rest = b""
    total = 0
    open_fds = {out_r, res_r}
    status = None
    deadline = t0 + timeout

    def drain(fd):
        nonlocal total, tail
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return False
        if not data:
            poll.unregister(fd)
            open_fds.discard(fd)
            return False
        if fd == out_r:
            total += len(data)
            if len(head) < cap:
                head.extend(data[: cap - len(head)])
            tail = (tail + data)[-TAIL_BYTES:]
        elif len(resbuf) < 4 * cap + 65536:
            resbuf.extend(data)
        return True

    exited = reported = False
    while not exited:
        reported = b"\n" in resbuf
        if reported:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            status = "timeout"
            break
        for fd, _ in poll.poll(max(1, int(left * 1000))):
            if fd == ch.pidfd:
                exited = True
            elif fd == REQ_FD:
                # Only a cancel can come during a call (or EOF: the pool is going away).
                msg = read_frame()
                if msg is None or msg.get("cancel") == req_id:
                    status = "canceled"
                if msg is None:
                    poll.unregister(REQ_FD)
            else:
                drain(fd)
        if status == "canceled":
            break
        if total > cap:
            status = "output_limit"
            break
    wall = time.monotonic() - t0

    def result():
        """The child's result line (a complete one: the code has finished and flushed its
        stdout) and what follows it."""
        line, _, rest = bytes(resbuf).partition(b"\n")
        try:
            res = json.loads(line.decode("utf-8", "replace"))
        except ValueError:
            res = None
        return res, rest

    res = None
    if reported:
        res, ch.rest = result()
    keep = (req.get("keep") and status is None and isinstance(res, dict)
            and res.get("keep") is True and res.get("status") in ("ok", "exception")
            and not others(allowed | {pid}))
    st = None
    if exited and not reported:
        _, st = os.waitpid(pid, 0)  # a zombie already: no wait
    if not keep:
        kill_others()
    # Every writer has been sent SIGKILL, or the child, the only one, has written all its
    # output before its result: what is in the pipes now is all there will be.
    while out_r in open_fds and total <= cap and drain(out_r):
        pass
    if not keep:
        while res_r in open_fds and drain(res_r):
            pass
        if not reported and resbuf:
            res, _ = result()
    if total > cap:
        status = "output_limit"
        keep = False
    reply = {
        "head": head.decode("utf-8", "replace"),
        "tail": tail.decode("utf-8", "replace") if total > cap else "",
        "bytes": total,
        "wall": wall,
    }
    if status is None:
        if st is not None and os.WIFSIGNALED(st):
            sig = os.WTERMSIG(st)
            status = "timeout" if sig == signal.SIGXCPU else "signal"
            reply["signal"] = sig
        elif isinstance(res, dict) and res.get("status") == "internal":
            status = "worker_error"
            reply["error"] = str(res.get("error"))
        elif isinstance(res, dict) and res.get("status") in ("ok", "exception"):
            status = res["status"]
            reply["error"] = str(res.get("error") or "")
            v = res.get("value")
            reply["value"] = v if isinstance(v, str) else None
        elif st is None:  # something wrote a line on fd 3 that is not a result
            status = "bad_result"
            reply["error"] = "the code wrote on the result channel"
        else:
            status = "exit"
            reply["exit"] = os.WEXITSTATUS(st)
    reply["status"] = status
    return reply, bool(keep)


def cleanup():
    """After a call that left no child to reuse: reap everything, wipe /tmp, make the next
    call's working directory."""
    kill_all()
    wipe_tmp()
    if IN_NAMESPACE:
        remove_ipc()
    os.mkdir(CWD, 0o700)


def serve():
    cleanup()
    spare, used = Child(), None  # never used; used by pure calls and clean
    send({"ready": True, "pid": os.getpid()})
    while True:
        req = read_frame()
        if req is None:  # the pool closed the pipe: exit, reaping everything first
            kill_all()
            os._exit(0)
        if "cancel" in req:  # for a call that has already ended
            continue
        keep = REUSE and pure_request(req)
        limits = tuple(req.get(k) for k in ("mem", "fsize", "nofile", "nproc"))
        req["keep"] = keep
        if used is not None and not used.alive():  # the OOM killer, say
            used.discard()
            used = None
        if keep and used is not None and used.limits == limits:
            ch = used
        else:
            if spare is not None and not spare.alive():
                spare.discard()
                spare = None
            if spare is None:
                spare = Child()
            ch = spare
        allowed = {c.pid for c in (spare, used) if c is not None}
        try:
            reply, kept = run(req, ch, allowed)
        except Exception as e:  # a worker bug: report it, keep serving
            reply = {"status": "worker_error", "error": "%s: %s" % (type(e).__name__, e)}
            kept = False
            kill_others()
        reply["id"] = req.get("id")
        reply["reused"] = ch.calls > 0
        send(reply)
        if kept and ch.await_ready() and not others(allowed) and tmp_clean() \
                and not sysv_ipc():
            ch.calls += 1
            ch.limits = limits
            if ch is spare:
                if used is not None:  # another's limits: not needed any more
                    used.discard()
                used, spare = ch, None
        else:
            if kept:
                debug("child %d not reused: it did not tidy up, or the namespace is not clean"
                      % ch.pid)
            for c in (spare, used):  # ch is one of them
                if c is not None:
                    c.close()
            cleanup()
            spare, used = None, None
        if spare is None:
            spare = Child()


BASE = Baseline()  # before the first fork
serve()
