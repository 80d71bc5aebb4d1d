package sandbox

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// runCells runs cells in s and checks each output; want "*" takes any output.
func runCells(t *testing.T, s *Session, cells ...[2]string) {
	t.Helper()
	for i, c := range cells {
		r := s.Run(context.Background(), c[0])
		if c[1] != "*" && r.Output != c[1] {
			t.Fatalf("cell %d %q: got %q (%s, %s), want %q", i, c[0], r.Output, r.Kind, r.Detail, c[1])
		}
	}
}

// sessionWorkers returns how many session workers the pool has, and how many of them are spares.
func (p *Pool) sessionWorkers() (n, spares int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nsess, len(p.spares)
}

// TestSession checks that a session's state (variables, functions, imports, files, the
// environment, processes, the random sequence) carries over from call to call, with its
// exceptions, and that no other session and no stateless call sees any of it.
func TestSession(t *testing.T) {
	needSandbox(t)
	p := newPool(t, testConfig(t, 1))
	ctx := context.Background()
	s := p.Session()
	defer s.Close()
	runCells(t, s,
		[2]string{`import random, os, subprocess
random.seed(0)
x = 20
def f():
    return x + 1
open("here.txt", "w").write("a")
open("/tmp/t.txt", "w").write("b")
os.environ["MINE"] = "1"
bg = subprocess.Popen(["sleep", "60"])
print(random.random())`, "0.8444218515250481"},
		[2]string{`print(f(), open("here.txt").read(), open("/tmp/t.txt").read(), os.environ["MINE"], bg.poll(), random.random())`,
			"21 a b 1 None 0.7579544029403025"},
		[2]string{"x = x * 2\nundefined_name", "NameError: name 'undefined_name' is not defined"},
		[2]string{"x", "40"},
	)
	// Another session and a stateless call see none of it.
	const look = `import os
print("x" in globals(), os.listdir("."), os.listdir("/tmp"), os.environ.get("MINE"), len([p for p in os.listdir("/proc") if p.isdigit()]))`
	const clean = "False [] ['cwd'] None 2"
	s2 := p.Session()
	defer s2.Close()
	runCells(t, s2, [2]string{look, clean}, [2]string{"x = 'mine'", ""})
	if r := p.Run(ctx, look); r.Output != clean {
		t.Errorf("a stateless call during sessions: %q (%s, %s), want %q", r.Output, r.Kind, r.Detail, clean)
	}
	runCells(t, s, [2]string{"print(x, bg.poll())", "40 None"})
	runCells(t, s2, [2]string{"print(x)", "mine"})
	s.Close()
	if r := s.Run(ctx, "1"); !errors.Is(r.Err, ErrClosed) || r.Kind != KindCanceled {
		t.Errorf("Run after Close: %+v, want ErrClosed", r)
	}
}

// TestSessionWipedForNext checks that a closed session's worker, kept for the next session,
// comes to it as pristine as a new one: the probe of the next session's first call is the
// same as the closed session's first.
func TestSessionWipedForNext(t *testing.T) {
	needSandbox(t)
	cfg := testConfig(t, 1)
	cfg.Timeout = 20 * time.Second // the probe takes a while on a busy machine
	p := newPool(t, cfg)
	s := p.Session()
	base := s.Run(context.Background(), probe)
	if base.Kind != KindOK {
		t.Fatalf("probe: %+v", base)
	}
	var dirty strings.Builder
	for _, tc := range leakCases {
		if tc.firstWant != TimeoutOutput { // a timeout would end the session's interpreter
			dirty.WriteString("try:\n    exec(" + pyQuote(tc.first) + ")\nexcept BaseException:\n    pass\n")
		}
	}
	dirty.WriteString("import subprocess\nsubprocess.Popen(['sleep', '60'])\nprint('dirty')")
	runCells(t, s, [2]string{dirty.String(), "*"}, [2]string{"print('still here')", "*"})
	s.Close()
	waitFor(t, "the closed session's worker to be wiped", func() bool { _, spares := p.sessionWorkers(); return spares == 1 })
	next := p.Session()
	defer next.Close()
	checkPristine(t, next.Run(context.Background(), probe), base)
}

// pyQuote writes s as a Python string literal.
func pyQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSessionBound checks MaxSessions: the third session takes the interpreter of the one
// idle the longest, which starts afresh at its next call (and says so), and a session waits
// while all interpreters are in a call.
func TestSessionBound(t *testing.T) {
	needSandbox(t)
	cfg := testConfig(t, 1)
	cfg.MaxSessions = 2
	cfg.Lazy = true
	p := newPool(t, cfg)
	ctx := context.Background()
	s1, s2, s3 := p.Session(), p.Session(), p.Session()
	runCells(t, s1, [2]string{"a = 1", ""})
	runCells(t, s2, [2]string{"a = 2", ""})
	runCells(t, s3, [2]string{"a = 3", ""}) // takes s1's
	if n, _ := p.sessionWorkers(); n != 2 {
		t.Errorf("%d session workers, want 2", n)
	}
	runCells(t, s2, [2]string{"a", "2"})
	runCells(t, s3, [2]string{"a", "3"})
	r := s1.Run(ctx, "a") // takes s2's: idle longer than s3
	if r.Kind != KindException || !strings.Contains(r.Detail, "started afresh (2 other sessions needed interpreters)") {
		t.Errorf("the evicted session: %q (%s, %q), want a NameError and a Detail that says why", r.Output, r.Kind, r.Detail)
	}
	runCells(t, s3, [2]string{"a", "3"})
	if n, _ := p.sessionWorkers(); n != 2 {
		t.Errorf("%d session workers, want 2", n)
	}

	// All interpreters in a call: a new session waits for one, or for its context.
	var wg sync.WaitGroup
	var ended [2]time.Time
	for i, s := range []*Session{s1, s3} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := s.Run(ctx, "import time\ntime.sleep(1)\nprint('slept')"); r.Output != "slept" {
				t.Errorf("sleeping session: %+v", r)
			}
			ended[i] = time.Now()
		}()
	}
	time.Sleep(300 * time.Millisecond)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if r := s2.Run(short, "print(1)"); r.Kind != KindCanceled || !errors.Is(r.Err, context.DeadlineExceeded) {
		t.Errorf("a session that waited past its deadline: %+v", r)
	}
	r = s2.Run(ctx, "print('s2')")
	got := time.Now()
	wg.Wait()
	if r.Output != "s2" || got.Before(ended[0]) && got.Before(ended[1]) {
		t.Errorf("the waiting session: %q (%s) at %v, the sleeping ones ended at %v", r.Output, r.Kind, got, ended)
	}
	if n, _ := p.sessionWorkers(); n != 2 {
		t.Errorf("%d session workers, want 2", n)
	}
}

// TestSessionIdle checks that an idle session's interpreter, and an idle spare worker, are
// stopped after SessionIdle, and that the session starts afresh (and says so).
func TestSessionIdle(t *testing.T) {
	needSandbox(t)
	cfg := testConfig(t, 1)
	cfg.SessionIdle = 300 * time.Millisecond
	cfg.Lazy = true
	p := newPool(t, cfg)
	s := p.Session()
	runCells(t, s, [2]string{"a = 1", ""})
	runCells(t, s, [2]string{"a", "1"})
	waitFor(t, "the idle session's worker to stop", func() bool { n, _ := p.sessionWorkers(); return n == 0 })
	r := s.Run(context.Background(), "print(a)")
	if r.Kind != KindException || !strings.Contains(r.Detail, "started afresh (idle for 300ms)") {
		t.Errorf("after the idle time: %q (%s, %q), want a NameError and a Detail that says why", r.Output, r.Kind, r.Detail)
	}
	s.Close()
	waitFor(t, "the closed session's worker to be kept", func() bool { _, spares := p.sessionWorkers(); return spares == 1 })
	waitFor(t, "the idle spare to stop", func() bool { n, _ := p.sessionWorkers(); return n == 0 })
}

// TestSessionLimits checks that each call of a session has the limits of a stateless one:
// CPU time counted from the call's start, memory, output, processes; that a call that does
// not end normally ends the session's interpreter (the next call says so); and that the
// worker survives it all.
func TestSessionLimits(t *testing.T) {
	needSandbox(t)
	cfg := testConfig(t, 1)
	cfg.CPUTime = time.Second
	cfg.Timeout = 20 * time.Second // ample: 1 s of CPU time takes many on a busy machine
	cfg.TotalMemoryBytes = 160 << 20
	p := newPool(t, cfg)
	ctx := context.Background()
	s := p.Session()
	defer s.Close()
	// Together these use more CPU time than the limit: it must count from each call's start.
	busy := "n = 0\nfor i in range(2 * 10**6):\n    n += i\nprint(n > 0)" // a fraction of a second
	runCells(t, s, [2]string{"x = 1", ""})
	for range 6 {
		runCells(t, s, [2]string{busy, "True"})
	}
	runCells(t, s,
		[2]string{"y = bytearray(16 << 30)", "MemoryError"},
		[2]string{"import numpy as np\ny = np.ones(2 << 30)", "*"},
		[2]string{"x", "1"},
	)
	sessionWorker := func() *worker { p.mu.Lock(); defer p.mu.Unlock(); return s.w }
	w := sessionWorker()
	for _, tc := range []struct {
		name, code string
		kinds      []ErrorKind
		limit      time.Duration // a shorter wall time limit, through the context
	}{
		{"CPU time", "while True:\n    pass", []ErrorKind{KindTimeout}, 0},
		{"output", "print('x' * 3_000_000)", []ErrorKind{KindLimit}, 0},
		// Stopped by the pids cgroup or RLIMIT_NPROC, then the time limit (the context's
		// deadline may come before the worker's answer); or the memory cgroup's OOM killer
		// takes the session's process.
		{"fork bomb", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
			[]ErrorKind{KindTimeout, KindCrash, KindCanceled}, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runCells(t, s, [2]string{"x = 1", ""})
			cctx := ctx
			if tc.limit > 0 {
				var cancel context.CancelFunc
				cctx, cancel = context.WithTimeout(ctx, tc.limit)
				defer cancel()
			}
			start := time.Now()
			r := s.Run(cctx, tc.code)
			d := time.Since(start)
			if !kindIn(r.Kind, tc.kinds) {
				t.Errorf("%q: %.80q (%s, %s), want kind %v", tc.code, r.Output, r.Kind, r.Detail, tc.kinds)
			}
			if tc.name == "CPU time" && d >= cfg.Timeout {
				t.Errorf("stopped after %v, by the wall limit (%v), not the CPU limit (%v)", d, cfg.Timeout, cfg.CPUTime)
			}
			why := "started afresh (a call ended with " + string(r.Kind) + ")"
			r = s.Run(ctx, "import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]))\nx")
			if r.Output != "NameError: name 'x' is not defined" || !strings.Contains(r.Detail, why) {
				t.Errorf("after the %s: %q (%s, %q), want a fresh interpreter whose Detail says %q", tc.name, r.Output, r.Kind, r.Detail, why)
			}
		})
	}
	checkPidsPeak(t, w, cfg)
	if w2 := sessionWorker(); w2 != w {
		t.Errorf("the session's worker was replaced: the code could hurt it")
	}
}

// TestSessionHostile runs the hostile code of TestHostile in sessions: the same containment,
// and after the session is closed its worker comes clean to the next session.
func TestSessionHostile(t *testing.T) {
	needSandbox(t)
	cfg := testConfig(t, 1)
	cfg.Timeout = 2 * time.Second
	cfg.TotalMemoryBytes = 160 << 20
	cfg.MaxSessions = 1
	p := newPool(t, cfg)
	ctx := context.Background()
	for _, tc := range hostileCases(t, cfg) {
		t.Run(tc.name, func(t *testing.T) {
			s := p.Session()
			r := s.Run(ctx, tc.code)
			if r.Err != nil || !kindIn(r.Kind, tc.kinds) {
				t.Errorf("got %q (%s, %v, %s), want kind %v", r.Output, r.Kind, r.Err, r.Detail, tc.kinds)
			}
			p.mu.Lock()
			w := s.w
			p.mu.Unlock()
			if w == nil {
				t.Fatalf("the session lost its worker: %s", r.Detail)
			}
			if tc.check != nil {
				tc.check(t, r, w)
			}
			checkPidsPeak(t, w, cfg)
			s.Close()
			next := p.Session() // waits for the only worker to be wiped
			defer next.Close()
			if c := next.Run(ctx, cleanCheck); c.Output != "2 ['cwd']" {
				t.Errorf("the next session: %q (%s, %s), want 2 processes and an empty /tmp", c.Output, c.Kind, c.Detail)
			}
		})
	}
}

// TestSessionsConcurrent runs five sessions at once on two interpreters: each call of a
// session sees its earlier calls' state unless its interpreter was taken and it says so, and
// the pool never holds more than two session workers.
func TestSessionsConcurrent(t *testing.T) {
	needSandbox(t)
	cfg := testConfig(t, 1)
	cfg.MaxSessions = 2
	cfg.Lazy = true
	p := newPool(t, cfg)
	var wg sync.WaitGroup
	for g := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := p.Session()
			defer s.Close()
			want := 1
			for i := range 4 {
				r := s.Run(context.Background(), "n = globals().get('n', 0) + 1\nprint(n)")
				if strings.Contains(r.Detail, "started afresh") {
					want = 1
				}
				if r.Output != strconv.Itoa(want) || r.Kind != KindOK {
					t.Errorf("session %d, call %d: %q (%s, %q), want %d", g, i, r.Output, r.Kind, r.Detail, want)
				}
				want++
				if n, _ := p.sessionWorkers(); n > 2 {
					t.Errorf("%d session workers, at most 2 allowed", n)
				}
			}
		}()
	}
	wg.Wait()
}
