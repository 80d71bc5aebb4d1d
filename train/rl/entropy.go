package rl

import "math"

// Entropy returns the entropy H = −Σ p log p of softmax(logits) (in float64) and, when dlogits
// is non-nil, adds scale·∂H/∂logits into it, where ∂H/∂z_j = −p_j (log p_j + H): with
// scale = −coef·w for a token of weight w, this is the gradient of an entropy bonus
// −coef·Σ w·H in the loss. It panics if dlogits is non-nil and shorter than logits.
func Entropy(logits []float32, scale float64, dlogits []float32) float64 {
	if len(logits) == 0 {
		return 0
	}
	mx := math.Inf(-1)
	for _, z := range logits {
		mx = math.Max(mx, float64(z))
	}
	var sum, ez float64
	for _, z := range logits {
		e := math.Exp(float64(z) - mx)
		sum += e
		ez += e * (float64(z) - mx)
	}
	lse := math.Log(sum)
	// H = lse − E[z − mx].
	h := lse - ez/sum
	if dlogits != nil {
		_ = dlogits[len(logits)-1]
		for j, z := range logits {
			lp := float64(z) - mx - lse
			p := math.Exp(lp)
			dlogits[j] += float32(scale * -p * (lp + h))
		}
	}
	return h
}
