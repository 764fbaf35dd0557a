"""Write the analysis fixtures with TransformerLens itself as the reference (SPEC.md, "Analysis"):
activation-patching sweeps into fixtures/act_patch/<case>.{json,npz}, attribution patching into
fixtures/attribution/<case>.{json,npz}, and FAIL / ERROR variants of act_patch into
tests/data/verify_bad/act_patch/.

Rerun (from the repository root; TransformerLens 3.x, which has HookedTransformer):

    python3 scripts/make_analysis_fixtures.py             # everything
    python3 scripts/make_analysis_fixtures.py ln_gelu     # some cases

Made with: Python 3.11.7, transformer-lens 3.9.0, torch 2.15.0 (CPU), numpy 2.4.6.

How a case is made:

* The model: float32 weights from a per-case seeded numpy generator loaded into a float64
  HookedTransformer (the rules of scripts/make_grad_fixtures.py, imported from there), so that the
  expected values are the float64 results of the float32 inputs.
* Prompt pairs: ``clean`` random tokens, ``corrupt`` the same with one or two positions changed;
  ``answer`` and ``wrong`` distinct random tokens < d_vocab_out.
* The metric: SPEC's logit difference at the last position, ``logits[b, -1, answer[b]] -
  logits[b, -1, wrong[b]]``, averaged over the batch for the patching sweeps (the metric given to
  ``transformer_lens.patching.get_act_patch_*``) and summed for attribution's gradient.
* act_patch: ``patch.resid_pre``, ``patch.attn_out``, ``patch.mlp_out`` [n_layers, S]
  (``get_act_patch_resid_pre`` / ``_attn_out`` / ``_mlp_out``); ``patch.z_all_pos`` [n_layers,
  n_heads] (``get_act_patch_attn_head_out_all_pos``); beyond SPEC, ``patch.z_by_pos`` [n_layers,
  S, n_heads] (``get_act_patch_attn_head_out_by_pos``) and ``patch.{q,k,v,pattern}_all_pos``
  [n_layers, n_heads] (``get_act_patch_attn_head_{q,k,v,pattern}_all_pos``).
* attribution: ``attr.<hook>`` for every hook of the default cache: ``((clean - corrupt) *
  grad).sum(-1)``, with ``grad`` the corrupt run's hook gradient of the summed metric (backward
  hooks of ``get_caching_hooks(incl_bwd=True)``) and 0 where both activations are -inf.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict

os.environ.setdefault("TQDM_DISABLE", "1")  # TransformerLens's patching shows progress bars
import numpy as np
import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_grad_fixtures import build_model, config, load, random_weights, write  # noqa: E402
from transformer_lens import patching  # noqa: E402

SEED = 20261130

# name -> (config, batch, seq, extra sweeps beyond SPEC's)
PATCH_CASES: Dict[str, tuple] = {
    "ln_gelu": (config(), 2, 6, True),
    "attn_only": (config(attn_only=True, n_heads=3, d_head=4), 3, 5, True),
    "lnpre_relu_one_pair": (config(act_fn="relu", normalization_type="LNPre", n_layers=1), 1, 7, False),
    "no_norm_gelu_new": (config(act_fn="gelu_new", normalization_type=None, d_vocab=13, d_vocab_out=9), 2, 4, False),
}
ATTR_CASES: Dict[str, tuple] = {
    "ln_gelu": (config(), 2, 6),
    "attn_only": (config(attn_only=True, n_heads=3, d_head=4), 3, 5),
    "no_norm_relu": (config(act_fn="relu", normalization_type=None), 2, 5),
}

SWEEPS = {
    "resid_pre": patching.get_act_patch_resid_pre,
    "attn_out": patching.get_act_patch_attn_out,
    "mlp_out": patching.get_act_patch_mlp_out,
    "z_all_pos": patching.get_act_patch_attn_head_out_all_pos,
}
EXTRA_SWEEPS = {
    "z_by_pos": patching.get_act_patch_attn_head_out_by_pos,
    "q_all_pos": patching.get_act_patch_attn_head_q_all_pos,
    "k_all_pos": patching.get_act_patch_attn_head_k_all_pos,
    "v_all_pos": patching.get_act_patch_attn_head_v_all_pos,
    "pattern_all_pos": patching.get_act_patch_attn_head_pattern_all_pos,
}


def model_and_prompts(name: str, spec: Dict[str, Any], batch: int, seq: int):
    rng = np.random.default_rng([SEED, sum(name.encode()), len(name)])
    model = build_model(spec)
    weights = random_weights(model, rng)
    load(model, weights)
    clean = rng.integers(0, spec["d_vocab"], size=(batch, seq), dtype=np.int64)
    corrupt = clean.copy()
    for b in range(batch):
        for p in rng.choice(seq, size=min(2, seq), replace=False):
            corrupt[b, p] = (clean[b, p] + 1 + rng.integers(0, spec["d_vocab"] - 1)) % spec["d_vocab"]
    answer = rng.integers(0, spec["d_vocab_out"], size=batch, dtype=np.int64)
    wrong = (answer + 1 + rng.integers(0, spec["d_vocab_out"] - 1, size=batch)) % spec["d_vocab_out"]
    prompts = {"clean": clean, "corrupt": corrupt, "answer": answer, "wrong": wrong.astype(np.int64)}
    return model, weights, prompts


def logit_diff(logits: torch.Tensor, answer: np.ndarray, wrong: np.ndarray) -> torch.Tensor:
    """SPEC's metric per batch row."""
    rows = torch.arange(logits.shape[0])
    last = logits[:, -1, :]
    return last[rows, torch.from_numpy(answer)] - last[rows, torch.from_numpy(wrong)]


def make_patch_case(name: str, out: str) -> Dict[str, np.ndarray]:
    spec, batch, seq, extra = PATCH_CASES[name]
    model, weights, prompts = model_and_prompts(name, spec, batch, seq)
    _, clean_cache = model.run_with_cache(torch.from_numpy(prompts["clean"]))
    corrupt = torch.from_numpy(prompts["corrupt"])

    def metric(logits):
        return logit_diff(logits, prompts["answer"], prompts["wrong"]).mean()

    sweeps = dict(SWEEPS, **(EXTRA_SWEEPS if extra else {}))
    if spec["attn_only"]:
        sweeps.pop("mlp_out")
    expected = {}
    with torch.no_grad():
        for key, fn in sweeps.items():
            expected[f"patch.{key}"] = fn(model, corrupt, clean_cache, metric).numpy().astype(np.float64)
    arrays = {**weights, **prompts, **expected}
    write(os.path.join(out, "act_patch", name), model.cfg.to_dict(), arrays)
    print(f"act_patch/{name}: {', '.join(f'{k} {list(v.shape)}' for k, v in expected.items())}")
    return arrays


def make_attr_case(name: str, out: str) -> None:
    spec, batch, seq = ATTR_CASES[name]
    model, weights, prompts = model_and_prompts(name, spec, batch, seq)
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(torch.from_numpy(prompts["clean"]))
    cache, fwd, bwd = model.get_caching_hooks(None, incl_bwd=True)
    with model.hooks(fwd_hooks=fwd, bwd_hooks=bwd):
        logits = model(torch.from_numpy(prompts["corrupt"]))
        logit_diff(logits, prompts["answer"], prompts["wrong"]).sum().backward()
    expected = {}
    for hook, a_clean in clean_cache.items():
        a_clean = a_clean.numpy()
        a_corrupt = cache[hook].detach().numpy()
        grad = cache[hook + "_grad"].detach().numpy()
        both_inf = np.isneginf(a_clean) & np.isneginf(a_corrupt)
        with np.errstate(invalid="ignore"):
            diff = np.where(both_inf, 0.0, a_clean - a_corrupt)
        expected[f"attr.{hook}"] = (diff * grad).sum(-1).astype(np.float64)
        assert np.isfinite(expected[f"attr.{hook}"]).all(), hook
    arrays = {**weights, **prompts, **expected}
    write(os.path.join(out, "attribution", name), model.cfg.to_dict(), arrays)
    print(f"attribution/{name}: {len(expected)} hooks")


def make_bad(root: str) -> None:
    """FAIL and ERROR variants of act_patch/ln_gelu in tests/data/verify_bad/act_patch/."""
    spec = PATCH_CASES["ln_gelu"][0]
    cfg = build_model(spec).cfg.to_dict()
    scratch = os.path.join(root, "target", "analysis_scratch")
    base = make_patch_case("ln_gelu", scratch)
    bad = os.path.join(root, "tests", "data", "verify_bad")

    def variant(case: str, change) -> None:
        arrays = {k: v.copy() for k, v in base.items()}
        change(arrays)
        write(os.path.join(bad, "act_patch", case), cfg, arrays)
        print(f"verify_bad/act_patch/{case}")

    def off(key):
        def change(a):
            v = a[key]
            i = np.unravel_index(np.argmax(np.abs(v)), v.shape)
            v[i] += 0.05 * abs(v[i]) + 0.01
        return change

    def transposed(a):
        a["patch.resid_pre"] = a["patch.resid_pre"][::-1].copy()

    def unknown(a):
        a["patch.resid_post"] = a["patch.resid_pre"].copy()

    def answer_out_of_range(a):
        a["answer"][1] = spec["d_vocab_out"]

    def shapes_differ(a):
        a["corrupt"] = a["corrupt"][:, :-1].copy()

    def sweep_misshaped(a):
        a["patch.attn_out"] = a["patch.attn_out"][:, :-1].copy()

    def wrong_missing(a):
        del a["wrong"]

    def answer_wrong_batch(a):
        a["answer"] = np.concatenate([a["answer"], a["answer"]])

    variant("resid_pre_off", off("patch.resid_pre"))
    variant("z_all_pos_off", off("patch.z_all_pos"))
    variant("layers_reversed", transposed)
    variant("unknown_sweep", unknown)
    variant("answer_out_of_range", answer_out_of_range)
    variant("corrupt_shorter", shapes_differ)
    variant("sweep_misshaped", sweep_misshaped)
    variant("wrong_missing", wrong_missing)
    variant("answer_wrong_batch", answer_wrong_batch)


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cases", nargs="*", help="act_patch / attribution case names, or bad (default all)")
    args = p.parse_args()
    torch.manual_seed(0)
    wanted = args.cases or list(PATCH_CASES) + list(ATTR_CASES) + ["bad"]
    for c in wanted:
        known = False
        if c in PATCH_CASES:
            make_patch_case(c, os.path.join(root, "fixtures"))
            known = True
        if c in ATTR_CASES:
            make_attr_case(c, os.path.join(root, "tests", "data", "analysis"))
            known = True
        if c == "bad":
            make_bad(root)
            known = True
        if not known:
            p.error(f"unknown case {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
