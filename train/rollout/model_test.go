package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"cir/engine"
	"cir/engine/cpu"
	"cir/model"
	"cir/tokenizer"
	"cir/train/rollout"
	"cir/train/sandbox"
)

// decoder adapts model.Decoder to rollout.Policy and, to make a random model call the
// interpreter, replaces the samples number start.. of each slot's sequence by the bytes of
// a code block (those carry a NaN log-prob: the model did not sample them).
type decoder struct {
	d     *model.Decoder
	start int
	// stagger shifts the forced block by stagger·slot mod 40 samples, so that the calls
	// of different slots do not all start together.
	stagger int
	script  []int32
	count   []int // decode samples returned for the slot's current sequence
	last    []int // last position fed in each slot
}

func (p *decoder) Slots() int                 { return p.d.Slots() }
func (p *decoder) MaxLen() int                { return p.d.MaxLen() }
func (p *decoder) Budget() int                { return p.d.Budget() }
func (p *decoder) Fork(dst, src, n int) error { return p.d.Fork(dst, src, n) }

func (p *decoder) Step(feeds []rollout.Feed, sp engine.SampleParams) ([]rollout.Sample, error) {
	mf := make([]model.Feed, len(feeds))
	for i, f := range feeds {
		mf[i] = model.Feed(f)
		if f.Pos <= p.last[f.Slot] {
			p.count[f.Slot] = 0 // a new sequence in the slot
		}
		p.last[f.Slot] = f.Pos + len(f.Tokens) - 1
	}
	s, err := p.d.Step(mf, sp)
	if err != nil {
		return nil, err
	}
	out := make([]rollout.Sample, len(s))
	for i, x := range s {
		out[i] = rollout.Sample(x)
		if f := feeds[i]; len(f.Tokens) == 1 {
			// Decode steps: the sample is used.
			k := p.count[f.Slot] - p.start - p.stagger*f.Slot%40
			if k >= 0 && k < len(p.script) {
				out[i] = rollout.Sample{Token: p.script[k], LogP: float32(math.NaN())}
			}
			p.count[f.Slot]++
		}
	}
	return out, nil
}

// TestWithModel runs the scheduler on the real decoder of a small random model on the CPU:
// the log-prob the sampler gave each policy token must equal the full forward pass's
// log-prob of that token in the finished trajectory (tool tokens and forks included), to
// 1e-4.
func TestWithModel(t *testing.T) {
	cfg, err := model.ParseConfig([]byte(`{"vocab_size": 259, "hidden_size": 64, "intermediate_size": 128,
		"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
		"max_position_embeddings": 1024, "rope_theta": 10000}`))
	if err != nil {
		t.Fatal(err)
	}
	b := cpu.New(2)
	defer b.Close()
	m, err := model.New(cfg, b)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Init(3, 0.3)
	dec, err := m.NewDecoder(4, 600)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	tok := tokenizer.NewByte()
	p := &decoder{d: dec, start: 0, script: tok.EncodePlain("\n```python\nprint(6*7)\n```"), count: make([]int, 4), last: make([]int, 4)}
	ex := rollout.ExecFunc(func(_ context.Context, code string, _ int) rollout.ExecResult {
		return rollout.ExecResult{Output: "42 from " + strings.TrimSpace(code), Kind: rollout.KindOK}
	})
	chat, err := tokenizer.BuiltinTemplate().Render([]tokenizer.Message{{Role: "user", Content: rollout.UserMessage("What is 6*7?")}}, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	prompts := [][]int32{
		tok.Encode(chat),
		tok.EncodePlain("short prompt"),
	}
	e := &rollout.Engine{Policy: p, Tok: tok, Exec: ex, Config: rollout.Config{
		Sample: engine.SampleParams{Temperature: 1, TopP: 0.95, TopK: 50},
		N:      3, EOS: tok.EOS(), MaxNew: 80, MaxCalls: 1, Seed: 1, StepTokens: 64,
	}}
	trs, st, err := e.Run(context.Background(), prompts)
	if err != nil {
		t.Fatal(err)
	}
	if st.Forks == 0 || st.Calls != len(trs) {
		t.Fatalf("stats %+v: want forks and one call per trajectory", st)
	}
	var seqs [][]int32
	for _, tr := range trs {
		seqs = append(seqs, tr.Tokens)
	}
	ref, _, err := m.Forward(seqs)
	if err != nil {
		t.Fatal(err)
	}
	checked, worst := 0, 0.0
	for k, tr := range trs {
		if len(tr.Calls) != 1 || !strings.Contains(tr.Text, "```output\n42 from print(6*7)\n```") {
			t.Fatalf("trajectory %d: calls %+v, text %q", k, tr.Calls, tr.Text)
		}
		for i, lp := range tr.LogProbs {
			if math.IsNaN(float64(lp)) {
				continue
			}
			want := ref[k][tr.PromptLen+i-1]
			d := math.Abs(float64(lp - want))
			worst = max(worst, d)
			if d > 1e-4 {
				t.Errorf("trajectory %d token %d (%s): sampler log-prob %v, forward %v: abs err %.2g",
					k, tr.PromptLen+i, tr.Roles[tr.PromptLen+i], lp, want, d)
			}
			checked++
		}
	}
	after := 0
	for _, tr := range trs {
		c := tr.Calls[0]
		for i := c.At + c.Len; i < len(tr.Tokens); i++ {
			if tr.Roles[i] == rollout.RolePolicy && !math.IsNaN(float64(tr.LogProbs[i-tr.PromptLen])) {
				after++
			}
		}
	}
	if after == 0 {
		t.Error("no policy token after a tool output was checked")
	}
	t.Logf("%d log-probs checked (%d after tool output), max abs err %.2g", checked, after, worst)
}

// BenchmarkRolloutModel runs the scheduler on a small random model on the CPU with the real
// sandbox: every trajectory is made to write one code block that sleeps 50 ms, then samples
// freely. idle_share is the share of wall time when no sequence could decode because all
// waited on the sandbox.
func BenchmarkRolloutModel(b *testing.B) {
	cfg, err := model.ParseConfig([]byte(`{"vocab_size": 259, "hidden_size": 256, "intermediate_size": 704,
		"num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
		"max_position_embeddings": 1024, "rope_theta": 10000}`))
	if err != nil {
		b.Fatal(err)
	}
	be := cpu.New(0)
	defer be.Close()
	m, err := model.New(cfg, be)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	m.Init(3, 0.02)
	scfg := sandbox.DefaultConfig()
	scfg.Workers, scfg.Lazy = 4, true
	pool, err := sandbox.New(context.Background(), scfg)
	if errors.Is(err, sandbox.ErrNoSandbox) {
		b.Skip(err)
	}
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	tok := tokenizer.NewByte()
	for _, bc := range []struct{ prompts, n int }{{1, 1}, {2, 4}, {4, 8}} {
		B := bc.prompts * bc.n
		b.Run(fmt.Sprintf("B=%d,n=%d", B, bc.n), func(b *testing.B) {
			dec, err := m.NewDecoder(B, 256)
			if err != nil {
				b.Fatal(err)
			}
			defer dec.Close()
			var prompts [][]int32
			for i := 0; i < bc.prompts; i++ {
				prompts = append(prompts, tok.EncodePlain(fmt.Sprintf("Problem %d: compute something.\n", i)))
			}
			var st rollout.Stats
			toks := 0
			for b.Loop() {
				p := &decoder{d: dec, start: 2, stagger: 13, script: tok.EncodePlain("\n```python\nimport time; time.sleep(0.05); print(1)\n```"),
					count: make([]int, B), last: make([]int, B)}
				e := &rollout.Engine{Policy: p, Tok: tok, Exec: rollout.NewSandbox(pool), Config: rollout.Config{
					Sample: engine.SampleParams{Temperature: 1, TopP: 1}, N: bc.n, EOS: tok.EOS(),
					MaxNew: 120, MaxCalls: 1, Seed: 1,
				}}
				trs, s, err := e.Run(context.Background(), prompts)
				if err != nil {
					b.Fatal(err)
				}
				for _, tr := range trs {
					toks += len(tr.Tokens) - tr.PromptLen
				}
				st.Wall += s.Wall
				st.Idle += s.Idle
				st.Decoding += s.Decoding
				st.Calls += s.Calls
			}
			b.ReportMetric(st.IdleShare(), "idle_share")
			b.ReportMetric(st.Decoding.Seconds()/st.Wall.Seconds(), "decode_share")
			b.ReportMetric(float64(toks)/st.Wall.Seconds(), "tok/s")
			b.ReportMetric(float64(st.Calls)/float64(b.N), "calls/op")
		})
	}
}
