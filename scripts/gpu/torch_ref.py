#!/usr/bin/env python3
"""torch_ref.py: PyTorch references for the CUDA benchmarks, on the same GPU.

GEMMs: torch.matmul in bf16 (cuBLAS) on the shapes of BenchmarkMatmul (forward, and the two
backward products). Attention: F.scaled_dot_product_attention, causal, restricted to the flash
backend, on the shapes of BenchmarkAttention, forward and backward. Prints one JSON object a
line: {"bench": ..., "shape": ..., "ms": ..., "tflops": ...}.
"""
import json
import sys

import torch
import torch.nn.functional as F


def timed(fn, iters=10):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def emit(bench, shape, ms, flops):
    print(json.dumps({"bench": bench, "shape": shape, "ms": round(ms, 4), "tflops": round(flops / ms / 1e9, 2)}), flush=True)


def gemms():
    shapes = [(4096, 896, 1152), (4096, 896, 9728), (4096, 4864, 896), (4096, 896, 151936),
              (4096, 1536, 2048), (4096, 1536, 17920), (4096, 8960, 1536), (4096, 1536, 151936)]
    for n, c, oc in shapes:
        x = torch.randn(n, c, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(oc, c, device="cuda", dtype=torch.bfloat16)
        dy = torch.randn(n, oc, device="cuda", dtype=torch.bfloat16)
        flops = 2 * n * c * oc
        shape = f"N={n},C={c},OC={oc}"
        emit("matmul_fwd", shape, timed(lambda: x @ w.t()), flops)
        emit("matmul_bwd", shape, timed(lambda: (dy @ w, dy.t() @ x)), 2 * flops)


def attention():
    from torch.nn.attention import SDPBackend, sdpa_kernel
    cases = [(1, 4096, 14, 2, 64), (1, 4096, 12, 2, 128), (4, 1024, 12, 2, 128)]
    for b, t, h, hkv, d in cases:
        q = torch.randn(b, h, t, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        # flash SDPA has no grouped KV: the kv heads are repeated, as most trainers do
        k = torch.randn(b, hkv, t, d, device="cuda", dtype=torch.bfloat16).repeat_interleave(h // hkv, 1).requires_grad_()
        v = torch.randn(b, hkv, t, d, device="cuda", dtype=torch.bfloat16).repeat_interleave(h // hkv, 1).requires_grad_()
        flops = 2 * 2 * b * h * t * t * d / 2
        shape = f"B={b},T={t},H={h},Hkv={hkv},D={d}"
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            emit("attention_fwd", shape, timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)), flops)
            g = torch.randn_like(out)
            emit("attention_bwd", shape,
                 timed(lambda: torch.autograd.grad(out, (q, k, v), g, retain_graph=True)), 2.5 * flops)


def main():
    if not torch.cuda.is_available():
        print(json.dumps({"error": "torch sees no GPU"}))
        return 1
    print(json.dumps({"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                      "cuda": torch.version.cuda}), flush=True)
    what = sys.argv[1:] or ["gemm", "attention"]
    if "gemm" in what:
        gemms()
    if "attention" in what:
        attention()
    return 0


if __name__ == "__main__":
    sys.exit(main())
