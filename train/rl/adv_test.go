package rl

import (
	"math"
	"strings"
	"testing"
)

func mask(rows ...string) [][]bool {
	m := make([][]bool, len(rows))
	for i, r := range rows {
		m[i] = make([]bool, len(r))
		for t, c := range r {
			m[i][t] = c == '1'
		}
	}
	return m
}

// expand broadcasts per-row values over the mask, zero off it.
func expand(m [][]bool, v []float64) [][]float64 {
	out := make([][]float64, len(m))
	for i, row := range m {
		out[i] = make([]float64, len(row))
		for t, on := range row {
			if on {
				out[i][t] = v[i]
			}
		}
	}
	return out
}

func checkClose(t *testing.T, name string, got [][]float32, want [][]float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", name, len(got), len(want))
	}
	var maxAbs, maxRel float64
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("%s: row %d has %d tokens, want %d", name, i, len(got[i]), len(want[i]))
		}
		for j := range want[i] {
			d := math.Abs(float64(got[i][j]) - want[i][j])
			maxAbs = max(maxAbs, d)
			if want[i][j] != 0 {
				maxRel = max(maxRel, d/math.Abs(want[i][j]))
			} else if got[i][j] != 0 {
				t.Errorf("%s[%d][%d] = %v, want exactly 0", name, i, j, got[i][j])
			}
		}
	}
	if maxAbs > tol {
		t.Errorf("%s: max abs error %.3g, max rel error %.3g > tol %.g\ngot  %v\nwant %v", name, maxAbs, maxRel, tol, got, want)
	}
}

func TestAdvantages(t *testing.T) {
	s43 := math.Sqrt(4.0 / 3) // Bessel std of {1,-1,-1,1}
	// reinforce_pp_baseline case: group means give 0.5, -0.5 (group 0) and 3 (single).
	// Masked token values .5,.5,-.5,-.5,3: mean 0.6, squared deviations sum 8.2, var 8.2/4.
	sd := math.Sqrt(8.2/4 + 1e-8)
	// The same batch whitened over every response token (row 1's interpreter token too):
	// values .5,.5,-.5,-.5,-.5,3.
	all := []float64{.5, .5, -.5, -.5, -.5, 3}
	var mu, ssq float64
	for _, v := range all {
		mu += v / 6
	}
	for _, v := range all {
		ssq += (v - mu) * (v - mu)
	}
	sdAll := math.Sqrt(ssq/5 + 1e-8)
	tests := []struct {
		name   string
		est    Estimator
		scores []float64
		groups []int
		mask   [][]bool
		want   []float64 // per row, broadcast over the mask
	}{
		{"grpo", GRPO, []float64{1, -1, -1, 1, 1, 1, 1}, []int{0, 0, 0, 0, 1, 1, 2}, mask("11", "1", "110", "1", "11", "1", "101"),
			[]float64{1 / (s43 + 1e-6), -1 / (s43 + 1e-6), -1 / (s43 + 1e-6), 1 / (s43 + 1e-6), 0, 0, 1 / (1 + 1e-6)}},
		{"grpo equal rewards", GRPO, []float64{-1, -1, -1}, []int{5, 5, 5}, mask("1", "11", "111"), []float64{0, 0, 0}},
		{"dr_grpo", DrGRPO, []float64{1, -1, -1, 1, 1, 1, 1}, []int{0, 0, 0, 0, 1, 1, 2}, mask("11", "1", "110", "1", "11", "1", "101"),
			[]float64{1, -1, -1, 1, 0, 0, 1}},
		{"dr_grpo empty and truncated", DrGRPO, []float64{1, -1, -1}, []int{0, 0, 0}, mask("", "1111", "11"),
			[]float64{4.0 / 3, -2.0 / 3, -2.0 / 3}},
		{"reinforce_pp_baseline", ReinforcePPBaseline, []float64{1, 0, 3}, []int{0, 0, 1}, mask("11", "101", "1"),
			[]float64{-0.1 / sd, -1.1 / sd, 2.4 / sd}},
		{"reinforce_pp_baseline over all response tokens", ReinforcePPBaseline, []float64{1, 0, 3}, []int{0, 0, 1}, mask("11", "101", "1"),
			[]float64{(.5 - mu) / sdAll, (-.5 - mu) / sdAll, (3 - mu) / sdAll}},
		{"reinforce_pp_baseline equal rewards", ReinforcePPBaseline, []float64{1, 1}, []int{0, 0}, mask("11", "1"), []float64{0, 0}},
		{"reinforce_pp_baseline one token", ReinforcePPBaseline, []float64{1, 0}, []int{0, 0}, mask("1", "000"), []float64{0, 0}},
		{"reinforce_pp_baseline empty rows", ReinforcePPBaseline, []float64{1, -1, 1}, []int{0, 0, 0}, mask("", "1", "1"),
			// group mean 1/3 → 2/3, -4/3, 2/3; tokens -4/3, 2/3: mean -1/3, var (1+1)/1 = 2.
			[]float64{0, (-4.0/3 + 1.0/3) / math.Sqrt(2+1e-8), (2.0/3 + 1.0/3) / math.Sqrt(2+1e-8)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var whiten [][]bool // nil: the mask
			if strings.Contains(tc.name, "all response tokens") {
				whiten = mask("11", "111", "1")
			}
			got, err := Advantages(tc.est, tc.scores, tc.groups, tc.mask, whiten)
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, "advantages", got, expand(tc.mask, tc.want), 1e-6)
		})
	}
}

func TestAdvantagesErrors(t *testing.T) {
	tests := []struct {
		name   string
		est    Estimator
		scores []float64
		groups []int
		mask   [][]bool
		want   string
	}{
		{"unknown", "ppo", []float64{1}, []int{0}, mask("1"), `"ppo"`},
		{"groups", GRPO, []float64{1, 2}, []int{0}, mask("1", "1"), "group ids"},
		{"mask rows", GRPO, []float64{1, 2}, []int{0, 0}, mask("1"), "mask rows"},
		{"nan", DrGRPO, []float64{math.NaN()}, []int{0}, mask("1"), "score 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Advantages(tc.est, tc.scores, tc.groups, tc.mask, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
