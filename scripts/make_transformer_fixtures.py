"""Write the project's whole-model fixtures, fixtures/transformer/<case>.{json,npz}, with
TransformerLens itself as the reference (SPEC.md, "Transformer").

Rerun (from the repository root):

    python3 -m venv /work/tlenv
    /work/tlenv/bin/pip install numpy torch transformer-lens==3.9.0
    /work/tlenv/bin/python scripts/make_transformer_fixtures.py            # all cases
    /work/tlenv/bin/python scripts/make_transformer_fixtures.py tiny grokking   # some cases
    /work/tlenv/bin/python scripts/make_transformer_fixtures.py --out DIR      # elsewhere

Made with: Python 3.11.7, transformer-lens 3.9.0, torch 2.15.0 (CPU run), numpy 2.4.6.
transformer-lens 4.x removed HookedTransformer, so pin 3.x. No hub download is needed: every model
is built from a HookedTransformerConfig and given random weights.

How a case is made:

* Weights are drawn as float32 numpy arrays from a per-case seeded generator: matrices are
  normal / sqrt(fan_in) (W_Q/W_K/W_V: fan_in d_model; W_O: n_heads d_head; W_in: d_model;
  W_out: d_mlp; W_U: d_model), W_E is normal, W_pos is 0.5 normal, every bias (b_Q, b_K, b_V, b_O,
  b_in, b_out, b_U) is 0.1 normal (TransformerLens would start them at zero, which hides bias
  bugs), and LayerNorm weights are 1 + 0.1 normal with biases 0.1 normal.
* The float32 arrays are loaded into a float64 HookedTransformer built from the SPEC config alone,
  which is run with ``run_with_cache``; ``logits`` and every cache entry are saved as float64.
* Tokens are uniform in [0, d_vocab) from the same generator, then tokens[0, 0] = d_vocab - 1 and
  tokens[-1, -1] = 0, so both ends of the embedding table are used (``tiny`` has hand-picked
  tokens [[4, 2, 3, 0]]).
* The ``attn.mask`` / ``attn.IGNORE`` buffers are not saved. TransformerLens 3.9 writes -inf at
  masked attention scores itself; the writer checks this (and would convert a large negative).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict

import numpy as np

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tl_format  # noqa: E402

SEED = 20240611

# name -> (SPEC config without defaults, batch, seq)
CASES: Dict[str, tuple] = {
    # Nanda et al.'s modular-addition ("grokking") model: no LayerNorm, d_vocab_out < d_vocab.
    "grokking": (dict(n_layers=1, d_model=128, n_heads=4, d_head=32, d_mlp=512, d_vocab=114,
                      d_vocab_out=113, n_ctx=3, act_fn="relu", normalization_type=None), 8, 3),
    # Othello-GPT-shaped (the real one has 8 layers, d_model 512): erf GELU, LN, full context.
    "othello_small": (dict(n_layers=2, d_model=128, n_heads=4, d_head=32, d_mlp=512, d_vocab=61,
                           d_vocab_out=61, n_ctx=59, act_fn="gelu", normalization_type="LN"), 2, 59),
    # Attention-only, LNPre (LayerNorm folded away: no ln weights at all).
    "attn_only_lnpre": (dict(n_layers=2, d_model=64, n_heads=4, d_head=16, d_mlp=None, d_vocab=50,
                             d_vocab_out=50, n_ctx=20, act_fn="relu", normalization_type="LNPre",
                             attn_only=True), 3, 20),
    # GPT-2-style tanh GELU, three layers, sequence shorter than n_ctx.
    "gelu_new_3layer": (dict(n_layers=3, d_model=64, n_heads=4, d_head=16, d_mlp=256, d_vocab=40,
                             d_vocab_out=40, n_ctx=16, act_fn="gelu_new", normalization_type="LN"),
                        2, 12),
    # Small enough to read by eye.
    "tiny": (dict(n_layers=1, d_model=8, n_heads=2, d_head=4, d_mlp=16, d_vocab=5, d_vocab_out=5,
                  n_ctx=4, act_fn="relu", normalization_type="LN"), 1, 4),
}
# Cases whose tokens are fixed by hand rather than drawn (tiny's draw repeats one token).
FIXED_TOKENS = {"tiny": [[4, 2, 3, 0]]}


def full_spec(partial: Dict[str, Any]) -> Dict[str, Any]:
    spec = dict(attn_only=False, eps=1e-5, positional_embedding_type="standard")
    spec.update(partial)
    assert set(spec) == set(tl_format.SPEC_KEYS), sorted(set(spec) ^ set(tl_format.SPEC_KEYS))
    return spec


def random_weights(spec: Dict[str, Any], rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Float32 random weights for every parameter of a model with this SPEC config."""
    shapes = tl_format.weight_shapes(spec)
    d_model, n_heads, d_head = spec["d_model"], spec["n_heads"], spec["d_head"]
    out: Dict[str, np.ndarray] = {}
    for name in sorted(shapes):
        shape = shapes[name]
        leaf = name.rsplit(".", 1)[-1]
        normal = rng.standard_normal(shape)
        if leaf == "W_E":
            a = normal
        elif leaf == "W_pos":
            a = 0.5 * normal
        elif leaf in ("W_Q", "W_K", "W_V", "W_in", "W_U"):
            a = normal / np.sqrt(d_model)
        elif leaf == "W_O":
            a = normal / np.sqrt(n_heads * d_head)
        elif leaf == "W_out":
            a = normal / np.sqrt(spec["d_mlp"])
        elif leaf == "w":  # LayerNorm weight
            a = 1.0 + 0.1 * normal
        elif leaf == "b" or leaf.startswith("b_"):  # LayerNorm bias and every linear bias
            a = 0.1 * normal
        else:
            raise ValueError(f"no rule for parameter {name} {shape}")
        out[name] = np.ascontiguousarray(a.astype(np.float32))
    return out


def make_case(name: str, out_dir: str) -> None:
    partial, batch, seq = CASES[name]
    spec = full_spec(partial)
    # A case's numbers depend only on SEED and its name, not on which other cases run.
    rng = np.random.default_rng([SEED, sum(name.encode()), len(name)])
    weights = random_weights(spec, rng)
    tokens = rng.integers(0, spec["d_vocab"], size=(batch, seq), dtype=np.int64)
    tokens[0, 0] = spec["d_vocab"] - 1
    tokens[-1, -1] = 0
    if name in FIXED_TOKENS:
        tokens = np.array(FIXED_TOKENS[name], dtype=np.int64)
        assert tokens.shape == (batch, seq)
    notes: list = []
    expected = tl_format.expected_arrays(spec, weights, tokens, notes)
    # The loaded float64 model must hold exactly the float32 values (checked inside load_weights
    # by construction; checked again here against what is written).
    check = tl_format.build_model(spec)
    tl_format.load_weights(check, weights)
    for k, v in tl_format.weight_arrays(check, spec).items():
        assert np.array_equal(v, weights[k]), k
    assert expected["logits"].shape == (batch, seq, spec["d_vocab_out"])
    arrays = {**weights, **expected}
    paths = tl_format.write_fixture(os.path.join(out_dir, name), spec, arrays)
    sizes = ", ".join(f"{os.path.basename(p)} {os.path.getsize(p)} B" for p in paths)
    print(f"{name}: {len(weights)} weights, {len(list(tl_format.cache_keys(arrays)))} cache "
          f"entries; {sizes}")
    for n in notes:
        print(f"  note: {n}")


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cases", nargs="*", help=f"cases to write (default all: {', '.join(CASES)})")
    p.add_argument("--out", default=os.path.join(root, "fixtures", "transformer"),
                   help="output folder (default fixtures/transformer)")
    args = p.parse_args()
    for c in args.cases:
        if c not in CASES:
            p.error(f"unknown case {c!r}; cases: {', '.join(CASES)}")
    for c in args.cases or list(CASES):
        make_case(c, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
