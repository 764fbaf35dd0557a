"""Shared code for writing shaderlens whole-model fixtures from TransformerLens.

Used by ``make_transformer_fixtures.py`` (the project's own fixtures, random weights) and
``export_transformerlens.py`` (a user's model). The format is the "Transformer" section of the
fixture contract (SPEC.md):

* ``<out>.json``: the config under TransformerLens field names, restricted to ``SPEC_KEYS``.
* ``<out>.npz``: float32 weights under TransformerLens state-dict names (the ``attn.mask`` and
  ``attn.IGNORE`` buffers are left out), and optionally ``tokens`` (int64 [B,S]), the expected
  ``logits`` (float64 [B,S,d_vocab_out]) and ``cache.<hook name>`` (float64) for every hook that
  ``HookedTransformer.run_with_cache`` returns by default.

The expected arrays are "the float64 result of the float32 inputs": the float32 weights are loaded
into a fresh float64 HookedTransformer built from the restricted config alone, which is then run on
the tokens. Building it from the restricted config is also the proof that the config says all there
is to say about the model.

Needs: numpy, torch, transformer-lens 3.x (4.x removed HookedTransformer). Tested with
transformer-lens 3.9.0, torch 2.15.0, numpy 2.4.6, Python 3.11.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import Any, Dict, Iterable, List, Mapping, Optional

import numpy as np
import torch

# "HookedTransformer is deprecated and will be removed in 4.0": we pin 3.x on purpose.
warnings.filterwarnings("ignore", message=".*HookedTransformer is deprecated.*")

from transformer_lens import HookedTransformer, HookedTransformerConfig  # noqa: E402

# The config keys of SPEC.md's "Transformer" section, in the order they are written.
SPEC_KEYS = (
    "n_layers",
    "d_model",
    "n_heads",
    "d_head",
    "d_mlp",
    "d_vocab",
    "d_vocab_out",
    "n_ctx",
    "act_fn",
    "normalization_type",
    "attn_only",
    "eps",
    "positional_embedding_type",
)

# TransformerLens act_fn -> the SPEC name. gelu_pytorch_tanh and gelu_fast are the same function as
# gelu_new (the tanh approximation), written differently; the exporter's check confirms it.
ACT_FNS = {
    "relu": "relu",
    "gelu": "gelu",
    "gelu_new": "gelu_new",
    "gelu_pytorch_tanh": "gelu_new",
    "gelu_fast": "gelu_new",
}
NORMALIZATION_TYPES = ("LN", "LNPre", None)

# Buffers in the state dict that are not weights (SPEC: "may be present and are ignored").
BUFFER_SUFFIXES = ("attn.mask", "attn.IGNORE")


class UnsupportedModel(ValueError):
    """The model uses something that the fixture format (SPEC.md) cannot express."""


def is_buffer_key(name: str) -> bool:
    return name.endswith(BUFFER_SUFFIXES)


def _get(cfg: Any, name: str, default: Any = None) -> Any:
    return getattr(cfg, name, default)


def spec_config(cfg: HookedTransformerConfig) -> Dict[str, Any]:
    """The SPEC config of a TransformerLens config, or UnsupportedModel naming every problem."""
    problems: List[str] = []

    def bad(cond: bool, msg: str) -> None:
        if cond:
            problems.append(msg)

    pos = _get(cfg, "positional_embedding_type", "standard")
    bad(pos != "standard", f"positional_embedding_type is {pos!r}; only 'standard' (learned absolute "
        "W_pos) is supported (no rotary, shortformer, alibi or relative position bias)")
    norm = _get(cfg, "normalization_type", "LN")
    bad(norm not in NORMALIZATION_TYPES, f"normalization_type is {norm!r}; only 'LN', 'LNPre' or "
        "None are supported (no RMS / RMSPre)")
    bad(bool(_get(cfg, "final_rms")), "final_rms is set (RMS final norm is not supported)")
    bad(bool(_get(cfg, "uses_rms_norm")), "uses_rms_norm is set (RMS norm is not supported)")
    act = _get(cfg, "act_fn")
    attn_only = bool(_get(cfg, "attn_only", False))
    if not attn_only:
        bad(act not in ACT_FNS, f"act_fn is {act!r}; only {sorted(ACT_FNS)} are supported "
            "(no SoLU, SiLU, *_ln activations)")
    bad(bool(_get(cfg, "parallel_attn_mlp")), "parallel_attn_mlp is set (GPT-J/NeoX-style parallel "
        "attention and MLP are not supported)")
    bad(bool(_get(cfg, "gated_mlp")), "gated_mlp is set (gated MLPs are not supported)")
    bad(_get(cfg, "num_experts") not in (None, 0), "num_experts is set (mixture of experts is not "
        "supported)")
    nkv = _get(cfg, "n_key_value_heads")
    bad(nkv is not None, f"n_key_value_heads is {nkv} (grouped-query attention is not supported)")
    bad(_get(cfg, "attention_dir", "causal") != "causal", "attention_dir is not 'causal'")
    bad(bool(_get(cfg, "use_local_attn")) or _get(cfg, "attn_types") is not None
        or _get(cfg, "window_size") is not None, "local / sliding-window attention is not supported")
    d_head = _get(cfg, "d_head")
    if not _get(cfg, "use_attn_scale", True):
        problems.append("use_attn_scale is False; the scale must be 1/sqrt(d_head)")
    else:
        scale = _get(cfg, "attn_scale", -1.0)
        bad(scale not in (-1.0, None) and not math.isclose(float(scale), math.sqrt(d_head),
                                                           rel_tol=1e-12),
            f"attn_scale is {scale}; only sqrt(d_head) = {math.sqrt(d_head)} is supported")
    bad(bool(_get(cfg, "scale_attn_by_inverse_layer_idx")), "scale_attn_by_inverse_layer_idx is set")
    bad(bool(_get(cfg, "post_embedding_ln")), "post_embedding_ln is set")
    bad(bool(_get(cfg, "use_normalization_before_and_after")),
        "use_normalization_before_and_after is set (post-norms are not supported)")
    bad(bool(_get(cfg, "use_qk_norm")), "use_qk_norm is set")
    bad(_get(cfg, "clip_qkv") is not None, "clip_qkv is set")
    bad(bool(_get(cfg, "use_logn_attn")), "use_logn_attn is set")
    bad(bool(_get(cfg, "use_attention_sinks")), "use_attention_sinks is set")
    for cap in ("attn_scores_soft_cap", "output_logits_soft_cap"):
        v = _get(cfg, cap, -1.0)
        bad(v is not None and float(v) > 0, f"{cap} is {v} (soft-capping is not supported)")
    bad(bool(_get(cfg, "load_in_4bit")) or _get(cfg, "quantization_method") is not None,
        "the model is quantized")
    arch = _get(cfg, "original_architecture")
    bad(arch in ("OlmoeForCausalLM", "Olmo2ForCausalLM", "Olmo3ForCausalLM"),
        f"original_architecture {arch} applies QK-norm / post-norm")
    if problems:
        raise UnsupportedModel(
            "this model cannot be written as a shaderlens fixture (see SPEC.md, Transformer):\n  - "
            + "\n  - ".join(problems))

    d_vocab = int(cfg.d_vocab)
    d_vocab_out = int(_get(cfg, "d_vocab_out", -1))
    if d_vocab_out == -1:
        d_vocab_out = d_vocab
    return {
        "n_layers": int(cfg.n_layers),
        "d_model": int(cfg.d_model),
        "n_heads": int(cfg.n_heads),
        "d_head": int(cfg.d_head),
        # TL fills d_mlp = 4 d_model even for attn_only models; SPEC says nothing uses it there.
        "d_mlp": None if attn_only else int(cfg.d_mlp),
        "d_vocab": d_vocab,
        "d_vocab_out": d_vocab_out,
        "n_ctx": int(cfg.n_ctx),
        "act_fn": ACT_FNS.get(act, act) if not attn_only else (ACT_FNS.get(act, "relu")),
        "normalization_type": norm,
        "attn_only": attn_only,
        "eps": float(cfg.eps),
        "positional_embedding_type": "standard",
    }


def build_model(spec: Mapping[str, Any], dtype: torch.dtype = torch.float64) -> HookedTransformer:
    """A HookedTransformer on the CPU built from the SPEC config alone (weights uninitialised)."""
    unknown = set(spec) - set(SPEC_KEYS)
    if unknown:
        raise ValueError(f"not SPEC config keys: {sorted(unknown)}")
    kwargs = dict(spec)
    if kwargs.get("attn_only"):
        kwargs["d_mlp"] = None
    cfg = HookedTransformerConfig(**kwargs, dtype=dtype, device="cpu", init_weights=False)
    model = HookedTransformer(cfg, move_to_device=False)
    model.eval()
    return model


def weight_shapes(spec: Mapping[str, Any]) -> Dict[str, tuple]:
    """State-dict name -> shape of every weight (no buffers) of a model with this SPEC config."""
    model = build_model(spec, dtype=torch.float32)
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not is_buffer_key(k)}


def weight_arrays(model: HookedTransformer, spec: Optional[Mapping[str, Any]] = None
                  ) -> Dict[str, np.ndarray]:
    """The model's weights as float32 C-order arrays under their state-dict names.

    When ``spec`` is given, the names and shapes must be exactly those of a model built from
    ``spec``; an extra parameter means the model has something the SPEC config cannot express."""
    out: Dict[str, np.ndarray] = {}
    for name, t in model.state_dict().items():
        if is_buffer_key(name):
            continue
        out[name] = np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())
    if spec is not None:
        want = weight_shapes(spec)
        extra = sorted(set(out) - set(want))
        missing = sorted(set(want) - set(out))
        wrong = sorted(k for k in set(out) & set(want) if out[k].shape != want[k])
        if extra or missing or wrong:
            msg = ["the model's state dict does not match its SPEC config:"]
            if extra:
                msg.append(f"  parameters SPEC does not know: {extra}")
            if missing:
                msg.append(f"  missing parameters: {missing}")
            for k in wrong:
                msg.append(f"  {k}: shape {out[k].shape}, SPEC config gives {want[k]}")
            raise UnsupportedModel("\n".join(msg))
    return out


def load_weights(model: HookedTransformer, weights: Mapping[str, np.ndarray]) -> None:
    """Copy float32 arrays into the model's parameters (converted to the model's dtype)."""
    dtype = model.cfg.dtype
    state = {k: torch.from_numpy(np.asarray(v)).to(dtype) for k, v in weights.items()}
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not is_buffer_key(k)]
    if missing or result.unexpected_keys:
        raise ValueError(f"weights do not fit the model: missing {missing}, "
                         f"unexpected {list(result.unexpected_keys)}")


def causal_mask(q_len: int, k_len: int) -> np.ndarray:
    """True where query i may see key j (SPEC: bottom-right aligned)."""
    i = np.arange(q_len)[:, None]
    j = np.arange(k_len)[None, :]
    return j <= i + (k_len - q_len)


def expected_arrays(spec: Mapping[str, Any], weights: Mapping[str, np.ndarray],
                    tokens: np.ndarray, notes: Optional[List[str]] = None
                    ) -> Dict[str, np.ndarray]:
    """``tokens``, float64 ``logits`` and ``cache.<hook>`` for every default run_with_cache hook,
    from a float64 model built from ``spec`` holding the float32 ``weights``."""
    tokens = np.ascontiguousarray(np.asarray(tokens, dtype=np.int64))
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be [B, S], got shape {tokens.shape}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= spec["d_vocab"]):
        raise ValueError(f"tokens must lie in [0, {spec['d_vocab']})")
    if tokens.shape[1] > spec["n_ctx"]:
        raise ValueError(f"sequence length {tokens.shape[1]} exceeds n_ctx {spec['n_ctx']}")
    model = build_model(spec, dtype=torch.float64)
    load_weights(model, weights)
    with torch.no_grad():
        logits, cache = model.run_with_cache(torch.from_numpy(tokens))
    out: Dict[str, np.ndarray] = {"tokens": tokens,
                                  "logits": logits.detach().to(torch.float64).numpy().copy()}
    for name, t in cache.items():
        a = t.detach().to(torch.float64).numpy().copy()
        if name.endswith("attn.hook_attn_scores"):
            a = _masked_to_neg_inf(name, a, notes)
        out[f"cache.{name}"] = a
    return out


def _masked_to_neg_inf(name: str, a: np.ndarray, notes: Optional[List[str]]) -> np.ndarray:
    """SPEC wants -inf at masked attention scores. TL 3.x writes -inf already (its IGNORE buffer
    is -inf); older TL used -1e5. Convert the latter, and check that nothing else is infinite."""
    mask = causal_mask(a.shape[-2], a.shape[-1])
    masked = a[..., ~mask]
    if not np.all(np.isneginf(masked)):
        if np.all(masked <= -1e4):
            a = a.copy()
            a[..., ~mask] = -np.inf
            if notes is not None:
                notes.append(f"{name}: masked scores were finite ({masked.max():g}); set to -inf")
        else:
            raise ValueError(f"{name}: masked attention scores are not -inf and not large negative")
    if not np.all(np.isfinite(a[..., mask])):
        raise ValueError(f"{name}: a visible attention score is not finite")
    return a


def write_fixture(out_prefix: str, spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
                  ) -> List[str]:
    """Write ``<out_prefix>.json`` and ``<out_prefix>.npz`` (compressed); return their paths."""
    config = {k: spec[k] for k in SPEC_KEYS}
    for k, v in arrays.items():
        if k == "tokens":
            assert v.dtype == np.int64, k
        elif k == "logits" or k.startswith("cache."):
            assert v.dtype == np.float64, k
        else:
            assert v.dtype == np.float32, k
    d = os.path.dirname(out_prefix)
    if d:
        os.makedirs(d, exist_ok=True)
    json_path, npz_path = out_prefix + ".json", out_prefix + ".npz"
    with open(json_path, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    np.savez_compressed(npz_path, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    return [json_path, npz_path]


def cache_keys(arrays: Mapping[str, np.ndarray]) -> Iterable[str]:
    return [k for k in arrays if k.startswith("cache.")]
