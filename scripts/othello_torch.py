"""The othello-small preset's model in PyTorch + TransformerLens on the CPU, for speed (it never
calls shaderlens): 2 layers, d_model 128, 4 heads of 32, d_mlp 512, GELU, LN, n_ctx 59, vocab 61;
AdamW lr 1e-3, betas (0.9, 0.95), weight decay 0.1; batches of fresh random games from the numpy
engine (scripts/othello_numpy.py), input tokens[:, :59], targets tokens[:, 1:] with padding
ignored. Prints seconds per update, games per second and the loss; with --eval-every, the top-1
legal-move rate on held-out games (the same definition as shaderlens's metrics).

    python3 scripts/othello_torch.py --steps 5 --batch 256
"""

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from transformer_lens import HookedTransformer, HookedTransformerConfig

sys.path.insert(0, os.path.dirname(__file__))
import othello_numpy as engine  # noqa: E402


def split(tokens):
    x = torch.tensor(tokens[:, :59])
    y = torch.tensor(tokens[:, 1:]).clone()
    y[y == 0] = -1
    return x, y


def legal_move_rate(model, games):
    """Fraction of positions with a next move whose top-1 token is a legal move."""
    x, y = split(games["tokens"])
    with torch.no_grad():
        top = model(x).argmax(-1).numpy()
    mask = y.numpy() >= 0
    square = engine.SQUARE_OF_TOKEN[top]
    legal = games["legal"][:, :59]
    hit = (square >= 0) & np.take_along_axis(legal, np.maximum(square, 0)[..., None], axis=-1)[..., 0]
    return float((hit & mask).sum() / mask.sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=0)
    ap.add_argument("--test-games", type=int, default=500)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    cfg = HookedTransformerConfig(n_layers=2, d_model=128, n_heads=4, d_head=32, d_mlp=512, d_vocab=61, d_vocab_out=61,
                                  n_ctx=59, act_fn="gelu", normalization_type="LN", seed=a.seed, device="cpu")
    model = HookedTransformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    test = engine.random_games(a.test_games, np.random.default_rng(a.seed + 1)) if a.eval_every else None
    data_s, step_s = 0.0, 0.0
    for step in range(1, a.steps + 1):
        t0 = time.perf_counter()
        x, y = split(engine.random_games(a.batch, rng)["tokens"])
        t1 = time.perf_counter()
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, 61), y.reshape(-1), ignore_index=-1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        t2 = time.perf_counter()
        data_s, step_s = data_s + (t1 - t0), step_s + (t2 - t1)
        line = f"step {step} loss {loss.item():.4f} update {t2 - t1:.3f} s data {t1 - t0:.3f} s"
        if a.eval_every and step % a.eval_every == 0:
            line += f" games {step * a.batch} legal-move rate {legal_move_rate(model, test):.4f}"
        print(line, flush=True)
    n = a.steps * a.batch
    print(f"{a.steps} updates of {a.batch} games on {a.threads} threads: {step_s / a.steps:.3f} s/update "
          f"(model only), {n / step_s:.0f} games/s; data (numpy engine) {data_s / a.steps:.3f} s/update; "
          f"together {n / (step_s + data_s):.0f} games/s")


if __name__ == "__main__":
    main()
