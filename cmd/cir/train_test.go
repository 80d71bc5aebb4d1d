package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cir/engine/cpu"
	"cir/model"
	"cir/tokenizer"
	"cir/train/metrics"
)

func needSandbox(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("bwrap not installed (make test installs bubblewrap)")
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import numpy, sympy").Run(); err != nil {
		t.Skip("/usr/bin/python3 with numpy and sympy not available (make test installs them)")
	}
}

// smallToyJob is the default job (configs/toy.yaml) cut down to seconds: a short warm-up, a
// few RL steps of 2 prompts × 2 samples, 8 held-out problems.
func smallToyJob(t *testing.T, out string) []string {
	t.Helper()
	modelCfg, err := filepath.Abs(filepath.Join("..", "..", "configs", "toy-model.json"))
	if err != nil {
		t.Fatal(err)
	}
	return []string{"train", "--config", filepath.Join("..", "..", "configs", "toy.yaml"),
		"model.init=" + modelCfg, "run.out_dir=" + out, "run.threads=1",
		"sft.steps=40", "sft.warmup_steps=5", "data.toy.train=200", "data.toy.eval=8",
		"rollout.n=2", "rollout.prompts_per_step=2", "rollout.max_response=48", "run.save_every=2", "run.keep_last=2"}
}

// TestTrainEvalPlotCLI runs `cir train` on the toy job with the real sandbox, checks every file
// it promises, resumes it, evaluates the checkpoint with `cir eval` and redraws its curves with
// `cir plot`.
func TestTrainEvalPlotCLI(t *testing.T) {
	needSandbox(t)
	out := t.TempDir()
	args := smallToyJob(t, out)
	stdout, stderr, code := runCLI(t, "", append(args, "run.steps=3")...)
	if code != 0 {
		t.Fatalf("cir train: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var sum struct {
		AccBeforeRL       *float64 `json:"acc_before_rl"`
		HeldoutAccTools   *float64 `json:"heldout_acc_tools"`
		HeldoutAccNoTools *float64 `json:"heldout_acc_no_tools"`
		RLSteps           int      `json:"rl_steps"`
		Minutes           float64  `json:"minutes"`
		Checkpoint        string   `json:"checkpoint"`
		Plot              string   `json:"plot"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("last stdout line %q: %v", lines[len(lines)-1], err)
	}
	for name, v := range map[string]*float64{"acc_before_rl": sum.AccBeforeRL, "heldout_acc_tools": sum.HeldoutAccTools, "heldout_acc_no_tools": sum.HeldoutAccNoTools} {
		if v == nil || *v < 0 || *v > 1 {
			t.Errorf("summary %s = %v, want an accuracy in [0, 1]", name, v)
		}
	}
	if sum.RLSteps != 3 || sum.Minutes <= 0 || sum.Plot != filepath.Join(out, "curves.png") {
		t.Errorf("summary %+v", sum)
	}

	// metrics.jsonl: a record per step with the fields the issue lists.
	recs, err := metrics.ReadFile(filepath.Join(out, "metrics.jsonl"))
	if err != nil || len(recs) != 3 {
		t.Fatalf("metrics.jsonl: %d records, %v; want 3", len(recs), err)
	}
	for i, r := range recs {
		for _, k := range []string{"step", "reward_mean", "reward_std", "accuracy", "response_len_mean", "response_len_max",
			"clipped_share", "tool_calls", "tool_success", "masked_share", "entropy", "policy_loss", "clip_frac_low",
			"clip_frac_high", "grad_norm", "lr", "tokens_per_s", "rollout_s", "sandbox_s", "reward_s", "update_s"} {
			if _, ok := r[k]; !ok {
				t.Errorf("metrics record %d has no %s", i, k)
			}
		}
		if r["step"] != float64(i+1) {
			t.Errorf("metrics record %d is step %v", i, r["step"])
		}
		if r["tool_calls"] > 0 && r["sandbox_s"] <= 0 {
			t.Errorf("step %d: %v calls in %v s of sandbox", i+1, r["tool_calls"], r["sandbox_s"])
		}
	}
	checkPNG(t, filepath.Join(out, "curves.png"))
	var ev map[string]json.RawMessage
	if b, err := os.ReadFile(filepath.Join(out, "eval.json")); err != nil || json.Unmarshal(b, &ev) != nil {
		t.Errorf("eval.json: %v %s", err, b)
	} else if len(ev) != 3 {
		t.Errorf("eval.json holds %d evaluations, want before_rl, heldout_tools, heldout_no_tools", len(ev))
	}

	// The checkpoint is a model and tokenizer in HF layout; with save_every 2 and keep_last 2
	// the step-2 and step-3 checkpoints remain.
	if sum.Checkpoint != filepath.Join(out, "checkpoints", "step-000003") {
		t.Errorf("checkpoint %s", sum.Checkpoint)
	}
	b := cpu.New(1)
	defer b.Close()
	m, err := model.Load(sum.Checkpoint, b)
	if err != nil {
		t.Fatalf("load the checkpoint: %v", err)
	}
	m.Close()
	if _, err := tokenizer.Load(sum.Checkpoint); err != nil {
		t.Errorf("checkpoint tokenizer: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(out, "checkpoints"))
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "step-") {
			names = append(names, e.Name())
		}
	}
	if strings.Join(names, ",") != "step-000002,step-000003" {
		t.Errorf("checkpoints %v, want the last two", names)
	}

	// --resume continues at step 4 and appends to metrics.jsonl.
	stdout, stderr, code = runCLI(t, "", append(args, "run.steps=5", "--resume")...)
	if code != 0 {
		t.Fatalf("cir train --resume: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "at step 3") || strings.Contains(stderr, "warm-up loss") {
		t.Errorf("resume did not start from step 3 without a warm-up:\n%s", stderr)
	}
	if recs, err = metrics.ReadFile(filepath.Join(out, "metrics.jsonl")); err != nil || len(recs) != 5 || recs[4]["step"] != 5 {
		t.Errorf("after resume: %d metrics records, %v", len(recs), err)
	}
	if !strings.Contains(stdout, `"rl_steps":5`) || !strings.Contains(stdout, `"acc_before_rl":`+fmt.Sprint(*sum.AccBeforeRL)) {
		t.Errorf("resumed summary %s, want rl_steps 5 and the accuracy before RL of the first run", stdout)
	}

	// cir eval on a small benchmark file with subjects, with and without tools.
	bench := filepath.Join(out, "bench.jsonl")
	os.WriteFile(bench, []byte(`{"problem": "Compute 123*456.", "answer": "56088", "subject": "mul"}
{"problem": "Compute 12^345 mod 678.", "solution": "\\boxed{`+fmt.Sprint(powmod(12, 345, 678))+`}", "subject": "powmod"}
{"problem": "Compute 999*111.", "answer": "110889", "subject": "mul"}
`), 0o644)
	ckpt := filepath.Join(out, "checkpoints", "step-000005")
	stdout, stderr, code = runCLI(t, "", "eval", "--model", ckpt, "--bench", bench, "--n", "3", "--temperature", "0.7",
		"--template", "toy", "--max-response", "48", "--max-calls", "1", "--device", "cpu", "--threads", "1")
	if code != 0 {
		t.Fatalf("cir eval: exit %d: %s", code, stderr)
	}
	type evalRun struct {
		Problems  int                `json:"problems"`
		K         int                `json:"k"`
		AvgAtK    float64            `json:"avg_at_k"`
		PassAtK   float64            `json:"pass_at_k"`
		MeanCalls float64            `json:"mean_calls"`
		MeanLen   float64            `json:"mean_len"`
		ByKind    map[string]float64 `json:"by_kind"`
		PassAt    map[string]float64 `json:"pass_at"`
	}
	var res struct {
		Problems int     `json:"problems"`
		Tools    evalRun `json:"tools"`
		NoTools  evalRun `json:"no_tools"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("cir eval output %q: %v", stdout, err)
	}
	for name, r := range map[string]evalRun{"tools": res.Tools, "no_tools": res.NoTools} {
		if r.Problems != 3 || r.K != 3 || r.PassAtK < r.AvgAtK || r.MeanLen <= 0 || len(r.ByKind) != 2 {
			t.Errorf("eval %s: %+v", name, r)
		}
		// Unbiased pass@1 is the mean accuracy; pass@2 lies between it and pass@3.
		if p1, p2, p3 := r.PassAt["1"], r.PassAt["2"], r.PassAt["3"]; len(r.PassAt) != 3 || math.Abs(p1-r.AvgAtK) > 1e-12 ||
			p3 != r.PassAtK || p2 < p1 || p2 > p3 {
			t.Errorf("eval %s: pass@ %v, avg@3 %v, pass@3 %v", name, r.PassAt, r.AvgAtK, r.PassAtK)
		}
		if _, ok := r.ByKind["powmod"]; !ok {
			t.Errorf("eval %s: no per-subject accuracy for powmod: %v", name, r.ByKind)
		}
	}
	if res.NoTools.MeanCalls != 0 || res.Tools.MeanCalls > 1 {
		t.Errorf("mean calls %v with tools (budget 1), %v without", res.Tools.MeanCalls, res.NoTools.MeanCalls)
	}

	// cir plot redraws the curves; a chosen metric alone.
	png := filepath.Join(out, "re.png")
	if _, stderr, code := runCLI(t, "", "plot", filepath.Join(out, "metrics.jsonl"), "-o", png, "--keys", "reward_mean"); code != 0 {
		t.Fatalf("cir plot: %s", stderr)
	}
	checkPNG(t, png)
}

func powmod(b, e, m int) int {
	r := 1
	for ; e > 0; e-- {
		r = r * b % m
	}
	return r
}

func checkPNG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 1000 {
		t.Errorf("%s: %d bytes, %v; want a PNG", path, len(b), err)
	}
}

// TestTrainEvalPlotErrors: bad configs, overrides, benchmarks and metrics files are errors
// naming the thing, with exit 1.
func TestTrainEvalPlotErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		return p
	}
	toy := filepath.Join("..", "..", "configs", "toy.yaml")
	mdir := tinyModel(t)
	badBench := write("bad.jsonl", "{\"problem\": \"1+1\", \"answer\": \"2\"}\n{\"problem\": oops}\n")
	noAnswer := write("noanswer.jsonl", `{"problem": "1+1"}`)
	empty := write("empty.jsonl", "")
	badMetrics := write("metrics.jsonl", "{\"step\": 1, \"reward_mean\": 0.5}\nnot json\n")
	goodMetrics := write("good.jsonl", "{\"step\": 1, \"reward_mean\": 0.5}\n")
	tests := []struct {
		name   string
		args   []string
		errSub string
	}{
		{"missing config", []string{"train", "--config", filepath.Join(dir, "nope.yaml")}, "nope.yaml"},
		{"config not YAML", []string{"train", "--config", write("bad.yaml", "rollout: [1, 2\n")}, "bad.yaml"},
		{"unknown key in config", []string{"train", "--config", write("typo.yaml", "rollout:\n  temprature: 1\n")}, "temprature"},
		{"unknown override", []string{"train", "--config", toy, "optim.learning_rate=1"}, "optim.learning_rate"},
		{"bad override value", []string{"train", "--config", toy, "rollout.n=many"}, "rollout.n"},
		{"override without =", []string{"train", "--config", toy, "rollout.n"}, "rollout.n"},
		{"bad schedule", []string{"train", "--config", toy, "rollout.max_calls=5:1"}, "max_calls"},
		{"bad device", []string{"train", "--config", toy, "--devices", "gpu0"}, "gpu0"},
		{"mixed devices", []string{"train", "--config", toy, "--devices", "cpu,cuda:0"}, "mixes"},
		{"device twice", []string{"train", "--config", toy, "--devices", "cuda:1,cuda:1"}, "cuda:1 named twice"},
		{"plan: bad memory", []string{"train", "--config", toy, "--plan", "--memory", "lots"}, "--memory"},
		{"memory without plan", []string{"train", "--config", toy, "--memory", "80GB"}, "--plan"},
		{"bad slots", []string{"train", "--config", toy, "rollout.slots=-1"}, "rollout.slots"},
		{"eval: no bench", []string{"eval", "--model", mdir}, "--bench"},
		{"eval: missing bench", []string{"eval", "--model", mdir, "--bench", filepath.Join(dir, "nope.jsonl")}, "nope.jsonl"},
		{"eval: malformed bench", []string{"eval", "--model", mdir, "--bench", badBench, "--device", "cpu"}, "bad.jsonl:2"},
		{"eval: no answer", []string{"eval", "--model", mdir, "--bench", noAnswer, "--device", "cpu"}, "noanswer.jsonl:1"},
		{"eval: empty bench", []string{"eval", "--model", mdir, "--bench", empty, "--device", "cpu"}, "empty.jsonl"},
		{"eval: n", []string{"eval", "--model", mdir, "--bench", noAnswer, "--n", "0"}, "--n"},
		{"plot: no file", []string{"plot", "-o", filepath.Join(dir, "x.png")}, "metrics file"},
		{"plot: missing", []string{"plot", filepath.Join(dir, "none.jsonl")}, "none.jsonl"},
		{"plot: malformed", []string{"plot", badMetrics, "-o", filepath.Join(dir, "x.png")}, "metrics.jsonl"},
		{"plot: empty", []string{"plot", empty, "-o", filepath.Join(dir, "x.png")}, "no records"},
		{"plot: unknown key", []string{"plot", goodMetrics, "-o", filepath.Join(dir, "x.png"), "--keys", "nosuch"}, "--keys"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := runCLI(t, "", tc.args...)
			if code != 1 || !strings.HasPrefix(errOut, "Error: ") || !strings.Contains(errOut, tc.errSub) {
				t.Errorf("exit %d, stderr %q; want exit 1 and an error naming %q", code, errOut, tc.errSub)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "x.png")); err == nil {
		t.Error("a failed plot left its output file")
	}
}

// TestTrainDataParallelCLI: `cir train --devices cpu,cpu` runs the toy job on two in-process CPU
// ranks: the memory plan per rank is printed at start, the run writes its metrics and
// checkpoint, and its summary is the usual one.
func TestTrainDataParallelCLI(t *testing.T) {
	needSandbox(t)
	out := t.TempDir()
	args := append(smallToyJob(t, out), "--devices", "cpu,cpu", "sft.steps=6", "run.steps=1", "data.toy.eval=2")
	stdout, stderr, code := runCLI(t, "", args...)
	if code != 0 {
		t.Fatalf("cir train --devices cpu,cpu: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"cpu: 2 ranks of 1 thread each", "memory plan per rank (2 ranks, optimizer state sharded: ZeRO-1)", "adamw"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	var sum struct {
		RLSteps    int    `json:"rl_steps"`
		Checkpoint string `json:"checkpoint"`
	}
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil || sum.RLSteps != 1 || sum.Checkpoint == "" {
		t.Fatalf("summary %q (%v)", stdout, err)
	}
	if recs, err := metrics.ReadFile(filepath.Join(out, "metrics.jsonl")); err != nil || len(recs) != 1 {
		t.Fatalf("metrics.jsonl: %d records, %v; want 1", len(recs), err)
	}
}

// TestTrainPlanCLI: `cir train --plan` prints a rank's memory plan without allocating it: a
// Qwen2.5-7B run (responses of up to 2048 tokens, 32 sequences decoded at once per rank) fits
// on eight 80 GB GPUs (81559 MiB, an H100's) and not on one; a rank's optimizer state is an
// eighth of one GPU's (ZeRO-1), the weights and gradients are not sharded.
func TestTrainPlanCLI(t *testing.T) {
	mc, err := filepath.Abs(filepath.Join("..", "..", "configs", "qwen2.5-7b.json"))
	if err != nil {
		t.Fatal(err)
	}
	plan := func(devices string) map[string]float64 {
		t.Helper()
		stdout, stderr, code := runCLI(t, "", "train", "model.init="+mc, "model.tokenizer=byte", "data.toy.enabled=true",
			"rollout.max_response=2048", "rollout.slots=32", "optim.micro_tokens=3072", "--devices", devices, "--plan", "--memory", "81559MiB")
		if code != 0 {
			t.Fatalf("--plan on %s: exit %d: %s", devices, code, stderr)
		}
		rows := map[string]float64{}
		for _, line := range strings.Split(stdout, "\n") {
			var name string
			var gib float64
			if n, _ := fmt.Sscanf(strings.TrimSpace(line), "%s %f GiB", &name, &gib); n == 2 {
				rows[name] = gib
			}
			switch {
			case strings.HasPrefix(strings.TrimSpace(line), "fits in 79.65 GiB"):
				rows["fits"] = 1
			case strings.HasPrefix(strings.TrimSpace(line), "does NOT fit in 79.65 GiB"):
				rows["fits"] = -1
			}
		}
		t.Logf("%s:\n%s", devices, stdout)
		return rows
	}
	one, eight := plan("cuda:0"), plan("cuda:0,cuda:1,cuda:2,cuda:3,cuda:4,cuda:5,cuda:6,cuda:7")
	if eight["fits"] != 1 || one["fits"] != -1 {
		t.Errorf("verdicts (1 fits, -1 does not, 0 none) on 8 GPUs: %v, on one: %v; want 1 and -1", eight["fits"], one["fits"])
	}
	if r := one["adamw"] / eight["adamw"]; math.Abs(r-8) > 0.01 {
		t.Errorf("optimizer state on one GPU / on each of 8: %.3f, want 8 (ZeRO-1)", r)
	}
	for _, k := range []string{"params", "grads"} {
		if math.Abs(one[k]-eight[k]) > 0.01*one[k] || one[k] == 0 {
			t.Errorf("%s: %.2f GiB on one GPU, %.2f on each of 8; want the same (not sharded)", k, one[k], eight[k])
		}
	}
}
