package rl

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkPolicyLoss measures advantages, weights and the PPO loss with its gradient over a
// batch of B responses of T tokens, the per-step work of the RL arithmetic.
func BenchmarkPolicyLoss(b *testing.B) {
	for _, sz := range []struct{ B, T int }{{8, 1024}, {256, 4096}} {
		b.Run(fmt.Sprintf("B=%d,T=%d", sz.B, sz.T), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			logp, old, m := make([][]float32, sz.B), make([][]float32, sz.B), make([][]bool, sz.B)
			scores, groups := make([]float64, sz.B), make([]int, sz.B)
			for i := range logp {
				logp[i], old[i], m[i] = make([]float32, sz.T), make([]float32, sz.T), make([]bool, sz.T)
				for t := range logp[i] {
					old[i][t] = -float32(r.ExpFloat64())
					logp[i][t] = old[i][t] + float32(0.1*r.NormFloat64())
					m[i][t] = r.IntN(10) != 0
				}
				scores[i], groups[i] = float64(r.IntN(2)*2-1), i/4
			}
			grad := zeros(logp)
			for b.Loop() {
				adv, err := Advantages(ReinforcePPBaseline, scores, groups, m, nil)
				if err != nil {
					b.Fatal(err)
				}
				w, _ := Weights(AggTokenMean, m, sz.T)
				if _, err := DefaultPPO.PolicyLoss(logp, old, adv, w, grad); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(sz.B*sz.T)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mtokens/s")
		})
	}
}
