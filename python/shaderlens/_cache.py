"""`Cache`: the activations of a `run_with_cache`, a dict from TransformerLens hook names to numpy
arrays in forward order, that TransformerLens's `ActivationCache` can wrap (`to_transformer_lens`)
so that `accumulated_resid`, `decompose_resid` and `logit_attrs` work on it.
"""

from __future__ import annotations

# TransformerLens's short names (`utils.get_act_name`) for the hooks shaderlens has.
_BLOCK = {"resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"}
_ATTN = {**{n: n for n in ("q", "k", "v", "z", "pattern", "attn_scores")}, "attn": "pattern", "scores": "attn_scores"}
_MLP = {"pre": "pre", "post": "post", "mlp_pre": "pre", "mlp_post": "post"}


def act_name(name: str, layer=None, layer_type=None) -> str:
    """The full hook name for a short one, as TransformerLens's `utils.get_act_name`:
    ``act_name("pattern", 0)`` is ``blocks.0.attn.hook_pattern``."""
    if "." in name or name.startswith("hook_"):
        return name
    if layer is None:
        return {"embed": "hook_embed", "pos_embed": "hook_pos_embed"}.get(name, name)
    prefix = f"blocks.{layer}"
    if name in _BLOCK:
        return f"{prefix}.hook_{name}"
    if name in _ATTN:
        return f"{prefix}.attn.hook_{_ATTN[name]}"
    if name in _MLP:
        return f"{prefix}.mlp.hook_{_MLP[name]}"
    if name in ("scale", "normalized"):
        return f"{prefix}.{layer_type or 'ln1'}.hook_{name}"
    return f"{prefix}.{name}"


class Cache(dict):
    """Hook name -> activation (float32 numpy array with the batch axis), in forward order.

    ``cache["pattern", 0]`` works as in TransformerLens. `to_transformer_lens()` wraps the arrays
    (shared with torch, not copied) in TransformerLens's own `ActivationCache`."""

    def __init__(self, entries, model=None):
        super().__init__(entries)
        self._model = model

    def __getitem__(self, key):
        return super().__getitem__(self._full(key))

    def __contains__(self, key):
        return super().__contains__(self._full(key))

    def _full(self, key):
        """A short name (a tuple, or a string like ``"embed"``) as its full hook name."""
        if isinstance(key, tuple):
            return act_name(*key)
        if isinstance(key, str) and not super().__contains__(key):
            return act_name(key)
        return key

    def to_transformer_lens(self, model=None):
        """TransformerLens's `ActivationCache` over these arrays (torch shares their memory). It
        needs the `HookedTransformer` for `accumulated_resid(apply_ln=True)`, `logit_attrs`, ...:
        pass it, or build the shaderlens model with `Model.from_transformer_lens`."""
        import torch
        from transformer_lens import ActivationCache

        model = model if model is not None else getattr(self._model, "_tl_model", None)
        if model is None:
            raise ValueError(
                "to_transformer_lens needs the HookedTransformer: pass it, or load the shaderlens model "
                "with Model.from_transformer_lens"
            )
        device = getattr(model.cfg, "device", None) or "cpu"
        return ActivationCache({k: torch.from_numpy(v).to(device) for k, v in self.items()}, model)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {list(v.shape)}" for k, v in self.items())
        return f"Cache({{{shapes}}})"


__all__ = ["Cache", "act_name"]
