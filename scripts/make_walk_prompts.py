"""Prompt pairs for docs/analysis.md's walkthrough on the grokking-small model (p = 59).

Each row is a clean prompt `a b =` and a corrupt one `a b' =` with b' != b; the answer is
(a + b) mod p and the wrong token the corrupt prompt's answer (a + b') mod p. The tokens follow
`shaderlens games modular` (token p is "="). numpy only; never calls shaderlens.

    python3 scripts/make_walk_prompts.py docs/runs/grokking-small-reference/walk/prompts.npz
"""

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


if __name__ == "__main__":
    np.savez(sys.argv[1], **prompts())
