package reward

import (
	"os"
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
