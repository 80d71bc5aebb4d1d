package rl

import (
	"math"
	"math/rand/v2"
	"testing"

	"cir/train/rollout"
)

func TestPPOToken(t *testing.T) {
	p := DefaultPPO
	ln := math.Log
	tests := []struct {
		name                string
		p                   PPO
		d, adv              float64 // d = logp - old
		loss, grad          float64
		low, high, dualClip bool
	}{
		{"A>0 inside", p, ln(1.1), 1, -1.1, -1.1, false, false, false},
		{"A>0 above clip-high", p, ln(1.5), 1, -1.28, 0, false, true, false},
		{"A>0 below 1-low not clipped", p, ln(0.5), 1, -0.5, -0.5, false, false, false},
		{"A<0 below clip-low", p, ln(0.5), -1, 0.8, 0, true, false, false},
		{"A<0 above 1+high not clipped", p, ln(1.5), -1, 1.5, 1.5, false, false, false},
		{"A<0 inside", p, ln(0.9), -2, 1.8, 1.8, false, false, false},
		{"A<0 dual clip", p, ln(4), -1, 3, 0, false, false, true},
		{"A<0 dual clip, clamped ratio", p, 25, -2, 6, 0, false, false, true},
		{"dual clip off", PPO{0.2, 0.28, 0}, ln(4), -1, 4, 4, false, false, false},
		{"A>0 clamped below", p, -25, 0.5, -0.5 * math.Exp(-20), 0, false, false, false},
		{"A=0", p, ln(3), 0, 0, 0, false, false, false},
		{"symmetric clip 0.2", PPO{0.2, 0.2, 3}, ln(1.25), 2, -2.4, 0, false, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := -1.7
			got := tc.p.Token(old+tc.d, old, tc.adv)
			if math.Abs(got.Loss-tc.loss) > 1e-12 || math.Abs(got.Grad-tc.grad) > 1e-12 {
				t.Errorf("loss, grad = %.15g, %.15g; want %.15g, %.15g", got.Loss, got.Grad, tc.loss, tc.grad)
			}
			if got.ClipLow != tc.low || got.ClipHigh != tc.high || got.DualClip != tc.dualClip {
				t.Errorf("clip low/high/dual = %v/%v/%v, want %v/%v/%v", got.ClipLow, got.ClipHigh, got.DualClip, tc.low, tc.high, tc.dualClip)
			}
		})
	}
}

func TestWeights(t *testing.T) {
	m := mask("110", "1", "", "00")
	loss := [][]float32{{1, 2, 100}, {3}, {}, {100, 100}}
	tests := []struct {
		agg    Agg
		maxLen int
		w      []float64
		total  float64
	}{
		{AggTokenMean, 0, []float64{1.0 / 3, 1.0 / 3, 0, 0}, 2},
		{AggSeqMeanTokenMean, 0, []float64{1.0 / 4, 1.0 / 2, 0, 0}, 2.25},
		{AggSeqMeanTokenSum, 0, []float64{1.0 / 2, 1.0 / 2, 0, 0}, 3},
		{AggSeqMeanTokenSumNorm, 4, []float64{1.0 / 8, 1.0 / 8, 0, 0}, 0.75},
	}
	for _, tc := range tests {
		t.Run(string(tc.agg), func(t *testing.T) {
			w, err := Weights(tc.agg, m, tc.maxLen)
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, "weights", w, expand(m, tc.w), 1e-7)
			// Split over two data-parallel ranks, rows 0 and 2 on one and 1 and 3 on the
			// other, with the whole mini-batch's totals: the same weights.
			tot := CountTotals(Counts(m))
			for _, rows := range [][]int{{0, 2}, {1, 3}} {
				part := [][]bool{m[rows[0]], m[rows[1]]}
				wp, err := WeightsOf(tc.agg, part, tc.maxLen, tot)
				if err != nil {
					t.Fatal(err)
				}
				for k, i := range rows {
					for j := range w[i] {
						if wp[k][j] != w[i][j] {
							t.Fatalf("row %d token %d: weight %g with the split's totals, %g in the whole", i, j, wp[k][j], w[i][j])
						}
					}
				}
			}
			got, err := Aggregate(loss, w)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-tc.total) > 1e-6 {
				t.Errorf("aggregate = %v, want %v", got, tc.total)
			}
		})
	}
	if _, err := Weights("sum", m, 0); err == nil {
		t.Error("unknown aggregation accepted")
	}
	if _, err := Weights(AggSeqMeanTokenSumNorm, m, 0); err == nil {
		t.Error("seq-mean-token-sum-norm without a length accepted")
	}
	if _, err := Aggregate(loss, [][]float32{{1}}); err == nil {
		t.Error("shape mismatch accepted")
	}
	// With every response at the maximum length, Dr. GRPO's normalisation is the token mean.
	full := mask("1111", "1111", "1111")
	wn, _ := Weights(AggSeqMeanTokenSumNorm, full, 4)
	wt, _ := Weights(AggTokenMean, full, 0)
	for i := range wn {
		for j := range wn[i] {
			if math.Abs(float64(wn[i][j]-wt[i][j])) > 1e-9 {
				t.Fatalf("full-length batch: sum-norm weight %v, token-mean weight %v", wn[i][j], wt[i][j])
			}
		}
	}
	// A batch with no masked token at all has zero loss, not NaN.
	w, _ := Weights(AggTokenMean, mask("00", ""), 0)
	if got, _ := Aggregate([][]float32{{5, 5}, {}}, w); got != 0 {
		t.Errorf("fully masked batch aggregates to %v, want 0", got)
	}
}

func TestPolicyLossBatch(t *testing.T) {
	// Six tokens in two rows (one masked out), token-mean over the five in the mask:
	// losses -1.1 (inside), -1.28 (clip high), 0.8 (clip low), 3 (dual clip), 1.8 (inside).
	ln := math.Log
	old := [][]float32{{-1, -2, -0.5}, {-3, -1.5, -0.25}}
	d := [][]float64{{ln(1.1), ln(1.5), ln(0.5)}, {ln(4), ln(7), ln(0.9)}}
	adv := [][]float32{{1, 1, -1}, {-1, 5, -2}}
	m := mask("111", "101")
	logp := make([][]float32, 2)
	for i := range old {
		logp[i] = make([]float32, 3)
		for j := range old[i] {
			logp[i][j] = float32(float64(old[i][j]) + d[i][j])
		}
	}
	w, err := Weights(AggTokenMean, m, 0)
	if err != nil {
		t.Fatal(err)
	}
	grad := [][]float32{{0, 0, 0}, {0, 0, 0}}
	s, err := DefaultPPO.PolicyLoss(logp, old, adv, w, grad)
	if err != nil {
		t.Fatal(err)
	}
	wantLoss := (-1.1 - 1.28 + 0.8 + 3 + 1.8) / 5
	if math.Abs(s.Loss-wantLoss) > 1e-6 {
		t.Errorf("loss = %v, want %v (abs err %.3g)", s.Loss, wantLoss, math.Abs(s.Loss-wantLoss))
	}
	checkClose(t, "grad", grad, [][]float64{{-1.1 / 5, 0, 0}, {0, 0, 1.8 / 5}}, 1e-6)
	if s.Tokens != 5 || s.ClipLow != 1 || s.ClipHigh != 1 || s.DualClip != 1 {
		t.Errorf("stats = %+v, want 5 tokens, 1 low, 1 high, 1 dual", s)
	}
	if got, want := s.ClipFrac(), 0.4; math.Abs(got-want) > 1e-12 {
		t.Errorf("clip frac = %v, want %v", got, want)
	}
	if got, want := s.DualClipFrac(), 0.2; math.Abs(got-want) > 1e-12 {
		t.Errorf("dual clip frac = %v, want %v", got, want)
	}
	wantKL := -(ln(1.1) + ln(1.5) + ln(0.5) + ln(4) + ln(0.9)) / 5
	if math.Abs(s.ApproxKL()-wantKL) > 1e-6 {
		t.Errorf("approx KL = %v, want %v", s.ApproxKL(), wantKL)
	}

	// Micro-batches (each row alone) sum to the same loss and statistics.
	var sum Stats
	for i := range logp {
		g := [][]float32{make([]float32, 3)}
		si, err := DefaultPPO.PolicyLoss(logp[i:i+1], old[i:i+1], adv[i:i+1], w[i:i+1], g)
		if err != nil {
			t.Fatal(err)
		}
		sum.Add(si)
	}
	if math.Abs(sum.Loss-s.Loss) > 1e-12 || sum.Tokens != s.Tokens || sum.ClipLow != s.ClipLow || sum.DualClip != s.DualClip {
		t.Errorf("micro-batch sum %+v differs from whole batch %+v", sum, s)
	}

	if _, err := DefaultPPO.PolicyLoss(logp, old[:1], adv, w, nil); err == nil {
		t.Error("mismatched old log-probs accepted")
	}
}

// randomBatch returns a ragged batch of log-probs near old ones, with random advantages.
func randomBatch(r *rand.Rand, rows int) (logp, old, adv [][]float32, m [][]bool) {
	for i := 0; i < rows; i++ {
		n := r.IntN(7)
		var lp, ol, ad []float32
		var mk []bool
		a := float32(r.NormFloat64())
		for j := 0; j < n; j++ {
			o := -float32(r.ExpFloat64())
			ol = append(ol, o)
			lp = append(lp, o+float32(0.6*r.NormFloat64()))
			ad = append(ad, a)
			mk = append(mk, r.IntN(4) != 0)
		}
		logp, old, adv, m = append(logp, lp), append(old, ol), append(adv, ad), append(m, mk)
	}
	return
}

func zeros(like [][]float32) [][]float32 {
	z := make([][]float32, len(like))
	for i := range like {
		z[i] = make([]float32, len(like[i]))
	}
	return z
}

// nearKink reports whether a token's ratio is within h of a clip boundary, where the loss
// is not differentiable and finite differences straddle two branches.
func nearKink(p PPO, logp, old float64, h float64) bool {
	d := logp - old
	for _, b := range []float64{math.Log(1 - p.ClipLow), math.Log(1 + p.ClipHigh), math.Log(p.DualClipC)} {
		if math.Abs(d-b) < 3*h {
			return true
		}
	}
	return false
}

func TestLossGradientFiniteDifferences(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	logp, old, adv, m := randomBatch(r, 12)
	ref := zeros(logp)
	for i := range logp {
		for j := range logp[i] {
			ref[i][j] = logp[i][j] + float32(0.3*r.NormFloat64())
		}
	}
	const h = 1e-3
	const coef = 0.7
	for _, agg := range Aggs {
		for _, kl := range KLTypes {
			t.Run(string(agg)+"/"+string(kl), func(t *testing.T) {
				w, err := Weights(agg, m, 8)
				if err != nil {
					t.Fatal(err)
				}
				total := func(lp [][]float32, grad [][]float32) float64 {
					s, err := DefaultPPO.PolicyLoss(lp, old, adv, w, grad)
					if err != nil {
						t.Fatal(err)
					}
					k, err := KLLoss(kl, coef, lp, ref, w, grad)
					if err != nil {
						t.Fatal(err)
					}
					return s.Loss + coef*k
				}
				grad := zeros(logp)
				total(logp, grad)
				var maxAbs, maxRel float64
				checked := 0
				for i := range logp {
					for j := range logp[i] {
						x := logp[i][j]
						if nearKink(DefaultPPO, float64(x), float64(old[i][j]), h) {
							continue
						}
						xp, xm := x+h, x-h
						logp[i][j] = xp
						lp := total(logp, nil)
						logp[i][j] = xm
						lm := total(logp, nil)
						logp[i][j] = x
						fd := (lp - lm) / (float64(xp) - float64(xm))
						d := math.Abs(fd - float64(grad[i][j]))
						maxAbs = max(maxAbs, d)
						if fd != 0 {
							maxRel = max(maxRel, d/math.Abs(fd))
						}
						checked++
					}
				}
				if checked < 20 {
					t.Fatalf("only %d tokens checked", checked)
				}
				if maxAbs > 2e-4 {
					t.Errorf("dL/dlogp vs finite differences: max abs error %.3g, max rel error %.3g", maxAbs, maxRel)
				}
			})
		}
	}
}

func TestKL(t *testing.T) {
	e := math.Exp(-0.5)
	tests := []struct {
		k          KLType
		logp, ref  float64
		value, grd float64
	}{
		{K1, -1, -1.5, 0.5, 1},
		{K2, -1, -1.5, 0.125, 0.5},
		{K3, -1, -1.5, e + 0.5 - 1, 1 - e},
		{K3, -1, -1, 0, 0},
		{K3, -31, -1, 10, 0},                     // δ clamped to 20, value clamped to 10
		{K3, -1, -31, math.Exp(-20) + 20 - 1, 0}, // δ clamped to −20: value e^−20+19 > 10 → 10
	}
	tests[5].value = 10
	for _, tc := range tests {
		v, g := KL(tc.k, tc.logp, tc.ref)
		if math.Abs(v-tc.value) > 1e-12 || math.Abs(g-tc.grd) > 1e-12 {
			t.Errorf("KL(%s, %v, %v) = %.15g, %.15g; want %.15g, %.15g", tc.k, tc.logp, tc.ref, v, g, tc.value, tc.grd)
		}
	}
	if k, err := ParseKLType("k3"); err != nil || k != K3 {
		t.Errorf("ParseKLType(k3) = %v, %v", k, err)
	}
	if _, err := ParseKLType("k9"); err == nil {
		t.Error("k9 accepted")
	}
	m := mask("11", "1")
	w, _ := Weights(AggTokenMean, m, 0)
	lp := [][]float32{{-1, -2}, {-0.5}}
	ref := [][]float32{{-1.5, -2}, {-1}}
	grad := zeros(lp)
	got, err := KLLoss(K3, 2, lp, ref, w, grad)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * (e - 0.5) / 3; math.Abs(got-want) > 1e-6 {
		t.Errorf("KLLoss = %v, want %v", got, want)
	}
	checkClose(t, "KL grad", grad, [][]float64{{2 * (1 - e) / 3, 0}, {2 * (1 - e) / 3}}, 1e-6)
}

func TestMaskFromRoles(t *testing.T) {
	roles := []rollout.Role{rollout.RolePolicy, rollout.RolePolicy, rollout.RoleTool, rollout.RoleTool, rollout.RolePolicy, rollout.RolePrompt}
	for _, tc := range []struct {
		maskTool bool
		want     string
	}{{true, "110010"}, {false, "111110"}} {
		got := MaskFromRoles(roles, tc.maskTool)
		want := mask(tc.want)[0]
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("maskTool=%v: mask %v, want %v", tc.maskTool, got, want)
				break
			}
		}
	}
}

func TestPPOValidate(t *testing.T) {
	for _, tc := range []struct {
		p  PPO
		ok bool
	}{{DefaultPPO, true}, {PPO{0.2, 0.2, 0}, true}, {PPO{1, 0.2, 3}, false}, {PPO{0.2, -1, 3}, false}, {PPO{0.2, 0.28, 1}, false}} {
		if err := tc.p.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: Validate() = %v, want ok=%v", tc.p, err, tc.ok)
		}
	}
}
