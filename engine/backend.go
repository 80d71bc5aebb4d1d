package engine

import "unsafe"

// Heads gives the attention geometry: H query heads and Hkv key/value heads of dimension D.
// The packed projection qkv of a token is laid out [q (H*D) | k (Hkv*D) | v (Hkv*D)], each head
// contiguous, the HF order of q_proj, k_proj, v_proj.
type Heads struct {
	Q, KV, D int
}

// QKV is the width of one token's packed q, k and v: (H + 2*Hkv) * D.
func (h Heads) QKV() int { return (h.Q + 2*h.KV) * h.D }

// Seqs describes a packed batch: sequence b occupies tokens [Starts[b], Starts[b+1]) and
// attends causally within itself only. Starts lives on the host; Dev holds the same B+1
// offsets on the backend's device (I32) for backends that need them there.
type Seqs struct {
	Starts []int32
	Dev    Tensor
	MaxLen int
}

// Tokens is the number of tokens N of the packed batch.
func (s Seqs) Tokens() int {
	if len(s.Starts) == 0 {
		return 0
	}
	return int(s.Starts[len(s.Starts)-1])
}

// SampleParams selects the sampling rule. Temperature 0 is greedy; TopP 1 and TopK 0 disable
// those filters.
type SampleParams struct {
	Temperature float32
	TopP        float32
	TopK        int
}

// AdamWParams are the hyper-parameters of one AdamW step (decoupled weight decay, bias
// correction by Step, which counts from 1). Grads are multiplied by GradScale first (global-norm
// clipping).
type AdamWParams struct {
	LR, Beta1, Beta2, Eps, WeightDecay float32
	GradScale                          float32
	Step                               int
}

// Backend is a device and every op the model runs on it, forward and backward.
//
// Argument order follows llm.c: outputs, saved-for-backward, inputs, weights, dims. Parameter
// gradients accumulate (+=); activation gradients are assigned (=) unless the doc says +=.
// Ops may run asynchronously; a device failure is sticky and reported by Sync. Ops panic on
// shape or dtype mismatches, which are programming errors, never on data.
type Backend interface {
	// Device is the device the backend computes on.
	Device() Device
	// ParamDType and ActDType are the element types of weights and activations (F32 on the CPU,
	// BF16 on a GPU). Gradients, master weights, moments and statistics are always F32.
	ParamDType() DType
	ActDType() DType
	// Alloc reserves bytes of device memory; Free returns them. Arenas call these.
	Alloc(bytes int64) (unsafe.Pointer, error)
	Free(p unsafe.Pointer)
	// Sync waits for all queued work and returns the first error since the last Sync.
	Sync() error
	// Close releases the backend; it must not be used afterwards.
	Close() error

	// Upload copies the host tensor src (F32 or I32) into dst, converting F32 to dst's dtype.
	Upload(dst, src Tensor)
	// Download copies src into the host tensor dst (F32 or I32), converting to F32, and waits.
	Download(dst, src Tensor)
	// Copy copies src into dst on the device, converting between float dtypes.
	Copy(dst, src Tensor)
	// Zero sets every element of t to zero.
	Zero(t Tensor)
	// Scale multiplies every element of t by s in place.
	Scale(t Tensor, s float32)
	// SumSquares returns the sum of squares of t's elements in float64, waiting for the result.
	SumSquares(t Tensor) float64

	// Embedding gathers rows: out (N,C) = table (V,C) [ids (N)]. Also gathers activation rows.
	Embedding(out, ids, table Tensor)
	// EmbeddingBackward scatters: dtable (V,C) [ids[n]] += dout (N,C) [n].
	EmbeddingBackward(dtable, dout, ids Tensor)

	// RMSNorm: out (N,C) = in / sqrt(mean(in²) + eps) * w (C), saving rstd (N) F32.
	RMSNorm(out, rstd, in, w Tensor, eps float32)
	// AddRMSNorm fuses the residual add with the next norm: res = a + b, then RMSNorm of res.
	AddRMSNorm(res, out, rstd, a, b, w Tensor, eps float32)
	// RMSNormBackward: din (N,C) += ∂out/∂in · dout; dw (C) += ∂out/∂w · dout.
	RMSNormBackward(din, dw, dout, in, w, rstd Tensor)

	// Matmul: out (N,OC) = in (N,C) · w (OC,C)ᵀ + bias (OC); bias may be absent.
	Matmul(out, in, w, bias Tensor)
	// MatmulBackward: din (N,C) = dout · w (skipped when din is absent); dw (OC,C) += doutᵀ · in;
	// dbias (OC) += Σ_n dout (skipped when absent).
	MatmulBackward(din, dw, dbias, dout, in, w Tensor)

	// RoPE rotates the q and k parts of qkv (N, (H+2Hkv)*D) in place by the positions pos (N) I32,
	// HF rotate-half layout, frequencies theta^(-2i/D).
	RoPE(qkv, pos Tensor, h Heads, theta float32)
	// RoPEBackward applies the inverse rotation to the q and k parts of dqkv in place.
	RoPEBackward(dqkv, pos Tensor, h Heads, theta float32)

	// Attention: causal grouped-KV softmax attention within each sequence of seqs, scale 1/sqrt(D).
	// out (N,H*D); lse (N,H) F32 saves the log-sum-exp of each query row for the backward.
	Attention(out, lse, qkv Tensor, seqs Seqs, h Heads)
	// AttentionBackward: dqkv (N,(H+2Hkv)*D) = gradient of the loss through Attention.
	AttentionBackward(dqkv, dout, out, lse, qkv Tensor, seqs Seqs, h Heads)

	// KVStore writes the k and v of each token of qkv (N,(H+2Hkv)*D) into the caches kc, vc
	// (S,T,Hkv,D) at [slot[n], pos[n]]; slot and pos are (N) I32.
	KVStore(kc, vc, qkv, slot, pos Tensor, h Heads)
	// AttentionKV: out (N,H*D) where query n attends the cache rows [slot[n], 0..pos[n]].
	AttentionKV(out, qkv, kc, vc, slot, pos Tensor, h Heads)

	// SwiGLU: out (N,I) = silu(gateUp[:, :I]) * gateUp[:, I:], gateUp (N,2I).
	SwiGLU(out, gateUp Tensor)
	// SwiGLUBackward: dgateUp (N,2I) = gradient through SwiGLU.
	SwiGLUBackward(dgateUp, dout, gateUp Tensor)

	// Add: out = a + b, all of one shape.
	Add(out, a, b Tensor)

	// CrossEntropy: per row of logits (N,V) and target (N) I32, logp (N) = log softmax at the
	// target, lse (N) the log-sum-exp, and, when ent is present, ent (N) the entropy. All F32.
	CrossEntropy(logp, lse, ent, logits, targets Tensor)
	// CrossEntropyBackward: dlogits (N,V) = dlogp[n] · (onehot(target) − softmax(logits)), plus,
	// when dent (N) F32 is present, dent[n] · ∂ent[n]/∂logits = −dent[n] · p · (log p + ent[n])
	// with ent (N) the entropy CrossEntropy saved: the gradient of an entropy term in the loss.
	CrossEntropyBackward(dlogits, dlogp, dent, logits, lse, ent, targets Tensor)

	// Sample draws ids (B) I32 from logits (B,V) with uniforms u (B) F32 in [0,1), and writes
	// logp (B) F32: the log-probability of each drawn id under the unscaled distribution.
	Sample(ids, logp, logits, u Tensor, p SampleParams)

	// AdamW updates params (P) from grads (P) F32 and moments m, v (P) F32. When master is
	// present the update is made on the F32 master (P) and rounded into params.
	AdamW(params, master, grads, m, v Tensor, p AdamWParams)
}
