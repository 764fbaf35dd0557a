"""shaderlens for Python: the insides of small transformers on any GPU (Vulkan, Metal, DX12, GL, or
Mesa's lavapipe on a machine without one), TransformerLens-style.

    import shaderlens
    model = shaderlens.Model.from_files("model.json", "model.npz")
    logits, cache = model.run_with_cache(tokens, names_filter="blocks.*.attn.hook_pattern")
    logits = model.run_with_hooks(tokens, fwd_hooks=[shaderlens.zero("blocks.0.attn.hook_z", head=3)])

Arrays come in and go out as numpy; errors are exceptions carrying the Rust crate's message
(`InputError` is a ValueError, `FileError` an OSError, `GpuError` a RuntimeError). See
docs/python.md for the walk-through.
"""

from . import ops, reference
from ._cache import Cache, act_name
from ._hooks import HookPoint, Intervention, add, mean_ablate, patch, replace, scale, zero
from ._model import Model
from ._shaderlens import FileError, GpuError, InputError, adapter

__version__ = "0.1.0"

__all__ = [
    "Model", "Cache", "HookPoint", "Intervention", "zero", "scale", "add", "replace", "patch",
    "mean_ablate", "act_name", "ops", "reference", "adapter", "InputError", "FileError", "GpuError",
]
