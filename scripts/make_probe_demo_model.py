"""Writes an UNTRAINED Othello-shaped model for trying `shaderlens probe` (docs/probe.md).

The shape is issue 16's small Othello-GPT (2 layers, d_model 128, 4 heads of 32, d_mlp 512,
GELU, LayerNorm, n_ctx 59, 61 tokens), the weights TransformerLens's gpt2 init drawn with numpy
(W_* from normal(0, 0.8 / sqrt(d_model)), layer-norm weights 1, biases 0). Never calls
shaderlens. Usage: python3 scripts/make_probe_demo_model.py OUT_PREFIX [SEED]
(writes OUT_PREFIX.json and OUT_PREFIX.npz).
"""
import json
import sys

import numpy as np

CFG = dict(n_layers=2, d_model=128, n_heads=4, d_head=32, d_mlp=512, d_vocab=61, d_vocab_out=61, n_ctx=59,
           act_fn="gelu", normalization_type="LN", attn_only=False, eps=1e-5,
           positional_embedding_type="standard", init_mode="gpt2")


def main():
    prefix = sys.argv[1]
    rng = np.random.default_rng(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    c = CFG
    d, h, dh, m, v, s = c["d_model"], c["n_heads"], c["d_head"], c["d_mlp"], c["d_vocab"], c["n_ctx"]
    std = 0.8 / np.sqrt(d)
    c["initializer_range"] = std
    w = {}
    normal = lambda *shape: rng.normal(0.0, std, shape).astype(np.float32)
    w["embed.W_E"] = normal(v, d)
    w["pos_embed.W_pos"] = normal(s, d)
    for l in range(c["n_layers"]):
        p = f"blocks.{l}."
        for n in ("W_Q", "W_K", "W_V"):
            w[p + "attn." + n] = normal(h, d, dh)
            w[p + "attn.b_" + n[-1]] = np.zeros((h, dh), np.float32)
        w[p + "attn.W_O"] = normal(h, dh, d)
        w[p + "attn.b_O"] = np.zeros(d, np.float32)
        for ln in ("ln1", "ln2"):
            w[p + ln + ".w"] = np.ones(d, np.float32)
            w[p + ln + ".b"] = np.zeros(d, np.float32)
        w[p + "mlp.W_in"] = normal(d, m)
        w[p + "mlp.b_in"] = np.zeros(m, np.float32)
        w[p + "mlp.W_out"] = normal(m, d)
        w[p + "mlp.b_out"] = np.zeros(d, np.float32)
    w["ln_final.w"] = np.ones(d, np.float32)
    w["ln_final.b"] = np.zeros(d, np.float32)
    w["unembed.W_U"] = normal(d, v)
    w["unembed.b_U"] = np.zeros(v, np.float32)
    np.savez(prefix + ".npz", **w)
    with open(prefix + ".json", "w") as f:
        json.dump(c, f, indent=2)


if __name__ == "__main__":
    main()
