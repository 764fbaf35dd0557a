#!/usr/bin/env python3
"""Checks an Othello games file (SPEC's Games -> Othello) with an engine of its own.

    python3 scripts/check_othello_games.py games.npz [--max-games N]

Replays every game with scripts/othello_numpy.py (numpy only; it never calls shaderlens) and checks:
dtypes and shapes; every move legal; `boards`, `player` and `legal` exact after every move;
padding (tokens 0, boards, player and legal empty) exactly after the end; and, roughly, that each
move was chosen uniformly among the legal ones (chi-square per number of choices, and the first
move). Prints what it checked; exit code 0 all good, 1 a check failed, 2 the file is unreadable.
"""

import argparse
import sys

import numpy as np

import othello_numpy as engine

SPEC = {
    "tokens": (np.int64, 2),
    "boards": (np.int8, 3),
    "player": (np.int8, 2),
    "legal": (np.bool_, 3),
}


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def check_layout(data):
    for name, (dtype, rank) in SPEC.items():
        if name not in data:
            fail(f"array {name!r} is missing")
        a = data[name]
        if a.dtype != dtype or a.ndim != rank:
            fail(f"{name} is {a.dtype} of rank {a.ndim}; SPEC says {np.dtype(dtype)} of rank {rank}")
    n = data["tokens"].shape[0]
    want = {"tokens": (n, 60), "boards": (n, 60, 64), "player": (n, 60), "legal": (n, 60, 64)}
    for name, shape in want.items():
        if data[name].shape != shape:
            fail(f"{name} has shape {data[name].shape}; expected {shape}")
    return n


def first_mismatch(got, want, active, t, what):
    bad = np.nonzero(np.any((got != want).reshape(len(got), -1), axis=1) & active)[0]
    if len(bad):
        g = bad[0]
        fail(f"game {g}, move {t}: {what} is {got[g].tolist()}, the engine says {want[g].tolist()} ({len(bad)} games differ)")


def check_games(data):
    """Replays all games in lockstep; returns (choices, picks): for each move, the number of legal
    squares and the rank of the chosen one among them."""
    tokens, boards, player, legal = (data[k] for k in ("tokens", "boards", "player", "legal"))
    n = len(tokens)
    board, side = engine.start(n)
    moves = engine.legal(board, side)
    choices, picks = [], []
    for t in range(60):
        active = side != 0
        over = ~active
        tok = tokens[:, t]
        # Padding exactly after the end.
        for name, arr in (("token", tok), ("player", player[:, t]), ("board", boards[:, t]), ("legal", legal[:, t])):
            nonzero = np.any(arr.reshape(n, -1) != 0, axis=1) & over
            if nonzero.any():
                g = np.nonzero(nonzero)[0][0]
                fail(f"game {g}, move {t}: {name} is not padding after the end of the game")
        bad = active & ((tok < 1) | (tok > 60))
        if bad.any():
            g = np.nonzero(bad)[0][0]
            fail(f"game {g}, move {t}: token {tok[g]} is not a move but the game is not over")
        squares = engine.SQUARE_OF_TOKEN[np.clip(tok, 0, 60)]
        ok = moves[np.arange(n), np.clip(squares, 0, 63)]
        bad = active & ~ok
        if bad.any():
            g = np.nonzero(bad)[0][0]
            fail(f"game {g}, move {t}: square {squares[g]} (token {tok[g]}) is not legal for {side[g]}")
        rank = np.cumsum(moves, axis=1) - 1
        choices.append(moves.sum(axis=1)[active])
        picks.append(rank[np.arange(n), np.clip(squares, 0, 63)][active])
        first_mismatch(player[:, t], side, active, t, "player")
        engine.play(board, side, np.clip(squares, 0, 63), active)
        first_mismatch(boards[:, t], board.reshape(n, 64), active, t, "board")
        side, moves = engine.next_side(board, side)
        first_mismatch(legal[:, t], moves, active, t, "legal set")
    return np.concatenate(choices), np.concatenate(picks)


def chi_square_z(counts):
    """Wilson-Hilferty z-score of the chi-square statistic of counts against a uniform split."""
    k = len(counts)
    expected = counts.sum() / k
    chi2 = ((counts - expected) ** 2 / expected).sum()
    df = k - 1
    return ((chi2 / df) ** (1 / 3) - (1 - 2 / (9 * df))) / np.sqrt(2 / (9 * df))


def check_uniform(data, choices, picks, z_limit=5.0):
    tested = 0
    worst = (0.0, None)
    for k in range(2, 40):
        mask = choices == k
        if mask.sum() < 20 * k:  # too few moves with k choices for a meaningful test
            continue
        counts = np.bincount(picks[mask], minlength=k).astype(float)
        z = chi_square_z(counts)
        tested += 1
        if z > worst[0]:
            worst = (z, k)
        if z > z_limit:
            fail(f"moves with {k} legal choices pick the j-th legal square with counts {counts.astype(int).tolist()} "
                 f"(chi-square z = {z:.1f} > {z_limit}): not uniform")
    first = np.bincount(data["tokens"][:, 0], minlength=61)
    print(f"uniformity: {tested} chi-square tests by number of choices, worst z = {worst[0]:.2f} (k = {worst[1]}); "
          f"first moves {dict((int(t), int(c)) for t, c in enumerate(first) if c)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path")
    parser.add_argument("--max-games", type=int, default=None, help="check only the first N games")
    args = parser.parse_args()
    try:
        with np.load(args.path) as f:
            data = {k: f[k][: args.max_games] if args.max_games else f[k] for k in f.files}
    except Exception as e:  # noqa: BLE001 - any unreadable file is exit code 2
        print(f"ERROR: cannot read {args.path}: {e}")
        sys.exit(2)
    n = check_layout(data)
    choices, picks = check_games(data)
    lengths = (data["tokens"] != 0).sum(axis=1)
    passes = (data["player"][:, 1:] == data["player"][:, :-1]) & (data["player"][:, 1:] != 0)
    print(f"{args.path}: {n} games, every move legal, boards, players and legal sets exact, padding right; "
          f"lengths {lengths.min()}..{lengths.max()} (mean {lengths.mean():.2f}), {int(passes.any(axis=1).sum())} games with a pass")
    check_uniform(data, choices, picks)
    print("OK")


if __name__ == "__main__":
    main()
