"""Hooks written in Python and declarative interventions, against the Rust crate's interventions
(which the Rust tests check against the float64 reference) and against numpy arithmetic."""

import numpy as np
import pytest

import shaderlens


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_callable_zero_head_equals_rust_zero(small):
    model, tokens = small

    def zero_head(z, hook):
        assert hook.name == "blocks.1.attn.hook_z" and hook.layer() == 1
        z[:, :, 2] = 0.0  # in place, returning None, as TransformerLens hooks often do

    by_fn = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.attn.hook_z", zero_head)])
    by_rust = model.run_with_hooks(tokens, fwd_hooks=[shaderlens.zero("blocks.1.attn.hook_z", head=2)])
    plain = model.run(tokens)
    close(by_fn, by_rust)
    assert np.abs(by_rust - plain).max() > 1e-3  # the ablation changed something


def test_callable_return_value_equals_rust_scale(small):
    model, tokens = small
    by_fn = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_mlp_out", lambda a, hook: a * 0.5)])
    by_rust = model.run_with_hooks(tokens, fwd_hooks=[shaderlens.scale("blocks.0.hook_mlp_out", 0.5)])
    close(by_fn, by_rust)


def test_hooks_run_in_forward_order_and_see_earlier_changes(small):
    """A hook on layer 2 sees the activation that a hook on layer 0 changed, whatever the order of
    the list; k hooked points cost k + 1 forward passes."""
    model, tokens = small
    seen = {}

    def record_then_scale(a, hook):
        seen[hook.name] = a.copy()
        return a * 2.0

    fwd = [("blocks.2.hook_resid_pre", record_then_scale), ("blocks.0.attn.hook_z", lambda z, h: z * 0.0)]
    calls = []
    native = model._native

    class Counting:
        def __getattr__(self, name):
            return getattr(native, name)

        def run(self, *args):
            calls.append(args[1])
            return native.run(*args)

    model._native = Counting()
    try:
        logits, cache = model.run_with_hooks(tokens, fwd_hooks=fwd, names_filter="blocks.2.hook_resid_pre", return_cache=True)
    finally:
        model._native = native
    assert len(calls) == 3
    want_logits, want_cache = model.run_with_hooks(
        tokens,
        fwd_hooks=[shaderlens.zero("blocks.0.attn.hook_z"), shaderlens.scale("blocks.2.hook_resid_pre", 2.0)],
        names_filter="blocks.2.hook_resid_pre",
        return_cache=True,
    )
    close(logits, want_logits)
    close(cache["blocks.2.hook_resid_pre"], want_cache["blocks.2.hook_resid_pre"])
    close(seen["blocks.2.hook_resid_pre"] * 2.0, cache["blocks.2.hook_resid_pre"])


def test_predicate_and_glob_pick_hooks(small):
    model, tokens = small
    names = []
    model.run_with_hooks(tokens, fwd_hooks=[(lambda n: n.endswith("hook_pattern"), lambda a, h: names.append(h.name))])
    assert names == [f"blocks.{l}.attn.hook_pattern" for l in range(3)]
    by_glob = model.run_with_hooks(tokens, fwd_hooks=[shaderlens.zero("blocks.*.attn.hook_z", head=1)])
    by_list = model.run_with_hooks(tokens, fwd_hooks=[shaderlens.zero(f"blocks.{l}.attn.hook_z", head=1) for l in range(3)])
    np.testing.assert_array_equal(by_glob, by_list)


def test_patch_every_position_gives_the_clean_run(small):
    model, tokens = small
    corrupt = tokens.copy()
    corrupt[:, 0] = (corrupt[:, 0] + 1) % model.cfg["d_vocab"]
    clean_logits, clean_cache = model.run_with_cache(tokens, "blocks.[01].hook_resid_pre")
    patched = model.run_with_hooks(corrupt, fwd_hooks=[shaderlens.patch("blocks.1.hook_resid_pre", clean_cache)])
    close(patched, clean_logits)
    # The embeddings differ at position 0 only: patching it there restores the clean run.
    one = model.run_with_hooks(corrupt, fwd_hooks=[shaderlens.patch("blocks.0.hook_resid_pre", clean_cache, pos=0)])
    close(one, clean_logits)
    by_replace = model.run_with_hooks(
        corrupt, fwd_hooks=[shaderlens.replace("blocks.1.hook_resid_pre", clean_cache["blocks.1.hook_resid_pre"])]
    )
    np.testing.assert_array_equal(by_replace, patched)


def test_mean_ablate_broadcasts_the_batch_mean(small):
    model, tokens = small
    _, cache = model.run_with_cache(tokens, "blocks.0.attn.hook_z")
    z = cache["blocks.0.attn.hook_z"]
    mean = z.astype(np.float64).mean(axis=0)
    by_cache = model.run_with_hooks(tokens, fwd_hooks=[shaderlens.mean_ablate("blocks.0.attn.hook_z", cache, head=3)])
    by_array = model.run_with_hooks(tokens, fwd_hooks=[shaderlens.mean_ablate("blocks.0.attn.hook_z", mean, head=3)])

    def by_hand(a, hook):
        a[:, :, 3] = mean[:, 3].astype(np.float32)

    by_fn = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_z", by_hand)])
    np.testing.assert_array_equal(by_cache, by_array)
    close(by_cache, by_fn)


def test_add_equals_a_hook_that_adds(small):
    model, tokens = small
    d_model = model.cfg["d_model"]
    direction = np.linspace(-1, 1, d_model).astype(np.float32)
    by_add = model.run_with_hooks(tokens, fwd_hooks=[shaderlens.add("blocks.1.hook_resid_mid", direction, pos=3)])

    def by_hand(a, hook):
        a[:, 3] += direction

    close(by_add, model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.hook_resid_mid", by_hand)]))
    assert np.abs(by_add - model.run(tokens)).max() > 1e-3


def test_cached_value_is_the_hooked_value(small):
    model, tokens = small
    _, cache = model.run_with_hooks(
        tokens,
        fwd_hooks=[("blocks.0.hook_attn_out", lambda a, h: np.full_like(a, 0.25))],
        names_filter=["blocks.0.hook_attn_out"],
        return_cache=True,
    )
    assert np.all(cache["blocks.0.hook_attn_out"] == np.float32(0.25))


def test_several_hooks_on_one_point_apply_in_order(small):
    model, tokens = small
    fwd = [("blocks.0.hook_resid_post", lambda a, h: a + 1.0), ("blocks.0.hook_resid_post", lambda a, h: a * 3.0)]
    by_fn = model.run_with_hooks(tokens, fwd_hooks=fwd)
    by_hand = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_resid_post", lambda a, h: (a + 1.0) * 3.0)])
    np.testing.assert_array_equal(by_fn, by_hand)


def test_declarative_before_callable_on_one_point(small):
    model, tokens = small
    seen = []
    model.run_with_hooks(
        tokens,
        fwd_hooks=[("blocks.0.attn.hook_v", lambda a, h: seen.append(a.copy())), shaderlens.zero("blocks.0.attn.hook_v")],
    )
    assert np.all(seen[0] == 0.0)
