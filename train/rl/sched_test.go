package rl

import (
	"math"
	"testing"

	"cir/train/rollout"
)

func TestBudget(t *testing.T) {
	for _, tc := range []struct{ step, want int }{{0, 2}, {99, 2}, {100, 3}, {199, 3}, {200, 4}, {10000, 4}} {
		if got := DefaultBudget.At(tc.step); got != tc.want {
			t.Errorf("DefaultBudget.At(%d) = %d, want %d", tc.step, got, tc.want)
		}
	}
	b, err := ParseBudget(" 0:1, 5:3 ")
	if err != nil {
		t.Fatal(err)
	}
	if b.At(4) != 1 || b.At(5) != 3 || b.String() != "0:1,5:3" {
		t.Errorf("parsed %v: At(4)=%d At(5)=%d", b, b.At(4), b.At(5))
	}
	if b, err := ParseBudget("3"); err != nil || b.At(1000) != 3 {
		t.Errorf("constant budget: %v, %v", b, err)
	}
	for _, bad := range []string{"", "5:1", "0:2,0:3", "0:2,100", "x:1", "0:-1", "0:2,50:3,40:4"} {
		if _, err := ParseBudget(bad); err == nil {
			t.Errorf("ParseBudget(%q) accepted", bad)
		}
	}
}

func TestLR(t *testing.T) {
	const base = 1e-3
	tests := []struct {
		name string
		lr   LR
		step int
		want float64
	}{
		{"constant", LR{Kind: LRConstant, Base: base}, 0, base},
		{"constant warm-up start", LR{Kind: LRConstant, Base: base, Warmup: 10}, 0, 0},
		{"constant warm-up mid", LR{Kind: LRConstant, Base: base, Warmup: 10}, 5, base / 2},
		{"constant after warm-up", LR{Kind: LRConstant, Base: base, Warmup: 10}, 500, base},
		{"cosine start", LR{Kind: LRCosine, Base: base, Total: 100}, 0, base},
		{"cosine half", LR{Kind: LRCosine, Base: base, Total: 100}, 50, base / 2},
		{"cosine quarter", LR{Kind: LRCosine, Base: base, Total: 100}, 25, base * (1 + math.Sqrt2/2) / 2},
		{"cosine end", LR{Kind: LRCosine, Base: base, Total: 100}, 100, 0},
		{"cosine past end", LR{Kind: LRCosine, Base: base, Total: 100}, 300, 0},
		{"cosine floor", LR{Kind: LRCosine, Base: base, Total: 100, MinRatio: 0.1}, 50, base * 0.55},
		{"cosine with warm-up", LR{Kind: LRCosine, Base: base, Warmup: 10, Total: 110}, 60, base / 2},
		{"cosine in warm-up", LR{Kind: LRCosine, Base: base, Warmup: 10, Total: 110}, 3, base * 0.3},
		{"linear", LR{Kind: LRLinear, Base: base, Total: 100}, 25, base * 0.75},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.lr.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := tc.lr.At(tc.step); math.Abs(got-tc.want) > 1e-15 {
				t.Errorf("At(%d) = %.17g, want %.17g", tc.step, got, tc.want)
			}
		})
	}
	for _, bad := range []LR{{Kind: "step", Base: base}, {Kind: LRConstant, Base: -1}, {Kind: LRCosine, Base: base, Total: 5, Warmup: 5},
		{Kind: LRConstant, Base: base, Warmup: -1}, {Kind: LRCosine, Base: base, Total: 9, MinRatio: 2}, {Kind: LRConstant, Base: math.NaN()}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestKeepGroups(t *testing.T) {
	keep, err := KeepGroups([]float64{1, 1, 0, 1, -1, -1, 7}, []int{0, 0, 1, 1, 2, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	want := []bool{false, false, true, true, false, false, true}
	for i := range want {
		if keep[i] != want[i] {
			t.Fatalf("keep = %v, want %v", keep, want)
		}
	}
	if _, err := KeepGroups([]float64{1}, nil); err == nil {
		t.Error("mismatched lengths accepted")
	}
}

func TestOverlong(t *testing.T) {
	for _, tc := range []struct {
		length, maxLen, buffer int
		factor, want           float64
	}{
		{50, 100, 20, 1, 0}, {80, 100, 20, 1, 0}, {90, 100, 20, 1, -0.5}, {100, 100, 20, 1, -1},
		{95, 100, 20, 2, -1.5}, {100, 100, 0, 1, 0},
	} {
		if got := OverlongPenalty(tc.length, tc.maxLen, tc.buffer, tc.factor); math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("OverlongPenalty(%d, %d, %d, %v) = %v, want %v", tc.length, tc.maxLen, tc.buffer, tc.factor, got, tc.want)
		}
	}
	m := mask("11", "101", "1")
	if n := MaskTruncated(m, []bool{false, true, false}); n != 1 {
		t.Errorf("cleared %d, want 1", n)
	}
	if !m[0][0] || m[1][0] || m[1][2] || !m[2][0] {
		t.Errorf("mask after filter = %v", m)
	}
}

// TestDefaultBudgetShared: the settings' default budget (package rollout, which cannot import
// this one) is this package's.
func TestDefaultBudgetShared(t *testing.T) {
	if rollout.DefaultBudget != DefaultBudget.String() {
		t.Fatalf("rollout.DefaultBudget %q, rl.DefaultBudget %q", rollout.DefaultBudget, DefaultBudget.String())
	}
}
