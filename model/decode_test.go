package model

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"cir/engine"
	"cir/engine/cpu"
)

func newTestModel(t *testing.T, ci int) *Model {
	t.Helper()
	b := cpu.New(2)
	t.Cleanup(func() { b.Close() })
	m, err := New(parityConfigs[ci].cfg, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	m.Init(uint64(ci+7), 0.2)
	return m
}

// greedyDecode prefills prompt in slot 0 in chunks of chunk tokens, then decodes n tokens
// greedily one at a time, returning the tokens and their log-probs.
func greedyDecode(t *testing.T, d *Decoder, slot int, prompt []int32, chunk, n int) ([]int32, []float32) {
	t.Helper()
	var toks []int32
	var lps []float32
	var s []Sample
	var err error
	for i := 0; i < len(prompt); i += chunk {
		j := min(len(prompt), i+chunk)
		if s, err = d.Step([]Feed{{Slot: slot, Pos: i, Tokens: prompt[i:j]}}, engine.SampleParams{}); err != nil {
			t.Fatal(err)
		}
	}
	for k := 0; k < n; k++ {
		toks = append(toks, s[0].Token)
		lps = append(lps, s[0].LogP)
		if s, err = d.Step([]Feed{{Slot: slot, Pos: len(prompt) + k, Tokens: []int32{s[0].Token}}}, engine.SampleParams{}); err != nil {
			t.Fatal(err)
		}
	}
	return toks, lps
}

// TestDecodeMatchesForward: log-probs of greedily decoded tokens with the KV cache equal those of
// the full forward on the same ids (1e-5), whatever the prefill chunking.
func TestDecodeMatchesForward(t *testing.T) {
	for ci := range parityConfigs {
		for _, chunk := range []int{1, 5, 64} {
			t.Run(fmt.Sprintf("%s/chunk=%d", parityConfigs[ci].name, chunk), func(t *testing.T) {
				m := newTestModel(t, ci)
				d, err := m.NewDecoder(3, 48)
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				prompt := randomSeqs(rand.New(rand.NewPCG(1, 1)), m.Cfg.VocabSize, 11)[0]
				toks, lps := greedyDecode(t, d, 1, prompt, chunk, 20)
				full := append(append([]int32(nil), prompt...), toks...)
				logp, _, err := m.Forward([][]int32{full})
				if err != nil {
					t.Fatal(err)
				}
				worst := 0.0
				for k := range toks {
					worst = max(worst, math.Abs(float64(lps[k]-logp[0][len(prompt)-1+k])))
				}
				if worst > 1e-5 {
					t.Fatalf("KV-cached log-probs differ from the full forward: max abs error %.3g", worst)
				}
			})
		}
	}
}

// TestDecodeBatchedAndForked: decoding several sequences together equals decoding each alone,
// and a prompt prefilled once and forked equals separate prefills.
func TestDecodeBatchedAndForked(t *testing.T) {
	m := newTestModel(t, 0)
	rng := rand.New(rand.NewPCG(3, 3))
	prompts := randomSeqs(rng, m.Cfg.VocabSize, 7, 13, 4)
	const n = 12
	alone := make([][]int32, len(prompts))
	aloneLp := make([][]float32, len(prompts))
	for i, p := range prompts {
		d, err := m.NewDecoder(1, 32)
		if err != nil {
			t.Fatal(err)
		}
		alone[i], aloneLp[i] = greedyDecode(t, d, 0, p, 64, n)
		d.Close()
	}
	d, err := m.NewDecoder(4, 32)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// Sequences join at different steps (continuous batching) and prompts are fed in one batch.
	pos := make([]int, len(prompts))
	got := make([][]int32, len(prompts))
	gotLp := make([][]float32, len(prompts))
	last := make([]int32, len(prompts))
	for step := 0; ; step++ {
		var feeds []Feed
		var who []int
		for i, p := range prompts {
			if step < i || len(got[i]) == n {
				continue // joins late, or finished and left
			}
			if pos[i] == 0 {
				feeds = append(feeds, Feed{Slot: i, Pos: 0, Tokens: p})
			} else {
				feeds = append(feeds, Feed{Slot: i, Pos: pos[i], Tokens: []int32{last[i]}})
			}
			who = append(who, i)
		}
		if len(feeds) == 0 {
			break
		}
		out, err := d.Step(feeds, engine.SampleParams{})
		if err != nil {
			t.Fatal(err)
		}
		for k, i := range who {
			pos[i] += len(feeds[k].Tokens)
			last[i] = out[k].Token
			got[i] = append(got[i], out[k].Token)
			gotLp[i] = append(gotLp[i], out[k].LogP)
		}
	}
	for i := range prompts {
		for k := range alone[i] {
			if got[i][k] != alone[i][k] || math.Abs(float64(gotLp[i][k]-aloneLp[i][k])) > 1e-5 {
				t.Fatalf("sequence %d token %d: batched %d (%g), alone %d (%g)", i, k, got[i][k], gotLp[i][k], alone[i][k], aloneLp[i][k])
			}
		}
	}

	// Fork: prefill prompt[:L-1] once in slot 0, fork to slot 2, feed the last token in both.
	p := prompts[1]
	L := len(p)
	if _, err := d.Step([]Feed{{Slot: 0, Pos: 0, Tokens: p[:L-1]}}, engine.SampleParams{}); err != nil {
		t.Fatal(err)
	}
	if err := d.Fork(2, 0, L-1); err != nil {
		t.Fatal(err)
	}
	out, err := d.Step([]Feed{{Slot: 0, Pos: L - 1, Tokens: p[L-1:]}, {Slot: 2, Pos: L - 1, Tokens: p[L-1:]}}, engine.SampleParams{})
	if err != nil {
		t.Fatal(err)
	}
	for k, o := range out {
		if o.Token != alone[1][0] || math.Abs(float64(o.LogP-aloneLp[1][0])) > 1e-5 {
			t.Fatalf("forked slot %d: %d (%g), want %d (%g)", k, o.Token, o.LogP, alone[1][0], aloneLp[1][0])
		}
	}
}

// TestDecodeErrors: bad feeds are errors, not crashes.
func TestDecodeErrors(t *testing.T) {
	m := newTestModel(t, 1)
	d, err := m.NewDecoder(2, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cases := []struct {
		name  string
		feeds []Feed
	}{
		{"slot out of range", []Feed{{Slot: 2, Tokens: []int32{1}}}},
		{"slot twice", []Feed{{Slot: 0, Tokens: []int32{1}}, {Slot: 0, Pos: 1, Tokens: []int32{1}}}},
		{"no tokens", []Feed{{Slot: 0}}},
		{"past the cache", []Feed{{Slot: 0, Pos: 6, Tokens: []int32{1, 2, 3}}}},
		{"bad id", []Feed{{Slot: 0, Tokens: []int32{int32(m.Cfg.VocabSize)}}}},
	}
	for _, c := range cases {
		if _, err := d.Step(c.feeds, engine.SampleParams{}); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	_, err = d.Step([]Feed{{Slot: 0, Pos: 7, Tokens: []int32{1, 2}}}, engine.SampleParams{})
	if !errors.Is(err, ErrCacheFull) {
		t.Errorf("past the cache: %v, want ErrCacheFull", err)
	}
}
