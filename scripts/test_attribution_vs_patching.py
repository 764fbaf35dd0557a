"""Tests of scripts/attribution_vs_patching.py and scripts/make_walk_prompts.py (numpy only)."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import attribution_vs_patching as avp  # noqa: E402
import make_walk_prompts as mwp  # noqa: E402


def test_ties_share_the_mean_rank():
    assert avp.ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [2.5, 0.0, 2.5, 1.0]


def test_spearman_reads_order_not_size():
    a = np.array([0.1, 5.0, 2.0, 3.0])
    assert abs(avp.spearman(a, a**3) - 1.0) < 1e-12
    assert abs(avp.spearman(a, -a) + 1.0) < 1e-12
    assert np.isnan(avp.spearman(a, np.ones(4)))
    assert np.isnan(avp.spearman(a[:1], a[:1]))


def fake_sweeps(path, effect, attr):
    """A `patch --attribution` output with one resid_pre sweep (one layer) and its attribution."""
    corrupt = -1.0
    np.savez(
        path,
        corrupt_metric=np.array(corrupt),
        **{"patch.resid_pre": np.array([effect]) + corrupt, "attr.blocks.0.hook_resid_pre": np.array(attr)},
    )


def test_rows_compare_the_batch_mean_and_drop_negligible_patches(tmp_path):
    path = str(tmp_path / "s.npz")
    # Two rows; the batch mean of the attribution is [0, 1, 3, 2]; the exact effects rank the
    # last three the same way except that one pair is swapped.
    fake_sweeps(path, [0.0, 1.0, 2.0, 3.0], [[0.0, 2.0, 5.0, 4.0], [0.0, 0.0, 1.0, 0.0]])
    full = avp.row("m", path)
    assert full.startswith("| m | 0.80 (4) | n/a |"), full
    avp.NONZERO = True
    try:
        trimmed = avp.row("m", path)
    finally:
        avp.NONZERO = False
    assert trimmed.startswith("| m | 0.50 (3) |"), trimmed


def test_a_glob_pools_the_files(tmp_path):
    fake_sweeps(str(tmp_path / "a.npz"), [1.0, 2.0], [[1.0, 2.0]])
    fake_sweeps(str(tmp_path / "b.npz"), [3.0, 4.0], [[3.0, 4.0]])
    assert avp.row("m", str(tmp_path / "*.npz")).startswith("| m | 1.00 (4) |")


def test_walk_prompts_change_b_only_and_answer_the_sum():
    d = mwp.prompts()
    p = mwp.P
    assert (d["clean"][:, [0, 2]] == d["corrupt"][:, [0, 2]]).all()
    assert (d["clean"][:, 1] != d["corrupt"][:, 1]).all()
    assert (d["clean"][:, 2] == p).all()
    assert (d["answer"] == (d["clean"][:, 0] + d["clean"][:, 1]) % p).all()
    assert (d["wrong"] == (d["corrupt"][:, 0] + d["corrupt"][:, 1]) % p).all()
    assert (d["answer"] != d["wrong"]).all()
