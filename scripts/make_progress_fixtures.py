"""Writes tests/data/progress/*.npz: grokking's progress measures (Nanda et al. 2023) computed
in numpy alone from a random embedding and a random logit table, for tests/progress_measures.rs.
Never calls shaderlens.

Each case holds the inputs `w_e` [p+1, d] and `logits` [p, p, p] (a, b, c), the training pairs
`train` [n, 2], `keys` (the key frequencies to use) and the expected `basis` [p, p],
`embedding_norms` [(p+1)/2], `key_part` [p, p, p], `restricted_loss` (all pairs) and
`excluded_loss` (training pairs). Run: python3 scripts/make_progress_fixtures.py
"""

import os

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "progress")


def basis(p):
    x = np.arange(p)
    rows = [np.ones(p)]
    for k in range(1, (p - 1) // 2 + 1):
        rows.append(np.cos(2 * np.pi * k * x / p))
        rows.append(np.sin(2 * np.pi * k * x / p))
    b = np.stack(rows)
    return b / np.linalg.norm(b, axis=1, keepdims=True)


def embedding_norms(w_e, p):
    c = basis(p) @ w_e[:p]
    sq = (c ** 2).sum(axis=1)
    return np.array([np.sqrt(sq[0])] + [np.sqrt(sq[2 * k - 1] + sq[2 * k]) for k in range(1, (p - 1) // 2 + 1)])


def key_part(logits, keys):
    p = logits.shape[0]
    a, b, c = np.meshgrid(np.arange(p), np.arange(p), np.arange(p), indexing="ij")
    part = np.zeros_like(logits)
    for k in keys:
        for trig in (np.cos, np.sin):
            d = trig(2 * np.pi * k * (a + b - c) / p)
            part += (logits * d).sum() / (d * d).sum() * d
    return part


def loss(logits, pairs):
    p = logits.shape[0]
    rows = logits[pairs[:, 0], pairs[:, 1]]
    lse = np.log(np.exp(rows - rows.max(axis=1, keepdims=True)).sum(axis=1)) + rows.max(axis=1)
    return float((lse - rows[np.arange(len(pairs)), (pairs[:, 0] + pairs[:, 1]) % p]).mean())


def case(name, p, d, keys, seed):
    rng = np.random.default_rng(seed)
    w_e = rng.standard_normal((p + 1, d))
    a, b, c = np.meshgrid(np.arange(p), np.arange(p), np.arange(p), indexing="ij")
    # A table with real structure in the key frequencies plus noise, so both losses move.
    logits = rng.standard_normal((p, p, p))
    for k in keys:
        logits += 3.0 * np.cos(2 * np.pi * k * (a + b - c) / p + rng.uniform(0, 2 * np.pi))
    pairs = np.array([(i, j) for i in range(p) for j in range(p)])
    train = pairs[rng.permutation(len(pairs))[: len(pairs) // 2]]
    part = key_part(logits, keys)
    np.savez(
        os.path.join(OUT, f"{name}.npz"),
        w_e=w_e,
        logits=logits,
        train=train.astype(np.int64),
        keys=np.array(keys, dtype=np.int64),
        basis=basis(p),
        embedding_norms=embedding_norms(w_e, p),
        key_part=part,
        restricted_loss=np.array(loss(part, pairs)),
        excluded_loss=np.array(loss(logits - part, train)),
    )


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    case("p7", 7, 5, [2], 0)
    case("p11", 11, 8, [1, 4], 1)
