"""`Model`: a TransformerLens `HookedTransformer` forward pass on the GPU, called the way
TransformerLens is called (`run_with_cache`, `run_with_hooks`, `names_filter`, `fwd_hooks`), with
numpy arrays in and out.

Tokens may be 1-D (one sequence) or 2-D ``[batch, positions]`` of any integer dtype; outputs always
keep the batch axis, as TransformerLens's do. The logits and every cached activation are the
arrays the GPU read back, handed to numpy without a further copy.
"""

from __future__ import annotations

import itertools
import json
from typing import Mapping, Optional

import numpy as np

from . import _hooks
from ._cache import Cache
from ._shaderlens import InputError
from ._shaderlens import Model as _NativeModel

def as_tokens(tokens) -> np.ndarray:
    """Tokens as int64 ``[batch, positions]`` (a 1-D sequence gets a batch axis of 1)."""
    array = np.asarray(tokens)
    if array.dtype.kind not in "iu":
        raise InputError(f"tokens must be integers (any numpy integer dtype) but are {array.dtype}")
    if array.ndim == 1:
        array = array[None, :]
    elif array.ndim != 2:
        raise InputError(f"tokens must be 1-D [positions] or 2-D [batch, positions] but have shape {list(array.shape)}")
    if array.dtype == np.uint64 and array.size and int(array.max()) > np.iinfo(np.int64).max:
        raise InputError(f"token {int(array.max())} is out of range for this model")
    return array.astype(np.int64, copy=False)


class Model:
    """A model on the GPU. Build it with `from_files`, `from_arrays` or `from_transformer_lens`."""

    def __init__(self, native: _NativeModel, transformer_lens_model=None):
        self._native = native
        self._tl_model = transformer_lens_model
        self._hook_lists = {}

    @classmethod
    def from_files(cls, config, weights) -> "Model":
        """A config JSON and a weights npz, as `scripts/export_transformerlens.py` writes them."""
        return cls(_NativeModel.from_files(str(config), str(weights)))

    @classmethod
    def from_arrays(cls, config, weights: Mapping[str, np.ndarray]) -> "Model":
        """A config (a dict under TransformerLens's field names, or its JSON text) and weights under
        state-dict names (converted to float32)."""
        if not isinstance(config, str):
            config = json.dumps(dict(config), default=str)
        if not isinstance(weights, Mapping):
            raise InputError(f"weights must be a mapping from state-dict names to arrays, not {type(weights).__name__}")
        arrays = {}
        for name, value in weights.items():
            array = np.asarray(value)
            if array.dtype.kind not in "fiub":  # bool: TransformerLens's attn.mask buffers
                raise InputError(f"weight {name} must hold real numbers, not {array.dtype}")
            arrays[name] = array.astype(np.float32, copy=False)
        return cls(_NativeModel.from_arrays(config, arrays))

    @classmethod
    def from_transformer_lens(cls, model) -> "Model":
        """A live TransformerLens `HookedTransformer`: its `cfg.to_dict()` and `state_dict()`, with no
        file in between. A config the Rust side cannot run exactly is refused with its message."""
        config = model.cfg.to_dict()
        weights = {name: t.detach().to("cpu").float().numpy() for name, t in model.state_dict().items()}
        # The Rust reader takes the whole to_dict() and decides each field: used, ignored, or refused
        # by name (docs/transformerlens.md); nothing is filtered here.
        native = _NativeModel.from_arrays(json.dumps(config, default=str), weights)
        return cls(native, transformer_lens_model=model)

    @property
    def cfg(self) -> dict:
        """The config as the Rust side read it (the fields that change its forward pass)."""
        return json.loads(self._native.config_json())

    def hooks(self, batch: int = 1, seq: int = 1) -> list:
        """Every hook point of a run on ``[batch, seq]`` tokens, in forward order."""
        key = (batch, seq)
        if key not in self._hook_lists:
            self._hook_lists[key] = [
                _hooks.HookPoint(name, tuple(shape), pos, head, i)
                for i, (name, shape, pos, head) in enumerate(self._native.hooks(batch, seq))
            ]
        return self._hook_lists[key]

    def hook_names(self) -> list:
        """Every hook name, in forward order (what `run_with_cache()` without a filter caches)."""
        return [h.name for h in self.hooks()]

    def __call__(self, tokens, *, fwd_hooks=()) -> np.ndarray:
        """The logits ``[batch, positions, d_vocab_out]``."""
        return self.run(tokens, fwd_hooks=fwd_hooks)

    def run(self, tokens, *, fwd_hooks=()) -> np.ndarray:
        """The logits ``[batch, positions, d_vocab_out]`` (nothing cached: the fastest path)."""
        return self._forward(tokens, [], fwd_hooks)[0]

    def run_with_cache(self, tokens, names_filter=None, *, fwd_hooks=()):
        """``(logits, cache)``: the activations `names_filter` picks (None: every hook; a name, a
        list, a glob such as ``"blocks.*.attn.hook_pattern"`` or a predicate), under
        TransformerLens's names, as numpy arrays."""
        hooks = self.hooks(*as_tokens(tokens).shape)
        return self._forward(tokens, _hooks.names_to_cache(names_filter, hooks), fwd_hooks)

    def run_with_hooks(self, tokens, fwd_hooks=(), *, names_filter=(), return_cache: bool = False):
        """The logits with `fwd_hooks` applied: ``(name, fn)`` pairs as in TransformerLens (a
        predicate may stand for the name) and declarative interventions (`shaderlens.zero`, ...).
        With ``return_cache=True``, ``(logits, cache)`` of the hooks `names_filter` picks."""
        tokens = as_tokens(tokens)
        names = [] if names_filter == () else _hooks.names_to_cache(names_filter, self.hooks(*tokens.shape))
        logits, cache = self._forward(tokens, names, fwd_hooks)
        return (logits, cache) if return_cache else logits

    def _forward(self, tokens, names: Optional[list], fwd_hooks):
        """One GPU pass when every hook is declarative; else one more per hooked point (module doc
        of `_hooks`)."""
        tokens = as_tokens(tokens)
        hooks = self.hooks(*tokens.shape)
        if isinstance(fwd_hooks, _hooks.Intervention) or _is_pair(fwd_hooks):
            fwd_hooks = [fwd_hooks]
        gpu, host = [], []  # host: (forward index, order in fwd_hooks, hook, fn)
        for order, item in enumerate(fwd_hooks):
            if isinstance(item, _hooks.Intervention):
                for hook in _hooks.resolve(item.hook, hooks, "intervention"):
                    if item.action == "add":
                        host.append((hook.index, order, hook, _hooks.adder(item, hook)))
                    else:
                        gpu.append(_hooks.gpu_spec(item, hook))
                continue
            if not (isinstance(item, (tuple, list)) and len(item) == 2 and callable(item[1])):
                raise InputError(
                    f"fwd_hooks[{order}] must be a (name, function) pair or an intervention (shaderlens.zero, ...), "
                    f"not {type(item).__name__}"
                )
            for hook in _hooks.resolve(item[0], hooks, f"fwd_hooks[{order}]"):
                host.append((hook.index, order, hook, item[1]))
        host.sort(key=lambda step: (step[0], step[1]))
        replaced = []
        for _, steps in itertools.groupby(host, key=lambda step: step[0]):
            steps = list(steps)
            hook = steps[0][2]
            _, read = self._native.run(tokens, [hook.name], gpu + replaced)
            activation = read[0][1]
            for _, _, _, fn in steps:
                result = fn(activation, hook)
                if result is not None:
                    activation = _hooks.check_activation(result, hook)
            replaced.append((hook.name, "replace", None, np.ascontiguousarray(activation, np.float32), None, None, None))
        logits, cache = self._native.run(tokens, names, gpu + replaced)
        return logits, Cache(cache, self)

    def __repr__(self) -> str:
        c = self.cfg
        return (
            f"shaderlens.Model(n_layers={c['n_layers']}, d_model={c['d_model']}, n_heads={c['n_heads']}, "
            f"d_vocab={c['d_vocab']}, n_ctx={c['n_ctx']})"
        )


def _is_pair(value) -> bool:
    """Whether `fwd_hooks` is one ``(name, fn)`` pair rather than a list of hooks."""
    return isinstance(value, tuple) and len(value) == 2 and callable(value[1])
