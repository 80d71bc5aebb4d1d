// Package sandbox runs the model's Python code: /usr/bin/python3 with numpy and sympy inside
// bubblewrap, on a pool of warm workers.
//
// Each worker is one bwrap sandbox (user, PID, network, IPC and UTS namespaces unshared, the
// system and / read-only, private tmpfs /tmp and /dev/shm, nothing of the host's home or the
// project visible) whose PID 1 is a Python process with numpy and sympy already imported; its
// program comes on stdin, not on the command line. Every stateless call runs in a child of that
// process that no other call has used, forked ahead of the call, in a new session with rlimits
// (CPU time, address space, file size, open files, processes, message queues) and a seccomp
// filter that keeps it from the kernel's keyrings. After the call every other process of the
// namespace is killed and reaped, /tmp and /dev/shm are wiped and System V IPC objects
// removed, so the next call starts from the worker's state again, as every call does. The
// worker is its namespace's init, so the code cannot kill it; a worker that dies, hangs or
// breaks its protocol anyway is killed (the whole namespace with it) and replaced. When
// running as root each worker also lives in its own pids and memory cgroups and runs as an
// unprivileged uid, which bounds fork bombs.
//
// A Session (a stateful namespace: one trajectory's) holds a worker of its own, whose child
// lives from the session's first call to its end and runs its calls one after another.
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
	"runtime"
	"strings"
	"sync"
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
	Workers     int           // warm workers for stateless calls (run at once); default max(2, NumCPU)
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
	TmpBytes         int64  // size of the private /tmp (and of /dev/shm); default 64 MiB
	Python           string // interpreter; default /usr/bin/python3
	Lazy             bool   // don't import numpy and sympy before the first call
	// MaxSessions bounds the sessions that hold an interpreter (a worker each, about 80 MB)
	// at once; default 32. See Session.
	MaxSessions int
	// SessionIdle is how long a session may go without calls before its interpreter is
	// stopped (it starts afresh on the session's next call); default 10 minutes.
	SessionIdle time.Duration
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
		MaxSessions:    32,
		SessionIdle:    10 * time.Minute,
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
	if c.MaxSessions == 0 {
		c.MaxSessions = d.MaxSessions
	}
	if c.SessionIdle == 0 {
		c.SessionIdle = d.SessionIdle
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
	case c.MaxSessions < 0 || c.SessionIdle < 0:
		return c, fmt.Errorf("sandbox: Config.MaxSessions is %d and SessionIdle %v, want both ≥ 0", c.MaxSessions, c.SessionIdle)
	}
	return c, nil
}

// Result is the outcome of one execution.
type Result struct {
	Output   string        // exactly the text between the output fences
	Kind     ErrorKind     // how the call ended
	Duration time.Duration // wall time of the call, waiting for a worker excluded
	// Detail says more for logs (never shown to the model): why a call crashed, or that a
	// session's interpreter was started afresh; empty otherwise.
	Detail string
	// Err is non-nil only when the code did not run to an outcome for a reason outside it:
	// ErrClosed, the context's error, or a worker that could not be started.
	Err error
}

// Pool is a set of warm sandboxed Python workers. Its methods are safe for concurrent use.
type Pool struct {
	cfg  Config
	sb   *sandboxer
	idle chan *worker // stateless calls' workers; nil entries are slots to start a worker in
	done chan struct{}

	mu     sync.Mutex
	closed bool
	calls  sync.WaitGroup // calls in flight; Add under mu while not closed
	bg     sync.WaitGroup // replacements, wipes and the janitor; Add under mu while not closed

	// The sessions' workers, under mu.
	live    map[*Session]bool // sessions that hold a worker
	spares  []spare           // wiped session workers that hold no session, the latest last
	nsess   int               // session workers alive or on their way (at most MaxSessions)
	changed chan struct{}     // closed (and replaced) when a session worker may be free
	janitor bool              // the janitor of idle sessions runs
}

// spare is a wiped session worker and since when it has waited for a session.
type spare struct {
	w     *worker
	since time.Time
}

// Workers returns how many stateless calls the pool runs at once; more wait for a worker.
func (p *Pool) Workers() int { return p.cfg.Workers }

// New starts a pool of cfg.Workers warm workers and waits until they are ready. It fails
// with an error wrapping ErrNoSandbox when bwrap is missing and cfg.Unsafe is false, and
// with the worker's own message when Python or numpy/sympy cannot be started. It never panics.
func New(ctx context.Context, cfg Config) (*Pool, error) {
	return startPool(ctx, cfg, "")
}

// startPool is New with another worker program when script is not empty (tests).
func startPool(ctx context.Context, cfg Config, script string) (*Pool, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	sb, err := newSandboxer(cfg)
	if err != nil {
		return nil, err
	}
	if script != "" {
		sb.script = script
	}
	p := &Pool{cfg: cfg, sb: sb, idle: make(chan *worker, cfg.Workers), done: make(chan struct{}),
		live: map[*Session]bool{}, changed: make(chan struct{})}
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
	ctx, end, err := p.begin(ctx)
	if err != nil {
		return Result{Kind: KindCanceled, Err: err}
	}
	defer end()
	var w *worker
	select {
	case w = <-p.idle:
	case <-ctx.Done():
		return Result{Kind: KindCanceled, Err: context.Cause(ctx)}
	}
	if w == nil {
		if w, err = p.sb.spawn(ctx); err != nil {
			p.release(nil)
			return p.startFailed(ctx, err)
		}
	}
	r, _, err := p.call(ctx, w, request{Code: code})
	if err != nil {
		p.retire(w, err)
	} else {
		p.release(w)
	}
	return r
}

// begin registers a call. The context it returns is canceled with ErrClosed when the pool
// closes; end must be called when the call is over. The error is the context's, or ErrClosed.
func (p *Pool) begin(ctx context.Context) (_ context.Context, end func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, nil, ErrClosed
	}
	p.calls.Add(1)
	p.mu.Unlock()
	ctx, cancel := p.untilClosed(ctx)
	return ctx, func() { cancel(); p.calls.Done() }, nil
}

// untilClosed returns a context that is also canceled, with cause ErrClosed, when the pool
// closes.
func (p *Pool) untilClosed(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-p.done:
			cancel(ErrClosed)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// startFailed is the Result of a call whose worker could not be started.
func (p *Pool) startFailed(ctx context.Context, err error) Result {
	if ctx.Err() != nil {
		return Result{Kind: KindCanceled, Err: context.Cause(ctx)}
	}
	return Result{Kind: KindCrash, Output: "Execution Error", Detail: err.Error(), Err: err}
}

// request is one call as the worker reads it.
type request struct {
	ID      uint64  `json:"id"`
	Code    string  `json:"code,omitempty"`
	Session bool    `json:"session,omitempty"` // keep the child for the session's next call
	End     bool    `json:"end,omitempty"`     // the session is over: back to a pristine worker
	Timeout float64 `json:"timeout,omitempty"`
	CPU     int     `json:"cpu,omitempty"`
	Mem     int64   `json:"mem,omitempty"`
	FSize   int64   `json:"fsize,omitempty"`
	NoFile  int     `json:"nofile,omitempty"`
	NProc   int     `json:"nproc,omitempty"`
	Out     int     `json:"out,omitempty"`
}

// call runs req on w and returns its result, the worker's reply and the error that makes w
// unusable (the caller must retire or kill it).
func (p *Pool) call(ctx context.Context, w *worker, req request) (Result, *reply, error) {
	p.sb.fill(&req)
	clamp(ctx, &req)
	start := time.Now()
	rep, err := w.call(ctx, req, p.sb.timeout()+p.sb.grace())
	return outcome(ctx, rep, err, req.Out, time.Since(start)), rep, err
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

// release puts a stateless worker (or an empty slot) back; on a closed pool it stops the
// worker.
func (p *Pool) release(w *worker) {
	p.mu.Lock()
	if !p.closed {
		p.idle <- w // never blocks: the channel has room for every worker
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	if w != nil {
		w.stop()
	}
}

// retire kills a broken stateless worker and starts its replacement in the background; the
// slot goes back to the pool when the new worker is ready (or empty, to be started on demand,
// when it cannot be started).
func (p *Pool) retire(w *worker, why error) {
	p.mu.Lock()
	closed := p.closed
	if !closed {
		p.bg.Add(1)
	}
	p.mu.Unlock()
	if closed {
		w.kill()
		return
	}
	p.cfg.Logf("sandbox: replacing worker %d: %v", w.id, why)
	go func() {
		defer p.bg.Done()
		w.kill()
		ctx, cancel := p.untilClosed(context.Background())
		defer cancel()
		nw, err := p.sb.spawn(ctx)
		if err != nil {
			if ctx.Err() == nil {
				p.cfg.Logf("sandbox: starting a replacement worker: %v", err)
			}
			nw = nil
		}
		p.release(nw)
	}()
}

// Close stops every worker (and everything running in them) and waits for them to exit.
// Calls in flight are canceled (Result.Err is ErrClosed) unless they finish first; later
// calls and sessions get ErrClosed. It is idempotent, never panics, and returns the error of
// removing the pool's files.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	var stop []*worker
	for s := range p.live {
		if !s.busy { // a call in flight stops its session's worker itself
			stop = append(stop, p.detach(s, "the pool was closed"))
		}
	}
	for _, sp := range p.spares {
		stop = append(stop, sp.w)
	}
	p.spares = nil
	p.mu.Unlock()
	var stopping sync.WaitGroup
	stopAll := func(ws ...*worker) {
		for _, w := range ws {
			stopping.Add(1)
			go func() { defer stopping.Done(); w.stop() }()
		}
	}
	stopAll(stop...)
	// Calls are canceled by done and give their workers back (or stop them); so do the
	// replacements and wipes in the background.
	p.calls.Wait()
	p.bg.Wait()
	for {
		select {
		case w := <-p.idle:
			if w != nil {
				stopAll(w)
			}
			continue
		default:
		}
		break
	}
	stopping.Wait()
	return p.sb.close()
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
	sb.fill(&req)
	clamp(ctx, &req)
	rep, err := w.call(ctx, req, sb.timeout()+sb.grace())
	return outcome(ctx, rep, err, req.Out, time.Since(start))
}

// reply is the worker's answer to one request.
type reply struct {
	ID       *uint64  `json:"id"`
	Ready    bool     `json:"ready"`
	Warnings []string `json:"warnings"` // with ready: containment it could not set up
	Status   string   `json:"status"`
	Head     string   `json:"head"`
	Tail     string   `json:"tail"`
	Bytes    int64    `json:"bytes"`
	Error    string   `json:"error"`
	Value    *string  `json:"value"`
	Signal   int      `json:"signal"`
	Exit     int      `json:"exit"`
	Wall     float64  `json:"wall"`
	Fresh    bool     `json:"fresh"` // it ran on a child no call had used
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
