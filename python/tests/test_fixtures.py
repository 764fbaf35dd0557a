"""Every whole-model fixture and every op fixture through the Python API, against the expected
arrays that TransformerLens and numpy wrote (fixtures/), under SPEC's tolerances."""

import json

import numpy as np
import pytest

import shaderlens
from conftest import FIXTURES, TRANSFORMER_CASES, assert_close, transformer_case


def test_every_transformer_fixture_is_found():
    assert len(TRANSFORMER_CASES) >= 5, TRANSFORMER_CASES


@pytest.mark.parametrize("case", TRANSFORMER_CASES)
def test_run_with_cache_matches_transformer_lens(case):
    config, weights, data = transformer_case(case)
    model = shaderlens.Model.from_files(config, weights)
    logits, cache = model.run_with_cache(data["tokens"])
    assert_close(logits, data["logits"], what=f"{case} logits")
    want = {k[len("cache."):] for k in data.files if k.startswith("cache.")}
    assert set(cache) == want
    assert list(cache) == model.hook_names()  # forward order, as TransformerLens's cache
    for name in want:
        assert cache[name].dtype == np.float32
        assert_close(cache[name], data["cache." + name], what=f"{case} {name}")


@pytest.mark.parametrize("case", TRANSFORMER_CASES)
def test_from_arrays_gives_the_same_model(case):
    config, weights, data = transformer_case(case)
    by_files = shaderlens.Model.from_files(config, weights)
    arrays = {k: data[k] for k in data.files if k not in ("tokens", "logits") and not k.startswith("cache.")}
    by_arrays = shaderlens.Model.from_arrays(json.loads(config.read_text()), arrays)
    assert by_arrays.cfg == by_files.cfg
    np.testing.assert_array_equal(by_arrays.run(data["tokens"]), by_files.run(data["tokens"]))


def test_run_is_the_logits_of_run_with_cache(tiny):
    model, tokens = tiny
    logits, cache = model.run_with_cache(tokens, names_filter="unembed.hook_out")
    np.testing.assert_array_equal(model.run(tokens), logits)
    np.testing.assert_array_equal(model(tokens), logits)
    np.testing.assert_array_equal(cache["unembed.hook_out"], logits)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64])
def test_tokens_of_any_integer_dtype_and_1d(tiny, dtype):
    model, tokens = tiny
    want = model.run(tokens)
    np.testing.assert_array_equal(model.run(tokens.astype(dtype)), want)
    one = model.run(tokens[0].astype(dtype))  # 1-D: one sequence, outputs keep the batch axis
    assert one.shape == want.shape
    np.testing.assert_array_equal(one, want)
    np.testing.assert_array_equal(model.run(tokens.tolist()), want)


def test_non_contiguous_tokens(small):
    model, tokens = small
    twice = np.repeat(tokens, 2, axis=1)[:, ::2]  # a strided view of the same tokens
    assert not twice.flags.c_contiguous
    np.testing.assert_array_equal(model.run(twice), model.run(tokens))


def test_names_filter_forms(small):
    model, tokens = small
    names = model.hook_names()
    patterns = [n for n in names if n.endswith("attn.hook_pattern")]
    assert len(patterns) == 3
    assert list(model.run_with_cache(tokens, "blocks.*.attn.hook_pattern")[1]) == patterns
    assert list(model.run_with_cache(tokens, lambda n: n.endswith("hook_pattern"))[1]) == patterns
    assert list(model.run_with_cache(tokens, "blocks.1.attn.hook_pattern")[1]) == patterns[1:2]
    both = ["blocks.2.hook_resid_post", "hook_embed"]
    assert list(model.run_with_cache(tokens, both)[1]) == ["hook_embed", "blocks.2.hook_resid_post"]
    assert list(model.run_with_cache(tokens, lambda n: False)[1]) == []
    full = model.run_with_cache(tokens)[1]
    assert list(full) == names
    picked = model.run_with_cache(tokens, "blocks.*.attn.hook_pattern")[1]
    for name in patterns:
        np.testing.assert_array_equal(picked[name], full[name])


def test_short_names_as_transformer_lens(small):
    model, tokens = small
    _, cache = model.run_with_cache(tokens)
    assert cache["pattern", 1] is cache["blocks.1.attn.hook_pattern"]
    assert cache["resid_pre", 0] is cache["blocks.0.hook_resid_pre"]
    assert cache["post", 2] is cache["blocks.2.mlp.hook_post"]
    assert cache["embed"] is cache["hook_embed"]
    assert ("z", 0) in cache and ("z", 7) not in cache
    assert shaderlens.act_name("scale", 1, "ln2") == "blocks.1.ln2.hook_scale"


def test_outputs_are_the_read_back_arrays(small):
    """No copy after the read back: numpy owns each array through the Rust vector, not a copy."""
    model, tokens = small
    logits, cache = model.run_with_cache(tokens)
    for array in [logits, *cache.values()]:
        assert array.dtype == np.float32 and array.flags.c_contiguous and array.flags.writeable
        assert not isinstance(array.base, np.ndarray)


def test_hooks_describe_the_run(small):
    model, tokens = small
    hooks = {h.name: h for h in model.hooks(*tokens.shape)}
    cfg = model.cfg
    b, s = tokens.shape
    assert hooks["blocks.0.attn.hook_pattern"].shape == (b, cfg["n_heads"], s, s)
    assert hooks["blocks.0.attn.hook_z"].head_axis == 2
    assert hooks["hook_embed"].head_axis is None


def _op_cases(op):
    return sorted((FIXTURES / op).glob("*.npz"))


TOL = {"matmul": None, "softmax": (1e-5, 1e-4), "layer_norm": (1e-5, 1e-4), "gelu": (1e-5, 1e-4),
       "gelu_erf": (1e-5, 1e-4), "attention": (1e-4, 1e-3)}


def _run_op(module, op, d):
    if op == "matmul":
        return {"out": module.matmul(d["a"], d["b"])}
    if op == "softmax":
        return {"out": module.softmax(d["x"])}
    if op == "layer_norm":
        w, b = (d["w"], d["b"]) if "w" in d.files else (None, None)
        return {"out": module.layer_norm(d["x"], w, b, eps=float(d["eps"]))}
    if op in ("gelu", "gelu_erf"):
        return {"out": module.gelu(d["x"], approximate="tanh" if op == "gelu" else "none")}
    out, pattern = module.attention(d["q"], d["k"], d["v"], causal=bool(d["causal"]), scale=float(d["scale"]))
    return {"out": out, "pattern": pattern}


@pytest.mark.parametrize("op", list(TOL))
def test_op_fixtures_on_gpu_and_reference(op):
    cases = _op_cases(op)
    assert cases, f"no fixtures for {op}"
    for path in cases:
        d = np.load(path)
        for module in (shaderlens.ops, shaderlens.reference):
            for key, got in _run_op(module, op, d).items():
                want = d[key]
                if op == "matmul":
                    a, b = d["a"].astype(np.float64), d["b"].astype(np.float64)
                    k = a.shape[-1]
                    allowed = 2 * k * 2.0**-24 * (np.abs(a) @ np.abs(b)) + 1e-30
                    assert np.all(np.abs(got - want) <= allowed), f"{path.name} {module.__name__}"
                else:
                    atol, rtol = TOL[op]
                    assert_close(got, want, atol, rtol, what=f"{path.name} {module.__name__} {key}")
                want_dtype = np.float32 if module is shaderlens.ops else np.float64
                assert got.dtype == want_dtype


def test_last_run_seconds_times_the_rust_call_inside(tiny):
    """The benchmark's Rust figure is a part of the Python call that contains it."""
    import time

    model, tokens = tiny
    start = time.perf_counter()
    model.run_with_cache(tokens)
    wall = time.perf_counter() - start
    assert 0.0 < model._native.last_run_seconds() <= wall
