package main

import (
	"bytes"
	"os/exec"
	"reflect"
	"strings"
	"testing"
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
