package reward

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// mvCase is one verdict of Math-Verify's own test suite (testdata/mathverify.jsonl, see
// testdata/README.md): verify(parse(gold), parse(pred)) must be want.
type mvCase struct {
	File, Test, Gold, Pred, Options string
	Want                            bool
}

func loadMathVerify(t testing.TB) []mvCase {
	t.Helper()
	f, err := os.Open("testdata/mathverify.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []mvCase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for n := 1; sc.Scan(); n++ {
		var c mvCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("testdata/mathverify.jsonl line %d: %v", n, err)
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cases
}

// TestMathVerifyAgreement scores every case of Math-Verify's test suite in Lenient mode (the
// gold extracted like the prediction), prints the agreement with Math-Verify's verdicts per
// test and per file, and fails below 95% overall. Each disagreement is listed; the deliberate
// ones are explained in DIFFERENCES.md.
func TestMathVerifyAgreement(t *testing.T) {
	cases := loadMathVerify(t)
	if len(cases) < 300 {
		t.Fatalf("%d cases in testdata/mathverify.jsonl, want the whole suite (357)", len(cases))
	}
	ck := &Checker{Correct: 1, Wrong: -1, Mode: Lenient}
	type tally struct{ agree, total int }
	byTest, byFile := map[string]*tally{}, map[string]*tally{}
	var all tally
	var misses []string
	for _, c := range cases {
		r := ck.Score(c.Pred, c.Gold)
		ok := r.Correct == c.Want
		for _, k := range []string{c.File + ":" + c.Test, c.File} {
			m := byTest
			if k == c.File {
				m = byFile
			}
			if m[k] == nil {
				m[k] = &tally{}
			}
			m[k].total++
			if ok {
				m[k].agree++
			}
		}
		all.total++
		if ok {
			all.agree++
		} else {
			p := c.Pred
			if len(p) > 160 {
				p = "…" + p[len(p)-160:]
			}
			g := c.Gold
			if len(g) > 100 {
				g = "…" + g[len(g)-100:]
			}
			misses = append(misses, c.File+":"+c.Test+": gold "+quote(g)+" pred "+quote(p)+
				" extracted "+quote(r.Answer)+" want "+boolWord(c.Want)+" ("+c.Options+")")
		}
	}
	pct := func(x tally) float64 { return 100 * float64(x.agree) / float64(x.total) }
	for _, m := range []map[string]*tally{byTest, byFile} {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			t.Logf("%6.1f%%  %3d/%-3d  %s", pct(*m[k]), m[k].agree, m[k].total, k)
		}
	}
	for _, m := range misses {
		t.Logf("differs: %s", m)
	}
	t.Logf("agreement with Math-Verify: %.1f%% (%d of %d cases)", pct(all), all.agree, all.total)
	if pct(all) < 95 {
		t.Errorf("agreement %.1f%%, want ≥ 95%%", pct(all))
	}
}

func quote(s string) string { b, _ := json.Marshal(s); return strings.ReplaceAll(string(b), `\\`, `\`) }

func boolWord(b bool) string {
	if b {
		return "equal"
	}
	return "different"
}
