"""Spearman rank correlation between attribution patching and the exact patching sweeps.

Reads npz files written by `shaderlens patch --sweep all --attribution` (numpy only; never calls
shaderlens) and prints one markdown row per file: for each sweep, the rank correlation between
the exact patch effect `patch.<sweep> - corrupt_metric` and the attribution estimate of the same
patch, built from the `attr.<hook>` arrays as the sweep groups its patches:

- resid_pre, attn_out, mlp_out [n_layers, S]: attr of blocks.{l}.hook_<x> [B, S], batch mean;
- z_all_pos, q/k/v_all_pos [n_layers, n_heads]: attr of attn.hook_<x> [B, S, H], summed over
  positions, batch mean;
- z_by_pos [n_layers, S, n_heads]: attr of attn.hook_z, batch mean;
- pattern_all_pos [n_layers, n_heads]: attr of attn.hook_pattern [B, H, S_q] (already summed over
  key positions), summed over query positions, batch mean.

(The sweeps report the batch mean of the metric, attribution differentiates its batch sum: hence
the mean.) Ties get average ranks; a sweep whose effects or estimates are all equal has no rank
correlation and prints "-". With `--nonzero` the patches whose exact effect and estimate are
both negligible (within 1e-4 of the sweep's largest |effect|: a patch of an activation that is
the same in both runs, or that cannot reach the last position, whose exact effect is float32
noise) are dropped, so that they do not inflate the correlation.

A PATH with a `*` is a glob: the files (e.g. one `patch` output per prompt pair) are pooled,
every patch of every file one point, so that the correlation runs over prompts as well as over
layers, positions and heads.

    python3 scripts/attribution_vs_patching.py [--nonzero] NAME=sweeps.npz [NAME='per_prompt/*.npz' ...]
"""

import glob
import sys

import numpy as np

SWEEPS = ["resid_pre", "attn_out", "mlp_out", "z_all_pos", "z_by_pos", "q_all_pos", "k_all_pos", "v_all_pos", "pattern_all_pos"]


def ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), 0-based."""
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        r[order[i : j + 1]] = (i + j) / 2.0
        i = j + 1
    return r


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the average ranks; NaN when either side is constant."""
    if a.size < 2:
        return float("nan")
    ra, rb = ranks(a.ravel()), ranks(b.ravel())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def estimate(d, sweep: str, n_layers: int) -> np.ndarray:
    """The attribution estimate of every patch of `sweep`, in the sweep's shape."""
    out = []
    for l in range(n_layers):
        if sweep in ("resid_pre", "attn_out", "mlp_out"):
            out.append(d[f"attr.blocks.{l}.hook_{sweep}"].mean(axis=0))
        elif sweep == "z_by_pos":
            out.append(d[f"attr.blocks.{l}.attn.hook_z"].mean(axis=0))
        elif sweep == "pattern_all_pos":
            out.append(d[f"attr.blocks.{l}.attn.hook_pattern"].sum(axis=2).mean(axis=0))
        else:
            hook = sweep.split("_")[0]
            out.append(d[f"attr.blocks.{l}.attn.hook_{hook}"].sum(axis=1).mean(axis=0))
    return np.stack(out)


def pairs(path: str, sweep: str):
    """(exact effects, estimates) of one file's sweep, flattened; None if it lacks the sweep."""
    d = np.load(path)
    key = f"patch.{sweep}"
    if key not in d.files:
        return None
    effect = d[key] - float(d["corrupt_metric"])
    est = estimate(d, sweep, effect.shape[0])
    if est.shape != effect.shape:
        raise SystemExit(f"{path}: {sweep}: estimate {est.shape} vs sweep {effect.shape}")
    return effect.ravel(), est.ravel()


def row(name: str, path: str) -> str:
    paths = sorted(glob.glob(path)) if "*" in path else [path]
    if not paths:
        raise SystemExit(f"{path}: no such files")
    cells = []
    for sweep in SWEEPS:
        got = [pairs(p, sweep) for p in paths]
        if any(g is None for g in got):
            cells.append("n/a")
            continue
        effect = np.concatenate([g[0] for g in got])
        est = np.concatenate([g[1] for g in got])
        if NONZERO:
            tol = 1e-4 * np.abs(effect).max(initial=0.0)
            keep = (np.abs(effect) > tol) | (np.abs(est) > tol)
            effect, est = effect[keep], est[keep]
        rho = spearman(effect, est)
        cells.append("-" if np.isnan(rho) else f"{rho:.2f} ({effect.size})")
    return f"| {name} | " + " | ".join(cells) + " |"


NONZERO = False


def main(args) -> None:
    global NONZERO
    if args and args[0] == "--nonzero":
        NONZERO, args = True, args[1:]
    print("| model | " + " | ".join(SWEEPS) + " |")
    print("|---" * (len(SWEEPS) + 1) + "|")
    for arg in args:
        name, _, path = arg.partition("=")
        print(row(name, path))


if __name__ == "__main__":
    main(sys.argv[1:])
