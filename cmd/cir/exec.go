package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"cir/train/sandbox"
)

// cellSeparator splits stdin into cells for --stateful (the "percent" cell format).
const cellSeparator = "# %%"

// cmdExec runs Python code from stdin in the sandbox and prints exactly the text the model
// would be shown between the output fences. With --stateful, stdin may hold several cells
// separated by lines starting with "# %%"; they run in one session and their results are
// printed in order, separated by "# %%" lines.
func cmdExec(e *env, args []string) error {
	fs := e.flags("exec")
	stateful := fs.Bool("stateful", false, "run the cells of stdin in one Python session")
	timeout := fs.Float64("timeout", 5, "wall-time limit per cell in `seconds`")
	unsafe := fs.Bool("unsafe-no-sandbox", false, "run without bubblewrap (no containment!) where bwrap is missing")
	verbose := fs.Bool("v", false, "report each cell's outcome and duration on stderr")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errorf("the code is read from stdin", "exec: unexpected argument %q", fs.Arg(0))
	}
	if !(*timeout > 0) || *timeout > 3600 {
		return errorf("give seconds in (0, 3600]", "exec: --timeout %v is out of range", *timeout)
	}
	src, err := io.ReadAll(e.stdin)
	if err != nil {
		return fmt.Errorf("exec: reading stdin: %w", err)
	}
	cells := []string{string(src)}
	if *stateful {
		cells = splitCells(string(src))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg := sandbox.DefaultConfig()
	cfg.Workers = 1
	// numpy and sympy are imported before the code starts: their import (seconds on a busy
	// machine) must not count against the code's time limit.
	cfg.Timeout = time.Duration(*timeout * float64(time.Second))
	cfg.Unsafe = *unsafe
	cfg.Logf = func(format string, a ...any) { fmt.Fprintf(e.stderr, format+"\n", a...) }
	pool, err := sandbox.New(ctx, cfg)
	if errors.Is(err, sandbox.ErrNoSandbox) {
		return errorf("install bubblewrap, or pass --unsafe-no-sandbox to run without containment", "exec: bwrap not found")
	}
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	defer pool.Close()
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
