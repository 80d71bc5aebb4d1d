package cpu

// Independent float64 implementations of every op, written from the definitions, for the
// tests to compare against.

import (
	"math"
)

func refMatmul(in, w, bias []float64, N, C, OC int) []float64 {
	out := make([]float64, N*OC)
	for n := 0; n < N; n++ {
		for o := 0; o < OC; o++ {
			s := 0.0
			if bias != nil {
				s = bias[o]
			}
			for c := 0; c < C; c++ {
				s += in[n*C+c] * w[o*C+c]
			}
			out[n*OC+o] = s
		}
	}
	return out
}

func refRMSNorm(in, w []float64, N, C int, eps float64) (out, rstd []float64) {
	out, rstd = make([]float64, N*C), make([]float64, N)
	for n := 0; n < N; n++ {
		ms := 0.0
		for c := 0; c < C; c++ {
			ms += in[n*C+c] * in[n*C+c]
		}
		r := 1 / math.Sqrt(ms/float64(C)+eps)
		rstd[n] = r
		for c := 0; c < C; c++ {
			out[n*C+c] = in[n*C+c] * r * w[c]
		}
	}
	return out, rstd
}

func refSwiGLU(gu []float64, N, I int) []float64 {
	out := make([]float64, N*I)
	for n := 0; n < N; n++ {
		for i := 0; i < I; i++ {
			g, u := gu[n*2*I+i], gu[n*2*I+I+i]
			out[n*I+i] = g / (1 + math.Exp(-g)) * u
		}
	}
	return out
}

// refRoPE rotates the q and k heads of each row by angle pos·theta^(-2i/D).
func refRoPE(x []float64, pos []int32, H, Hkv, D int, theta float64, inverse bool) []float64 {
	W := (H + 2*Hkv) * D
	out := append([]float64(nil), x...)
	for n := range pos {
		for h := 0; h < H+Hkv; h++ {
			for i := 0; i < D/2; i++ {
				a := float64(pos[n]) * math.Pow(theta, -2*float64(i)/float64(D))
				c, s := math.Cos(a), math.Sin(a)
				if inverse {
					s = -s
				}
				x1, x2 := x[n*W+h*D+i], x[n*W+h*D+i+D/2]
				out[n*W+h*D+i] = x1*c - x2*s
				out[n*W+h*D+i+D/2] = x2*c + x1*s
			}
		}
	}
	return out
}

// refAttention is causal grouped-KV attention within each sequence, by the definition.
func refAttention(qkv []float64, starts []int32, H, Hkv, D int) (out, lse []float64) {
	W := (H + 2*Hkv) * D
	N := int(starts[len(starts)-1])
	out, lse = make([]float64, N*H*D), make([]float64, N*H)
	scale := 1 / math.Sqrt(float64(D))
	for b := 0; b+1 < len(starts); b++ {
		s, e := int(starts[b]), int(starts[b+1])
		for h := 0; h < H; h++ {
			g := h / (H / Hkv)
			for i := s; i < e; i++ {
				sc := make([]float64, i-s+1)
				mx := math.Inf(-1)
				for j := s; j <= i; j++ {
					d := 0.0
					for k := 0; k < D; k++ {
						d += qkv[i*W+h*D+k] * qkv[j*W+(H+g)*D+k]
					}
					sc[j-s] = d * scale
					mx = math.Max(mx, sc[j-s])
				}
				sum := 0.0
				for j := range sc {
					sum += math.Exp(sc[j] - mx)
				}
				l := mx + math.Log(sum)
				lse[i*H+h] = l
				for j := s; j <= i; j++ {
					p := math.Exp(sc[j-s] - l)
					for k := 0; k < D; k++ {
						out[i*H*D+h*D+k] += p * qkv[j*W+(H+Hkv+g)*D+k]
					}
				}
			}
		}
	}
	return out, lse
}

// refCE returns log softmax at the targets, the log-sum-exp and the entropy of each row.
func refCE(logits []float64, tgt []int32, N, V int) (logp, lse, ent []float64) {
	logp, lse, ent = make([]float64, N), make([]float64, N), make([]float64, N)
	for n := 0; n < N; n++ {
		row := logits[n*V : (n+1)*V]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, v)
		}
		s := 0.0
		for _, v := range row {
			s += math.Exp(v - mx)
		}
		l := mx + math.Log(s)
		lse[n] = l
		logp[n] = row[tgt[n]] - l
		for _, v := range row {
			p := math.Exp(v - l)
			ent[n] -= p * (v - l)
		}
	}
	return logp, lse, ent
}

// refAdamW is one step of AdamW as torch.optim.AdamW defines it.
func refAdamW(p, g, m, v []float64, lr, b1, b2, eps, wd, scale float64, step int) {
	for i := range p {
		gi := g[i] * scale
		p[i] -= lr * wd * p[i]
		m[i] = b1*m[i] + (1-b1)*gi
		v[i] = b2*v[i] + (1-b2)*gi*gi
		mh := m[i] / (1 - math.Pow(b1, float64(step)))
		vh := v[i] / (1 - math.Pow(b2, float64(step)))
		p[i] -= lr * mh / (math.Sqrt(vh) + eps)
	}
}
