package model

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"cir/engine"
	"cir/engine/cpu"
	"cir/model/safetensors"
)

const python = "/usr/bin/python3"

// needTorch skips the test when Debian's Python lacks PyTorch (make test installs it).
func needTorch(t *testing.T) {
	t.Helper()
	if err := exec.Command(python, "-c", "import torch, numpy").Run(); err != nil {
		t.Skipf("%s with torch and numpy is not installed (make test installs python3-torch): %v", python, err)
	}
}

// parityConfigs are small random configs covering grouped KV heads, biases on and off, tied
// and untied heads, and sizes that are not powers of two.
var parityConfigs = []struct {
	name string
	cfg  Config
}{
	{"gqa-untied-bias", Config{VocabSize: 97, HiddenSize: 48, IntermediateSize: 80, NumLayers: 2, NumHeads: 6, NumKVHeads: 2, HeadDim: 8, MaxPositions: 64, RopeTheta: 10000, RMSNormEps: 1e-6, QKVBias: true}},
	{"mha-tied-nobias", Config{VocabSize: 61, HiddenSize: 36, IntermediateSize: 52, NumLayers: 3, NumHeads: 3, NumKVHeads: 3, HeadDim: 12, MaxPositions: 64, RopeTheta: 1e6, RMSNormEps: 1e-5, TieWordEmbeddings: true}},
	{"mqa-tied-bias-wide-heads", Config{VocabSize: 130, HiddenSize: 40, IntermediateSize: 72, NumLayers: 1, NumHeads: 4, NumKVHeads: 1, HeadDim: 14, MaxPositions: 64, RopeTheta: 500, RMSNormEps: 1e-6, QKVBias: true, TieWordEmbeddings: true}},
}

func randomSeqs(rng *rand.Rand, vocab int, lens ...int) [][]int32 {
	seqs := make([][]int32, len(lens))
	for i, n := range lens {
		seqs[i] = make([]int32, n)
		for j := range seqs[i] {
			seqs[i][j] = int32(rng.IntN(vocab))
		}
	}
	return seqs
}

// TestParityPyTorch compares per-token log-probs and every parameter gradient of the mean token
// loss with an independent float64 PyTorch implementation of Qwen2 (testdata/qwen2_ref.py).
// Tolerances: log-probs 1e-4 absolute; gradients 1e-3 relative L2 norm per tensor.
func TestParityPyTorch(t *testing.T) {
	needTorch(t)
	for ci, tc := range parityConfigs {
		t.Run(tc.name, func(t *testing.T) {
			b := cpu.New(2)
			defer b.Close()
			m, err := New(tc.cfg, b)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			m.Init(uint64(ci+1), 0.2) // large weights: sharp distributions exercise the numerics
			dir := t.TempDir()
			if err := m.Save(dir); err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(uint64(ci), 9))
			seqs := randomSeqs(rng, tc.cfg.VocabSize, 17, 5, 33, 2, 150+ci*61)
			total := 0
			for _, s := range seqs {
				total += len(s) - 1
			}
			m.ZeroGrad()
			logp, _, err := m.Forward(seqs)
			if err != nil {
				t.Fatal(err)
			}
			got := make([][]float32, len(logp))
			d := make([][]float32, len(logp))
			for i := range logp {
				got[i] = append([]float32(nil), logp[i]...)
				d[i] = make([]float32, len(logp[i]))
				for j := range d[i] {
					d[i][j] = -1 / float32(total)
				}
			}
			if err := m.Backward(d, nil); err != nil {
				t.Fatal(err)
			}

			tokPath := filepath.Join(dir, "tokens.json")
			js, _ := json.Marshal(seqs)
			os.WriteFile(tokPath, js, 0o644)
			script := filepath.Join(dir, "ref.py")
			os.WriteFile(script, ReferenceScript, 0o644)
			out, err := exec.Command(python, script, "parity", dir, tokPath, dir).CombinedOutput()
			if err != nil {
				t.Fatalf("reference: %v\n%s", err, out)
			}
			var ref struct{ Logprobs [][]float64 }
			raw, _ := os.ReadFile(filepath.Join(dir, "logprobs.json"))
			if err := json.Unmarshal(raw, &ref); err != nil {
				t.Fatal(err)
			}
			worst, where := 0.0, ""
			for i := range got {
				for j := range got[i] {
					if e := math.Abs(float64(got[i][j]) - ref.Logprobs[i][j]); e > worst {
						worst, where = e, fmt.Sprintf("seq %d token %d (cir %g, torch %g)", i, j, got[i][j], ref.Logprobs[i][j])
					}
				}
			}
			if worst > 1e-4 {
				t.Errorf("log-probs: max abs error %.3g at %s, tolerance 1e-4", worst, where)
			} else {
				t.Logf("log-probs: max abs error %.3g", worst)
			}

			gf, err := safetensors.Open(filepath.Join(dir, "grads.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer gf.Close()
			named := m.Grads.Named(tc.cfg)
			if len(gf.Names()) != len(named) {
				t.Errorf("reference has %d gradient tensors, cir %d", len(gf.Names()), len(named))
			}
			worstRel, worstName := 0.0, ""
			for _, nt := range named {
				want := make([]float32, nt.Tensor.Len())
				if err := gf.ReadF32(nt.Name, want); err != nil {
					t.Fatalf("%s: %v", nt.Name, err)
				}
				have := make([]float32, nt.Tensor.Len())
				b.Download(engine.HostF32(have, nt.Tensor.Shape...), nt.Tensor)
				var diff, norm float64
				for k := range want {
					diff += (float64(have[k]) - float64(want[k])) * (float64(have[k]) - float64(want[k]))
					norm += float64(want[k]) * float64(want[k])
				}
				rel := math.Sqrt(diff) / max(math.Sqrt(norm), 1e-12)
				if rel > worstRel {
					worstRel, worstName = rel, nt.Name
				}
			}
			if worstRel > 1e-3 {
				t.Errorf("gradients: worst tensor %s has relative L2 error %.3g, tolerance 1e-3", worstName, worstRel)
			} else {
				t.Logf("gradients: worst relative L2 error %.3g (%s)", worstRel, worstName)
			}
		})
	}
}
