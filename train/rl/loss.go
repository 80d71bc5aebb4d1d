package rl

import (
	"fmt"
	"math"

	"cir/train/rollout"
)

// Agg names a loss aggregation: how the per-token losses of a mini-batch become one scalar.
type Agg string

// The aggregations (verl's agg_loss). With n_i the masked tokens of row i, B the rows with at
// least one masked token, N = Σ n_i, and L a constant length:
//
//	token-mean:              Σ_i Σ_t ℓ / N
//	seq-mean-token-mean:     Σ_i (Σ_t ℓ / n_i) / B
//	seq-mean-token-sum:      Σ_i (Σ_t ℓ) / B
//	seq-mean-token-sum-norm: Σ_i (Σ_t ℓ) / (B·L)   (Dr. GRPO; L the maximum response length)
//
// Rows without a masked token (empty or fully masked responses) are not counted in B.
//
// On seq-mean-token-sum-norm: verl computes Σ_i Σ_t ℓ / L per micro-batch and then scales
// each micro-batch by micro/mini batch size, so its effective objective is the Dr. GRPO
// paper's (1/B)·Σ_i Σ_t ℓ / L times the micro-batch size, a factor that depends on how the
// batch is split. This package uses the paper's split-independent form, which equals verl's
// with one sequence a micro-batch, and equals token-mean when every response has L tokens.
const (
	AggTokenMean           Agg = "token-mean"
	AggSeqMeanTokenMean    Agg = "seq-mean-token-mean"
	AggSeqMeanTokenSum     Agg = "seq-mean-token-sum"
	AggSeqMeanTokenSumNorm Agg = "seq-mean-token-sum-norm"
)

// Aggs lists the supported aggregations.
var Aggs = []Agg{AggTokenMean, AggSeqMeanTokenMean, AggSeqMeanTokenSum, AggSeqMeanTokenSumNorm}

// ParseAgg returns the aggregation with the given name, or an error naming it.
func ParseAgg(name string) (Agg, error) {
	for _, a := range Aggs {
		if string(a) == name {
			return a, nil
		}
	}
	return "", fmt.Errorf("rl: unknown loss aggregation %q (want one of %v)", name, Aggs)
}

// MaskFromRoles returns the loss mask of a response from its tokens' roles: policy tokens
// are in the loss, prompt tokens never, tool tokens only when maskTool is false (the
// ablation without tool-token masking).
func MaskFromRoles(roles []rollout.Role, maskTool bool) []bool {
	m := make([]bool, len(roles))
	for i, r := range roles {
		m[i] = r == rollout.RolePolicy || (r == rollout.RoleTool && !maskTool)
	}
	return m
}

// Totals are what an aggregation normalises a mini-batch's loss by: its masked tokens and its
// rows with at least one masked token.
type Totals struct {
	Tokens, Rows int
}

// CountTotals returns the Totals of the loss mask counts (Counts of the mask).
func CountTotals(counts []int) Totals {
	var t Totals
	for _, c := range counts {
		t.Tokens += c
		if c > 0 {
			t.Rows++
		}
	}
	return t
}

// Weights returns the per-token weights of aggregation agg over a mini-batch with loss mask
// mask: the aggregated loss is Σ w·ℓ, and w is zero off the mask. maxLen is the constant L
// of AggSeqMeanTokenSumNorm (ignored by the others). It returns an error for an unknown
// aggregation or, with AggSeqMeanTokenSumNorm, maxLen < 1.
func Weights(agg Agg, mask [][]bool, maxLen int) ([][]float32, error) {
	return WeightsOf(agg, mask, maxLen, CountTotals(Counts(mask)))
}

// WeightsOf is Weights for rows of a mini-batch whose Totals are tot: a part of a mini-batch
// split over data-parallel ranks gets the weights the whole mini-batch gives those rows.
func WeightsOf(agg Agg, mask [][]bool, maxLen int, tot Totals) ([][]float32, error) {
	if _, err := ParseAgg(string(agg)); err != nil {
		return nil, err
	}
	if agg == AggSeqMeanTokenSumNorm && maxLen < 1 {
		return nil, fmt.Errorf("rl: %s needs a maximum response length ≥ 1, got %d", agg, maxLen)
	}
	counts := Counts(mask)
	n, b := float64(tot.Tokens), float64(tot.Rows)
	w := make([][]float32, len(mask))
	for i, row := range mask {
		w[i] = make([]float32, len(row))
		if counts[i] == 0 {
			continue
		}
		var v float64
		switch agg {
		case AggTokenMean:
			v = 1 / n
		case AggSeqMeanTokenMean:
			v = 1 / (b * float64(counts[i]))
		case AggSeqMeanTokenSum:
			v = 1 / b
		case AggSeqMeanTokenSumNorm:
			v = 1 / (b * float64(maxLen))
		}
		for t, m := range row {
			if m {
				w[i][t] = float32(v)
			}
		}
	}
	return w, nil
}

// Aggregate returns Σ w·v over the batch, in float64: the aggregated value of a per-token
// quantity (e.g. the entropy) under the weights of Weights. It returns an error when the
// shapes differ.
func Aggregate(values, weights [][]float32) (float64, error) {
	if err := sameShape("values", values, "weights", weights); err != nil {
		return 0, err
	}
	var s float64
	for i, row := range values {
		for t, v := range row {
			if w := weights[i][t]; w != 0 {
				s += float64(w) * float64(v)
			}
		}
	}
	return s, nil
}

func sameShape(an string, a [][]float32, bn string, b [][]float32) error {
	if len(a) != len(b) {
		return fmt.Errorf("rl: %s has %d rows but %s has %d", an, len(a), bn, len(b))
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return fmt.Errorf("rl: row %d: %s has %d tokens but %s has %d", i, an, len(a[i]), bn, len(b[i]))
		}
	}
	return nil
}

// PPO holds the clipping parameters of the PPO policy loss (verl compute_policy_loss_vanilla).
// The ratio r = exp(clamp(logp − old, −20, 20)) is clipped to [1−ClipLow, 1+ClipHigh]
// (clip-higher when ClipHigh > ClipLow); for a negative advantage the loss is further
// bounded by −A·DualClipC (dual clip). DualClipC = 0 turns dual clip off; otherwise it must
// exceed 1.
type PPO struct {
	ClipLow, ClipHigh, DualClipC float64
}

// DefaultPPO is DESIGN.md's setting: clip 0.2 / 0.28, dual clip c = 3.
var DefaultPPO = PPO{ClipLow: 0.2, ClipHigh: 0.28, DualClipC: 3}

// Validate reports parameters outside their domain.
func (p PPO) Validate() error {
	if !(p.ClipLow >= 0 && p.ClipLow < 1) {
		return fmt.Errorf("rl: clip low %v outside [0, 1)", p.ClipLow)
	}
	if !(p.ClipHigh >= 0) {
		return fmt.Errorf("rl: clip high %v is negative", p.ClipHigh)
	}
	if p.DualClipC != 0 && !(p.DualClipC > 1) {
		return fmt.Errorf("rl: dual clip c %v must be > 1 (or 0 for off)", p.DualClipC)
	}
	return nil
}

// TokenLoss is the PPO loss of one token: its value, dℓ/dlogp, and which clip was active.
// ClipLow: A < 0 and r < 1−ClipLow (the clipped branch won); ClipHigh: A > 0 and
// r > 1+ClipHigh; DualClip: A < 0 and the dual-clip bound −A·c won.
type TokenLoss struct {
	Loss, Grad                  float64
	ClipLow, ClipHigh, DualClip bool
}

// Token returns the PPO loss of one token with current log-prob logp, old log-prob old and
// advantage adv.
func (p PPO) Token(logp, old, adv float64) TokenLoss {
	d := logp - old
	dgrad := 1.0 // d(clamped d)/d logp
	if d > 20 {
		d, dgrad = 20, 0
	} else if d < -20 {
		d, dgrad = -20, 0
	}
	r := math.Exp(d)
	l1 := -adv * r
	rc := math.Min(math.Max(r, 1-p.ClipLow), 1+p.ClipHigh)
	l2 := -adv * rc
	var tl TokenLoss
	if l2 > l1 {
		// The clipped branch: constant in logp, as rc is clamped.
		tl.Loss = l2
		if adv < 0 {
			tl.ClipLow = true
		} else {
			tl.ClipHigh = true
		}
	} else {
		tl.Loss, tl.Grad = l1, -adv*r*dgrad
	}
	if p.DualClipC != 0 && adv < 0 {
		if l3 := -adv * p.DualClipC; tl.Loss > l3 {
			tl.Loss, tl.Grad, tl.DualClip = l3, 0, true
		}
	}
	return tl
}

// Stats are the summable statistics of PolicyLoss over the tokens with non-zero weight;
// add the Stats of a mini-batch's micro-batches with Add.
type Stats struct {
	Loss                        float64 // Σ w·ℓ
	Tokens                      int     // tokens with non-zero weight
	ClipLow, ClipHigh, DualClip int     // tokens where each clip was active
	KLSum                       float64 // Σ (old − logp), the approximate KL numerator
}

// Add adds o's sums and counts to s.
func (s *Stats) Add(o Stats) {
	s.Loss += o.Loss
	s.Tokens += o.Tokens
	s.ClipLow += o.ClipLow
	s.ClipHigh += o.ClipHigh
	s.DualClip += o.DualClip
	s.KLSum += o.KLSum
}

func frac(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// ClipFrac is the share of tokens clipped on either side (verl's pg_clipfrac).
func (s Stats) ClipFrac() float64 { return frac(s.ClipLow+s.ClipHigh, s.Tokens) }

// ClipFracLow is the share of tokens clipped below (negative advantage, r < 1−ε_low).
func (s Stats) ClipFracLow() float64 { return frac(s.ClipLow, s.Tokens) }

// ClipFracHigh is the share of tokens clipped above (positive advantage, r > 1+ε_high).
func (s Stats) ClipFracHigh() float64 { return frac(s.ClipHigh, s.Tokens) }

// DualClipFrac is the share of tokens bounded by dual clip (verl's pg_clipfrac_lower).
func (s Stats) DualClipFrac() float64 { return frac(s.DualClip, s.Tokens) }

// ApproxKL is the token mean of old − logp (verl's ppo_kl).
func (s Stats) ApproxKL() float64 {
	if s.Tokens == 0 {
		return 0
	}
	return s.KLSum / float64(s.Tokens)
}

// PolicyLoss computes the PPO loss Σ w·ℓ of a (micro-)batch and adds w·dℓ/dlogp into grad
// (which must have logp's shape; nil skips the gradient). A token takes part iff its weight
// is non-zero. It returns an error when the shapes of logp, old, adv, weights and grad
// differ.
func (p PPO) PolicyLoss(logp, old, adv, weights, grad [][]float32) (Stats, error) {
	var s Stats
	for _, c := range []struct {
		n string
		v [][]float32
	}{{"old log-probs", old}, {"advantages", adv}, {"weights", weights}, {"gradient", grad}} {
		if c.v == nil && c.n == "gradient" {
			continue
		}
		if err := sameShape("log-probs", logp, c.n, c.v); err != nil {
			return s, err
		}
	}
	for i, row := range logp {
		for t, lp := range row {
			w := float64(weights[i][t])
			if w == 0 {
				continue
			}
			tl := p.Token(float64(lp), float64(old[i][t]), float64(adv[i][t]))
			s.Loss += w * tl.Loss
			s.Tokens++
			s.KLSum += float64(old[i][t]) - float64(lp)
			if tl.ClipLow {
				s.ClipLow++
			}
			if tl.ClipHigh {
				s.ClipHigh++
			}
			if tl.DualClip {
				s.DualClip++
			}
			if grad != nil {
				grad[i][t] += float32(w * tl.Grad)
			}
		}
	}
	return s, nil
}

// KLType names an estimator of KL(π‖π_ref) per token (verl's kl_penalty).
type KLType string

// The KL estimators, with δ = logp − ref: K1 ("kl") is δ; K2 ("mse") is ½δ²; K3
// ("low_var_kl") is e^{−δ} + δ − 1, with δ clamped to [−20, 20] and the value to [−10, 10].
const (
	K1 KLType = "kl"
	K2 KLType = "mse"
	K3 KLType = "low_var_kl"
)

// KLTypes lists the supported KL estimators.
var KLTypes = []KLType{K1, K2, K3}

// ParseKLType returns the KL estimator with the given name (also "k1", "k2", "k3"), or an
// error naming it.
func ParseKLType(name string) (KLType, error) {
	switch name {
	case "k1":
		return K1, nil
	case "k2":
		return K2, nil
	case "k3":
		return K3, nil
	}
	for _, k := range KLTypes {
		if string(k) == name {
			return k, nil
		}
	}
	return "", fmt.Errorf("rl: unknown KL type %q (want one of %v)", name, KLTypes)
}

// KL returns the per-token KL estimate of kind k and its derivative with respect to logp.
// Clamped regions have derivative 0. It panics on an unknown kind (use ParseKLType).
func KL(k KLType, logp, ref float64) (value, grad float64) {
	switch k {
	case K1:
		return logp - ref, 1
	case K2:
		d := logp - ref
		return 0.5 * d * d, d
	case K3:
		x, dx := ref-logp, -1.0
		if x > 20 {
			x, dx = 20, 0
		} else if x < -20 {
			x, dx = -20, 0
		}
		e := math.Exp(x)
		v := e - x - 1
		g := (e - 1) * dx
		if v > 10 {
			v, g = 10, 0
		} else if v < -10 {
			v, g = -10, 0
		}
		return v, g
	}
	panic(fmt.Sprintf("rl: unknown KL type %q", k))
}

// KLLoss returns the aggregated KL Σ w·kl (not multiplied by coef) and adds
// coef·w·dkl/dlogp into grad (nil skips the gradient): the trainer's loss gains coef·KL.
// It returns an error for an unknown kind or mismatched shapes.
func KLLoss(k KLType, coef float64, logp, ref, weights, grad [][]float32) (float64, error) {
	if _, err := ParseKLType(string(k)); err != nil {
		return 0, err
	}
	if err := sameShape("log-probs", logp, "reference log-probs", ref); err != nil {
		return 0, err
	}
	if err := sameShape("log-probs", logp, "weights", weights); err != nil {
		return 0, err
	}
	if grad != nil {
		if err := sameShape("log-probs", logp, "gradient", grad); err != nil {
			return 0, err
		}
	}
	var s float64
	for i, row := range logp {
		for t, lp := range row {
			w := float64(weights[i][t])
			if w == 0 {
				continue
			}
			v, g := KL(k, float64(lp), float64(ref[i][t]))
			s += w * v
			if grad != nil {
				grad[i][t] += float32(coef * w * g)
			}
		}
	}
	return s, nil
}
