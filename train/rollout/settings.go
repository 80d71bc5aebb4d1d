package rollout

import (
	"errors"
	"fmt"
	"time"

	"cir/engine"
	"cir/train/sandbox"
)

// Settings are the sampling and interpreter settings that train, eval and generate share:
// one struct with one set of defaults (DefaultSettings), read from a run config's rollout
// section (the yaml keys) or from command-line flags (the same names, "-" for "_" and ".").
type Settings struct {
	Temperature float64 `yaml:"temperature" help:"sampling temperature; 0 is greedy (training needs > 0)"`
	TopP        float64 `yaml:"top_p" help:"nucleus sampling threshold in (0, 1]"`
	TopK        int     `yaml:"top_k" help:"keep the K most likely tokens; 0 keeps all"`
	MaxPrompt   int     `yaml:"max_prompt" help:"longest prompt in tokens"`
	MaxResponse int     `yaml:"max_response" help:"most tokens after the prompt (policy and tool)"`
	// MaxCalls is the tool budget: a schedule "step:calls,..." for training, or one number.
	// Outside training (eval, generate) the schedule's last budget applies.
	MaxCalls    string          `yaml:"max_calls" help:"code executions per answer: a number, or a schedule step:calls,... (the last budget outside training)"`
	Stateful    bool            `yaml:"stateful" help:"keep one Python session per answer"`
	CallTimeout float64         `yaml:"call_timeout" help:"seconds the rollout waits for one execution before showing Timeout Error"`
	Sandbox     SandboxSettings `yaml:"sandbox"`
}

// SandboxSettings are the settings of the sandbox pool (sandbox.Config), in seconds and bytes;
// 0 means the sandbox's default where the help says so.
type SandboxSettings struct {
	Workers          int     `yaml:"workers" help:"warm sandbox workers (executions at once); 0: max(2, cores)"`
	Timeout          float64 `yaml:"timeout" help:"wall-time limit of one execution in seconds"`
	CPUTime          float64 `yaml:"cpu_time" help:"CPU-time limit of one execution in seconds; 0: timeout + 1"`
	MemoryBytes      int64   `yaml:"memory_bytes" help:"address space of one sandboxed process in bytes"`
	TotalMemoryBytes int64   `yaml:"total_memory_bytes" help:"memory of a worker's sandbox, all its processes, in bytes; 0: memory_bytes"`
	MaxOutputBytes   int     `yaml:"max_output_bytes" help:"stdout bytes captured per execution"`
	MaxFileBytes     int64   `yaml:"max_file_bytes" help:"largest file an execution may write, in bytes"`
	MaxOpenFiles     int     `yaml:"max_open_files" help:"open files per sandboxed process"`
	MaxProcs         int     `yaml:"max_procs" help:"processes per execution"`
	TmpBytes         int64   `yaml:"tmp_bytes" help:"size of the sandbox's private /tmp in bytes"`
	Python           string  `yaml:"python" help:"the sandbox's Python interpreter"`
	Lazy             bool    `yaml:"lazy" help:"import numpy and sympy on the first execution, not at start"`
	Unsafe           bool    `yaml:"unsafe" help:"run Python without bubblewrap (rlimits only), for machines without bwrap"`
}

// DefaultBudget is the default tool-budget schedule (the paper's curriculum), in the form of
// Settings.MaxCalls.
const DefaultBudget = "0:2,100:3,200:4"

// DefaultSettings returns the defaults of DESIGN.md: temperature 1, top-p 1, prompts up to
// 1024 and responses up to 4096 tokens, the budget schedule 2 → 3 at step 100 → 4 at step
// 200, stateless sessions, and the sandbox's own defaults (5 s per execution).
func DefaultSettings() Settings {
	d := sandbox.DefaultConfig()
	return Settings{Temperature: 1, TopP: 1, MaxPrompt: 1024, MaxResponse: 4096, MaxCalls: DefaultBudget,
		CallTimeout: 60,
		Sandbox: SandboxSettings{Timeout: d.Timeout.Seconds(), MemoryBytes: d.MemoryBytes,
			MaxOutputBytes: d.MaxOutputBytes, MaxFileBytes: d.MaxFileBytes, MaxOpenFiles: d.MaxOpenFiles,
			MaxProcs: d.MaxProcs, TmpBytes: d.TmpBytes, Python: d.Python}}
}

// Sample returns the sampling rule of s.
func (s Settings) Sample() engine.SampleParams {
	return engine.SampleParams{Temperature: float32(s.Temperature), TopP: float32(s.TopP), TopK: s.TopK}
}

func seconds(x float64) time.Duration { return time.Duration(x * float64(time.Second)) }

// SandboxConfig returns the sandbox pool configuration of s for up to inFlight trajectories
// decoded at once: with Stateful, each holds a session, so the pool allows at least that many.
func (s Settings) SandboxConfig(inFlight int) sandbox.Config {
	x := s.Sandbox
	c := sandbox.DefaultConfig()
	c.Workers = x.Workers
	c.Timeout = seconds(x.Timeout)
	c.CPUTime = seconds(x.CPUTime)
	c.MemoryBytes, c.TotalMemoryBytes = x.MemoryBytes, x.TotalMemoryBytes
	c.MaxOutputBytes, c.MaxFileBytes = x.MaxOutputBytes, x.MaxFileBytes
	c.MaxOpenFiles, c.MaxProcs, c.TmpBytes = x.MaxOpenFiles, x.MaxProcs, x.TmpBytes
	c.Python, c.Lazy, c.Unsafe = x.Python, x.Lazy, x.Unsafe
	if s.Stateful {
		c.MaxSessions = max(c.MaxSessions, inFlight)
	}
	return c
}

// Config returns the run configuration of s for n samples per prompt with a budget of
// maxCalls executions, the end-of-sequence ids and a seed.
func (s Settings) Config(n, maxCalls int, eos []int32, seed uint64) Config {
	return Config{Sample: s.Sample(), N: n, EOS: eos, MaxNew: s.MaxResponse, MaxCalls: maxCalls,
		Stateful: s.Stateful, Seed: seed, CallTimeout: seconds(s.CallTimeout)}
}

// Validate checks every setting but the budget schedule (which package rl parses); the error
// names the key (prefix + yaml key). greedyOK allows temperature 0 (evaluation and
// generation; training needs a positive temperature).
func (s Settings) Validate(prefix string, greedyOK bool) error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s%s: %s", prefix, key, fmt.Sprintf(format, a...)))
	}
	switch {
	case greedyOK && !(s.Temperature >= 0):
		bad("temperature", "%v, want ≥ 0", s.Temperature)
	case !greedyOK && !(s.Temperature > 0):
		bad("temperature", "%v, want > 0", s.Temperature)
	}
	if !(s.TopP > 0 && s.TopP <= 1) {
		bad("top_p", "%v, want in (0, 1]", s.TopP)
	}
	if s.TopK < 0 {
		bad("top_k", "%d, want ≥ 0", s.TopK)
	}
	if s.MaxPrompt < 1 {
		bad("max_prompt", "%d, want ≥ 1", s.MaxPrompt)
	}
	if s.MaxResponse < 1 {
		bad("max_response", "%d, want ≥ 1", s.MaxResponse)
	}
	if !(s.CallTimeout > 0) {
		bad("call_timeout", "%v, want > 0 seconds", s.CallTimeout)
	}
	x := s.Sandbox
	if x.Workers < 0 {
		bad("sandbox.workers", "%d, want ≥ 0", x.Workers)
	}
	if !(x.Timeout > 0 && x.Timeout <= 3600) {
		bad("sandbox.timeout", "%v, want seconds in (0, 3600]", x.Timeout)
	}
	if !(x.CPUTime >= 0 && x.CPUTime <= 3600) {
		bad("sandbox.cpu_time", "%v, want seconds in [0, 3600]", x.CPUTime)
	}
	for _, v := range []struct {
		key string
		n   int64
	}{{"sandbox.memory_bytes", x.MemoryBytes}, {"sandbox.max_output_bytes", int64(x.MaxOutputBytes)},
		{"sandbox.max_file_bytes", x.MaxFileBytes}, {"sandbox.max_open_files", int64(x.MaxOpenFiles)},
		{"sandbox.max_procs", int64(x.MaxProcs)}, {"sandbox.tmp_bytes", x.TmpBytes}} {
		if v.n < 1 {
			bad(v.key, "%d, want ≥ 1", v.n)
		}
	}
	if x.TotalMemoryBytes < 0 {
		bad("sandbox.total_memory_bytes", "%d, want ≥ 0", x.TotalMemoryBytes)
	}
	if x.Python == "" {
		bad("sandbox.python", "empty")
	}
	return errors.Join(errs...)
}
