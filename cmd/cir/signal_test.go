package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cir/train/ckpt"
)

// TestMain runs the binary's main instead of the tests when CIR_TEST_MAIN is set, so that a
// test can start cir as a process of its own and signal it.
func TestMain(m *testing.M) {
	if os.Getenv("CIR_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// startCLI starts cir with args as a process; lines of its stderr arrive on the channel.
func startCLI(t *testing.T, args ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CIR_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		r := bufio.NewReader(stderr)
		for {
			// Progress bars redraw with \r: split on both.
			s, err := r.ReadString('\n')
			for _, part := range strings.Split(s, "\r") {
				if part != "" {
					lines <- part
				}
			}
			if err != nil {
				io.Copy(io.Discard, r)
				return
			}
		}
	}()
	return cmd, lines
}

// waitFor reads lines until one contains s, and returns everything read.
func waitFor(t *testing.T, lines <-chan string, s string, timeout time.Duration) string {
	t.Helper()
	var seen strings.Builder
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("cir ended before printing %q:\n%s", s, seen.String())
			}
			seen.WriteString(l)
			if strings.Contains(l, s) {
				return seen.String()
			}
		case <-deadline:
			t.Fatalf("no %q within %v:\n%s", s, timeout, seen.String())
		}
	}
}

// exitCode waits for cmd and returns its exit status and how long that took.
func exitCode(t *testing.T, cmd *exec.Cmd) (int, time.Duration) {
	t.Helper()
	t0 := time.Now()
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), time.Since(t0)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, time.Since(t0)
}

// TestTrainSignals: SIGINT during the warm-up and SIGTERM during RL make cir train stop
// within seconds, write a checkpoint and exit 130; --resume continues from it to the end; a
// second signal exits at once.
func TestTrainSignals(t *testing.T) {
	needSandbox(t)
	out := t.TempDir()
	args := append(smallToyJob(t, out), "run.steps=6", "sft.steps=80", "rollout.sandbox.workers=1")

	cmd, lines := startCLI(t, args...)
	waitFor(t, lines, "warm-up loss", 5*time.Minute)
	cmd.Process.Signal(os.Interrupt)
	code, took := exitCode(t, cmd)
	if code != 130 {
		t.Fatalf("SIGINT during the warm-up: exit %d, want 130", code)
	}
	if took > 20*time.Second {
		t.Errorf("cir train took %v to stop after SIGINT", took)
	}
	if _, _, err := ckpt.Latest(filepath.Join(out, "checkpoints")); err != nil {
		t.Fatalf("no checkpoint after SIGINT: %v", err)
	}

	cmd, lines = startCLI(t, append(args, "--resume")...)
	seen := waitFor(t, lines, "reward", 5*time.Minute) // an RL step has finished
	if !strings.Contains(seen, "resumed from") {
		t.Errorf("the second run did not resume:\n%s", seen)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if code, took := exitCode(t, cmd); code != 130 || took > 20*time.Second {
		t.Fatalf("SIGTERM during RL: exit %d after %v, want 130 within seconds", code, took)
	}
	dir, step, err := ckpt.Latest(filepath.Join(out, "checkpoints"))
	if err != nil || step < 1 {
		t.Fatalf("checkpoint after SIGTERM: %s step %d, %v", dir, step, err)
	}

	stdout, stderr, code := runCLI(t, "", append(args, "--resume")...)
	if code != 0 || !strings.Contains(stdout, `"rl_steps":6`) || !strings.Contains(stderr, "resumed from") {
		t.Fatalf("resume to the end: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// Two signals: the second exits at once, whatever the first was doing.
	cmd, lines = startCLI(t, append(smallToyJob(t, t.TempDir()), "sft.steps=80", "rollout.sandbox.workers=1")...)
	waitFor(t, lines, "warm-up loss", 5*time.Minute)
	cmd.Process.Signal(os.Interrupt)
	cmd.Process.Signal(os.Interrupt)
	if code, took := exitCode(t, cmd); code != 130 || took > 10*time.Second {
		t.Fatalf("two SIGINTs: exit %d after %v, want 130 at once", code, took)
	}
}
