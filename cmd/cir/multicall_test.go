package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cir/train/compare"
)

// TestMulticallJob is make run-multicall (configs/toy-multicall.yaml) cut down to seconds: a
// tiny model warmed up on the two-call chain of one mul3 problem, 4 RL steps with the budget
// schedule 1 → 2 at step 2 and 4 with the budget held at 1, 2 held-out problems. The last
// stdout line is the summary with every field the job promises; compare.json has accuracy and
// calls per answer of every kind for the three models, evaluated with the same budget; the
// scheduled run executed its first two-call trajectory at the step its schedule opened the
// second call (the warm-up taught the chain, so the policy makes one as soon as it may), and
// the fixed run never did.
func TestMulticallJob(t *testing.T) {
	needSandbox(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "run")
	stdout, stderr, code := runCLI(t, "", "train", "--config", filepath.Join("..", "..", "configs", "toy-multicall.yaml"),
		"model.init="+tinyToyModel(t, dir), "run.out_dir="+out, "run.threads=1",
		"data.toy.kinds=[mul3,mul_digsum]", "data.toy.direct=", "data.toy.chain_demos=[mul3]",
		"data.toy.train=2", "data.toy.eval=2",
		"sft.steps=150", "sft.lr=3e-3", "sft.warmup_steps=10", "sft.batch_size=4",
		"rollout.n=4", "rollout.prompts_per_step=2", "rollout.max_calls=0:1,2:2", "run.steps=4")
	if code != 0 {
		t.Fatalf("cir train: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var sum map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("last stdout line %q: %v", lines[len(lines)-1], err)
	}
	for _, k := range []string{"composed_acc_before_rl", "composed_acc_schedule", "composed_acc_fixed",
		"composed_calls_before_rl", "composed_calls_schedule", "composed_calls_fixed",
		"transfer_acc_before_rl", "transfer_acc_schedule", "transfer_acc_fixed", "minutes"} {
		if v, ok := sum[k].(float64); !ok || v < 0 || strings.Contains(k, "acc") && v > 1 || strings.Contains(k, "calls") && v > 2 {
			t.Errorf("summary %s = %v, want a number in range", k, sum[k])
		}
	}
	if sum["second_call_opens"] != 2.0 || sum["second_call_step"] != 2.0 {
		t.Errorf("summary: second call opens at %v, first made at %v; want 2 and 2", sum["second_call_opens"], sum["second_call_step"])
	}
	if sum["report"] != filepath.Join(out, compare.ReportFile) || sum["plot"] != filepath.Join(out, compare.PlotFile) {
		t.Errorf("summary report %v, plot %v", sum["report"], sum["plot"])
	}
	checkPNG(t, filepath.Join(out, compare.PlotFile))

	var r compare.Report
	if b, err := os.ReadFile(filepath.Join(out, compare.ReportFile)); err != nil || json.Unmarshal(b, &r) != nil {
		t.Fatalf("%s: %v %s", compare.ReportFile, err, b)
	}
	if r.EvalMaxCalls != 2 || strings.Join(r.Composed, ",") != "mul3,mul_digsum" || strings.Join(r.Transfer, ",") != "mul_digsum" {
		t.Errorf("report: eval budget %d, composed %v, transfer %v", r.EvalMaxCalls, r.Composed, r.Transfer)
	}
	for _, a := range []compare.Arm{r.BeforeRL, r.Schedule, r.Fixed} {
		for _, k := range []string{"mul3", "mul_digsum"} {
			acc, ok1 := a.Acc[k]
			calls, ok2 := a.Calls[k]
			if !ok1 || !ok2 || acc < 0 || acc > 1 || calls < 0 || calls > 2 {
				t.Errorf("%s: kind %s: accuracy %v (%v), calls %v (%v)", a.Name, k, acc, ok1, calls, ok2)
			}
		}
		if _, err := os.Stat(filepath.Join(a.Checkpoint, "config.json")); err != nil {
			t.Errorf("%s: checkpoint: %v", a.Name, err)
		}
	}
	// The RL steps: the budget each ran under, and the calls made.
	for _, a := range []struct {
		arm    compare.Arm
		budget []float64
	}{{r.Schedule, []float64{1, 1, 2, 2}}, {r.Fixed, []float64{1, 1, 1, 1}}} {
		if len(a.arm.Steps) != len(a.budget) {
			t.Fatalf("%s: %d steps, want %d", a.arm.Name, len(a.arm.Steps), len(a.budget))
		}
		for i, s := range a.arm.Steps {
			if s["max_calls"] != a.budget[i] || s["tool_calls_max"] > a.budget[i] {
				t.Errorf("%s: step %d: budget %v, at most %v calls; want budget %v", a.arm.Name, i, s["max_calls"], s["tool_calls_max"], a.budget[i])
			}
		}
	}
	if r.Fixed.SecondCallStep != nil {
		t.Errorf("the run with the budget held at 1 made two calls at step %d", *r.Fixed.SecondCallStep)
	}
	if !strings.Contains(stderr, "held-out, budget 2") {
		t.Errorf("no comparison table on stderr:\n%s", stderr)
	}
}
