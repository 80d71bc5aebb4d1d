# The sandbox worker: runs as PID 1 of its own PID namespace inside bubblewrap.
#
# It reads framed JSON requests on fd 3 and writes framed JSON replies on fd 4 (a frame is a
# 4-byte little-endian length and the JSON bytes). Each request runs in a forked child in a new
# session with resource limits; stdout goes to a pipe the worker reads, bounded. At the end of a
# call every other process of the namespace is killed and reaped and /tmp is wiped, so nothing
# a call starts or writes survives it. Being PID 1, the worker cannot be killed by the code it
# runs (the kernel drops signals sent to a namespace's init from inside it).
import ast
import ctypes
import fcntl
import gc
import json
import os
import random
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

if PRELOAD:
    import numpy  # noqa: F401
    import sympy  # noqa: F401
# Objects that exist now are never collected: the collector of a forked child would otherwise
# write to every one of them and copy the whole heap page by page.
gc.freeze()

try:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: no ptrace or /proc/1/fd from the code
    if not IN_NAMESPACE:
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans come back to us
except Exception:
    pass
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(s, signal.SIG_IGN)


def read_exact(n):
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(REQ_FD, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_frame():
    """Reads one framed JSON object from the pool; None at EOF or on garbage."""
    hdr = read_exact(4)
    body = read_exact(struct.unpack("<I", hdr)[0]) if hdr is not None else None
    if body is None:
        return None
    try:
        msg = json.loads(body)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None


def send(obj):
    data = json.dumps(obj).encode()
    data = struct.pack("<I", len(data)) + data
    while data:
        n = os.write(RESP_FD, data)
        data = data[n:]


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
    saved = sys.stdout
    try:
        sys.stdout = open(os.devnull, "w")
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
        sys.stdout.close()
    except BaseException:
        pass
    sys.stdout = saved


def child(req_r, out_w, res_w):
    """Runs in the forked child: wait for the request, set limits, run the prelude cells and
    the code, report on fd 3. Forked ahead of the call, so a call does not wait for fork."""
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
    out_w = 4
    # A stateless call's random state must differ from every other call's; the random module
    # reseeds itself after fork, numpy does not. Seeding takes milliseconds: do it now.
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed(int.from_bytes(os.urandom(4), "little"))  # seed(None) is 10x slower
    warm_up()
    chunks = []
    while True:
        b = os.read(5, 1 << 16)
        if not b:
            break
        chunks.append(b)
    os.close(5)
    req = json.loads(b"".join(chunks))
    os.chdir(CWD)
    try:  # the out-of-memory killer takes the call's processes before the worker
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    cpu = req.get("cpu", 0)
    if cpu > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    limit(resource.RLIMIT_AS, req.get("mem", 0))
    limit(resource.RLIMIT_FSIZE, req.get("fsize", 0))
    limit(resource.RLIMIT_NOFILE, req.get("nofile", 0))
    limit(resource.RLIMIT_NPROC, req.get("nproc", 0))
    limit(resource.RLIMIT_CORE, 0)
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    seed = req.get("seed")  # a session's: its cells replay with the same random numbers
    if seed is not None:
        random.seed(seed)
        np = sys.modules.get("numpy")
        if np is not None:
            np.random.seed(seed % (1 << 32))
    g = {"__name__": "__main__", "__builtins__": __builtins__}
    for cell in req.get("prelude") or []:
        try:
            exec(compile(cell, "<string>", "exec"), g)
        except BaseException:
            pass
        try:
            sys.stdout.flush()
        except BaseException:
            pass
    os.dup2(out_w, 1)
    os.close(out_w)
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
        try:
            lines = traceback.format_exception_only(type(e), e)
            res["error"] = lines[-1].strip() if lines else type(e).__name__
        except BaseException:
            res["error"] = type(e).__name__
    try:
        sys.stdout.flush()
    except BaseException:
        pass
    try:
        # The newline ends the call for the worker: it need not wait for this process to exit.
        os.write(3, json.dumps(res).encode() + b"\n")
    except BaseException:
        pass
    os._exit(0)


def kill_others():
    """Sends SIGKILL to every process the call started.

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
    """Kills and reaps every process the call started: on return the worker has no child."""
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


class Forked:
    """A child forked ahead of its call, blocked reading its request."""

    def __init__(self):
        req_r, self.req_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.res_r, res_w = os.pipe()
        gc.freeze()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                child(req_r, out_w, res_w)
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
        self.pidfd = os.pidfd_open(self.pid)

    def close(self):
        for fd in (self.req_w, self.out_r, self.res_r, self.pidfd):
            try:
                os.close(fd)
            except OSError:
                pass


def run(req, ch):
    """Runs one request on the forked child ch and returns the reply. Every process of the
    call has been sent SIGKILL when it returns; reaping them is left to cleanup."""
    timeout = float(req.pop("timeout", 5))
    req_id = req.get("id")
    cap = int(req.get("out", 1 << 20))
    t0 = time.monotonic()
    data = json.dumps(req).encode()
    try:
        while data:
            n = os.write(ch.req_w, data)
            data = data[n:]
    except OSError:
        pass  # the child is gone: its status says why
    os.close(ch.req_w)
    ch.req_w = -1
    out_r, res_r, pid = ch.out_r, ch.res_r, ch.pid
    poll = select.poll()
    for fd in (out_r, res_r, ch.pidfd, REQ_FD):
        poll.register(fd, select.POLLIN)
    head, tail, resbuf = bytearray(), bytearray(), bytearray()
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
        # A complete result: the code has finished and flushed its stdout.
        reported = resbuf.endswith(b"\n")
        exited = exited or reported
        if total > cap:
            status = "output_limit"
            break
    wall = time.monotonic() - t0
    st = None
    if exited and not reported:
        _, st = os.waitpid(pid, 0)  # a zombie already: no wait
    kill_others()
    # Every writer has been sent SIGKILL: what is in the pipes now is all there will be.
    for fd in (out_r, res_r):
        os.set_blocking(fd, False)
        while fd in open_fds and total <= cap and drain(fd):
            pass
    if total > cap:
        status = "output_limit"
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
        else:
            try:
                res = json.loads(bytes(resbuf).decode("utf-8", "replace")) if resbuf else None
            except ValueError:
                res = None
            if isinstance(res, dict) and res.get("status") == "internal":
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
    return reply


def cleanup():
    """After a call: reap everything, wipe /tmp, make the next call's working directory."""
    kill_all()
    wipe_tmp()
    os.mkdir(CWD, 0o700)


cleanup()
forked = Forked()
send({"ready": True, "pid": os.getpid()})
while True:
    req = read_frame()
    if req is None:  # the pool closed the pipe: exit, reaping everything first
        kill_all()
        os._exit(0)
    if "cancel" in req:  # for a call that has already ended
        continue
    try:
        reply = run(req, forked)
    except Exception as e:  # a worker bug: report it, keep serving
        reply = {"status": "worker_error", "error": "%s: %s" % (type(e).__name__, e)}
    reply["id"] = req.get("id")
    send(reply)
    forked.close()
    cleanup()
    forked = Forked()
