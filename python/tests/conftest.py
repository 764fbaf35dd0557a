"""Shared helpers for the Python package's tests: the repository's fixtures and SPEC's tolerances.

Every test here runs on the GPU that wgpu finds (lavapipe on a machine without one); without an
adapter the tests fail with shaderlens's message saying how to get one, they are never skipped.
"""

from pathlib import Path

import numpy as np
import pytest

try:
    # TransformerLens imports torch, which may load triton and its own LLVM; loading that after
    # Mesa's llvmpipe has loaded its LLVM (the GPU opened) crashes the process, before is fine
    # (docs/python.md, "TransformerLens"). So it is imported first, when it is installed.
    import transformer_lens  # noqa: F401
except ImportError:
    pass

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
TRANSFORMER_CASES = sorted(p.stem for p in (FIXTURES / "transformer").glob("*.json"))


def error_ratio(got, want, atol, rtol):
    """SPEC's error ratio ``max |got - want| / (atol + rtol |want|)``: infinities must match exactly,
    NaN only NaN (either mismatch gives inf)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    if got.size == 0:
        return 0.0
    both_nan = np.isnan(got) & np.isnan(want)
    special = ~np.isfinite(want) | ~np.isfinite(got)
    mismatch = special & ~both_nan & ~(got == want)
    if mismatch.any():
        return float("inf")
    finite = ~special
    if not finite.any():
        return 0.0
    err = np.abs(got[finite] - want[finite]) / (atol + rtol * np.abs(want[finite]))
    return float(err.max())


def assert_close(got, want, atol=1e-4, rtol=1e-3, what="array"):
    """SPEC's transformer tolerance by default (``1e-4 + 1e-3 |want|``)."""
    ratio = error_ratio(got, want, atol, rtol)
    assert ratio <= 1.0, f"{what}: error ratio {ratio:.3g} > 1"


def transformer_case(case):
    """``(config path, npz path, npz contents)`` of a whole-model fixture."""
    base = FIXTURES / "transformer" / case
    return base.with_suffix(".json"), base.with_suffix(".npz"), np.load(base.with_suffix(".npz"))


@pytest.fixture(scope="session")
def tiny():
    import shaderlens

    config, weights, data = transformer_case("tiny")
    return shaderlens.Model.from_files(config, weights), data["tokens"]


@pytest.fixture(scope="session")
def small():
    """A two-layer LN model (othello_small), for hooks that need more than one block."""
    import shaderlens

    config, weights, data = transformer_case("gelu_new_3layer")
    return shaderlens.Model.from_files(config, weights), data["tokens"]
