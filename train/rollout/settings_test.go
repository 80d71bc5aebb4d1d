package rollout

import (
	"strings"
	"testing"
	"time"

	"cir/train/sandbox"
)

// TestSandboxConfig: every sandbox setting reaches the sandbox's Config, in its units.
func TestSandboxConfig(t *testing.T) {
	s := DefaultSettings()
	s.Sandbox = SandboxSettings{Workers: 3, Timeout: 2.5, CPUTime: 4, MemoryBytes: 5 << 20, TotalMemoryBytes: 6 << 20,
		MaxOutputBytes: 7000, MaxFileBytes: 8000, MaxOpenFiles: 9, MaxProcs: 10, TmpBytes: 11 << 20,
		Python: "/usr/bin/python3.x", Lazy: true, Unsafe: true}
	c := s.SandboxConfig(100)
	if c.MaxSessions != sandbox.DefaultConfig().MaxSessions {
		t.Errorf("stateless: MaxSessions = %d, want the default", c.MaxSessions)
	}
	s.Stateful = true
	if c := s.SandboxConfig(100); c.MaxSessions != 100 {
		t.Errorf("stateful, 100 trajectories in flight: MaxSessions = %d, want 100", c.MaxSessions)
	}
	if c.Workers != 3 || c.Timeout != 2500*time.Millisecond || c.CPUTime != 4*time.Second || c.MemoryBytes != 5<<20 ||
		c.TotalMemoryBytes != 6<<20 || c.MaxOutputBytes != 7000 || c.MaxFileBytes != 8000 || c.MaxOpenFiles != 9 ||
		c.MaxProcs != 10 || c.TmpBytes != 11<<20 || c.Python != "/usr/bin/python3.x" || !c.Lazy || !c.Unsafe || c.Logf == nil {
		t.Errorf("SandboxConfig = %+v", c)
	}
	r := s.Config(4, 2, []int32{9}, 7)
	if r.N != 4 || r.MaxCalls != 2 || r.MaxNew != s.MaxResponse || r.Seed != 7 || r.CallTimeout != 60*time.Second ||
		r.Sample.Temperature != 1 || r.Sample.TopP != 1 {
		t.Errorf("Config = %+v", r)
	}
}

func TestSettingsValidate(t *testing.T) {
	if err := DefaultSettings().Validate("rollout.", false); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	s := DefaultSettings()
	s.Temperature, s.Sandbox.Timeout, s.Sandbox.Python = 0, 0, ""
	if err := s.Validate("rollout.", true); err == nil || strings.Contains(err.Error(), "temperature") ||
		!strings.Contains(err.Error(), "rollout.sandbox.timeout") || !strings.Contains(err.Error(), "rollout.sandbox.python") {
		t.Errorf("greedy allowed: %v", err)
	}
	if err := s.Validate("rollout.", false); err == nil || !strings.Contains(err.Error(), "rollout.temperature") {
		t.Errorf("training at temperature 0: %v", err)
	}
}
