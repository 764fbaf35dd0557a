"""The float64 host references of the ops (the Rust crate's `shaderlens::reference`), numpy in and
numpy out, for checking a numpy solution or the GPU ops against them. Inputs are read as float64.
"""

from __future__ import annotations

import numpy as np

from . import _shaderlens as _native
from ._shaderlens import InputError
from .ops import default_scale


def _f64(x, name: str) -> np.ndarray:
    array = np.asarray(x)
    if array.dtype.kind not in "fiu":
        raise InputError(f"{name} must hold real numbers, not {array.dtype}")
    return array.astype(np.float64, copy=False)


def matmul(a, b) -> np.ndarray:
    """``a @ b`` in float64."""
    return _native.ref_matmul(_f64(a, "a"), _f64(b, "b"))


def softmax(x) -> np.ndarray:
    """Softmax over the last axis in float64."""
    return _native.ref_softmax(_f64(x, "x"))


def layer_norm(x, w=None, b=None, eps: float = 1e-5) -> np.ndarray:
    """Layer norm over the last axis in float64 (without `w` and `b`: ``LNPre``)."""
    w = None if w is None else _f64(w, "w")
    b = None if b is None else _f64(b, "b")
    return _native.ref_layer_norm(_f64(x, "x"), w, b, float(eps))


def gelu(x, approximate: str = "none") -> np.ndarray:
    """GELU in float64 (``"none"``: erf, ``"tanh"``: GPT-2's)."""
    return _native.ref_gelu(_f64(x, "x"), str(approximate))


def attention(q, k, v, causal: bool = True, scale=None):
    """Attention in float64: ``(out, pattern)``."""
    scale = default_scale(q) if scale is None else float(scale)
    return _native.ref_attention(_f64(q, "q"), _f64(k, "k"), _f64(v, "v"), bool(causal), scale)
