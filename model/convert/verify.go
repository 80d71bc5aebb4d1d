package convert

import (
	"fmt"
	"math"
	"math/rand/v2"

	"cir/engine"
	"cir/model"
)

// VerifyResult is the comparison of two checkpoints' log-probs on the same sequences.
type VerifyResult struct {
	MaxDiff   float64 // largest |log p_a − log p_b| over every predicted token
	Sequences int
	Tokens    int // predicted tokens compared
}

// Verify loads the checkpoints a and b (anything Open reads) onto backend be, one after the
// other, runs both on nseq random token sequences of length seqLen drawn with seed, and returns
// the largest difference of their log-probs. The two must describe the same architecture.
func Verify(a, b string, be engine.Backend, nseq, seqLen int, seed uint64) (VerifyResult, error) {
	var cfgA model.Config
	var seqs [][]int32
	var ref [][]float32
	for i, path := range []string{a, b} {
		src, err := Open(path)
		if err != nil {
			return VerifyResult{}, err
		}
		if i == 0 {
			cfgA = src.Config
			r := rand.New(rand.NewPCG(seed, 0x5eed))
			for range nseq {
				s := make([]int32, seqLen)
				for j := range s {
					s[j] = int32(r.IntN(cfgA.VocabSize))
				}
				seqs = append(seqs, s)
			}
		} else if d := archDiff(cfgA, src.Config); d != "" {
			src.Close()
			return VerifyResult{}, fmt.Errorf("verify: %s and %s differ in %s", a, b, d)
		}
		lp, err := logprobs(src, be, seqs)
		src.Close()
		if err != nil {
			return VerifyResult{}, fmt.Errorf("verify %s: %w", path, err)
		}
		if i == 0 {
			ref = lp
			continue
		}
		res := VerifyResult{Sequences: len(seqs)}
		for s := range lp {
			for j := range lp[s] {
				d := math.Abs(float64(lp[s][j]) - float64(ref[s][j]))
				if d != d {
					d = math.Inf(1)
				}
				res.MaxDiff = max(res.MaxDiff, d)
				res.Tokens++
			}
		}
		return res, nil
	}
	panic("unreachable")
}

// archDiff names the first architecture field in which a and b differ ("" if none).
func archDiff(a, b model.Config) string {
	for _, f := range []struct {
		name string
		x, y any
	}{
		{"vocab_size", a.VocabSize, b.VocabSize}, {"hidden_size", a.HiddenSize, b.HiddenSize},
		{"intermediate_size", a.IntermediateSize, b.IntermediateSize}, {"num_hidden_layers", a.NumLayers, b.NumLayers},
		{"num_attention_heads", a.NumHeads, b.NumHeads}, {"num_key_value_heads", a.NumKVHeads, b.NumKVHeads},
		{"head_dim", a.HeadDim, b.HeadDim}, {"rope_theta", a.RopeTheta, b.RopeTheta},
		{"rms_norm_eps", a.RMSNormEps, b.RMSNormEps}, {"tie_word_embeddings", a.TieWordEmbeddings, b.TieWordEmbeddings},
		{"attention biases", a.QKVBias, b.QKVBias},
	} {
		if f.x != f.y {
			return fmt.Sprintf("%s (%v vs %v)", f.name, f.x, f.y)
		}
	}
	return ""
}

// logprobs loads src onto be one tensor at a time and returns the log-probs of seqs.
func logprobs(src *Source, be engine.Backend, seqs [][]int32) ([][]float32, error) {
	m, err := model.New(src.Config, be)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	var buf []float32
	for _, nt := range m.Params.Named(src.Config) {
		n := nt.Tensor.Len()
		if cap(buf) < n {
			buf = make([]float32, n)
		}
		if err := src.ReadF32(nt.Name, buf[:n]); err != nil {
			return nil, err
		}
		be.Upload(nt.Tensor, engine.HostF32(buf[:n], nt.Tensor.Shape...))
		if err := be.Sync(); err != nil {
			return nil, err
		}
	}
	lp, _, err := m.Forward(seqs)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(lp))
	for i := range lp {
		out[i] = append([]float32(nil), lp[i]...)
	}
	return out, nil
}
