package rollout

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"cir/engine"
)

// BenchmarkRollout measures the scheduler with a fake policy whose Step takes a fixed time
// (a stand-in for the forward pass) and an executor with a fixed latency. Each trajectory
// writes text of its own length, then a code block, twice, then an answer. idle_share is
// the share of wall time in which no sequence could decode because all waited on the
// executor; with several sequences it should be near zero.
func BenchmarkRollout(b *testing.B) {
	for _, bc := range []struct {
		seqs, slots int
		step, exec  time.Duration
	}{
		{1, 1, time.Millisecond, 20 * time.Millisecond},
		{8, 8, time.Millisecond, 20 * time.Millisecond},
		{32, 16, time.Millisecond, 20 * time.Millisecond},
		{64, 64, time.Millisecond, 50 * time.Millisecond},
	} {
		name := fmt.Sprintf("B=%d,slots=%d,step=%v,exec=%v", bc.seqs, bc.slots, bc.step, bc.exec)
		b.Run(name, func(b *testing.B) {
			scripts := map[string][][]int32{}
			var prompts [][]int32
			for i := 0; i < bc.seqs; i++ {
				pr := fmt.Sprintf("problem %d\n", i)
				think := strings.Repeat("t", 10+(i*7)%40)
				scripts[pr] = [][]int32{
					seqOf(think, tOpen, "x\n", tFenceNL),
					seqOf(think[:len(think)/2], tOpen, "y\n", tFenceNL),
					seqOf("answer"),
				}
				prompts = append(prompts, bytesOf(pr))
			}
			var st Stats
			var toks int
			for b.Loop() {
				p := newFake(bc.slots, 512, scripted(scripts))
				p.delay = bc.step
				e := &Engine{Policy: p, Tok: testTok{}, Exec: &echoExec{delay: bc.exec}, Config: Config{
					Sample: greedy, N: 1, EOS: []int32{tEOS}, MaxCalls: 2,
				}}
				trs, s, err := e.Run(context.Background(), prompts)
				if err != nil {
					b.Fatal(err)
				}
				for _, tr := range trs {
					if len(tr.Calls) != 2 {
						b.Fatalf("%d calls", len(tr.Calls))
					}
					toks += len(tr.Tokens) - tr.PromptLen
				}
				st.Wall += s.Wall
				st.Idle += s.Idle
				st.Decoding += s.Decoding
			}
			b.ReportMetric(st.IdleShare(), "idle_share")
			b.ReportMetric(st.Decoding.Seconds()/st.Wall.Seconds(), "decode_share")
			b.ReportMetric(float64(toks)/st.Wall.Seconds(), "tok/s")
		})
	}
}

// countPolicy is a policy with no model: it returns token 'a' until a slot holds length
// tokens, then EOS. It measures the scheduler's own cost.
type countPolicy struct {
	slots, maxLen, length int
}

func (p *countPolicy) Slots() int                 { return p.slots }
func (p *countPolicy) MaxLen() int                { return p.maxLen }
func (p *countPolicy) Fork(dst, src, n int) error { return nil }
func (p *countPolicy) Step(feeds []Feed, _ engine.SampleParams) ([]Sample, error) {
	out := make([]Sample, len(feeds))
	for i, f := range feeds {
		out[i] = Sample{Token: 'a', LogP: -1}
		if f.Pos+len(f.Tokens) >= p.length {
			out[i].Token = tEOS
		}
	}
	return out, nil
}

// BenchmarkScheduler measures Run's own cost per sampled token (no model, no calls) for
// RL-sized batches: prompts × group size sequences on a number of slots.
func BenchmarkScheduler(b *testing.B) {
	for _, bc := range []struct{ prompts, n, slots int }{{16, 16, 256}, {128, 16, 256}} {
		b.Run(fmt.Sprintf("B=%d,n=%d,slots=%d", bc.prompts, bc.n, bc.slots), func(b *testing.B) {
			var prompts [][]int32
			for i := 0; i < bc.prompts; i++ {
				prompts = append(prompts, bytesOf(strings.Repeat("p", 100+i)))
			}
			toks := 0
			for b.Loop() {
				e := &Engine{Policy: &countPolicy{slots: bc.slots, maxLen: 1024, length: 400}, Tok: testTok{},
					Config: Config{Sample: greedy, N: bc.n, EOS: []int32{tEOS}}}
				trs, _, err := e.Run(context.Background(), prompts)
				if err != nil {
					b.Fatal(err)
				}
				for _, tr := range trs {
					toks += len(tr.Tokens) - tr.PromptLen
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(toks), "ns/token")
		})
	}
}
