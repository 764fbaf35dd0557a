"""pytest: the Othello patching prompts are what make_othello_patch_prompts.py says they are.

Each pair is checked by replaying both prefixes with the numpy engine: they differ in exactly the
stated ply, every move is legal, the answer is legal after the clean prefix only, the wrong token
after the corrupt prefix only, and neither was played in either prefix.
"""

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_othello_patch_prompts as mk  # noqa: E402
import othello_numpy as ot  # noqa: E402


def test_pairs_differ_in_one_ply_and_split_the_legal_sets():
    data = mk.pairs(rows=6, length=14, ply=10, seed=3)
    assert data["clean"].shape == data["corrupt"].shape == (6, 14)
    for row in range(6):
        clean, corrupt = data["clean"][row], data["corrupt"][row]
        assert list(np.nonzero(clean != corrupt)[0]) == [10]
        after_clean = mk.replay(ot.SQUARE_OF_TOKEN[clean])
        after_corrupt = mk.replay(ot.SQUARE_OF_TOKEN[corrupt])
        assert after_clean is not None and after_corrupt is not None
        answer = ot.SQUARE_OF_TOKEN[data["answer"][row]]
        wrong = ot.SQUARE_OF_TOKEN[data["wrong"][row]]
        assert after_clean[2][answer] and not after_corrupt[2][answer]
        assert after_corrupt[2][wrong] and not after_clean[2][wrong]
        played = set(ot.SQUARE_OF_TOKEN[clean]) | set(ot.SQUARE_OF_TOKEN[corrupt])
        assert answer not in played and wrong not in played


def test_replay_refuses_an_illegal_move():
    # Square 0 (a corner) is never legal as the first move.
    assert mk.replay(np.array([0])) is None
