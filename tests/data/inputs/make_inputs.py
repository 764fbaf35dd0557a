#!/usr/bin/env python3
"""Writes the input-hardening fixtures in this folder (tests/inputs.rs checks them).

    python3 tests/data/inputs/make_inputs.py      # from the repository root; needs numpy only

Every file is `<op>/<case>.npz` as SPEC lays fixtures out, listed in MANIFEST.tsv as
`path<TAB>status<TAB>text` where status is PASS (verify must pass it: GPU and host reference both
match) or ERROR (verify must refuse it with a message containing `text`).

* Layout: Fortran-order and big-endian float32 inputs (and float64 expected outputs) are lossless
  and must be read as the arrays numpy sees.
* Empty: a 0-length dimension anywhere gives an empty output (or SPEC's zeros), never an error.
* Non-finite: NaN and +-inf inputs. The expected outputs are SPEC's formulas evaluated literally
  in numpy float64 (`0.5 x (1 + tanh(...))`, `exp(x - max) / sum`, `(x - mean) / sqrt(var + eps)`),
  so NaN and infinities land where numpy puts them: softmax of a row holding +inf is NaN (inf - inf),
  gelu(-inf) is -inf * 0 = NaN, a NaN in a matmul row makes that output row NaN. The only departures
  are SPEC's own: `-inf` softmax entries give 0 and an all `-inf` (or fully masked) row gives 0.
  Attention never puts a non-finite value of v behind the causal mask: numpy's `pattern @ v` would
  spread it as 0 * NaN, but SPEC's kernels never read keys a query cannot see.
* Refused: float64, integer, bool and complex inputs (SPEC: inputs are float32; converting would
  round), and npy members whose header and data disagree (truncated, extra bytes, a header that
  claims 2^40 elements, an absurdly long or deeply nested header).
"""

import io
import math
import os
import struct
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
F32, F64 = np.float32, np.float64
INF, NAN = np.inf, np.nan
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
rng = np.random.default_rng(20260507)
manifest = []


def member(name, data):
    return (name + ".npy", data)


def npy(arr):
    bio = io.BytesIO()
    np.lib.format.write_array(bio, arr, allow_pickle=False)
    return bio.getvalue()


def raw_npy(header_dict_text, data, version=1):
    """An npy member with a verbatim header dictionary (padded like numpy's)."""
    text = header_dict_text.encode("latin1")
    if version == 1:
        pad = (64 - (10 + len(text) + 1) % 64) % 64
        text = text + b" " * pad + b"\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data
    pad = (64 - (12 + len(text) + 1) % 64) % 64
    text = text + b" " * pad + b"\n"
    return b"\x93NUMPY\x02\x00" + struct.pack("<I", len(text)) + text + data


def save(op, case, arrays, status="PASS", text="", raw=None):
    """Writes <op>/<case>.npz. Arrays keep their own dtype and memory order (np.save writes
    Fortran-ordered arrays with fortran_order True)."""
    members = [member(k, npy(np.asarray(v) if not isinstance(v, np.ndarray) else v)) for k, v in arrays.items()]
    members += list((raw or {}).items())
    path = os.path.join(HERE, op, case + ".npz")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    manifest.append((f"{op}/{case}.npz", status, text))


# --------------------------------------------------------------------------------------------
# SPEC's formulas, literally, in float64 (numpy's NaN and inf semantics).


def f64(a):
    return np.asarray(a, dtype=F64)


def softmax(x, visible=None):
    x = f64(x)
    if visible is not None:
        x = np.where(visible, x, -INF)
    with np.errstate(invalid="ignore", over="ignore"):
        m = np.max(x, axis=-1, keepdims=True, initial=-INF)
        e = np.exp(x - m)
        out = e / np.sum(e, axis=-1, keepdims=True)
    return np.where(m == -INF, 0.0, out)  # SPEC: an all -inf row gives 0


def layer_norm(x, w, b, eps):
    x = f64(x)
    with np.errstate(invalid="ignore", over="ignore"):
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + eps) * f64(w) + f64(b)


def gelu(x):
    x = f64(x)
    with np.errstate(invalid="ignore", over="ignore"):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def gelu_erf(x):
    # 1 + erf(x / sqrt 2) written as erfc(-x / sqrt 2): the same function (also at +-inf and NaN),
    # without the cancellation for very negative x.
    x = f64(x)
    flat = [0.5 * v * math.erfc(-v / math.sqrt(2.0)) for v in x.ravel().tolist()]
    return np.array(flat, dtype=F64).reshape(x.shape)


def matmul(a, b):
    with np.errstate(invalid="ignore", over="ignore"):
        return np.matmul(f64(a), f64(b))


def causal_visible(sq, sk):
    return np.arange(sk)[None, :] <= np.arange(sq)[:, None] + (sk - sq)


def attention(q, k, v, causal, scale):
    with np.errstate(invalid="ignore", over="ignore"):
        s = float(scale) * (f64(q) @ np.swapaxes(f64(k), -1, -2))
        p = softmax(s, causal_visible(q.shape[2], k.shape[2]) if causal else None)
        return p @ f64(v), p


def attention_layer(x, w):
    x = f64(x)
    g = {k: f64(v) for k, v in w.items()}
    with np.errstate(invalid="ignore", over="ignore"):
        q = np.einsum("bsm,hmd->bhsd", x, g["W_Q"]) + g["b_Q"][None, :, None, :]
        k = np.einsum("bsm,hmd->bhsd", x, g["W_K"]) + g["b_K"][None, :, None, :]
        v = np.einsum("bsm,hmd->bhsd", x, g["W_V"]) + g["b_V"][None, :, None, :]
        s = (q @ np.swapaxes(k, -1, -2)) / math.sqrt(w["W_Q"].shape[-1])
        p = softmax(s, causal_visible(x.shape[1], x.shape[1]))
        z = p @ v
        return np.einsum("bhsd,hdm->bsm", z, g["W_O"]) + g["b_O"], p


def normal(*shape):
    return rng.standard_normal(shape).astype(F32)


def scalar(v, dtype=F64):
    return np.array(v, dtype=dtype)


# --------------------------------------------------------------------------------------------
# Layout: Fortran order and big-endian data are lossless and read as numpy reads them.

x = np.asfortranarray(normal(4, 7))
save("softmax", "x_fortran_order", {"x": x, "out": softmax(x)})
x = normal(3, 5).astype(">f4")
save("softmax", "x_big_endian", {"x": x, "out": np.asfortranarray(softmax(x)).astype(">f8")})
a, b = np.asfortranarray(normal(5, 3)), normal(3, 4).astype(">f4")
save("matmul", "a_fortran_b_big_endian", {"a": a, "b": b, "out": matmul(a, b)})
a, b = np.asfortranarray(normal(2, 3, 4, 5)).astype(">f4"), np.asfortranarray(normal(5, 6))
save("matmul", "batched_fortran_big_endian", {"a": a, "b": b, "out": matmul(a, b)})
x, w, b = np.asfortranarray(normal(3, 6)).astype(">f4"), normal(6).astype(">f4"), normal(6)
save("layer_norm", "big_endian_fortran", {"x": x, "w": w, "b": b, "eps": scalar(1e-5).astype(">f8"),
                                          "out": layer_norm(x, w, b, 1e-5)})
x = np.asfortranarray(normal(2, 3, 4)).astype(">f4")
save("gelu", "x_big_endian_fortran", {"x": x, "out": gelu(x)})
save("gelu_erf", "x_big_endian_fortran", {"x": x, "out": gelu_erf(x)})
q, k, v = np.asfortranarray(normal(1, 2, 3, 4)), normal(1, 2, 5, 4).astype(">f4"), np.asfortranarray(normal(1, 2, 5, 3))
o, p = attention(q, k, v, True, 0.5)
save("attention", "qkv_fortran_big_endian", {"q": q, "k": k, "v": v, "causal": np.array(True), "scale": scalar(0.5),
                                             "out": o, "pattern": p})

# --------------------------------------------------------------------------------------------
# Empty: 0-length dimensions give empty outputs (or SPEC's zeros where the output is not empty).

for shape, case in [((0, 5), "rows_0"), ((3, 0), "n_0"), ((2, 0, 4), "middle_0")]:
    x = normal(*shape)
    save("softmax", case, {"x": x, "out": softmax(x)})
for a_shape, b_shape, case in [((0, 4), (4, 3), "m_0"), ((2, 0), (0, 3), "k_0_gives_zeros"), ((3, 4), (4, 0), "n_0"),
                               ((0, 2, 3), (3, 4), "batch_0"), ((1, 2, 3), (0, 3, 2), "broadcast_batch_0")]:
    a, b = normal(*a_shape), normal(*b_shape)
    save("matmul", case, {"a": a, "b": b, "out": matmul(a, b)})
x = normal(0, 4)
save("layer_norm", "rows_0", {"x": x, "w": normal(4), "b": normal(4), "eps": scalar(1e-5), "out": np.zeros((0, 4))})
x = normal(2, 0)
save("layer_norm", "n_0", {"x": x, "w": normal(0), "b": normal(0), "eps": scalar(1e-5), "out": np.zeros((2, 0))})
for shape, case in [((0,), "empty"), ((2, 0, 3), "middle_0")]:
    x = normal(*shape)
    save("gelu", case, {"x": x, "out": gelu(x)})
    save("gelu_erf", case, {"x": x, "out": gelu_erf(x)})
for (qs, ks, vs, causal, case) in [
    ((1, 2, 0, 4), (1, 2, 3, 4), (1, 2, 3, 5), False, "sq_0"),
    ((1, 1, 3, 4), (1, 1, 0, 4), (1, 1, 0, 2), True, "sk_0_gives_zeros"),
    ((0, 2, 3, 4), (0, 2, 3, 4), (0, 2, 3, 4), True, "batch_0"),
    ((1, 1, 2, 0), (1, 1, 3, 0), (1, 1, 3, 2), False, "d_0_uniform_pattern"),
    ((1, 2, 3, 4), (1, 2, 3, 4), (1, 2, 3, 0), True, "dv_0"),
]:
    q, k, v = normal(*qs), normal(*ks), normal(*vs)
    o, p = attention(q, k, v, causal, 0.5)
    save("attention", case, {"q": q, "k": k, "v": v, "causal": np.array(causal), "scale": scalar(0.5), "out": o, "pattern": p})


def layer_weights(h, dm, dh):
    return {"W_Q": normal(h, dm, dh), "W_K": normal(h, dm, dh), "W_V": normal(h, dm, dh), "b_Q": normal(h, dh),
            "b_K": normal(h, dh), "b_V": normal(h, dh), "W_O": normal(h, dh, dm), "b_O": normal(dm)}


for xs, case in [((1, 0, 8), "seq_0"), ((0, 3, 8), "batch_0")]:
    w = layer_weights(2, 8, 4)
    x = normal(*xs)
    o, p = attention_layer(x, w)
    save("attention_layer", case, {"x": x, **w, "out": o, "pattern": p})

# --------------------------------------------------------------------------------------------
# Non-finite inputs propagate as numpy propagates them.

special = [NAN, INF, -INF, 1e4, -1e4, 0.0, 1.0, -1.0, 3.4e38, -3.4e38, -0.0, 1e-30]
x = np.array(special, dtype=F32)
save("gelu", "nonfinite", {"x": x, "out": gelu(x)})
save("gelu_erf", "nonfinite", {"x": x, "out": gelu_erf(x)})

a = normal(5, 6)
b = normal(6, 7)
a[0, 1] = NAN          # row 0 of out is NaN
a[1, 2] = INF          # row 1: +-inf by the sign of b[2, :], NaN where b[2, j] = 0
b[2, 3] = 0.0
a[2, 4] = INF
a[2, 5] = -INF         # row 2: inf - inf = NaN where b[4, j] and b[5, j] have the same sign
b[0, 6] = -INF         # column 6: -inf * a[:, 0] (NaN in row 0 anyway)
save("matmul", "nonfinite", {"a": a, "b": b, "out": matmul(a, b)})
# The vec4 kernel (K and N multiples of 4) too.
a, b = normal(4, 8), normal(8, 8)
a[1, 3], b[5, 2], b[6, 0] = NAN, INF, -INF
save("matmul", "nonfinite_vec4", {"a": a, "b": b, "out": matmul(a, b)})


def softmax_rows(n):
    rows = normal(9, n)
    rows[0, 1] = INF                 # +inf: the whole row is NaN (inf - inf)
    rows[1, 2] = NAN                 # NaN: the whole row is NaN
    rows[2, :] = NAN                 # all NaN
    rows[3, 0], rows[3, 1] = -INF, INF
    rows[4, :] = -INF                # SPEC: all -inf gives all 0
    rows[5, ::2] = -INF              # -inf entries give 0, the rest a normal softmax
    rows[6, 0], rows[6, n - 1] = INF, INF
    rows[7, :] = INF
    rows[8, n - 1] = NAN             # NaN in the last element only
    return rows


for n, case in [(6, "nonfinite"), (1500, "nonfinite_long_rows")]:
    x = softmax_rows(n)
    save("softmax", case, {"x": x, "out": softmax(x)})

for n, case in [(6, "nonfinite"), (1500, "nonfinite_long_rows")]:
    x = normal(6, n)
    x[0, 1] = INF
    x[1, 2] = NAN
    x[2, :] = -INF
    x[3, 0] = -INF
    x[4, n - 1] = INF
    w, b = normal(n), normal(n)
    save("layer_norm", case, {"x": x, "w": w, "b": b, "eps": scalar(1e-5), "out": layer_norm(x, w, b, 1e-5)})
x, w, b = normal(3, 5), normal(5), normal(5)
w[1], b[3] = INF, NAN
save("layer_norm", "nonfinite_w_b", {"x": x, "w": w, "b": b, "eps": scalar(1e-5), "out": layer_norm(x, w, b, 1e-5)})

# Attention, not causal: NaN in one query, +-inf in one key, NaN in one value row.
q, k, v = normal(1, 2, 5, 8), normal(1, 2, 6, 8), normal(1, 2, 6, 3)
q[0, 0, 1, 3] = NAN          # head 0, query 1: pattern and out rows NaN
k[0, 1, 2, 0] = INF          # head 1, key 2: score +inf (NaN row) or -inf (zero weight) by sign of q
q[0, 1, :, 0] = [1.0, -1.0, 2.0, -0.5, 0.0]  # query 4 gets 0 * inf = NaN
v[0, 0, 3, 1] = NAN          # head 0, value 3: column 1 of every out row NaN
o, p = attention(q, k, v, False, 0.35)
save("attention", "nonfinite", {"q": q, "k": k, "v": v, "causal": np.array(False), "scale": scalar(0.35),
                                "out": o, "pattern": p})
# Causal: only keys every query sees (key 0) hold non-finite k or v; query 3 has a NaN.
q, k, v = normal(1, 2, 5, 4), normal(1, 2, 5, 4), normal(1, 2, 5, 6)
k[0, 0, 0, 1] = -INF
q[0, 0, :, 1] = [1.0, 2.0, -1.0, 0.5, 3.0]   # query 2 sees +inf at key 0: NaN; others -inf: weight 0
q[0, 1, 3, 2] = NAN
v[0, 1, 0, 4] = INF
o, p = attention(q, k, v, True, 0.5)
save("attention", "nonfinite_causal", {"q": q, "k": k, "v": v, "causal": np.array(True), "scale": scalar(0.5),
                                       "out": o, "pattern": p})
# Long rows (the softmax and fused kernels walk keys in segments and blocks).
q, k, v = normal(1, 1, 3, 4), normal(1, 1, 700, 4), normal(1, 1, 700, 4)
q[0, 0, 1, 0] = NAN
k[0, 0, 650, :] = [INF, 0.0, 0.0, 0.0]
q[0, 0, 0, 0], q[0, 0, 2, 0] = 1.0, -1.0
o, p = attention(q, k, v, False, 0.5)
save("attention", "nonfinite_long_keys", {"q": q, "k": k, "v": v, "causal": np.array(False), "scale": scalar(0.5),
                                          "out": o, "pattern": p})

w = layer_weights(2, 8, 4)
x = normal(2, 4, 8)
x[0, 0, 3] = NAN             # batch 0, position 0: every later position sees it; all NaN
w["b_O"][2] = INF            # column 2 of out: +inf (NaN in batch 0)
o, p = attention_layer(x, w)
save("attention_layer", "nonfinite", {"x": x, **w, "out": o, "pattern": p})

# --------------------------------------------------------------------------------------------
# Refused: dtypes SPEC does not allow for inputs, and npy members that disagree with themselves.

x = normal(2, 3)
for dtype, name in [(F64, "float64"), (np.int64, "int64"), (np.int32, "int32"), (np.uint8, "uint8"),
                    (np.bool_, "bool"), (np.complex64, "complex64"), (np.float16, "float16"), (">f8", "float64")]:
    arr = x.astype(dtype)
    case = "x_" + np.dtype(dtype).str.replace("<", "le_").replace(">", "be_").replace("|", "")
    save("gelu", case, {"x": arr, "out": gelu(x)}, "ERROR", f"x is {name} [2, 3] but inputs must be float32")
a = normal(2, 3)
save("matmul", "b_int64", {"a": a, "b": np.arange(12).reshape(3, 4), "out": np.zeros((2, 4))}, "ERROR",
     "b is int64 [3, 4] but inputs must be float32")

f4 = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }"
good = normal(10)
save("gelu", "npy_truncated", {"out": gelu(good)}, "ERROR", "truncated: its header says float32 [10] (40 bytes of data)",
     raw={"x.npy": raw_npy(f4 % "(10,)", good.tobytes()[:20])})
save("gelu", "npy_claims_2_to_the_40", {"out": gelu(good)}, "ERROR", "truncated: its header says float32 [1099511627776]",
     raw={"x.npy": raw_npy(f4 % "(1099511627776,)", good.tobytes())})
save("gelu", "npy_shape_overflows", {"out": gelu(good)}, "ERROR", "overflows",
     raw={"x.npy": raw_npy(f4 % "(4294967296, 4294967296, 4294967296)", good.tobytes())})
save("gelu", "npy_extra_bytes", {"out": gelu(good)}, "ERROR", "more data than its header's float32 [10] needs",
     raw={"x.npy": raw_npy(f4 % "(10,)", good.tobytes() + b"\0\0\0\0")})
save("gelu", "npy_header_nested", {"out": gelu(good)}, "ERROR", "nests brackets more than",
     raw={"x.npy": raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (10,), 'x': " + "(" * 3000 + ")" * 3000 + "}",
                           good.tobytes(), version=2)})
save("gelu", "npy_header_4_gib", {"out": gelu(good)}, "ERROR", "more than the 65536 accepted",
     raw={"x.npy": b"\x93NUMPY\x02\x00" + struct.pack("<I", 0xFFFFFFF0) + b"{'descr'"})
save("gelu", "npy_negative_shape", {"out": gelu(good)}, "ERROR", "bad npy header",
     raw={"x.npy": raw_npy(f4 % "(-10,)", good.tobytes())})
q, k, v = normal(1, 1, 2, 4), normal(1, 1, 2, 4), normal(1, 1, 2, 4)
o, p = attention(q, k, v, True, 0.5)
save("attention", "causal_byte_7", {"q": q, "k": k, "v": v, "scale": scalar(0.5), "out": o, "pattern": p}, "ERROR",
     "bool data holds the byte 7",
     raw={"causal.npy": raw_npy("{'descr': '|b1', 'fortran_order': False, 'shape': (), }", b"\x07")})
save("attention", "scale_float32_ok", {"q": q, "k": k, "v": v, "causal": np.array(True), "scale": scalar(0.5, F32),
                                       "out": o, "pattern": p})

with open(os.path.join(HERE, "MANIFEST.tsv"), "w") as f:
    f.write("path\tstatus\ttext\n")
    for row in manifest:
        f.write("\t".join(row) + "\n")
print(f"wrote {len(manifest)} fixtures")
