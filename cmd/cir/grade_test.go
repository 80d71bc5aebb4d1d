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
