"""Interventions and hooks: what changes an activation during a forward pass.

Two kinds, as in the Rust API and TransformerLens:

- Declarative interventions (`zero`, `scale`, `replace`, `patch`, `mean_ablate`) become the Rust
  crate's `Intervention`s and are applied on the GPU inside the one forward pass, right after the
  hook's tensor is written: no read back, no extra pass. `add` has no Rust counterpart yet, so it is
  computed on the host like a hook function (below).
- Hook functions `(name, fn)` as in TransformerLens's `fwd_hooks`: `fn(activation, hook)` gets the
  activation as a writable float32 numpy array and returns the new one, or None to keep the
  (possibly modified in place) array. Python cannot run inside a GPU pass, so the model runs
  forward up to each hooked point in forward order: a pass that reads the first hooked activation
  back, `fn`, then a pass that replaces it with `fn`'s result (uploaded) and reads the next one back,
  and so on. For hook functions on k distinct hook points that is k + 1 forward passes, one
  read back and one upload per point; the results are exact (each pass recomputes the same values).

At one hook point the declarative interventions apply first, in the order given, then the hook
functions, in the order given. Names may be exact hook names, globs (`"blocks.*.attn.hook_z"`) or
predicates `name -> bool`.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ._shaderlens import InputError

NameFilter = Union[str, Sequence[str], Callable[[str], bool], None]


@dataclass(frozen=True)
class HookPoint:
    """The `hook` argument of a hook function (TransformerLens passes its `HookPoint`)."""

    name: str
    """TransformerLens's hook name, e.g. ``blocks.0.attn.hook_z``."""
    shape: Tuple[int, ...]
    """The activation's shape in this run."""
    pos_axis: int
    """The axis of sequence positions (for scores and pattern, the query position)."""
    head_axis: Optional[int]
    """The axis of heads, for hooks that have one."""
    index: int
    """The hook's place in forward order."""

    def layer(self) -> int:
        """The block this hook belongs to, as TransformerLens's ``hook.layer()``."""
        match = re.match(r"blocks\.(\d+)\.", self.name)
        if match is None:
            raise InputError(f"{self.name} is not inside a block, so it has no layer")
        return int(match.group(1))


@dataclass(frozen=True)
class Intervention:
    """A declarative change to one hook's activation; build it with `zero`, `scale`, `add`,
    `replace`, `patch` or `mean_ablate`."""

    hook: Union[str, Callable[[str], bool]]
    action: str
    value: Any = None
    batch: Optional[int] = None
    pos: Optional[int] = None
    head: Optional[int] = None


def _make(hook, action, value, batch, pos, head) -> Intervention:
    for what, index in (("batch", batch), ("pos", pos), ("head", head)):
        if index is not None and (isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0):
            raise InputError(f"{action} on {hook!r}: {what} must be an index >= 0 or None, not {index!r}")
    batch, pos, head = (None if i is None else int(i) for i in (batch, pos, head))
    return Intervention(hook, action, value, batch, pos, head)


def zero(hook, *, batch=None, pos=None, head=None) -> Intervention:
    """Zero ablation of `hook` (on the GPU), optionally of one batch element, position or head."""
    return _make(hook, "zero", None, batch, pos, head)


def scale(hook, factor: float, *, batch=None, pos=None, head=None) -> Intervention:
    """Multiplies `hook`'s selected elements by `factor` (on the GPU)."""
    return _make(hook, "scale", float(factor), batch, pos, head)


def add(hook, values, *, batch=None, pos=None, head=None) -> Intervention:
    """Adds `values` (broadcast to the hook's shape) to the selected elements. The Rust crate has
    no addition yet, so this is computed on the host: it costs what a hook function costs."""
    return _make(hook, "add", values, batch, pos, head)


def replace(hook, values, *, batch=None, pos=None, head=None) -> Intervention:
    """Replaces the selected elements with those of `values`, broadcast to the hook's shape
    (uploaded once, applied on the GPU)."""
    return _make(hook, "replace", values, batch, pos, head)


def patch(hook, cache: Mapping[str, np.ndarray], *, batch=None, pos=None, head=None) -> Intervention:
    """Activation patching: the selected elements of `hook` take their values from another run's
    cache (`run_with_cache` of the clean prompt), uploaded once and applied on the GPU."""
    return _make(hook, "patch", cache, batch, pos, head)


def mean_ablate(hook, mean, *, batch=None, pos=None, head=None) -> Intervention:
    """Mean ablation: the selected elements become the mean activation. `mean` is either a cache
    (its activation of the hook is averaged over the batch axis) or an array broadcast to the
    hook's shape (e.g. a mean over a data set, shape ``[S, H, d_head]`` for ``hook_z``)."""
    return _make(hook, "mean", mean, batch, pos, head)


def resolve(pattern, hooks: Sequence[HookPoint], what: str) -> list:
    """The hooks that a name, glob or predicate picks, in forward order; an unknown exact name or a
    glob that matches nothing raises InputError (a typo would otherwise do nothing)."""
    if callable(pattern):
        return [h for h in hooks if pattern(h.name)]
    if not isinstance(pattern, str):
        raise InputError(f"{what} must be a hook name, a glob or a predicate, not {type(pattern).__name__}")
    if any(c in pattern for c in "*?["):
        picked = [h for h in hooks if fnmatch.fnmatchcase(h.name, pattern)]
        if not picked:
            raise InputError(f"{what} {pattern!r} matches no hook of this model")
        return picked
    for h in hooks:
        if h.name == pattern:
            return [h]
    last = pattern.rsplit(".", 1)[-1]
    close = [h.name for h in hooks if h.name.endswith(last)][:3]
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise InputError(f"{pattern!r} is not a hook of this model{hint}")


def names_to_cache(names_filter: NameFilter, hooks: Sequence[HookPoint]) -> Optional[list]:
    """TransformerLens's `names_filter` as the list of names to cache (None: every hook)."""
    if names_filter is None:
        return None
    if isinstance(names_filter, (list, tuple, set, frozenset)):
        names = []
        for item in names_filter:
            names.extend(h.name for h in resolve(item, hooks, "names_filter"))
        return sorted(set(names), key=lambda n: next(h.index for h in hooks if h.name == n))
    return [h.name for h in resolve(names_filter, hooks, "names_filter")]


def full_values(values, hook: HookPoint, what: str) -> np.ndarray:
    """`values` as a C-order float32 array of the hook's shape (numpy broadcasting)."""
    array = np.asarray(values)
    if array.dtype.kind not in "fiu":
        raise InputError(f"{what} on {hook.name}: the values must be real numbers, not {array.dtype}")
    try:
        array = np.broadcast_to(array, hook.shape)
    except ValueError:
        raise InputError(
            f"{what} on {hook.name}: values of shape {list(array.shape)} do not broadcast to the activation's "
            f"{list(hook.shape)}"
        ) from None
    return np.ascontiguousarray(array, dtype=np.float32)


def gpu_spec(item: Intervention, hook: HookPoint) -> tuple:
    """The tuple the native `Model.run` takes for a declarative intervention on `hook`."""
    select = (item.batch, item.pos, item.head)
    if item.action == "zero":
        return (hook.name, "zero", None, None, *select)
    if item.action == "scale":
        return (hook.name, "scale", item.value, None, *select)
    if item.action == "replace":
        return (hook.name, "replace", None, full_values(item.value, hook, "replace"), *select)
    if item.action == "patch":
        if not isinstance(item.value, Mapping) or hook.name not in item.value:
            raise InputError(f"patch on {hook.name}: the cache given has no {hook.name} (cache it in the source run)")
        return (hook.name, "replace", None, full_values(item.value[hook.name], hook, "patch"), *select)
    if item.action == "mean":
        mean = item.value
        if isinstance(mean, Mapping):
            if hook.name not in mean:
                raise InputError(f"mean_ablate on {hook.name}: the cache given has no {hook.name}")
            mean = np.asarray(mean[hook.name], dtype=np.float64).mean(axis=0)
        return (hook.name, "replace", None, full_values(mean, hook, "mean_ablate"), *select)
    raise InputError(f"unknown intervention {item.action!r} on {hook.name}")


def selection(hook: HookPoint, batch, pos, head) -> tuple:
    """The numpy index of the elements a batch/position/head selection picks (as the Rust
    crate's `Intervention::selection`, with the same checks)."""
    index = [slice(None)] * len(hook.shape)
    for what, axis, i in (("batch", 0, batch), ("position", hook.pos_axis, pos), ("head", hook.head_axis, head)):
        if i is None:
            continue
        if axis is None:
            raise InputError(f"intervention on {hook.name}: this hook has no {what} axis")
        if not isinstance(i, (int, np.integer)) or not 0 <= i < hook.shape[axis]:
            raise InputError(f"intervention on {hook.name}: {what} {i} is out of range for {list(hook.shape)}")
        index[axis] = slice(int(i), int(i) + 1)
    return tuple(index)


def adder(item: Intervention, hook: HookPoint):
    """A host step (a hook function) that adds `item.value` to the selected elements."""
    values = full_values(item.value, hook, "add")
    index = selection(hook, item.batch, item.pos, item.head)

    def add_values(activation, _hook):
        out = np.array(activation, dtype=np.float32)
        out[index] += values[index]
        return out

    return add_values


def check_activation(result, hook: HookPoint) -> np.ndarray:
    """A hook function's return value as a float32 array of the hook's shape."""
    try:
        array = np.asarray(result)
    except Exception as error:  # e.g. a CUDA tensor that numpy cannot read
        raise InputError(f"the hook function on {hook.name} returned {type(result).__name__}: {error}") from None
    if array.dtype.kind not in "fiu":
        raise InputError(f"the hook function on {hook.name} returned {array.dtype} values, not numbers")
    if tuple(array.shape) != tuple(hook.shape):
        raise InputError(
            f"the hook function on {hook.name} returned shape {list(array.shape)} but the activation is "
            f"{list(hook.shape)}"
        )
    return np.ascontiguousarray(array, dtype=np.float32)
