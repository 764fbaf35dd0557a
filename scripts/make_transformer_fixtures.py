"""Write the project's whole-model fixtures, fixtures/transformer/<case>.{json,npz}, with
TransformerLens itself as the reference (SPEC.md, "Transformer"): the original cases, one case per
TransformerLens variant shaderlens implements (VARIANTS), and real models with a field shaderlens
refuses (REFUSED, written to tests/data/verify_bad/transformer/, where `verify` must give ERROR
naming the field). Every config is the whole ``cfg.to_dict()``, as
``json.dump(model.cfg.to_dict(), f, default=str)`` writes it.

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
* The float32 arrays are loaded into a float64 HookedTransformer built from the saved config
  alone, which is run with ``run_with_cache``; ``logits`` and every cache entry are saved as
  float64.
* Tokens are uniform in [0, d_vocab) from the same generator, then tokens[0, 0] = d_vocab - 1 and
  tokens[-1, -1] = 0, so both ends of the embedding table are used (``tiny`` has hand-picked
  tokens [[4, 2, 3, 0]]).
* Buffers (``attn.mask``, ``attn.IGNORE``, rotary tables) are not saved. TransformerLens 3.9
  writes -inf at masked attention scores itself; the writer checks this for causal models (and
  would convert a large negative).
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

# name -> (HookedTransformerConfig arguments, batch, seq). The config written is the whole
# cfg.to_dict() of a HookedTransformerConfig built from these (TransformerLens fills in the rest).
CASES: Dict[str, tuple] = {
    # Nanda et al.'s modular-addition ("grokking") model: no LayerNorm, d_vocab_out < d_vocab.
    "grokking": (dict(n_layers=1, d_model=128, n_heads=4, d_head=32, d_mlp=512, d_vocab=114,
                      d_vocab_out=113, n_ctx=3, act_fn="relu", normalization_type=None), 8, 3),
    # Othello-GPT-shaped (the real one has 8 layers, d_model 512): erf GELU, LN, full context.
    "othello_small": (dict(n_layers=2, d_model=128, n_heads=4, d_head=32, d_mlp=512, d_vocab=61,
                           d_vocab_out=61, n_ctx=59, act_fn="gelu", normalization_type="LN"), 2, 59),
    # Attention-only, LNPre (LayerNorm folded away: no ln weights at all). TransformerLens fills in
    # d_mlp = 4 d_model, which shaderlens ignores for attention-only models.
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

# The TransformerLens variants shaderlens implements: one small model each (docs/transformerlens.md).
_SMALL = dict(n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=64, d_vocab=20, d_vocab_out=20,
              n_ctx=12, act_fn="gelu", normalization_type="LN")
VARIANTS: Dict[str, tuple] = {
    # Scores not divided at all.
    "attn_scale_off": (dict(_SMALL, use_attn_scale=False), 2, 10),
    # Scores divided by a chosen attn_scale instead of sqrt(d_head).
    "attn_scale_custom": (dict(_SMALL, attn_scale=1.7), 2, 10),
    # Block l's scores divided by (l + 1) sqrt(d_head) (GPT-2 Mistral-style), three layers.
    "attn_scale_by_layer": (dict(_SMALL, n_layers=3, scale_attn_by_inverse_layer_idx=True), 2, 10),
    # No causal mask (BERT-style attention), sequence shorter than n_ctx.
    "bidirectional": (dict(_SMALL, attention_dir="bidirectional"), 2, 9),
    # The two other tanh GELUs TransformerLens knows.
    "gelu_fast": (dict(_SMALL, act_fn="gelu_fast"), 2, 10),
    "gelu_pytorch_tanh": (dict(_SMALL, act_fn="gelu_pytorch_tanh"), 2, 10),
    # Grouped-query attention with groups of one: plain attention, weights stored as _W_K, _W_V...
    "gqa_equal_heads": (dict(_SMALL, n_key_value_heads=4), 2, 10),
    # GPT-J-style blocks: the MLP reads ln2(resid_pre); no hook_resid_mid.
    "parallel_attn_mlp": (dict(_SMALL, parallel_attn_mlp=True), 2, 10),
    # Shaped like TransformerLens's own toy models (attn-only-2l, gelu-2l, solu-2l: Neel Nanda's
    # "neel" architecture), small and with random weights: shortformer positions (W_pos added to
    # the inputs of q and k only), SoLU followed by a LayerNorm over d_mlp.
    "toy_attn_only_2l": (dict(_SMALL, attn_only=True, positional_embedding_type="shortformer",
                              original_architecture="neel"), 2, 10),
    "toy_gelu_2l": (dict(_SMALL, positional_embedding_type="shortformer",
                         original_architecture="neel"), 2, 10),
    "toy_solu_2l": (dict(_SMALL, act_fn="solu_ln", original_architecture="neel"), 2, 10),
    # SoLU without its LayerNorm; solu_ln in an LNPre model (mlp.ln without weights) with a final
    # RMSPre norm (final_rms).
    "solu": (dict(_SMALL, act_fn="solu"), 2, 10),
    "solu_ln_lnpre_final_rms": (dict(_SMALL, act_fn="solu_ln", normalization_type="LNPre",
                                     final_rms=True), 2, 10),
    # RMS norms: with weights (no biases), without, and an LN model with a final RMS norm.
    "rms": (dict(_SMALL, normalization_type="RMS"), 2, 10),
    "rms_pre": (dict(_SMALL, normalization_type="RMSPre"), 2, 10),
    "final_rms": (dict(_SMALL, final_rms=True), 2, 10),
    # The optional hooks: per-head q/k/v inputs (ln1 per head), per-head results, hook_mlp_in,
    # hook_tokens; and hook_attn_in in an RMS model; hook_mlp_in in a parallel block.
    "optional_hooks_split": (dict(_SMALL, use_split_qkv_input=True, use_attn_result=True,
                                  use_hook_mlp_in=True, use_hook_tokens=True), 2, 10),
    "optional_hooks_attn_in": (dict(_SMALL, normalization_type="RMS", use_attn_in=True,
                                    use_attn_result=True), 2, 10),
    "mlp_in_parallel": (dict(_SMALL, parallel_attn_mlp=True, use_hook_mlp_in=True), 2, 10),
    # Shortformer positions on per-head inputs: repeated per head, added to q's and k's.
    "shortformer_split_qkv": (dict(_SMALL, positional_embedding_type="shortformer",
                                   use_split_qkv_input=True), 2, 10),
    # attn.hook_result asked for by name of a model without use_attn_result (see ON_REQUEST).
    "result_on_request": (dict(_SMALL), 2, 10),
}
# Cases whose saved config leaves use_attn_result off but whose cache also holds every
# attn.hook_result (made by the same model with use_attn_result on, which changes no other value):
# shaderlens produces the hook on request. Written to tests/data/on_request/transformer/ (not
# fixtures/, whose caches are the default ones), where tests/transformer_forms.rs runs verify.
ON_REQUEST = {"result_on_request"}

# Real TransformerLens models with a field shaderlens refuses: `verify` must give ERROR naming the
# field (tests/data/verify_bad/transformer/refused_<name>.*; MANIFEST.tsv names the field).
_TINY = dict(CASES["tiny"][0])
REFUSED: Dict[str, tuple] = {
    "refused_rotary": (dict(_TINY, positional_embedding_type="rotary"), 1, 4),
    "refused_qk_norm": (dict(_TINY, use_qk_norm=True), 1, 4),
    "refused_silu": (dict(_TINY, act_fn="silu"), 1, 4),
    "refused_alibi": (dict(_TINY, positional_embedding_type="alibi"), 1, 4),
    "refused_gated_mlp": (dict(_TINY, gated_mlp=True), 1, 4),
    "refused_gqa": (dict(_TINY, n_key_value_heads=1), 1, 4),
    "refused_logit_soft_cap": (dict(_TINY, output_logits_soft_cap=2.0), 1, 4),
}
# Cases whose tokens are fixed by hand rather than drawn (tiny's draw repeats one token).
FIXED_TOKENS = {"tiny": [[4, 2, 3, 0]]}


def saved_config(args: Dict[str, Any]) -> Dict[str, Any]:
    """The config as TransformerLens saves it: json.dump(cfg.to_dict(), default=str), read back."""
    cfg = tl_format.HookedTransformerConfig(**args, device="cpu")
    return tl_format.full_config(cfg)


def random_weights(config: Dict[str, Any], rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Float32 random weights for every parameter of a model with this config."""
    shapes = tl_format.weight_shapes(config)
    d_model, n_heads, d_head = config["d_model"], config["n_heads"], config["d_head"]
    out: Dict[str, np.ndarray] = {}
    for name in sorted(shapes):
        shape = shapes[name]
        leaf = name.rsplit(".", 1)[-1].lstrip("_")  # grouped-query attention stores _W_K, _b_K
        normal = rng.standard_normal(shape)
        if leaf == "W_E":
            a = normal
        elif leaf == "W_pos":
            a = 0.5 * normal
        elif leaf in ("W_Q", "W_K", "W_V", "W_in", "W_gate", "W_U"):
            a = normal / np.sqrt(d_model)
        elif leaf == "W_O":
            a = normal / np.sqrt(n_heads * d_head)
        elif leaf == "W_out":
            a = normal / np.sqrt(config["d_mlp"])
        elif leaf == "w":  # LayerNorm weight
            a = 1.0 + 0.1 * normal
        elif leaf == "b" or leaf.startswith("b_"):  # LayerNorm bias and every linear bias
            a = 0.1 * normal
        else:
            raise ValueError(f"no rule for parameter {name} {shape}")
        out[name] = np.ascontiguousarray(a.astype(np.float32))
    return out


def make_case(name: str, out_dir: str) -> None:
    args, batch, seq = {**CASES, **VARIANTS, **REFUSED}[name]
    config = saved_config(args)
    # A case's numbers depend only on SEED and its name, not on which other cases run.
    rng = np.random.default_rng([SEED, sum(name.encode()), len(name)])
    weights = random_weights(config, rng)
    tokens = rng.integers(0, config["d_vocab"], size=(batch, seq), dtype=np.int64)
    tokens[0, 0] = config["d_vocab"] - 1
    tokens[-1, -1] = 0
    if name in FIXED_TOKENS:
        tokens = np.array(FIXED_TOKENS[name], dtype=np.int64)
        assert tokens.shape == (batch, seq)
    notes: list = []
    expected = tl_format.expected_arrays(
        dict(config, use_attn_result=True) if name in ON_REQUEST else config, weights, tokens, notes)
    # The loaded float64 model must hold exactly the float32 values.
    check = tl_format.build_model(config)
    tl_format.load_weights(check, weights)
    for k, v in tl_format.weight_arrays(check, config).items():
        assert np.array_equal(v, weights[k]), k
    assert expected["logits"].shape == (batch, seq, config["d_vocab_out"])
    problems = tl_format.unsupported(config)
    assert bool(problems) == (name in REFUSED), (name, problems)
    arrays = {**weights, **expected}
    paths = tl_format.write_fixture(os.path.join(out_dir, name), config, arrays)
    sizes = ", ".join(f"{os.path.basename(p)} {os.path.getsize(p)} B" for p in paths)
    print(f"{name}: {len(weights)} weights, {len(list(tl_format.cache_keys(arrays)))} cache "
          f"entries; {sizes}")
    for n in notes + problems:
        print(f"  note: {n}")


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    every = {**CASES, **VARIANTS, **REFUSED}
    p.add_argument("cases", nargs="*", help=f"cases to write (default all: {', '.join(every)})")
    p.add_argument("--out", default=None,
                   help="output folder for every case (default fixtures/transformer, and "
                        "tests/data/verify_bad/transformer for the refused_* cases)")
    args = p.parse_args()
    for c in args.cases:
        if c not in every:
            p.error(f"unknown case {c!r}; cases: {', '.join(every)}")
    good = os.path.join(root, "fixtures", "transformer")
    bad = os.path.join(root, "tests", "data", "verify_bad", "transformer")
    on_request = os.path.join(root, "tests", "data", "on_request", "transformer")
    for c in args.cases or list(every):
        make_case(c, args.out or (bad if c in REFUSED else on_request if c in ON_REQUEST else good))
    return 0


if __name__ == "__main__":
    sys.exit(main())
