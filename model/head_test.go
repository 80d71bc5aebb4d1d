package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"cir/engine"
	"cir/engine/cpu"
)

// refHead computes, in float64, the log-probs of the targets and the entropies of softmax(z/T)
// for z = lnf·Wᵀ (lnf (N,C), W (V,C)), and the loss Σ a·logp + Σ c·ent.
func refHead(lnf, w []float64, tgt []int32, N, C, V int, T float64, a, c []float64) (logp, ent []float64, loss float64) {
	logp, ent = make([]float64, N), make([]float64, N)
	z := make([]float64, V)
	for n := 0; n < N; n++ {
		mx := math.Inf(-1)
		for v := 0; v < V; v++ {
			s := 0.0
			for k := 0; k < C; k++ {
				s += lnf[n*C+k] * w[v*C+k]
			}
			z[v] = s / T
			mx = math.Max(mx, z[v])
		}
		sum := 0.0
		for v := range z {
			sum += math.Exp(z[v] - mx)
		}
		lse := mx + math.Log(sum)
		for v := range z {
			lp := z[v] - lse
			ent[n] -= math.Exp(lp) * lp
		}
		logp[n] = z[tgt[n]] - lse
		loss += a[n]*logp[n] + c[n]*ent[n]
	}
	return logp, ent, loss
}

// TestHeadTemperatureEntropy checks the LM head of the training forward at temperature 0.5,
// computed in several chunks: the log-probs and entropies are those of softmax(logits/0.5)
// (float64 reference from the same hidden states and weights), and the gradient of a loss
// with log-prob and entropy terms with respect to the LM head weights equals a float64
// central finite difference of that loss.
func TestHeadTemperatureEntropy(t *testing.T) {
	cfg := Config{VocabSize: 53, HiddenSize: 24, IntermediateSize: 40, NumLayers: 1, NumHeads: 2, NumKVHeads: 1,
		HeadDim: 12, MaxPositions: 64, RopeTheta: 10000, RMSNormEps: 1e-6}
	const T = 0.5
	b := cpu.New(2)
	defer b.Close()
	m, err := New(cfg, b)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Init(3, 0.3)
	rng := rand.New(rand.NewPCG(5, 6))
	seqs := randomSeqs(rng, cfg.VocabSize, 13, 9, 21)
	if err := m.Reserve(64); err != nil {
		t.Fatal(err)
	}
	m.acts.chunk = 7 // several chunks of the head

	logp, ent, err := m.ForwardTemperature(seqs, T)
	if err != nil {
		t.Fatal(err)
	}
	N, C, V := 0, cfg.HiddenSize, cfg.VocabSize
	for _, s := range seqs {
		N += len(s)
	}
	lnf32 := make([]float32, N*C)
	b.Download(engine.HostF32(lnf32, N, C), m.acts.lnf.Rows(0, N))
	w32 := make([]float32, V*C)
	b.Download(engine.HostF32(w32, V, C), m.Params.LMHead)
	lnf, w := make([]float64, N*C), make([]float64, V*C)
	for i, x := range lnf32 {
		lnf[i] = float64(x)
	}
	for i, x := range w32 {
		w[i] = float64(x)
	}
	// Flatten the returned rows; the last token of each sequence predicts nothing (weight 0).
	var tgt []int32
	var gotLogp, gotEnt []float32
	a, c := make([]float64, N), make([]float64, N)
	dlogp, dent := make([][]float32, len(seqs)), make([][]float32, len(seqs))
	for i, s := range seqs {
		dlogp[i], dent[i] = make([]float32, len(s)-1), make([]float32, len(s)-1)
		for j := range s {
			if j+1 < len(s) {
				tgt = append(tgt, s[j+1])
				gotLogp, gotEnt = append(gotLogp, logp[i][j]), append(gotEnt, ent[i][j])
				dlogp[i][j], dent[i][j] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
				a[len(tgt)-1], c[len(tgt)-1] = float64(dlogp[i][j]), float64(dent[i][j])
			} else {
				tgt = append(tgt, 0)
				gotLogp, gotEnt = append(gotLogp, 0), append(gotEnt, 0)
			}
		}
	}
	wantLogp, wantEnt, _ := refHead(lnf, w, tgt, N, C, V, T, a, c)
	worst := 0.0
	k := 0
	for _, s := range seqs {
		for j := range s {
			if j+1 < len(s) {
				worst = math.Max(worst, math.Abs(float64(gotLogp[k])-wantLogp[k]))
				worst = math.Max(worst, math.Abs(float64(gotEnt[k])-wantEnt[k]))
			}
			k++
		}
	}
	if worst > 2e-5 {
		t.Errorf("log-probs/entropies at T=%g: max abs error %.3g vs float64 softmax(logits/T), tolerance 2e-5", T, worst)
	} else {
		t.Logf("log-probs/entropies at T=%g: max abs error %.3g", T, worst)
	}

	m.ZeroGrad()
	if err := m.Backward(dlogp, dent); err != nil {
		t.Fatal(err)
	}
	grad := make([]float32, V*C)
	b.Download(engine.HostF32(grad, V, C), m.Grads.LMHead)
	const h = 1e-5
	worstRel, where := 0.0, ""
	for s := 0; s < 60; s++ {
		idx := rng.IntN(V * C)
		old := w[idx]
		w[idx] = old + h
		_, _, lp := refHead(lnf, w, tgt, N, C, V, T, a, c)
		w[idx] = old - h
		_, _, lm := refHead(lnf, w, tgt, N, C, V, T, a, c)
		w[idx] = old
		fd := (lp - lm) / (2 * h)
		rel := math.Abs(float64(grad[idx])-fd) / math.Max(1e-3, math.Abs(fd))
		if rel > worstRel {
			worstRel, where = rel, fmt.Sprintf("lm_head[%d] (cir %g, finite difference %g)", idx, grad[idx], fd)
		}
	}
	if worstRel > 1e-3 {
		t.Errorf("LM head gradient with entropy term at T=%g: max rel error %.3g at %s, tolerance 1e-3", T, worstRel, where)
	} else {
		t.Logf("LM head gradient: max rel error %.3g", worstRel)
	}
}

// TestForwardTemperatureRejects checks that a temperature that is not positive is an error.
func TestForwardTemperatureRejects(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	m, err := New(parityConfigs[0].cfg, b)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, T := range []float32{0, -1, float32(math.Inf(1)), float32(math.NaN())} {
		if _, _, err := m.ForwardTemperature([][]int32{{1, 2}}, T); err == nil {
			t.Errorf("temperature %v accepted", T)
		}
	}
}
