package train

import (
	"context"
	"slices"
	"strings"
	"testing"

	"cir/engine"
	"cir/tokenizer"
	"cir/train/config"
	"cir/train/rollout"
)

// TestToyTeacher: data.toy.direct turns the given share of a kind's warm-up demonstrations into
// a bare boxed answer, leaves the other kinds' in the interpreter protocol, and never touches
// the held-out split; a bad spec is an error naming the key.
func TestToyTeacher(t *testing.T) {
	cfg := config.Default()
	if err := cfg.Apply([]string{"data.toy.enabled=true", "data.toy.train=600", "data.toy.eval=30",
		"data.toy.kinds=[mul,powmod,digsum]", "data.toy.direct=mul:1,powmod:0.5", "data.template=toy"}); err != nil {
		t.Fatal(err)
	}
	tok := tokenizer.NewByte()
	p, err := NewPrompter(tok, "", cfg.Data.PromptSettings)
	if err != nil {
		t.Fatal(err)
	}
	tr, ev, err := loadTasks(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	direct := map[string]int{}
	count := map[string]int{}
	for _, task := range tr {
		demo := tok.Decode(task.DemoIDs)
		count[task.Kind]++
		switch {
		case strings.HasPrefix(demo, `\boxed{`):
			direct[task.Kind]++
		case !strings.HasPrefix(demo, "```python\n") || !strings.HasSuffix(demo, `\boxed{`+task.Answer+`}`):
			t.Fatalf("%s: demonstration %q is neither form", task.Problem, demo)
		}
	}
	if direct["mul"] != count["mul"] || direct["digsum"] != 0 {
		t.Errorf("direct demonstrations %v of %v: want all mul and no digsum", direct, count)
	}
	if share := float64(direct["powmod"]) / float64(count["powmod"]); share < 0.4 || share > 0.6 {
		t.Errorf("powmod direct share %.2f, want 0.5 ± 0.1", share)
	}
	for _, task := range ev {
		if !strings.HasPrefix(tok.Decode(task.DemoIDs), "```python\n") {
			t.Fatalf("held-out %s has a direct demonstration", task.Problem)
		}
	}
	if err := cfg.Apply([]string{"data.toy.direct=mul:2"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadTasks(cfg, p); err == nil || !strings.Contains(err.Error(), "data.toy.direct") {
		t.Errorf("bad teacher: err = %v, want one naming data.toy.direct", err)
	}
}

// TestToyChainDemos: data.toy.chain_demos gives the named composed kinds their two-call
// chain as warm-up demonstration (the interpreter's outputs as tool tokens), leaves the other
// composed kinds without one, and a basic kind or one not in data.toy.kinds is an error
// naming the key; with shares a composed kind's problems divide into chains, the teacher's
// guesses (data.toy.direct) and none, and shares adding up to more than 1 are an error.
func TestToyChainDemos(t *testing.T) {
	cfg := config.Default()
	if err := cfg.Apply([]string{"data.toy.enabled=true", "data.toy.train=60", "data.toy.eval=6",
		"data.toy.kinds=[p_digsum,mul3,mul_digsum]", "data.toy.chain_demos=[mul3]", "data.template=toy"}); err != nil {
		t.Fatal(err)
	}
	tok := tokenizer.NewByte()
	p, err := NewPrompter(tok, "", cfg.Data.PromptSettings)
	if err != nil {
		t.Fatal(err)
	}
	tr, _, err := loadTasks(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	for _, task := range tr {
		demo := tok.Decode(task.DemoIDs)
		n := strings.Count(demo, "```python\n")
		if calls[task.Kind] != 0 && calls[task.Kind] != n+1 {
			t.Errorf("%s: %d calls, other %s problems %d", task.Problem, n, task.Kind, calls[task.Kind]-1)
		}
		calls[task.Kind] = n + 1
		var tool strings.Builder
		for i, r := range task.DemoRoles {
			if r == rollout.RoleTool {
				tool.WriteString(tok.Decode(task.DemoIDs[i : i+1]))
			}
		}
		if strings.Count(tool.String(), "```output\n") != n {
			t.Errorf("%s: tool tokens %q for %d calls", task.Problem, tool.String(), n)
		}
	}
	if calls["p_digsum"] != 2 || calls["mul3"] != 3 || calls["mul_digsum"] != 1 {
		t.Errorf("calls per demonstration (+1) %v, want p_digsum 1, mul3 2, mul_digsum none", calls)
	}
	// Shares: a quarter of mul_digsum's problems get the chain and half the teacher's guess
	// (one draw a problem), the rest no demonstration.
	if err := cfg.Apply([]string{"data.toy.train=300", "data.toy.direct=mul_digsum:0.5",
		"data.toy.chain_demos=[mul3,mul_digsum:0.25]"}); err != nil {
		t.Fatal(err)
	}
	if tr, _, err = loadTasks(cfg, p); err != nil {
		t.Fatal(err)
	}
	demos := map[string]int{}
	for _, task := range tr {
		if task.Kind != "mul_digsum" {
			continue
		}
		switch demo := tok.Decode(task.DemoIDs); {
		case demo == "":
			demos["none"]++
		case strings.Count(demo, "```python\n") == 2:
			demos["chain"]++
		case strings.HasPrefix(demo, `\boxed{`) && !strings.Contains(demo, "```"):
			demos["guess"]++
		default:
			t.Errorf("%s: demonstration %q is neither chain nor guess", task.Problem, demo)
		}
	}
	// 100 problems: Binomial(100, p) lies within ±13 of its mean with probability ≥ 99%
	// (and the draws are seeded: the test does not flake).
	for kind, want := range map[string]int{"chain": 25, "guess": 50, "none": 25} {
		if got := demos[kind]; got < want-13 || got > want+13 {
			t.Errorf("mul_digsum: %d demonstrations %s of 100, want about %d (%v)", got, kind, want, demos)
		}
	}
	if err := cfg.Apply([]string{"data.toy.chain_demos=[mul_digsum:0.6]"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadTasks(cfg, p); err == nil || !strings.Contains(err.Error(), "add up to more than 1") {
		t.Errorf("chain 0.6 + direct 0.5: err = %v, want one saying the shares add up to more than 1", err)
	}
	cfg.Data.Toy.Direct = ""
	for _, bad := range []string{"[p_digsum]", "[mul_powmod]", "[mul3:1.5]"} {
		if err := cfg.Apply([]string{"data.toy.chain_demos=" + bad}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := loadTasks(cfg, p); err == nil || !strings.Contains(err.Error(), "data.toy.chain_demos") {
			t.Errorf("chain_demos %s: err = %v, want one naming data.toy.chain_demos", bad, err)
		}
	}
}

// TestSFTLowersLossAndResetsOptimizer: the warm-up fits a fixed demonstration (its loss falls
// below a tenth of the first step's), and leaves the optimizer as a fresh one for RL.
func TestSFTLowersLossAndResetsOptimizer(t *testing.T) {
	tr := tinyTrainer(t, 3, "sft.steps=60", "sft.lr=1e-2", "sft.batch_size=4", "sft.schedule=cosine", "sft.warmup_steps=5")
	for i := range tr.Train {
		tr.Train[i].DemoIDs = tr.Tok.EncodePlain("ok " + tr.Train[i].Answer)
		tr.Train[i].DemoRoles = make([]rollout.Role, len(tr.Train[i].DemoIDs))
		for j := range tr.Train[i].DemoRoles {
			tr.Train[i].DemoRoles[j] = rollout.RolePolicy
		}
	}
	var first, last float64
	if err := tr.SFT(context.Background(), func(step int, loss float64) {
		if step == 1 {
			first = loss
		}
		last = loss
	}); err != nil {
		t.Fatal(err)
	}
	if !(last < first/10) {
		t.Errorf("warm-up loss %.4f → %.4f, want a tenfold fall", first, last)
	}
	m := make([]float32, tr.Opt.M.Len())
	v := make([]float32, tr.Opt.V.Len())
	tr.Model.B.Download(engine.HostF32(m, len(m)), tr.Opt.M)
	tr.Model.B.Download(engine.HostF32(v, len(v)), tr.Opt.V)
	if tr.Opt.Step != 0 || slices.ContainsFunc(m, func(x float32) bool { return x != 0 }) || slices.ContainsFunc(v, func(x float32) bool { return x != 0 }) {
		t.Errorf("after the warm-up: optimizer step %d, moments not all zero", tr.Opt.Step)
	}
}
