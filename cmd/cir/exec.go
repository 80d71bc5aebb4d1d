package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"cir/train/sandbox"
)

// cellSeparator splits stdin into cells for --stateful (the "percent" cell format).
const cellSeparator = "# %%"

// cmdExec runs Python code from stdin in the sandbox and prints exactly the text the model
// would be shown between the output fences. With --stateful, stdin may hold several cells
// separated by lines starting with "# %%"; they run in one session and their results are
// printed in order, separated by "# %%" lines. With --jsonl, see execJSONL.
func cmdExec(e *env, args []string) error {
	fs := e.flags("exec")
	stateful := fs.Bool("stateful", false, "run the cells of stdin in one Python session")
	jsonl := fs.Bool("jsonl", false, "read lines {\"code\": \"...\", \"session\": optional string or integer id} and write one line\n"+
		"{\"output\": \"...\", \"kind\": \"ok|error|timeout|crash|limit\"} per input line, in input order;\n"+
		"lines with the same session run in order in one Python session, the others at once\n"+
		"(up to --workers); blank lines are skipped; a malformed line stops the run with an\n"+
		"error naming it, after the results of the lines before it")
	workers := fs.Int("workers", sandbox.DefaultConfig().Workers, "calls that run at once with --jsonl")
	maxSessions := fs.Int("max-sessions", sandbox.DefaultConfig().MaxSessions,
		"sessions with a live interpreter at once with --jsonl; beyond it the one idle the\n"+
			"longest loses its state")
	timeout := fs.Float64("timeout", 5, "wall-time limit per cell in `seconds`")
	unsafe := fs.Bool("unsafe-no-sandbox", false, "run without bubblewrap (no containment!) where bwrap is missing")
	verbose := fs.Bool("v", false, "report each cell's outcome and duration on stderr")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return errorf("the code is read from stdin", "exec: unexpected argument %q", fs.Arg(0))
	case !(*timeout > 0) || *timeout > 3600:
		return errorf("give seconds in (0, 3600]", "exec: --timeout %v is out of range", *timeout)
	case *stateful && *jsonl:
		return errorf(`with --jsonl give each line a "session"`, "exec: --stateful and --jsonl do not go together")
	case *workers < 1 || *workers > 256:
		return errorf("give 1 to 256", "exec: --workers %d is out of range", *workers)
	case *maxSessions < 1:
		return errorf("give at least 1", "exec: --max-sessions %d is out of range", *maxSessions)
	}
	if !*jsonl {
		var set []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "workers" || f.Name == "max-sessions" {
				set = append(set, "--"+f.Name)
			}
		})
		if len(set) > 0 {
			return errorf("they are for --jsonl", "exec: %s without --jsonl", strings.Join(set, " and "))
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg := sandbox.DefaultConfig()
	cfg.Workers = 1
	if *jsonl {
		cfg.Workers = *workers
	}
	// numpy and sympy are imported before the code starts: their import (seconds on a busy
	// machine) must not count against the code's time limit.
	cfg.Timeout = time.Duration(*timeout * float64(time.Second))
	cfg.MaxSessions = *maxSessions
	cfg.Unsafe = *unsafe
	cfg.Logf = func(format string, a ...any) { fmt.Fprintf(e.stderr, format+"\n", a...) }
	if *jsonl {
		return execJSONL(ctx, e, cfg, *verbose)
	}
	pool, err := sandbox.New(ctx, cfg)
	if err != nil {
		return startError(err)
	}
	defer pool.Close()

	src, err := io.ReadAll(e.stdin)
	if err != nil {
		return fmt.Errorf("exec: reading stdin: %w", err)
	}
	cells := []string{string(src)}
	if *stateful {
		cells = splitCells(string(src))
	}
	sess := pool.Session()
	defer sess.Close()
	for i, cell := range cells {
		var r sandbox.Result
		if *stateful {
			r = sess.Run(ctx, cell)
		} else {
			r = pool.Run(ctx, cell)
		}
		if r.Err != nil {
			return fmt.Errorf("exec: %w", r.Err)
		}
		if i > 0 {
			fmt.Fprintln(e.stdout, cellSeparator)
		}
		fmt.Fprintln(e.stdout, r.Output)
		if *verbose {
			fmt.Fprintf(e.stderr, "cell %d: %s in %v %s\n", i+1, r.Kind, r.Duration.Round(time.Millisecond), r.Detail)
		}
	}
	return nil
}

// startError is the error of a pool that could not be started.
func startError(err error) error {
	if errors.Is(err, sandbox.ErrNoSandbox) {
		return errorf("install bubblewrap, or pass --unsafe-no-sandbox to run without containment", "exec: bwrap not found")
	}
	return fmt.Errorf("exec: %w", err)
}

// execIn is one input line of cir exec --jsonl.
type execIn struct {
	Code    *string         `json:"code"`
	Session json.RawMessage `json:"session"` // a string or an integer; absent or null: stateless
}

// execOut is one output line of cir exec --jsonl.
type execOut struct {
	Output string `json:"output"`
	Kind   string `json:"kind"`
}

// execWindow is how many input lines may wait for their result or for the lines before them.
const execWindow = 256

// execJSONL runs the JSONL lines of stdin, each line {"code", "session"?}, on a pool with cfg
// (started while the first lines are read), and writes one line {"output", "kind"} per input
// line, in input order, as soon as it and the lines before it are done. Lines of one session
// run one after another in one sandbox.Session, the others at once (as many as the pool has
// workers). A malformed line stops the reading: the lines before it are run and printed, and
// the error names it.
func execJSONL(ctx context.Context, e *env, cfg sandbox.Config, verbose bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var pool *sandbox.Pool
	var poolErr error
	var startup time.Duration
	ready := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(ready)
		pool, poolErr = sandbox.New(ctx, cfg)
		startup = time.Since(start)
	}()
	// A session: its sandbox.Session, made by its first line's job, and its latest line's
	// finished channel: each line of it waits for the one before.
	type session struct {
		s    *sandbox.Session
		last chan struct{}
	}
	sessions := map[string]*session{}
	defer func() {
		cancel() // a pool still starting stops
		<-ready
		for _, s := range sessions {
			if s.s != nil {
				s.s.Close()
			}
		}
		if pool != nil {
			pool.Close()
		}
	}()
	type job struct {
		n        int // its line number
		r        sandbox.Result
		finished chan struct{}
	}
	queue := make(chan *job, execWindow) // in input order, to the printer
	printed := make(chan error, 1)
	go func() {
		var err error
		for j := range queue {
			<-j.finished
			if err != nil {
				continue
			}
			if j.r.Err != nil {
				err = fmt.Errorf("exec: line %d: %w", j.n, j.r.Err)
				cancel()
				continue
			}
			b, _ := json.Marshal(execOut{Output: j.r.Output, Kind: string(j.r.Kind)})
			if _, werr := e.stdout.Write(append(b, '\n')); werr != nil {
				err = fmt.Errorf("exec: writing stdout: %w", werr)
				cancel()
				continue
			}
			if verbose {
				fmt.Fprintf(e.stderr, "line %d: %s in %v %s\n", j.n, j.r.Kind, j.r.Duration.Round(time.Millisecond), j.r.Detail)
			}
		}
		printed <- err
	}()

	const hint = `each line is {"code": "...", "session": "optional id"}`
	in := bufio.NewReader(e.stdin)
	var inErr error
	n, ran := 0, 0
	for inErr == nil && ctx.Err() == nil {
		line, err := in.ReadBytes('\n')
		if err != nil && err != io.EOF {
			inErr = fmt.Errorf("exec: reading stdin: %w", err)
			break
		}
		if len(line) > 0 {
			n++
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			code, id, perr := parseExecLine(line)
			if perr != nil {
				inErr = errorf(hint, "exec: stdin line %d: %v", n, perr)
				break
			}
			j := &job{n: n, finished: make(chan struct{})}
			queue <- j
			ran++
			var s *session
			var prev chan struct{}
			if id != "" {
				if s = sessions[id]; s == nil {
					s = &session{}
					sessions[id] = s
				}
				prev, s.last = s.last, j.finished
			}
			go func() {
				defer close(j.finished)
				if prev != nil {
					<-prev
				}
				<-ready
				switch {
				case poolErr != nil:
					j.r = sandbox.Result{Kind: sandbox.KindCanceled, Err: poolErr}
				case s == nil:
					j.r = pool.Run(ctx, code)
				default:
					if s.s == nil {
						s.s = pool.Session()
					}
					j.r = s.s.Run(ctx, code)
				}
			}()
		}
		if err == io.EOF {
			break
		}
	}
	close(queue)
	err := <-printed
	// Every job waited for the pool's start, and the printer for every job: when one ran,
	// poolErr and startup are set.
	if ran > 0 && poolErr != nil {
		err = startError(poolErr)
	} else if err == nil {
		err = inErr
	}
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("exec: %w", ctx.Err())
	}
	if ran > 0 && poolErr == nil {
		fmt.Fprintf(e.stderr, "ran %d lines in %v (%v of it starting the workers)\n", ran,
			time.Since(start).Round(time.Millisecond), startup.Round(time.Millisecond))
	}
	return err
}

// parseExecLine reads one input line of --jsonl: its code, and its session id ("" for none).
func parseExecLine(line []byte) (code, session string, err error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var in execIn
	if err := dec.Decode(&in); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return "", "", fmt.Errorf("%q is a JSON %s, want a string", te.Field, te.Value)
		}
		return "", "", fmt.Errorf("invalid JSON: %v", err)
	}
	if dec.More() {
		return "", "", fmt.Errorf("more than one JSON value")
	}
	if in.Code == nil {
		return "", "", fmt.Errorf(`missing string field "code"`)
	}
	if len(in.Session) > 0 && string(in.Session) != "null" {
		var s string
		var i int64
		switch {
		case json.Unmarshal(in.Session, &s) == nil:
			session = s
		case json.Unmarshal(in.Session, &i) == nil:
			session = strconv.FormatInt(i, 10)
		default:
			return "", "", fmt.Errorf(`"session" is %s, want a string or an integer`, in.Session)
		}
		if session == "" {
			return "", "", fmt.Errorf(`"session" is empty: leave it out for a stateless call`)
		}
	}
	return *in.Code, session, nil
}

// splitCells splits source at lines that start with cellSeparator; the separator lines are
// dropped. Text without separators is one cell.
func splitCells(src string) []string {
	var cells []string
	var cur strings.Builder
	for _, line := range strings.SplitAfter(src, "\n") {
		if strings.HasPrefix(line, cellSeparator) {
			cells = append(cells, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	cells = append(cells, cur.String())
	out := cells[:0]
	for _, c := range cells {
		if strings.TrimSpace(c) != "" {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return []string{""}
	}
	return out
}
