"""Python's `Model.run_with_cache` against the Rust `Model::run` it wraps, at Othello-GPT's shape
(8 layers, d_model 512, 8 heads of 64, d_mlp 2048, vocabulary 61, 59 moves), every default hook
cached and read back, in one process on one adapter.

    python python/benches/run_with_cache.py [--batch 64] [--reps 3] [--json]

Both figures come from the same call: the Python figure is the whole `run_with_cache` as a user
makes it (token conversion, the names filter, the forward and read back, numpy arrays for every
activation, the Cache); the Rust figure is the `Model::run` inside it, timed in Rust
(`_shaderlens.Model.last_run_seconds`: forward and read back, no Python objects). Their difference
is what Python adds, free of the run-to-run noise of a shared machine; medians are reported.

It also times what a Python hook function costs: `run_with_hooks` with one `(name, fn)` hook on
`blocks.4.hook_resid_pre` against the same change made declaratively (`shaderlens.scale`, applied on
the GPU): the hook function takes two forward passes, a read back and an upload.
"""

import argparse
import json
import statistics
import sys
import time

import numpy as np

import shaderlens

CONFIG = {
    "n_layers": 8, "d_model": 512, "n_heads": 8, "d_head": 64, "d_mlp": 2048, "d_vocab": 61,
    "d_vocab_out": 61, "n_ctx": 59, "act_fn": "gelu", "normalization_type": "LN", "attn_only": False,
    "eps": 1e-5, "positional_embedding_type": "standard",
}


def othello_gpt_weights(rng):
    """Random float32 weights of Othello-GPT's shape (scaled like the fixtures' weights)."""
    c = CONFIG
    dm, h, dh, dmlp = c["d_model"], c["n_heads"], c["d_head"], c["d_mlp"]

    def normal(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = {"embed.W_E": normal(c["d_vocab"], dm), "pos_embed.W_pos": normal(c["n_ctx"], dm, scale=0.5)}
    for l in range(c["n_layers"]):
        p = f"blocks.{l}"
        for ln in ("ln1", "ln2"):
            w[f"{p}.{ln}.w"] = 1 + normal(dm, scale=0.1)
            w[f"{p}.{ln}.b"] = normal(dm, scale=0.1)
        for name in ("W_Q", "W_K", "W_V"):
            w[f"{p}.attn.{name}"] = normal(h, dm, dh, scale=dm**-0.5)
            w[f"{p}.attn.b_{name[-1]}"] = normal(h, dh, scale=0.1)
        w[f"{p}.attn.W_O"] = normal(h, dh, dm, scale=(h * dh) ** -0.5)
        w[f"{p}.attn.b_O"] = normal(dm, scale=0.1)
        w[f"{p}.mlp.W_in"] = normal(dm, dmlp, scale=dm**-0.5)
        w[f"{p}.mlp.b_in"] = normal(dmlp, scale=0.1)
        w[f"{p}.mlp.W_out"] = normal(dmlp, dm, scale=dmlp**-0.5)
        w[f"{p}.mlp.b_out"] = normal(dm, scale=0.1)
    w["ln_final.w"] = 1 + normal(dm, scale=0.1)
    w["ln_final.b"] = normal(dm, scale=0.1)
    w["unembed.W_U"] = normal(dm, c["d_vocab_out"], scale=dm**-0.5)
    w["unembed.b_U"] = normal(c["d_vocab_out"], scale=0.1)
    return w


def progress(line):
    """One line per measurement on stderr, so that a long run shows where it is."""
    print(line, file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64, help="games of 59 moves (default 64)")
    parser.add_argument("--reps", type=int, default=3, help="timed calls of each (default 3)")
    parser.add_argument("--hook-reps", type=int, default=None, help="timed hook-function calls (default: --reps; 0: skip)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    rng = np.random.default_rng(8)
    model = shaderlens.Model.from_arrays(CONFIG, othello_gpt_weights(rng))
    tokens = rng.integers(1, 61, size=(args.batch, 59))
    # Warm-up: pipelines compiled, scratch buffers allocated, autotuning done.
    _, cache = model.run_with_cache(tokens)
    cached_bytes = sum(a.nbytes for a in cache.values())
    del cache
    python_s, rust_s = [], []
    for _ in range(args.reps):
        start = time.perf_counter()
        logits, cache = model.run_with_cache(tokens)
        python_s.append(time.perf_counter() - start)
        rust_s.append(model._native.last_run_seconds())
        del logits, cache
        progress(f"run_with_cache {python_s[-1] * 1e3:.1f} ms, Rust Model::run {rust_s[-1] * 1e3:.1f} ms")
    hook_s, declarative_s = [], []
    for _ in range(args.reps if args.hook_reps is None else args.hook_reps):
        start = time.perf_counter()
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.4.hook_resid_pre", lambda a, hook: a * 0.5)])
        hook_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        model.run_with_hooks(tokens, fwd_hooks=[shaderlens.scale("blocks.4.hook_resid_pre", 0.5)])
        declarative_s.append(time.perf_counter() - start)
        progress(f"hook function {hook_s[-1] * 1e3:.1f} ms, declarative {declarative_s[-1] * 1e3:.1f} ms")
    py_med, rs_med = statistics.median(python_s), statistics.median(rust_s)
    hook_med = statistics.median(hook_s) if hook_s else None
    decl_med = statistics.median(declarative_s) if declarative_s else None
    row = {
        "adapter": shaderlens.adapter(), "batch": args.batch, "seq": 59, "reps": args.reps,
        "cached_hooks": len(model.hook_names()), "cached_mib": round(cached_bytes / 2**20, 1),
        "python_ms": [round(s * 1e3, 1) for s in python_s], "rust_ms": [round(s * 1e3, 1) for s in rust_s],
        "python_median_ms": round(py_med * 1e3, 1), "rust_median_ms": round(rs_med * 1e3, 1),
        "python_over_rust": round(py_med / rs_med, 4),
        "python_overhead_median_ms": round(statistics.median(p - r for p, r in zip(python_s, rust_s)) * 1e3, 2),
        "hook_fn_median_ms": hook_med and round(hook_med * 1e3, 1),
        "declarative_median_ms": decl_med and round(decl_med * 1e3, 1),
        "hook_fn_over_declarative": hook_med and round(hook_med / decl_med, 3),
    }
    if args.json:
        print(json.dumps(row))
    else:
        for key, value in row.items():
            print(f"{key:>18}: {value}")


if __name__ == "__main__":
    main()
