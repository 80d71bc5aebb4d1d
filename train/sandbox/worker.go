package sandbox

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

//go:embed worker.py
var workerScript string

// unprivUID is the host uid the sandbox runs as when cir runs as root: the kernel's "nobody".
const unprivUID = 65534

// errHang is returned by worker.call when the worker does not answer in time.
var errHang = errors.New("sandbox: worker did not answer in time")

// errProtocol is returned by worker.call when the worker's answer is malformed.
var errProtocol = errors.New("sandbox: worker broke the protocol")

// sandboxer knows how to start workers: the command line and the cgroup parent.
type sandboxer struct {
	cfg      Config
	bwrap    string            // path of bwrap; empty when Unsafe
	setpriv  string            // path of setpriv when dropping root; else empty
	cgroups  map[string]string // this pool's cgroup directory by controller (pids, memory)
	tmp      string            // unsafe mode: parent of the workers' private directories
	script   string            // the worker program (tests replace it)
	warnOnce sync.Once         // the workers' warnings are logged once
	nextID   atomic.Uint64
	reqID    atomic.Uint64
}

func newSandboxer(cfg Config) (*sandboxer, error) {
	sb := &sandboxer{cfg: cfg, script: workerScript}
	if _, err := os.Stat(cfg.Python); err != nil {
		return nil, fmt.Errorf("sandbox: Python interpreter %s: %w", cfg.Python, err)
	}
	if os.Geteuid() == 0 {
		if sp, err := exec.LookPath("setpriv"); err == nil {
			sb.setpriv = sp
		} else {
			cfg.Logf("sandbox: setpriv not found: the model's code keeps the host's root uid " +
				"(mapped in the sandbox) and RLIMIT_NPROC cannot bound its processes")
		}
	}
	if cfg.Unsafe {
		cfg.Logf("sandbox: running model code WITHOUT a sandbox (unsafe mode): only rlimits apply")
		dir, err := os.MkdirTemp("", "cir-sandbox-")
		if err != nil {
			return nil, fmt.Errorf("sandbox: private directory: %w", err)
		}
		if sb.setpriv != "" {
			os.Chmod(dir, 0o711) // the unprivileged uid must reach its own directory inside
		}
		sb.tmp = dir
		return sb, nil
	}
	path, err := exec.LookPath("bwrap")
	if err != nil {
		return nil, fmt.Errorf("%w: install bubblewrap, or pass --unsafe-no-sandbox (Config.Unsafe) "+
			"to run model code without containment: %w", ErrNoSandbox, err)
	}
	sb.bwrap = path
	sb.cgroups = map[string]string{}
	for _, c := range []string{"pids", "memory"} {
		if dir := makePoolCgroup(c, cfg.Logf); dir != "" {
			sb.cgroups[c] = dir
		}
	}
	return sb, nil
}

// timeout is the wall limit the worker enforces for one call.
func (sb *sandboxer) timeout() time.Duration { return sb.cfg.Timeout }

// grace is how much longer than the call's limit the pool waits for the worker's answer
// before it considers the worker hung: killing and reaping a call's processes and wiping /tmp.
func (sb *sandboxer) grace() time.Duration { return 2*time.Second + sb.cfg.Timeout/2 }

// fill sets the request's id and limits.
func (sb *sandboxer) fill(req *request) {
	c := sb.cfg
	req.ID = sb.reqID.Add(1)
	req.Timeout = sb.timeout().Seconds()
	req.CPU = int(math.Ceil(c.CPUTime.Seconds()))
	req.Mem = c.MemoryBytes
	req.FSize = c.MaxFileBytes
	req.NoFile = c.MaxOpenFiles
	req.NProc = c.MaxProcs + 3 // the worker, its spare child and the call's own process count
	req.Out = c.MaxOutputBytes
}

// close removes the pool's cgroup and private directory.
func (sb *sandboxer) close() error {
	for _, dir := range sb.cgroups {
		os.Remove(dir)
	}
	if sb.tmp != "" {
		return os.RemoveAll(sb.tmp)
	}
	return nil
}

// worker is one running sandbox with its Python worker process.
type worker struct {
	id     uint64
	cmd    *exec.Cmd
	req    *os.File          // requests, our end
	resp   *os.File          // replies, our end
	cgs    map[string]string // the worker's cgroups by controller
	tmp    string            // unsafe mode: its private directory
	exited chan struct{}
	stderr *capWriter
	once   sync.Once
	wmu    sync.Mutex // one frame at a time on req
}

// args returns the command line of a worker.
func (sb *sandboxer) args(tmp string) []string {
	c := sb.cfg
	mode := "preload"
	if c.Lazy {
		mode = "lazy"
	}
	a := []string{}
	if sb.setpriv != "" {
		u := strconv.Itoa(unprivUID)
		a = append(a, sb.setpriv, "--reuid="+u, "--regid="+u, "--clear-groups", "--")
	}
	// "-": the program comes on stdin (spawn), so that it is neither on the command line, where
	// ps shows it and argument limits apply, nor in a file the code could read.
	if c.Unsafe {
		return append(a, c.Python, "-I", "-B", "-", mode, "unsafe", tmp)
	}
	a = append(a, sb.bwrap,
		"--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
		"--unshare-cgroup-try", "--uid", "1000", "--gid", "1000", "--hostname", "sandbox",
		"--die-with-parent", "--new-session", "--as-pid-1",
		"--ro-bind", "/usr", "/usr")
	for _, l := range []string{"bin", "sbin", "lib", "lib32", "lib64", "libx32"} {
		if t, err := os.Readlink("/" + l); err == nil {
			a = append(a, "--symlink", t, "/"+l)
		} else if fi, err := os.Stat("/" + l); err == nil && fi.IsDir() {
			a = append(a, "--ro-bind", "/"+l, "/"+l)
		}
	}
	// Only what the dynamic loader and Debian's BLAS alternatives need from /etc.
	for _, e := range []string{"/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf",
		"/etc/ld.so.conf.d", "/etc/localtime"} {
		if _, err := os.Stat(e); err == nil {
			a = append(a, "--ro-bind", e, e)
		}
	}
	// / and /dev are read-only: a call can write only to /tmp and /dev/shm, which the worker
	// wipes after it.
	size := strconv.FormatInt(c.TmpBytes, 10)
	a = append(a, "--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm",
		"--size", size, "--tmpfs", "/tmp", "--remount-ro", "/dev", "--remount-ro", "/",
		"--chdir", "/tmp", "--clearenv",
		"--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp",
		"--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8",
		"--setenv", "OPENBLAS_NUM_THREADS", "1", "--setenv", "OMP_NUM_THREADS", "1",
		"--setenv", "MPLBACKEND", "Agg",
		c.Python, "-I", "-B", "-", mode, "sandbox", "/tmp")
	return a
}

// spawn starts a worker and waits for its ready message.
func (sb *sandboxer) spawn(ctx context.Context) (*worker, error) {
	w := &worker{id: sb.nextID.Add(1), exited: make(chan struct{}), stderr: &capWriter{max: 8192}}
	if sb.cfg.Unsafe {
		dir, err := os.MkdirTemp(sb.tmp, "w")
		if err != nil {
			return nil, fmt.Errorf("sandbox: worker directory: %w", err)
		}
		w.tmp = dir
		if sb.setpriv != "" {
			if err := os.Chown(dir, unprivUID, unprivUID); err != nil {
				return nil, fmt.Errorf("sandbox: worker directory: %w", err)
			}
		}
	}
	args := sb.args(w.tmp)
	// The worker's cgroups: the processes of the sandbox (bwrap, the worker, its spare child,
	// the call's) count MaxProcs plus four; their memory together at most TotalMemoryBytes.
	limits := map[string]int64{"pids": int64(sb.cfg.MaxProcs + 4), "memory": sb.cfg.TotalMemoryBytes}
	w.cgs = map[string]string{}
	var dirs []string
	for c, parent := range sb.cgroups {
		cg := filepath.Join(parent, "w"+strconv.FormatUint(w.id, 10))
		if err := os.Mkdir(cg, 0o755); err != nil {
			sb.cfg.Logf("sandbox: %s cgroup %s: %v", c, cg, err)
			continue
		}
		if err := os.WriteFile(filepath.Join(cg, limitFile[c]), []byte(strconv.FormatInt(limits[c], 10)), 0); err != nil {
			os.Remove(cg)
			sb.cfg.Logf("sandbox: %s cgroup %s: %v", c, cg, err)
			continue
		}
		w.cgs[c] = cg
		dirs = append(dirs, cg)
	}
	if len(dirs) > 0 {
		// Enter the cgroups before bwrap starts anything, then become bwrap.
		args = append([]string{"/bin/sh", "-c",
			`IFS=:; for d in $0; do echo $$ > "$d/cgroup.procs" || exit 1; done; unset IFS; exec "$@"`,
			strings.Join(dirs, ":")}, args...)
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("sandbox: pipe: %w", err)
	}
	respR, respW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return nil, fmt.Errorf("sandbox: pipe: %w", err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = "/"
	if sb.cfg.Unsafe {
		cmd.Dir = w.tmp
		cmd.Env = []string{"HOME=" + w.tmp, "TMPDIR=" + w.tmp, "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
			"OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "MPLBACKEND=Agg"}
	} else {
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
	}
	cmd.Stdin = strings.NewReader(sb.script)
	cmd.ExtraFiles = []*os.File{reqR, respW}
	cmd.Stderr = w.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	reqR.Close()
	respW.Close()
	if err != nil {
		reqW.Close()
		respR.Close()
		for _, cg := range w.cgs {
			os.Remove(cg)
		}
		return nil, fmt.Errorf("sandbox: starting %s: %w", args[0], err)
	}
	w.cmd, w.req, w.resp = cmd, reqW, respR
	go func() {
		cmd.Wait()
		close(w.exited)
	}()
	// Starting Python and importing numpy and sympy takes seconds on a loaded machine.
	deadline := time.Now().Add(120 * time.Second)
	stop := context.AfterFunc(ctx, func() { w.resp.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	w.resp.SetReadDeadline(deadline)
	var rep reply
	if err := w.read(&rep); err != nil || !rep.Ready {
		w.kill()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msg := strings.TrimSpace(w.stderr.String())
		if msg == "" {
			msg = fmt.Sprint(err)
		}
		return nil, fmt.Errorf("sandbox: worker did not start: %s", msg)
	}
	if len(rep.Warnings) > 0 {
		sb.warnOnce.Do(func() {
			for _, m := range rep.Warnings {
				sb.cfg.Logf("sandbox: %s", m)
			}
		})
	}
	return w, nil
}

// read reads one framed reply.
func (w *worker) read(rep *reply) error {
	var hdr [4]byte
	if _, err := io.ReadFull(w.resp, hdr[:]); err != nil {
		return err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n > 64<<20 {
		return fmt.Errorf("%w: frame of %d bytes", errProtocol, n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(w.resp, buf); err != nil {
		return err
	}
	if err := json.Unmarshal(buf, rep); err != nil {
		return fmt.Errorf("%w: %v", errProtocol, err)
	}
	return nil
}

// call sends one request and waits up to wait for its reply. When ctx ends first the worker is
// told to cancel the call: it kills the call's processes and answers "canceled", and stays
// usable. Any error means the worker can no longer be trusted: the caller must kill it.
func (w *worker) call(ctx context.Context, req request, wait time.Duration) (*reply, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("sandbox: encoding request: %w", err)
	}
	deadline := time.Now().Add(wait)
	w.resp.SetReadDeadline(deadline)
	w.wmu.Lock()
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		w.wmu.Lock()
		defer w.wmu.Unlock()
		w.write(map[string]uint64{"cancel": req.ID}, time.Now().Add(time.Second))
		if d := time.Now().Add(cancelGrace); d.Before(deadline) {
			w.resp.SetReadDeadline(d)
		}
	})
	defer func() {
		if !stop() {
			<-fired // a cancel in flight must not touch the next call's deadlines
		}
	}()
	err = w.writeFrame(body, deadline)
	w.wmu.Unlock()
	if err != nil {
		return nil, w.failure("writing request", err)
	}
	var rep reply
	if err := w.read(&rep); err != nil {
		return nil, w.failure("reading reply", err)
	}
	if rep.ID == nil || *rep.ID != req.ID {
		return nil, fmt.Errorf("%w: reply for another request", errProtocol)
	}
	return &rep, nil
}

// cancelGrace is how long a worker has to answer after a cancel.
const cancelGrace = 2 * time.Second

// write sends one framed JSON message; the caller holds w.wmu.
func (w *worker) write(msg any, deadline time.Time) error {
	body, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	return w.writeFrame(body, deadline)
}

func (w *worker) writeFrame(body []byte, deadline time.Time) error {
	frame := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+len(body)), uint32(len(body)))
	w.req.SetWriteDeadline(deadline)
	_, err := w.req.Write(append(frame, body...))
	return err
}

// failure describes why a call failed.
func (w *worker) failure(what string, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w (%s)", errHang, what)
	}
	select {
	case <-w.exited:
		err = fmt.Errorf("worker exited (%v) %s", w.cmd.ProcessState, strings.TrimSpace(w.stderr.String()))
	case <-time.After(50 * time.Millisecond):
	}
	return fmt.Errorf("sandbox: %s: %w", what, err)
}

// stop asks the worker to exit (it reaps everything it started first) and kills it when it
// has not within two seconds.
func (w *worker) stop() {
	w.req.Close()
	select {
	case <-w.exited:
	case <-time.After(2 * time.Second):
	}
	w.kill()
}

// kill stops the worker and everything in its sandbox, waits for it, and removes its cgroup
// and directory. It is idempotent.
func (w *worker) kill() {
	w.once.Do(func() {
		syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
		w.cmd.Process.Kill()
		w.req.Close()
		<-w.exited
		w.resp.Close()
		// bwrap's --die-with-parent takes the namespace down with it; sweep the cgroups for
		// anything still there before removing them.
		for _, cg := range w.cgs {
			for i := 0; i < 1000; i++ {
				pids := cgroupPids(cg)
				if len(pids) == 0 && os.Remove(cg) == nil {
					break
				}
				for _, pid := range pids {
					syscall.Kill(pid, syscall.SIGKILL)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		if w.tmp != "" {
			os.RemoveAll(w.tmp)
		}
	})
}

// capWriter keeps the first max bytes written to it.
type capWriter struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (c *capWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (c *capWriter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// signalName names a signal number ("SIGKILL").
func signalName(n int) string {
	names := map[int]string{1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP",
		6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV",
		12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 24: "SIGXCPU", 25: "SIGXFSZ"}
	if s, ok := names[n]; ok {
		return s
	}
	return "signal " + strconv.Itoa(n)
}
