package reward

import (
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDebugPairs(t *testing.T) {
	data := os.Getenv("PAIRS")
	if data == "" {
		t.Skip()
	}
	for _, l := range strings.Split(data, "\n") {
		f := strings.Split(l, " ||| ")
		if len(f) != 2 {
			continue
		}
		pn, gn := normalize(f[0]), normalize(f[1])
		p, e1 := parseAnswer(pn)
		g, e2 := parseAnswer(gn)
		t.Logf("%q vs %q => %v | %q %v %v | %q %v %v", f[0], f[1], Equivalent(f[0], f[1]), pn, treeString(p), e1, gn, treeString(g), e2)
	}
}

func TestDebugTime(t *testing.T) {
	data := os.Getenv("TPAIRS")
	if data == "" {
		t.Skip()
	}
	for _, l := range strings.Split(data, "\n") {
		f := strings.Split(l, " ||| ")
		if len(f) != 2 {
			continue
		}
		st := time.Now()
		r := Equivalent(f[0], f[1])
		t.Logf("%v %v %q %q", time.Since(st), r, f[0], f[1])
	}
}

func TestDebugCorpus(t *testing.T) {
	dir := os.Getenv("CORPUS")
	if dir == "" {
		t.Skip()
	}
	ents, _ := os.ReadDir(dir)
	type r struct {
		d    time.Duration
		a, b string
	}
	var worst []r
	for _, e := range ents {
		data, _ := os.ReadFile(dir + "/" + e.Name())
		lines := strings.Split(string(data), "\n")
		if len(lines) < 3 {
			continue
		}
		a, _ := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
		b, _ := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[2], "string("), ")"))
		st := time.Now()
		compare(a, b, &budget{deadline: time.Now().Add(200 * time.Millisecond)})
		Extract(a)
		worst = append(worst, r{time.Since(st), a, b})
	}
	sort.Slice(worst, func(i, j int) bool { return worst[i].d > worst[j].d })
	for _, w := range worst[:min(8, len(worst))] {
		t.Logf("%v %q %q", w.d, w.a, w.b)
	}
}

func TestDebugWrongTiming(t *testing.T) {
	if os.Getenv("WT") == "" {
		t.Skip()
	}
	answers := loadBenchAnswers(t)
	type r struct {
		d    time.Duration
		a, b string
	}
	var all []r
	var tot time.Duration
	for i, a := range answers {
		next := unwrap(answers[(i+1)%len(answers)].gold)
		st := time.Now()
		for range 20 {
			Equivalent(next, a.gold)
		}
		d := time.Since(st) / 20
		tot += d
		all = append(all, r{d, next, a.gold})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].d > all[j].d })
	t.Logf("mean %v", tot/time.Duration(len(all)))
	for _, w := range all[:15] {
		t.Logf("%v %q %q", w.d, w.a, w.b)
	}
}

func TestDebugRewrittenTiming(t *testing.T) {
	if os.Getenv("RT") == "" {
		t.Skip()
	}
	answers := loadBenchAnswers(t)
	type r struct {
		d    time.Duration
		a, b string
	}
	var all []r
	var tot time.Duration
	for _, a := range answers {
		for _, alt := range rewrites(unwrap(a.gold))[2:] {
			best := time.Hour
			for range 5 {
				st := time.Now()
				Equivalent(alt, a.gold)
				best = min(best, time.Since(st))
			}
			tot += best
			all = append(all, r{best, alt, a.gold})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].d > all[j].d })
	t.Logf("n %d mean-of-min %v", len(all), tot/time.Duration(len(all)))
	for _, w := range all[:25] {
		t.Logf("%v %.60q %.60q", w.d, w.a, w.b)
	}
}
