"""The GPU ops, numpy in and numpy out: each input is read as float32 (converted when it is not),
the op runs on the GPU in one submission and its result comes back as a float32 array. Shapes are
checked before any GPU work; a bad one raises `shaderlens.InputError` (a ValueError) with the Rust
crate's message. `shaderlens.reference` holds the float64 host references of the same ops.
"""

from __future__ import annotations

import math

import numpy as np

from . import _shaderlens as _native
from ._shaderlens import InputError


def _f32(x, name: str) -> np.ndarray:
    array = np.asarray(x)
    if array.dtype.kind not in "fiu":
        raise InputError(f"{name} must hold real numbers, not {array.dtype}")
    return array.astype(np.float32, copy=False)


def matmul(a, b) -> np.ndarray:
    """``a @ b`` for ``[..., M, K] @ [..., K, N]`` (batch axes broadcast, as numpy's matmul)."""
    return _native.matmul(_f32(a, "a"), _f32(b, "b"))


def softmax(x) -> np.ndarray:
    """Softmax over the last axis."""
    return _native.softmax(_f32(x, "x"))


def layer_norm(x, w=None, b=None, eps: float = 1e-5) -> np.ndarray:
    """Layer norm over the last axis, ``(x - mean) / sqrt(var + eps) * w + b``; without `w` and `b`
    it is TransformerLens's ``LNPre``."""
    w = None if w is None else _f32(w, "w")
    b = None if b is None else _f32(b, "b")
    return _native.layer_norm(_f32(x, "x"), w, b, float(eps))


def gelu(x, approximate: str = "none") -> np.ndarray:
    """GELU: ``approximate="none"`` the exact, erf-based one (TransformerLens's ``gelu``), ``"tanh"``
    GPT-2's (``gelu_new``), as PyTorch's argument names them."""
    return _native.gelu(_f32(x, "x"), str(approximate))


def default_scale(q) -> float:
    """``1 / sqrt(D)`` for q ``[..., D]`` (1.0 when q has no last axis to read; the op then refuses it)."""
    shape = np.shape(q)
    return 1.0 / math.sqrt(shape[-1]) if len(shape) and shape[-1] > 0 else 1.0


def attention(q, k, v, causal: bool = True, scale=None):
    """Attention on ``q [B, H, Sq, D]``, ``k [B, H, Sk, D]``, ``v [B, H, Sk, Dv]``: returns
    ``(out [B, H, Sq, Dv], pattern [B, H, Sq, Sk])``; `scale` defaults to ``1/sqrt(D)``."""
    scale = default_scale(q) if scale is None else float(scale)
    return _native.attention(_f32(q, "q"), _f32(k, "k"), _f32(v, "v"), bool(causal), scale)
