"""Write the optimizer and training fixtures with PyTorch as the reference (SPEC.md,
"Optimizer" and "Training"): fixtures/adamw/<case>.npz (checked by `verify`) and
fixtures/train/<case>.{json,npz}.

Rerun (from the repository root; TransformerLens 3.x for the models):

    /work/tlenv/bin/python scripts/make_train_fixtures.py [--out DIR]

Made with: Python 3.11.7, transformer-lens 3.9.0, torch 2.15.0 (CPU), numpy 2.4.6.

* adamw: float32 ``param``, ``grad``, ``m``, ``v`` (v >= 0) from a seeded generator, the float64
  0-d hyper-parameters and int64 ``step`` t; the expected ``param_out``, ``m_out``, ``v_out`` are
  one ``torch.optim.AdamW(foreach=False)`` step in float64 whose state holds m, v and step t - 1.
* train: a float64 HookedTransformer holding float32 initial weights, ``torch.optim.AdamW``
  (float64, ``foreach=False``) over ``model.parameters()``; update i sets the learning rate to
  ``lr[i]``, computes SPEC's loss on batch i, ``loss.backward()``, ``clip_grad_norm_`` when
  ``max_grad_norm`` is set, and steps. ``losses`` [N] and ``final.<param>`` are float64;
  ``final.*b_K`` is left out (SPEC: its gradient is zero in exact arithmetic).
  ``<case>.json`` is ``{"model": cfg.to_dict(), "optimizer": {...}}``.

FAIL variants (tests/data/verify_bad/{adamw,train}/, rows in its MANIFEST.tsv) change one expected value just past the
tolerance's reach; ERROR variants (the same folders) break an input.
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
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
warnings.filterwarnings("ignore", message=".*deprecated.*")
import make_grad_fixtures as grad  # noqa: E402

SEED = 20261201

DEFAULT = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01)
GROKKING = dict(lr=1e-3, beta1=0.9, beta2=0.98, eps=1e-8, weight_decay=1.0)

# name -> (shape, step, hyper-parameters)
ADAMW_CASES: Dict[str, tuple] = {
    "first_step": ((7,), 1, DEFAULT),
    "second_step": ((3, 5), 2, DEFAULT),
    "grokking_step_10": ((2, 3, 4), 10, GROKKING),
    "late_no_decay": ((33,), 1000, dict(DEFAULT, weight_decay=0.0, lr=3e-4)),
    "big_lr_small_eps": ((4, 4), 3, dict(lr=0.5, beta1=0.5, beta2=0.9, eps=1e-12, weight_decay=0.1)),
}


def adamw_case(name: str, out: str) -> Dict[str, np.ndarray]:
    shape, step, hp = ADAMW_CASES[name]
    rng = np.random.default_rng([SEED, sum(name.encode()), len(name)])
    f32 = lambda a: np.ascontiguousarray(a.astype(np.float32))  # noqa: E731
    param, g = f32(rng.standard_normal(shape)), f32(rng.standard_normal(shape))
    m = f32(0.1 * rng.standard_normal(shape)) if step > 1 else np.zeros(shape, np.float32)
    v = f32(0.01 * rng.random(shape)) if step > 1 else np.zeros(shape, np.float32)
    p = torch.nn.Parameter(torch.from_numpy(param).to(torch.float64))
    opt = torch.optim.AdamW([p], lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
                            weight_decay=hp["weight_decay"], foreach=False)
    p.grad = torch.from_numpy(g).to(torch.float64)
    if step > 1:
        opt.state[p] = {"step": torch.tensor(float(step - 1)),
                        "exp_avg": torch.from_numpy(m).to(torch.float64),
                        "exp_avg_sq": torch.from_numpy(v).to(torch.float64)}
    opt.step()
    state = opt.state[p]
    assert float(state["step"]) == step
    arrays = {"param": param, "grad": g, "m": m, "v": v, "step": np.array(step, np.int64),
              **{k: np.array(val, np.float64) for k, val in hp.items()},
              "param_out": p.detach().numpy().copy(),
              "m_out": state["exp_avg"].numpy().copy(), "v_out": state["exp_avg_sq"].numpy().copy()}
    # adamw fixtures are checked by `verify` (GPU and reference), so they go to fixtures/adamw.
    folder = os.path.join(out, "..", "..", "..", "fixtures", "adamw")
    os.makedirs(folder, exist_ok=True)
    np.savez_compressed(os.path.join(folder, name + ".npz"), **arrays)
    print(f"adamw/{name}: {shape}, t = {step}")
    return arrays


# name -> (model config, N, B, S, targets kind, optimizer, lr schedule)
TRAIN_CASES: Dict[str, tuple] = {
    "ln_gelu_constant": (grad.config(n_layers=1), 3, 2, 6, "next",
                         dict(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, max_grad_norm=None),
                         [1e-2, 1e-2, 1e-2]),
    "clipped_warmup": (grad.config(act_fn="relu", normalization_type="LNPre"), 5, 2, 6, "next",
                       dict(beta1=0.9, beta2=0.98, eps=1e-8, weight_decay=0.1, max_grad_norm=0.5),
                       [2e-3, 4e-3, 6e-3, 8e-3, 1e-2]),
    "grokking_shaped": (grad.config(n_layers=1, d_model=32, n_heads=4, d_head=8, d_mlp=64,
                                    d_vocab=14, d_vocab_out=13, n_ctx=3, act_fn="relu",
                                    normalization_type=None), 4, 8, 3, "last",
                        dict(beta1=0.9, beta2=0.98, eps=1e-8, weight_decay=1.0, max_grad_norm=1.0),
                        [1e-3, 5e-3, 1e-2, 5e-3]),
    "attn_only_cosine": (grad.config(attn_only=True, n_heads=2), 3, 3, 5, "ignored",
                         dict(beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.0, max_grad_norm=None),
                         [1e-2 * (1 + np.cos(np.pi * i / 3)) / 2 for i in range(3)]),
}


def train_case(name: str, out: str) -> Dict[str, np.ndarray]:
    spec, n, b, s, kind, opt_cfg, lrs = TRAIN_CASES[name]
    rng = np.random.default_rng([SEED, sum(name.encode()), len(name)])
    model = grad.build_model(spec)
    weights = grad.random_weights(model, rng)
    grad.load(model, weights)
    tokens = np.zeros((n, b, s), np.int64)
    targets = np.zeros((n, b, s), np.int64)
    for i in range(n):
        if kind == "last":
            p = spec["d_vocab_out"]
            tokens[i] = np.stack([rng.integers(0, p, b), rng.integers(0, p, b), np.full(b, p)], 1)
        else:
            tokens[i] = rng.integers(0, spec["d_vocab"], size=(b, s))
        targets[i] = grad.make_targets(kind, tokens[i], spec["d_vocab_out"], rng)
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=lrs[0], betas=(opt_cfg["beta1"], opt_cfg["beta2"]),
                            eps=opt_cfg["eps"], weight_decay=opt_cfg["weight_decay"], foreach=False)
    losses = []
    for i in range(n):
        for group in opt.param_groups:
            group["lr"] = float(lrs[i])
        opt.zero_grad(set_to_none=True)
        loss = grad.spec_loss(model(torch.from_numpy(tokens[i])), torch.from_numpy(targets[i]))
        loss.backward()
        if opt_cfg["max_grad_norm"] is not None:
            torch.nn.utils.clip_grad_norm_(params, opt_cfg["max_grad_norm"])
        opt.step()
        losses.append(loss.item())
    arrays: Dict[str, np.ndarray] = {**weights, "tokens": tokens, "targets": targets,
                                     "lr": np.array(lrs, np.float64),
                                     "losses": np.array(losses, np.float64)}
    for pname, p in model.named_parameters():
        if not pname.endswith("b_K"):
            arrays[f"final.{pname}"] = p.detach().numpy().astype(np.float64).copy()
    prefix = os.path.join(out, "..", "..", "..", "fixtures", "train", name)
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    with open(prefix + ".json", "w") as f:
        json.dump({"model": model.cfg.to_dict(), "optimizer": opt_cfg}, f, default=str, indent=1)
        f.write("\n")
    np.savez_compressed(prefix + ".npz", **arrays)
    print(f"train/{name}: losses {', '.join(f'{x:.5f}' for x in losses)}")
    return arrays


def write_variant(out: str, folder: str, op: str, case: str, arrays: Dict[str, np.ndarray],
                  config: Optional[Dict[str, Any]] = None) -> None:
    # FAIL and ERROR cases alike go to the adversarial set that `verify` is tested against
    # (tests/data/verify_bad/<op>/, listed in its MANIFEST.tsv); `folder` says which they are.
    prefix = os.path.join(out, "..", "verify_bad", op, case)
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    if config is not None:
        with open(prefix + ".json", "w") as f:
            json.dump(config, f, default=str, indent=1)
            f.write("\n")
    np.savez_compressed(prefix + ".npz", **arrays)
    print(f"{folder}/{op}/{case}")


def make_bad(out: str, adamw_base: Dict[str, np.ndarray], train_base: Dict[str, np.ndarray],
             train_json: Dict[str, Any]) -> None:
    """FAIL and ERROR variants of adamw/second_step and train/clipped_warmup."""
    def changed(base, **changes):
        arrays = {k: v.copy() for k, v in base.items()}
        for k, v in changes.items():
            if v is None:
                del arrays[k]
            else:
                arrays[k] = v
        return arrays

    a = adamw_base
    off = a["param_out"].copy()
    off[1, 2] += 1e-4 * abs(off[1, 2]) + 1e-5  # ratio about 10 under 1e-6 + 1e-5 |want|
    write_variant(out, "fail", "adamw", "param_out_off", changed(a, param_out=off))
    write_variant(out, "fail", "adamw", "m_out_flipped", changed(a, m_out=-a["m_out"]))
    write_variant(out, "error", "adamw", "step_zero", changed(a, step=np.array(0, np.int64)))
    write_variant(out, "error", "adamw", "step_missing", changed(a, step=None))
    write_variant(out, "error", "adamw", "grad_shape_differs", changed(a, grad=a["grad"][:, :4].copy()))
    write_variant(out, "error", "adamw", "beta2_one", changed(a, beta2=np.array(1.0)))

    t = train_base
    final = t["final.blocks.0.mlp.W_in"].copy()
    final[0, 0] += 0.01 * abs(final[0, 0]) + 2e-4
    write_variant(out, "fail", "train", "final_off", changed(t, **{"final.blocks.0.mlp.W_in": final}),
                  train_json)
    losses = t["losses"].copy()
    losses[2] *= 1.01
    write_variant(out, "fail", "train", "losses_off", changed(t, losses=losses), train_json)
    write_variant(out, "error", "train", "lr_wrong_length", changed(t, lr=t["lr"][:-1].copy()),
                  train_json)
    bad_targets = t["targets"].copy()
    bad_targets[2, 1, 0] = 99
    write_variant(out, "error", "train", "target_out_of_range", changed(t, targets=bad_targets),
                  train_json)
    write_variant(out, "error", "train", "targets_missing", changed(t, targets=None), train_json)


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(root, "tests", "data", "grad"))
    args = p.parse_args()
    adamw = {name: adamw_case(name, args.out) for name in ADAMW_CASES}
    train = {name: train_case(name, args.out) for name in TRAIN_CASES}
    with open(os.path.join(args.out, "..", "..", "..", "fixtures", "train", "clipped_warmup.json")) as f:
        train_json = json.load(f)
    make_bad(args.out, adamw["second_step"], train["clipped_warmup"], train_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
