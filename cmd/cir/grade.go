package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"cir/train/reward"
)

// gradeIn is one input line of cir grade.
type gradeIn struct {
	Pred *string `json:"pred"`
	Gold *string `json:"gold"`
}

// gradeOut is one output line of cir grade.
type gradeOut struct {
	Correct bool    `json:"correct"`
	Answer  string  `json:"answer"`
	Reward  float64 `json:"reward"`
}

// cmdGrade reads JSONL {"pred": completion-or-answer, "gold": reference} on stdin and writes
// one line {"correct", "answer", "reward"} per input line, in order. The answer is extracted
// from pred by --mode (lenient by default, as for evaluation) and from gold as leniently as a
// completion. A malformed line stops the run with an error naming the line.
func cmdGrade(e *env, args []string) error {
	fs := e.flags("grade")
	correct := fs.Float64("correct", 1, "reward of an answer equivalent to gold")
	wrong := fs.Float64("wrong", -1, "reward of any other answer, or of no answer")
	timeout := fs.Duration("timeout", reward.DefaultTimeout, "deadline of one check")
	mode := fs.String("mode", "lenient", "where the answer is looked for in pred: boxed (only the last \\boxed{}, the training reward) or lenient (also \"Final Answer: ...\", the last math or number)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errorf("input is read from stdin", "grade: unexpected argument %q", fs.Arg(0))
	}
	if *timeout <= 0 {
		return errorf("e.g. --timeout 1s", "grade: --timeout must be positive, got %v", *timeout)
	}
	m, err := reward.ParseMode(*mode)
	if err != nil {
		return errorf("use --mode boxed or --mode lenient", "grade: --mode %q is not a mode", *mode)
	}
	ck := &reward.Checker{Correct: *correct, Wrong: *wrong, Timeout: *timeout, Mode: m}
	out := bufio.NewWriter(e.stdout)
	defer out.Flush()
	in := bufio.NewReader(e.stdin)
	n, graded := 0, 0
	start := time.Now()
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			n++
			if line = bytes.TrimSpace(line); len(line) > 0 {
				var rec gradeIn
				if jerr := json.Unmarshal(line, &rec); jerr != nil {
					return errorf(`each line is {"pred": "...", "gold": "..."}`, "line %d: invalid JSON: %v", n, jerr)
				}
				switch {
				case rec.Pred == nil:
					return errorf(`each line is {"pred": "...", "gold": "..."}`, "line %d: missing string field \"pred\"", n)
				case rec.Gold == nil:
					return errorf(`each line is {"pred": "...", "gold": "..."}`, "line %d: missing string field \"gold\"", n)
				}
				r := ck.Score(*rec.Pred, *rec.Gold)
				b, merr := json.Marshal(gradeOut{Correct: r.Correct, Answer: r.Answer, Reward: r.Reward})
				if merr != nil {
					return fmt.Errorf("grade: line %d: %w", n, merr)
				}
				out.Write(b)
				out.WriteByte('\n')
				graded++
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("grade: read stdin: %w", err)
		}
	}
	fmt.Fprintf(e.stderr, "graded %d lines in %v\n", graded, time.Since(start).Round(time.Millisecond))
	return out.Flush()
}
