#!/usr/bin/env python3
"""Generate the npz fixtures that shaderlens is verified against.

Usage (from the repository root):

    python3 scripts/gen_fixtures.py                  # writes fixtures/ and tests/data/verify_bad/
    python3 scripts/gen_fixtures.py --out fixtures   # same; --out picks the fixture folder
    python3 scripts/gen_fixtures.py --bad tests/data/verify_bad   # picks the adversarial folder
    python3 scripts/gen_fixtures.py --skip-bad       # only the good fixtures (or --skip-good)

The files follow the contract in SPEC.md ("Fixture and verification contract"):

* `<out>/<op>/<case>.npz`; the op is the name of the folder.
* Inputs are float32, C order. Scalars are 0-d arrays: `eps` and `scale` float64, `causal` bool.
* Expected outputs are float64: the result of the float32 inputs, cast to float64 and computed in
  float64 with numerically careful formulas (masked softmax shifted by the row maximum over the
  visible keys, GELU without cancellation for negative inputs, and so on).

Everything is deterministic: each case draws from its own generator, seeded from SEED and the
case's name, so adding a case never changes another. The npz files are written with fixed zip
timestamps, so regenerating with the same numpy and zlib gives byte-identical files. Files whose
arrays exceed COMPRESS_ABOVE bytes are deflated (what `np.savez_compressed` writes), the rest are
stored (what `np.savez` writes).

`<bad>/` holds fixtures that a correct `verify` must reject, listed in `<bad>/MANIFEST.tsv` as
`path<TAB>expected_status<TAB>why` with expected_status FAIL (a well-formed fixture whose expected
output is wrong) or ERROR (a fixture that cannot be checked).

After writing, the script reads every file back and checks dtypes, shapes, ranks and that no
expected value is NaN; it checks that a plain float32 implementation of each op passes each good
fixture (the "f32 ratio" column: the SPEC error ratio of that implementation, must be <= 1), that
every FAIL fixture fails by a wide margin and that every ERROR fixture is indeed malformed. It then
prints a table of files, shapes and sizes. It needs numpy only and never imports shaderlens.
"""

import argparse
import io
import math
import os
import sys
import zipfile
import zlib

import numpy as np

SEED = 0x5EAD_E215
COMPRESS_ABOVE = 1 << 20  # bytes of npy data above which a file is deflated
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
F32, F64 = np.float32, np.float64
F32_MAX = float(np.finfo(F32).max)
SQRT2 = math.sqrt(2.0)
GELU_C = math.sqrt(2.0 / math.pi)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------------------------
# Small helpers


def rng_for(op, case):
    """A generator of its own for each case, so cases are independent of each other's order."""
    return np.random.default_rng([SEED, zlib.crc32(f"{op}/{case}".encode())])


def f32(x):
    return np.array(x, dtype=F32, order="C")


def normal(rng, shape, std=1.0, mean=0.0):
    return f32(mean + std * rng.standard_normal(shape))


def short_mantissa(x, bits):
    """x rounded to `bits` of float32's 23 mantissa bits: still float32, but it deflates."""
    drop = 23 - bits
    if drop == 0:
        return x
    u = x.astype(F32).view(np.uint32)
    return ((u + np.uint32(1 << (drop - 1))) & np.uint32(~((1 << drop) - 1) & 0xFFFFFFFF)).view(F32)


def scalar64(v):
    return np.array(v, dtype=F64)


def npy_bytes(arr):
    bio = io.BytesIO()
    np.lib.format.write_array(bio, arr, allow_pickle=arr.dtype.hasobject)
    return bio.getvalue()


def save_npz(path, arrays, raw_members=None):
    """Write an npz with fixed timestamps (reproducible bytes); deflate when large.

    raw_members adds zip members verbatim (name -> bytes), for malformed fixtures.
    """
    members = [(k + ".npy", npy_bytes(np.array(v, order="C", copy=True))) for k, v in arrays.items()]
    members += list((raw_members or {}).items())
    total = sum(len(b) for _, b in members)
    kind = zipfile.ZIP_DEFLATED if total > COMPRESS_ABOVE else zipfile.ZIP_STORED
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=kind) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = kind
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)


# --------------------------------------------------------------------------------------------
# Float64 references (the expected outputs). Inputs are float32; everything is done in float64.


def ref_matmul(a, b):
    return {"out": np.matmul(a.astype(F64), b.astype(F64))}


def softmax64(x, visible=None):
    """Softmax over the last axis; -inf or invisible entries give exactly 0, empty rows all 0."""
    x = x.astype(F64)
    if visible is not None:
        x = np.where(visible, x, -np.inf)
    m = np.max(x, axis=-1, keepdims=True)
    live = np.isfinite(m)  # a row whose max is -inf sees nothing (all finite inputs otherwise)
    shifted = np.where(x == -np.inf, -np.inf, x - np.where(live, m, 0.0))
    with np.errstate(over="ignore", under="ignore"):
        e = np.exp(shifted)
    s = np.sum(e, axis=-1, keepdims=True)
    return np.where(live, e / np.where(live, s, 1.0), 0.0)


def ref_softmax(x):
    return {"out": softmax64(x)}


def ref_layer_norm(x, w, b, eps):
    x = x.astype(F64)
    # Shift by the row's first element before the mean: exact for the float32 inputs and keeps
    # the spread of rows whose mean is far larger than it.
    d = x - x[..., :1]
    c = d - d.mean(axis=-1, keepdims=True)
    var = np.mean(c * c, axis=-1, keepdims=True)
    return {"out": c / np.sqrt(var + float(eps)) * w.astype(F64) + b.astype(F64)}


def gelu_tanh64(x):
    x = x.astype(F64)
    u = GELU_C * (x + 0.044715 * x**3)
    with np.errstate(over="ignore"):
        # 0.5 (1 + tanh u) == 1 / (1 + exp(-2u)); use the form without cancellation on each side.
        pos = 0.5 * x * (1.0 + np.tanh(np.maximum(u, 0.0)))
        e = np.exp(2.0 * np.minimum(u, 0.0))
        neg = x * e / (1.0 + e)
    return np.where(u >= 0.0, pos, neg)


def gelu_erf64(x):
    flat = x.astype(F64).ravel()
    out = np.empty_like(flat)
    for i, v in enumerate(flat.tolist()):
        # erfc for negative inputs: 1 + erf(v/sqrt2) cancels there, erfc(-v/sqrt2) does not.
        out[i] = 0.5 * v * (1.0 + math.erf(v / SQRT2)) if v >= 0 else 0.5 * v * math.erfc(-v / SQRT2)
    return out.reshape(x.shape)


def causal_visible(sq, sk):
    """Bottom-right aligned: query i sees key j iff j <= i + (sk - sq)."""
    return np.arange(sk)[None, :] <= np.arange(sq)[:, None] + (sk - sq)


def ref_attention(q, k, v, causal, scale):
    q, k, v = q.astype(F64), k.astype(F64), v.astype(F64)
    s = float(scale) * (q @ np.swapaxes(k, -1, -2))
    vis = causal_visible(q.shape[2], k.shape[2]) if bool(causal) else None
    p = softmax64(s, vis)
    return {"out": p @ v, "pattern": p}


def ref_attention_layer(x, W_Q, W_K, W_V, b_Q, b_K, b_V, W_O, b_O):
    x = x.astype(F64)
    g = lambda a: a.astype(F64)
    q = np.einsum("bsm,hmd->bhsd", x, g(W_Q)) + g(b_Q)[None, :, None, :]
    k = np.einsum("bsm,hmd->bhsd", x, g(W_K)) + g(b_K)[None, :, None, :]
    v = np.einsum("bsm,hmd->bhsd", x, g(W_V)) + g(b_V)[None, :, None, :]
    s = (q @ np.swapaxes(k, -1, -2)) / math.sqrt(W_Q.shape[-1])
    p = softmax64(s, causal_visible(x.shape[1], x.shape[1]))
    z = p @ v
    out = np.einsum("bhsd,hdm->bsm", z, g(W_O)) + g(b_O)
    return {"out": out, "pattern": p}


OPS = {
    # op: (input names, output names, reference)
    "matmul": (["a", "b"], ["out"], ref_matmul),
    "softmax": (["x"], ["out"], ref_softmax),
    "layer_norm": (["x", "w", "b", "eps"], ["out"], ref_layer_norm),
    "gelu": (["x"], ["out"], lambda x: {"out": gelu_tanh64(x)}),
    "gelu_erf": (["x"], ["out"], lambda x: {"out": gelu_erf64(x)}),
    "attention": (["q", "k", "v", "causal", "scale"], ["out", "pattern"], ref_attention),
    "attention_layer": (
        ["x", "W_Q", "W_K", "W_V", "b_Q", "b_K", "b_V", "W_O", "b_O"],
        ["out", "pattern"],
        ref_attention_layer,
    ),
}


def complete(op, inputs):
    """Inputs plus the expected outputs of the op."""
    names, _, ref = OPS[op]
    return {**inputs, **ref(*[inputs[n] for n in names])}


# --------------------------------------------------------------------------------------------
# The good cases. Each returns the inputs; the expected outputs are added by complete().


def matmul_cases():
    def mm(name, a_shape, b_shape, a_scale=1.0, b_scale=1.0):
        r = rng_for("matmul", name)
        return name, {"a": normal(r, a_shape, a_scale), "b": normal(r, b_shape, b_scale)}

    yield mm("all_ones_1x1x1", (1, 1), (1, 1))
    yield mm("primes_7x13x11", (7, 13), (13, 11))
    yield mm("ragged_257x129x63", (257, 129), (129, 63))
    yield mm("long_k_5x4096x3", (5, 4096), (4096, 3))
    yield mm("batch3d_equal_4x9x6x5", (4, 9, 6), (4, 6, 5))
    yield mm("broadcast_batch_2x1_with_3", (2, 1, 5, 7), (3, 7, 4))
    yield mm("matrix_times_batch", (6, 10), (3, 10, 8))
    yield mm("batch_times_matrix", (3, 6, 10), (10, 8))
    yield mm("rank4_batch_2x3", (2, 3, 4, 5), (2, 3, 5, 6))
    yield mm("row_vector_m1", (1, 300), (300, 17))
    yield mm("column_vector_n1", (19, 300), (300, 1))
    yield mm("outer_product_k1", (9, 1), (1, 7))
    yield mm("tile_multiple_64x64x64", (64, 64), (64, 64))

    name = "mixed_magnitude_rows"
    r = rng_for("matmul", name)
    row_scale = np.array([1e3, 1e-3, 1.0, 1e3, 1e-3, 1.0, 1e-3, 1e3, 1.0, 1e3, 1e-3, 1.0])[:, None]
    a = f32(r.standard_normal((12, 40)) * row_scale)
    a[2, ::2] *= F32(1e3)  # a row whose own entries mix 1e3 and 1e-3
    a[2, 1::2] *= F32(1e-3)
    col_scale = np.array([1e-3, 1.0, 1e3, 1.0, 1e-3, 1e3, 1.0])[None, :]
    yield name, {"a": a, "b": f32(r.standard_normal((40, 7)) * col_scale)}

    # Results far smaller than the terms that make them: a relative tolerance would fail here,
    # SPEC's |a||b| bound does not.
    name = "cancellation"
    r = rng_for("matmul", name)
    a = normal(r, (8, 64))
    b = r.standard_normal((64, 6))
    a64 = a.astype(F64)
    b -= a64.T @ np.linalg.lstsq(a64 @ a64.T, a64 @ b, rcond=None)[0]  # b nearly orthogonal to a's rows
    yield name, {"a": a, "b": f32(b)}


def softmax_cases():
    def sm(name, x):
        return name, {"x": f32(x)}

    r = lambda name: rng_for("softmax", name)
    yield sm("single_element", [-3.75])
    yield sm("typical_8x64", normal(r("typical_8x64"), (8, 64), 3.0))
    yield sm("long_rows_1000", normal(r("long_rows_1000"), (3, 1000), 2.0))
    yield sm("long_rows_4099", normal(r("long_rows_4099"), (2, 4099), 2.0))

    x = r("huge_logits_1e30").standard_normal((4, 9)) * 1e30
    x[3] = [1e30, 1e30 * (1 + 2**-22), -1e30, 0, 5, -5, 1e30, -1e30, 1e-30]
    yield sm("huge_logits_1e30", x)

    x = r("huge_logits_3e38").uniform(-3e38, 3e38, (5, 7))
    x[1] = 3e38  # all equal: uniform
    x[2] = [F32_MAX, -F32_MAX, 0.0, 3e38, -3e38, 1.0, F32_MAX]
    x[3] = [-3e38, -3e38, -3e38, -3e38, -3e38, -3e38, -2.9e38]  # max is far below zero
    x[4] = [3e38, 2.9999998e38, 2.9999996e38, -3e38, 0.0, 3e38, 1e38]
    yield sm("huge_logits_3e38", x)

    # Neighbouring float32 values and differences of a few ulps on top of large offsets.
    x = np.empty((4, 16))
    x[0] = 1.0 + np.arange(16) * 2.0**-23
    x[1] = 1000.0 + np.arange(16) * 2.0**-13
    x[2] = -2.5e4 + np.arange(16) * 2.0**-8
    x[3] = 1e-7 * r("tiny_differences").standard_normal(16)
    yield sm("tiny_differences", x)

    x = normal(r("some_neg_inf"), (4, 12), 2.0)
    x[0, [0, 5, 11]] = -np.inf
    x[1, 1:] = -np.inf  # one finite entry: [1, 0, 0, ...]
    x[2, ::2] = -np.inf
    x[3, 6] = -np.inf
    yield sm("some_neg_inf", x)

    x = normal(r("all_neg_inf_row"), (4, 5))
    x[1] = -np.inf
    x[3, :4] = -np.inf
    yield sm("all_neg_inf_row", x)

    yield sm("rank1_37", normal(r("rank1_37"), (37,), 4.0))
    yield sm("rank3_2x3x50", normal(r("rank3_2x3x50"), (2, 3, 50), 3.0))
    yield sm("ones_shape_1x1x1", [[[0.125]]])
    yield sm("many_short_rows_700x3", normal(r("many_short_rows_700x3"), (700, 3), 5.0))
    yield sm("rows_of_one_10x1", normal(r("rows_of_one_10x1"), (10, 1), 10.0))


def layer_norm_cases():
    def ln(name, x, eps=1e-5, n=None):
        r = rng_for("layer_norm", name + "/wb")
        n = np.shape(x)[-1] if n is None else n
        w = normal(r, (n,), 0.5, 1.0)
        b = normal(r, (n,), 0.5)
        return name, {"x": f32(x), "w": w, "b": b, "eps": scalar64(eps)}

    r = lambda name: rng_for("layer_norm", name)
    yield ln("n1_output_is_b", normal(r("n1_output_is_b"), (5, 1), 3.0))
    yield ln("typical_4x64", normal(r("typical_4x64"), (4, 64), 2.0, 0.3))

    rr = r("large_offset")
    x = np.empty((4, 64))
    x[0] = 1e4 + rr.standard_normal(64)
    x[1] = -3e4 + 3.0 * rr.standard_normal(64)
    x[2] = 1e4 + rr.standard_normal(64)
    x[3] = 2e5 + 20.0 * rr.standard_normal(64)
    yield ln("large_offset", x)

    yield ln("long_rows_3000", normal(r("long_rows_3000"), (2, 3000), 1.5, -0.7))
    yield ln("rank3_2x3x17", normal(r("rank3_2x3x17"), (2, 3, 17)))
    yield ln("eps_1e_12", normal(r("eps_1e_12"), (6, 32), 0.8), eps=1e-12)
    yield ln("eps_0p1", normal(r("eps_0p1"), (6, 32), 0.3), eps=0.1)

    x = normal(r("constant_row"), (3, 16))
    x[1] = 0.7
    yield ln("constant_row", x)
    yield ln("ones_shape_1x1", [[2.5]])
    yield ln("many_rows_300x5", normal(r("many_rows_300x5"), (300, 5), 4.0))


def gelu_like_cases(op):
    def g(name, x):
        return name, {"x": f32(x)}

    r = lambda name: rng_for(op, name)
    yield g("around_zero", np.concatenate([np.linspace(-1, 1, 257), [1e-4, -1e-4, 1e-7, -1e-7]]))
    big = np.array([1e4, -1e4, 9999.5, -9999.5, 1e3, -1e3, 100, -100, 30, -30, 9.5, -9.5])
    logs = 10.0 ** r("large_inputs").uniform(0, 4, 500) * np.where(np.arange(500) % 2, 1, -1)
    yield g("large_inputs", np.concatenate([big, logs]))
    yield g("single_element", [0.8125])
    yield g("odd_length_65537", normal(r("odd_length_65537"), (65537,), 3.0))
    yield g("rank4_2x3x4x5", normal(r("rank4_2x3x4x5"), (2, 3, 4, 5), 2.0))
    tiny = [1e-30, -1e-30, 1e-38, -1e-38, 1e-40, -1e-40, 1e-45, 0.0, -0.0, 1e-20, -3e-25]
    yield g("tiny_values", tiny)
    yield g("negative_moderate", r("negative_moderate").uniform(-10, -3, (5, 100)))
    yield g("grid_linspace_4001", np.linspace(-20, 20, 4001))


def attention_cases():
    def at(name, b, h, sq, sk, d, dv=None, causal=True, scale=None, qk_std=1.0):
        r = rng_for("attention", name)
        dv = d if dv is None else dv
        scale = 1.0 / math.sqrt(d) if scale is None else scale
        return name, {
            "q": normal(r, (b, h, sq, d), qk_std),
            "k": normal(r, (b, h, sk, d), qk_std),
            "v": normal(r, (b, h, sk, dv)),
            "causal": np.array(causal),
            "scale": scalar64(scale),
        }

    yield at("single_token", 1, 1, 1, 1, 1)
    yield at("single_token_d8_noncausal", 1, 1, 1, 1, 8, causal=False)
    yield at("cached_prefix_causal_sq4_sk11", 1, 2, 4, 11, 16)
    yield at("decode_step_sq1_sk20_causal", 1, 2, 1, 20, 16)
    yield at("more_queries_than_keys_causal_sq9_sk5", 1, 2, 9, 5, 8)
    yield at("sq_ne_sk_noncausal_sq6_sk13", 2, 1, 6, 13, 16, causal=False)
    yield at("square_noncausal_9", 1, 2, 9, 9, 12, causal=False)
    yield at("dv_ne_d_24_40", 1, 2, 10, 10, 24, dv=40)
    yield at("wide_heads_256", 1, 2, 33, 33, 256)
    yield at("long_keys_sq16_sk2048_causal", 1, 1, 16, 2048, 32)
    yield at("long_square_512_causal", 1, 1, 512, 512, 64)
    # scale * q.k has a standard deviation of ~300: nearly one-hot rows.
    yield at("peaky_logits_300", 1, 2, 12, 12, 16, qk_std=math.sqrt(300.0))
    yield at("peaky_logits_300_noncausal", 1, 1, 7, 15, 16, causal=False, qk_std=math.sqrt(300.0))
    # Scores near 300 whose top few differ by units: rows that are neither one-hot nor flat.
    name, d = at("peaky_near_ties", 1, 1, 6, 10, 16, causal=False)
    r = rng_for("attention", name + "/ties")
    k0 = r.standard_normal(16)
    d["k"] = f32(k0 + 0.02 * r.standard_normal((1, 1, 10, 16)))
    d["q"] = f32(k0 * (300.0 * 4.0 / (k0 @ k0)) + 0.5 * r.standard_normal((1, 1, 6, 16)))
    yield name, d
    yield at("batch2_heads3", 2, 3, 7, 7, 8)
    yield at("custom_scale_0p37", 2, 1, 5, 8, 20, causal=False, scale=0.37)
    yield at("zero_scale_uniform", 1, 1, 4, 6, 8, scale=0.0)


def attention_layer_cases():
    def al(name, b, s, dm, h, dh, bias_std=0.1, weight_bits=23):
        r = rng_for("attention_layer", name)
        w = 1.0 / math.sqrt(dm)
        wt = lambda shape, std: short_mantissa(normal(r, shape, std), weight_bits)
        return name, {
            "x": normal(r, (b, s, dm)),
            "W_Q": wt((h, dm, dh), w),
            "W_K": wt((h, dm, dh), w),
            "W_V": wt((h, dm, dh), w),
            "b_Q": normal(r, (h, dh), bias_std),
            "b_K": normal(r, (h, dh), bias_std),
            "b_V": normal(r, (h, dh), bias_std),
            "W_O": wt((h, dh, dm), 1.0 / math.sqrt(h * dh)),
            "b_O": normal(r, (dm,), bias_std),
        }

    yield al("single_position", 1, 1, 8, 2, 4)
    yield al("small_b2_s5_dm16_h2_dh8", 2, 5, 16, 2, 8)
    yield al("dh_not_pow2_dm30_h3_dh10", 1, 7, 30, 3, 10)
    yield al("large_biases", 2, 6, 24, 4, 6, bias_std=1.0)
    yield al("dh1_many_heads_h12", 3, 9, 12, 12, 1)
    # Four 512x512 float32 weight matrices do not deflate: keeping 14 of the 23 mantissa bits of
    # the weights (float32 still, far finer than the tolerance) keeps the file under 4 MB.
    yield al("othello_gpt_dm512_h8_dh64_s59", 1, 59, 512, 8, 64, weight_bits=14)


CASES = {
    "matmul": matmul_cases,
    "softmax": softmax_cases,
    "layer_norm": layer_norm_cases,
    "gelu": lambda: gelu_like_cases("gelu"),
    "gelu_erf": lambda: gelu_like_cases("gelu_erf"),
    "attention": attention_cases,
    "attention_layer": attention_layer_cases,
}


# --------------------------------------------------------------------------------------------
# The adversarial cases for `verify`'s own tests.


def bad_cases():
    """Yields (relative path, expected status, why, writer) with writer(path) making the file."""

    def arrays(d):
        return lambda path: save_npz(path, d)

    def good(op, name):
        """Inputs plus the correct expected outputs of one good case, by name."""
        return complete(op, dict(next(c for n, c in CASES[op]() if n == name)))

    # FAIL: well-formed, wrong expected output.
    d = complete("matmul", {"a": normal(rng_for("bad", "mm"), (6, 9)), "b": normal(rng_for("bad", "mm2"), (9, 5))})
    d["out"] = d["out"].copy()
    d["out"][2, 3] += 100.0
    yield "matmul/one_element_changed.npz", "FAIL", "out[2, 3] is off by 100", arrays(d)

    d = complete("softmax", {"x": normal(rng_for("bad", "sm"), (4, 16), 2.0)})
    d["out"] = d["out"].copy()
    d["out"][1] = np.roll(d["out"][1], 3)
    yield "softmax/rolled_row.npz", "FAIL", "row 1 of out is rolled by 3 places", arrays(d)

    d = good("softmax", "all_neg_inf_row")
    d["out"] = d["out"].copy()
    d["out"][1] = np.nan
    yield ("softmax/all_neg_inf_expected_nan.npz", "FAIL",
           "expected NaN for an all -inf row; the answer is 0 and NaN passes only against NaN", arrays(d))

    x = f32(np.linspace(-6, 6, 241))
    yield ("gelu/erf_expected.npz", "FAIL", "expected is the exact (erf) GELU, not the tanh form",
           arrays({"x": x, "out": gelu_erf64(x)}))
    yield ("gelu_erf/tanh_expected.npz", "FAIL", "expected is the tanh GELU, not the erf form",
           arrays({"x": x, "out": gelu_tanh64(x)}))

    d = good("layer_norm", "typical_4x64")
    d["out"] = ref_layer_norm(d["x"], d["b"], d["w"], d["eps"])["out"]
    yield "layer_norm/w_b_swapped.npz", "FAIL", "expected was computed with w and b swapped", arrays(d)

    d = good("layer_norm", "many_rows_300x5")
    x = d["x"].astype(F64)
    c = x - x.mean(-1, keepdims=True)
    var = (c * c).sum(-1, keepdims=True) / (x.shape[-1] - 1)
    d["out"] = c / np.sqrt(var + float(d["eps"])) * d["w"] + d["b"]
    yield "layer_norm/unbiased_variance.npz", "FAIL", "expected used the N-1 (unbiased) variance", arrays(d)

    d = good("attention", "batch2_heads3")
    d.update(ref_attention(d["q"], d["k"], d["v"], False, d["scale"]))
    yield ("attention/noncausal_expected_causal_true.npz", "FAIL",
           "causal is true but expected was computed without the mask", arrays(d))

    d = good("attention", "cached_prefix_causal_sq4_sk11")
    q, k, v = (d[n].astype(F64) for n in "qkv")
    s = float(d["scale"]) * (q @ np.swapaxes(k, -1, -2))
    p = softmax64(s, np.arange(11)[None, :] <= np.arange(4)[:, None])
    d.update({"out": p @ v, "pattern": p})
    yield ("attention/top_left_mask_expected.npz", "FAIL",
           "expected aligned the causal mask top-left (j <= i); SPEC aligns it bottom-right", arrays(d))

    d = good("attention", "square_noncausal_9")
    d["pattern"] = d["pattern"][:, :, ::-1, :].copy()
    yield ("attention/pattern_wrong_out_right.npz", "FAIL",
           "out is right but the rows of pattern are reversed: every output is checked", arrays(d))

    d = good("attention_layer", "small_b2_s5_dm16_h2_dh8")
    d["out"] = d["out"] - d["b_O"]
    yield "attention_layer/b_O_left_out.npz", "FAIL", "expected out lacks b_O", arrays(d)

    # ERROR: cannot be checked.
    mm = good("matmul", "primes_7x13x11")
    drop = lambda d, k: {n: v for n, v in d.items() if n != k}
    yield "matmul/missing_b.npz", "ERROR", "no array b", arrays(drop(mm, "b"))
    yield "matmul/out_missing.npz", "ERROR", "no expected array out", arrays(drop(mm, "out"))
    r = rng_for("bad", "inner")
    yield ("matmul/inner_mismatch.npz", "ERROR", "a is [3, 4] but b is [5, 6]",
           arrays({"a": normal(r, (3, 4)), "b": normal(r, (5, 6)), "out": np.zeros((3, 6))}))
    yield ("matmul/out_wrong_shape.npz", "ERROR", "out is [7, 10], a @ b is [7, 11]",
           arrays({**mm, "out": mm["out"][:, :10].copy()}))
    yield ("matmul/rank1_a.npz", "ERROR", "a has rank 1; matmul needs rank >= 2",
           arrays({"a": normal(r, (4,)), "b": normal(r, (4, 3)), "out": np.zeros((3,))}))
    yield ("matmul/batch_not_broadcastable.npz", "ERROR", "batch dims [2] and [3] do not broadcast",
           arrays({"a": normal(r, (2, 3, 4)), "b": normal(r, (3, 4, 5)), "out": np.zeros((3, 3, 5))}))
    yield ("matmul/a_float16.npz", "ERROR", "a is float16, inputs must be float32",
           arrays({**mm, "a": mm["a"].astype(np.float16)}))
    yield ("matmul/not_a_zip.npz", "ERROR", "a text file with an .npz name",
           lambda p: open(p, "w").write("this is not a zip archive\n"))
    yield ("matmul/truncated.npz", "ERROR", "a valid npz cut off halfway",
           lambda p: (save_npz(p, mm), truncate_half(p)))

    sm = good("softmax", "typical_8x64")
    yield ("softmax/out_shape_mismatch.npz", "ERROR", "x is [8, 64] but out is [8, 63]",
           arrays({**sm, "out": sm["out"][:, :63].copy()}))
    yield "softmax/empty_archive.npz", "ERROR", "a valid zip with no arrays in it", arrays({})

    ln = good("layer_norm", "typical_4x64")
    yield ("layer_norm/w_wrong_length.npz", "ERROR", "x rows have 64 entries but w has 63",
           arrays({**ln, "w": ln["w"][:63].copy()}))
    yield "layer_norm/eps_missing.npz", "ERROR", "no scalar eps", arrays(drop(ln, "eps"))
    yield ("layer_norm/eps_rank1.npz", "ERROR", "eps has shape [1]; scalars are 0-d",
           arrays({**ln, "eps": np.array([1e-5])}))

    ge = good("gelu", "rank4_2x3x4x5")
    yield ("gelu/x_float64.npz", "ERROR", "x is float64, inputs must be float32",
           arrays({**ge, "x": ge["x"].astype(F64)}))
    yield ("gelu/corrupt_npy_header.npz", "ERROR", "x.npy inside the zip is not an npy file",
           lambda p: save_npz(p, {"out": ge["out"]}, {"x.npy": b"\x93NUMPY\x01\x00garbage"}))
    yield ("gelu/x_object_dtype.npz", "ERROR", "x is a pickled object array",
           arrays({"x": np.array([1.0, "two"], dtype=object), "out": np.zeros(2)}))
    ge2 = good("gelu_erf", "rank4_2x3x4x5")
    yield ("gelu_erf/out_float16.npz", "ERROR", "out is float16; expected outputs are float64 or float32",
           arrays({**ge2, "out": ge2["out"].astype(np.float16)}))

    at = good("attention", "batch2_heads3")
    yield ("attention/q_rank3.npz", "ERROR", "q is [6, 7, 8]; attention needs rank 4",
           arrays({**at, "q": at["q"].reshape(6, 7, 8)}))
    yield "attention/causal_missing.npz", "ERROR", "no scalar causal", arrays(drop(at, "causal"))
    yield ("attention/causal_int64.npz", "ERROR", "causal is int64; it must be a 0-d bool",
           arrays({**at, "causal": np.array(1, dtype=np.int64)}))
    yield ("attention/k_head_dim_mismatch.npz", "ERROR", "q has D = 8 but k has D = 7",
           arrays({**at, "k": at["k"][..., :7].copy()}))
    yield ("attention/pattern_wrong_shape.npz", "ERROR", "pattern is [2, 3, 7, 6], should be [2, 3, 7, 7]",
           arrays({**at, "pattern": at["pattern"][..., :6].copy()}))

    al = good("attention_layer", "small_b2_s5_dm16_h2_dh8")
    yield ("attention_layer/W_O_wrong_shape.npz", "ERROR", "W_O is [2, 16, 8], should be [2, 8, 16]",
           arrays({**al, "W_O": np.ascontiguousarray(np.swapaxes(al["W_O"], 1, 2))}))
    yield "attention_layer/b_Q_missing.npz", "ERROR", "no array b_Q", arrays(drop(al, "b_Q"))

    yield ("not_an_op/case.npz", "ERROR", "not_an_op is not an op (the file is a valid matmul fixture)",
           arrays(mm))


def truncate_half(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)


# --------------------------------------------------------------------------------------------
# Checks: schema, tolerance, a float32 implementation.


class Malformed(Exception):
    pass


def validate(op, d):
    """Raises Malformed unless d is a well-formed fixture of op (SPEC: Arrays, Ops)."""
    if op not in OPS:
        raise Malformed(f"unknown op {op!r}")
    ins, outs, _ = OPS[op]
    for n in ins + outs:
        if n not in d:
            raise Malformed(f"missing array {n}")
    for n in ins:
        a = d[n]
        want = {"eps": F64, "scale": F64, "causal": np.bool_}.get(n, F32)
        if a.dtype != want:
            raise Malformed(f"{n} is {a.dtype}, want {np.dtype(want)}")
        if n in ("eps", "scale", "causal") and a.ndim != 0:
            raise Malformed(f"{n} has shape {list(a.shape)}, want 0-d")
    for n in outs:
        if d[n].dtype not in (F64, F32):
            raise Malformed(f"{n} is {d[n].dtype}, want float64 or float32")
    sh = {n: d[n].shape for n in d}

    def need(cond, msg):
        if not cond:
            raise Malformed(msg)

    if op == "matmul":
        a, b = sh["a"], sh["b"]
        need(len(a) >= 2 and len(b) >= 2, f"ranks {len(a)} and {len(b)}, need >= 2")
        need(a[-1] == b[-2], f"a is {list(a)} but b is {list(b)}: inner dims differ")
        try:
            batch = np.broadcast_shapes(a[:-2], b[:-2])
        except ValueError:
            raise Malformed(f"batch dims {list(a[:-2])} and {list(b[:-2])} do not broadcast")
        need(sh["out"] == batch + (a[-2], b[-1]), f"out is {list(sh['out'])}")
    elif op in ("softmax", "layer_norm", "gelu", "gelu_erf"):
        need(len(sh["x"]) >= 1 or op.startswith("gelu"), "x has rank 0")
        need(sh["out"] == sh["x"], f"out is {list(sh['out'])} but x is {list(sh['x'])}")
        if op == "layer_norm":
            need(sh["w"] == sh["x"][-1:] and sh["b"] == sh["x"][-1:], "w or b has the wrong length")
    elif op == "attention":
        q, k, v = sh["q"], sh["k"], sh["v"]
        need(len(q) == len(k) == len(v) == 4, "q, k, v need rank 4")
        need(q[:2] == k[:2] == v[:2] and q[3] == k[3] and k[2] == v[2], "q, k, v disagree")
        need(sh["out"] == q[:3] + v[3:], f"out is {list(sh['out'])}")
        need(sh["pattern"] == q[:3] + (k[2],), f"pattern is {list(sh['pattern'])}")
    elif op == "attention_layer":
        x = sh["x"]
        need(len(x) == 3, "x needs rank 3")
        h, dm, dh = sh["W_Q"] if len(sh["W_Q"]) == 3 else (None, None, None)
        need(dm == x[2], "W_Q disagrees with x")
        for n in ("W_K", "W_V"):
            need(sh[n] == (h, dm, dh), f"{n} is {list(sh[n])}")
        for n in ("b_Q", "b_K", "b_V"):
            need(sh[n] == (h, dh), f"{n} is {list(sh[n])}")
        need(sh["W_O"] == (h, dh, dm), f"W_O is {list(sh['W_O'])}")
        need(sh["b_O"] == (dm,), "b_O has the wrong length")
        need(sh["out"] == x and sh["pattern"] == (x[0], h, x[1], x[1]), "out or pattern shape")


def allowed(op, d, want):
    if op == "matmul":
        k = d["a"].shape[-1]
        return 2 * k * 2.0**-24 * (np.abs(d["a"].astype(F64)) @ np.abs(d["b"].astype(F64))) + 1e-30
    if op in ("attention", "attention_layer"):
        return 1e-4 + 1e-3 * np.abs(want)
    return 1e-5 + 1e-4 * np.abs(want)


def error_ratio(op, d, got):
    """SPEC's error ratio of `got` (dict of outputs) against the expected arrays in d."""
    worst = 0.0
    for n in OPS[op][1]:
        want = d[n].astype(F64)
        g = np.broadcast_to(np.asarray(got[n], dtype=F64), want.shape)
        with np.errstate(invalid="ignore"):
            err = np.abs(g - want)
        same = (g == want) | (np.isnan(g) & np.isnan(want))
        with np.errstate(invalid="ignore"):
            r = err / allowed(op, d, want)
        r = np.where(same, 0.0, np.where(np.isnan(r), np.inf, r))  # NaN on one side only fails
        worst = max(worst, float(np.max(r, initial=0.0)))
    return worst


def softmax32(x, visible=None):
    x = x.astype(F32)
    if visible is not None:
        x = np.where(visible, x, F32(-np.inf))
    m = x.max(axis=-1, keepdims=True)
    live = m > F32(-np.inf)
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(np.where(x == -np.inf, F32(-np.inf), x - np.where(live, m, F32(0))))
    s = e.sum(axis=-1, keepdims=True)
    return np.where(live, e / np.where(live, s, F32(1)), F32(0))


def erf32(z):
    """Abramowitz & Stegun 7.1.26 in float32 (|error| < 1.5e-7): what a shader can do."""
    z = z.astype(F32)
    t = F32(1) / (F32(1) + F32(0.3275911) * np.abs(z))
    poly = t * (F32(0.254829592) + t * (F32(-0.284496736) + t * (F32(1.421413741)
               + t * (F32(-1.453152027) + t * F32(1.061405429)))))
    with np.errstate(under="ignore", over="ignore"):
        return np.sign(z) * (F32(1) - poly * np.exp(-z * z))


def impl32(op, d):
    """A plain float32 implementation, to show that every good fixture is passable."""
    if op == "matmul":
        return {"out": np.matmul(d["a"], d["b"])}
    if op == "softmax":
        return {"out": softmax32(d["x"])}
    if op == "layer_norm":
        x = d["x"]
        dx = x - x[..., :1]
        c = dx - dx.mean(axis=-1, keepdims=True, dtype=F32)
        var = (c * c).mean(axis=-1, keepdims=True, dtype=F32)
        return {"out": c / np.sqrt(var + F32(d["eps"])) * d["w"] + d["b"]}
    if op == "gelu":
        x = d["x"]
        return {"out": F32(0.5) * x * (F32(1) + np.tanh(F32(GELU_C) * (x + F32(0.044715) * x * x * x)))}
    if op == "gelu_erf":
        x = d["x"]
        return {"out": F32(0.5) * x * (F32(1) + erf32(x * F32(1 / SQRT2)))}
    if op == "attention":
        q, k, v = d["q"], d["k"], d["v"]
        s = (q @ np.swapaxes(k, -1, -2)) * F32(d["scale"])
        p = softmax32(s, causal_visible(q.shape[2], k.shape[2]) if bool(d["causal"]) else None)
        return {"out": p @ v, "pattern": p}
    if op == "attention_layer":
        x = d["x"][:, None]  # [B,1,S,dm]
        q, k, v = (x @ d["W_" + n] + d["b_" + n][None, :, None, :] for n in "QKV")
        s = (q @ np.swapaxes(k, -1, -2)) * F32(1 / math.sqrt(q.shape[-1]))
        p = softmax32(s, causal_visible(x.shape[2], x.shape[2]))
        out = np.einsum("bhsd,hdm->bsm", p @ v, d["W_O"]) + d["b_O"]
        return {"out": out, "pattern": p}
    raise ValueError(op)


def load(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def check_good(root, written):
    rows = []
    for op, case, path in written:
        d = load(path)
        validate(op, d)
        ins, outs, _ = OPS[op]
        for n in ins:
            assert d[n].flags.c_contiguous, (path, n)
        for n in outs:
            assert d[n].dtype == F64, (path, n, d[n].dtype)
            assert not np.isnan(d[n]).any(), (path, n, "NaN in expected")
            assert np.isfinite(d[n]).all(), (path, n, "inf in expected")
        for n in ins:
            if d[n].dtype == F32 and not (op == "softmax" and n == "x"):
                assert np.isfinite(d[n]).all(), (path, n)
        ref = complete(op, {n: d[n] for n in ins})
        for n in outs:
            assert np.array_equal(ref[n], d[n]), (path, n, "expected does not reproduce")
        ratio = error_ratio(op, d, impl32(op, d))
        assert ratio <= 0.5, (path, "a float32 implementation fails by", ratio)
        shapes = ", ".join(f"{n}{list(d[n].shape)}" for n in ins + outs if d[n].ndim > 0)
        rows.append((os.path.relpath(path, root), os.path.getsize(path), ratio, shapes))
    return rows


def check_bad(root, manifest):
    for rel, status, why in manifest:
        path = os.path.join(root, rel)
        op = os.path.basename(os.path.dirname(path))
        try:
            d = load(path)
            validate(op, d)
        except Malformed as e:
            assert status == "ERROR", (rel, "malformed but listed as", status, e)
            continue
        except Exception as e:  # unreadable
            assert status == "ERROR", (rel, "unreadable but listed as", status, e)
            continue
        assert status == "FAIL", (rel, "well-formed but listed as", status)
        ins = OPS[op][0]
        ratio = error_ratio(op, d, complete(op, {n: d[n] for n in ins}))
        assert ratio > 10, (rel, "the right answer fails by only", ratio)
        print(f"  {rel:<55} FAIL ratio of the right answer: {ratio:.3g}")


# --------------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(REPO, "fixtures"), help="fixture folder (default: fixtures/)")
    p.add_argument("--bad", default=os.path.join(REPO, "tests", "data", "verify_bad"),
                   help="adversarial fixture folder (default: tests/data/verify_bad/)")
    p.add_argument("--skip-good", action="store_true", help="do not write the good fixtures")
    p.add_argument("--skip-bad", action="store_true", help="do not write the adversarial fixtures")
    args = p.parse_args()

    print(f"numpy {np.__version__}")
    if not args.skip_good:
        written = []
        for op, cases in CASES.items():
            seen = set()
            for case, inputs in cases():
                assert case not in seen and case.replace("_", "").isalnum() and case == case.lower(), case
                seen.add(case)
                path = os.path.join(args.out, op, case + ".npz")
                save_npz(path, complete(op, inputs))
                written.append((op, case, path))
        rows = check_good(args.out, written)
        total = sum(r[1] for r in rows)
        print(f"{'file':<52} {'bytes':>9} {'f32 ratio':>9}  arrays")
        for rel, size, ratio, shapes in rows:
            print(f"{rel:<52} {size:>9} {ratio:>9.3g}  {shapes}")
        print(f"{len(rows)} fixtures, {total} bytes ({total / 2**20:.2f} MiB), largest {max(r[1] for r in rows)}")
        assert max(r[1] for r in rows) < 4 * 2**20 and total < 25 * 2**20

    if not args.skip_bad:
        manifest = []
        for rel, status, why, writer in bad_cases():
            path = os.path.join(args.bad, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            writer(path)
            manifest.append((rel, status, why))
        # Other generators (transformer, transformer_grad, act_patch, ...) list their own cases in the
        # same manifest: keep their rows, replace only the ops written here.
        manifest_path = os.path.join(args.bad, "MANIFEST.tsv")
        ours = {rel.split("/")[0] for rel, _, _ in manifest}
        kept = []
        if os.path.exists(manifest_path):
            with open(manifest_path) as f:
                for line in f.read().splitlines()[1:]:
                    row = tuple(line.split("\t"))
                    if row and row[0].split("/")[0] not in ours:
                        kept.append(row)
        with open(manifest_path, "w") as f:
            f.write("path\texpected_status\twhy\n")
            for row in manifest + kept:
                f.write("\t".join(row) + "\n")
        print(f"{len(manifest)} adversarial fixtures in {args.bad}")
        check_bad(args.bad, manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
