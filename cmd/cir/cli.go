package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"cir/train"
)

// command is one subcommand: its name, a usage line, a one-line summary and its body.
type command struct {
	name, args, summary string
	run                 func(env *env, args []string) error
}

// env is what a subcommand reads and writes: data on stdout, logs and progress on stderr.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	cmd            *command // the subcommand being run
}

// commands lists the subcommands in the order help shows them.
var commands = []command{
	{"init", "--config C.json --seed N --out DIR", "write a randomly initialised model in HF layout", cmdInit},
	{"logprobs", "--model DIR --input F.jsonl", "per-token log-probs and loss of token sequences", cmdLogprobs},
	{"grad", "--model DIR --input F.jsonl --out G.safetensors", "gradient of the mean token loss", cmdGrad},
	{"tokenize", "--tokenizer T [--jsonl]", "text on stdin to token ids", cmdTokenize},
	{"detokenize", "--tokenizer T", "token ids on stdin to text", cmdDetokenize},
	{"grade", "[--mode boxed|lenient]", "grade JSONL {pred, gold} lines against each other", cmdGrade},
	{"exec", "[--stateful | --jsonl] [--timeout S]", "run Python code from stdin in the sandbox", cmdExec},
	{"template", "--model DIR --prompt P [--system S]", "print the exact prompt text the model is given", cmdTemplate},
	{"generate", "--model DIR --prompt P [flags]", "sample a tool-interleaved answer", cmdGenerate},
	{"train", "--config RUN.yaml [key=value ...]", "train with RL and the code interpreter", cmdTrain},
	{"eval", "--model DIR --bench FILE.jsonl --n K", "evaluate on a benchmark", cmdEval},
	{"convert", "--in SRC --out DST [--to hf|gguf] [--dtype f32|bf16|f16|q8_0] [--max-shard-size 5GB] [--verify] [--force]", "convert checkpoints: HF safetensors, GGUF, training runs", cmdConvert},
	{"bench", "all|gemm|train|decode [flags]", "measure speed against references in the same run", cmdBench},
	{"plot", "metrics.jsonl -o curves.png", "plot training curves", cmdPlot},
}

// userError is an error the user can fix: printed as "Error: what (hint)".
type userError struct{ what, hint string }

func (e *userError) Error() string {
	if e.hint == "" {
		return e.what
	}
	return e.what + " (" + e.hint + ")"
}

// errorf returns a user error with a hint.
func errorf(hint, format string, a ...any) error {
	return &userError{what: fmt.Sprintf(format, a...), hint: hint}
}

// errHelp reports that help was asked for and printed.
var errHelp = flag.ErrHelp

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return 1
		}
		return 0
	}
	for i := range commands {
		c := &commands[i]
		if c.name != args[0] {
			continue
		}
		e.cmd = c
		err := c.run(e, args[1:])
		if err == nil {
			return 0
		}
		if errors.Is(err, errHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "Error: %v\n", err)
		if errors.Is(err, train.ErrInterrupted) {
			return 130 // as a shell reports a SIGINT
		}
		return 1
	}
	fmt.Fprintf(stderr, "Error: unknown command %q (see 'cir help')\n", args[0])
	return 1
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: cir <command> [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'cir <command> --help' for a command's flags.")
}

// flags returns a flag set for the named command whose help shows its usage line and every
// flag with its default, on the command's stderr.
func (e *env) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		if c := e.cmd; c != nil {
			fmt.Fprintf(e.stderr, "Usage: cir %s %s\n\n%s.\n\nFlags:\n", c.name, c.args, c.summary)
		}
		fs.VisitAll(func(f *flag.Flag) {
			name, u := flag.UnquoteUsage(f)
			fmt.Fprintf(e.stderr, "  --%s %s\n    \t%s", f.Name, name, strings.ReplaceAll(u, "\n", "\n    \t"))
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				fmt.Fprintf(e.stderr, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(e.stderr)
		})
	}
	return fs
}

// parse parses args with fs and wraps a bad flag as a user error naming the command.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return errorf("see 'cir "+fs.Name()+" --help'", "%s: %v", fs.Name(), err)
	}
	return nil
}

// required returns a user error when any named string flag is empty.
func required(fs *flag.FlagSet, names ...string) error {
	for _, n := range names {
		if f := fs.Lookup(n); f != nil && f.Value.String() == "" {
			return errorf("see 'cir "+fs.Name()+" --help'", "%s: --%s is required", fs.Name(), n)
		}
	}
	return nil
}
