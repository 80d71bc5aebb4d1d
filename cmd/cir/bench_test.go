package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchGEMM: cir bench gemm reports every linear layer of the config, the FMA peak of the
// same threads, and the step's share of that peak consistently; the kernels are named on
// stderr at start-up.
func TestBenchGEMM(t *testing.T) {
	out, errOut, code := runCLI(t, "", "bench", "gemm", "--config", "../../configs/toy-model.json", "--tokens", "32", "--threads", "1", "--device", "cpu")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "GEMM: OpenBLAS") {
		t.Errorf("stderr does not name the GEMM kernels:\n%s", errOut)
	}
	var res struct {
		Peak   float64 `json:"peak_gflops"`
		Step   float64 `json:"step_gflops"`
		StepPc float64 `json:"step_pct_of_peak"`
		Layers []struct {
			Name  string  `json:"name"`
			Fwd   float64 `json:"forward_gflops"`
			FwdPc float64 `json:"forward_pct_of_peak"`
		} `json:"layers"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	var names []string
	for _, l := range res.Layers {
		names = append(names, l.Name)
		if l.Fwd <= 0 || math.Abs(l.FwdPc-100*l.Fwd/res.Peak) > 1e-6 {
			t.Errorf("%s: %g GFLOP/s, %g%% of a %g GFLOP/s peak", l.Name, l.Fwd, l.FwdPc, res.Peak)
		}
	}
	if strings.Join(names, ",") != "qkv,o,gate_up,down,lm_head" {
		t.Errorf("layers %v", names)
	}
	if res.Peak <= 0 || math.Abs(res.StepPc-100*res.Step/res.Peak) > 1e-6 {
		t.Errorf("step %g GFLOP/s, %g%% of peak %g", res.Step, res.StepPc, res.Peak)
	}
}

// TestBenchAll: a run of only the GPU section on a binary without CUDA writes a report whose
// machine description names the CPU's GEMM kernels and whose GPU row says why it was skipped;
// bad arguments are errors naming them.
func TestBenchAll(t *testing.T) {
	dir := t.TempDir()
	md, js := filepath.Join(dir, "r.md"), filepath.Join(dir, "r.json")
	out, errOut, code := runCLI(t, "", "bench", "all", "--only", "gpu", "--src", "../..", "--md", md, "--json", js)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != out {
		t.Errorf("--md file differs from stdout")
	}
	for _, want := range []string{"- GEMM: OpenBLAS", "| what | cir | reference (same run) | ratio | command |", "| GPU benchmarks | skipped: "} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	var rep struct {
		Machine struct {
			GEMM  string `json:"gemm"`
			Cores int    `json:"cores"`
		} `json:"machine"`
		Rows []struct {
			Name    string `json:"name"`
			Skipped string `json:"skipped"`
		} `json:"rows"`
	}
	if b, err := os.ReadFile(js); err != nil || json.Unmarshal(b, &rep) != nil {
		t.Fatalf("JSON report: %v", err)
	}
	if !strings.HasPrefix(rep.Machine.GEMM, "GEMM: ") || rep.Machine.Cores < 1 || len(rep.Rows) != 1 || rep.Rows[0].Name != "gpu" {
		t.Errorf("JSON report %+v", rep)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench"}, "which benchmark"},
		{[]string{"bench", "nope"}, `unknown benchmark "nope"`},
		{[]string{"bench", "all", "--only", "gemm,nope"}, `unknown section "nope"`},
		{[]string{"bench", "all", "--src", dir}, "not inside a checkout of cir"},
		{[]string{"bench", "gemm"}, "--config is required"},
		{[]string{"bench", "gemm", "--config", "../../configs/toy-model.json", "--tokens", "0"}, "--tokens must be ≥ 1"},
	} {
		_, errOut, code := runCLI(t, "", c.args...)
		if code != 1 || !strings.Contains(errOut, c.want) || !strings.HasPrefix(errOut, "Error: ") {
			t.Errorf("cir %s: exit %d, stderr %q; want exit 1 and %q", strings.Join(c.args, " "), code, errOut, c.want)
		}
	}
}
