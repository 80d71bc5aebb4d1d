// Package config is the typed run configuration of `cir train`: a YAML file decoded over the
// defaults of DESIGN.md, then `key=value` overrides with dotted keys (rl.lr=1e-5,
// rollout.max_calls=0:2,100:3), every key checked against the struct (an unknown key is an
// error naming it) and every value type-checked by decoding it as YAML into the field's type.
// The resolved configuration prints back as YAML (Config.YAML), so a run records exactly what
// it used.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"cir/train/data"
	"cir/train/reward"
	"cir/train/rl"
	"cir/train/rollout"
)

// Config is a whole training run.
type Config struct {
	Model   Model   `yaml:"model"`
	Data    Data    `yaml:"data"`
	SFT     SFT     `yaml:"sft"`
	Rollout Rollout `yaml:"rollout"`
	RL      RL      `yaml:"rl"`
	Optim   Optim   `yaml:"optim"`
	Run     Run     `yaml:"run"`
	Reward  Reward  `yaml:"reward"`
	Compare Compare `yaml:"compare"`
}

// Compare, with MaxCalls set, makes the run a comparison of budget schedules (package
// train/compare, configs/toy-multicall.yaml): one warm-up, then run.steps of RL from it with
// rollout.max_calls and again with compare.max_calls (same seed), each evaluated per kind on
// the held-out problems with the largest budget of rollout.max_calls.
type Compare struct {
	MaxCalls string `yaml:"max_calls"` // the other arm's budget schedule; empty: a plain run
}

// Model says where the policy comes from: an HF model directory, or a config.json to
// initialise randomly (with run.seed); and which tokenizer to use.
type Model struct {
	Dir       string `yaml:"dir"`       // HF-layout model directory to start from
	Init      string `yaml:"init"`      // config.json for a random initialisation, when dir is empty
	Tokenizer string `yaml:"tokenizer"` // tokenizer.json path, "byte" for the byte vocabulary; empty: the model dir's
	Reference string `yaml:"reference"` // frozen reference model for the KL term; empty: the initial policy
}

// Data says which problems to train and evaluate on, and how they become prompts.
type Data struct {
	Train        []string `yaml:"train"`         // JSONL or parquet files
	Eval         []string `yaml:"eval"`          // held-out files
	ProblemField string   `yaml:"problem_field"` // empty: the first of problem, question, prompt
	AnswerField  string   `yaml:"answer_field"`  // empty: answer, solution, ground_truth, reward_model.ground_truth
	// template (cir, toy), instruction (auto, always, never), system, chat_template_kwargs.
	data.PromptSettings `yaml:",inline"`
	Shuffle             bool `yaml:"shuffle"`
	Toy                 Toy  `yaml:"toy"`
}

// Toy selects the generated toy task instead of files (the default job).
type Toy struct {
	Enabled bool     `yaml:"enabled"`
	Train   int      `yaml:"train"` // problems generated for training
	Eval    int      `yaml:"eval"`  // held-out problems
	Kinds   []string `yaml:"kinds"` // problem kinds; empty: all
	Seed    uint64   `yaml:"seed"`  // generator seed
	// Direct is the warm-up teacher, "kind:share,...": the share of each kind's
	// demonstrations that state the answer without calling the interpreter, a guess
	// (others: 0).
	Direct string `yaml:"direct"`
	// ChainDemos are the composed kinds whose two-call solutions the warm-up demonstrates,
	// entries "kind" (every problem of the kind) or "kind:share" (that share of them, beside
	// the kind's Direct share: the two add up to at most 1); the other problems of the
	// composed kinds have no demonstration: RL has to find them.
	ChainDemos []string `yaml:"chain_demos"`
}

// SFT is the supervised warm-up on demonstrations before RL (0 steps: none).
type SFT struct {
	Steps       int     `yaml:"steps"`
	LR          float64 `yaml:"lr"`
	BatchSize   int     `yaml:"batch_size"`
	Schedule    string  `yaml:"schedule"` // constant, cosine, linear
	WarmupSteps int     `yaml:"warmup_steps"`
	MinLRRatio  float64 `yaml:"min_lr_ratio"`
}

// Rollout holds the group sizes and the sampling and interpreter settings (rollout.Settings,
// shared with eval and generate).
type Rollout struct {
	N                int `yaml:"n"`                // samples per prompt (group size)
	PromptsPerStep   int `yaml:"prompts_per_step"` // prompts per RL step
	Slots            int `yaml:"slots"`            // sequences decoded at once per rank; 0: the rank's share of a step (≤ 256)
	rollout.Settings `yaml:",inline"`
}

// RL holds the policy-gradient settings (names as in package rl).
type RL struct {
	Estimator      string  `yaml:"estimator"`
	ClipLow        float64 `yaml:"clip_low"`
	ClipHigh       float64 `yaml:"clip_high"`
	DualClipC      float64 `yaml:"dual_clip_c"` // 0: off
	LossAgg        string  `yaml:"loss_agg"`
	MaskToolTokens bool    `yaml:"mask_tool_tokens"`
	KLCoef         float64 `yaml:"kl_coef"` // 0: no reference model
	KLType         string  `yaml:"kl_type"`
	// WhitenOver says which tokens reinforce_pp_baseline whitens the advantages over:
	// "response" (every response token, interpreter output included, as verl) or "policy".
	WhitenOver      string  `yaml:"whiten_over"`
	EntropyCoef     float64 `yaml:"entropy_coef"` // entropy bonus: the loss gains −coef·entropy
	DynamicSampling bool    `yaml:"dynamic_sampling"`
	MaxResample     int     `yaml:"max_resample"` // refill rounds of dynamic sampling
	OverlongFilter  bool    `yaml:"overlong_filter"`
	OverlongBuffer  int     `yaml:"overlong_buffer"` // tokens; 0: no overlong penalty
	OverlongFactor  float64 `yaml:"overlong_factor"`
	PPOEpochs       int     `yaml:"ppo_epochs"` // passes over the step's mini-batches
}

// Optim holds the optimizer settings (AdamW).
type Optim struct {
	LR          float64 `yaml:"lr"`
	Schedule    string  `yaml:"schedule"` // constant, cosine, linear
	WarmupSteps int     `yaml:"warmup_steps"`
	MinLRRatio  float64 `yaml:"min_lr_ratio"`
	Beta1       float64 `yaml:"beta1"`
	Beta2       float64 `yaml:"beta2"`
	Eps         float64 `yaml:"eps"`
	WeightDecay float64 `yaml:"weight_decay"`
	GradClip    float64 `yaml:"grad_clip"` // 0: off
	MiniBatches int     `yaml:"mini_batches"`
	MicroTokens int     `yaml:"micro_tokens"` // token budget of a micro-batch
}

// Run holds the run-level settings.
type Run struct {
	Steps     int    `yaml:"steps"` // RL steps; 0: the warm-up and the evaluations only
	Seed      uint64 `yaml:"seed"`
	OutDir    string `yaml:"out_dir"`
	SaveEvery int    `yaml:"save_every"` // 0: only at the end
	KeepLast  int    `yaml:"keep_last"`  // checkpoints kept; 0: all
	EvalEvery int    `yaml:"eval_every"` // 0: only at the end
	EvalN     int    `yaml:"eval_n"`     // samples per held-out problem
	// EvalMaxCalls is the tool budget of the held-out evaluations before and after RL; -1: the
	// budget of the last step.
	EvalMaxCalls int    `yaml:"eval_max_calls"`
	Threads      int    `yaml:"threads"` // 0: all cores
	Device       string `yaml:"device"`  // auto, cpu, cuda:N; a data-parallel group: cuda:0,cuda:1,… | cuda:all | cpu,cpu,…
	Resume       bool   `yaml:"resume"`
}

// Reward holds the reward values and where the answer is looked for.
type Reward struct {
	Correct float64 `yaml:"correct"`
	Wrong   float64 `yaml:"wrong"`
	Mode    string  `yaml:"mode"` // boxed: only the last \boxed{} (the reference recipe); lenient: also "Final Answer: ..." and the last number
}

// Checker returns the answer checker the reward section describes. It fails on an unknown
// mode.
func (r Reward) Checker() (*reward.Checker, error) {
	m, err := reward.ParseMode(r.Mode)
	if err != nil {
		return nil, fmt.Errorf("config: reward.mode: %w", err)
	}
	return &reward.Checker{Correct: r.Correct, Wrong: r.Wrong, Mode: m}, nil
}

// Default returns the defaults of DESIGN.md ("RL algorithm"): n=16, 128 prompts a step, two
// mini-batches, lr 1e-6 constant, weight decay 0.01, grad clip 1.0, temperature 1, top-p 1,
// prompt ≤ 1024 and response ≤ 4096 tokens, reinforce_pp_baseline, clip 0.2/0.28, dual clip
// 3, token-mean, tool tokens masked, no KL, budget 2 → 3 at step 100 → 4 at step 200.
func Default() Config {
	return Config{
		Data:    Data{PromptSettings: data.DefaultPromptSettings(), Shuffle: true, Toy: Toy{Train: 2000, Eval: 200, Seed: 1}},
		SFT:     SFT{LR: 1e-3, BatchSize: 32, Schedule: string(rl.LRConstant)},
		Rollout: Rollout{N: 16, PromptsPerStep: 128, Settings: rollout.DefaultSettings()},
		RL: RL{Estimator: string(rl.ReinforcePPBaseline), WhitenOver: string(rl.WhitenResponse), ClipLow: 0.2,
			ClipHigh: 0.28, DualClipC: 3, LossAgg: string(rl.AggTokenMean), MaskToolTokens: true, KLType: string(rl.K3),
			MaxResample: 2, OverlongFactor: 1, PPOEpochs: 1},
		Optim: Optim{LR: 1e-6, Schedule: string(rl.LRConstant), Beta1: 0.9, Beta2: 0.999, Eps: 1e-8,
			WeightDecay: 0.01, GradClip: 1, MiniBatches: 2, MicroTokens: 16384},
		Run:    Run{Steps: 300, Seed: 1, OutDir: "runs/cir", SaveEvery: 50, KeepLast: 2, EvalN: 1, EvalMaxCalls: -1, Device: "auto"},
		Reward: Reward{Correct: 1, Wrong: -1, Mode: "boxed"},
	}
}

// ErrUnknownKey is wrapped by the error for a key the configuration does not have.
var ErrUnknownKey = errors.New("unknown configuration key")

// Load returns the defaults, overlaid with the YAML file at path (none when path is empty),
// then with overrides ("key=value"), validated. Errors name the file and the key. With
// rl.estimator dr_grpo and no rl.loss_agg given, the aggregation is seq-mean-token-sum-norm
// (Dr. GRPO's constant normaliser, rollout.max_response).
func Load(path string, overrides []string) (Config, error) {
	c := Default()
	aggSet := false
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		if err := c.Decode(b); err != nil {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
		aggSet = hasKey(b, "rl", "loss_agg")
	}
	if err := c.Apply(overrides); err != nil {
		return c, err
	}
	for _, o := range overrides {
		if k, _, _ := strings.Cut(o, "="); strings.TrimSpace(k) == "rl.loss_agg" {
			aggSet = true
		}
	}
	if c.RL.Estimator == string(rl.DrGRPO) && !aggSet {
		c.RL.LossAgg = string(rl.AggSeqMeanTokenSumNorm)
	}
	if err := c.Validate(); err != nil {
		if path != "" {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
		return c, err
	}
	return c, nil
}

// hasKey reports whether the YAML document b sets section.key.
func hasKey(b []byte, section, key string) bool {
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
		return false
	}
	find := func(n *yaml.Node, k string) *yaml.Node {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				return n.Content[i+1]
			}
		}
		return nil
	}
	return find(find(doc.Content[0], section), key) != nil
}

// Decode overlays the YAML document b on c. Keys missing from b keep their values; a key c
// does not have is an error wrapping ErrUnknownKey that names it (dotted) and its line.
func (c *Config) Decode(b []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil // empty document
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config: line %d: the document must be a mapping of sections", root.Line)
	}
	if err := checkKeys(root, reflect.TypeOf(*c), ""); err != nil {
		return err
	}
	if err := root.Decode(c); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// checkKeys reports the first key of n (a mapping) that t (a struct) has no field for.
func checkKeys(n *yaml.Node, t reflect.Type, prefix string) error {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := fieldByTag(t, k.Value)
		if !ok {
			return fmt.Errorf("config: line %d: %w %q (known: %s)", k.Line, ErrUnknownKey, prefix+k.Value, strings.Join(keysOf(t, prefix), ", "))
		}
		if err := checkInt(v, f.Type); err != nil {
			return fmt.Errorf("config: line %d: %s: %w", v.Line, prefix+k.Value, err)
		}
		if f.Type.Kind() == reflect.Struct {
			if v.Kind != yaml.MappingNode && !(v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
				return fmt.Errorf("config: line %d: %s must be a mapping", v.Line, prefix+k.Value)
			}
			if err := checkKeys(v, f.Type, prefix+k.Value+"."); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkInt rejects a non-integer scalar for an integer field (yaml.v3 would truncate 1.5 to 1).
func checkInt(n *yaml.Node, t reflect.Type) error {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind == yaml.ScalarNode && n.ShortTag() != "!!int" {
			return fmt.Errorf("%q is not a valid %s", n.Value, t)
		}
	}
	return nil
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// fields lists the keyed fields of struct type t, those of ",inline" embedded structs in
// their place, each with its index path from t.
func fields(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if _, opts, _ := strings.Cut(f.Tag.Get("yaml"), ","); opts == "inline" && f.Type.Kind() == reflect.Struct {
			for _, g := range fields(f.Type) {
				g.Index = append([]int{i}, g.Index...)
				out = append(out, g)
			}
			continue
		}
		out = append(out, f)
	}
	return out
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for _, f := range fields(t) {
		if tagName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func keysOf(t reflect.Type, prefix string) []string {
	var ks []string
	for _, f := range fields(t) {
		ks = append(ks, prefix+tagName(f))
	}
	return ks
}

// Keys lists every settable dotted key, in declaration order.
func Keys() []string {
	var ks []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for _, f := range fields(t) {
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, prefix+tagName(f)+".")
			} else {
				ks = append(ks, prefix+tagName(f))
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	return ks
}

// lookup returns the field for a dotted key.
func (c *Config) lookup(key string) (reflect.Value, error) {
	v := reflect.ValueOf(c).Elem()
	parts := strings.Split(key, ".")
	for i, p := range parts {
		f, ok := fieldByTag(v.Type(), p)
		if !ok {
			return v, fmt.Errorf("config: %w %q (known under %q: %s)", ErrUnknownKey, key,
				strings.Join(parts[:i], "."), strings.Join(keysOf(v.Type(), strings.Join(parts[:i], ".")+dotIf(i)), ", "))
		}
		v = v.FieldByIndex(f.Index)
		if i < len(parts)-1 && v.Kind() != reflect.Struct {
			return v, fmt.Errorf("config: %w %q (%s is not a section)", ErrUnknownKey, key, strings.Join(parts[:i+1], "."))
		}
	}
	if v.Kind() == reflect.Struct {
		return v, fmt.Errorf("config: %q is a section; set one of its keys: %s", key, strings.Join(keysOf(v.Type(), key+"."), ", "))
	}
	return v, nil
}

func dotIf(i int) string {
	if i == 0 {
		return ""
	}
	return "."
}

// Set sets the dotted key to value, decoded as YAML into the key's type (so "1e-5" for a
// float, "true" for a bool, "[a.jsonl, b.jsonl]" or "a.jsonl" for a list). It returns an
// error naming the key when the key is unknown or the value does not fit its type.
func (c *Config) Set(key, value string) error {
	v, err := c.lookup(key)
	if err != nil {
		return err
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(value), &n); err != nil {
		return fmt.Errorf("config: %s=%s: %w", key, value, err)
	}
	var node *yaml.Node
	if len(n.Content) == 0 {
		node = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: ""}
	} else {
		node = n.Content[0]
	}
	// A bare scalar for a list key is a one-element list.
	if v.Kind() == reflect.Slice && node.Kind == yaml.ScalarNode {
		if node.Value == "" {
			v.Set(reflect.Zero(v.Type()))
			return nil
		}
		node = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{node}}
	}
	if v.Kind() != reflect.Slice && v.Kind() != reflect.Map && v.Kind() != reflect.String && node.Kind != yaml.ScalarNode {
		return fmt.Errorf("config: %s=%s: want a %s", key, value, v.Kind())
	}
	if err := checkInt(node, v.Type()); err != nil {
		return fmt.Errorf("config: %s=%s: not a valid %s", key, value, v.Type())
	}
	p := reflect.New(v.Type())
	if err := node.Decode(p.Interface()); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return fmt.Errorf("config: %s=%s: not a valid %s", key, value, v.Type())
		}
		return fmt.Errorf("config: %s=%s: %w", key, value, err)
	}
	v.Set(p.Elem())
	return nil
}

// Apply applies "key=value" overrides in order (see Set).
func (c *Config) Apply(overrides []string) error {
	for _, o := range overrides {
		k, val, ok := strings.Cut(o, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("config: override %q: want key=value", o)
		}
		if err := c.Set(strings.TrimSpace(k), val); err != nil {
			return err
		}
	}
	return nil
}

// Get returns the value of the dotted key as YAML text.
func (c *Config) Get(key string) (string, error) {
	v, err := c.lookup(key)
	if err != nil {
		return "", err
	}
	b, err := yaml.Marshal(v.Interface())
	if err != nil {
		return "", fmt.Errorf("config: %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// YAML returns the whole configuration as a YAML document that Decode reads back to c.
func (c *Config) YAML() []byte {
	var b bytes.Buffer
	e := yaml.NewEncoder(&b)
	e.SetIndent(2)
	if err := e.Encode(c); err != nil {
		panic(err) // plain struct of scalars and lists: cannot fail
	}
	e.Close()
	return b.Bytes()
}

// Budget returns the parsed tool-budget schedule. It returns an error naming the key.
func (c *Config) Budget() (rl.Budget, error) {
	b, err := rl.ParseBudget(c.Rollout.MaxCalls)
	if err != nil {
		return nil, fmt.Errorf("config: rollout.max_calls: %w", err)
	}
	return b, nil
}

// PPO returns the clipping parameters of the RL section.
func (c *Config) PPO() rl.PPO {
	return rl.PPO{ClipLow: c.RL.ClipLow, ClipHigh: c.RL.ClipHigh, DualClipC: c.RL.DualClipC}
}

// LR returns the learning-rate schedule of the optimizer section over run.steps.
func (c *Config) LR() rl.LR {
	return rl.LR{Kind: rl.LRKind(c.Optim.Schedule), Base: c.Optim.LR, Warmup: c.Optim.WarmupSteps,
		Total: c.Run.Steps, MinRatio: c.Optim.MinLRRatio}
}

// SFTLR returns the learning-rate schedule of the warm-up over sft.steps.
func (c *Config) SFTLR() rl.LR {
	return rl.LR{Kind: rl.LRKind(c.SFT.Schedule), Base: c.SFT.LR, Warmup: c.SFT.WarmupSteps,
		Total: c.SFT.Steps, MinRatio: c.SFT.MinLRRatio}
}

// Validate checks every value against its domain; the error names the key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, a...)))
	}
	pos := func(key string, v int) {
		if v < 1 {
			bad(key, "%d, want ≥ 1", v)
		}
	}
	nonneg := func(key string, v float64) {
		if !(v >= 0) {
			bad(key, "%v, want ≥ 0", v)
		}
	}
	if c.Model.Dir != "" && c.Model.Init != "" {
		bad("model.init", "set only one of model.dir and model.init")
	}
	if err := c.Data.PromptSettings.Validate("config: data."); err != nil {
		errs = append(errs, err)
	}
	if !c.Data.Toy.Enabled && len(c.Data.Train) == 0 {
		bad("data.train", "no training data (set data.train, or data.toy.enabled=true)")
	}
	if c.Data.Toy.Enabled {
		pos("data.toy.train", c.Data.Toy.Train)
		if c.Data.Toy.Eval < 0 {
			bad("data.toy.eval", "%d, want ≥ 0", c.Data.Toy.Eval)
		}
	}
	if c.SFT.Steps < 0 {
		bad("sft.steps", "%d, want ≥ 0", c.SFT.Steps)
	}
	if c.SFT.Steps > 0 {
		pos("sft.batch_size", c.SFT.BatchSize)
		nonneg("sft.lr", c.SFT.LR)
		if err := c.SFTLR().Validate(); err != nil {
			bad("sft.schedule", "%v", err)
		}
	}
	r := c.Rollout
	pos("rollout.n", r.N)
	pos("rollout.prompts_per_step", r.PromptsPerStep)
	if r.Slots < 0 {
		bad("rollout.slots", "%d, want ≥ 0 (0: the rank's share of a step)", r.Slots)
	}
	if err := r.Settings.Validate("config: rollout.", false); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.Budget(); err != nil {
		errs = append(errs, err)
	}
	if _, err := rl.ParseEstimator(c.RL.Estimator); err != nil {
		bad("rl.estimator", "%v", err)
	}
	if _, err := rl.ParseWhiten(c.RL.WhitenOver); err != nil {
		bad("rl.whiten_over", "%v", err)
	}
	if _, err := rl.ParseAgg(c.RL.LossAgg); err != nil {
		bad("rl.loss_agg", "%v", err)
	}
	if _, err := rl.ParseKLType(c.RL.KLType); err != nil {
		bad("rl.kl_type", "%v", err)
	}
	if err := c.PPO().Validate(); err != nil {
		bad("rl.clip_low/clip_high/dual_clip_c", "%v", err)
	}
	nonneg("rl.kl_coef", c.RL.KLCoef)
	nonneg("rl.overlong_factor", c.RL.OverlongFactor)
	if c.RL.OverlongBuffer < 0 || c.RL.OverlongBuffer > r.MaxResponse {
		bad("rl.overlong_buffer", "%d, want in [0, rollout.max_response]", c.RL.OverlongBuffer)
	}
	if c.RL.MaxResample < 0 {
		bad("rl.max_resample", "%d, want ≥ 0", c.RL.MaxResample)
	}
	pos("rl.ppo_epochs", c.RL.PPOEpochs)
	if _, err := c.Reward.Checker(); err != nil {
		errs = append(errs, err)
	}
	o := c.Optim
	if err := c.LR().Validate(); err != nil {
		bad("optim.schedule/lr/warmup_steps", "%v", err)
	}
	if !(o.Beta1 >= 0 && o.Beta1 < 1) {
		bad("optim.beta1", "%v, want in [0, 1)", o.Beta1)
	}
	if !(o.Beta2 >= 0 && o.Beta2 < 1) {
		bad("optim.beta2", "%v, want in [0, 1)", o.Beta2)
	}
	if !(o.Eps > 0) {
		bad("optim.eps", "%v, want > 0", o.Eps)
	}
	nonneg("optim.weight_decay", o.WeightDecay)
	nonneg("optim.grad_clip", o.GradClip)
	pos("optim.mini_batches", o.MiniBatches)
	if o.MiniBatches > r.PromptsPerStep {
		bad("optim.mini_batches", "%d mini-batches but %d prompts a step", o.MiniBatches, r.PromptsPerStep)
	}
	if o.MicroTokens < r.MaxPrompt+r.MaxResponse {
		bad("optim.micro_tokens", "%d cannot hold one sequence of max_prompt+max_response = %d tokens", o.MicroTokens, r.MaxPrompt+r.MaxResponse)
	}
	if c.Run.Steps < 0 {
		bad("run.steps", "%d, want ≥ 0", c.Run.Steps)
	}
	if c.Run.EvalMaxCalls < -1 {
		bad("run.eval_max_calls", "%d, want ≥ 0, or -1 for the budget of the last step", c.Run.EvalMaxCalls)
	}
	if c.Compare.MaxCalls != "" {
		if _, err := rl.ParseBudget(c.Compare.MaxCalls); err != nil {
			bad("compare.max_calls", "%v", err)
		}
	}
	if c.Run.OutDir == "" {
		bad("run.out_dir", "empty")
	}
	for _, k := range []struct {
		key string
		v   int
	}{{"run.save_every", c.Run.SaveEvery}, {"run.keep_last", c.Run.KeepLast}, {"run.eval_every", c.Run.EvalEvery}, {"run.threads", c.Run.Threads}} {
		if k.v < 0 {
			bad(k.key, "%d, want ≥ 0", k.v)
		}
	}
	pos("run.eval_n", c.Run.EvalN)
	if _, err := ParseDevices(c.Run.Device); err != nil {
		bad("run.device", "%v", err)
	}
	return errors.Join(errs...)
}
