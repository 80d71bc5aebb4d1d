package rl

import (
	"fmt"
	"math"
)

// Estimator names an advantage estimator.
type Estimator string

// The advantage estimators.
//
// ReinforcePPBaseline (verl "reinforce_plus_plus_baseline", the default): the score minus its
// group mean, broadcast over the response tokens, then whitened over the tokens of the batch
// the whitening runs over (mean and Bessel-corrected variance over tokens,
// (x−μ)/√(σ²+1e−8)): verl's response_mask, every response token including the interpreter's
// output (WhitenResponse), or only the policy's tokens (WhitenPolicy).
//
// GRPO: (score − group mean)/(group std + 1e−6) with the Bessel-corrected std.
//
// DrGRPO: score − group mean (verl's grpo with norm_adv_by_std_in_grpo=false); pair it with
// the AggSeqMeanTokenSumNorm aggregation, as Dr. GRPO does.
//
// In every estimator a group of one trajectory has mean 0 (and std 1), as in verl.
const (
	ReinforcePPBaseline Estimator = "reinforce_pp_baseline"
	GRPO                Estimator = "grpo"
	DrGRPO              Estimator = "dr_grpo"
)

// Estimators lists the supported estimators.
var Estimators = []Estimator{ReinforcePPBaseline, GRPO, DrGRPO}

const (
	grpoEps   = 1e-6
	whitenEps = 1e-8
)

// Whiten names the tokens reinforce_pp_baseline whitens the advantages over.
type Whiten string

// The whitening sets: every response token (verl's response_mask, interpreter output
// included; the default) or the policy's tokens only (the loss mask).
const (
	WhitenResponse Whiten = "response"
	WhitenPolicy   Whiten = "policy"
)

// ParseWhiten returns the whitening set with the given name, or an error naming it.
func ParseWhiten(name string) (Whiten, error) {
	switch w := Whiten(name); w {
	case WhitenResponse, WhitenPolicy:
		return w, nil
	}
	return "", fmt.Errorf("rl: unknown whitening set %q (want response or policy)", name)
}

// ParseEstimator returns the estimator with the given name, or an error naming it.
func ParseEstimator(name string) (Estimator, error) {
	for _, e := range Estimators {
		if string(e) == name {
			return e, nil
		}
	}
	return "", fmt.Errorf("rl: unknown advantage estimator %q (want one of %v)", name, Estimators)
}

// GroupBaseline returns, for each trajectory, its score minus the mean score of its group
// (groups[i] is trajectory i's group id; a group of one has mean 0) and, when divStd is set,
// divided by the group's Bessel-corrected standard deviation + 1e−6 (std 1 for a group of
// one). It returns an error when the lengths of scores and groups differ or a score is not
// finite.
func GroupBaseline(scores []float64, groups []int, divStd bool) ([]float64, error) {
	if len(scores) != len(groups) {
		return nil, fmt.Errorf("rl: %d scores but %d group ids", len(scores), len(groups))
	}
	type acc struct {
		n        int
		sum, ssq float64
	}
	g := map[int]*acc{}
	for i, s := range scores {
		if math.IsNaN(s) || math.IsInf(s, 0) {
			return nil, fmt.Errorf("rl: score %d is %v", i, s)
		}
		a := g[groups[i]]
		if a == nil {
			a = &acc{}
			g[groups[i]] = a
		}
		a.n++
		a.sum += s
	}
	mean := map[int]float64{}
	for id, a := range g {
		if a.n > 1 {
			mean[id] = a.sum / float64(a.n)
		}
	}
	for i, s := range scores {
		d := s - mean[groups[i]]
		g[groups[i]].ssq += d * d
	}
	out := make([]float64, len(scores))
	for i, s := range scores {
		a := g[groups[i]]
		out[i] = s - mean[groups[i]]
		if divStd {
			std := 1.0
			if a.n > 1 {
				std = math.Sqrt(a.ssq / float64(a.n-1))
			}
			out[i] /= std + grpoEps
		}
	}
	return out, nil
}

// Advantages computes per-token advantages for a batch: scores[i] is trajectory i's scalar
// reward, groups[i] its group (prompt) id, mask[i] its response tokens' loss mask, and
// whiten[i] the tokens ReinforcePPBaseline whitens over (nil: the mask). The result has
// mask's shape, zero off the mask. It returns an error for an unknown estimator or
// mismatched lengths.
func Advantages(est Estimator, scores []float64, groups []int, mask, whiten [][]bool) ([][]float32, error) {
	if len(mask) != len(scores) {
		return nil, fmt.Errorf("rl: %d scores but %d mask rows", len(scores), len(mask))
	}
	if whiten == nil {
		whiten = mask
	}
	if len(whiten) != len(scores) {
		return nil, fmt.Errorf("rl: %d scores but %d whitening rows", len(scores), len(whiten))
	}
	seq, err := SeqAdvantages(est, scores, groups, Counts(whiten))
	if err != nil {
		return nil, err
	}
	return Spread(seq, mask), nil
}

// SeqAdvantages is Advantages per trajectory, from the number of tokens each trajectory has in
// the whitening set (whitened[i]) rather than the masks: every estimator gives all the tokens
// of a trajectory one advantage, so this is all a batch split over data-parallel ranks needs
// to exchange. It returns an error for an unknown estimator or mismatched lengths.
func SeqAdvantages(est Estimator, scores []float64, groups []int, whitened []int) ([]float64, error) {
	if len(whitened) != len(scores) {
		return nil, fmt.Errorf("rl: %d scores but %d whitening counts", len(scores), len(whitened))
	}
	var seq []float64
	var err error
	switch est {
	case GRPO:
		seq, err = GroupBaseline(scores, groups, true)
	case DrGRPO, ReinforcePPBaseline:
		seq, err = GroupBaseline(scores, groups, false)
	default:
		_, err = ParseEstimator(string(est))
	}
	if err != nil {
		return nil, err
	}
	if est == ReinforcePPBaseline {
		var n int
		var sum float64
		for i, c := range whitened {
			n += c
			sum += float64(c) * seq[i]
		}
		var mu, ssq float64
		if n > 0 {
			mu = sum / float64(n)
		}
		for i, c := range whitened {
			d := seq[i] - mu
			ssq += float64(c) * d * d
		}
		v := 0.0
		if n > 1 {
			v = ssq / float64(n-1)
		}
		inv := 1 / math.Sqrt(v+whitenEps)
		for i := range seq {
			seq[i] = (seq[i] - mu) * inv
		}
	}
	return seq, nil
}

// Counts returns the number of set entries of each row of mask.
func Counts(mask [][]bool) []int {
	c := make([]int, len(mask))
	for i, row := range mask {
		for _, m := range row {
			if m {
				c[i]++
			}
		}
	}
	return c
}

// Spread gives each set token of mask[i] the value seq[i] (as float32), zero elsewhere.
func Spread(seq []float64, mask [][]bool) [][]float32 {
	out := make([][]float32, len(mask))
	for i, row := range mask {
		out[i] = make([]float32, len(row))
		for t, m := range row {
			if m {
				out[i][t] = float32(seq[i])
			}
		}
	}
	return out
}
