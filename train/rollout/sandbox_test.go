package rollout

import (
	"context"
	"errors"
	"testing"
	"time"

	"cir/train/sandbox"
)

// TestSandbox runs scripted trajectories against the real sandbox pool: outputs, error kinds,
// a timeout and stateful sessions come back through the adapter.
func TestSandbox(t *testing.T) {
	ctx := context.Background()
	cfg := sandbox.DefaultConfig()
	cfg.Workers, cfg.Timeout, cfg.Lazy = 2, 2*time.Second, true
	pool, err := sandbox.New(ctx, cfg)
	if errors.Is(err, sandbox.ErrNoSandbox) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if c := NewSandbox(pool).Concurrency(); c != 2 {
		t.Errorf("Concurrency() = %d, want the pool's 2 workers", c)
	}
	block := func(code string) []int32 { return seqOf(tOpen, code, tFenceNL) }
	scripts := map[string][][]int32{
		"ok\n":      {block("print(6*7)\n"), seqOf("fine")},
		"raise\n":   {block("1/0\n"), seqOf("oops")},
		"timeout\n": {block("while True: pass\n"), seqOf("slow")},
		"state\n":   {block("x = 5\n"), block("print(x + 1)\n"), seqOf("six")},
	}
	want := map[string][]wantCall{
		"ok\n":      {{"print(6*7)\n", "42", KindOK}},
		"raise\n":   {{"1/0\n", "ZeroDivisionError: division by zero", KindError}},
		"timeout\n": {{"while True: pass\n", "Timeout Error", KindTimeout}},
		"state\n":   {{"x = 5\n", "", KindOK}, {"print(x + 1)\n", "6", KindOK}},
	}
	order := []string{"ok\n", "raise\n", "timeout\n", "state\n"}
	var prompts [][]int32
	for _, p := range order {
		prompts = append(prompts, bytesOf(p))
	}
	e := &Engine{Policy: newFake(4, 256, scripted(scripts)), Tok: testTok{}, Exec: NewSandbox(pool), Config: Config{
		Sample: greedy, N: 1, EOS: []int32{tEOS}, MaxCalls: 2, Stateful: true,
	}}
	trs, st, err := e.Run(ctx, prompts)
	if err != nil {
		t.Fatal(err)
	}
	for i, tr := range trs {
		checkTrajectory(t, tr, prompts[i])
		w := want[order[i]]
		if len(tr.Calls) != len(w) {
			t.Fatalf("%q: calls %+v, want %d", order[i], tr.Calls, len(w))
		}
		for j, c := range tr.Calls {
			if c.Code != w[j].code || c.Output != w[j].output || c.Kind != w[j].kind {
				t.Errorf("%q call %d: {%q %q %s}, want {%q %q %s}", order[i], j, c.Code, c.Output, c.Kind, w[j].code, w[j].output, w[j].kind)
			}
		}
		if tr.Finish != FinishEOS {
			t.Errorf("%q: finish %s", order[i], tr.Finish)
		}
	}
	t.Logf("wall %v, idle %v (%.0f%%), tool time %v", st.Wall, st.Idle, 100*st.IdleShare(), st.ToolTime)
}
