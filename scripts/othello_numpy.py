"""An Othello engine in numpy, independent of shaderlens, for checking its games files.

SPEC's rules (docs/SPEC.md, Games -> Othello): square i is row i // 8, column i % 8; white starts
on 27 and 36, black on 28 and 35, black (1) moves first, white is -1. A move brackets at least one
straight line of opponent stones ending in one of the mover's; every such line flips. A player
without a move passes; the game ends when neither can move. Token t (1..60) is the t-th square
other than 27, 28, 35, 36 in increasing order; 0 is padding.

Written on plain 8x8 arrays (no bitboards, no shifts that can wrap) and run on many games in
lockstep, so that it shares no code and no technique with the Rust engine.
"""

import numpy as np

DIRECTIONS = [(0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1)]
CENTRE = (27, 28, 35, 36)
SQUARE_OF_TOKEN = np.array([-1] + [s for s in range(64) if s not in CENTRE], dtype=np.int64)
TOKEN_OF_SQUARE = np.zeros(64, dtype=np.int64)
TOKEN_OF_SQUARE[SQUARE_OF_TOKEN[1:]] = np.arange(1, 61)


def start(n):
    """n boards [n, 8, 8] at the start and the side to move [n] (black, 1)."""
    board = np.zeros((n, 8, 8), dtype=np.int8)
    board[:, 3, 3] = board[:, 4, 4] = -1  # squares 27 and 36: white
    board[:, 3, 4] = board[:, 4, 3] = 1  # squares 28 and 35: black
    return board, np.ones(n, dtype=np.int8)


def _look(x, dr, dc, k):
    """y[..., r, c] = x[..., r + k*dr, c + k*dc], False off the board."""
    y = np.zeros_like(x)
    r0, r1 = max(0, -k * dr), min(8, 8 - k * dr)
    c0, c1 = max(0, -k * dc), min(8, 8 - k * dc)
    if r0 < r1 and c0 < c1:
        y[..., r0:r1, c0:c1] = x[..., r0 + k * dr:r1 + k * dr, c0 + k * dc:c1 + k * dc]
    return y


def legal(board, side):
    """Legal squares [n, 64] (bool) of `side` [n] (1, -1, or 0 for nobody) on `board` [n, 8, 8]."""
    s = side.astype(np.int8)[:, None, None]
    mine = (board == s) & (s != 0)
    theirs = (board == -s) & (s != 0)
    found = np.zeros(board.shape, dtype=bool)
    for dr, dc in DIRECTIONS:
        run = _look(theirs, dr, dc, 1)
        for k in range(2, 8):
            found |= run & _look(mine, dr, dc, k)
            run = run & _look(theirs, dr, dc, k)
    return (found & (board == 0)).reshape(len(board), 64)


def play(board, side, squares, active):
    """Plays squares [n] for side [n] where active [n]; flips every bracketed line, in place."""
    idx = np.nonzero(active)[0]
    if len(idx) == 0:
        return
    rows, cols, me = squares[idx] // 8, squares[idx] % 8, side[idx]
    for dr, dc in DIRECTIONS:
        run = np.ones(len(idx), dtype=bool)
        length = np.zeros(len(idx), dtype=np.int64)  # opponent stones in a closed line, 0 if none
        for k in range(1, 8):
            r, c = rows + k * dr, cols + k * dc
            inside = (r >= 0) & (r < 8) & (c >= 0) & (c < 8)
            value = np.where(inside, board[idx, np.clip(r, 0, 7), np.clip(c, 0, 7)], 0)
            closes = run & inside & (value == me) & (k >= 2)
            length[closes] = k - 1
            run = run & inside & (value == -me)
        for k in range(1, 7):
            flip = length >= k
            board[idx[flip], rows[flip] + k * dr, cols[flip] + k * dc] = me[flip]
    board[idx, rows, cols] = me


def next_side(board, side):
    """Who moves after `side` moved: the other side, the same side if the other must pass, 0 at
    the end; with that side's legal squares [n, 64]."""
    other = (-side).astype(np.int8)
    other_legal = legal(board, other)
    same_legal = legal(board, side)
    other_can = other_legal.any(axis=1) & (side != 0)
    same_can = same_legal.any(axis=1) & (side != 0)
    nxt = np.where(other_can, other, np.where(same_can, side, 0)).astype(np.int8)
    moves = np.where(other_can[:, None], other_legal, np.where(same_can[:, None], same_legal, False))
    return nxt, moves


def random_games(n, rng):
    """n random games (each move uniform among the legal ones) as SPEC's games-file arrays."""
    tokens = np.zeros((n, 60), dtype=np.int64)
    boards = np.zeros((n, 60, 64), dtype=np.int8)
    player = np.zeros((n, 60), dtype=np.int8)
    legal_out = np.zeros((n, 60, 64), dtype=bool)
    board, side = start(n)
    moves = legal(board, side)
    for t in range(60):
        active = side != 0
        if not active.any():
            break
        counts = moves.sum(axis=1)
        pick = np.floor(rng.random(n) * np.maximum(counts, 1)).astype(np.int64)
        # The pick-th legal square of each game, in increasing square order.
        rank = np.cumsum(moves, axis=1) - 1
        squares = np.argmax(moves & (rank == pick[:, None]), axis=1)
        play(board, side, squares, active)
        tokens[active, t] = TOKEN_OF_SQUARE[squares[active]]
        player[active, t] = side[active]
        boards[active, t] = board[active].reshape(-1, 64)
        side, moves = next_side(board, side)
        legal_out[active, t] = moves[active]
    return {"tokens": tokens, "boards": boards, "player": player, "legal": legal_out}
