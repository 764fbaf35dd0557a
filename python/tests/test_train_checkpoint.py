"""`shaderlens train` checkpoints open in TransformerLens.

A tiny modular-addition run (the float64 reference trainer, a few updates) writes
`checkpoints/<step>.json` + `.npz`; `shaderlens run` computes the checkpoint's logits; and
`HookedTransformer(HookedTransformerConfig(**json)).load_state_dict(npz)` must compute the same
logits. Needs the release binary (`cargo build --release`, which CI's `cargo test --release` makes)
and TransformerLens (skipped, saying so, when it is not installed, like the other TL tests)."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_close

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / "target" / "release" / "shaderlens"

CONFIG = """seed = 3
steps = 6
eval_every = 3
checkpoint_every = 3
[model]
n_layers = 1
d_model = 16
n_heads = 2
d_head = 8
d_mlp = 32
normalization_type = "LN"
act_fn = "gelu"
[data]
p = 7
train_fraction = 0.5
[optimizer]
lr = 0.01
"""


def _shaderlens(*args):
    assert BINARY.is_file(), f"{BINARY} is missing: run cargo build --release first"
    return subprocess.run([str(BINARY), *map(str, args)], check=True, capture_output=True, text=True)


def test_checkpoint_loads_into_transformer_lens(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is not installed; to run: pip install torch transformer-lens==3.9.0")
    tl = pytest.importorskip("transformer_lens", reason="transformer_lens is not installed; to run: pip install transformer-lens==3.9.0")
    (tmp_path / "run.toml").write_text(CONFIG)
    out = tmp_path / "run"
    _shaderlens("train", tmp_path / "run.toml", "--set", f"out={out}", "--quiet")
    config_path, weights_path = out / "checkpoints" / "6.json", out / "checkpoints" / "6.npz"
    tokens = np.array([[0, 1, 7], [3, 6, 7], [5, 5, 7]], dtype=np.int64)
    np.save(tmp_path / "tokens.npy", tokens)
    _shaderlens("run", "--model", config_path, "--weights", weights_path, "--tokens", tmp_path / "tokens.npy",
                "--out", tmp_path / "logits.npz")
    ours = np.load(tmp_path / "logits.npz")["logits"]

    cfg = tl.HookedTransformerConfig(**json.loads(config_path.read_text()))
    model = tl.HookedTransformer(cfg)
    state = {k: torch.from_numpy(v) for k, v in np.load(weights_path).items()}
    result = model.load_state_dict(state, strict=False)
    # The buffers (attention masks) are the model's own; every parameter comes from the file.
    assert not result.unexpected_keys
    assert all(k.endswith(("attn.mask", "attn.IGNORE")) for k in result.missing_keys), result.missing_keys
    with torch.no_grad():
        theirs = model(torch.from_numpy(tokens)).numpy()
    assert_close(ours, theirs, what="checkpoint logits, shaderlens run vs TransformerLens")
