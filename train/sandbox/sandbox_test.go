package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testTimeout is the time limit of the test pools: generous, as the test machine may be busy.
const testTimeout = 3 * time.Second

// needSandbox skips a test when bubblewrap or Debian's Python with numpy and sympy is absent
// (`make test` installs them).
func needSandbox(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("bwrap not installed (make test installs bubblewrap)")
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import numpy, sympy").Run(); err != nil {
		t.Skip("/usr/bin/python3 with numpy and sympy not available (make test installs them)")
	}
}

func testConfig(t testing.TB, workers int) Config {
	cfg := DefaultConfig()
	cfg.Workers = workers
	cfg.Timeout = testTimeout
	cfg.Logf = t.Logf
	return cfg
}

func newPool(t testing.TB, cfg Config) *Pool {
	t.Helper()
	p, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

var (
	sharedOnce sync.Once
	shared     *Pool
	sharedErr  error
)

// sharedPool is one pool of two workers for the tests of ordinary code.
func sharedPool(t *testing.T) *Pool {
	needSandbox(t)
	sharedOnce.Do(func() {
		cfg := testConfig(t, 2)
		cfg.Logf = func(string, ...any) {}
		shared, sharedErr = New(context.Background(), cfg)
	})
	if sharedErr != nil {
		t.Fatalf("New: %v", sharedErr)
	}
	return shared
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.Close()
	}
	os.Exit(code)
}

func TestRun(t *testing.T) {
	p := sharedPool(t)
	long := `print("a"*300 + "b"*300)`
	tests := []struct {
		name, code, want string
		kind             ErrorKind
	}{
		{"print", "print(1+1)", "2", KindOK},
		{"stripped", "print('\\n  hi  \\n')\nprint()", "hi", KindOK},
		{"final expression", "x = 6\nx * 7", "42", KindOK},
		{"final expression repr", "'a' + 'b'", "'ab'", KindOK},
		{"final None", "x = 1\nNone", "", KindOK},
		{"printed wins", "print('p')\n5", "p", KindOK},
		{"nothing", "x = 1", "", KindOK},
		{"exception", "print('lost')\n{}['k']", "KeyError: 'k'", KindException},
		{"nested exception", "def f():\n    raise ValueError('bad value')\nf()", "ValueError: bad value", KindException},
		{"syntax error", "def f(:\n  pass", "SyntaxError: invalid syntax", KindException},
		{"truncated", long, strings.Repeat("a", 200) + "..." + strings.Repeat("b", 200), KindOK},
		{"numpy", "import numpy as np\nprint(np.arange(10).sum())", "45", KindOK},
		{"sympy", "import sympy\nprint(sympy.factorint(360))", "{2: 3, 3: 2, 5: 1}", KindOK},
		{"stderr hidden", "import sys\nprint('err', file=sys.stderr)\nprint('out')", "out", KindOK},
		{"sys.exit", "print('bye')\nimport sys\nsys.exit(3)", "bye", KindOK},
		{"segfault", "import ctypes\nctypes.string_at(0)", "Execution Error: killed by SIGSEGV", KindCrash},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := p.Run(context.Background(), tc.code)
			if r.Output != tc.want || r.Kind != tc.kind || r.Err != nil {
				t.Errorf("got %q (%s, err %v, %s), want %q (%s)", r.Output, r.Kind, r.Err, r.Detail, tc.want, tc.kind)
			}
		})
	}
}

// TestStateless checks that a call sees nothing of the one before: variables, files in the
// working directory and /tmp, random state.
func TestStateless(t *testing.T) {
	p := sharedPool(t)
	ctx := context.Background()
	first := p.Run(ctx, `secret = 1
open("here.txt", "w").write("x")
open("/tmp/there.txt", "w").write("x")
import random, numpy
print(random.random(), numpy.random.rand())`)
	if first.Kind != KindOK {
		t.Fatalf("first call: %q (%s)", first.Output, first.Kind)
	}
	for range 3 { // both workers
		r := p.Run(ctx, `import os, random, numpy
print("secret" in globals(), os.listdir("."), sorted(os.listdir("/tmp")))
print(random.random(), numpy.random.rand())`)
		lines := strings.Split(r.Output, "\n")
		if r.Kind != KindOK || len(lines) != 2 || lines[0] != "False [] ['cwd']" {
			t.Fatalf("later call: %q (%s), want no state of the first", r.Output, r.Kind)
		}
		if lines[1] == first.Output {
			t.Errorf("random state repeats across calls: %q", lines[1])
		}
	}
}

// TestProgramNotOnCommandLine checks that the worker's program reaches Python on stdin: no
// process of a worker's sandbox has it on its command line, seen from the host or inside.
func TestProgramNotOnCommandLine(t *testing.T) {
	p := sharedPool(t)
	r := p.Run(context.Background(), "print(open('/proc/1/cmdline', 'rb').read().split(b'\\0'))")
	if want := "[b'/usr/bin/python3', b'-I', b'-B', b'-', b'preload', b'sandbox', b'/tmp', b'']"; r.Output != want {
		t.Errorf("the worker's command line inside: %q (%s), want %q", r.Output, r.Kind, want)
	}
	w := <-p.idle
	defer func() { p.idle <- w }()
	pids := []int{w.cmd.Process.Pid}
	for i := 0; i < len(pids); i++ {
		kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pids[i], pids[i]))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range strings.Fields(string(kids)) {
			n, _ := strconv.Atoi(f)
			pids = append(pids, n)
		}
	}
	if len(pids) < 3 { // bwrap, its init or the worker, a spare child
		t.Fatalf("the sandbox has only the processes %v", pids)
	}
	for _, pid := range pids {
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			t.Fatal(err)
		}
		if len(cmd) > 4096 || bytes.Contains(cmd, []byte("import ")) {
			t.Errorf("process %d has the program on its command line (%d bytes): %.200q", pid, len(cmd), cmd)
		}
	}
}

func TestConcurrent(t *testing.T) {
	p := sharedPool(t)
	var wg sync.WaitGroup
	errs := make(chan string, 32)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2 {
				n := g*10 + i
				r := p.Run(context.Background(), fmt.Sprintf("print(%d * %d)", n, n))
				if r.Output != strconv.Itoa(n*n) || r.Kind != KindOK {
					errs <- fmt.Sprintf("print(%d*%d): %q (%s)", n, n, r.Output, r.Kind)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// cleanCheck is run after hostile code: it prints the number of processes in the sandbox's
// PID namespace (the worker and this call's process when nothing survived) and /tmp.
const cleanCheck = `import os
print(len([p for p in os.listdir("/proc") if p.isdigit()]), sorted(os.listdir("/tmp")))`

// TestHostile runs hostile code on a pool of one worker and checks, for each, that the
// damage is contained, that nothing it started is left and that the next call works.
func TestHostile(t *testing.T) {
	needSandbox(t)
	cfg := testConfig(t, 1)
	cfg.Timeout = 2 * time.Second    // hostile code on a busy machine: more room
	cfg.TotalMemoryBytes = 160 << 20 // the worker (~80 MB) and 4 × 40 MB below do not fit
	p := newPool(t, cfg)
	ctx := context.Background()
	w := p.peekWorker(t)
	for _, tc := range hostileCases(t, cfg) {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := p.Run(ctx, tc.code)
			if r.Err != nil || !kindIn(r.Kind, tc.kinds) {
				t.Errorf("got %q (%s, %v, %s), want kind %v", r.Output, r.Kind, r.Err, r.Detail, tc.kinds)
			}
			if tc.check != nil {
				tc.check(t, r, p.peekWorker(t))
			}
			t.Logf("%s: %.60q in %v", r.Kind, r.Output, time.Since(start).Round(time.Millisecond))
			if c := p.Run(ctx, cleanCheck); c.Output != "2 ['cwd']" {
				t.Errorf("after the call: %q (%s, %s), want 2 processes and an empty /tmp", c.Output, c.Kind, c.Detail)
			}
		})
	}
	if w2 := p.peekWorker(t); w2 != w {
		t.Errorf("the worker was replaced (%d → %d): the code could hurt it", w.id, w2.id)
	}
	checkPidsPeak(t, w, cfg)
	if os.Geteuid() == 0 && w.cgs["pids"] == "" && p.sb.setpriv == "" {
		t.Errorf("running as root with neither a pids cgroup nor setpriv: fork bombs are not bounded")
	}
}

// checkPidsPeak checks that the processes of w's sandbox stayed within the limit.
func checkPidsPeak(t *testing.T, w *worker, cfg Config) {
	t.Helper()
	cg := w.cgs["pids"]
	if cg == "" {
		t.Logf("no pids cgroup: the fork bomb was bounded by RLIMIT_NPROC")
		return
	}
	peak, _ := os.ReadFile(filepath.Join(cg, "pids.peak"))
	max, _ := os.ReadFile(filepath.Join(cg, "pids.max"))
	t.Logf("worker pids cgroup: peak %s of max %s", strings.TrimSpace(string(peak)), strings.TrimSpace(string(max)))
	if n, err := strconv.Atoi(strings.TrimSpace(string(peak))); err == nil && n > cfg.MaxProcs+4 {
		t.Errorf("pids peak %d over the limit %d", n, cfg.MaxProcs+4)
	}
}

// hostileCase is hostile code, the kinds of result it may have, and a check of the result
// and of the worker that ran it.
type hostileCase struct {
	name  string
	code  string
	kinds []ErrorKind
	check func(t *testing.T, r Result, w *worker)
}

// hostileCases returns code that tries to reach the host, exhaust the limits or break the
// worker, for a pool with cfg.
func hostileCases(t *testing.T, cfg Config) []hostileCase {
	// A listener on the host's loopback that records connections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	connected := make(chan struct{}, 16)
	conns.Add(1)
	t.Cleanup(func() { ln.Close(); conns.Wait() })
	go func() {
		defer conns.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			connected <- struct{}{}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	// A file in the host's home and one of the project's own.
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	secret, err := os.CreateTemp(home, ".cir-sandbox-secret-*")
	if err != nil {
		t.Fatal(err)
	}
	secret.WriteString("top secret")
	secret.Close()
	t.Cleanup(func() { os.Remove(secret.Name()) })
	project, _ := filepath.Abs("sandbox.go")
	outside := filepath.Join(t.TempDir(), "escaped")
	hostTmp := filepath.Join(os.TempDir(), fmt.Sprintf("cir-sandbox-escape-%d", os.Getpid()))
	t.Cleanup(func() { os.Remove(hostTmp) })

	return []hostileCase{
		{"connect to host loopback", fmt.Sprintf(`import socket
s = socket.create_connection(("127.0.0.1", %d), timeout=1)
s.sendall(b"hello")
print("connected")`, port), []ErrorKind{KindException}, func(t *testing.T, r Result, w *worker) {
			select {
			case <-connected:
				t.Errorf("the host listener got a connection")
			case <-time.After(50 * time.Millisecond):
			}
		}},
		{"read host home", fmt.Sprintf(`import os
for p in (%q, %q):
    try:
        print(open(p).read())
    except OSError as e:
        print(type(e).__name__)
print(os.path.exists(%q))`, secret.Name(), project, home), []ErrorKind{KindOK}, func(t *testing.T, r Result, w *worker) {
			if r.Output != "FileNotFoundError\nFileNotFoundError\nFalse" {
				t.Errorf("the sandbox saw host files: %q", r.Output)
			}
		}},
		{"write outside", fmt.Sprintf(`for p in (%q, %q, "/usr/evil"):
    try:
        open(p, "w").write("x")
        print("wrote", p)
    except OSError as e:
        print(type(e).__name__)`, outside, hostTmp), []ErrorKind{KindOK}, func(t *testing.T, r Result, w *worker) {
			for _, p := range []string{outside, hostTmp, "/usr/evil"} {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("%s appeared on the host", p)
				}
			}
		}},
		{"infinite loop", "while True:\n    pass", []ErrorKind{KindTimeout}, func(t *testing.T, r Result, w *worker) {
			if r.Output != TimeoutOutput || r.Duration > cfg.Timeout+time.Second {
				t.Errorf("got %q after %v", r.Output, r.Duration)
			}
		}},
		{"16 GiB allocation", "x = bytearray(16 << 30)\nprint(len(x))", []ErrorKind{KindException}, func(t *testing.T, r Result, w *worker) {
			if r.Output != "MemoryError" {
				t.Errorf("got %q, want MemoryError", r.Output)
			}
		}},
		{"16 GiB numpy", "import numpy as np\nx = np.ones(2 << 30)\nprint(x.sum())", []ErrorKind{KindException}, func(t *testing.T, r Result, w *worker) {
			if !strings.Contains(r.Output, "MemoryError") {
				t.Errorf("got %q, want a MemoryError", r.Output)
			}
		}},
		{"memory of many processes", `import os, time
for i in range(3):
    if os.fork() == 0:
        x = b"x" * (40 << 20)
        time.sleep(5)
        os._exit(0)
b = b"y" * (40 << 20)
print("allocated")
os.wait()`, []ErrorKind{KindOK, KindCrash, KindTimeout, KindException}, func(t *testing.T, r Result, w *worker) {
			if cg := w.cgs["memory"]; cg != "" {
				peak, _ := os.ReadFile(filepath.Join(cg, "memory.max_usage_in_bytes"))
				fails, _ := os.ReadFile(filepath.Join(cg, "memory.failcnt"))
				t.Logf("memory cgroup peak %s bytes, limit %d, limit hit %s times",
					strings.TrimSpace(string(peak)), cfg.TotalMemoryBytes, strings.TrimSpace(string(fails)))
				if n, err := strconv.ParseInt(strings.TrimSpace(string(peak)), 10, 64); err != nil || n > cfg.TotalMemoryBytes {
					t.Errorf("memory peak %q over the limit %d", peak, cfg.TotalMemoryBytes)
				}
			}
		}},
		{"fork bomb", `import os
while True:
    try:
        os.fork()
    except OSError:
        pass`, []ErrorKind{KindTimeout, KindCrash}, func(t *testing.T, r Result, w *worker) {
			// The pids limit stops the forks; the copies of a worker with numpy and sympy loaded
			// may fill the 160 MiB memory cgroup first, and its OOM killer then takes the call's
			// process (oom_score_adj 1000), not the worker.
			if r.Kind == KindCrash && r.Output != "Execution Error: killed by SIGKILL" {
				t.Errorf("crash %q, want the OOM killer's SIGKILL", r.Output)
			}
			if r.Duration > cfg.Timeout+time.Second {
				t.Errorf("took %v, timeout %v", r.Duration, cfg.Timeout)
			}
		}},
		{"100 MB of output", "import sys\nfor i in range(100):\n    sys.stdout.write('x' * 1000000)", []ErrorKind{KindLimit}, func(t *testing.T, r Result, w *worker) {
			if want := strings.Repeat("x", 200) + "..." + strings.Repeat("x", 200); r.Output != want {
				t.Errorf("got %d chars %.30q, want the truncated run of x", len(r.Output), r.Output)
			}
		}},
		{"kill its parent", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(1, signal.SIGTERM)\nprint('still here')", []ErrorKind{KindOK}, func(t *testing.T, r Result, w *worker) {
			if r.Output != "still here" {
				t.Errorf("got %q", r.Output)
			}
		}},
		{"forge a result", "import os\nos.write(3, b'{\"status\": \"ok\"\\n')\nimport time\ntime.sleep(60)", []ErrorKind{KindCrash}, nil},
		{"kill everything", "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('done')", []ErrorKind{KindOK, KindException}, nil},
		{"close stdout", "import os, sys\nprint('before')\nsys.stdout.flush()\nos.close(1)\nprint('after')", []ErrorKind{KindOK}, func(t *testing.T, r Result, w *worker) {
			if r.Output != "before" {
				t.Errorf("got %q, want %q", r.Output, "before")
			}
		}},
		{"daemon", `import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(1)
        time.sleep(60)
        open("/tmp/daemon-was-here", "w").write("x")
    os._exit(0)
print("parent done")`, []ErrorKind{KindOK}, func(t *testing.T, r Result, w *worker) {
			if r.Output != "parent done" {
				t.Errorf("got %q", r.Output)
			}
		}},
		{"sleep past the timeout with children", `import subprocess, time
subprocess.Popen(["sleep", "60"])
subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60"])
time.sleep(60)`, []ErrorKind{KindTimeout}, nil},
	}
}

func kindIn(k ErrorKind, ks []ErrorKind) bool {
	for _, x := range ks {
		if k == x {
			return true
		}
	}
	return false
}

// peekWorker returns the pool's single idle worker, leaving it in the pool.
func (p *Pool) peekWorker(t *testing.T) *worker {
	t.Helper()
	select {
	case w := <-p.idle:
		p.idle <- w
		if w == nil {
			t.Fatal("no worker in the pool")
		}
		return w
	case <-time.After(30 * time.Second):
		t.Fatal("no idle worker")
	}
	return nil
}

// TestRecovery breaks workers on purpose (a test hook in the worker's loop): a worker that
// dies, hangs, or writes garbage is replaced, and the call after works.
func TestRecovery(t *testing.T) {
	needSandbox(t)
	const anchor = "        try:\n            reply, keep = run(req, ch)\n"
	if !strings.Contains(workerScript, anchor) {
		t.Fatal("worker.py no longer has the line this test hooks")
	}
	hook := `        if req.get("code") == "DIE":
            os._exit(3)
        if req.get("code") == "HANG":
            time.sleep(3600)
        if req.get("code") == "GARBAGE":
            os.write(RESP_FD, b"\x05\x00\x00\x00{{{{{")
            continue
        if req.get("code") == "WRONGID":
            req["id"] = -5
`
	cfg := testConfig(t, 1)
	cfg.Lazy = true
	cfg.Timeout = 500 * time.Millisecond
	p, err := startPool(context.Background(), cfg, strings.Replace(workerScript, anchor, hook+anchor, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		code string
		kind ErrorKind
	}{{"DIE", KindCrash}, {"HANG", KindTimeout}, {"GARBAGE", KindCrash}, {"WRONGID", KindCrash}} {
		t.Run(tc.code, func(t *testing.T) {
			start := time.Now()
			r := p.Run(ctx, tc.code)
			if r.Kind != tc.kind || r.Err != nil {
				t.Errorf("got %q (%s, %v), want kind %s", r.Output, r.Kind, r.Err, tc.kind)
			}
			if d := time.Since(start); d > cfg.Timeout+p.sb.grace()+time.Second {
				t.Errorf("took %v", d)
			}
			t.Logf("%s: %s", r.Kind, r.Detail)
			if r := p.Run(ctx, "print(6*7)"); r.Output != "42" {
				t.Errorf("the next call: %q (%s, %v, %s)", r.Output, r.Kind, r.Err, r.Detail)
			}
		})
	}
}

func TestCancelAndClose(t *testing.T) {
	needSandbox(t)
	cfg := testConfig(t, 1)
	cfg.Lazy = true
	cfg.Timeout = 10 * time.Second
	p := newPool(t, cfg)
	w := p.peekWorker(t)
	const sleep = "import subprocess, time\nsubprocess.Popen(['sleep', '60'])\ntime.sleep(30)"

	// A context deadline shorter than the time limit becomes the call's limit.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if r := p.Run(ctx, sleep); r.Kind != KindTimeout && !(r.Kind == KindCanceled && errors.Is(r.Err, context.DeadlineExceeded)) {
		t.Errorf("call past the context's deadline: %+v", r)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("a call past its context's deadline took %v", d)
	}
	// A cancel mid-call stops the code; the worker stays.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start = time.Now()
	if r := p.Run(ctx, sleep); r.Kind != KindCanceled || !errors.Is(r.Err, context.Canceled) {
		t.Errorf("canceled call: %+v", r)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("a canceled call took %v", d)
	}
	if r := p.Run(context.Background(), cleanCheck); r.Output != "2 ['cwd']" {
		t.Errorf("after a cancel: %+v", r)
	}
	if w2 := p.peekWorker(t); w2 != w {
		t.Errorf("a cancel replaced the worker")
	}
	if r := p.Run(ctx, "print(1)"); !errors.Is(r.Err, context.Canceled) || r.Kind != KindCanceled {
		t.Errorf("Run with a done context: %+v", r)
	}
	// Close cancels the call in flight and waits for the worker.
	inflight := make(chan Result)
	go func() { inflight <- p.Run(context.Background(), sleep) }()
	time.Sleep(300 * time.Millisecond)
	start = time.Now()
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	if r := <-inflight; !errors.Is(r.Err, ErrClosed) || r.Kind != KindCanceled {
		t.Errorf("call in flight during Close: %+v", r)
	}
	select {
	case <-w.exited:
	default:
		t.Errorf("the worker still runs after Close")
	}
	if r := p.Run(context.Background(), "print(1)"); !errors.Is(r.Err, ErrClosed) || r.Kind != KindCanceled {
		t.Errorf("Run after Close: %+v", r)
	}
}

func TestNoSandbox(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	cfg := testConfig(t, 1)
	cfg.Lazy = true
	if _, err := New(context.Background(), cfg); !errors.Is(err, ErrNoSandbox) {
		t.Fatalf("New without bwrap: %v, want ErrNoSandbox", err)
	}
	if _, err := os.Stat(cfg.Python); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	cfg.Unsafe = true
	cfg.Timeout = 2 * time.Second
	p := newPool(t, cfg)
	if r := p.Run(context.Background(), "import os\nprint(6*7)\nos.getcwd()"); r.Output != "42" || r.Kind != KindOK {
		t.Errorf("unsafe run: %+v", r)
	}
	r := p.Run(context.Background(), `import subprocess, time
subprocess.Popen(["sleep", "60"])
time.sleep(60)`)
	if r.Kind != KindTimeout {
		t.Errorf("unsafe timeout: %+v", r)
	}
	if r := p.Run(context.Background(), "import os\nprint(os.listdir('.'))"); r.Output != "[]" {
		t.Errorf("unsafe: working directory not fresh: %+v", r)
	}
	s := p.Session()
	defer s.Close()
	runCells(t, s, [2]string{"x = 6\nn = open('f', 'w').write('y')", ""}, [2]string{"print(x * 7, open('f').read())", "42 y"})
	if os.Geteuid() == 0 && p.sb.setpriv != "" {
		if r := p.Run(context.Background(), "import os\nos.getuid()"); r.Output != strconv.Itoa(unprivUID) {
			t.Errorf("unsafe mode as root: the code runs as uid %q, want %d", r.Output, unprivUID)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{{Workers: -1}, {MaxOutputBytes: 10}, {MemoryBytes: 1000}, {Timeout: -1}} {
		if _, err := New(context.Background(), c); err == nil || !strings.Contains(err.Error(), "Config.") {
			t.Errorf("New(%+v): %v, want an error naming the field", c, err)
		}
	}
}
