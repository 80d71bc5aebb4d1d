#!/usr/bin/env python3
"""hf_logprobs.py: whole-model parity of cir with HF transformers' Qwen2 on the GPU machine.

    hf_logprobs.py tokens CONFIG.json N OUT.jsonl     write N random token sequences (JSONL)
    hf_logprobs.py compare MODEL_DIR TOKENS.jsonl CIR.jsonl [TOL]

compare loads MODEL_DIR (written by `cir init`: config.json + model.safetensors) with
transformers' AutoModelForCausalLM in fp32 (eager attention, on the GPU when there is one),
computes log p(tokens[i+1] | tokens[..i]) for every line of TOKENS.jsonl, and compares them with
`cir logprobs` output (CIR.jsonl, {"logprobs": [...], "loss": x} per line). It prints one JSON
summary line and exits 1 when the largest absolute difference exceeds TOL (default 0.1: cir's GPU
path keeps bf16 weights and activations, so differences of a few 1e-2 are expected; a wrong op
gives differences of order 1).
"""
import json
import math
import random
import sys


def tokens(cfg_path, n, out):
    cfg = json.load(open(cfg_path))
    rng = random.Random(1)
    with open(out, "w") as f:
        for i in range(n):
            length = [17, 64, 200, 333][i % 4]
            f.write(json.dumps({"tokens": [rng.randrange(cfg["vocab_size"]) for _ in range(length)]}) + "\n")


def compare(model_dir, tok_path, cir_path, tol):
    import torch
    import transformers

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    kw = {"torch_dtype": torch.float32}
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager", **kw)
    except TypeError:  # transformers before 4.36
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, **kw)
    model = model.to(dev).eval()
    seqs = [json.loads(l)["tokens"] for l in open(tok_path) if l.strip()]
    cir = [json.loads(l) for l in open(cir_path) if l.strip()]
    if len(cir) != len(seqs):
        print(json.dumps({"error": f"{len(cir)} lines from cir for {len(seqs)} sequences"}))
        return 1
    worst, total, count, loss_diff = 0.0, 0.0, 0, 0.0
    with torch.no_grad():
        for s, c in zip(seqs, cir):
            ids = torch.tensor([s], device=dev)
            logits = model(ids).logits[0, :-1].float()
            ref = torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0].double().cpu().tolist()
            got = c["logprobs"]
            if len(got) != len(ref):
                print(json.dumps({"error": f"{len(got)} log-probs from cir for a sequence of {len(s)} tokens"}))
                return 1
            for a, b in zip(got, ref):
                d = abs(a - b) if not (math.isnan(a) or math.isnan(b)) else math.inf
                worst, total, count = max(worst, d), total + d, count + 1
            loss_diff = max(loss_diff, abs(c["loss"] - (-sum(ref) / len(ref))))
    ok = worst <= tol
    print(json.dumps({"model": model_dir, "device": dev, "transformers": transformers.__version__,
                      "sequences": len(seqs), "tokens": count, "max_abs_diff": worst,
                      "mean_abs_diff": total / max(count, 1), "max_loss_diff": loss_diff, "tol": tol,
                      "ok": ok}))
    return 0 if ok else 1


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "tokens":
        tokens(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return 0
    if len(sys.argv) in (5, 6) and sys.argv[1] == "compare":
        return compare(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]) if len(sys.argv) == 6 else 0.1)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
