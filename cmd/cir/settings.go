package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"

	"cir/train/config"
	"cir/train/data"
	"cir/train/rl"
	"cir/train/rollout"
)

// runSettings are the sampling, sandbox and prompt settings of eval, generate and template:
// the same struct and defaults as a run config's rollout and data sections, as flags named
// after the yaml keys ("-" for "_", sandbox ones prefixed "sandbox-"). The prompt settings
// a model directory was trained with (data.PromptFile) replace the defaults; a run config
// given with --config replaces both; flags given explicitly override everything.
type runSettings struct {
	fs     *flag.FlagSet
	S      rollout.Settings
	P      data.PromptSettings
	config *string
	kwargs *string
}

// addSettings registers the settings flags on fs. sampling adds the sampling and sandbox
// flags; the prompt flags are always added.
func addSettings(fs *flag.FlagSet, sampling bool) *runSettings {
	r := &runSettings{fs: fs, S: rollout.DefaultSettings(), P: data.DefaultPromptSettings()}
	r.config = fs.String("config", "", "run config (YAML) to take the rollout and data settings from; flags override it")
	if sampling {
		addStructFlags(fs, reflect.ValueOf(&r.S).Elem(), "")
	}
	fs.StringVar(&r.P.Template, "template", r.P.Template, "prompt template: cir (the model's chat template and the CIR instruction) or toy (default: as the model's cir_prompt.json says, else cir)")
	fs.StringVar(&r.P.Instruction, "instruction", r.P.Instruction, "CIR instruction: auto (unless the text has it), always or never (default: as the model's cir_prompt.json says, else auto)")
	fs.StringVar(&r.P.System, "system", r.P.System, "system message (empty: the chat template's default)")
	r.kwargs = fs.String("chat-template-kwargs", "", "further chat template variables as a JSON object, e.g. '{\"enable_thinking\": false}'")
	return r
}

// addStructFlags adds a flag for each yaml-tagged field of the struct v (pointing into it).
func addStructFlags(fs *flag.FlagSet, v reflect.Value, prefix string) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		name := prefix + strings.ReplaceAll(key, "_", "-")
		help := f.Tag.Get("help")
		p := v.Field(i).Addr().Interface()
		switch x := p.(type) {
		case *float64:
			fs.Float64Var(x, name, *x, help)
		case *int:
			fs.IntVar(x, name, *x, help)
		case *int64:
			fs.Int64Var(x, name, *x, help)
		case *string:
			fs.StringVar(x, name, *x, help)
		case *bool:
			fs.BoolVar(x, name, *x, help)
		default:
			if f.Type.Kind() == reflect.Struct {
				addStructFlags(fs, v.Field(i), name+"-")
				continue
			}
			panic(fmt.Sprintf("settings flag %s: unsupported type %s", name, f.Type))
		}
	}
}

// resolve applies the prompt settings of the model directory dir (none when empty or when it
// has no data.PromptFile), then --config, then the flags given explicitly again on top, and
// --chat-template-kwargs, and validates the settings.
func (r *runSettings) resolve(dir string) error {
	hint := "see 'cir " + r.fs.Name() + " --help'"
	set := map[string]string{}
	r.fs.Visit(func(f *flag.Flag) { set[f.Name] = f.Value.String() })
	reset := false
	if dir != "" {
		p, err := data.LoadPromptSettings(dir)
		switch {
		case err == nil:
			r.P, reset = p, true
		case !errors.Is(err, fs.ErrNotExist):
			return errorf("delete or mend the file; flags override it", "%s: %v", r.fs.Name(), err)
		}
	}
	if *r.config != "" {
		b, err := os.ReadFile(*r.config)
		if err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		c := config.Default()
		if err := c.Decode(b); err != nil {
			return fmt.Errorf("--config %s: %w", *r.config, err)
		}
		r.S, r.P, reset = c.Rollout.Settings, c.Data.PromptSettings, true
	}
	for name, v := range set {
		if !reset || name == "config" {
			continue
		}
		if err := r.fs.Set(name, v); err != nil {
			return errorf(hint, "%s: --%s: %v", r.fs.Name(), name, err)
		}
	}
	if *r.kwargs != "" {
		if err := json.Unmarshal([]byte(*r.kwargs), &r.P.TemplateArgs); err != nil {
			return errorf(hint, "%s: --chat-template-kwargs: want a JSON object: %v", r.fs.Name(), err)
		}
	}
	if err := r.P.Validate("--"); err != nil {
		return errorf(hint, "%s: %v", r.fs.Name(), err)
	}
	if err := r.S.Validate("", true); err != nil {
		return errorf(hint, "%s: %s", r.fs.Name(), flagNames(err.Error()))
	}
	return nil
}

// flagNames rewrites the yaml keys of a settings error as flag names.
func flagNames(msg string) string {
	var out []string
	for _, line := range strings.Split(msg, "\n") {
		key, rest, ok := strings.Cut(line, ": ")
		if ok {
			line = "--" + strings.NewReplacer("_", "-", ".", "-").Replace(key) + ": " + rest
		}
		out = append(out, line)
	}
	return strings.Join(out, "; ")
}

// maxCalls is the tool budget outside training: the last budget of the schedule.
func (r *runSettings) maxCalls() (int, error) {
	b, err := rl.ParseBudget(r.S.MaxCalls)
	if err != nil {
		return 0, errorf("give a number or step:calls,...", "%s: --max-calls: %v", r.fs.Name(), err)
	}
	return b[len(b)-1].MaxCalls, nil
}

// interruptContext returns a context that the first SIGINT or SIGTERM cancels (the command
// then stops and, for train, writes a checkpoint); a second one exits at once with status 130.
// stop releases the signals.
func interruptContext(log io.Writer) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			fmt.Fprintf(log, "\n%v: stopping (again to exit at once)\n", s)
			cancel()
		case <-done:
			return
		}
		select {
		case s := <-ch:
			fmt.Fprintf(log, "%v: exiting at once\n", s)
			os.Exit(130)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel()
	}
}
