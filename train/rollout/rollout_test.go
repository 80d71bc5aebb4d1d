package rollout

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cir/engine"
)

var greedy = engine.SampleParams{Temperature: 1, TopP: 1}

type wantCall struct {
	code, output string
	kind         ErrorKind
}

type interleaveCase struct {
	name    string
	turns   [][]int32
	maxCall int
	maxNew  int
	exec    Executor
	text    string // expected response text
	calls   []wantCall
	skipped int
	finish  Finish
}

const prompt0 = "Q: what is 1+1?\n"

func interleaveCases(t *testing.T) []interleaveCase {
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	echo := &echoExec{}
	out := func(s string) string { return FormatOutput(s) }
	return []interleaveCase{
		{
			name: "fence split across tokens, newline kept",
			turns: [][]int32{
				seqOf("Compute.\n", tTicks2, "`", tPythonNL, "print(1)\n", tTicks2, tTickNL),
				seqOf("Answer 2."),
			},
			maxCall: 2, exec: echo,
			text:   "Compute.\n```python\nprint(1)\n```\n" + out("ran:print(1)") + "Answer 2.<eos>",
			calls:  []wantCall{{"print(1)\n", "ran:print(1)", KindOK}},
			finish: FinishEOS,
		},
		{
			// An empty block is not executed and does not use the budget: with a budget of
			// one, the block after it still runs.
			name: "empty block is text",
			turns: [][]int32{
				seqOf("Plan: ", tOpen, "\n  \n", tFenceNL, "then ", tOpen, "print(8)\n", tFenceNL),
				seqOf("eight"),
			},
			maxCall: 1, exec: echo,
			text:   "Plan: ```python\n\n  \n```\nthen ```python\nprint(8)\n```\n" + out("ran:print(8)") + "eight<eos>",
			calls:  []wantCall{{"print(8)\n", "ran:print(8)", KindOK}},
			finish: FinishEOS,
		},
		{
			name: "fence glued to text is cut",
			turns: [][]int32{
				seqOf("Try ", tOpen, "print(2)\n", tFenceThe, " rest is dropped"),
				seqOf("So 2."),
			},
			maxCall: 2, exec: echo,
			text:   "Try ```python\nprint(2)\n```" + out("ran:print(2)") + "So 2.<eos>",
			calls:  []wantCall{{"print(2)\n", "ran:print(2)", KindOK}},
			finish: FinishEOS,
		},
		{
			name: "fence with trailing spaces kept whole",
			turns: [][]int32{
				seqOf(tOpen, "3\n", tFenceSpaces),
				seqOf("ok"),
			},
			maxCall: 1, exec: echo,
			text:   "```python\n3\n```  \n" + out("ran:3") + "ok<eos>",
			calls:  []wantCall{{"3\n", "ran:3", KindOK}},
			finish: FinishEOS,
		},
		{
			name: "newline and fence glued to next line",
			turns: [][]int32{
				seqOf(tOpen, "4", tNLFenceSo, "we stop"),
				seqOf("four"),
			},
			maxCall: 1, exec: echo,
			text:   "```python\n4\n```" + out("ran:4") + "four<eos>",
			calls:  []wantCall{{"4\n", "ran:4", KindOK}},
			finish: FinishEOS,
		},
		{
			name: "open fence glued to text before it",
			turns: [][]int32{
				seqOf("see ", tXFence, tPythonNL, "5\n", tFenceNL),
				seqOf("five"),
			},
			maxCall: 1, exec: echo,
			text:   "see x```python\n5\n```\n" + out("ran:5") + "five<eos>",
			calls:  []wantCall{{"5\n", "ran:5", KindOK}},
			finish: FinishEOS,
		},
		{
			name: "close fence followed by an open in one token",
			turns: [][]int32{
				seqOf(tOpen, "6\n", tFenceFence, "python\nnever\n```"),
				seqOf("six"),
			},
			maxCall: 1, exec: echo,
			text:   "```python\n6\n```" + out("ran:6") + "six<eos>",
			calls:  []wantCall{{"6\n", "ran:6", KindOK}},
			finish: FinishEOS,
		},
		{
			name: "two calls",
			turns: [][]int32{
				seqOf("A ", tOpen, "a=1\n", tFenceNL),
				seqOf("B ", tOpen, "b=2\n", tFence),
				seqOf("done"),
			},
			maxCall: 2, exec: echo,
			text: "A ```python\na=1\n```\n" + out("ran:a=1") + "B ```python\nb=2\n```" + out("ran:b=2") + "done<eos>",
			calls: []wantCall{
				{"a=1\n", "ran:a=1", KindOK},
				{"b=2\n", "ran:b=2", KindOK},
			},
			finish: FinishEOS,
		},
		{
			name: "calls past the budget are not executed",
			turns: [][]int32{
				seqOf(tOpen, "c=1\n", tFenceNL),
				seqOf(tOpen, "c=2\n", tFenceThe, " text ", tOpen, "c=3\n", tFence, " end"),
			},
			maxCall: 1, exec: echo,
			text:    "```python\nc=1\n```\n" + out("ran:c=1") + "```python\nc=2\n```The text ```python\nc=3\n``` end<eos>",
			calls:   []wantCall{{"c=1\n", "ran:c=1", KindOK}},
			skipped: 2,
			finish:  FinishEOS,
		},
		{
			name:    "budget zero runs nothing",
			turns:   [][]int32{seqOf(tOpen, "d\n", tFenceThe, "!")},
			maxCall: 0,
			text:    "```python\nd\n```The!<eos>",
			skipped: 1,
			finish:  FinishEOS,
		},
		{
			name:    "code that times out",
			turns:   [][]int32{seqOf(tOpen, "while 1: pass\n", tFenceNL), seqOf("hm")},
			maxCall: 1,
			exec: ExecFunc(func(ctx context.Context, code string, _ int) ExecResult {
				<-ctx.Done()
				return ExecResult{Output: "Timeout Error", Kind: KindTimeout}
			}),
			text:   "```python\nwhile 1: pass\n```\n" + out("Timeout Error") + "hm<eos>",
			calls:  []wantCall{{"while 1: pass\n", "Timeout Error", KindTimeout}},
			finish: FinishEOS,
		},
		{
			name:    "executor that never returns is abandoned",
			turns:   [][]int32{seqOf(tOpen, "hang()\n", tFenceNL), seqOf("hm")},
			maxCall: 1,
			exec: ExecFunc(func(context.Context, string, int) ExecResult {
				<-hang
				return ExecResult{Output: "late", Kind: KindOK}
			}),
			text:   "```python\nhang()\n```\n" + out("Timeout Error") + "hm<eos>",
			calls:  []wantCall{{"hang()\n", "Timeout Error", KindTimeout}},
			finish: FinishEOS,
		},
		{
			name:    "worker crash",
			turns:   [][]int32{seqOf(tOpen, "import os; os._exit(1)\n", tFenceNL), seqOf("hm")},
			maxCall: 1,
			exec: ExecFunc(func(context.Context, string, int) ExecResult {
				return ExecResult{Output: "Error: the Python worker died", Kind: KindCrash}
			}),
			text:   "```python\nimport os; os._exit(1)\n```\n" + out("Error: the Python worker died") + "hm<eos>",
			calls:  []wantCall{{"import os; os._exit(1)\n", "Error: the Python worker died", KindCrash}},
			finish: FinishEOS,
		},
		{
			name:    "executor panic",
			turns:   [][]int32{seqOf(tOpen, "boom\n", tFence), seqOf("hm")},
			maxCall: 1,
			exec:    ExecFunc(func(context.Context, string, int) ExecResult { panic("executor bug") }),
			text:    "```python\nboom\n```" + out("Execution Error") + "hm<eos>",
			calls:   []wantCall{{"boom\n", "Execution Error", KindCrash}},
			finish:  FinishEOS,
		},
		{
			name:    "tool output truncated at max new tokens",
			turns:   [][]int32{seqOf(tOpen, "7\n", tFenceNL), seqOf("never")},
			maxCall: 1, maxNew: 4 + 5, exec: echo,
			text:   "```python\n7\n```\n" + out("ran:7")[:5],
			calls:  []wantCall{{"7\n", "ran:7", KindOK}},
			finish: FinishLength,
		},
		{
			name:    "block closing at the length limit is not run",
			turns:   [][]int32{seqOf(tOpen, "8\n", tFenceNL), seqOf("never")},
			maxCall: 1, maxNew: 4, exec: echo,
			text:   "```python\n8\n```\n",
			finish: FinishLength,
		},
		{
			name:    "glued fence at the length limit still runs",
			turns:   [][]int32{seqOf(tOpen, "9\n", tFenceThe), seqOf("x")},
			maxCall: 1, maxNew: 3 + 3 + len(out("ran:9")) + 2, exec: echo,
			text:   "```python\n9\n```" + out("ran:9") + "x<eos>",
			calls:  []wantCall{{"9\n", "ran:9", KindOK}},
			finish: FinishEOS,
		},
		{
			name:   "plain answer stops at max new tokens",
			turns:  [][]int32{seqOf("abcdefgh")},
			maxNew: 5,
			text:   "abcde",
			finish: FinishLength,
		},
	}
}

// checkTrajectory checks what holds for every trajectory of a scripted run: aligned roles and
// log-probs, policy log-probs from the sampler, tool tokens as re-encoded bytes, calls that
// follow their closing fence, and Text.
func checkTrajectory(t *testing.T, tr Trajectory, prompt []int32) {
	t.Helper()
	if !slices.Equal(tr.Tokens[:tr.PromptLen], prompt) {
		t.Fatalf("prompt tokens changed")
	}
	if len(tr.Roles) != len(tr.Tokens) || len(tr.LogProbs) != len(tr.Tokens)-tr.PromptLen {
		t.Fatalf("%d tokens, %d roles, %d log-probs after a prompt of %d", len(tr.Tokens), len(tr.Roles), len(tr.LogProbs), tr.PromptLen)
	}
	for i, r := range tr.Roles {
		if (i < tr.PromptLen) != (r == RolePrompt) {
			t.Fatalf("token %d has role %v, prompt length %d", i, r, tr.PromptLen)
		}
		if i < tr.PromptLen {
			continue
		}
		lp := tr.LogProbs[i-tr.PromptLen]
		switch r {
		case RolePolicy:
			if lp != logpOf(tr.Tokens[i]) {
				t.Errorf("token %d: log-prob %v, sampler gave %v", i, lp, logpOf(tr.Tokens[i]))
			}
		case RoleTool:
			if !math.IsNaN(float64(lp)) {
				t.Errorf("tool token %d has log-prob %v, want NaN", i, lp)
			}
			if tr.Tokens[i] >= 256 {
				t.Errorf("tool token %d is %d, not a re-encoded byte", i, tr.Tokens[i])
			}
		}
	}
	for i, m := range tr.Mask() {
		if m != (tr.Roles[tr.PromptLen+i] == RolePolicy) || m == math.IsNaN(float64(tr.LogProbs[i])) {
			t.Fatalf("mask %d is %v for role %v, log-prob %v", i, m, tr.Roles[tr.PromptLen+i], tr.LogProbs[i])
		}
	}
	tool := 0
	for i, c := range tr.Calls {
		seg := testTok{}.Decode(tr.Tokens[c.At : c.At+c.Len])
		before := testTok{}.Decode(tr.Tokens[tr.PromptLen:c.At])
		if !strings.HasSuffix(strings.TrimRight(before+seg[:max(0, strings.Index(seg, "\n```output"))], " \n"), "```") {
			t.Errorf("call %d: text before the output %q does not end at a fence", i, before)
		}
		if c.At+c.Len < len(tr.Tokens) && !strings.HasSuffix(seg, FormatOutput(c.Output)) {
			t.Errorf("call %d: appended %q, want it to end with %q", i, seg, FormatOutput(c.Output))
		}
		for j := c.At; j < c.At+c.Len; j++ {
			if tr.Roles[j] != RoleTool {
				t.Errorf("call %d: token %d has role %v", i, j, tr.Roles[j])
			}
		}
		tool += c.Len
	}
	n := 0
	for _, r := range tr.Roles {
		if r == RoleTool {
			n++
		}
	}
	if n != tool {
		t.Errorf("%d tool tokens, calls account for %d", n, tool)
	}
	if tr.Text != (testTok{}).Decode(tr.Tokens[tr.PromptLen:]) {
		t.Errorf("Text %q is not the decoded response", tr.Text)
	}
}

func TestInterleave(t *testing.T) {
	for _, tc := range interleaveCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			p := newFake(2, 256, scripted(map[string][][]int32{prompt0: tc.turns}))
			e := &Engine{Policy: p, Tok: testTok{}, Exec: tc.exec, Config: Config{
				Sample: greedy, N: 1, EOS: []int32{tEOS}, MaxNew: tc.maxNew, MaxCalls: tc.maxCall,
				CallTimeout: 50 * time.Millisecond,
			}}
			trs, st, err := e.Run(context.Background(), [][]int32{bytesOf(prompt0)})
			if err != nil {
				t.Fatal(err)
			}
			tr := trs[0]
			checkTrajectory(t, tr, bytesOf(prompt0))
			if tr.Text != tc.text {
				t.Errorf("text\n got %q\nwant %q", tr.Text, tc.text)
			}
			if tr.Finish != tc.finish {
				t.Errorf("finish %q, want %q", tr.Finish, tc.finish)
			}
			if tr.Skipped != tc.skipped {
				t.Errorf("skipped %d, want %d", tr.Skipped, tc.skipped)
			}
			if len(tr.Calls) != len(tc.calls) {
				t.Fatalf("%d calls %+v, want %d", len(tr.Calls), tr.Calls, len(tc.calls))
			}
			for i, c := range tr.Calls {
				w := tc.calls[i]
				if c.Code != w.code || c.Output != w.output || c.Kind != w.kind {
					t.Errorf("call %d: {%q %q %s}, want {%q %q %s}", i, c.Code, c.Output, c.Kind, w.code, w.output, w.kind)
				}
			}
			if st.Calls != len(tc.calls) || st.Sampled+st.ToolToks != len(tr.Tokens)-tr.PromptLen {
				t.Errorf("stats %+v disagree with the trajectory", st)
			}
		})
	}
}

// TestInterleaveBatched runs the echo cases together on fewer slots than sequences, with a
// small step budget, several samples per prompt and a slow executor: every trajectory must
// be the one it is alone.
func TestInterleaveBatched(t *testing.T) {
	var cases []interleaveCase
	for _, c := range interleaveCases(t) {
		if _, ok := c.exec.(*echoExec); ok || c.exec == nil {
			cases = append(cases, c)
		}
	}
	// Distinct prompts of different lengths, so each case's script is found by its prompt.
	scripts := map[string][][]int32{}
	var prompts [][]int32
	for i, c := range cases {
		pr := strings.Repeat("#", 1+i*7) + "|" + c.name + "\n"
		scripts[pr] = c.turns
		prompts = append(prompts, bytesOf(pr))
	}
	// maxNew differs by case; run groups of cases sharing it.
	byMax := map[[2]int][]int{}
	for i, c := range cases {
		k := [2]int{c.maxNew, c.maxCall}
		byMax[k] = append(byMax[k], i)
	}
	for k, idx := range byMax {
		var ps [][]int32
		for _, i := range idx {
			ps = append(ps, prompts[i])
		}
		const n = 3
		p := newFake(4, 512, scripted(scripts))
		p.budget = 16
		ex := &echoExec{delay: 3 * time.Millisecond}
		e := &Engine{Policy: p, Tok: testTok{}, Exec: ex, Config: Config{
			Sample: greedy, N: n, EOS: []int32{tEOS}, MaxNew: k[0], MaxCalls: k[1], StepTokens: 64,
		}}
		trs, _, err := e.Run(context.Background(), ps)
		if err != nil {
			t.Fatal(err)
		}
		if len(trs) != n*len(ps) {
			t.Fatalf("%d trajectories for %d prompts × %d", len(trs), len(ps), n)
		}
		for j, tr := range trs {
			c := cases[idx[j/n]]
			if tr.Prompt != j/n || tr.Sample != j%n {
				t.Errorf("trajectory %d is (%d,%d)", j, tr.Prompt, tr.Sample)
			}
			checkTrajectory(t, tr, ps[j/n])
			if tr.Text != c.text || tr.Finish != c.finish || len(tr.Calls) != len(c.calls) {
				t.Errorf("%s sample %d: text %q finish %s calls %d, want %q %s %d", c.name, j%n, tr.Text, tr.Finish, len(tr.Calls), c.text, c.finish, len(c.calls))
			}
		}
	}
}

func TestGroupSharesPrompt(t *testing.T) {
	prompt := strings.Repeat("long prompt ", 20) + "\n"
	tests := []struct {
		name            string
		slots, n, step  int
		wantFed, wantFk int
	}{
		// The prefix is fed once, then every member feeds the last prompt token and "ok<eos>".
		{"slots for all", 8, 8, 512, len(prompt) - 1 + 8*3, 7},
		{"prefix in chunks", 4, 4, 50, len(prompt) - 1 + 4*3, 3},
		// With 2 slots, later members inherit the slots of finished members, prefix included.
		{"fewer slots", 2, 6, 512, len(prompt) - 1 + 6*3, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newFake(tc.slots, 512, scripted(map[string][][]int32{prompt: {seqOf("ok")}}))
			e := &Engine{Policy: p, Tok: testTok{}, Config: Config{
				Sample: greedy, N: tc.n, EOS: []int32{tEOS}, StepTokens: tc.step,
			}}
			trs, st, err := e.Run(context.Background(), [][]int32{bytesOf(prompt)})
			if err != nil {
				t.Fatal(err)
			}
			for _, tr := range trs {
				if tr.Text != "ok<eos>" {
					t.Errorf("text %q", tr.Text)
				}
			}
			if p.fed != tc.wantFed || p.forks != tc.wantFk {
				t.Errorf("fed %d tokens with %d forks, want %d with %d", p.fed, p.forks, tc.wantFed, tc.wantFk)
			}
			if st.Fed != p.fed || st.Forks != p.forks {
				t.Errorf("stats fed %d forks %d, policy saw %d %d", st.Fed, st.Forks, p.fed, p.forks)
			}
		})
	}
}

// TestContinuousBatching: with 2 slots and 4 sequences of different lengths, a waiting
// sequence joins as soon as one finishes, while the other keeps decoding; a parked sequence
// keeps its slot and the other decodes on.
func TestContinuousBatching(t *testing.T) {
	scripts := map[string][][]int32{
		"A\n": {seqOf(strings.Repeat("a", 40))},
		"B\n": {seqOf("b")},
		"C\n": {seqOf(tOpen, "slow\n", tFenceNL), seqOf("c")},
		"D\n": {seqOf(strings.Repeat("d", 30))},
	}
	p := newFake(2, 256, scripted(scripts))
	p.keepLog = true
	var mu sync.Mutex
	var order []string
	// C's call returns only once A and D have finished (or after 5 s): a scheduler that
	// waited on the parked C would stall here and get the order wrong.
	othersDone := make(chan struct{})
	ex := ExecFunc(func(ctx context.Context, code string, _ int) ExecResult {
		select {
		case <-othersDone:
		case <-time.After(5 * time.Second):
		}
		time.Sleep(10 * time.Millisecond)
		return ExecResult{Output: "ran:" + code, Kind: KindOK}
	})
	e := &Engine{Policy: p, Tok: testTok{}, Exec: ex, Config: Config{
		Sample: greedy, N: 1, EOS: []int32{tEOS}, MaxCalls: 1, CallTimeout: 10 * time.Second,
	}, OnAppend: func(traj int, ids []int32, role Role) {
		mu.Lock()
		defer mu.Unlock()
		if role == RoleTool || slices.Contains(ids, tEOS) {
			order = append(order, string(rune('A'+traj))+":"+role.String())
			if len(order) == 3 {
				close(othersDone)
			}
		}
	}}
	prompts := [][]int32{bytesOf("A\n"), bytesOf("B\n"), bytesOf("C\n"), bytesOf("D\n")}
	trs, st, err := e.Run(context.Background(), prompts)
	if err != nil {
		t.Fatal(err)
	}
	for i, tr := range trs {
		if tr.Finish != FinishEOS {
			t.Errorf("trajectory %d: finish %s", i, tr.Finish)
		}
	}
	if p.maxFeeds > 2 {
		t.Errorf("%d feeds in a step with 2 slots", p.maxFeeds)
	}
	// C joins (prefill at position 0) in a step where A decodes.
	joined := false
	for _, feeds := range p.log {
		var prefill, decode bool
		for _, f := range feeds {
			prefill = prefill || (f.Pos == 0)
			decode = decode || (f.Pos > 2 && len(f.Tokens) == 1)
		}
		joined = joined || (prefill && decode)
	}
	if !joined {
		t.Error("no step mixed a joining prefill with a running decode")
	}
	// A (40 tokens) and D finish while C is parked; C's output comes after.
	want := []string{"B:policy", "A:policy", "D:policy", "C:tool", "C:policy"}
	if !slices.Equal(order, want) {
		t.Errorf("events %v, want %v", order, want)
	}
	if st.Idle <= 0 || st.Idle > st.Wall {
		t.Errorf("idle %v of wall %v: the end waits only on C's call", st.Idle, st.Wall)
	}
}

func TestSeededSamplingReproducible(t *testing.T) {
	prompts := [][]int32{bytesOf("first\n"), bytesOf("second prompt\n"), bytesOf("3\n")}
	var jitter atomic.Int64
	ex := ExecFunc(func(ctx context.Context, code string, _ int) ExecResult {
		// Latencies vary from call to call: results must not depend on them.
		time.Sleep(time.Duration(jitter.Add(7919)%5000) * time.Microsecond)
		return ExecResult{Output: "ran:" + code, Kind: KindOK}
	})
	runIDs := func(seed uint64, slots, step int, ids []int) []Trajectory {
		p := newFake(slots, 200, randomNext)
		p.budget = step
		e := &Engine{Policy: p, Tok: testTok{}, Exec: ex, Config: Config{
			Sample: engine.SampleParams{Temperature: 0.7, TopP: 0.9, TopK: 5}, N: 4,
			EOS: []int32{tEOS}, MaxNew: 120, MaxCalls: 2, Seed: seed, PromptIDs: ids,
		}}
		share := prompts
		if ids != nil {
			share = nil
			for _, i := range ids {
				share = append(share, prompts[i])
			}
		}
		trs, _, err := e.Run(context.Background(), share)
		if err != nil {
			t.Fatal(err)
		}
		return trs
	}
	run := func(seed uint64, slots, step int) []Trajectory { return runIDs(seed, slots, step, nil) }
	a := run(7, 12, 512)
	calls := 0
	for _, tr := range a {
		calls += len(tr.Calls)
	}
	if calls == 0 {
		t.Fatal("the random policy made no calls; the test does not exercise parking")
	}
	for _, cfg := range []struct{ slots, step int }{{12, 512}, {3, 5}, {1, 64}} {
		b := run(7, cfg.slots, cfg.step)
		for i := range a {
			if !slices.Equal(a[i].Tokens, b[i].Tokens) || !slices.Equal(a[i].Roles, b[i].Roles) {
				t.Fatalf("slots %d step %d: trajectory %d differs:\n%q\n%q", cfg.slots, cfg.step, i, a[i].Text, b[i].Text)
			}
		}
	}
	// The batch split over two data-parallel ranks (prompts 0 and 2 on one, 1 on the other),
	// each share sampled with the prompts' indices in the whole batch: the same trajectories.
	for _, ids := range [][]int{{0, 2}, {1}} {
		part := runIDs(7, 5, 64, ids)
		for k, tr := range part {
			i := ids[tr.Prompt]*4 + tr.Sample
			if !slices.Equal(a[i].Tokens, tr.Tokens) || !slices.Equal(a[i].Roles, tr.Roles) {
				t.Fatalf("share %v: trajectory %d (%d of the whole batch) differs:\n%q\n%q", ids, k, i, a[i].Text, tr.Text)
			}
		}
	}
	c := run(8, 12, 512)
	same := 0
	for i := range a {
		if slices.Equal(a[i].Tokens, c[i].Tokens) {
			same++
		}
	}
	if same == len(a) {
		t.Error("seeds 7 and 8 gave the same trajectories")
	}
	// Samples within a group differ (own random streams).
	if slices.Equal(a[0].Tokens, a[1].Tokens) && slices.Equal(a[1].Tokens, a[2].Tokens) {
		t.Error("the samples of a group are identical")
	}
}

func TestStatefulSessions(t *testing.T) {
	scripts := map[string][][]int32{"S\n": {seqOf(tOpen, "x=1\n", tFenceNL), seqOf(tOpen, "x\n", tFenceNL), seqOf("y")}}
	ex := &echoExec{}
	p := newFake(4, 256, scripted(scripts))
	e := &Engine{Policy: p, Tok: testTok{}, Exec: ex, Config: Config{
		Sample: greedy, N: 3, EOS: []int32{tEOS}, MaxCalls: 4, Stateful: true,
	}}
	if _, _, err := e.Run(context.Background(), [][]int32{bytesOf("S\n")}); err != nil {
		t.Fatal(err)
	}
	want := map[int]int{0: 2, 1: 2, 2: 2}
	if !reflect.DeepEqual(ex.seen, want) {
		t.Errorf("calls by session %v, want %v", ex.seen, want)
	}
	if !reflect.DeepEqual(ex.closed, map[int]bool{0: true, 1: true, 2: true}) {
		t.Errorf("closed sessions %v", ex.closed)
	}
	ex2 := &echoExec{}
	e.Exec, e.Config.Stateful = ex2, false
	if _, _, err := e.Run(context.Background(), [][]int32{bytesOf("S\n")}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ex2.seen, map[int]int{-1: 6}) || len(ex2.closed) != 0 {
		t.Errorf("stateless: sessions %v, closed %v", ex2.seen, ex2.closed)
	}
}

func TestRunErrors(t *testing.T) {
	ok := func(c *Config) {}
	tests := []struct {
		name    string
		mod     func(*Config)
		prompts [][]int32
		field   string
	}{
		{"temperature", func(c *Config) { c.Sample.Temperature = -1 }, nil, "Sample.Temperature"},
		{"top-p", func(c *Config) { c.Sample.TopP = 0 }, nil, "Sample.TopP"},
		{"top-k", func(c *Config) { c.Sample.TopK = -2 }, nil, "Sample.TopK"},
		{"n", func(c *Config) { c.N = 0 }, nil, "N"},
		{"no executor", func(c *Config) { c.MaxCalls = 1 }, nil, "Exec"},
		{"empty prompt", ok, [][]int32{bytesOf("a"), {}}, "prompt 1"},
		{"prompt too long", ok, [][]int32{bytesOf(strings.Repeat("x", 64))}, "prompt 0"},
		{"prompt past max total", func(c *Config) { c.MaxTotal = 10 }, [][]int32{bytesOf(strings.Repeat("x", 10))}, "prompt 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Sample: greedy, N: 1}
			tc.mod(&c)
			e := &Engine{Policy: newFake(1, 64, randomNext), Tok: testTok{}, Config: c}
			ps := tc.prompts
			if ps == nil {
				ps = [][]int32{bytesOf("a")}
			}
			_, _, err := e.Run(context.Background(), ps)
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("error %v, want a ConfigError on %s", err, tc.field)
			}
		})
	}
}

func TestPolicyFailure(t *testing.T) {
	p := newFake(2, 64, randomNext)
	p.failAt = 3
	e := &Engine{Policy: p, Tok: testTok{}, Config: Config{Sample: greedy, N: 2, EOS: []int32{tEOS}, MaxNew: 30}}
	_, _, err := e.Run(context.Background(), [][]int32{bytesOf("abc")})
	if !errors.Is(err, errDevice) {
		t.Fatalf("error %v, want the policy's error", err)
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	scripts := map[string][][]int32{"Q\n": {seqOf(tOpen, "1\n", tFenceNL), seqOf("z")}}
	ex := ExecFunc(func(ctx context.Context, _ string, _ int) ExecResult {
		cancel()
		<-ctx.Done()
		return ExecResult{Output: "Timeout Error", Kind: KindTimeout}
	})
	e := &Engine{Policy: newFake(1, 64, scripted(scripts)), Tok: testTok{}, Exec: ex,
		Config: Config{Sample: greedy, N: 1, EOS: []int32{tEOS}, MaxCalls: 1}}
	_, _, err := e.Run(ctx, [][]int32{bytesOf("Q\n")})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

// TestStepBudget: by default every slot decodes in each Step even past 512 slots, and a
// Budgeter policy's budget bounds the tokens fed.
func TestStepBudget(t *testing.T) {
	tests := []struct {
		slots, budget, step, wantFeeds int
	}{
		{600, 1200, 0, 600},
		{600, 100, 0, 100},
		{600, 1200, 50, 50},
	}
	for _, tc := range tests {
		p := newFake(tc.slots, 16, randomNext)
		p.budget = tc.budget
		e := &Engine{Policy: p, Tok: testTok{}, Config: Config{Sample: greedy, N: tc.slots, MaxNew: 4, StepTokens: tc.step}}
		if _, _, err := e.Run(context.Background(), [][]int32{bytesOf("pp")}); err != nil {
			t.Fatal(err)
		}
		if p.maxFeeds != tc.wantFeeds {
			t.Errorf("slots %d, policy budget %d, StepTokens %d: at most %d feeds a step, want %d", tc.slots, tc.budget, tc.step, p.maxFeeds, tc.wantFeeds)
		}
	}
}

// limitedExec runs one call at a time, each taking d, as a pool of one worker does: a call
// waits for the worker under its context. It records the most calls it held at once.
type limitedExec struct {
	d            time.Duration
	worker       chan struct{}
	mu           sync.Mutex
	active, peak int
}

func (l *limitedExec) Concurrency() int { return 1 }

func (l *limitedExec) Exec(ctx context.Context, code string, _ int) ExecResult {
	l.mu.Lock()
	l.active++
	l.peak = max(l.peak, l.active)
	l.mu.Unlock()
	defer func() { l.mu.Lock(); l.active--; l.mu.Unlock() }()
	select {
	case l.worker <- struct{}{}:
		defer func() { <-l.worker }()
	case <-ctx.Done():
		return ExecResult{Output: "Timeout Error", Kind: KindTimeout}
	}
	select {
	case <-time.After(l.d):
		return ExecResult{Output: "ran:" + code, Kind: KindOK}
	case <-ctx.Done():
		return ExecResult{Output: "Timeout Error", Kind: KindTimeout}
	}
}

// TestCallTimeoutExcludesQueue: six sequences call at once an executor that runs one call at a
// time for 30 ms; with a 100 ms call timeout, the last calls wait 150 ms in Run's queue and
// still run to their result, and the executor never holds two calls at once.
func TestCallTimeoutExcludesQueue(t *testing.T) {
	scripts := map[string][][]int32{}
	var prompts [][]int32
	for i := 0; i < 6; i++ {
		p := fmt.Sprintf("P%d\n", i)
		scripts[p] = [][]int32{seqOf(tOpen, fmt.Sprintf("c%d\n", i), tFenceNL), seqOf("x")}
		prompts = append(prompts, bytesOf(p))
	}
	ex := &limitedExec{d: 30 * time.Millisecond, worker: make(chan struct{}, 1)}
	e := &Engine{Policy: newFake(8, 256, scripted(scripts)), Tok: testTok{}, Exec: ex, Config: Config{
		Sample: greedy, N: 1, EOS: []int32{tEOS}, MaxCalls: 1, CallTimeout: 100 * time.Millisecond,
	}}
	trs, _, err := e.Run(context.Background(), prompts)
	if err != nil {
		t.Fatal(err)
	}
	for i, tr := range trs {
		if len(tr.Calls) != 1 || tr.Calls[0].Kind != KindOK || tr.Calls[0].Output != fmt.Sprintf("ran:c%d\n", i) {
			t.Errorf("trajectory %d: calls %+v, want one that ran", i, tr.Calls)
		}
	}
	if ex.peak != 1 {
		t.Errorf("the executor held %d calls at once, its concurrency is 1", ex.peak)
	}
}
