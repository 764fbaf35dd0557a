"""Write the residual-stream test data, tests/data/lens/<case>.{json,npz}, with TransformerLens's
ActivationCache as the reference (issue 17 item 4). Test data, not verify fixtures.

Rerun (from the repository root; TransformerLens 3.x, which has HookedTransformer):

    python3 scripts/make_lens_fixtures.py

Made with: Python 3.11, transformer-lens 3.9.0, torch 2.15 (CPU), numpy 2.x.

A case: float32 weights from a per-case seeded numpy generator loaded into a float64
HookedTransformer (the rules of scripts/make_grad_fixtures.py, imported from there), random
``tokens`` [B, S], and per row an ``answer`` and a distinct ``wrong`` token. Stored (float64):

* ``accumulated_resid`` [L+1, B, S, d_model]: ``cache.accumulated_resid()``;
  ``accumulated_resid_ln``: the same with ``apply_ln=True`` (models with a norm only; in
  TransformerLens 3.9 that is each component through ``ln_final`` with its own statistics).
* ``decompose_resid`` [2 + L * (1 or 2), B, S, d_model]: ``cache.decompose_resid()``; for the
  shortformer without its ``pos_embed`` row (W_pos is not in its residual stream; TransformerLens
  3.9 lists it anyway, and then the components do not sum to the stream).
* ``stack_head_results`` [L * H, B, S, d_model]: ``cache.stack_head_results()``.
* ``logit_attrs.decompose`` and ``logit_attrs.heads`` [C, B]: ``cache.logit_attrs(stack[:, :,
  -1], answer, wrong, pos_slice=-1)`` of the two stacks above at the last position (TransformerLens applies the final
  norm's scale inside ``logit_attrs``); ``logit_attrs.heads_answer``: without ``wrong``.
* ``logit_lens`` [L+1, B, S, d_vocab_out]: ``cache.apply_ln_to_stack(accumulated_resid,
  recompute_ln=True) @ W_U + b_U`` (each layer through ``ln_final`` with its own statistics).
* ``logits`` [B, S, d_vocab_out]: the model's output.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_grad_fixtures import build_model, config, load, random_weights, write  # noqa: E402

SEED = 20261130

# name -> (config, batch, seq)
CASES = {
    "ln": (config(), 2, 5),
    "lnpre_attn_only": (config(attn_only=True, n_heads=3, d_head=4, normalization_type="LNPre"), 2, 4),
    "no_norm": (config(act_fn="relu", normalization_type=None, n_layers=3, d_vocab_out=7), 3, 4),
    # RMS final norms (with and without w) and a shortformer: the GPU lens's RMS kernel, and the
    # decomposition without a positional term (issue 17, the plots brief's item 3).
    "rms": (config(d_model=8, d_head=4, d_mlp=16, normalization_type="RMS"), 2, 5),
    "rmspre_attn_only": (config(attn_only=True, d_model=8, d_head=4, normalization_type="RMSPre"), 2, 4),
    "shortformer": (config(d_model=8, d_head=4, d_mlp=16, positional_embedding_type="shortformer"), 2, 5),
}


def make_case(name: str, out: str) -> None:
    spec, batch, seq = CASES[name]
    rng = np.random.default_rng([SEED, sum(name.encode()), len(name)])
    model = build_model(spec)
    weights = random_weights(model, rng)
    load(model, weights)
    tokens = rng.integers(0, spec["d_vocab"], size=(batch, seq), dtype=np.int64)
    answer = rng.integers(0, spec["d_vocab_out"], size=batch, dtype=np.int64)
    wrong = ((answer + 1 + rng.integers(0, spec["d_vocab_out"] - 1, size=batch)) % spec["d_vocab_out"]).astype(np.int64)
    with torch.no_grad():
        logits, cache = model.run_with_cache(torch.from_numpy(tokens))
        ans, wr = torch.from_numpy(answer), torch.from_numpy(wrong)
        acc = cache.accumulated_resid()
        dec, labels = cache.decompose_resid(return_labels=True)
        if spec["positional_embedding_type"] == "shortformer":
            # TransformerLens 3.9 lists pos_embed although a shortformer never adds it to the
            # residual stream (so its components do not sum to the stream); the reading here
            # leaves it out, and so does the expected value.
            assert labels[1] == "pos_embed", labels
            dec = torch.cat([dec[:1], dec[2:]])
        heads = cache.stack_head_results()
        has_norm = spec["normalization_type"] is not None
        expected = {
            "accumulated_resid": acc,
            "decompose_resid": dec,
            "stack_head_results": heads,
            "logits": logits,
        }
        if has_norm:
            expected["accumulated_resid_ln"] = cache.accumulated_resid(apply_ln=True)
            expected["logit_attrs.decompose"] = cache.logit_attrs(dec[:, :, -1], ans, wr, pos_slice=-1)
            expected["logit_attrs.heads"] = cache.logit_attrs(heads[:, :, -1], ans, wr, pos_slice=-1)
            expected["logit_attrs.heads_answer"] = cache.logit_attrs(heads[:, :, -1], ans, pos_slice=-1)
            lensed = cache.apply_ln_to_stack(acc, recompute_ln=True)
        else:
            # Without a norm TransformerLens's apply_ln_to_stack has no scale to read; the
            # attribution is then the plain dot product with the unembedding directions.
            dirs = model.W_U[:, ans].T - model.W_U[:, wr].T
            expected["logit_attrs.decompose"] = (dec[:, :, -1, :] * dirs).sum(-1)
            expected["logit_attrs.heads"] = (heads[:, :, -1, :] * dirs).sum(-1)
            expected["logit_attrs.heads_answer"] = (heads[:, :, -1, :] * model.W_U[:, ans].T).sum(-1)
            lensed = acc
        expected["logit_lens"] = lensed @ model.W_U + model.b_U
        assert torch.allclose(expected["logit_lens"][-1], logits, atol=1e-9), name
        assert torch.allclose(dec.sum(0), acc[-1], atol=1e-9), name
    arrays = {**weights, "tokens": tokens, "answer": answer, "wrong": wrong}
    arrays.update({k: v.numpy().astype(np.float64) for k, v in expected.items()})
    write(os.path.join(out, name), model.cfg.to_dict(), arrays)
    print(f"lens/{name}: {', '.join(f'{k} {list(v.shape)}' for k, v in expected.items())}")


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in CASES:
        make_case(name, os.path.join(root, "tests", "data", "lens"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
