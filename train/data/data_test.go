package data

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadJSONL(t *testing.T) {
	text := `{"problem": "What is 2+2?", "answer": "4"}

{"question": "Area?", "solution": "\\boxed{12}", "id": 7}
{"prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Sum 1..10?"}], "reward_model": {"ground_truth": 55}}
{"problem": "Pi?", "answer": 3.14, "subject": "Geometry"}
`
	p := writeFile(t, "a.jsonl", text)
	ex, err := Load(p, Fields{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Example{
		{Problem: "What is 2+2?", Answer: "4"},
		{Problem: "Area?", Answer: `\boxed{12}`},
		{Problem: "Sum 1..10?", Answer: "55", Messages: []Message{{"system", "be brief"}, {"user", "Sum 1..10?"}}},
		{Problem: "Pi?", Answer: "3.14", Subject: "Geometry"},
	}
	if len(ex) != len(want) {
		t.Fatalf("%d examples, want %d", len(ex), len(want))
	}
	for i := range want {
		if ex[i].Problem != want[i].Problem || ex[i].Answer != want[i].Answer || ex[i].Subject != want[i].Subject ||
			len(ex[i].Messages) != len(want[i].Messages) {
			t.Errorf("example %d = %+v, want %+v", i, ex[i], want[i])
		}
	}
	if ex[2].Source != p+":4" {
		t.Errorf("source = %q, want %q", ex[2].Source, p+":4")
	}

	// Configured fields, dotted.
	p2 := writeFile(t, "b.jsonl", `{"q": "x", "meta": {"gold": "y"}}`)
	ex, err = ReadJSONL(p2, Fields{Problem: "q", Answer: "meta.gold"})
	if err != nil || len(ex) != 1 || ex[0].Problem != "x" || ex[0].Answer != "y" {
		t.Errorf("configured fields: %+v, %v", ex, err)
	}
}

func TestReadJSONLErrors(t *testing.T) {
	tests := []struct {
		name, text string
		f          Fields
		want       string
		noField    bool
	}{
		{"bad json", "{\"problem\": \"a\", \"answer\": \"b\"}\n{oops\n", Fields{}, ":2:", false},
		{"no answer", `{"problem": "a"}`, Fields{}, "no answer field", true},
		{"no problem", `{"answer": "a"}`, Fields{}, "no problem field", true},
		{"missing configured", `{"problem": "a", "answer": "b"}`, Fields{Problem: "text"}, `"text"`, true},
		{"object answer", `{"problem": "a", "answer": {"x": 1}}`, Fields{}, "field answer", false},
		{"no user message", `{"prompt": [{"role": "system", "content": "s"}], "answer": "1"}`, Fields{}, "no user message", false},
		{"bad message", `{"prompt": [3], "answer": "1"}`, Fields{}, "message 0", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "x.jsonl", tc.text)
			_, err := ReadJSONL(p, tc.f)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("err = %v, want one naming %s and containing %q", err, p, tc.want)
			}
			if errors.Is(err, ErrNoField) != tc.noField {
				t.Errorf("errors.Is(err, ErrNoField) = %v, want %v", !tc.noField, tc.noField)
			}
		})
	}
	if _, err := ReadJSONL(filepath.Join(t.TempDir(), "none.jsonl"), Fields{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// verlRow has the layout of verl's parquet datasets.
type verlRow struct {
	DataSource  string    `parquet:"data_source"`
	Prompt      []Message `parquet:"prompt,list"`
	Ability     string    `parquet:"ability"`
	RewardModel struct {
		GroundTruth string `parquet:"ground_truth"`
		Style       string `parquet:"style"`
	} `parquet:"reward_model"`
	ExtraInfo struct {
		Index int64  `parquet:"index"`
		Split string `parquet:"split"`
	} `parquet:"extra_info"`
}

func TestReadParquet(t *testing.T) {
	var rows []verlRow
	for i, q := range []struct{ p, a string }{{"What is 6*7?", "42"}, {"Solve x+1=3.", "2"}, {"Largest prime below 20?", "19"}} {
		var r verlRow
		r.DataSource = "toy"
		r.Prompt = []Message{{"system", "sys"}, {"user", q.p}}
		if i == 2 {
			r.Prompt = r.Prompt[1:] // no system message
		}
		r.Ability = "math"
		r.RewardModel.GroundTruth = q.a
		r.RewardModel.Style = "rule"
		r.ExtraInfo.Index = int64(i)
		rows = append(rows, r)
	}
	p := filepath.Join(t.TempDir(), "train.parquet")
	if err := parquet.WriteFile(p, rows); err != nil {
		t.Fatal(err)
	}
	ex, err := Load(p, Fields{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ex) != 3 {
		t.Fatalf("%d examples, want 3", len(ex))
	}
	for i, r := range rows {
		if ex[i].Problem != r.Prompt[len(r.Prompt)-1].Content || ex[i].Answer != r.RewardModel.GroundTruth {
			t.Errorf("row %d: %+v", i, ex[i])
		}
		if len(ex[i].Messages) != len(r.Prompt) || ex[i].Messages[0] != r.Prompt[0] {
			t.Errorf("row %d messages %+v, want %+v", i, ex[i].Messages, r.Prompt)
		}
	}
	// Other columns by configured name, an integer column as the answer.
	ex, err = ReadParquet(p, Fields{Problem: "data_source", Answer: "extra_info.index"})
	if err != nil || ex[2].Problem != "toy" || ex[2].Answer != "2" {
		t.Errorf("configured columns: %+v, %v", ex, err)
	}
	if _, err := ReadParquet(p, Fields{Answer: "reward_model.score"}); !errors.Is(err, ErrNoField) || !strings.Contains(err.Error(), "row 0") {
		t.Errorf("missing column: err = %v", err)
	}
	bad := writeFile(t, "bad.parquet", "PAR1 this is not parquet")
	if _, err := Load(bad, Fields{}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("corrupt parquet: err = %v", err)
	}
}

func TestSampler(t *testing.T) {
	const n = 7
	s := NewSampler(n, 42, true)
	var all []int
	for i := 0; i < 5; i++ {
		all = append(all, s.Next(3)...) // 15 indices: two whole epochs and one more
	}
	for e := 0; e < 2; e++ {
		seen := map[int]bool{}
		for _, x := range all[e*n : (e+1)*n] {
			seen[x] = true
		}
		if len(seen) != n {
			t.Errorf("epoch %d is not a permutation: %v", e, all[e*n:(e+1)*n])
		}
	}
	if fmtInts(all[:n]) == fmtInts(all[n:2*n]) {
		t.Errorf("two epochs in the same order %v", all[:n])
	}
	if c := s.Cursor(); c != (Cursor{2, 1}) {
		t.Errorf("cursor = %+v, want {2 1}", c)
	}
	// Restoring a cursor continues exactly.
	a := NewSampler(n, 42, true)
	a.Next(9)
	c := a.Cursor()
	want := a.Next(10)
	b := NewSampler(n, 42, true)
	if err := b.Seek(c); err != nil {
		t.Fatal(err)
	}
	if got := b.Next(10); fmtInts(got) != fmtInts(want) {
		t.Errorf("after Seek(%+v): %v, want %v", c, got, want)
	}
	// Same seed, same order; another seed, another order; no shuffle, identity.
	if fmtInts(NewSampler(50, 1, true).Next(50)) == fmtInts(NewSampler(50, 2, true).Next(50)) {
		t.Error("seeds 1 and 2 give the same order")
	}
	if got := NewSampler(4, 1, false).Next(6); fmtInts(got) != "0,1,2,3,0,1" {
		t.Errorf("unshuffled order %v", got)
	}
	if err := b.Seek(Cursor{0, n + 1}); err == nil {
		t.Error("out-of-range cursor accepted")
	}
}

func fmtInts(v []int) string {
	return strings.Trim(strings.Join(strings.Fields(fmt.Sprint(v)), ","), "[]")
}
