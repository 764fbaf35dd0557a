"""Prompt pairs for an activation-patching map of an Othello-GPT (docs/analysis.md, docs/runs/othello).

Each row is a clean game prefix of S moves and a corrupt one that differs in exactly one earlier move
(ply c, by default 4 plies before the end, the same ply in every row so that a
batch-mean patching map reads position by position): the corrupt game plays another legal square there and then the
same later moves, kept only when every later move is still legal and the side to move is the same
at every ply. The answer is a square legal after the clean prefix but not after the corrupt one,
the wrong token one legal after the corrupt prefix but not after the clean one (neither played in
either prefix, so the difference comes from flipped stones), so the logit
difference at the last position measures whether the model tracked the board change. Tokens follow
SPEC's Games -> Othello (1..60, 0 padding). numpy only, through scripts/othello_numpy.py; never
calls shaderlens.

    python3 scripts/make_othello_patch_prompts.py OUT.npz [--rows 32] [--length 20] [--ply 16] [--seed 5]
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import othello_numpy as ot  # noqa: E402


def replay(squares, first_side=1):
    """Plays one game's squares from the start; returns (board, side to move after, that side's
    legal [64], the sides that moved) or None if a move is illegal."""
    board, side = ot.start(1)
    sides = []
    for sq in squares:
        if not ot.legal(board, side)[0, sq]:
            return None
        sides.append(int(side[0]))
        ot.play(board, side, np.array([sq]), np.array([True]))
        side, moves = ot.next_side(board, side)
    return board, int(side[0]), moves[0], sides


def pairs(rows, length, ply, seed):
    rng = np.random.default_rng(seed)
    games = ot.random_games(rows * 20, rng)
    out = {"clean": [], "corrupt": [], "answer": [], "wrong": [], "corrupted_ply": []}
    for g in range(len(games["tokens"])):
        if len(out["clean"]) == rows:
            break
        tokens = games["tokens"][g, :length]
        if (tokens == 0).any():
            continue
        squares = ot.SQUARE_OF_TOKEN[tokens]
        clean = replay(squares)
        c = ply
        # The legal squares at ply c: after ply c - 1 (legal_out) for the side that moved at c.
        options = np.nonzero(games["legal"][g, c - 1])[0]
        options = options[options != squares[c]]
        if clean is None or len(options) == 0:
            continue
        bent = squares.copy()
        bent[c] = rng.choice(options)
        corrupt = replay(bent)
        if corrupt is None or corrupt[3] != clean[3] or corrupt[1] != clean[1]:
            continue
        # Squares either prefix played are excluded: the difference must come from flips, not
        # from a token the model could copy.
        played = np.zeros(64, dtype=bool)
        played[squares] = played[bent] = True
        only_clean = np.nonzero(clean[2] & ~corrupt[2] & ~played)[0]
        only_corrupt = np.nonzero(corrupt[2] & ~clean[2] & ~played)[0]
        if len(only_clean) == 0 or len(only_corrupt) == 0:
            continue
        out["clean"].append(tokens)
        out["corrupt"].append(ot.TOKEN_OF_SQUARE[bent])
        out["answer"].append(ot.TOKEN_OF_SQUARE[rng.choice(only_clean)])
        out["wrong"].append(ot.TOKEN_OF_SQUARE[rng.choice(only_corrupt)])
        out["corrupted_ply"].append(c)
    if len(out["clean"]) < rows:
        sys.exit(f"only {len(out['clean'])} of {rows} rows found; use another seed or fewer rows")
    return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--length", type=int, default=20)
    ap.add_argument("--ply", type=int, help="the corrupted ply (0-based; default length - 4)")
    ap.add_argument("--seed", type=int, default=5)
    a = ap.parse_args()
    ply = a.length - 4 if a.ply is None else a.ply
    if not 1 <= ply < a.length:
        sys.exit(f"--ply {ply} must be in 1..{a.length - 1}")
    data = pairs(a.rows, a.length, ply, a.seed)
    np.savez(a.out, **data)
    print(f"{a.out}: {a.rows} pairs of {a.length} moves, ply {ply} corrupted")


if __name__ == "__main__":
    main()
