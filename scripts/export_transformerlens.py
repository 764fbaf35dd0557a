"""Export a TransformerLens HookedTransformer as a shaderlens model (SPEC.md, "Transformer").

Writes ``<out>.json`` (the model's whole config, as ``json.dump(model.cfg.to_dict(), f,
default=str)`` writes it; docs/transformerlens.md says what shaderlens does with each field) and
``<out>.npz`` (the weights as float32 under their TransformerLens state-dict names). With ``--tokens`` (or
``--random-tokens``) the npz also gets ``tokens`` and the expected float64 ``logits`` and
``cache.<hook>`` for every hook that ``run_with_cache`` returns, so the pair is a complete fixture
for ``cargo run --release -- verify <out>.npz`` (put it in a folder named ``transformer``).

Setup:

    python3 -m venv tlenv
    tlenv/bin/pip install numpy torch transformer-lens==3.9.0     # 4.x dropped HookedTransformer

Use:

    # a state dict saved with torch.save(model.state_dict(), "model.pt") and the config it was
    # built from, as JSON under TransformerLens field names (e.g. json.dump(cfg.to_dict(), f,
    # default=str), or SPEC's keys alone)
    tlenv/bin/python scripts/export_transformerlens.py --checkpoint model.pt --config cfg.json \\
        --out out/transformer/mymodel --tokens tokens.npy

    # a model TransformerLens can download (needs internet and the HuggingFace hub)
    tlenv/bin/python scripts/export_transformerlens.py --pretrained gpt2 --out out/transformer/gpt2 \\
        --random-tokens 1x16

``--tokens`` takes a .npy of integer token ids, [B, S] or [S]. The expected outputs are computed by
TransformerLens in float64 from the float32 weights (a fresh model built from the written config);
unless ``--no-check`` is given, the original model is also run on the tokens in its own dtype and
its logits must agree with them to SPEC's transformer tolerance (1e-4 + 1e-3 |want|), which proves
that the written config describes the model.

Models with a field that shaderlens refuses (rotary / other positional embeddings, RMS norm,
parallel attention + MLP, grouped-query attention, gated MLPs, MoE, SoLU and other activations,
local attention, soft-capping, the optional hooks, ...; docs/transformerlens.md) are refused with a
message listing every problem; the exit status is then 2. ``from_pretrained`` folds LayerNorm weights by default,
which turns LN into LNPre (supported); ``--no-processing`` uses ``from_pretrained_no_processing``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict

import numpy as np
import torch

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tl_format  # noqa: E402
from tl_format import HookedTransformer, HookedTransformerConfig  # noqa: E402

def config_from_json(path: str) -> HookedTransformerConfig:
    with open(path) as f:
        raw: Dict[str, Any] = json.load(f)
    if not isinstance(raw, dict):
        raise SystemExit(f"{path}: expected a JSON object of TransformerLens config fields")
    try:
        return tl_format.config_from_saved(raw)
    except (TypeError, ValueError, AssertionError) as e:
        raise SystemExit(f"{path}: not a valid HookedTransformerConfig: {e}")


def load_checkpoint(path: str) -> Dict[str, torch.Tensor]:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SystemExit(f"{path}: expected a state dict (name -> tensor), or a dict holding one "
                         "under 'state_dict', 'model_state_dict' or 'model'")
    return obj


def model_from_checkpoint(ckpt: str, config: str) -> HookedTransformer:
    cfg = config_from_json(config)
    cfg.init_weights = False
    model = HookedTransformer(cfg, move_to_device=False)
    state = load_checkpoint(ckpt)
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not tl_format.is_buffer_key(k)]
    if missing or result.unexpected_keys:
        raise SystemExit(f"{ckpt} does not fit the config {config}:\n"
                         f"  missing: {missing}\n  unexpected: {list(result.unexpected_keys)}")
    return model


def model_from_pretrained(name: str, no_processing: bool) -> HookedTransformer:
    load = (HookedTransformer.from_pretrained_no_processing if no_processing
            else HookedTransformer.from_pretrained)
    return load(name, device="cpu")


def read_tokens(args: argparse.Namespace, spec: Dict[str, Any]) -> np.ndarray:
    if args.tokens:
        t = np.load(args.tokens)
        if not np.issubdtype(t.dtype, np.integer):
            raise SystemExit(f"{args.tokens}: token ids must be integers, got {t.dtype}")
        if t.ndim == 1:
            t = t[None, :]
        if t.ndim != 2:
            raise SystemExit(f"{args.tokens}: tokens must be [B, S] or [S], got {t.shape}")
    else:
        try:
            b, s = (int(x) for x in args.random_tokens.lower().split("x"))
        except ValueError:
            raise SystemExit(f"--random-tokens wants BxS, e.g. 2x16, not {args.random_tokens!r}")
        t = np.random.default_rng(args.seed).integers(0, spec["d_vocab"], size=(b, s))
    t = t.astype(np.int64)
    if t.size and (t.min() < 0 or t.max() >= spec["d_vocab"]):
        raise SystemExit(f"token ids must lie in [0, {spec['d_vocab']}), got "
                         f"[{t.min()}, {t.max()}]")
    if t.shape[1] > spec["n_ctx"] or t.shape[1] == 0:
        raise SystemExit(f"sequence length {t.shape[1]} must be in [1, n_ctx = {spec['n_ctx']}]")
    return t


def check_against_original(model: HookedTransformer, tokens: np.ndarray,
                           want: np.ndarray) -> float:
    """Run the original model in its own dtype; return the worst error ratio against ``want``."""
    model.eval()
    with torch.no_grad():
        got = model(torch.from_numpy(tokens).to(model.cfg.device), return_type="logits")
    got = got.detach().to("cpu", torch.float64).numpy()
    if got.shape != want.shape:
        raise SystemExit(f"the original model's logits have shape {got.shape}, the rebuilt "
                         f"model's {want.shape}")
    return float((np.abs(got - want) / (1e-4 + 1e-3 * np.abs(want))).max())


def main() -> int:
    p = argparse.ArgumentParser(
        description="Export a TransformerLens HookedTransformer for shaderlens (see SPEC.md).",
        epilog="Exit status: 0 written, 2 refused or bad input, 1 the rebuilt model disagrees "
               "with the original.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="torch .pt file holding a HookedTransformer state dict "
                     "(needs --config)")
    src.add_argument("--pretrained", metavar="NAME",
                     help="HookedTransformer.from_pretrained(NAME) (downloads from the hub)")
    p.add_argument("--config", help="JSON config under TransformerLens field names (with "
                   "--checkpoint)")
    p.add_argument("--no-processing", action="store_true",
                   help="with --pretrained: use from_pretrained_no_processing (keep LN weights)")
    p.add_argument("--out", required=True, help="output prefix: writes OUT.json and OUT.npz")
    toks = p.add_mutually_exclusive_group()
    toks.add_argument("--tokens", help=".npy of token ids [B,S] or [S]: also write tokens, "
                      "logits and cache.* (a full verify fixture)")
    toks.add_argument("--random-tokens", metavar="BxS",
                      help="like --tokens with uniform random ids, e.g. 2x16")
    p.add_argument("--seed", type=int, default=0, help="seed for --random-tokens (default 0)")
    p.add_argument("--no-check", action="store_true",
                   help="skip comparing the original model's logits with the rebuilt model's")
    args = p.parse_args()
    if args.checkpoint and not args.config:
        p.error("--checkpoint needs --config")
    if args.pretrained and args.config:
        p.error("--config goes with --checkpoint, not --pretrained")

    if args.checkpoint:
        model = model_from_checkpoint(args.checkpoint, args.config)
    else:
        model = model_from_pretrained(args.pretrained, args.no_processing)

    spec = tl_format.full_config(model.cfg)
    spec["device"] = "cpu"  # where the expected values were computed
    problems = tl_format.unsupported(spec)
    if problems:
        print("error: shaderlens refuses this model (docs/transformerlens.md):\n  - "
              + "\n  - ".join(problems), file=sys.stderr)
        return 2
    try:
        weights = tl_format.weight_arrays(model, spec)
    except tl_format.UnsupportedModel as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    arrays: Dict[str, np.ndarray] = dict(weights)
    status = 0
    if args.tokens or args.random_tokens:
        tokens = read_tokens(args, spec)
        notes: list = []
        expected = tl_format.expected_arrays(spec, weights, tokens, notes)
        for n in notes:
            print(f"note: {n}", file=sys.stderr)
        arrays.update(expected)
        if not args.no_check:
            ratio = check_against_original(model, tokens, expected["logits"])
            print(f"check: original model ({model.cfg.dtype}) vs float64 rebuild from the written "
                  f"config: logits error ratio {ratio:.3g} (must be <= 1)")
            if not ratio <= 1.0:
                print("error: the written config and weights do not reproduce the original model; "
                      "it probably uses a feature this exporter does not detect. Files are written "
                      "for inspection, but do not trust them.", file=sys.stderr)
                status = 1

    paths = tl_format.write_fixture(args.out, spec, arrays)
    n_cache = len(list(tl_format.cache_keys(arrays)))
    print(f"wrote {paths[0]} and {paths[1]} ({len(weights)} weights"
          + (f", tokens {list(arrays['tokens'].shape)}, logits, {n_cache} cache entries"
             if "tokens" in arrays else "") + ")")
    return status


if __name__ == "__main__":
    sys.exit(main())
