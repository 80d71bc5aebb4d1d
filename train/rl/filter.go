package rl

import "fmt"

// KeepGroups is the dynamic-sampling filter (DAPO): it returns, per trajectory, whether its
// group is kept, dropping every group of two or more trajectories whose scores are all equal
// (no learning signal). A group of one is kept, as in DAPO. It returns an error when the
// lengths differ.
func KeepGroups(scores []float64, groups []int) ([]bool, error) {
	if len(scores) != len(groups) {
		return nil, fmt.Errorf("rl: %d scores but %d group ids", len(scores), len(groups))
	}
	type span struct {
		n      int
		lo, hi float64
	}
	g := map[int]*span{}
	for i, s := range scores {
		if sp := g[groups[i]]; sp == nil {
			g[groups[i]] = &span{1, s, s}
		} else {
			sp.n++
			sp.lo, sp.hi = min(sp.lo, s), max(sp.hi, s)
		}
	}
	keep := make([]bool, len(scores))
	for i := range scores {
		sp := g[groups[i]]
		keep[i] = sp.n == 1 || sp.hi > sp.lo
	}
	return keep, nil
}

// OverlongPenalty is DAPO's soft overlong punishment: a response of length tokens whose limit
// is maxLen gets min(0, −(length − (maxLen − buffer))/buffer · factor) added to its reward —
// zero up to maxLen − buffer, falling linearly to −factor at maxLen. buffer ≤ 0 turns it off.
func OverlongPenalty(length, maxLen, buffer int, factor float64) float64 {
	if buffer <= 0 {
		return 0
	}
	exceed := length - (maxLen - buffer)
	return min(0, -float64(exceed)/float64(buffer)*factor)
}

// MaskTruncated is the overlong filter: it clears the loss mask of every trajectory that was
// cut by the length limit (truncated[i]), so it adds nothing to the loss, and returns how many
// it cleared. It panics if the lengths differ.
func MaskTruncated(mask [][]bool, truncated []bool) int {
	if len(mask) != len(truncated) {
		panic(fmt.Sprintf("rl: %d mask rows but %d truncation flags", len(mask), len(truncated)))
	}
	n := 0
	for i, tr := range truncated {
		if !tr {
			continue
		}
		n++
		for t := range mask[i] {
			mask[i][t] = false
		}
	}
	return n
}
