package metrics

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriterRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "metrics.jsonl")
	w, err := Create(path, -1)
	if err != nil {
		t.Fatal(err)
	}
	acc := 0.75
	for s := 1; s <= 3; s++ {
		st := Step{Step: s, RewardMean: float64(s) / 10, ResponseLenMax: 100 * s, LR: 1e-6}
		if s == 2 {
			st.Entropy = math.NaN() // written as null
			st.EvalAccuracy = &acc
		}
		if err := w.Write(st); err != nil {
			t.Fatal(err)
		}
		// Each line is on disk once Write returns.
		b, _ := os.ReadFile(path)
		if n := strings.Count(string(b), "\n"); n != s {
			t.Fatalf("after %d writes the file has %d lines", s, n)
		}
	}
	if err := w.Write(map[string]float64{"step": 4, "reward_mean": math.Inf(1), "accuracy": 0.5}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 {
		t.Fatalf("%d records, want 4", len(recs))
	}
	if recs[1]["reward_mean"] != 0.2 || recs[2]["response_len_max"] != 300 || recs[0]["lr"] != 1e-6 {
		t.Errorf("records %v", recs)
	}
	if _, ok := recs[1]["entropy"]; ok {
		t.Errorf("NaN entropy read back as %v, want absent (null)", recs[1]["entropy"])
	}
	if recs[1]["eval_accuracy"] != 0.75 {
		t.Errorf("eval_accuracy = %v", recs[1]["eval_accuracy"])
	}
	if _, ok := recs[0]["eval_accuracy"]; ok {
		t.Error("unset eval_accuracy was written")
	}
	if _, ok := recs[3]["reward_mean"]; ok || recs[3]["accuracy"] != 0.5 {
		t.Errorf("map record %v", recs[3])
	}

	// Resuming at step 2 drops steps 3 and 4 and appends after step 2.
	w, err = Create(path, 2)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(Step{Step: 3, RewardMean: 9})
	w.Close()
	recs, _ = ReadFile(path)
	if len(recs) != 3 || recs[2]["reward_mean"] != 9 || recs[1]["step"] != 2 {
		t.Errorf("after resume: %v", recs)
	}
}

func TestReadErrors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.jsonl")
	os.WriteFile(p, []byte("{\"step\": 1}\nnot json\n"), 0o644)
	if _, err := ReadFile(p); err == nil || !strings.Contains(err.Error(), p+":2") {
		t.Errorf("err = %v, want one naming %s:2", err, p)
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestProgressPlain(t *testing.T) {
	var b bytes.Buffer
	clk := &fakeClock{time.Unix(0, 0)}
	p := NewProgress(&b, 10)
	if p.Terminal {
		t.Fatal("a buffer is not a terminal")
	}
	p.Now = clk.now
	p.Start(0)
	for s := 1; s <= 10; s++ {
		clk.t = clk.t.Add(10 * time.Second)
		p.Update(s, "reward 0.5")
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	// Step 1 prints, then every 30 s (steps 4, 7), and the last step.
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "step 1/10") || !strings.HasPrefix(lines[1], "step 4/10") || !strings.HasPrefix(lines[3], "step 10/10 (100%)") {
		t.Errorf("plain progress lines:\n%s", b.String())
	}
	if !strings.Contains(lines[1], "elapsed 0:40 eta 1:00") || !strings.Contains(lines[0], "reward 0.5") {
		t.Errorf("times or summary wrong: %q", lines[1])
	}
	if strings.Contains(b.String(), "\r") {
		t.Error("carriage return in plain output")
	}
}

func TestProgressTerminal(t *testing.T) {
	var b bytes.Buffer
	clk := &fakeClock{time.Unix(0, 0)}
	p := &Progress{W: &b, Total: 4, Terminal: true, Width: 8, Now: clk.now}
	p.Start(0)
	for s := 1; s <= 4; s++ {
		clk.t = clk.t.Add(time.Second)
		p.Update(s, "acc 0.9")
		if s == 2 {
			p.Log("checkpoint saved")
		}
	}
	p.Done()
	out := b.String()
	for _, want := range []string{"\r\x1b[K[===>    ] 2/4  50%", "\r\x1b[Kcheckpoint saved\n", "[========] 4/4 100% 0:04<0:00 acc 0.9\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, out)
		}
	}
}

func rising(n int, slope float64) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{"step": float64(i + 1), "reward_mean": slope * float64(i), "entropy": 1}
	}
	return recs
}

func decode(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a valid PNG: %v", err)
	}
	return img
}

// curveSlope returns the mean height (upwards) of curve-colored pixels in the right third of
// their horizontal extent minus that in the left third.
func curveSlope(img image.Image) (float64, int) {
	var xs, ys []int
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if absd(r>>8, uint32(CurveColor.R)) < 25 && absd(g>>8, uint32(CurveColor.G)) < 25 && absd(bl>>8, uint32(CurveColor.B)) < 25 {
				xs, ys = append(xs, x), append(ys, y)
			}
		}
	}
	if len(xs) == 0 {
		return 0, 0
	}
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	third := float64(hi-lo) / 3
	var l, r, nl, nr float64
	for i, x := range xs {
		switch {
		case float64(x-lo) < third:
			l += float64(ys[i])
			nl++
		case float64(hi-x) < third:
			r += float64(ys[i])
			nr++
		}
	}
	return l/nl - r/nr, len(xs)
}

func absd(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

func TestPlot(t *testing.T) {
	var b bytes.Buffer
	if err := Plot(&b, rising(50, 1), DefaultCurves, 3, 900, 600); err != nil {
		t.Fatal(err)
	}
	img := decode(t, b.Bytes())
	if got := img.Bounds().Size(); got != (image.Point{900, 600}) {
		t.Errorf("image size %v, want 900x600", got)
	}

	// One panel: the curve follows the data up, or down.
	for _, tc := range []struct {
		slope float64
		up    bool
	}{{1, true}, {-1, false}} {
		b.Reset()
		if err := Plot(&b, rising(40, tc.slope), []string{"reward_mean"}, 1, 400, 300); err != nil {
			t.Fatal(err)
		}
		d, n := curveSlope(decode(t, b.Bytes()))
		if n < 100 {
			t.Fatalf("slope %v: only %d curve pixels: blank plot", tc.slope, n)
		}
		if (d > 50) != tc.up || math.Abs(d) < 50 {
			t.Errorf("slope %v: curve rises %.1f px from left to right third", tc.slope, d)
		}
	}

	for _, tc := range []struct {
		name string
		recs []Record
		keys []string
	}{
		{"no records", nil, DefaultCurves},
		{"no such keys", rising(5, 1), []string{"nope"}},
		{"all NaN", []Record{{"step": 1, "x": math.NaN()}}, []string{"x"}},
	} {
		if err := Plot(&b, tc.recs, tc.keys, 3, 300, 300); !errors.Is(err, ErrNoData) {
			t.Errorf("%s: err = %v, want ErrNoData", tc.name, err)
		}
	}
	if err := Plot(&b, rising(5, 1), DefaultCurves, 3, 10, 10); err == nil {
		t.Error("10x10 image accepted")
	}
}
