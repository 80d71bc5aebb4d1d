package model

import (
	"math/rand/v2"
	"testing"
)

// TestTrainStepAllocs: after the first, a training step (forward, backward, AdamW) allocates
// nothing.
func TestTrainStepAllocs(t *testing.T) {
	m := newTestModel(t, 0)
	opt, err := m.NewAdamW()
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Close()
	seqs := randomSeqs(rand.New(rand.NewPCG(1, 2)), m.Cfg.VocabSize, 9, 17)
	d := [][]float32{make([]float32, 8), make([]float32, 16)}
	for i := range d {
		for j := range d[i] {
			d[i][j] = -0.01
		}
	}
	step := func() {
		m.ZeroGrad()
		if _, _, err := m.Forward(seqs); err != nil {
			t.Fatal(err)
		}
		if err := m.Backward(d, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Update(opt, OptimStep{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, ClipNorm: 1}); err != nil {
			t.Fatal(err)
		}
	}
	step()
	if n := testing.AllocsPerRun(5, step); n > 0 {
		t.Fatalf("a training step allocates %v times after the first", n)
	}
}
