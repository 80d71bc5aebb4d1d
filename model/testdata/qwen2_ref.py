"""Independent PyTorch reference of the Qwen2 decoder, for cir's parity tests and benchmarks.

It reads an HF model directory (config.json + model.safetensors, parsed here with numpy, not
with cir's code), runs sequences of token ids through a plain implementation of Qwen2 written
from the HF modelling code's equations, and writes per-token log-probs and the gradient of the
mean token cross-entropy over all predicted tokens of all sequences.

    qwen2_ref.py parity MODEL_DIR TOKENS.json OUT_DIR
        TOKENS.json: [[ids...], ...]; writes OUT_DIR/logprobs.json and OUT_DIR/grads.safetensors
        (float64 arithmetic throughout).
    qwen2_ref.py bench-train CONFIG.json BATCH SEQ THREADS STEPS
        fp32 forward+backward+AdamW tokens/s; prints one JSON line.
    qwen2_ref.py bench-decode CONFIG.json BATCH NEW_TOKENS THREADS
        fp32 KV-cache decoding tokens/s; prints one JSON line.
"""
import json
import math
import struct
import sys
import time

import numpy as np
import torch

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = data[base + b : base + e]
        if info["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=DTYPES[info["dtype"]])
        out[name] = arr.reshape(info["shape"]).astype(np.float64)
    return out


def write_safetensors(path, tensors):
    header, chunks, off = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype=np.float32)
        raw = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)


def config_defaults(cfg):
    cfg.setdefault("num_key_value_heads", cfg["num_attention_heads"])
    cfg.setdefault("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    cfg.setdefault("rope_theta", 10000.0)
    cfg.setdefault("rms_norm_eps", 1e-6)
    cfg.setdefault("tie_word_embeddings", False)
    cfg.setdefault("attention_bias", True)
    return cfg


class Qwen2:
    def __init__(self, cfg, dtype):
        self.cfg = cfg = config_defaults(dict(cfg))
        C, H, Hkv, D, I, V = (cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
                              cfg["head_dim"], cfg["intermediate_size"], cfg["vocab_size"])
        P = lambda *s: torch.zeros(*s, dtype=dtype, requires_grad=True)
        self.p = {}
        self.p["model.embed_tokens.weight"] = P(V, C)
        for l in range(cfg["num_hidden_layers"]):
            pre = f"model.layers.{l}."
            self.p[pre + "input_layernorm.weight"] = P(C)
            self.p[pre + "self_attn.q_proj.weight"] = P(H * D, C)
            self.p[pre + "self_attn.k_proj.weight"] = P(Hkv * D, C)
            self.p[pre + "self_attn.v_proj.weight"] = P(Hkv * D, C)
            if cfg["attention_bias"]:
                self.p[pre + "self_attn.q_proj.bias"] = P(H * D)
                self.p[pre + "self_attn.k_proj.bias"] = P(Hkv * D)
                self.p[pre + "self_attn.v_proj.bias"] = P(Hkv * D)
            self.p[pre + "self_attn.o_proj.weight"] = P(C, H * D)
            self.p[pre + "post_attention_layernorm.weight"] = P(C)
            self.p[pre + "mlp.gate_proj.weight"] = P(I, C)
            self.p[pre + "mlp.up_proj.weight"] = P(I, C)
            self.p[pre + "mlp.down_proj.weight"] = P(C, I)
        self.p["model.norm.weight"] = P(C)
        if not cfg["tie_word_embeddings"]:
            self.p["lm_head.weight"] = P(V, C)

    def parameters(self):
        return list(self.p.values())

    def rms(self, x, w):
        var = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(var + self.cfg["rms_norm_eps"]))

    def rope(self, x, pos):
        # x (B, T, heads, D); HF rotate-half.
        D = x.shape[-1]
        inv = 1.0 / (self.cfg["rope_theta"] ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
        ang = pos[:, None].to(torch.float64) * inv[None, :]
        emb = torch.cat([ang, ang], dim=-1)
        cos, sin = emb.cos().to(x.dtype)[:, None, :], emb.sin().to(x.dtype)[:, None, :]
        x1, x2 = x[..., : D // 2], x[..., D // 2 :]
        rot = torch.cat([-x2, x1], dim=-1)
        return x * cos + rot * sin

    def lin(self, x, name, bias=False):
        y = x @ self.p[name + ".weight"].t()
        if bias:
            y = y + self.p[name + ".bias"]
        return y

    def block(self, l, x, pos, cache=None):
        # x (B, T, C); pos (T,) the positions of these tokens; cache {layer: (k, v)} of earlier ones.
        cfg = self.cfg
        H, Hkv, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
        pre = f"model.layers.{l}."
        B, T = x.shape[0], x.shape[1]
        h = self.rms(x, self.p[pre + "input_layernorm.weight"])
        b = cfg["attention_bias"]
        q = self.lin(h, pre + "self_attn.q_proj", b).view(B, T, H, D)
        k = self.lin(h, pre + "self_attn.k_proj", b).view(B, T, Hkv, D)
        v = self.lin(h, pre + "self_attn.v_proj", b).view(B, T, Hkv, D)
        q, k = self.rope(q, pos), self.rope(k, pos)
        if cache is not None:
            if l in cache:
                k = torch.cat([cache[l][0], k], 1)
                v = torch.cat([cache[l][1], v], 1)
            cache[l] = (k, v)
        S = k.shape[1]
        k = k.repeat_interleave(H // Hkv, dim=2)
        v = v.repeat_interleave(H // Hkv, dim=2)
        s = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(D)
        kpos = torch.arange(S)
        s = s.masked_fill(kpos[None, :] > pos[:, None], float("-inf"))
        a = torch.einsum("bhts,bshd->bthd", torch.softmax(s, -1), v).reshape(B, T, H * D)
        x = x + self.lin(a, pre + "self_attn.o_proj")
        h = self.rms(x, self.p[pre + "post_attention_layernorm.weight"])
        g = self.lin(h, pre + "mlp.gate_proj")
        u = self.lin(h, pre + "mlp.up_proj")
        return x + self.lin(torch.nn.functional.silu(g) * u, pre + "mlp.down_proj")

    def logits(self, ids, pos=None, cache=None):
        # ids (B, T) -> logits (B, T, V)
        if pos is None:
            pos = torch.arange(ids.shape[1])
        x = self.p["model.embed_tokens.weight"][ids]
        for l in range(self.cfg["num_hidden_layers"]):
            x = self.block(l, x, pos, cache)
        x = self.rms(x, self.p["model.norm.weight"])
        w = self.p["model.embed_tokens.weight" if self.cfg["tie_word_embeddings"] else "lm_head.weight"]
        return x @ w.t()


def parity(model_dir, tokens_path, out_dir):
    cfg = json.load(open(model_dir + "/config.json"))
    m = Qwen2(cfg, torch.float64)
    w = read_safetensors(model_dir + "/model.safetensors")
    for k, p in m.p.items():
        with torch.no_grad():
            p.copy_(torch.from_numpy(w[k]))
    seqs = json.load(open(tokens_path))
    total = sum(len(s) - 1 for s in seqs)
    loss_sum, out = 0.0, []
    for s in seqs:
        ids = torch.tensor(s)
        lp = torch.log_softmax(m.logits(ids[None])[0], -1)[:-1].gather(1, ids[1:, None])[:, 0]
        out.append(lp.tolist())
        loss_sum = loss_sum - lp.sum()
    (loss_sum / total).backward()
    json.dump({"logprobs": out, "loss": float(loss_sum) / total}, open(out_dir + "/logprobs.json", "w"))
    write_safetensors(out_dir + "/grads.safetensors", {k: p.grad.numpy() for k, p in m.p.items()})


def random_model(cfg_path, dtype):
    torch.manual_seed(0)
    m = Qwen2(json.load(open(cfg_path)), dtype)
    with torch.no_grad():
        for k, p in m.p.items():
            if k.endswith("norm.weight"):
                p.fill_(1)
            elif not k.endswith(".bias"):
                p.normal_(0, 0.02)
    return m


def bench_train(cfg_path, B, T, threads, steps):
    torch.set_num_threads(threads)
    m = random_model(cfg_path, torch.float32)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.01)
    V = m.cfg["vocab_size"]
    ids = torch.randint(0, V, (B, T))

    def step():
        opt.zero_grad()
        lp = torch.log_softmax(m.logits(ids), -1)[:, :-1].gather(2, ids[:, 1:, None])
        (-lp.mean()).backward()
        opt.step()

    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t) / steps
    print(json.dumps({"impl": "pytorch", "tokens_per_s": B * T / dt, "step_ms": dt * 1e3}))


def bench_decode(cfg_path, B, new, threads):
    torch.set_num_threads(threads)
    m = random_model(cfg_path, torch.float32)
    V, P = m.cfg["vocab_size"], 16
    with torch.no_grad():
        cache = {}
        m.logits(torch.randint(0, V, (B, P)), torch.arange(P), cache)
        nxt = torch.randint(0, V, (B, 1))
        t = time.perf_counter()
        for i in range(new):
            lg = m.logits(nxt, torch.tensor([P + i]), cache)
            nxt = lg[:, -1:].argmax(-1)
        dt = time.perf_counter() - t
    print(json.dumps({"impl": "pytorch", "tokens_per_s": B * new / dt}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "parity":
        parity(*sys.argv[2:5])
    elif cmd == "bench-train":
        bench_train(sys.argv[2], *map(int, sys.argv[3:7]))
    elif cmd == "bench-decode":
        bench_decode(sys.argv[2], *map(int, sys.argv[3:6]))
    else:
        sys.exit("unknown command " + cmd)
