package main

import (
	"bytes"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSplitCells(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"print(1)\n", []string{"print(1)\n"}},
		{"", []string{""}},
		{"a = 1\n# %%\nprint(a)\n", []string{"a = 1\n", "print(a)\n"}},
		{"# %% first\na = 1\n# %%\n\n# %% x\nb\n", []string{"a = 1\n", "b\n"}},
	}
	for _, tc := range tests {
		if got := splitCells(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitCells(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestExecCommand(t *testing.T) {
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("bwrap not installed (make test installs bubblewrap)")
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import numpy, sympy").Run(); err != nil {
		t.Skip("/usr/bin/python3 with numpy and sympy not available")
	}
	tests := []struct {
		args       []string
		stdin      string
		want, werr string
		code       int
	}{
		{[]string{"exec"}, "x = 3\nprint(x * 14)\n", "42\n", "", 0},
		{[]string{"exec"}, "1/0", "ZeroDivisionError: division by zero\n", "", 0},
		{[]string{"exec", "--timeout", "0.5"}, "while True: pass", "Timeout Error\n", "", 0},
		{[]string{"exec", "--stateful"}, "import sympy\nx = sympy.Symbol('x')\n# %%\nsympy.expand((x + 1)**2)\n",
			"\n# %%\nx**2 + 2*x + 1\n", "", 0},
		{[]string{"exec", "--timeout", "-1"}, "", "", "Error: exec: --timeout -1 is out of range", 1},
		{[]string{"exec", "extra"}, "", "", "Error: exec: unexpected argument", 1},
		{[]string{"exec", "--stateful", "--jsonl"}, "", "", "Error: exec: --stateful and --jsonl do not go together", 1},
		{[]string{"exec", "--workers", "3"}, "", "", "Error: exec: --workers without --jsonl", 1},
		// Sessions carry state in order, and only within themselves; "7" and 7 are one
		// session; blank lines are skipped; results come in input order.
		{[]string{"exec", "--jsonl"}, `{"code": "import time\ntime.sleep(0.5)\nprint('slow')"}
{"code": "x = 1\nprint(x)", "session": "a"}

{"code": "x", "session": 7}
{"code": "x += 1\nx", "session": "a"}
{"code": "x = 5", "session": "7"}
{"code": "x * 10", "session": "a"}
{"code": "x", "session": 7}
{"code": "x"}
{"code": "1/0", "session": null}
`, `{"output":"slow","kind":"ok"}
{"output":"1","kind":"ok"}
{"output":"NameError: name 'x' is not defined","kind":"error"}
{"output":"2","kind":"ok"}
{"output":"","kind":"ok"}
{"output":"20","kind":"ok"}
{"output":"5","kind":"ok"}
{"output":"NameError: name 'x' is not defined","kind":"error"}
{"output":"ZeroDivisionError: division by zero","kind":"error"}
`, "ran 9 lines in", 0},
		{[]string{"exec", "--jsonl", "--timeout", "0.5"}, `{"code": "while True: pass"}` + "\n" + `{"code": "print('x' * 2000000)"}`,
			`{"output":"Timeout Error","kind":"timeout"}` + "\n" + `{"output":"` + strings.Repeat("x", 200) + "..." + strings.Repeat("x", 200) + `","kind":"limit"}` + "\n", "", 0},
		// A malformed line: the lines before it are run and printed, and the error names it.
		{[]string{"exec", "--jsonl"}, `{"code": "print(1)"}` + "\n" + `{"code": "print(2)", "sesion": "a"}` + "\n" + `{"code": "print(3)"}`,
			`{"output":"1","kind":"ok"}` + "\n", `Error: exec: stdin line 2: invalid JSON: json: unknown field "sesion"`, 1},
		{[]string{"exec", "--jsonl"}, "\n" + `{"code": 3}`, "", `Error: exec: stdin line 2: "code" is a JSON number, want a string`, 1},
		{[]string{"exec", "--jsonl"}, `{"session": "a"}`, "", `Error: exec: stdin line 1: missing string field "code"`, 1},
		{[]string{"exec", "--jsonl"}, `{"code": "1", "session": ""}`, "", `Error: exec: stdin line 1: "session" is empty`, 1},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, strings.NewReader(tc.stdin), &out, &errb)
			if code != tc.code || out.String() != tc.want || !strings.Contains(errb.String(), tc.werr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr containing %q",
					code, out.String(), errb.String(), tc.code, tc.want, tc.werr)
			}
		})
	}
}

// TestExecJSONLConcurrent checks that lines of no session run at once: two that sleep 1.5 s
// each take less than 3 s together on two workers, once they have started.
func TestExecJSONLConcurrent(t *testing.T) {
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("bwrap not installed (make test installs bubblewrap)")
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import numpy, sympy").Run(); err != nil {
		t.Skip("/usr/bin/python3 with numpy and sympy not available")
	}
	line := `{"code": "import time\ntime.sleep(1.5)\nprint('done')"}` + "\n"
	var out, errb bytes.Buffer
	if code := run([]string{"exec", "--jsonl", "--workers", "2"}, strings.NewReader(line+line), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if want := strings.Repeat(`{"output":"done","kind":"ok"}`+"\n", 2); out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
	var d time.Duration
	for _, l := range strings.Split(errb.String(), "\n") {
		if rest, ok := strings.CutPrefix(l, "ran 2 lines in "); ok {
			total, startup, _ := strings.Cut(strings.TrimSuffix(rest, " of it starting the workers)"), " (")
			dt, err1 := time.ParseDuration(total)
			ds, err2 := time.ParseDuration(startup)
			if err1 == nil && err2 == nil {
				d = dt - ds
			}
		}
	}
	if d <= 0 || d >= 3*time.Second {
		t.Errorf("two 1.5 s sleeps took %v (stderr %q): they did not run at once", d, errb.String())
	}
}
