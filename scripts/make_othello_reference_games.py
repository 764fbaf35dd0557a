#!/usr/bin/env python3
"""Writes tests/data/games/othello_reference.npz: random Othello games made by the numpy engine
of scripts/othello_numpy.py (never by shaderlens), for tests/games_othello.rs to replay through
the Rust engine and compare array for array.

    python3 scripts/make_othello_reference_games.py

From 4,000 games of a fixed numpy seed it keeps 100 ordinary ones plus every game with a pass
and every game that ends before move 60 (up to 30 each), so the rare rules are covered.
"""

import os

import numpy as np

import othello_numpy as engine

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "games", "othello_reference.npz")


def main():
    games = engine.random_games(4000, np.random.default_rng(20261130))
    player = games["player"]
    passes = ((player[:, 1:] == player[:, :-1]) & (player[:, 1:] != 0)).any(axis=1)
    short = (games["tokens"] != 0).sum(axis=1) < 60
    keep = np.concatenate([np.arange(100), np.nonzero(passes)[0][:30], np.nonzero(short)[0][:30]])
    keep = np.unique(keep)
    chosen = {k: v[keep] for k, v in games.items()}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    np.savez_compressed(OUT, **chosen)
    print(f"wrote {OUT}: {len(keep)} games, {int(passes[keep].sum())} with a pass, {int(short[keep].sum())} ending early")


if __name__ == "__main__":
    main()
