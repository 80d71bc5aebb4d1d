// Package sandbox runs the model's Python code: /usr/bin/python3 with numpy and sympy inside
// bubblewrap, on a pool of warm workers.
//
// Each worker is one bwrap sandbox (user, PID, network, IPC and UTS namespaces unshared, the
// system read-only, a private tmpfs /tmp, nothing of the host's home or the project visible)
// whose PID 1 is a Python process with numpy and sympy already imported. A call runs in a child
// of that process, forked ahead of it, in a new session with rlimits (CPU time, address space,
// file size, open files, processes). Forking that process costs more CPU than everything else
// of a trivial call, so a child serves successive stateless calls while it stays clean, with
// the semantics of a fresh fork per call: nothing of one call is visible to the next. Clean
// means: the code passes a static check (it imports only a fixed set of pure modules; no
// attribute stores, dunders, exec/eval/open/getattr/setattr, functions that change global
// settings such as numpy's set_printoptions, ...), the call ends normally or with an ordinary
// exception, and afterwards the child's modules, global settings, random states, threads,
// files and the namespace's processes are as a fresh fork's (worker.py's header has the exact
// rules); Pool.Reuse counts such calls. Any other call runs on a never-used spare child, and
// after it every other process of the namespace is killed and reaped and /tmp is wiped, so it
// leaves nothing behind. The worker is its namespace's init, so the code cannot kill it; a
// worker that dies, hangs or breaks its protocol anyway is killed (the whole namespace with it)
// and replaced. When running as root each worker also lives in its own pids cgroup and runs as
// an unprivileged uid, which bounds fork bombs.
//
// Results follow the interpreter protocol of DESIGN.md: stdout stripped; on an exception the
// last line of the traceback; "Timeout Error"; more than 400 characters shown as the first 200,
// "..." and the last 200; the repr of a final expression when nothing was printed.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrorKind classifies the outcome of one execution. Its values are the same strings as the
// rollout's ErrorKind, so one converts to the other.
type ErrorKind string

// The outcomes of an execution.
const (
	KindOK        ErrorKind = "ok"       // the code ran to its end
	KindException ErrorKind = "error"    // the code raised; Output is the traceback's last line
	KindTimeout   ErrorKind = "timeout"  // wall or CPU time ran out; Output is "Timeout Error"
	KindCrash     ErrorKind = "crash"    // killed by a signal, or the worker failed
	KindLimit     ErrorKind = "limit"    // the output passed Config.MaxOutputBytes
	KindCanceled  ErrorKind = "canceled" // not run or cut short: Result.Err says why
)

// ErrClosed is the Result.Err of a call on a closed Pool or Session.
var ErrClosed = errors.New("sandbox: closed")

// ErrNoSandbox is returned by New when bubblewrap cannot be found and Config.Unsafe is not set.
var ErrNoSandbox = errors.New("sandbox: bwrap (bubblewrap) not found")

// TimeoutOutput is the result text of a call that ran out of time.
const TimeoutOutput = "Timeout Error"

// Config sets up a Pool. The zero value of a field means its default (DefaultConfig).
type Config struct {
	Workers     int           // warm workers (calls that run at once); default max(2, NumCPU)
	Timeout     time.Duration // wall time per call; default 5 s
	CPUTime     time.Duration // CPU time per call; default Timeout + 1 s
	MemoryBytes int64         // address space per process; default 4 GiB
	// TotalMemoryBytes bounds the memory of a worker's sandbox, all its processes together
	// (a memory cgroup, where one can be made); default MemoryBytes.
	TotalMemoryBytes int64
	MaxOutputBytes   int    // stdout bytes captured per call (min 4 KiB); default 1 MiB
	MaxFileBytes     int64  // largest file a call may write; default 16 MiB
	MaxOpenFiles     int    // open files per process; default 256
	MaxProcs         int    // processes per call; default 32
	TmpBytes         int64  // size of the private /tmp; default 64 MiB
	Python           string // interpreter; default /usr/bin/python3
	Lazy             bool   // don't import numpy and sympy before the first call
	// Unsafe runs Python without bubblewrap or cgroups: only the rlimits, the per-call kill,
	// a private working directory and (as root) an unprivileged uid remain. For machines
	// without bwrap (--unsafe-no-sandbox).
	Unsafe bool
	// Logf receives warnings (a containment mechanism unavailable, a worker replaced);
	// default log.Printf.
	Logf func(format string, args ...any)
}

// DefaultConfig returns the defaults of DESIGN.md's interpreter protocol. It never panics.
func DefaultConfig() Config {
	return Config{
		Workers:        max(2, runtime.NumCPU()),
		Timeout:        5 * time.Second,
		MemoryBytes:    4 << 30,
		MaxOutputBytes: 1 << 20,
		MaxFileBytes:   16 << 20,
		MaxOpenFiles:   256,
		MaxProcs:       32,
		TmpBytes:       64 << 20,
		Python:         "/usr/bin/python3",
		Logf:           log.Printf,
	}
}

// withDefaults fills zero fields from DefaultConfig and checks the rest.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.Workers == 0 {
		c.Workers = d.Workers
	}
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.CPUTime == 0 {
		c.CPUTime = c.Timeout + time.Second
	}
	if c.MemoryBytes == 0 {
		c.MemoryBytes = d.MemoryBytes
	}
	if c.TotalMemoryBytes == 0 {
		c.TotalMemoryBytes = c.MemoryBytes
	}
	if c.MaxOutputBytes == 0 {
		c.MaxOutputBytes = d.MaxOutputBytes
	}
	if c.MaxFileBytes == 0 {
		c.MaxFileBytes = d.MaxFileBytes
	}
	if c.MaxOpenFiles == 0 {
		c.MaxOpenFiles = d.MaxOpenFiles
	}
	if c.MaxProcs == 0 {
		c.MaxProcs = d.MaxProcs
	}
	if c.TmpBytes == 0 {
		c.TmpBytes = d.TmpBytes
	}
	if c.Python == "" {
		c.Python = d.Python
	}
	if c.Logf == nil {
		c.Logf = d.Logf
	}
	switch {
	case c.Workers < 0:
		return c, fmt.Errorf("sandbox: Config.Workers is %d, want ≥ 1", c.Workers)
	case c.Timeout < 0 || c.CPUTime < 0:
		return c, fmt.Errorf("sandbox: Config.Timeout/CPUTime must be positive")
	case c.MaxOutputBytes < 4096:
		return c, fmt.Errorf("sandbox: Config.MaxOutputBytes is %d, want ≥ 4096", c.MaxOutputBytes)
	case c.MemoryBytes < 64<<20:
		return c, fmt.Errorf("sandbox: Config.MemoryBytes is %d, want ≥ 64 MiB", c.MemoryBytes)
	case c.TotalMemoryBytes < 128<<20:
		return c, fmt.Errorf("sandbox: Config.TotalMemoryBytes is %d, want ≥ 128 MiB", c.TotalMemoryBytes)
	case c.MaxProcs < 1 || c.MaxOpenFiles < 16 || c.MaxFileBytes < 0 || c.TmpBytes < 1<<20:
		return c, fmt.Errorf("sandbox: Config.MaxProcs, MaxOpenFiles, MaxFileBytes or TmpBytes out of range")
	}
	return c, nil
}

// Result is the outcome of one execution.
type Result struct {
	Output   string        // exactly the text between the output fences
	Kind     ErrorKind     // how the call ended
	Duration time.Duration // wall time of the call, waiting for a worker excluded
	// Detail says more about a crash for logs (never shown to the model); empty otherwise.
	Detail string
	// Err is non-nil only when the code did not run to an outcome for a reason outside it:
	// ErrClosed, the context's error, or a worker that could not be started.
	Err error
}

// Pool is a set of warm sandboxed Python workers. Its methods are safe for concurrent use.
type Pool struct {
	cfg  Config
	sb   *sandboxer
	idle chan *worker // nil entries are slots whose worker must be started first
	done chan struct{}

	mu     sync.Mutex
	closed bool
	calls  sync.WaitGroup // calls in flight; Add under mu while not closed
	bg     sync.WaitGroup // replacements and kills in flight

	ran, reused atomic.Int64 // calls that ran to a reply; those of them on a used child
}

// Workers returns how many calls the pool runs at once; more wait for a worker.
func (p *Pool) Workers() int { return p.cfg.Workers }

// Reuse returns how many calls have run on a worker so far and how many of them ran on a
// child process an earlier call had left clean (see the package doc), for logs and tests.
func (p *Pool) Reuse() (calls, reused int64) {
	return p.ran.Load(), p.reused.Load()
}

// New starts a pool of cfg.Workers warm workers and waits until they are ready. It fails
// with an error wrapping ErrNoSandbox when bwrap is missing and cfg.Unsafe is false, and
// with the worker's own message when Python or numpy/sympy cannot be started. It never panics.
func New(ctx context.Context, cfg Config) (*Pool, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	sb, err := newSandboxer(cfg)
	if err != nil {
		return nil, err
	}
	p := &Pool{cfg: cfg, sb: sb, idle: make(chan *worker, cfg.Workers), done: make(chan struct{})}
	type started struct {
		w   *worker
		err error
	}
	ch := make(chan started, cfg.Workers)
	for range cfg.Workers {
		go func() {
			w, err := sb.spawn(ctx)
			ch <- started{w, err}
		}()
	}
	var first error
	for range cfg.Workers {
		s := <-ch
		if s.err != nil && first == nil {
			first = s.err
		}
		if s.w != nil {
			p.idle <- s.w
		}
	}
	if first != nil {
		p.Close()
		return nil, first
	}
	return p, nil
}

// Run executes code in a fresh Python namespace and returns its result. Problems of the code
// (exceptions, timeouts, crashes, limits) are Result kinds; Result.Err is set only when the
// pool is closed, ctx ends first, or no worker could be started. Whatever the code does, Run
// never panics, and once it has a worker it returns within the time limit plus a grace period.
func (p *Pool) Run(ctx context.Context, code string) Result {
	return p.exec(ctx, request{Code: code}, 0)
}

// request is one call as the worker reads it.
type request struct {
	ID      uint64   `json:"id"`
	Code    string   `json:"code"`
	Prelude []string `json:"prelude,omitempty"`
	Seed    *uint32  `json:"seed,omitempty"`
	Timeout float64  `json:"timeout"`
	CPU     int      `json:"cpu"`
	Mem     int64    `json:"mem"`
	FSize   int64    `json:"fsize"`
	NoFile  int      `json:"nofile"`
	NProc   int      `json:"nproc"`
	Out     int      `json:"out"`
}

// exec runs one request on a worker; extra lengthens the time limit (a session's replay).
func (p *Pool) exec(ctx context.Context, req request, extra time.Duration) Result {
	if err := ctx.Err(); err != nil {
		return Result{Kind: KindCanceled, Err: err}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return Result{Kind: KindCanceled, Err: ErrClosed}
	}
	p.calls.Add(1)
	p.mu.Unlock()
	defer p.calls.Done()
	// Closing the pool cancels the calls in flight.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-p.done:
			cancel(ErrClosed)
		case <-ctx.Done():
		}
	}()
	var w *worker
	select {
	case w = <-p.idle:
	case <-ctx.Done():
		return Result{Kind: KindCanceled, Err: context.Cause(ctx)}
	}
	if w == nil {
		var err error
		if w, err = p.sb.spawn(ctx); err != nil {
			p.release(nil)
			if ctx.Err() != nil {
				return Result{Kind: KindCanceled, Err: context.Cause(ctx)}
			}
			return Result{Kind: KindCrash, Output: "Execution Error", Detail: err.Error(), Err: err}
		}
	}
	p.sb.fill(&req, extra)
	clamp(ctx, &req)
	start := time.Now()
	rep, err := w.call(ctx, req, p.sb.timeout(extra)+p.sb.grace())
	d := time.Since(start)
	if err != nil {
		p.retire(w, err)
	} else {
		p.ran.Add(1)
		if rep.Reused {
			p.reused.Add(1)
		}
		p.release(w)
	}
	return outcome(ctx, rep, err, req.Out, d)
}

// clamp shortens the request's time limit to the context's deadline, so that the worker
// itself ends the call with "Timeout Error" when the deadline comes first.
func clamp(ctx context.Context, req *request) {
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl).Seconds(); left < req.Timeout {
			req.Timeout = max(left, 0.001)
		}
	}
}

// outcome is the Result of a call that returned rep or err after d.
func outcome(ctx context.Context, rep *reply, err error, outCap int, d time.Duration) Result {
	switch {
	case (err != nil || rep.Status == "canceled") && ctx.Err() != nil:
		return Result{Kind: KindCanceled, Duration: d, Err: context.Cause(ctx)}
	case errors.Is(err, errHang):
		return Result{Output: TimeoutOutput, Kind: KindTimeout, Duration: d, Detail: err.Error()}
	case err != nil:
		return Result{Output: "Execution Error", Kind: KindCrash, Duration: d, Detail: err.Error()}
	}
	r := rep.result(outCap)
	r.Duration = d
	return r
}

// release puts a worker (or an empty slot) back; on a closed pool it kills the worker.
func (p *Pool) release(w *worker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		if w != nil {
			p.bg.Add(1)
			go func() { defer p.bg.Done(); w.stop() }()
		}
		return
	}
	p.idle <- w
}

// retire kills a broken worker and starts its replacement in the background; the slot goes
// back to the pool when the new worker is ready (or empty, to be started on demand, when it
// cannot be started).
func (p *Pool) retire(w *worker, why error) {
	p.cfg.Logf("sandbox: replacing worker %d: %v", w.id, why)
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		w.kill()
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-p.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		nw, err := p.sb.spawn(ctx)
		cancel()
		if err != nil {
			p.cfg.Logf("sandbox: starting a replacement worker: %v", err)
			nw = nil
		}
		p.release(nw)
	}()
}

// Close stops every worker (and everything running in them) and waits for them to exit.
// Calls in flight are canceled (Result.Err is ErrClosed) unless they finish first; later
// calls get ErrClosed. It is idempotent, never panics, and returns the error of removing the
// pool's files.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	p.mu.Unlock()
	p.calls.Wait() // they are canceled by done and return their workers
	for {
		select {
		case w := <-p.idle:
			if w != nil {
				w.stop()
			}
			continue
		default:
		}
		break
	}
	p.bg.Wait()
	// Workers released after the drain were killed by release; drain once more.
	for {
		select {
		case w := <-p.idle:
			if w != nil {
				w.stop()
			}
			continue
		default:
		}
		break
	}
	return p.sb.close()
}

// Session is one stateful Python namespace (one trajectory's): each Run sees the variables,
// functions and imports of the earlier Runs. The state is rebuilt on every call by re-running
// the session's earlier cells with their output discarded (with random and numpy.random seeded
// per session, so they replay identically), which keeps a session independent of any one
// worker: a crash or a busy worker never loses it. Cells that timed out or crashed are not
// replayed. Methods are safe for concurrent use; calls of one session run one at a time.
type Session struct {
	p     *Pool
	seed  uint32
	mu    sync.Mutex
	cells []string
	spent time.Duration // time the replayed cells took
	done  bool
}

// Session starts a stateful session on the pool. It never panics; it holds no worker.
func (p *Pool) Session() *Session {
	return &Session{p: p, seed: rand.Uint32()}
}

// Run executes code in the session's namespace; see Pool.Run for the result. It never panics.
func (s *Session) Run(ctx context.Context, code string) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return Result{Kind: KindCanceled, Err: ErrClosed}
	}
	seed := s.seed
	req := request{Code: code, Prelude: s.cells, Seed: &seed}
	r := s.p.exec(ctx, req, s.spent)
	if r.Kind == KindOK || r.Kind == KindException {
		s.cells = append(s.cells[:len(s.cells):len(s.cells)], code)
		s.spent += r.Duration
	}
	return r
}

// Close ends the session; later Runs return ErrClosed. It always returns nil.
func (s *Session) Close() error {
	s.mu.Lock()
	s.done = true
	s.cells = nil
	s.mu.Unlock()
	return nil
}

// RunOnce executes code in a fresh sandboxed Python process started for this call alone and
// stopped after it: the baseline the pool is measured against, and a way to run one snippet
// without keeping workers. cfg.Lazy is honoured (true starts faster). Errors as for New, in
// Result.Err. It never panics.
func RunOnce(ctx context.Context, cfg Config, code string) Result {
	cfg.Workers = 1
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{Kind: KindCanceled, Err: err}
	}
	sb, err := newSandboxer(cfg)
	if err != nil {
		return Result{Kind: KindCanceled, Err: err}
	}
	defer sb.close()
	start := time.Now()
	w, err := sb.spawn(ctx)
	if err != nil {
		return Result{Kind: KindCrash, Output: "Execution Error", Detail: err.Error(), Err: err}
	}
	defer w.stop()
	req := request{Code: code}
	sb.fill(&req, 0)
	clamp(ctx, &req)
	rep, err := w.call(ctx, req, sb.timeout(0)+sb.grace())
	return outcome(ctx, rep, err, req.Out, time.Since(start))
}

// reply is the worker's answer to one request.
type reply struct {
	ID     *uint64 `json:"id"`
	Ready  bool    `json:"ready"`
	Status string  `json:"status"`
	Head   string  `json:"head"`
	Tail   string  `json:"tail"`
	Bytes  int64   `json:"bytes"`
	Error  string  `json:"error"`
	Value  *string `json:"value"`
	Signal int     `json:"signal"`
	Exit   int     `json:"exit"`
	Wall   float64 `json:"wall"`
	Reused bool    `json:"reused"` // it ran on a child an earlier call had used
	CPU    float64 `json:"cpu"`
}

// result turns a reply into the text the model is shown.
func (r *reply) result(outCap int) Result {
	switch r.Status {
	case "ok":
		out := strings.TrimSpace(r.Head)
		if out == "" && r.Value != nil {
			out = strings.TrimSpace(*r.Value)
		}
		return Result{Output: Truncate(out), Kind: KindOK}
	case "exception":
		return Result{Output: Truncate(strings.TrimSpace(r.Error)), Kind: KindException}
	case "timeout":
		return Result{Output: TimeoutOutput, Kind: KindTimeout}
	case "output_limit":
		return Result{Output: Format(r.Head + r.Tail), Kind: KindLimit,
			Detail: fmt.Sprintf("more than %d bytes of output; the rest was cut", outCap)}
	case "signal":
		name := signalName(r.Signal)
		return Result{Output: "Execution Error: killed by " + name, Kind: KindCrash,
			Detail: "the code's process was killed by " + name}
	case "exit":
		out := Format(r.Head)
		if r.Exit == 0 {
			return Result{Output: out, Kind: KindOK}
		}
		if out == "" {
			out = fmt.Sprintf("SystemExit: %d", r.Exit)
		}
		return Result{Output: out, Kind: KindException}
	}
	return Result{Output: "Execution Error", Kind: KindCrash, Detail: "worker: " + r.Status + ": " + r.Error}
}
