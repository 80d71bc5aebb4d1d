package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const runYAML = `# a run
model:
  init: configs/toy.json
  tokenizer: byte
data:
  train: [a.jsonl, b.parquet]
  problem_field: question
rl:
  estimator: grpo
  clip_high: 0.3
  mask_tool_tokens: false
optim:
  lr: 1e-5
  schedule: cosine
  warmup_steps: 10
rollout:
  max_calls: "0:1,50:2"
  n: 8
`

func write(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	p := write(t, "run.yaml", runYAML)
	c, err := Load(p, []string{"rl.clip_low=0.1", "run.seed=42", "rollout.max_calls=3"})
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"model.init", c.Model.Init, "configs/toy.json"},
		{"data.train", strings.Join(c.Data.Train, ","), "a.jsonl,b.parquet"},
		{"data.problem_field", c.Data.ProblemField, "question"},
		{"rl.estimator", c.RL.Estimator, "grpo"},
		{"rl.clip_high", c.RL.ClipHigh, 0.3},
		{"rl.clip_low (override)", c.RL.ClipLow, 0.1},
		{"rl.dual_clip_c (default)", c.RL.DualClipC, 3.0},
		{"rl.mask_tool_tokens", c.RL.MaskToolTokens, false},
		{"optim.lr", c.Optim.LR, 1e-5},
		{"optim.weight_decay (default)", c.Optim.WeightDecay, 0.01},
		{"rollout.n", c.Rollout.N, 8},
		{"rollout.prompts_per_step (default)", c.Rollout.PromptsPerStep, d.Rollout.PromptsPerStep},
		{"rollout.max_calls (override)", c.Rollout.MaxCalls, "3"},
		{"run.seed", c.Run.Seed, uint64(42)},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if b, err := c.Budget(); err != nil || b.At(1000) != 3 {
		t.Errorf("budget %v, %v", b, err)
	}
	if lr := c.LR(); lr.At(5) != 1e-5/2 {
		t.Errorf("lr at step 5 = %v, want %v", lr.At(5), 1e-5/2)
	}
}

func TestDefaults(t *testing.T) {
	c := Default()
	c.Data.Toy.Enabled = true
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	b, _ := c.Budget()
	if b.At(0) != 2 || b.At(100) != 3 || b.At(200) != 4 {
		t.Errorf("default budget %v", b)
	}
	if c.Rollout.N != 16 || c.Rollout.PromptsPerStep != 128 || c.Optim.MiniBatches != 2 || c.Optim.LR != 1e-6 ||
		c.Optim.WeightDecay != 0.01 || c.Optim.GradClip != 1 || c.Rollout.MaxPrompt != 1024 || c.Rollout.MaxResponse != 4096 ||
		c.RL.Estimator != "reinforce_pp_baseline" || c.RL.LossAgg != "token-mean" || !c.RL.MaskToolTokens || c.RL.KLCoef != 0 {
		t.Errorf("defaults differ from DESIGN.md: %s", c.YAML())
	}
	if _, err := Load("", nil); err == nil || !strings.Contains(err.Error(), "data.train") {
		t.Errorf("Load with no data: err = %v, want one naming data.train", err)
	}
}

func TestSet(t *testing.T) {
	tests := []struct {
		kv, key, want string
	}{
		{"optim.lr=1e-5", "optim.lr", "1e-05"},
		{"rl.mask_tool_tokens=false", "rl.mask_tool_tokens", "false"},
		{"data.train=x.jsonl", "data.train", "- x.jsonl"},
		{"data.train=[x.jsonl, y.jsonl]", "data.train", "- x.jsonl\n- y.jsonl"},
		{"data.train=", "data.train", "[]"},
		{"rollout.max_calls=0:2,10:3", "rollout.max_calls", "0:2,10:3"},
		{"rollout.max_calls=4", "rollout.max_calls", `"4"`},
		{"model.dir=some dir/x", "model.dir", "some dir/x"},
		{"run.out_dir=runs/a=b", "run.out_dir", "runs/a=b"},
		{"rollout.sandbox_timeout=2", "rollout.sandbox_timeout", "2"},
	}
	for _, tc := range tests {
		t.Run(tc.kv, func(t *testing.T) {
			c := Default()
			if err := c.Apply([]string{tc.kv}); err != nil {
				t.Fatal(err)
			}
			if got, err := c.Get(tc.key); err != nil || got != tc.want {
				t.Errorf("Get(%s) = %q, %v; want %q", tc.key, got, err, tc.want)
			}
		})
	}
}

func TestSetErrors(t *testing.T) {
	tests := []struct {
		kv, want string
		unknown  bool
	}{
		{"rl.lrr=1", `"rl.lrr"`, true},
		{"foo=1", `"foo"`, true},
		{"rl.clip_low.x=1", `"rl.clip_low.x"`, true},
		{"rl=1", `"rl" is a section`, false},
		{"rollout.n=abc", "rollout.n=abc: not a valid int", false},
		{"rollout.n=1.5", "rollout.n=1.5: not a valid int", false},
		{"rl.mask_tool_tokens=maybe", "rl.mask_tool_tokens", false},
		{"optim.lr=[1]", "optim.lr", false},
		{"run.seed=-1", "run.seed", false},
		{"novalue", "want key=value", false},
	}
	for _, tc := range tests {
		t.Run(tc.kv, func(t *testing.T) {
			c := Default()
			err := c.Apply([]string{tc.kv})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if errors.Is(err, ErrUnknownKey) != tc.unknown {
				t.Errorf("errors.Is(err, ErrUnknownKey) = %v, want %v", !tc.unknown, tc.unknown)
			}
		})
	}
}

func TestFileErrors(t *testing.T) {
	tests := []struct {
		name, text, want string
		unknown          bool
	}{
		{"unknown key", "rl:\n  estimator: grpo\n  lrr: 1\n", `line 3: unknown configuration key "rl.lrr"`, true},
		{"unknown section", "rll:\n  lr: 1\n", `"rll"`, true},
		{"section scalar", "rl: 3\n", "rl must be a mapping", false},
		{"wrong type", "rollout:\n  n: many\n", "many", false},
		{"not a mapping", "- a\n- b\n", "mapping", false},
		{"bad yaml", "rl: [\n", "config", false},
		{"bad estimator", "data: {toy: {enabled: true}}\nrl: {estimator: ppo}\n", "rl.estimator", false},
		{"bad top_p", "data: {toy: {enabled: true}}\nrollout: {top_p: 0}\n", "rollout.top_p", false},
		{"bad budget", "data: {toy: {enabled: true}}\nrollout: {max_calls: '5:1'}\n", "rollout.max_calls", false},
		{"bad agg", "data: {toy: {enabled: true}}\nrl: {loss_agg: sum}\n", "rl.loss_agg", false},
		{"micro tokens", "data: {toy: {enabled: true}}\noptim: {micro_tokens: 100}\n", "optim.micro_tokens", false},
		{"sft schedule", "data: {toy: {enabled: true}}\nsft: {steps: 10, schedule: step}\n", "sft.schedule", false},
		{"sft warm-up", "data: {toy: {enabled: true}}\nsft: {steps: 10, schedule: cosine, warmup_steps: 10}\n", "sft.schedule", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := write(t, "run.yaml", tc.text)
			_, err := Load(p, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("err = %v, want one naming %s and containing %q", err, p, tc.want)
			}
			if errors.Is(err, ErrUnknownKey) != tc.unknown {
				t.Errorf("errors.Is(err, ErrUnknownKey) = %v, want %v", !tc.unknown, tc.unknown)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	c := Default()
	if err := c.Apply([]string{"data.train=[a.jsonl]", "rl.estimator=dr_grpo", "optim.lr=3e-4", "rollout.max_calls=0:1,7:2", "data.toy.kinds=[mul, modpow]"}); err != nil {
		t.Fatal(err)
	}
	text := c.YAML()
	var back Config
	if err := back.Decode(text); err != nil {
		t.Fatalf("decoding the printed config: %v\n%s", err, text)
	}
	if string(back.YAML()) != string(text) {
		t.Errorf("round trip differs:\n%s\n---\n%s", text, back.YAML())
	}
	if back.Optim.LR != 3e-4 || back.RL.Estimator != "dr_grpo" || back.Data.Toy.Kinds[1] != "modpow" {
		t.Errorf("round trip lost values: %+v", back)
	}
	// Every key is printed and settable.
	for _, k := range Keys() {
		v, err := c.Get(k)
		if err != nil {
			t.Fatalf("Get(%s): %v", k, err)
		}
		if !strings.Contains(string(text), strings.Split(k, ".")[len(strings.Split(k, "."))-1]+":") {
			t.Errorf("key %s missing from the printed config", k)
		}
		if err := c.Set(k, v); err != nil && !strings.Contains(v, "\n") {
			t.Errorf("Set(%s, %q): %v", k, v, err)
		}
	}
}

func TestFileIntTruncation(t *testing.T) {
	p := write(t, "run.yaml", "data: {toy: {enabled: true}}\nrollout:\n  n: 2.5\n")
	if _, err := Load(p, nil); err == nil || !strings.Contains(err.Error(), "rollout.n") {
		t.Fatalf("n: 2.5 accepted or error not naming the key: %v", err)
	}
}

func TestDrGRPOAggregation(t *testing.T) {
	for _, tc := range []struct {
		file      string
		overrides []string
		want      string
	}{
		{"data: {toy: {enabled: true}}\nrl: {estimator: dr_grpo}\n", nil, "seq-mean-token-sum-norm"},
		{"data: {toy: {enabled: true}}\n", []string{"rl.estimator=dr_grpo"}, "seq-mean-token-sum-norm"},
		{"data: {toy: {enabled: true}}\nrl: {estimator: dr_grpo, loss_agg: token-mean}\n", nil, "token-mean"},
		{"data: {toy: {enabled: true}}\n", []string{"rl.estimator=dr_grpo", "rl.loss_agg=seq-mean-token-mean"}, "seq-mean-token-mean"},
		{"data: {toy: {enabled: true}}\nrl: {estimator: grpo}\n", nil, "token-mean"},
	} {
		c, err := Load(write(t, "run.yaml", tc.file), tc.overrides)
		if err != nil {
			t.Fatal(err)
		}
		if c.RL.LossAgg != tc.want {
			t.Errorf("%q %v: loss_agg = %s, want %s", tc.file, tc.overrides, c.RL.LossAgg, tc.want)
		}
	}
}

// TestRewardMode: reward.mode selects the checker's extraction (boxed by default, as the
// reference recipe trains), and an unknown mode is an error naming the key.
func TestRewardMode(t *testing.T) {
	completion := "Final Answer: The final answer is $42$. I hope it is correct."
	for _, tc := range []struct {
		overrides []string
		correct   bool
	}{
		{nil, false},
		{[]string{"reward.mode=boxed"}, false},
		{[]string{"reward.mode=lenient"}, true},
	} {
		c := Default()
		c.Data.Toy.Enabled = true
		if err := c.Apply(tc.overrides); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("%v: %v", tc.overrides, err)
		}
		ck, err := c.Reward.Checker()
		if err != nil {
			t.Fatalf("%v: %v", tc.overrides, err)
		}
		if r := ck.Score(completion, "42"); r.Correct != tc.correct || r.Reward != map[bool]float64{true: 1, false: -1}[tc.correct] {
			t.Errorf("%v: Score = %+v, want correct=%v", tc.overrides, r, tc.correct)
		}
		if r := ck.Score(`\boxed{42}`, "42"); !r.Correct {
			t.Errorf("%v: a boxed answer must score in every mode: %+v", tc.overrides, r)
		}
	}
	c := Default()
	c.Data.Toy.Enabled = true
	if err := c.Apply([]string{"reward.mode=strict"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "reward.mode") || !strings.Contains(err.Error(), `"strict"`) {
		t.Errorf("reward.mode=strict: err = %v, want one naming reward.mode and the value", err)
	}
}
