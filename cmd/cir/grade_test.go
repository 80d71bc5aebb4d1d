package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestGrade(t *testing.T) {
	in := strings.Join([]string{
		`{"pred": "So the answer is $\\boxed{\\frac{1}{2}}$.", "gold": "0.5"}`,
		`{"pred": "\\boxed{41}", "gold": "42"}`,
		``,
		`{"pred": "I give up.", "gold": "42"}`,
		`{"pred": "x = 3", "gold": "\\boxed{3}"}`,
	}, "\n")
	var out, errb bytes.Buffer
	if code := run([]string{"grade"}, strings.NewReader(in), &out, &errb); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	want := []gradeOut{{true, `\frac{1}{2}`, 1}, {false, "41", -1}, {false, "", -1}, {true, "x = 3", 1}}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines %q, want %d", len(lines), out.String(), len(want))
	}
	for i, l := range lines {
		var got gradeOut
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			t.Fatalf("line %d %q: %v", i+1, l, err)
		}
		if got != want[i] {
			t.Errorf("line %d = %+v, want %+v", i+1, got, want[i])
		}
	}
}

func TestGradeRewards(t *testing.T) {
	var out, errb bytes.Buffer
	in := `{"pred": "\\boxed{2}", "gold": "2"}` + "\n" + `{"pred": "\\boxed{3}", "gold": "2"}`
	if code := run([]string{"grade", "--correct", "1", "--wrong", "0"}, strings.NewReader(in), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if got := out.String(); !strings.Contains(got, `"reward":1`) || !strings.Contains(got, `"reward":0`) {
		t.Errorf("rewards not applied: %q", got)
	}
}

// TestGradeMode: --mode boxed takes only the last box (the training reward); the default,
// lenient, also reads a "Final Answer" sentence. The gold is a worked solution either way.
func TestGradeMode(t *testing.T) {
	in := strings.Join([]string{
		`{"pred": "Final Answer: The final answer is $42$. I hope it is correct.", "gold": "So the answer is $\\boxed{42}$."}`,
		`{"pred": "We get \\boxed{42}.", "gold": "So the answer is $\\boxed{42}$."}`,
		`{"pred": "The total is 1 000 apples", "gold": "1000"}`,
	}, "\n")
	for _, c := range []struct {
		args []string
		want []gradeOut
	}{
		{nil, []gradeOut{{true, "42", 1}, {true, "42", 1}, {true, "1 000", 1}}},
		{[]string{"--mode", "lenient"}, []gradeOut{{true, "42", 1}, {true, "42", 1}, {true, "1 000", 1}}},
		{[]string{"--mode", "boxed"}, []gradeOut{{false, "", -1}, {true, "42", 1}, {false, "", -1}}},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"grade"}, c.args...), strings.NewReader(in), &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", c.args, code, errb.String())
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != len(c.want) {
			t.Fatalf("%v: got %d lines %q, want %d", c.args, len(lines), out.String(), len(c.want))
		}
		for i, l := range lines {
			var got gradeOut
			if err := json.Unmarshal([]byte(l), &got); err != nil {
				t.Fatalf("%v: line %d %q: %v", c.args, i+1, l, err)
			}
			if got != c.want[i] {
				t.Errorf("%v: line %d = %+v, want %+v", c.args, i+1, got, c.want[i])
			}
		}
	}
}

func TestGradeErrors(t *testing.T) {
	cases := []struct {
		name, in string
		args     []string
		want     string
	}{
		{"malformed JSON", `{"pred": "1", "gold": "1"}` + "\n" + `{"pred": "1", "gold": `, nil, "Error: line 2: invalid JSON"},
		{"not an object", `[1, 2]`, nil, "Error: line 1: invalid JSON"},
		{"missing gold", `{"pred": "1"}`, nil, `Error: line 1: missing string field "gold"`},
		{"missing pred", "\n\n" + `{"gold": "1"}`, nil, `Error: line 3: missing string field "pred"`},
		{"number for a string", `{"pred": 1, "gold": "1"}`, nil, "Error: line 1: invalid JSON"},
		{"bad flag", ``, []string{"--nope"}, "Error: grade:"},
		{"bad timeout", ``, []string{"--timeout", "0s"}, "Error: grade: --timeout must be positive"},
		{"bad mode", ``, []string{"--mode", "strict"}, `Error: grade: --mode "strict" is not a mode (use --mode boxed or --mode lenient)`},
		{"argument", ``, []string{"file.jsonl"}, `Error: grade: unexpected argument "file.jsonl"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append([]string{"grade"}, c.args...), strings.NewReader(c.in), &out, &errb)
			if code != 1 || !strings.Contains(errb.String(), c.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, errb.String(), c.want)
			}
		})
	}
}
