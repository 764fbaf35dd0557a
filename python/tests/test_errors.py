"""Errors are Python exceptions carrying the Rust crate's message, and no input crashes the
interpreter: a Rust panic would surface as pyo3's PanicException, which is not an Exception, so
`pytest.raises(Exception)` would not catch it and these tests would fail."""

import json

import numpy as np
import pytest

import shaderlens
from conftest import FIXTURES, transformer_case

BAD = (ValueError, TypeError, OSError)


def test_exception_types():
    assert issubclass(shaderlens.InputError, ValueError)
    assert issubclass(shaderlens.FileError, OSError)
    assert issubclass(shaderlens.GpuError, RuntimeError)


@pytest.mark.parametrize(
    "tokens, message",
    [
        (np.array([[0.0, 1.0]]), "integers"),
        (np.array([[True, False]]), "integers"),
        (np.zeros((1, 2, 2), np.int64), "1-D"),
        (np.array(3), "1-D"),
        (np.array([[0, 5]]), "out of range"),
        (np.array([[0, -1]]), "out of range"),
        (np.array([[0, 1, 2, 3, 4]]), "n_ctx"),
        (np.zeros((0, 3), np.int64), "at least one"),
        (np.zeros((1, 0), np.int64), "at least one"),
        (np.array([[2**63]], np.uint64), "out of range"),
        (["a", "b"], "integers"),
        (None, "integers"),
    ],
)
def test_bad_tokens(tiny, tokens, message):
    model, _ = tiny
    with pytest.raises(shaderlens.InputError, match=message):
        model.run(tokens)


def test_unknown_names(tiny):
    model, tokens = tiny
    with pytest.raises(shaderlens.InputError, match="did you mean blocks.0.attn.hook_pattern"):
        model.run_with_cache(tokens, "blocks.0.hook_pattern")
    with pytest.raises(shaderlens.InputError, match="matches no hook"):
        model.run_with_cache(tokens, "blocks.9.*")
    with pytest.raises(shaderlens.InputError, match="not a hook"):
        model.run_with_cache(tokens, ["hook_embed", "blocks.3.hook_resid_pre"])
    with pytest.raises(shaderlens.InputError, match="names_filter"):
        model.run_with_cache(tokens, 3)


def test_bad_interventions(tiny):
    model, tokens = tiny
    cases = [
        (shaderlens.zero("blocks.0.attn.hook_z", head=2), "head 2 is out of range"),
        (shaderlens.zero("blocks.0.hook_resid_pre", head=0), "no head axis"),
        (shaderlens.zero("blocks.0.hook_resid_pre", pos=4), "position 4 is out of range"),
        (shaderlens.zero("hook_embed", batch=1), "batch 1 is out of range"),
        (shaderlens.replace("hook_embed", np.zeros((3, 3))), "do not broadcast"),
        (shaderlens.replace("hook_embed", np.array(["x"])), "real numbers"),
        (shaderlens.patch("hook_embed", {}), "has no hook_embed"),
        (shaderlens.mean_ablate("hook_embed", {"other": 1}), "has no hook_embed"),
        (shaderlens.add("hook_embed", np.ones(8), head=0), "no head axis"),
        (shaderlens.add("hook_embed", np.ones(7)), "do not broadcast"),
        (shaderlens.zero("blocks.0.hook_z"), "not a hook"),
    ]
    for intervention, message in cases:
        with pytest.raises(shaderlens.InputError, match=message):
            model.run_with_hooks(tokens, fwd_hooks=[intervention])


def test_bad_hook_functions(tiny):
    model, tokens = tiny
    with pytest.raises(shaderlens.InputError, match=r"returned shape \[1, 4\]"):
        model.run_with_hooks(tokens, fwd_hooks=[("hook_embed", lambda a, h: a[..., 0])])
    with pytest.raises(shaderlens.InputError, match="returned <U1 values"):
        model.run_with_hooks(tokens, fwd_hooks=[("hook_embed", lambda a, h: np.full(a.shape, "x"))])
    with pytest.raises(shaderlens.InputError, match="pair"):
        model.run_with_hooks(tokens, fwd_hooks=[("hook_embed",)])
    with pytest.raises(shaderlens.InputError, match="pair"):
        model.run_with_hooks(tokens, fwd_hooks=[("hook_embed", "not callable")])

    def boom(a, h):
        raise KeyError("raised by the hook")

    with pytest.raises(KeyError, match="raised by the hook"):
        model.run_with_hooks(tokens, fwd_hooks=[("hook_embed", boom)])
    # NaN from a hook is a value, not an error: it flows through as in TransformerLens.
    logits = model.run_with_hooks(tokens, fwd_hooks=[("hook_embed", lambda a, h: a * np.nan)])
    assert np.isnan(logits).all()


def test_file_errors(tmp_path):
    config, weights, _ = transformer_case("tiny")
    with pytest.raises(shaderlens.FileError, match="missing.json"):
        shaderlens.Model.from_files(tmp_path / "missing.json", weights)
    with pytest.raises(shaderlens.FileError, match="missing.npz"):
        shaderlens.Model.from_files(config, tmp_path / "missing.npz")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(shaderlens.FileError, match="bad.json"):
        shaderlens.Model.from_files(bad, weights)
    with pytest.raises(shaderlens.FileError, match="tiny.json"):
        shaderlens.Model.from_files(config, config)  # a JSON file is no npz


def _tiny_arrays():
    config, _, data = transformer_case("tiny")
    arrays = {k: data[k] for k in data.files if k not in ("tokens", "logits") and not k.startswith("cache.")}
    return json.loads(config.read_text()), arrays


def test_bad_configs_and_weights():
    cfg, arrays = _tiny_arrays()
    cases = [
        ({**cfg, "act_fn": "silu"}, arrays, "silu"),
        ({**cfg, "n_heads": 0}, arrays, "n_heads is 0"),
        ({**cfg, "positional_embedding_type": "rotary"}, arrays, "rotary"),
        ({k: v for k, v in cfg.items() if k != "d_model"}, arrays, "d_model"),
        (cfg, {k: v for k, v in arrays.items() if k != "unembed.W_U"}, "unembed.W_U .* is missing"),
        (cfg, {**arrays, "blocks.1.attn.W_Q": arrays["blocks.0.attn.W_Q"]}, "not a weight of this config"),
        (cfg, {**arrays, "embed.W_E": arrays["embed.W_E"][:, :3]}, "embed.W_E is"),
        (cfg, {**arrays, "embed.W_E": np.array([["a"]])}, "real numbers"),
        (cfg, [1, 2], "mapping"),
    ]
    for config, weights, message in cases:
        with pytest.raises(shaderlens.InputError, match=message):
            shaderlens.Model.from_arrays(config, weights)
    with pytest.raises(shaderlens.InputError, match="model config"):
        shaderlens.Model.from_arrays("{not json", arrays)
    # Masks and IGNORE buffers of a TransformerLens state dict are skipped, float64 converted.
    model = shaderlens.Model.from_arrays(cfg, {**{k: v.astype(np.float64) for k, v in arrays.items()},
                                               "blocks.0.attn.mask": np.ones((4, 4), bool),
                                               "blocks.0.attn.IGNORE": np.array(-np.inf)})
    assert model.cfg["d_model"] == 8


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: shaderlens.ops.matmul(np.ones((2, 3)), np.ones((4, 5))), "inner dimensions"),
        (lambda: shaderlens.ops.matmul(np.ones(3), np.ones(3)), "rank at least 2"),
        (lambda: shaderlens.ops.softmax(np.float32(1.0)), "scalar"),
        (lambda: shaderlens.ops.layer_norm(np.ones((2, 4)), np.ones(3), np.ones(4)), r"w must be \[4\]"),
        (lambda: shaderlens.ops.layer_norm(np.ones((2, 4)), np.ones(4), None), "both w and b"),
        (lambda: shaderlens.ops.layer_norm(np.ones((2, 4)), eps=-1.0), "eps"),
        (lambda: shaderlens.ops.gelu(np.ones(3), approximate="sigmoid"), "approximate"),
        (lambda: shaderlens.ops.attention(np.ones((1, 1, 2, 4)), np.ones((1, 1, 2, 3)), np.ones((1, 1, 2, 4))), "head dims 3 and 4 differ"),
        (lambda: shaderlens.ops.attention(np.ones((2, 4)), np.ones((2, 4)), np.ones((2, 4))), "rank-4 q"),
        (lambda: shaderlens.ops.softmax(np.array(["x"])), "real numbers"),
        (lambda: shaderlens.reference.matmul(np.ones((2, 3)), np.ones((4, 5))), "inner dimensions"),
        (lambda: shaderlens.reference.attention(np.ones(3), np.ones(3), np.ones(3)), "rank-4 q"),
        (lambda: shaderlens.reference.layer_norm(np.ones((2, 4)), None, np.ones(4)), "both w and b"),
    ],
)
def test_bad_op_inputs(call, message):
    with pytest.raises(shaderlens.InputError, match=message):
        call()


def test_empty_arrays_give_empty_results():
    assert shaderlens.ops.matmul(np.ones((0, 3)), np.ones((3, 0))).shape == (0, 0)
    assert shaderlens.ops.softmax(np.ones((0, 3))).shape == (0, 3)
    assert shaderlens.ops.gelu(np.ones(0)).shape == (0,)
    np.testing.assert_array_equal(shaderlens.ops.matmul(np.ones((2, 0)), np.ones((0, 2))), np.zeros((2, 2)))


def test_work_too_large_for_the_device_is_refused_before_gpu_work():
    huge = np.broadcast_to(np.float32(1.0), (1 << 20, 1 << 20))  # 4 TiB, never materialised
    for call in (lambda: shaderlens.ops.softmax(huge), lambda: shaderlens.ops.gelu(huge),
                 lambda: shaderlens.ops.matmul(huge, huge[:, :1])):
        with pytest.raises(shaderlens.InputError):
            call()


def test_random_garbage_never_crashes(tiny):
    """Random shapes (zeros included), dtypes and values: every call returns or raises an
    Exception; none panics or kills the interpreter."""
    model, tokens = tiny
    rng = np.random.default_rng(15)
    ops = shaderlens.ops
    for _ in range(60):
        rank = int(rng.integers(0, 5))
        shape = tuple(int(d) for d in rng.integers(0, 4, size=rank))
        x = rng.normal(size=shape) * rng.choice([1.0, 1e30, np.nan, np.inf])
        other = rng.normal(size=tuple(int(d) for d in rng.integers(0, 4, size=int(rng.integers(0, 5)))))
        calls = [
            lambda: ops.matmul(x, other), lambda: ops.softmax(x), lambda: ops.gelu(x),
            lambda: ops.layer_norm(x, other, other), lambda: ops.attention(x, x, other),
            lambda: shaderlens.reference.attention(x, other, x),
            lambda: model.run(np.asarray(x * 3, dtype=np.int64) if (np.abs(x) < 1e6).all() else tokens),
            lambda: model.run_with_hooks(tokens, fwd_hooks=[shaderlens.replace("hook_embed", x)]),
            lambda: model.run_with_hooks(tokens, fwd_hooks=[shaderlens.zero("blocks.0.attn.hook_z", head=rank - 2)]),
        ]
        for call in calls:
            try:
                call()
            except BAD:
                pass
