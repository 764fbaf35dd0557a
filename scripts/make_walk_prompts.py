"""Prompt pairs for docs/analysis.md's walkthrough on the grokking-small model (p = 59).

Each row is a clean prompt `a b =` and a corrupt one `a b' =` with b' != b; the answer is
(a + b) mod p and the wrong token the corrupt prompt's answer (a + b') mod p. The tokens follow
`shaderlens games modular` (token p is "="). numpy only; never calls shaderlens.

    python3 scripts/make_walk_prompts.py docs/runs/grokking-small-reference/walk/prompts.npz
    python3 scripts/make_walk_prompts.py --split DIR   # the same rows, one file per row: DIR/row<i>.npz
"""

import os
import sys

import numpy as np

P = 59
ROWS = 64
SEED = 17


def prompts(p: int = P, rows: int = ROWS, seed: int = SEED) -> dict:
    """clean, corrupt int64 [rows, 3]; answer, wrong int64 [rows]."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, p, rows)
    b = rng.integers(0, p, rows)
    shift = rng.integers(1, p, rows)  # never 0, so b' != b and wrong != answer
    b2 = (b + shift) % p
    eq = np.full(rows, p)
    clean = np.stack([a, b, eq], axis=1).astype(np.int64)
    corrupt = np.stack([a, b2, eq], axis=1).astype(np.int64)
    answer = ((a + b) % p).astype(np.int64)
    wrong = ((a + b2) % p).astype(np.int64)
    return {"clean": clean, "corrupt": corrupt, "answer": answer, "wrong": wrong}


def split(folder: str) -> None:
    """One prompts file per row (for per-prompt patching sweeps)."""
    os.makedirs(folder, exist_ok=True)
    d = prompts()
    for i in range(ROWS):
        np.savez(os.path.join(folder, f"row{i:02d}.npz"), **{k: v[i : i + 1] for k, v in d.items()})


if __name__ == "__main__":
    if sys.argv[1] == "--split":
        split(sys.argv[2])
    else:
        np.savez(sys.argv[1], **prompts())
