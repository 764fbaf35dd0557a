"""pytest: the independent checker catches what it claims to (run: python3 -m pytest scripts/).

Each case corrupts a copy of tests/data/games/othello_reference.npz (games of the numpy engine,
never of shaderlens) in one way and expects check_othello_games.py to fail naming the problem.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "..", "tests", "data", "games", "othello_reference.npz")
sys.path.insert(0, HERE)
import othello_numpy as engine  # noqa: E402


def check(tmp_path, data):
    path = tmp_path / "games.npz"
    np.savez(path, **data)
    run = subprocess.run([sys.executable, os.path.join(HERE, "check_othello_games.py"), str(path)], capture_output=True, text=True)
    return run.returncode, run.stdout + run.stderr


def reference():
    with np.load(REFERENCE) as f:
        return {k: f[k].copy() for k in f.files}


def test_the_reference_file_passes(tmp_path):
    code, out = check(tmp_path, reference())
    assert code == 0, out


def first_short_game(data):
    return int(np.nonzero(data["tokens"][:, 59] == 0)[0][0])


@pytest.mark.parametrize("corrupt, needle", [
    (lambda d: d["tokens"].__setitem__((0, 5), d["tokens"][0, 6]), "not legal"),
    (lambda d: d["boards"].__setitem__((3, 10, 0), 1 - d["boards"][3, 10, 0]), "board"),
    (lambda d: d["player"].__setitem__((4, 7), -d["player"][4, 7]), "player"),
    (lambda d: d["legal"].__setitem__((5, 20, 0), ~d["legal"][5, 20, 0]), "legal set"),
    (lambda d: d["legal"].__setitem__((first_short_game(d), 59, 0), True), "padding"),
    (lambda d: d.__setitem__("boards", d["boards"].astype(np.int16)), "int16"),
    (lambda d: d.pop("legal"), "missing"),
])
def test_a_corruption_fails(tmp_path, corrupt, needle):
    data = reference()
    corrupt(data)
    code, out = check(tmp_path, data)
    assert code == 1 and needle in out, out


class AlwaysFirst:
    """An 'RNG' that makes every game take its first legal move: legal, but not uniform."""

    def random(self, n):
        return np.zeros(n)


def test_biased_choices_fail_the_uniformity_check(tmp_path):
    code, out = check(tmp_path, engine.random_games(400, AlwaysFirst()))
    assert code == 1 and "not uniform" in out, out
