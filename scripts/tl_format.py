"""Shared code for writing shaderlens whole-model fixtures from TransformerLens.

Used by ``make_transformer_fixtures.py`` (the project's own fixtures, random weights) and
``export_transformerlens.py`` (a user's model). The format is the "Transformer" section of the
fixture contract (SPEC.md):

* ``<out>.json``: the model's whole ``HookedTransformerConfig``, as
  ``json.dump(model.cfg.to_dict(), f, default=str)`` writes it (SPEC's keys are among its fields;
  shaderlens ignores the fields that cannot change the forward pass, and reads or refuses by name
  those that can).
* ``<out>.npz``: float32 weights under TransformerLens state-dict names (the model's parameters;
  buffers such as ``attn.mask`` and ``attn.IGNORE`` are left out), and optionally ``tokens`` (int64
  [B,S]), the expected ``logits`` (float64 [B,S,d_vocab_out]) and ``cache.<hook name>`` (float64)
  for every hook that ``HookedTransformer.run_with_cache`` returns by default.

The expected arrays are "the float64 result of the float32 inputs": the float32 weights are loaded
into a fresh float64 HookedTransformer built from the written config alone, which is then run on
the tokens. Building it from the written config is also the proof that the config says all there
is to say about the model.

Needs: numpy, torch, transformer-lens 3.x (4.x removed HookedTransformer). Tested with
transformer-lens 3.9.0, torch 2.15.0, numpy 2.4.6, Python 3.11.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from typing import Any, Dict, Iterable, List, Mapping, Optional

import numpy as np
import torch

# "HookedTransformer is deprecated and will be removed in 4.0": we pin 3.x on purpose.
warnings.filterwarnings("ignore", message=".*HookedTransformer is deprecated.*")

from transformer_lens import HookedTransformer, HookedTransformerConfig  # noqa: E402

# The config keys of SPEC.md's "Transformer" section (all of them are HookedTransformerConfig fields).
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

# The act_fn values shaderlens implements (docs/transformerlens.md).
ACT_FNS = ("relu", "gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "solu", "solu_ln")
NORMALIZATION_TYPES = ("LN", "LNPre", "RMS", "RMSPre", None)
POSITIONAL_EMBEDDING_TYPES = ("standard", "shortformer")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16}

# Boolean switches that change the forward pass (or add hooks) and that shaderlens refuses when on.
REFUSED_SWITCHES = (
    "use_qk_norm", "use_logn_attn", "use_local_attn", "post_embedding_ln",
    "load_in_4bit", "use_normalization_before_and_after", "use_attention_sinks",
)
OLMO = ("OlmoeForCausalLM", "Olmo2ForCausalLM", "Olmo3ForCausalLM")


class UnsupportedModel(ValueError):
    """The model uses something that shaderlens refuses (docs/transformerlens.md)."""


def is_buffer_key(name: str) -> bool:
    """Whether a state-dict key is a buffer, not a parameter (attn.mask, attn.IGNORE, rotary...)."""
    return name.endswith(("attn.mask", "attn.IGNORE", "rotary_sin", "rotary_cos"))


def full_config(cfg: HookedTransformerConfig) -> Dict[str, Any]:
    """``cfg.to_dict()`` exactly as ``json.dump(..., default=str)`` writes it, read back."""
    return json.loads(json.dumps(cfg.to_dict(), default=str))


def unsupported(config: Mapping[str, Any]) -> List[str]:
    """What in a saved config shaderlens refuses (empty when it runs the model exactly); the same
    rules as src/transformer/config.rs, for an early message from the exporter."""
    problems: List[str] = []

    def bad(cond: bool, msg: str) -> None:
        if cond:
            problems.append(msg)

    c = config.get
    attn_only = bool(c("attn_only", False))
    pos = c("positional_embedding_type", "standard")
    bad(pos not in POSITIONAL_EMBEDDING_TYPES,
        f"positional_embedding_type is {pos!r} ({POSITIONAL_EMBEDDING_TYPES})")
    norm = c("normalization_type", "LN")
    bad(norm not in NORMALIZATION_TYPES, f"normalization_type is {norm!r} ({NORMALIZATION_TYPES})")
    bad(not attn_only and c("act_fn") not in ACT_FNS, f"act_fn is {c('act_fn')!r} (one of {ACT_FNS})")
    for k in REFUSED_SWITCHES:
        bad(bool(c(k, False)), f"{k} is set")
    bad(not attn_only and bool(c("gated_mlp", False)), "gated_mlp is set")
    bad(attn_only and bool(c("parallel_attn_mlp", False)), "parallel_attn_mlp with attn_only")
    for k in ("num_experts", "experts_per_token"):
        bad(not attn_only and c(k) is not None, f"{k} is {c(k)} (mixture of experts)")
    bad(c("n_key_value_heads") not in (None, c("n_heads")),
        f"n_key_value_heads is {c('n_key_value_heads')} (grouped-query attention)")
    bad(c("clip_qkv") is not None, f"clip_qkv is {c('clip_qkv')}")
    for cap in ("attn_scores_soft_cap", "output_logits_soft_cap"):
        v = c(cap)
        bad(v is not None and float(v) > 0, f"{cap} is {v}")
    bad(c("attention_dir", "causal") not in ("causal", "bidirectional"),
        f"attention_dir is {c('attention_dir')!r}")
    bad(c("original_architecture") in OLMO, f"original_architecture is {c('original_architecture')}")
    return problems


def config_from_saved(saved: Mapping[str, Any], dtype: Optional[torch.dtype] = None
                      ) -> HookedTransformerConfig:
    """A CPU HookedTransformerConfig from a saved config (full to_dict() or SPEC's keys alone), in
    ``dtype`` (default: the saved one), with no tokenizer download and no weight initialisation."""
    fields = {f.name for f in dataclasses.fields(HookedTransformerConfig)}
    unknown = sorted(set(saved) - fields)
    if unknown:
        raise ValueError(f"not HookedTransformerConfig fields: {unknown}")
    kwargs = dict(saved)
    if dtype is None:
        name = str(kwargs.get("dtype", "torch.float32")).replace("torch.", "")
        if name not in DTYPES:
            raise ValueError(f"unknown dtype {kwargs.get('dtype')!r}")
        dtype = DTYPES[name]
    kwargs.update(dtype=dtype, device="cpu", tokenizer_name=None, init_weights=False)
    kwargs.pop("n_params", None)  # derived
    if kwargs.get("attn_only") and kwargs.get("d_mlp") is None:
        kwargs.pop("d_mlp", None)
    return HookedTransformerConfig(**kwargs)


def build_model(config: Mapping[str, Any], dtype: torch.dtype = torch.float64) -> HookedTransformer:
    """A HookedTransformer on the CPU built from a saved config alone (weights uninitialised)."""
    model = HookedTransformer(config_from_saved(config, dtype), move_to_device=False)
    model.eval()
    return model


def weight_shapes(config: Mapping[str, Any]) -> Dict[str, tuple]:
    """State-dict name -> shape of every parameter (no buffers) of a model with this config."""
    model = build_model(config, dtype=torch.float32)
    return {k: tuple(v.shape) for k, v in model.named_parameters()}


def weight_arrays(model: HookedTransformer, config: Optional[Mapping[str, Any]] = None
                  ) -> Dict[str, np.ndarray]:
    """The model's parameters as float32 C-order arrays under their state-dict names.

    When ``config`` is given, the names and shapes must be exactly those of a model built from
    it; anything else means the config does not describe the model."""
    out: Dict[str, np.ndarray] = {}
    for name, t in model.state_dict().items():
        if is_buffer_key(name):
            continue
        out[name] = np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())
    if config is not None:
        want = weight_shapes(config)
        extra = sorted(set(out) - set(want))
        missing = sorted(set(want) - set(out))
        wrong = sorted(k for k in set(out) & set(want) if out[k].shape != want[k])
        if extra or missing or wrong:
            msg = ["the model's state dict does not match its saved config:"]
            if extra:
                msg.append(f"  parameters the config does not give: {extra}")
            if missing:
                msg.append(f"  missing parameters: {missing}")
            for k in wrong:
                msg.append(f"  {k}: shape {out[k].shape}, the config gives {want[k]}")
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
    from a float64 model built from the saved config ``spec`` holding the float32 ``weights``."""
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
        if name.endswith("attn.hook_attn_scores") and spec.get("attention_dir", "causal") == "causal":
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


def write_fixture(out_prefix: str, config: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
                  ) -> List[str]:
    """Write ``<out_prefix>.json`` (the saved config, as given) and ``<out_prefix>.npz``
    (compressed); return their paths."""
    missing = [k for k in SPEC_KEYS if k not in config]
    assert not missing, f"the config lacks SPEC keys {missing}"
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
        json.dump(dict(config), f, indent=2, default=str)
        f.write("\n")
    np.savez_compressed(npz_path, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    return [json_path, npz_path]


def cache_keys(arrays: Mapping[str, np.ndarray]) -> Iterable[str]:
    return [k for k in arrays if k.startswith("cache.")]
