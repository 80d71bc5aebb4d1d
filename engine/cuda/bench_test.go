//go:build cuda

package cuda

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"cir/engine"
	"cir/model"
)

// Benchmarks (skip without a GPU). scripts/gpu/run.sh runs them with scripts/gpu/torch_ref.py,
// which measures the same shapes with PyTorch (cuBLAS GEMMs, flash SDPA) on the same machine.

// qwen returns the Qwen2.5 configurations the performance goals name.
func qwen(name string) model.Config {
	c := model.Config{VocabSize: 151936, MaxPositions: 32768, RopeTheta: 1e6, RMSNormEps: 1e-6,
		QKVBias: true, TieWordEmbeddings: true, BOSTokenID: -1}
	switch name {
	case "0.5B":
		c.HiddenSize, c.IntermediateSize, c.NumLayers, c.NumHeads, c.NumKVHeads, c.HeadDim = 896, 4864, 24, 14, 2, 64
	case "1.5B":
		c.HiddenSize, c.IntermediateSize, c.NumLayers, c.NumHeads, c.NumKVHeads, c.HeadDim = 1536, 8960, 28, 12, 2, 128
	}
	return c
}

// peakTFLOPs is the dense bf16 peak used for MFU: CIR_PEAK_TFLOPS, else 989 (H100 SXM).
func peakTFLOPs() float64 {
	if v, err := strconv.ParseFloat(os.Getenv("CIR_PEAK_TFLOPS"), 64); err == nil && v > 0 {
		return v
	}
	return 989
}

func timeIt(b *testing.B, g *Backend, f func()) time.Duration {
	f() // warm-up: cuBLASLt plans, scratch
	if err := g.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	t0 := time.Now()
	for i := 0; i < b.N; i++ {
		f()
	}
	if err := g.Sync(); err != nil {
		b.Fatal(err)
	}
	return time.Since(t0) / time.Duration(b.N)
}

func BenchmarkMatmul(b *testing.B) {
	for _, s := range [][3]int{
		{4096, 896, 1152}, {4096, 896, 9728}, {4096, 4864, 896}, {4096, 896, 151936}, // 0.5B: qkv, gate_up, down, head
		{4096, 1536, 2048}, {4096, 1536, 17920}, {4096, 8960, 1536}, {4096, 1536, 151936}, // 1.5B
	} {
		N, C, OC := s[0], s[1], s[2]
		flops := 2 * float64(N) * float64(C) * float64(OC)
		b.Run(fmt.Sprintf("fwd/N=%d,C=%d,OC=%d", N, C, OC), func(b *testing.B) {
			e := newEnv(b, 1)
			x, w, o := e.alloc(engine.BF16, N, C), e.alloc(engine.BF16, OC, C), e.alloc(engine.BF16, N, OC)
			d := timeIt(b, e.g, func() { e.g.Matmul(o, x, w, engine.Tensor{}) })
			b.ReportMetric(flops/d.Seconds()/1e12, "TFLOP/s")
		})
		b.Run(fmt.Sprintf("bwd/N=%d,C=%d,OC=%d", N, C, OC), func(b *testing.B) {
			e := newEnv(b, 1)
			x, w, dy := e.alloc(engine.BF16, N, C), e.alloc(engine.BF16, OC, C), e.alloc(engine.BF16, N, OC)
			dx, dw := e.alloc(engine.BF16, N, C), e.alloc(engine.F32, OC, C)
			d := timeIt(b, e.g, func() { e.g.MatmulBackward(dx, dw, engine.Tensor{}, dy, x, w) })
			b.ReportMetric(2*flops/d.Seconds()/1e12, "TFLOP/s")
		})
	}
}

// attnFlops is the causal attention work of the forward: 2 GEMMs of 2·T²·D per head, halved.
func attnFlops(B, T int, h engine.Heads) float64 {
	return 2 * 2 * float64(B) * float64(h.Q) * float64(T) * float64(T) * float64(h.D) / 2
}

func BenchmarkAttention(b *testing.B) {
	for _, c := range []struct {
		B, T int
		h    engine.Heads
	}{
		{1, 4096, engine.Heads{Q: 14, KV: 2, D: 64}},
		{1, 4096, engine.Heads{Q: 12, KV: 2, D: 128}},
		{4, 1024, engine.Heads{Q: 12, KV: 2, D: 128}},
	} {
		lens := make([]int, c.B)
		for i := range lens {
			lens[i] = c.T
		}
		seqs := packed(lens)
		N, W, HD := seqs.Tokens(), c.h.QKV(), c.h.Q*c.h.D
		name := fmt.Sprintf("B=%d,T=%d,H=%d,Hkv=%d,D=%d", c.B, c.T, c.h.Q, c.h.KV, c.h.D)
		b.Run("fwd/"+name, func(b *testing.B) {
			e := newEnv(b, 2)
			x := e.dev(engine.BF16, e.randn(N*W, 1), N, W)
			out, lse := e.alloc(engine.BF16, N, HD), e.alloc(engine.F32, N, c.h.Q)
			d := timeIt(b, e.g, func() { e.g.Attention(out, lse, x, seqs, c.h) })
			b.ReportMetric(attnFlops(c.B, c.T, c.h)/d.Seconds()/1e12, "TFLOP/s")
		})
		b.Run("bwd/"+name, func(b *testing.B) {
			e := newEnv(b, 3)
			x := e.dev(engine.BF16, e.randn(N*W, 1), N, W)
			out, lse := e.alloc(engine.BF16, N, HD), e.alloc(engine.F32, N, c.h.Q)
			e.g.Attention(out, lse, x, seqs, c.h)
			dy, dx := e.dev(engine.BF16, e.randn(N*HD, 1), N, HD), e.alloc(engine.BF16, N, W)
			d := timeIt(b, e.g, func() { e.g.AttentionBackward(dx, dy, out, lse, x, seqs, c.h) })
			b.ReportMetric(2.5*attnFlops(c.B, c.T, c.h)/d.Seconds()/1e12, "TFLOP/s")
		})
	}
}

func BenchmarkAttentionKV(b *testing.B) {
	h := engine.Heads{Q: 14, KV: 2, D: 64}
	for _, c := range [][2]int{{1, 4096}, {64, 4096}} {
		B, T := c[0], c[1]
		b.Run(fmt.Sprintf("B=%d,T=%d,H=%d,Hkv=%d,D=%d", B, T, h.Q, h.KV, h.D), func(b *testing.B) {
			e := newEnv(b, 4)
			kc, vc := e.alloc(engine.BF16, B, T, h.KV, h.D), e.alloc(engine.BF16, B, T, h.KV, h.D)
			x, out := e.alloc(engine.BF16, B, h.QKV()), e.alloc(engine.BF16, B, h.Q*h.D)
			slot, pos := make([]int32, B), make([]int32, B)
			for i := range slot {
				slot[i], pos[i] = int32(i), int32(T-1)
			}
			gs, gp := e.devI(slot, B), e.devI(pos, B)
			d := timeIt(b, e.g, func() { e.g.AttentionKV(out, x, kc, vc, gs, gp, h) })
			b.ReportMetric(float64(kc.Bytes()+vc.Bytes())/d.Seconds()/1e9, "GB/s")
		})
	}
}

// BenchmarkTrainStep: forward, backward and AdamW of one packed batch of 4096-token sequences on
// a randomly initialised Qwen2.5 model; MFU counts 6·params·tokens plus the causal attention
// (forward 1×, backward 2.5×) against peakTFLOPs.
func BenchmarkTrainStep(b *testing.B) {
	for _, name := range []string{"0.5B", "1.5B"} {
		for _, B := range []int{1, 4} {
			const T = 4096
			b.Run(fmt.Sprintf("model=%s,B=%d,T=%d", name, B, T), func(b *testing.B) {
				g, _ := gpu(b)
				cfg := qwen(name)
				m, err := model.New(cfg, g)
				if err != nil {
					b.Skip(err)
				}
				defer m.Close()
				m.Init(1, 0.02)
				o, err := m.NewAdamW()
				if err != nil {
					b.Skip(err)
				}
				defer o.Close()
				seqs := make([][]int32, B)
				for i := range seqs {
					seqs[i] = make([]int32, T)
					for j := range seqs[i] {
						seqs[i][j] = int32((i*7919 + j*104729) % cfg.VocabSize)
					}
				}
				dl := make([][]float32, B)
				for i := range dl {
					dl[i] = make([]float32, T-1)
					for j := range dl[i] {
						dl[i][j] = -1 / float32(B*(T-1))
					}
				}
				h := model.OptimStep{LR: 1e-6, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, ClipNorm: 1}
				step := func() {
					if _, _, err := m.Forward(seqs); err != nil {
						b.Fatal(err)
					}
					m.ZeroGrad()
					if err := m.Backward(dl, nil); err != nil {
						b.Fatal(err)
					}
					if _, err := m.Update(o, h); err != nil {
						b.Fatal(err)
					}
				}
				d := timeIt(b, g, step)
				tokens := float64(B * T)
				hd := engine.Heads{Q: cfg.NumHeads, KV: cfg.NumKVHeads, D: cfg.HeadDim}
				flops := 6*float64(m.NumParams())*tokens + 3.5*float64(cfg.NumLayers)*attnFlops(B, T, hd)
				b.ReportMetric(tokens/d.Seconds(), "tok/s")
				b.ReportMetric(100*flops/d.Seconds()/1e12/peakTFLOPs(), "MFU%")
			})
		}
	}
}

// BenchmarkDecode: tokens per second of KV-cached greedy decoding at batch 1 and 64 after a
// 512-token prompt, and, at batch 1, the share of the HBM-bandwidth bound (every weight and the
// cache read once per token).
func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"0.5B", "1.5B"} {
		for _, B := range []int{1, 64} {
			b.Run(fmt.Sprintf("model=%s,B=%d", name, B), func(b *testing.B) {
				g, _ := gpu(b)
				cfg := qwen(name)
				m, err := model.New(cfg, g)
				if err != nil {
					b.Skip(err)
				}
				defer m.Close()
				m.Init(1, 0.02)
				const prompt, maxLen = 512, 2048
				d, err := m.NewDecoder(B, maxLen)
				if err != nil {
					b.Skip(err)
				}
				defer d.Close()
				pos := make([]int, B)
				var feeds []model.Feed
				for s := 0; s < B; s++ {
					tok := make([]int32, prompt)
					for j := range tok {
						tok[j] = int32((s*31 + j*17) % cfg.VocabSize)
					}
					out, err := d.Step([]model.Feed{{Slot: s, Pos: 0, Tokens: tok}}, engine.SampleParams{TopP: 1})
					if err != nil {
						b.Fatal(err)
					}
					pos[s] = prompt
					feeds = append(feeds, model.Feed{Slot: s, Pos: prompt, Tokens: []int32{out[0].Token}})
				}
				steps := 0
				b.ResetTimer()
				t0 := time.Now()
				for i := 0; i < b.N; i++ {
					if feeds[0].Pos >= maxLen-1 {
						for s := range feeds {
							feeds[s].Pos = prompt
						}
					}
					out, err := d.Step(feeds, engine.SampleParams{TopP: 1})
					if err != nil {
						b.Fatal(err)
					}
					for s := range feeds {
						feeds[s] = model.Feed{Slot: s, Pos: feeds[s].Pos + 1, Tokens: []int32{out[s].Token}}
					}
					steps++
				}
				el := time.Since(t0).Seconds()
				b.ReportMetric(float64(steps*B)/el, "tok/s")
				if B == 1 && g.Info().BandwidthGBs > 0 {
					bytes := float64(m.NumParams())*2 + float64(cfg.NumLayers)*2*float64(prompt+steps/2)*float64(cfg.NumKVHeads*cfg.HeadDim)*2
					bound := g.Info().BandwidthGBs * 1e9 / bytes
					b.ReportMetric(100*(float64(steps)/el)/bound, "%HBM-bound")
				}
			})
		}
	}
}
