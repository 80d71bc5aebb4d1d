// Package compare runs the job that shows what the tool-budget schedule is for
// (configs/toy-multicall.yaml, `make run-multicall`): one supervised warm-up, then the same RL
// steps from it twice, with the budget schedule of rollout.max_calls and with
// compare.max_calls (the budget held at one call), same seed and same prompts, each evaluated
// on the same held-out problems, per kind, with the same budget. Each phase is an ordinary
// train.Run in a folder of its own under run.out_dir (warmup, schedule, fixed: checkpoints,
// metrics.jsonl, eval.json, curves), so an interrupted job continues with run.resume.
package compare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"cir/train"
	"cir/train/config"
	"cir/train/data"
	"cir/train/metrics"
)

// ReportFile and PlotFile are what Run writes into run.out_dir besides the phases' folders.
const (
	ReportFile = "compare.json"
	PlotFile   = "compare.png"
)

// Arm is one evaluated model of the comparison: the warm-up's (before RL) or one RL run's.
type Arm struct {
	Name       string `json:"name"`
	MaxCalls   string `json:"max_calls,omitempty"` // the budget schedule of its RL steps
	Dir        string `json:"dir"`                 // the phase's folder
	Checkpoint string `json:"checkpoint"`
	// Acc and Calls are the held-out accuracy and the executed calls per answer of each kind.
	Acc   map[string]float64 `json:"acc"`
	Calls map[string]float64 `json:"calls"`
	// AccAll is the accuracy over all held-out problems; NoToolsAcc the same without tools.
	AccAll     float64 `json:"acc_all"`
	NoToolsAcc float64 `json:"no_tools_acc"`
	// Composed... and Transfer... are means over the composed kinds and over those of them
	// whose chains the warm-up did not demonstrate (nil without such kinds).
	ComposedAcc   *float64 `json:"composed_acc,omitempty"`
	ComposedCalls *float64 `json:"composed_calls,omitempty"`
	TransferAcc   *float64 `json:"transfer_acc,omitempty"`
	TransferCalls *float64 `json:"transfer_calls,omitempty"`
	// SecondCallStep is the first RL step, counted as rollout.max_calls counts them (steps
	// done before it), in which a trajectory executed two calls; nil when none did.
	SecondCallStep *int `json:"second_call_step"`
	// Steps are the RL steps' metrics (step, max_calls, tool_calls, tool_calls_max, accuracy).
	Steps []metrics.Record `json:"steps,omitempty"`
}

// Report is the comparison, written as compare.json.
type Report struct {
	EvalMaxCalls int `json:"eval_max_calls"` // the budget of every held-out evaluation
	// SecondCallOpens is the first step at which the schedule of the scheduled run allows two
	// calls (nil: never).
	SecondCallOpens *int     `json:"second_call_opens"`
	Kinds           []string `json:"kinds"`
	Composed        []string `json:"composed"` // the composed kinds among Kinds
	Transfer        []string `json:"transfer"` // the composed kinds without chain demonstrations
	BeforeRL        Arm      `json:"before_rl"`
	Schedule        Arm      `json:"schedule"`
	Fixed           Arm      `json:"fixed"`
	Plot            string   `json:"plot,omitempty"`
	Minutes         float64  `json:"minutes"`
}

// Summary is the last line `cir train` prints for a comparison.
type Summary struct {
	ComposedAccBeforeRL   *float64 `json:"composed_acc_before_rl"`
	ComposedAccSchedule   *float64 `json:"composed_acc_schedule"`
	ComposedAccFixed      *float64 `json:"composed_acc_fixed"`
	ComposedCallsBeforeRL *float64 `json:"composed_calls_before_rl"`
	ComposedCallsSchedule *float64 `json:"composed_calls_schedule"`
	ComposedCallsFixed    *float64 `json:"composed_calls_fixed"`
	TransferAccBeforeRL   *float64 `json:"transfer_acc_before_rl,omitempty"`
	TransferAccSchedule   *float64 `json:"transfer_acc_schedule,omitempty"`
	TransferAccFixed      *float64 `json:"transfer_acc_fixed,omitempty"`
	AccBeforeRL           float64  `json:"acc_before_rl"`
	AccSchedule           float64  `json:"acc_schedule"`
	AccFixed              float64  `json:"acc_fixed"`
	// SecondCallOpens is the step at which the schedule allows a second call (nil: never);
	// SecondCallStep the first step at which a trajectory of the scheduled run made one.
	SecondCallOpens *int    `json:"second_call_opens"`
	SecondCallStep  *int    `json:"second_call_step"`
	Report          string  `json:"report"`
	Plot            string  `json:"plot,omitempty"`
	Minutes         float64 `json:"minutes"`
}

// Summary returns the summary line of r, its file at path.
func (r *Report) Summary(path string) Summary {
	return Summary{
		ComposedAccBeforeRL: r.BeforeRL.ComposedAcc, ComposedAccSchedule: r.Schedule.ComposedAcc, ComposedAccFixed: r.Fixed.ComposedAcc,
		ComposedCallsBeforeRL: r.BeforeRL.ComposedCalls, ComposedCallsSchedule: r.Schedule.ComposedCalls, ComposedCallsFixed: r.Fixed.ComposedCalls,
		TransferAccBeforeRL: r.BeforeRL.TransferAcc, TransferAccSchedule: r.Schedule.TransferAcc, TransferAccFixed: r.Fixed.TransferAcc,
		AccBeforeRL: r.BeforeRL.AccAll, AccSchedule: r.Schedule.AccAll, AccFixed: r.Fixed.AccAll,
		SecondCallOpens: r.SecondCallOpens, SecondCallStep: r.Schedule.SecondCallStep, Report: path, Plot: r.Plot, Minutes: r.Minutes,
	}
}

// Run runs the comparison of cfg (compare.max_calls set): the warm-up with run.steps 0, then
// the scheduled and the fixed-budget RL runs from its checkpoint, and writes compare.json and
// compare.png into run.out_dir. Progress goes to opt.Log. An interrupted phase returns its
// *train.InterruptError; run.resume continues the job where it stopped.
func Run(ctx context.Context, cfg config.Config, opt train.Options) (*Report, error) {
	start := time.Now()
	if cfg.Compare.MaxCalls == "" {
		return nil, fmt.Errorf("compare.max_calls: empty, want the budget schedule to compare with")
	}
	log := opt.Log
	if log == nil {
		log = io.Discard
	}
	budget, err := cfg.Budget()
	if err != nil {
		return nil, err
	}
	r := &Report{EvalMaxCalls: cfg.Run.EvalMaxCalls}
	if r.EvalMaxCalls < 0 {
		for _, s := range budget {
			r.EvalMaxCalls = max(r.EvalMaxCalls, s.MaxCalls)
		}
	}
	for _, s := range budget {
		if s.MaxCalls >= 2 {
			r.SecondCallOpens = &s.Step
			break
		}
	}
	if err := r.setKinds(cfg); err != nil {
		return nil, err
	}
	out := cfg.Run.OutDir
	phase := func(title string, c config.Config) (*train.Summary, error) {
		c.Compare = config.Compare{}
		c.Run.EvalMaxCalls = r.EvalMaxCalls
		fmt.Fprintf(log, "== %s (%s)\n", title, c.Run.OutDir)
		t, err := train.NewTrainer(ctx, c, opt)
		if err != nil {
			return nil, err
		}
		defer t.Close()
		return t.Run(ctx)
	}

	w := cfg
	w.Run.Steps, w.Run.OutDir = 0, filepath.Join(out, "warmup")
	w.Optim.Schedule, w.Optim.WarmupSteps = "constant", 0 // no RL step: any schedule would do
	ws, err := phase("warm-up", w)
	if err != nil {
		return nil, err
	}
	if r.BeforeRL, err = r.arm("before_rl", "", w.Run.OutDir, ws); err != nil {
		return nil, err
	}
	for _, a := range []struct {
		arm      *Arm
		name     string
		maxCalls string
		title    string
	}{
		{&r.Schedule, "schedule", cfg.Rollout.MaxCalls, "RL with the budget schedule " + cfg.Rollout.MaxCalls},
		{&r.Fixed, "fixed", cfg.Compare.MaxCalls, "RL with the budget " + cfg.Compare.MaxCalls},
	} {
		c := cfg
		c.Model.Dir, c.Model.Init = ws.Checkpoint, ""
		c.SFT.Steps = 0
		c.Rollout.MaxCalls = a.maxCalls
		c.Run.OutDir = filepath.Join(out, a.name)
		s, err := phase(a.title, c)
		if err != nil {
			return nil, err
		}
		if *a.arm, err = r.arm(a.name, a.maxCalls, c.Run.OutDir, s); err != nil {
			return nil, err
		}
	}

	r.Plot = filepath.Join(out, PlotFile)
	if err := r.PlotFile(r.Plot); err != nil {
		fmt.Fprintf(log, "plot: %v\n", err)
		r.Plot = ""
	}
	r.Minutes = time.Since(start).Minutes()
	r.Table(log)
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return r, os.WriteFile(filepath.Join(out, ReportFile), append(b, '\n'), 0o644)
}

// setKinds fills the kind lists of r from the toy settings of cfg (data files: none composed).
func (r *Report) setKinds(cfg config.Config) error {
	if !cfg.Data.Toy.Enabled {
		return nil
	}
	kinds, err := data.ParseKinds(cfg.Data.Toy.Kinds)
	if err != nil {
		return fmt.Errorf("data.toy.kinds: %w", err)
	}
	chains, err := data.ParseChainDemos(cfg.Data.Toy.ChainDemos)
	if err != nil {
		return fmt.Errorf("data.toy.chain_demos: %w", err)
	}
	for _, k := range kinds {
		r.Kinds = append(r.Kinds, string(k))
		if !k.Basic() {
			r.Composed = append(r.Composed, string(k))
			if chains[k] == 0 {
				r.Transfer = append(r.Transfer, string(k))
			}
		}
	}
	return nil
}

// arm makes the Arm of a finished phase from its final held-out evaluation (for the warm-up,
// with no RL step, that of the model before RL; a resumed phase makes it again) and its
// metrics.
func (r *Report) arm(name, maxCalls, dir string, s *train.Summary) (Arm, error) {
	ev, ok := s.Evals["heldout_tools"]
	if !ok {
		return Arm{}, fmt.Errorf("compare: %s: no held-out evaluation (no held-out problems? set data.toy.eval)", dir)
	}
	a := Arm{Name: name, MaxCalls: maxCalls, Dir: dir, Checkpoint: s.Checkpoint, Acc: ev.ByKind, Calls: ev.CallsByKind,
		AccAll: ev.AvgAtK, NoToolsAcc: s.Evals["heldout_no_tools"].AvgAtK}
	if r.Kinds == nil {
		for k := range ev.ByKind {
			r.Kinds = append(r.Kinds, k)
		}
		sort.Strings(r.Kinds)
	}
	a.ComposedAcc, a.ComposedCalls = means(a.Acc, r.Composed), means(a.Calls, r.Composed)
	a.TransferAcc, a.TransferCalls = means(a.Acc, r.Transfer), means(a.Calls, r.Transfer)
	if maxCalls == "" {
		return a, nil
	}
	recs, err := metrics.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return Arm{}, err
	}
	for _, rec := range recs {
		step := metrics.Record{}
		for _, k := range []string{"step", "max_calls", "tool_calls", "tool_calls_max", "accuracy"} {
			if v, ok := rec[k]; ok {
				step[k] = v
			}
		}
		a.Steps = append(a.Steps, step)
		if a.SecondCallStep == nil && rec["tool_calls_max"] >= 2 {
			s := int(rec["step"]) - 1 // a record's step counts the step itself
			a.SecondCallStep = &s
		}
	}
	return a, nil
}

// means is the mean of m over keys (nil when keys is empty).
func means(m map[string]float64, keys []string) *float64 {
	if len(keys) == 0 {
		return nil
	}
	s := 0.0
	for _, k := range keys {
		s += m[k]
	}
	s /= float64(len(keys))
	return &s
}

// Table writes the per-kind accuracies and calls of the three arms as a text table.
func (r *Report) Table(w io.Writer) {
	arms := []Arm{r.BeforeRL, r.Schedule, r.Fixed}
	fmt.Fprintf(w, "held-out, budget %d: accuracy (calls per answer)\n%-12s", r.EvalMaxCalls, "kind")
	for _, a := range arms {
		fmt.Fprintf(w, " %16s", a.Name)
	}
	fmt.Fprintln(w)
	row := func(name string, acc, calls func(a Arm) *float64) {
		fmt.Fprintf(w, "%-12s", name)
		for _, a := range arms {
			if x, c := acc(a), calls(a); x != nil && c != nil {
				fmt.Fprintf(w, " %9.3f (%4.2f)", *x, *c)
			} else {
				fmt.Fprintf(w, " %16s", "-")
			}
		}
		fmt.Fprintln(w)
	}
	for _, k := range r.Kinds {
		row(k, func(a Arm) *float64 { return ptr(a.Acc, k) }, func(a Arm) *float64 { return ptr(a.Calls, k) })
	}
	row("composed", func(a Arm) *float64 { return a.ComposedAcc }, func(a Arm) *float64 { return a.ComposedCalls })
	if len(r.Transfer) > 0 && len(r.Transfer) < len(r.Composed) {
		row("transfer", func(a Arm) *float64 { return a.TransferAcc }, func(a Arm) *float64 { return a.TransferCalls })
	}
	fmt.Fprintf(w, "kinds: composed %s", strings.Join(r.Composed, ", "))
	if len(r.Transfer) > 0 {
		fmt.Fprintf(w, "; transfer (no chain demonstrated) %s", strings.Join(r.Transfer, ", "))
	}
	fmt.Fprintln(w)
}

func ptr(m map[string]float64, k string) *float64 {
	v, ok := m[k]
	if !ok {
		return nil
	}
	return &v
}
