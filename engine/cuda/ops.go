//go:build cuda

package cuda

/*
#include "cir.h"
*/
import "C"

import (
	"fmt"
	"math"
	"unsafe"

	"cir/engine"
)

// ---- argument checks: shapes and dtypes are programming errors and panic ----

func bad(format string, args ...any) { panic(fmt.Sprintf("cuda: "+format, args...)) }

// ptr checks that t is a device tensor of n elements (n < 0: any) and one of dts, and returns
// its address.
func ptr(op, name string, t engine.Tensor, n int, dts ...engine.DType) unsafe.Pointer {
	if t.Data == nil {
		bad("%s: %s is absent", op, name)
	}
	if t.Dev.Kind != engine.CUDA {
		bad("%s: %s is on %v, want a CUDA device", op, name, t.Dev)
	}
	if n >= 0 && t.Len() != n {
		bad("%s: %s has shape %v (%d elements), want %d elements", op, name, t.Shape, t.Len(), n)
	}
	for _, d := range dts {
		if t.DType == d {
			return t.Data
		}
	}
	bad("%s: %s has dtype %v, want one of %v", op, name, t.DType, dts)
	return nil
}

var floats = []engine.DType{engine.F32, engine.BF16, engine.F16}

func fptr(op, name string, t engine.Tensor, n int) unsafe.Pointer {
	return ptr(op, name, t, n, floats...)
}

func rows2(op, name string, t engine.Tensor) (int, int) {
	if len(t.Shape) != 2 {
		bad("%s: %s has shape %v, want 2 dimensions", op, name, t.Shape)
	}
	return t.Shape[0], t.Shape[1]
}

func dt(t engine.Tensor) C.int { return C.int(t.DType) }

func (b *Backend) s() C.cudaStream_t { return b.stream }

// ---- host transfers ----

func bf16Bits(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 { // NaN stays NaN
		return uint16(u>>16) | 0x40
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

func bf16Float(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

func mustHost(op, name string, t engine.Tensor) {
	if t.Dev.Kind != engine.CPU || (t.DType != engine.F32 && t.DType != engine.I32) {
		bad("%s: %s is a %v tensor on %v, want a host F32 or I32 tensor", op, name, t.DType, t.Dev)
	}
}

// Upload copies the host tensor src (F32 or I32) into dst, converting F32 to BF16 on the host
// (round to nearest even), through the pinned staging buffer; it returns when the copy is done.
// It panics on mismatched sizes or dtypes.
func (b *Backend) Upload(dst, src engine.Tensor) {
	mustHost("Upload", "src", src)
	n := src.Len()
	d := ptr("Upload", "dst", dst, n, engine.F32, engine.BF16, engine.I32)
	if (src.DType == engine.I32) != (dst.DType == engine.I32) {
		bad("Upload: %v into %v", src.DType, dst.DType)
	}
	if n == 0 {
		return
	}
	defer b.enter()()
	es := dst.DType.Size()
	per := b.stageN / es
	for off := 0; off < n; off += per {
		k := min(per, n-off)
		switch {
		case dst.DType == engine.BF16:
			in := src.F32()[off : off+k]
			out := unsafe.Slice((*uint16)(b.stage), k)
			for i, v := range in {
				out[i] = bf16Bits(v)
			}
		default:
			copy(unsafe.Slice((*byte)(b.stage), k*4), unsafe.Slice((*byte)(unsafe.Add(src.Data, off*4)), k*4))
		}
		b.checkErr("Upload", C.cudaMemcpyAsync(unsafe.Add(d, off*es), b.stage, C.size_t(k*es), C.cudaMemcpyHostToDevice, b.stream))
		b.checkErr("Upload", C.cudaStreamSynchronize(b.stream))
	}
}

// Download copies src into the host tensor dst (F32 or I32), converting to F32, and waits. It
// panics on mismatched sizes or dtypes.
func (b *Backend) Download(dst, src engine.Tensor) {
	mustHost("Download", "dst", dst)
	n := dst.Len()
	s := ptr("Download", "src", src, n, engine.F32, engine.BF16, engine.I32)
	if (src.DType == engine.I32) != (dst.DType == engine.I32) {
		bad("Download: %v into %v", src.DType, dst.DType)
	}
	if n == 0 {
		return
	}
	defer b.enter()()
	es := src.DType.Size()
	per := b.stageN / es
	for off := 0; off < n; off += per {
		k := min(per, n-off)
		b.checkErr("Download", C.cudaMemcpyAsync(b.stage, unsafe.Add(s, off*es), C.size_t(k*es), C.cudaMemcpyDeviceToHost, b.stream))
		b.checkErr("Download", C.cudaStreamSynchronize(b.stream))
		if src.DType == engine.BF16 {
			out := dst.F32()[off : off+k]
			for i, h := range unsafe.Slice((*uint16)(b.stage), k) {
				out[i] = bf16Float(h)
			}
		} else {
			copy(unsafe.Slice((*byte)(unsafe.Add(dst.Data, off*4)), k*4), unsafe.Slice((*byte)(b.stage), k*4))
		}
	}
}

// Copy copies src into dst on the device, converting between float dtypes. It panics on
// mismatched sizes or dtypes.
func (b *Backend) Copy(dst, src engine.Tensor) {
	n := src.Len()
	all := []engine.DType{engine.F32, engine.BF16, engine.F16, engine.I32}
	d := ptr("Copy", "dst", dst, n, all...)
	s := ptr("Copy", "src", src, n, all...)
	defer b.enter()()
	if dst.DType == src.DType {
		b.checkErr("Copy", C.cudaMemcpyAsync(d, s, C.size_t(src.Bytes()), C.cudaMemcpyDeviceToDevice, b.stream))
		return
	}
	if dst.DType == engine.I32 || src.DType == engine.I32 {
		bad("Copy: %v into %v", src.DType, dst.DType)
	}
	b.checkErr("Copy", C.cir_convert(d, dt(dst), s, dt(src), C.size_t(n), b.s()))
}

// Zero sets every byte of t to zero. It panics if t is not on a CUDA device.
func (b *Backend) Zero(t engine.Tensor) {
	if t.Len() == 0 {
		return
	}
	p := ptr("Zero", "t", t, -1, engine.F32, engine.BF16, engine.F16, engine.I32)
	defer b.enter()()
	b.checkErr("Zero", C.cudaMemsetAsync(p, 0, C.size_t(t.Bytes()), b.stream))
}

// Scale multiplies every element of t by s in place. It panics if t is not a float tensor.
func (b *Backend) Scale(t engine.Tensor, s float32) {
	p := fptr("Scale", "t", t, -1)
	defer b.enter()()
	b.checkErr("Scale", C.cir_scale(p, dt(t), C.size_t(t.Len()), C.float(s), b.s()))
}

// SumSquares returns Σ t² accumulated in fp64 in a fixed order (reproducible), waiting for the
// result. On a device error it returns NaN and Sync reports the error.
func (b *Backend) SumSquares(t engine.Tensor) float64 {
	p := fptr("SumSquares", "t", t, -1)
	defer b.enter()()
	buf := b.scratchOf("sumsq", 8*(C.CIR_SUMSQ_BLOCKS+1))
	if buf == nil {
		return math.NaN()
	}
	out := (*C.double)(buf)
	part := (*C.double)(unsafe.Add(buf, 8))
	b.checkErr("SumSquares", C.cir_sumsq(out, part, p, dt(t), C.size_t(t.Len()), b.s()))
	b.checkErr("SumSquares", C.cudaMemcpyAsync(b.stage, buf, 8, C.cudaMemcpyDeviceToHost, b.stream))
	b.checkErr("SumSquares", C.cudaStreamSynchronize(b.stream))
	if b.err != nil {
		return math.NaN()
	}
	return *(*float64)(b.stage)
}

// ---- embedding, norms, matmul ----

// Embedding gathers rows: out (N,C) = table (V,C)[ids (N)]. An id outside [0,V) gives a zero row
// and a *DataError from Sync. It panics on mismatched shapes.
func (b *Backend) Embedding(out, ids, table engine.Tensor) {
	V, C := rows2("Embedding", "table", table)
	N := ids.Len()
	o := fptr("Embedding", "out", out, N*C)
	tb := fptr("Embedding", "table", table, V*C)
	id := ptr("Embedding", "ids", ids, N, engine.I32)
	defer b.enter()()
	b.checkErr("Embedding", C.cir_embedding(o, dt(out), (*C.int32_t)(id), tb, dt(table), C.int(N), C.int(C), C.int(V), b.errFlag, b.s()))
}

// EmbeddingBackward: dtable (V,C) F32 [ids[n]] += dout (N,C)[n], deterministic. It panics on
// mismatched shapes.
func (b *Backend) EmbeddingBackward(dtable, dout, ids engine.Tensor) {
	V, C := rows2("EmbeddingBackward", "dtable", dtable)
	N := ids.Len()
	dt_ := ptr("EmbeddingBackward", "dtable", dtable, V*C, engine.F32)
	dy := fptr("EmbeddingBackward", "dout", dout, N*C)
	id := ptr("EmbeddingBackward", "ids", ids, N, engine.I32)
	defer b.enter()()
	b.checkErr("EmbeddingBackward", C.cir_embedding_backward((*C.float)(dt_), dy, dt(dout), (*C.int32_t)(id), C.int(N), C.int(C), C.int(V), b.s()))
}

// RMSNorm: out (N,C) = in·rstd·w, rstd (N) F32. It panics on mismatched shapes.
func (b *Backend) RMSNorm(out, rstd, in, w engine.Tensor, eps float32) {
	N, C := rows2("RMSNorm", "in", in)
	x := fptr("RMSNorm", "in", in, N*C)
	o := ptr("RMSNorm", "out", out, N*C, in.DType)
	r := ptr("RMSNorm", "rstd", rstd, N, engine.F32)
	wt := fptr("RMSNorm", "w", w, C)
	defer b.enter()()
	b.checkErr("RMSNorm", C.cir_rmsnorm(nil, o, (*C.float)(r), x, nil, wt, dt(in), dt(w), C.int(N), C.int(C), C.float(eps), b.s()))
}

// AddRMSNorm: res = a + b (rounded to the activation type), then RMSNorm of res. It panics on
// mismatched shapes.
func (b *Backend) AddRMSNorm(res, out, rstd, a, bb, w engine.Tensor, eps float32) {
	N, C := rows2("AddRMSNorm", "a", a)
	x := fptr("AddRMSNorm", "a", a, N*C)
	y := ptr("AddRMSNorm", "b", bb, N*C, a.DType)
	rs := ptr("AddRMSNorm", "res", res, N*C, a.DType)
	o := ptr("AddRMSNorm", "out", out, N*C, a.DType)
	r := ptr("AddRMSNorm", "rstd", rstd, N, engine.F32)
	wt := fptr("AddRMSNorm", "w", w, C)
	defer b.enter()()
	b.checkErr("AddRMSNorm", C.cir_rmsnorm(rs, o, (*C.float)(r), x, y, wt, dt(a), dt(w), C.int(N), C.int(C), C.float(eps), b.s()))
}

// RMSNormBackward: din (N,C) += ∂out/∂in·dout; dw (C) F32 += ∂out/∂w·dout, deterministic. It
// panics on mismatched shapes.
func (b *Backend) RMSNormBackward(din, dw, dout, in, w, rstd engine.Tensor) {
	N, C := rows2("RMSNormBackward", "in", in)
	x := fptr("RMSNormBackward", "in", in, N*C)
	dx := ptr("RMSNormBackward", "din", din, N*C, in.DType)
	dy := ptr("RMSNormBackward", "dout", dout, N*C, in.DType)
	dwt := ptr("RMSNormBackward", "dw", dw, C, engine.F32)
	wt := fptr("RMSNormBackward", "w", w, C)
	r := ptr("RMSNormBackward", "rstd", rstd, N, engine.F32)
	defer b.enter()()
	part := b.scratchOf("rms", int64(C.cir_rmsnorm_backward_scratch(C.int(N), C.int(C)))*4)
	if part == nil {
		return
	}
	b.checkErr("RMSNormBackward", C.cir_rmsnorm_backward(dx, (*C.float)(dwt), dy, x, wt, (*C.float)(r), dt(in), dt(w), C.int(N), C.int(C), (*C.float)(part), b.s()))
}

func (b *Backend) matmul(op string, mode int, d unsafe.Pointer, ddt engine.DType, x, y, bias unsafe.Pointer, N, Cc, OC int, beta float32) {
	st := C.cir_gemm_run(b.gemm, C.int(mode), d, C.int(ddt), (*C.cir_bf16)(x), (*C.cir_bf16)(y), bias, C.int(N), C.int(Cc), C.int(OC), C.float(beta), b.s())
	b.check(op, st)
}

// Matmul: out (N,OC) = in (N,C)·w (OC,C)ᵀ + bias (OC) through cuBLASLt; in and w BF16, out BF16
// or F32; a bias of out's dtype is fused through the BIAS epilogue. It panics on mismatched
// shapes.
func (b *Backend) Matmul(out, in, w, bias engine.Tensor) {
	N, Cc := rows2("Matmul", "in", in)
	OC, Cw := rows2("Matmul", "w", w)
	if Cw != Cc {
		bad("Matmul: in %v and w %v disagree on C", in.Shape, w.Shape)
	}
	x := ptr("Matmul", "in", in, N*Cc, engine.BF16)
	wt := ptr("Matmul", "w", w, OC*Cc, engine.BF16)
	o := ptr("Matmul", "out", out, N*OC, engine.BF16, engine.F32)
	defer b.enter()()
	var bp unsafe.Pointer
	if !bias.Nil() {
		bp = fptr("Matmul", "bias", bias, OC)
		if bias.DType != out.DType {
			b.matmul("Matmul", 0, o, out.DType, x, wt, nil, N, Cc, OC, 0)
			b.checkErr("Matmul", C.cir_bias_add(o, dt(out), bp, dt(bias), C.int(N), C.int(OC), b.s()))
			return
		}
	}
	b.matmul("Matmul", 0, o, out.DType, x, wt, bp, N, Cc, OC, 0)
}

// MatmulBackward: din (N,C) = dout·w (skipped when absent); dw (OC,C) += doutᵀ·in (F32 or BF16
// accumulator, beta 1 in cuBLASLt); dbias (OC) F32 += Σ_n dout (skipped when absent). dout, in
// and w are BF16. It panics on mismatched shapes.
func (b *Backend) MatmulBackward(din, dw, dbias, dout, in, w engine.Tensor) {
	N, Cc := rows2("MatmulBackward", "in", in)
	OC, Cw := rows2("MatmulBackward", "w", w)
	if Cw != Cc {
		bad("MatmulBackward: in %v and w %v disagree on C", in.Shape, w.Shape)
	}
	x := ptr("MatmulBackward", "in", in, N*Cc, engine.BF16)
	wt := ptr("MatmulBackward", "w", w, OC*Cc, engine.BF16)
	dy := ptr("MatmulBackward", "dout", dout, N*OC, engine.BF16)
	defer b.enter()()
	if !din.Nil() {
		dx := ptr("MatmulBackward", "din", din, N*Cc, engine.BF16)
		b.matmul("MatmulBackward", 1, dx, din.DType, dy, wt, nil, N, Cc, OC, 0)
	}
	dwt := ptr("MatmulBackward", "dw", dw, OC*Cc, engine.F32, engine.BF16)
	b.matmul("MatmulBackward", 2, dwt, dw.DType, dy, x, nil, N, Cc, OC, 1)
	if !dbias.Nil() {
		db := ptr("MatmulBackward", "dbias", dbias, OC, engine.F32)
		b.checkErr("MatmulBackward", C.cir_bias_backward((*C.float)(db), dy, dt(dout), C.int(N), C.int(OC), b.s()))
	}
}

// ---- RoPE, attention ----

func heads(op string, qkv engine.Tensor, h engine.Heads) (N, W int) {
	N, W = rows2(op, "qkv", qkv)
	if h.D <= 0 || h.D%2 != 0 || h.KV <= 0 || h.Q%h.KV != 0 || W != h.QKV() {
		bad("%s: qkv rows of %d for heads %+v (want (H+2Hkv)*D, D even, H a multiple of Hkv)", op, W, h)
	}
	return N, W
}

func (b *Backend) rope(op string, qkv, pos engine.Tensor, h engine.Heads, theta, sign float32) {
	N, W := heads(op, qkv, h)
	x := fptr(op, "qkv", qkv, N*W)
	p := ptr(op, "pos", pos, N, engine.I32)
	defer b.enter()()
	b.checkErr(op, C.cir_rope(x, dt(qkv), (*C.int32_t)(p), C.int(N), C.int(W), C.int(h.Q+h.KV), C.int(h.D), C.double(math.Log(float64(theta))), C.float(sign), b.errFlag, b.s()))
}

// RoPE rotates the q and k heads of qkv in place (HF rotate-half; angles in fp64). A negative
// position gives a *DataError from Sync. It panics on mismatched shapes.
func (b *Backend) RoPE(qkv, pos engine.Tensor, h engine.Heads, theta float32) {
	b.rope("RoPE", qkv, pos, h, theta, 1)
}

// RoPEBackward applies the inverse rotation to the q and k heads of dqkv in place. It panics on
// mismatched shapes.
func (b *Backend) RoPEBackward(dqkv, pos engine.Tensor, h engine.Heads, theta float32) {
	b.rope("RoPEBackward", dqkv, pos, h, theta, -1)
}

// starts returns the device offsets of seqs (seqs.Dev, or Starts uploaded into scratch) and
// the longest length; it panics when Starts do not cover N tokens.
func (b *Backend) starts(op string, seqs engine.Seqs, N int) (unsafe.Pointer, int, int) {
	B := len(seqs.Starts) - 1
	if B < 0 || seqs.Starts[0] != 0 || int(seqs.Starts[B]) != N {
		bad("%s: Starts %v do not cover the %d tokens of qkv", op, seqs.Starts, N)
	}
	maxLen := 0
	for i := 0; i < B; i++ {
		l := int(seqs.Starts[i+1] - seqs.Starts[i])
		if l < 0 {
			bad("%s: Starts %v decrease", op, seqs.Starts)
		}
		maxLen = max(maxLen, l)
	}
	if !seqs.Dev.Nil() {
		return ptr(op, "seqs.Dev", seqs.Dev, B+1, engine.I32), B, maxLen
	}
	p := b.scratchOf("starts", int64(4*(B+1)))
	if p == nil {
		return nil, 0, 0
	}
	b.Upload(engine.Tensor{Shape: []int{B + 1}, DType: engine.I32, Dev: b.Device(), Data: p}, engine.HostI32(seqs.Starts, B+1))
	return p, B, maxLen
}

// Attention: causal grouped-KV attention within each sequence (flash style, no T×T matrix):
// out (N,H·D) BF16, lse (N,H) F32. qkv BF16, D ≤ 256. It panics on mismatched shapes.
func (b *Backend) Attention(out, lse, qkv engine.Tensor, seqs engine.Seqs, h engine.Heads) {
	N, W := heads("Attention", qkv, h)
	if h.D > 256 {
		bad("Attention: head dim %d above 256", h.D)
	}
	x := ptr("Attention", "qkv", qkv, N*W, engine.BF16)
	o := ptr("Attention", "out", out, N*h.Q*h.D, engine.BF16)
	l := ptr("Attention", "lse", lse, N*h.Q, engine.F32)
	defer b.enter()()
	st, B, maxLen := b.starts("Attention", seqs, N)
	if st == nil || N == 0 {
		return
	}
	b.checkErr("Attention", C.cir_attention((*C.cir_bf16)(o), (*C.float)(l), (*C.cir_bf16)(x), (*C.int32_t)(st), C.int(B), C.int(maxLen), C.int(h.Q), C.int(h.KV), C.int(h.D), b.s()))
}

// AttentionBackward: dqkv (N,(H+2Hkv)·D) = gradient through Attention, from saved out and lse;
// deterministic (no atomics). It panics on mismatched shapes.
func (b *Backend) AttentionBackward(dqkv, dout, out, lse, qkv engine.Tensor, seqs engine.Seqs, h engine.Heads) {
	N, W := heads("AttentionBackward", qkv, h)
	if h.D > 256 {
		bad("AttentionBackward: head dim %d above 256", h.D)
	}
	x := ptr("AttentionBackward", "qkv", qkv, N*W, engine.BF16)
	dx := ptr("AttentionBackward", "dqkv", dqkv, N*W, engine.BF16)
	dy := ptr("AttentionBackward", "dout", dout, N*h.Q*h.D, engine.BF16)
	o := ptr("AttentionBackward", "out", out, N*h.Q*h.D, engine.BF16)
	l := ptr("AttentionBackward", "lse", lse, N*h.Q, engine.F32)
	defer b.enter()()
	st, B, maxLen := b.starts("AttentionBackward", seqs, N)
	if st == nil || N == 0 {
		return
	}
	ds := b.scratchOf("attn_dvec", int64(4*N*h.Q))
	if ds == nil {
		return
	}
	b.checkErr("AttentionBackward", C.cir_attention_backward((*C.cir_bf16)(dx), (*C.cir_bf16)(dy), (*C.cir_bf16)(o), (*C.float)(l), (*C.cir_bf16)(x), (*C.int32_t)(st), C.int(N), C.int(B), C.int(maxLen), C.int(h.Q), C.int(h.KV), C.int(h.D), (*C.float)(ds), b.s()))
}

func kvGeom(op string, kc, vc engine.Tensor, h engine.Heads) (S, T int) {
	if len(kc.Shape) != 4 || kc.Shape[2] != h.KV || kc.Shape[3] != h.D || !engine.SameShape(kc, vc) {
		bad("%s: caches %v and %v, want (S,T,%d,%d) each", op, kc.Shape, vc.Shape, h.KV, h.D)
	}
	return kc.Shape[0], kc.Shape[1]
}

// KVStore writes the k and v of each token of qkv into kc, vc (S,T,Hkv,D) at [slot[n], pos[n]];
// an index outside the cache is skipped and reported by Sync. It panics on mismatched shapes.
func (b *Backend) KVStore(kc, vc, qkv, slot, pos engine.Tensor, h engine.Heads) {
	N, W := heads("KVStore", qkv, h)
	S, T := kvGeom("KVStore", kc, vc, h)
	x := ptr("KVStore", "qkv", qkv, N*W, engine.BF16)
	k := ptr("KVStore", "kc", kc, -1, engine.BF16)
	v := ptr("KVStore", "vc", vc, -1, engine.BF16)
	sl := ptr("KVStore", "slot", slot, N, engine.I32)
	p := ptr("KVStore", "pos", pos, N, engine.I32)
	defer b.enter()()
	b.checkErr("KVStore", C.cir_kv_store(k, v, x, C.CIR_BF16, (*C.int32_t)(sl), (*C.int32_t)(p), C.int(N), C.int(h.Q), C.int(h.KV), C.int(h.D), C.int(S), C.int(T), b.errFlag, b.s()))
}

// kvSplit chooses the key-axis split of AttentionKV: enough blocks for two waves of the SMs, at
// least 128 keys a block.
func (b *Backend) kvSplit(N, Hkv, T int) (nsplit, chunk int) {
	want := max(1, (2*b.info.SMs+N*Hkv-1)/(N*Hkv))
	nsplit = min(want, (T+127)/128)
	nsplit = max(nsplit, 1)
	chunk = (T + nsplit - 1) / nsplit
	chunk = (chunk + 127) / 128 * 128
	nsplit = (T + chunk - 1) / chunk
	return max(nsplit, 1), chunk
}

// AttentionKV: out (N,H·D) where query n attends the cache rows [slot[n], 0..pos[n]], split
// over the key axis and merged (flash-decoding). H/Hkv ≤ 8, D ≤ 256. It panics on mismatched
// shapes.
func (b *Backend) AttentionKV(out, qkv, kc, vc, slot, pos engine.Tensor, h engine.Heads) {
	N, W := heads("AttentionKV", qkv, h)
	S, T := kvGeom("AttentionKV", kc, vc, h)
	if h.Q/h.KV > 8 || h.D > 256 {
		bad("AttentionKV: heads %+v: at most 8 query heads a kv head and D ≤ 256", h)
	}
	x := ptr("AttentionKV", "qkv", qkv, N*W, engine.BF16)
	o := ptr("AttentionKV", "out", out, N*h.Q*h.D, engine.BF16)
	k := ptr("AttentionKV", "kc", kc, -1, engine.BF16)
	v := ptr("AttentionKV", "vc", vc, -1, engine.BF16)
	sl := ptr("AttentionKV", "slot", slot, N, engine.I32)
	p := ptr("AttentionKV", "pos", pos, N, engine.I32)
	if N == 0 {
		return
	}
	defer b.enter()()
	ns, chunk := b.kvSplit(N, h.KV, T)
	sc := b.scratchOf("attn_kv", int64(C.cir_attention_kv_scratch(C.int(N), C.int(h.Q), C.int(h.D), C.int(ns)))*4)
	if sc == nil {
		return
	}
	b.checkErr("AttentionKV", C.cir_attention_kv((*C.cir_bf16)(o), (*C.cir_bf16)(x), (*C.cir_bf16)(k), (*C.cir_bf16)(v), (*C.int32_t)(sl), (*C.int32_t)(p), C.int(N), C.int(h.Q), C.int(h.KV), C.int(h.D), C.int(S), C.int(T), C.int(ns), C.int(chunk), (*C.float)(sc), b.errFlag, b.s()))
}

// ---- MLP, elementwise ----

// SwiGLU: out (N,I) = silu(gateUp[:, :I])·gateUp[:, I:]. It panics on mismatched shapes.
func (b *Backend) SwiGLU(out, gateUp engine.Tensor) {
	N, I2 := rows2("SwiGLU", "gateUp", gateUp)
	if I2%2 != 0 {
		bad("SwiGLU: gateUp width %d is odd", I2)
	}
	g := fptr("SwiGLU", "gateUp", gateUp, N*I2)
	o := ptr("SwiGLU", "out", out, N*I2/2, gateUp.DType)
	defer b.enter()()
	b.checkErr("SwiGLU", C.cir_swiglu(o, g, dt(gateUp), C.int(N), C.int(I2/2), b.s()))
}

// SwiGLUBackward: dgateUp (N,2I) = gradient through SwiGLU. It panics on mismatched shapes.
func (b *Backend) SwiGLUBackward(dgateUp, dout, gateUp engine.Tensor) {
	N, I2 := rows2("SwiGLUBackward", "gateUp", gateUp)
	if I2%2 != 0 {
		bad("SwiGLUBackward: gateUp width %d is odd", I2)
	}
	g := fptr("SwiGLUBackward", "gateUp", gateUp, N*I2)
	dg := ptr("SwiGLUBackward", "dgateUp", dgateUp, N*I2, gateUp.DType)
	dy := ptr("SwiGLUBackward", "dout", dout, N*I2/2, gateUp.DType)
	defer b.enter()()
	b.checkErr("SwiGLUBackward", C.cir_swiglu_backward(dg, dy, g, dt(gateUp), C.int(N), C.int(I2/2), b.s()))
}

// Add: out = a + b, one shape and dtype. It panics on mismatched shapes.
func (b *Backend) Add(out, a, bb engine.Tensor) {
	n := a.Len()
	x := fptr("Add", "a", a, n)
	y := ptr("Add", "b", bb, n, a.DType)
	o := ptr("Add", "out", out, n, a.DType)
	defer b.enter()()
	b.checkErr("Add", C.cir_add(o, x, y, dt(a), C.size_t(n), b.s()))
}

// ---- classifier, sampling, optimizer ----

// CrossEntropy: per row of logits (N,V), logp, lse and (when present) ent (N) F32 in one pass.
// A target outside [0,V) gives logp 0 and a *DataError from Sync. It panics on mismatched shapes.
func (b *Backend) CrossEntropy(logp, lse, ent, logits, targets engine.Tensor) {
	N, V := rows2("CrossEntropy", "logits", logits)
	x := fptr("CrossEntropy", "logits", logits, N*V)
	lp := ptr("CrossEntropy", "logp", logp, N, engine.F32)
	l := ptr("CrossEntropy", "lse", lse, N, engine.F32)
	t := ptr("CrossEntropy", "targets", targets, N, engine.I32)
	var e unsafe.Pointer
	if !ent.Nil() {
		e = ptr("CrossEntropy", "ent", ent, N, engine.F32)
	}
	defer b.enter()()
	b.checkErr("CrossEntropy", C.cir_cross_entropy((*C.float)(lp), (*C.float)(l), (*C.float)(e), x, dt(logits), (*C.int32_t)(t), C.int(N), C.int(V), b.errFlag, b.s()))
}

// CrossEntropyBackward: dlogits (N,V) = dlogp[n]·(onehot(target) − softmax(logits)), plus the
// entropy term −dent[n]·p·(log p + ent[n]) when dent is present, computed from logits and lse
// without a softmax in memory; dlogits may be logits itself, or a tensor of another float dtype
// (the model keeps F32 logits and BF16 dlogits). It panics on mismatched shapes.
func (b *Backend) CrossEntropyBackward(dlogits, dlogp, dent, logits, lse, ent, targets engine.Tensor) {
	N, V := rows2("CrossEntropyBackward", "logits", logits)
	x := fptr("CrossEntropyBackward", "logits", logits, N*V)
	dx := fptr("CrossEntropyBackward", "dlogits", dlogits, N*V)
	g := ptr("CrossEntropyBackward", "dlogp", dlogp, N, engine.F32)
	var de, en unsafe.Pointer
	if !dent.Nil() {
		de = ptr("CrossEntropyBackward", "dent", dent, N, engine.F32)
		en = ptr("CrossEntropyBackward", "ent", ent, N, engine.F32)
	}
	l := ptr("CrossEntropyBackward", "lse", lse, N, engine.F32)
	t := ptr("CrossEntropyBackward", "targets", targets, N, engine.I32)
	defer b.enter()()
	b.checkErr("CrossEntropyBackward", C.cir_cross_entropy_backward(dx, dt(dlogits), (*C.float)(g), (*C.float)(de), x, dt(logits), (*C.float)(l), (*C.float)(en), (*C.int32_t)(t), C.int(N), C.int(V), b.s()))
}

// Sample draws ids (B) from logits (B,V) with uniforms u (B) on the device: temperature 0 is
// argmax (ties to the lowest id, as the CPU); otherwise the kept set is the CPU's (top-k, then
// the smallest most-probable prefix of mass ≥ TopP, ties by lower id) and the id is drawn by
// inverse CDF over the kept ids in id order, so for one u it can differ from the CPU's id while
// the distribution is the same. logp (B) F32 is the log-probability under the unscaled softmax.
// It panics on mismatched shapes.
func (b *Backend) Sample(ids, logp, logits, u engine.Tensor, p engine.SampleParams) {
	B, V := rows2("Sample", "logits", logits)
	if V == 0 {
		bad("Sample: logits %v have no columns", logits.Shape)
	}
	x := fptr("Sample", "logits", logits, B*V)
	id := ptr("Sample", "ids", ids, B, engine.I32)
	lp := ptr("Sample", "logp", logp, B, engine.F32)
	uu := ptr("Sample", "u", u, B, engine.F32)
	defer b.enter()()
	topP := p.TopP
	if topP <= 0 || topP > 1 {
		topP = 1
	}
	b.checkErr("Sample", C.cir_sample((*C.int32_t)(id), (*C.float)(lp), x, dt(logits), (*C.float)(uu), C.int(B), C.int(V), C.float(p.Temperature), C.float(topP), C.int(p.TopK), b.s()))
}

// AdamW makes one torch.optim.AdamW step (the CPU backend's arithmetic): on master (F32) when
// present, rounded into params (BF16 or F32); grads, m, v F32. It panics on mismatched shapes or
// a Step below 1.
func (b *Backend) AdamW(params, master, grads, m, v engine.Tensor, p engine.AdamWParams) {
	P := params.Len()
	pr := fptr("AdamW", "params", params, P)
	var ms unsafe.Pointer
	if !master.Nil() {
		ms = ptr("AdamW", "master", master, P, engine.F32)
	}
	g := ptr("AdamW", "grads", grads, P, engine.F32)
	mm := ptr("AdamW", "m", m, P, engine.F32)
	vv := ptr("AdamW", "v", v, P, engine.F32)
	if p.Step < 1 {
		bad("AdamW: step %d, want >= 1", p.Step)
	}
	bc1 := 1 - math.Pow(float64(p.Beta1), float64(p.Step))
	bc2 := 1 - math.Pow(float64(p.Beta2), float64(p.Step))
	defer b.enter()()
	b.checkErr("AdamW", C.cir_adamw(pr, dt(params), (*C.float)(ms), (*C.float)(g), (*C.float)(mm), (*C.float)(vv), C.size_t(P),
		C.float(p.LR), C.float(p.WeightDecay), C.float(p.Beta1), C.float(p.Beta2), C.float(p.Eps), C.float(p.GradScale),
		C.float(float64(p.LR)/bc1), C.float(math.Sqrt(bc2)), b.s()))
}
