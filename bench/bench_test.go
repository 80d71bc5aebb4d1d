package bench

import (
	"math"
	"strings"
	"testing"
	"time"

	"cir/engine/cpu"
	"cir/model"
)

const sampleOutput = `goos: linux
goarch: amd64
pkg: cir/train/sandbox
cpu: Some CPU
BenchmarkTrivial
BenchmarkTrivial/pool/W=1
BenchmarkTrivial/pool/W=1-2         	     100	         0 ns/op	         0.5800 p50_ms	         1.100 p99_ms	      1700 execs/s
BenchmarkTrivial/pool/W=1-2         	     100	         0 ns/op	         0.6000 p50_ms	         1.200 p99_ms	      1650 execs/s
BenchmarkTrivial/fresh/W=2
BenchmarkTrivial/fresh/W=2-2        	     100	         0 ns/op	        45.00 p50_ms	        60.00 p99_ms	        43.50 execs/s
BenchmarkTypical
    bench_test.go:52: sandbox unavailable: no bwrap
--- SKIP: BenchmarkTypical
BenchmarkEncode/impl=transformers.js
    bench_test.go:70: node hf.cjs bench: exit status 1
--- FAIL: BenchmarkEncode/impl=transformers.js
PASS
`

func TestParseBench(t *testing.T) {
	r := ParseBench([]byte(sampleOutput))
	if got := strings.Join(r.Names, " "); got != "BenchmarkTrivial/pool/W=1 BenchmarkTrivial/fresh/W=2" {
		t.Errorf("Names = %q, want the benchmarks with results in order", got)
	}
	if got := r.Values("BenchmarkTrivial/pool/W=1", "execs/s"); len(got) != 2 || got[0] != 1700 || got[1] != 1650 {
		t.Errorf("pool/W=1 execs/s = %v, want [1700 1650] (two runs, -2 suffix dropped)", got)
	}
	if got := r.Values("BenchmarkTrivial/fresh/W=2", "p50_ms"); len(got) != 1 || got[0] != 45 {
		t.Errorf("fresh p50_ms = %v, want [45]", got)
	}
	for _, c := range []struct{ name, want string }{
		{"BenchmarkTypical", "skipped: sandbox unavailable: no bwrap"},
		{"BenchmarkTypical/sub", "skipped: sandbox unavailable: no bwrap"},
		{"BenchmarkEncode/impl=transformers.js", "failed: node hf.cjs bench: exit status 1"},
		{"BenchmarkTrivial/pool/W=3", "no result for BenchmarkTrivial/pool/W=3 in the output"},
	} {
		if got := r.Why(c.name); got != c.want {
			t.Errorf("Why(%q) = %q, want %q", c.name, got, c.want)
		}
	}
}

// TestPackageRows checks the sandbox rows: the pool against a fresh process in the same run,
// and a row that names what is missing when a benchmark did not report.
func TestPackageRows(t *testing.T) {
	rows := pkgBenches["sandbox"].rows(ParseBench([]byte(sampleOutput)))
	if len(rows) != 3 {
		t.Fatalf("%d sandbox rows, want 3", len(rows))
	}
	w1, w2, typ := rows[0], rows[1], rows[2]
	if w1.Value != 1700 || w1.RefValue != 43.5 || math.Abs(w1.Ratio-1700/43.5) > 1e-9 {
		t.Errorf("W=1 row: value %g ref %g ratio %g, want 1700, 43.5, %g", w1.Value, w1.RefValue, w1.Ratio, 1700/43.5)
	}
	if w1.Text != "1700/s, p50 0.58 ms, p99 1.10 ms" || w1.RefText != "43.5/s, p50 45.0 ms, p99 60.0 ms" {
		t.Errorf("W=1 row text %q, reference %q", w1.Text, w1.RefText)
	}
	if !strings.Contains(w2.Err, "BenchmarkTrivial/pool/W=2") {
		t.Errorf("W=2 row error %q, want it to name the missing benchmark", w2.Err)
	}
	if typ.Err != "skipped: sandbox unavailable: no bwrap" {
		t.Errorf("typical row error %q", typ.Err)
	}
}

func TestMarkdown(t *testing.T) {
	rep := &Report{Machine: Machine{CPU: "X", SIMD: []string{"avx2"}, Cores: 2, Threads: 2, GEMM: "GEMM: k", GPU: "none", Load: []string{"1.00 1.00 1.00"}}}
	rep.Rows = []Row{
		{What: "train | step", Value: 1234.5, Unit: "tokens/s", Ref: "PyTorch fp32", RefValue: 400, Ratio: 3.086, Command: "cir bench train"},
		{What: "gemm", Value: 350, Unit: "GFLOP/s", Ref: "FMA peak", RefText: "430 GFLOP/s", Ratio: 81.4, RatioFmt: "%.0f%% of peak"},
		{What: "tok", Skipped: "node not found"},
	}
	var b strings.Builder
	if err := rep.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| train \\| step | 1234 tokens/s | PyTorch fp32 400 tokens/s | 3.09× | `cir bench train` |",
		"| gemm | 350 GFLOP/s | FMA peak 430 GFLOP/s | 81% of peak |  |",
		"| tok | skipped: node not found | — | — |  |",
		"- CPU: X, family 0 model 0, 2 logical CPUs",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, b.String())
		}
	}
}

func TestLayers(t *testing.T) {
	cfg, err := model.LoadConfig("../" + BenchConfig)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][3]int{}
	for _, l := range Layers(cfg, 512) {
		got[l.Name] = [3]int{l.N, l.OC, l.C}
	}
	want := map[string][3]int{"qkv": {512, 768, 512}, "o": {512, 512, 512}, "gate_up": {512, 2816, 512},
		"down": {512, 512, 1408}, "lm_head": {512, 8192, 512}}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: N×OC×C %v, want %v", k, got[k], v)
		}
	}
}

// TestStepRate: two layers at known speeds; the step's rate is its flops over its time.
func TestStepRate(t *testing.T) {
	a := Layer{Name: "a", N: 10, C: 10, OC: 10, PerLayer: 2}               // 2000 flops forward
	h := Layer{Name: "h", N: 10, C: 10, OC: 20, PerLayer: 1, LMHead: true} // 4000 flops forward
	res := []GEMMResult{{a, 1000, 2000}, {h, 4000, 1000}}
	// a: 2 × (2000 fwd at 1000/s + 4000 bwd at 2000/s) = 2 × (2 + 2) s, 12000 flops.
	// h: 2 × 4000 fwd at 4000/s + 8000 bwd at 1000/s = 2 + 8 s, 16000 flops.
	want := (12000.0 + 16000) / (8 + 10)
	if got := StepRate(res); math.Abs(got-want) > 1e-9 {
		t.Errorf("StepRate = %g, want %g", got, want)
	}
}

// TestGEMMRows measures a small model on the CPU and checks the rows against the results.
func TestGEMMRows(t *testing.T) {
	cfg, err := model.LoadConfig("../" + ToyConfig)
	if err != nil {
		t.Fatal(err)
	}
	gemmRound, peakTime = 5*time.Millisecond, 100*time.Millisecond
	defer func() { gemmRound, peakTime = 50*time.Millisecond, 600*time.Millisecond }()
	b := cpu.New(2)
	defer b.Close()
	rows, res, peak, err := GEMMRows(b, "toy", ToyConfig, cfg, 64, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 5 || len(rows) != 6 || peak <= 0 {
		t.Fatalf("%d results, %d rows, peak %g; want 5, 6, > 0", len(res), len(rows), peak)
	}
	if r := rows[0]; math.Abs(r.Ratio-100*r.Value*1e9/peak) > 1e-6 || r.Unit != "GFLOP/s" {
		t.Errorf("step row: %.3g GFLOP/s, ratio %.3g, peak %.3g GFLOP/s: ratio is not the share of the peak", r.Value, r.Ratio, peak/1e9)
	}
	for i, r := range res {
		if r.Forward <= 0 || r.Backward <= 0 || r.Forward > 10*peak {
			t.Errorf("%s: forward %g, backward %g FLOP/s against a peak of %g", r.Name, r.Forward, r.Backward, peak)
		}
		if want := 100 * min(r.Forward, r.Backward) / peak; math.Abs(rows[i+1].Ratio-want) > 1e-6 {
			t.Errorf("%s row ratio %g, want %g", r.Name, rows[i+1].Ratio, want)
		}
	}
}
