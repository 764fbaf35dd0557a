"""Write the gradient fixtures, fixtures/transformer_grad/<case>.{json,npz}, with
TransformerLens itself as the reference (SPEC.md, "Gradients"), plus FAIL and ERROR variants.

Rerun (from the repository root; TransformerLens 3.x, since 4.x removed HookedTransformer):

    /work/tlenv/bin/python scripts/make_grad_fixtures.py              # all cases
    /work/tlenv/bin/python scripts/make_grad_fixtures.py ln_gelu      # some cases
    /work/tlenv/bin/python scripts/make_grad_fixtures.py --out DIR    # elsewhere

Made with: Python 3.11.7, transformer-lens 3.9.0, torch 2.15.0 (CPU), numpy 2.4.6.

How a case is made:

* Float32 weights from a per-case seeded numpy generator (matrices normal / sqrt(fan_in), W_E
  normal, W_pos 0.5 normal, every bias 0.1 normal, LayerNorm weights 1 + 0.1 normal), loaded into
  a float64 HookedTransformer built from the case's config: the expected values are the float64
  results of the float32 inputs.
* The loss is SPEC's: the mean over positions with target >= 0 of -log_softmax(logits)[target]
  (torch's log_softmax is shifted by the row maximum).
* Parameter gradients come from ``loss.backward()`` (``grad.<param>``); hook gradients from the
  backward hooks of ``get_caching_hooks(incl_bwd=True)`` (``cache.<hook>_grad``), all default
  hooks except in the Othello-shaped case, which keeps the residual-stream hooks only (size).
* ``<case>.json`` is the full ``cfg.to_dict()`` (``json.dump(..., default=str)``).

FAIL variants (tests/data/verify_bad/transformer_grad/) copy ``ln_gelu`` with one expected value
1 % off or one gradient's sign flipped; ERROR variants (the same folder)
have targets missing, mis-shaped, out of range, or counting no position.

The TransformerLens variants (issue 13) have one case each: RMS, RMSPre, final_rms,
parallel_attn_mlp with hook_mlp_in, attn_scale with bidirectional attention, use_attn_scale false
with the by-layer scale, shortformer, use_attn_result, use_split_qkv_input, use_attn_in with
LNPre, solu_ln, solu with RMS (fixtures/transformer_grad/, GPU and float64 reference). REFUSED
(none today) would hold the ones the GPU backward refuses by name, written beside the ERROR
variants.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Any, Dict, Optional

import numpy as np
import torch

sys.dont_write_bytecode = True
warnings.filterwarnings("ignore", message=".*deprecated.*")
from transformer_lens import HookedTransformer, HookedTransformerConfig  # noqa: E402

SEED = 20261130


def config(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, d_vocab=11, d_vocab_out=None,
           n_ctx=8, act_fn="gelu", normalization_type="LN", attn_only=False, **extra) -> Dict[str, Any]:
    return {**dict(n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_head=d_head,
                d_mlp=None if attn_only else d_mlp, d_vocab=d_vocab,
                d_vocab_out=d_vocab if d_vocab_out is None else d_vocab_out, n_ctx=n_ctx,
                act_fn=act_fn, normalization_type=normalization_type, attn_only=attn_only,
                eps=1e-5, positional_embedding_type="standard"), **extra}


# name -> (config, batch, seq, targets kind, hooks kept: None = all)
CASES: Dict[str, tuple] = {
    "ln_gelu": (config(), 2, 6, "next", None),
    "lnpre_gelu_new": (config(act_fn="gelu_new", normalization_type="LNPre"), 2, 6, "next", None),
    "no_norm_relu": (config(act_fn="relu", normalization_type=None), 2, 6, "next", None),
    "ln_relu": (config(act_fn="relu", n_layers=1), 3, 5, "next", None),
    "attn_only": (config(attn_only=True, n_heads=3, d_head=4), 2, 7, "next", None),
    "vocab_out": (config(d_vocab=13, d_vocab_out=7, n_layers=1), 2, 5, "random", None),
    # Modular arithmetic: tokens [a, b, p], the loss on the last position only.
    "last_position": (config(n_layers=1, d_model=32, n_heads=4, d_head=8, d_mlp=64, d_vocab=14,
                             d_vocab_out=13, n_ctx=3, act_fn="relu", normalization_type=None),
                      6, 3, "last", None),
    "ignored": (config(), 3, 8, "ignored", None),
    "othello": (config(d_model=64, n_heads=4, d_head=16, d_mlp=256, d_vocab=61, n_ctx=59), 2, 59,
                "next", "resid"),
    # TransformerLens variants (issue 13): small, so that verify runs them on lavapipe in CI.
    "rms_gelu": (config(d_model=8, d_head=4, d_mlp=16, normalization_type="RMS"), 2, 5, "next", None),
    "rmspre_relu": (config(d_model=8, d_head=4, d_mlp=16, act_fn="relu", normalization_type="RMSPre"),
                    2, 5, "next", None),
    "final_rms": (config(d_model=8, d_head=4, d_mlp=16, final_rms=True), 2, 5, "next", None),
    "parallel_mlp_in": (config(d_model=8, d_head=4, d_mlp=16, act_fn="gelu_fast", parallel_attn_mlp=True,
                               use_hook_mlp_in=True), 2, 5, "next", None),
    "attn_scale_bidirectional": (config(d_model=8, d_head=4, d_mlp=16, act_fn="gelu_pytorch_tanh",
                                        attn_scale=2.5, attention_dir="bidirectional"), 2, 5, "next", None),
    "no_attn_scale_by_layer": (config(d_model=8, d_head=4, d_mlp=16, use_attn_scale=False,
                                      scale_attn_by_inverse_layer_idx=True), 2, 5, "next", None),
    "shortformer": (config(d_model=8, d_head=4, d_mlp=16, positional_embedding_type="shortformer"),
                    2, 5, "next", None),
    "attn_result": (config(d_model=8, d_head=4, d_mlp=16, use_attn_result=True), 2, 5, "next", None),
    "split_qkv_input": (config(d_model=8, d_head=4, d_mlp=16, use_split_qkv_input=True), 2, 5, "next", None),
    "attn_in_lnpre": (config(d_model=8, d_head=4, d_mlp=16, use_attn_in=True, normalization_type="LNPre"),
                      2, 5, "next", None),
    "solu_ln": (config(d_model=8, d_head=4, d_mlp=16, act_fn="solu_ln"), 2, 5, "next", None),
    "solu_rms": (config(d_model=8, d_head=4, d_mlp=16, act_fn="solu", normalization_type="RMS"),
                 2, 5, "next", None),
}

# Variants the GPU backward refuses by name (verify: ERROR naming the field); the float64
# reference passes them. Written to tests/data/verify_bad/transformer_grad/. None today: every
# variant has its GPU backward (issue 13 item 4).
REFUSED: Dict[str, tuple] = {
}


def build_model(spec: Dict[str, Any]) -> HookedTransformer:
    cfg = HookedTransformerConfig(**spec, dtype=torch.float64, device="cpu", init_weights=False)
    model = HookedTransformer(cfg, move_to_device=False)
    model.eval()
    return model


def random_weights(model: HookedTransformer, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    cfg = model.cfg
    out: Dict[str, np.ndarray] = {}
    for name, p in model.state_dict().items():
        if name.endswith(("attn.mask", "attn.IGNORE")):
            continue
        leaf = name.rsplit(".", 1)[-1]
        normal = rng.standard_normal(tuple(p.shape))
        fan_in = {"W_Q": cfg.d_model, "W_K": cfg.d_model, "W_V": cfg.d_model, "W_in": cfg.d_model,
                  "W_U": cfg.d_model, "W_O": cfg.n_heads * cfg.d_head, "W_out": cfg.d_mlp}
        if leaf == "W_E":
            a = normal
        elif leaf == "W_pos":
            a = 0.5 * normal
        elif leaf in fan_in:
            a = normal / np.sqrt(fan_in[leaf])
        elif leaf == "w":
            a = 1.0 + 0.1 * normal
        elif leaf == "b" or leaf.startswith("b_"):
            a = 0.1 * normal
        else:
            raise ValueError(f"no rule for {name}")
        out[name] = np.ascontiguousarray(a.astype(np.float32))
    return out


def load(model: HookedTransformer, weights: Dict[str, np.ndarray]) -> None:
    state = {k: torch.from_numpy(v).to(torch.float64) for k, v in weights.items()}
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith(("attn.mask", "attn.IGNORE"))]
    assert not missing and not result.unexpected_keys, (missing, result.unexpected_keys)


def spec_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """SPEC's loss: mean over targets >= 0 of -log_softmax(logits)[target]."""
    mask = targets >= 0
    lp = torch.log_softmax(logits, dim=-1)[mask]
    return -lp.gather(-1, targets[mask][:, None]).mean()


def make_targets(kind: str, tokens: np.ndarray, d_vocab_out: int, rng) -> np.ndarray:
    b, s = tokens.shape
    if kind == "next":
        t = np.full((b, s), -1, dtype=np.int64)
        t[:, :-1] = tokens[:, 1:]
        assert t.max() < d_vocab_out
    elif kind == "last":
        t = np.full((b, s), -1, dtype=np.int64)
        t[:, -1] = (tokens[:, 0] + tokens[:, 1]) % d_vocab_out
    elif kind == "random":
        t = rng.integers(0, d_vocab_out, size=(b, s), dtype=np.int64)
        t[0, 0] = d_vocab_out - 1
    elif kind == "ignored":
        t = rng.integers(0, d_vocab_out, size=(b, s), dtype=np.int64)
        t[rng.random((b, s)) < 0.4] = -1
        t[1, :] = -1          # a whole row without loss
        t[0, 2] = -100        # any negative value means "no loss"
        t[0, 0] = 0
    else:
        raise ValueError(kind)
    return t


def gradients(model: HookedTransformer, tokens: np.ndarray, targets: np.ndarray,
              keep: Optional[str]) -> Dict[str, np.ndarray]:
    names = None if keep is None else (lambda n: "hook_resid" in n)
    cache, fwd, bwd = model.get_caching_hooks(names, incl_bwd=True)
    model.zero_grad(set_to_none=True)
    with model.hooks(fwd_hooks=fwd, bwd_hooks=bwd):
        logits = model(torch.from_numpy(tokens))
        loss = spec_loss(logits, torch.from_numpy(targets))
        loss.backward()
    out = {"loss": np.array(loss.item(), dtype=np.float64)}
    for name, p in model.named_parameters():
        out[f"grad.{name}"] = p.grad.detach().numpy().astype(np.float64).copy()
    for name, t in cache.items():
        if name.endswith("_grad"):
            out[f"cache.{name}"] = t.detach().numpy().astype(np.float64).copy()
    return out


def write(prefix: str, cfg_dict: Dict[str, Any], arrays: Dict[str, np.ndarray]) -> None:
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    with open(prefix + ".json", "w") as f:
        json.dump(cfg_dict, f, default=str, indent=1)
        f.write("\n")
    # np.ascontiguousarray would make the 0-d loss 1-d.
    np.savez_compressed(prefix + ".npz", **{k: np.array(v, order="C") for k, v in arrays.items()})


def make_case(name: str, out: str) -> Dict[str, np.ndarray]:
    spec, batch, seq, kind, keep = CASES[name] if name in CASES else REFUSED[name]
    rng = np.random.default_rng([SEED, sum(name.encode()), len(name)])
    model = build_model(spec)
    weights = random_weights(model, rng)
    load(model, weights)
    if kind == "last":
        p = spec["d_vocab_out"]
        tokens = np.stack([rng.integers(0, p, batch), rng.integers(0, p, batch),
                           np.full(batch, p)], axis=1).astype(np.int64)
    else:
        tokens = rng.integers(0, spec["d_vocab"], size=(batch, seq), dtype=np.int64)
        tokens[0, 0] = spec["d_vocab"] - 1
    targets = make_targets(kind, tokens, spec["d_vocab_out"], rng)
    expected = gradients(model, tokens, targets, keep)
    arrays = {**weights, "tokens": tokens, "targets": targets, **expected}
    write(os.path.join(out, "transformer_grad", name), model.cfg.to_dict(), arrays)
    n_cache = sum(k.startswith("cache.") for k in arrays)
    print(f"{name}: loss {float(expected['loss']):.6f}, {len(weights)} params, {n_cache} hook grads")
    return arrays


def make_bad(out: str, bad_out: str) -> None:
    """FAIL and ERROR variants of ln_gelu."""
    spec = CASES["ln_gelu"][0]
    cfg = build_model(spec).cfg.to_dict()
    base = make_case("ln_gelu", os.path.join(out, "scratch"))
    for f in os.listdir(os.path.join(out, "scratch", "transformer_grad")):
        os.remove(os.path.join(out, "scratch", "transformer_grad", f))
    os.rmdir(os.path.join(out, "scratch", "transformer_grad"))
    os.rmdir(os.path.join(out, "scratch"))

    def variant(folder: str, case: str, change) -> None:
        arrays = {k: v.copy() for k, v in base.items()}
        change(arrays)
        write(os.path.join(bad_out, "transformer_grad", case), cfg, arrays)
        print(f"{folder}: transformer_grad/{case}")

    def one_percent(a):
        g = a["grad.blocks.0.mlp.W_in"]
        i = np.unravel_index(np.argmax(np.abs(g)), g.shape)
        g[i] *= 1.01

    def one_percent_hook(a):
        g = a["cache.blocks.1.hook_resid_mid_grad"]
        i = np.unravel_index(np.argmax(np.abs(g)), g.shape)
        g[i] *= 1.01

    def flipped(a):
        a["grad.blocks.1.attn.W_V"] = -a["grad.blocks.1.attn.W_V"]

    def loss_off(a):
        a["loss"] = a["loss"] * 1.001

    variant("fail", "grad_one_percent_off", one_percent)
    variant("fail", "hook_grad_one_percent_off", one_percent_hook)
    variant("fail", "flipped_sign", flipped)
    variant("fail", "loss_off", loss_off)

    def missing(a):
        del a["targets"]

    def misshaped(a):
        a["targets"] = np.concatenate([a["targets"], a["targets"][:, :1]], axis=1)

    def out_of_range(a):
        a["targets"][1, 3] = spec["d_vocab_out"]

    def none_counted(a):
        a["targets"][:] = -1

    variant("error", "targets_missing", missing)
    variant("error", "targets_misshaped", misshaped)
    variant("error", "target_out_of_range", out_of_range)
    variant("error", "no_counted_position", none_counted)


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cases", nargs="*", help=f"cases (default all: {', '.join(CASES)}, bad, "
                                            f"{', '.join(REFUSED)})")
    p.add_argument("--out", default=os.path.join(root, "fixtures"))
    p.add_argument("--bad-out", default=os.path.join(root, "tests", "data", "verify_bad"))
    args = p.parse_args()
    torch.manual_seed(0)
    for c in args.cases or list(CASES) + ["bad"] + list(REFUSED):
        if c == "bad":
            make_bad(args.out, args.bad_out)
        elif c in CASES:
            make_case(c, args.out)
        elif c in REFUSED:
            make_case(c, args.bad_out)
        else:
            p.error(f"unknown case {c!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
