# The sandbox worker: runs as PID 1 of its own PID namespace inside bubblewrap.
#
# The pool starts it with this program on stdin (it is not on the command line) and talks to it
# on fd 3 (requests) and fd 4 (replies); a frame is a 4-byte little-endian length and JSON.
#
# Every call runs in a child forked from this process (numpy and sympy loaded) that no call has
# used before: the worker forks it ahead of the call; it sets its limits and runs the code, its
# stdout goes to a pipe the worker reads (bounded), and its result comes back as a line of JSON
# on fd 3. After a call every other process of the namespace is killed and reaped, /tmp and
# /dev/shm are wiped and System V IPC objects removed, and a new child is forked: nothing a call
# changes, starts or writes reaches the next, which starts from this process's state as every
# call does. A session's call ("session": true) leaves its child, with its globals, files and
# processes, for the session's next call instead, unless it did not end normally (a time,
# output or CPU limit, a signal, a cancel, a broken protocol); {"end": true} ends the session
# (everything is killed and wiped as after a stateless call).
#
# Being PID 1, the worker cannot be killed by the code (the kernel drops signals sent to a
# namespace's init from inside it). Without the sandbox (unsafe mode) the worker is a child
# subreaper and kills its children and their process groups instead.
import ast
import ctypes
import errno
import fcntl
import gc
import json
import math
import os
import platform
import resource
import select
import shutil
import signal
import struct
import sys
import time
import traceback

REQ_FD, RESP_FD = 3, 4
TAIL_BYTES = 4096
# argv: preload|lazy, sandbox|unsafe, the private temporary directory (/tmp in the sandbox).
PRELOAD = sys.argv[1] == "preload"
IN_NAMESPACE = sys.argv[2] == "sandbox"
TMP = sys.argv[3]
CWD = os.path.join(TMP, "cwd")
# The directories a call can write to, wiped after it (in the sandbox / and /dev are read-only
# and /dev/shm is a tmpfs of its own).
SCRATCH = [TMP] + (["/dev/shm"] if IN_NAMESPACE else [])
WARNINGS = []  # reported to the pool with "ready"

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
    # Load what common calls load lazily, so that each call's child need not, with the output
    # thrown away.
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
libc.syscall.restype = ctypes.c_long
try:
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: no ptrace or /proc/1/fd from the code
    if not IN_NAMESPACE:
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans come back to us
except Exception:
    pass
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(s, signal.SIG_IGN)


# ---- Kernel keyrings ------------------------------------------------------------------------
#
# Keys outlive the processes that add them (the user keyring belongs to the sandbox's uid), so a
# call may not use them: a seccomp filter, set in each child before the code runs, fails
# add_key, request_key and keyctl with EPERM, and every system call of another ABI (i386
# through int 0x80, x32) with ENOSYS.

# machine → (AUDIT_ARCH_*, the numbers of add_key, request_key, keyctl)
KEY_SYSCALLS = {"x86_64": (0xC000003E, (248, 249, 250)), "aarch64": (0xC00000B7, (217, 218, 219))}
ARCH = KEY_SYSCALLS.get(platform.machine())


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_program():
    """The filter as a struct sock_fprog and the buffer it points to."""
    audit, nrs = ARCH
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, JGE|K, BPF_RET|K
    allow, fail = 0x7FFF0000, 0x00050000  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO
    n = len(nrs)
    prog = [(ld, 0, 0, 4),  # seccomp_data.arch
            (jeq, 1, 0, audit),
            (ret, 0, 0, fail | errno.ENOSYS),
            (ld, 0, 0, 0),  # seccomp_data.nr
            (jge, 0, 1, 0x40000000),  # __X32_SYSCALL_BIT
            (ret, 0, 0, fail | errno.ENOSYS)]
    prog += [(jeq, n - i, 0, nr) for i, nr in enumerate(nrs)]
    prog += [(ret, 0, 0, allow), (ret, 0, 0, fail | errno.EPERM)]
    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *p) for p in prog))
    return SockFprog(len(prog), ctypes.cast(buf, ctypes.c_void_p)), buf


def set_seccomp():
    """Sets the keyring filter on this process (and so on all it starts)."""
    ul = ctypes.c_ulong
    libc.prctl(38, ul(1), ul(0), ul(0), ul(0))  # PR_SET_NO_NEW_PRIVS
    if libc.prctl(22, ul(2), ctypes.byref(SECCOMP[0]), ul(0), ul(0)) != 0:  # SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), "seccomp: " + os.strerror(ctypes.get_errno()))


def check_seccomp():
    """Tries the filter once, in a child: None when it stops add_key, else a warning."""
    pid = os.fork()
    if pid == 0:
        try:
            set_seccomp()
            r = libc.syscall(ARCH[1][0], b"user", b"probe", b"x", 1, ctypes.c_int(-4))
            os._exit(0 if r == -1 and ctypes.get_errno() == errno.EPERM else 1)
        except BaseException:
            os._exit(2)
    _, st = os.waitpid(pid, 0)
    if os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0:
        return None
    return "the seccomp filter could not be set (status %d): calls can use kernel keyrings" % st


SECCOMP = None
if ARCH is None:
    WARNINGS.append("no seccomp filter for %s: calls can use kernel keyrings" % platform.machine())
else:
    SECCOMP = seccomp_program()
    warning = check_seccomp()
    if warning:
        WARNINGS.append(warning)
        SECCOMP = None


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
    copy-on-write faults after fork are not paid during the call (they cost milliseconds). When
    the request is there already it would only add faults."""
    try:
        json.loads(json.dumps({"code": WARM_UP, "session": True, "cpu": 1, "out": 1}))
        g = {"__name__": "__main__", "__builtins__": __builtins__}
        tree = ast.parse(WARM_UP, "<string>")
        os.dup2(0, 1)
        exec(compile(tree, "<string>", "exec"), g)
        eval(compile(ast.Expression(ast.parse("x", mode="eval").body), "<string>", "eval"), g)
        try:
            {}["k"]
        except KeyError as e:
            traceback.format_exception_only(type(e), e)
        sys.stdout.flush()
    except BaseException:
        pass
    os.dup2(4, 1)


def child_main(req_r, out_w, res_w):
    """Runs in a forked child: requests come on fd 5 (framed), stdout (fd 1, also on fd 4) goes
    to the worker, results go on fd 3 (a line of JSON each). A stateless call's child runs one
    call and exits; a session's runs the session's calls one after another in one namespace."""
    os.setsid()
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(s, signal.SIG_DFL)
    # Move the pipes out of the way first (any of them may sit on 3, 4 or 5), then into place.
    devnull = os.open("/dev/null", os.O_RDWR)
    fds = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in (res_w, out_w, req_r, devnull)]
    for target, fd in zip((3, 4, 5, 0), fds):
        os.dup2(fd, target)
    os.dup2(4, 1)
    os.dup2(0, 2)
    os.closerange(6, 1 << 16)
    os.chdir(CWD)
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    if SECCOMP is not None:
        set_seccomp()
    if not select.select([5], [], [], 0)[0]:  # idle: fault the call's memory in ahead of it
        warm_up()
    g = {"__name__": "__main__", "__builtins__": __builtins__}
    first = True
    while True:
        req = read_frame(5)
        if req is None:
            os._exit(0)
        session = bool(req.get("session"))
        if first:
            limit(resource.RLIMIT_AS, req.get("mem", 0))
            limit(resource.RLIMIT_FSIZE, req.get("fsize", 0))
            limit(resource.RLIMIT_NOFILE, req.get("nofile", 0))
            limit(resource.RLIMIT_NPROC, req.get("nproc", 0))
            limit(resource.RLIMIT_CORE, 0)
            limit(resource.RLIMIT_MSGQUEUE, 0)  # POSIX message queues outlive their processes
            first = False
        cpu_limit(req.get("cpu", 0), session)
        if not session:  # what the code sees of fds: 0 to 3
            os.close(4)
            os.close(5)
        res = call(req, g)
        res["id"] = req.get("id")
        try:
            # The newline ends the call for the worker: it need not wait for this process.
            os.write(3, json.dumps(res).encode() + b"\n")
        except BaseException:
            os._exit(0)
        if not session:
            os._exit(0)


def cpu_limit(cpu, session):
    """Limits the call's CPU time to cpu seconds from now. A stateless call's child gets a hard
    limit too; a session's cannot (it could not be raised for the next call): SIGXCPU ends it,
    unless the code handles it, and then the wall time limit does."""
    if cpu <= 0:
        return
    ru = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(ru.ru_utime + ru.ru_stime + cpu)
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    if not session:
        hard = soft + 1
    elif hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    except (ValueError, OSError):
        pass


def call(req, g):
    """Runs the request's code in the globals g and returns the result for the worker."""
    res = {"status": "ok", "value": None}
    try:
        tree = ast.parse(req.get("code", ""), "<string>")
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
        try:
            lines = traceback.format_exception_only(type(e), e)
            res["error"] = lines[-1].strip() if lines else type(e).__name__
        except BaseException:
            res["error"] = type(e).__name__
    try:
        sys.stdout.flush()
    except BaseException:
        pass
    return res


# ---- The worker -----------------------------------------------------------------------------


def kill_others():
    """Sends SIGKILL to every process but the worker.

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


def remove_ipc():
    """Removes the namespace's System V IPC objects: they outlive the processes that made them
    (the IPC namespace is the worker's, not a call's)."""
    for kind in ("shm", "sem", "msg"):
        try:
            with open("/proc/sysvipc/" + kind, "rb") as f:
                ids = [int(line.split()[1]) for line in f.read().splitlines()[1:]]
        except (OSError, ValueError, IndexError):
            continue
        for ident in ids:
            if kind == "sem":
                libc.semctl(ident, 0, 0)  # IPC_RMID
            else:
                getattr(libc, kind + "ctl")(ident, 0, None)


def wipe(top):
    """Removes everything in the directory top, whatever its permissions."""
    for name in os.listdir(top):
        path = os.path.join(top, name)
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
    except OSError:
        os.close(OOM_FD)
        OOM_FD = None


class Child:
    """A forked child, blocked reading its next request."""

    def __init__(self):
        req_r, self.req_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.res_r, res_w = os.pipe()
        self.rest = b""  # what it wrote on the result pipe after its last result line
        # The random module reseeds itself in a forked child; numpy's legacy generator does
        # not, so the worker reseeds it for each child (seeding in the child would cost it
        # copy-on-write faults).
        np = sys.modules.get("numpy")
        if np is not None:
            np.random.seed(int.from_bytes(os.urandom(4), "little"))  # seed(None) is 10x slower
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

    def close(self):
        for fd in (self.req_w, self.out_r, self.res_r, self.pidfd):
            try:
                os.close(fd)
            except OSError:
                pass


def run(req, ch):
    """Runs one request on child ch. Returns the reply and whether ch stays for the session's
    next call: a session's call that ended normally. When it does not, every process but the
    worker has been sent SIGKILL; reaping them is left to cleanup."""
    timeout = float(req.pop("timeout", 5))
    req_id = req.get("id")
    session = bool(req.get("session"))
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

    res = None
    if reported:
        line, _, ch.rest = bytes(resbuf).partition(b"\n")
        try:
            res = json.loads(line.decode("utf-8", "replace"))
        except ValueError:
            pass
    keep = (session and status is None and isinstance(res, dict) and res.get("id") == req_id
            and res.get("status") in ("ok", "exception") and not ch.rest and ch.alive())
    st = None
    if exited and not reported:
        _, st = os.waitpid(pid, 0)  # a zombie already: no wait
    if not keep:
        kill_others()
    # Every writer has been sent SIGKILL, or the child has written all the call's output before
    # its result: what is in the pipes now is all there will be of the call's.
    while out_r in open_fds and total <= cap and drain(out_r):
        pass
    if not keep:
        while res_r in open_fds and drain(res_r):
            pass
        if not reported and resbuf:
            try:
                res = json.loads(bytes(resbuf).decode("utf-8", "replace"))
            except ValueError:
                res = None
    if total > cap:
        status = "output_limit"
        keep = False
        kill_others()
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
        elif isinstance(res, dict) and res.get("status") in ("ok", "exception") \
                and res.get("id") == req_id:
            status = res["status"]
            reply["error"] = str(res.get("error") or "")
            v = res.get("value")
            reply["value"] = v if isinstance(v, str) else None
        elif st is None:  # something wrote a line on fd 3 that is not this call's result
            status = "bad_result"
            reply["error"] = "the code wrote on the result channel"
        else:
            status = "exit"
            reply["exit"] = os.WEXITSTATUS(st)
    reply["status"] = status
    return reply, bool(keep)


def cleanup():
    """Reaps everything, wipes the scratch directories and System V IPC objects, and makes the
    next call's working directory."""
    kill_all()
    for d in SCRATCH:
        wipe(d)
    if IN_NAMESPACE:
        remove_ipc()
    os.mkdir(CWD, 0o700)


def restart(*children):
    """Closes the children's pipes, kills and wipes everything (cleanup), and returns a new
    spare child."""
    for c in set(children) - {None}:
        c.close()
    cleanup()
    return Child()


def serve():
    cleanup()
    spare, session = Child(), None  # spare: never used; session: the session's live child
    send({"ready": True, "pid": os.getpid(), "warnings": WARNINGS})
    while True:
        req = read_frame()
        if req is None:  # the pool closed the pipe: exit, reaping everything first
            kill_all()
            os._exit(0)
        if "cancel" in req:  # for a call that has already ended
            continue
        if session is not None and not session.alive():  # the OOM killer, or its own doing
            spare, session = restart(spare, session), None
        if req.get("end"):
            spare, session = restart(spare, session), None
            send({"id": req.get("id"), "status": "ended"})
            continue
        fresh = not (req.get("session") and session is not None)
        if fresh:
            if spare is None:
                spare = Child()
            elif not spare.alive():
                spare = restart(spare)
            ch, spare = spare, None
        else:
            ch = session
        try:
            reply, keep = run(req, ch)
        except Exception as e:  # a worker bug: report it, keep serving
            reply = {"status": "worker_error", "error": "%s: %s" % (type(e).__name__, e)}
            keep = False
            kill_others()
        reply["id"] = req.get("id")
        reply["fresh"] = fresh
        send(reply)
        if keep:
            session = ch
        else:
            spare, session = restart(ch, session), None


serve()
