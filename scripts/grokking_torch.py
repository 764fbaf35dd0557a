"""Modular-arithmetic grokking in PyTorch + TransformerLens, to choose and check shaderlens's
grokking presets (it never calls shaderlens): full-batch AdamW on a HookedTransformer as Nanda
et al. train it, printing the steps at which train and test accuracy first reach 99 %.

    python3 scripts/grokking_torch.py --p 59 --d-model 64 --heads 4 --d-mlp 256 --wd 1.0 --steps 10000
"""

import argparse
import time

import numpy as np
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--p", type=int, default=59)
    ap.add_argument("--frac", type=float, default=0.3)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--d-mlp", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=1.0)
    ap.add_argument("--beta2", type=float, default=0.98)
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    p = a.p
    pairs = np.array([(x, y) for x in range(p) for y in range(p)])
    tokens = np.concatenate([pairs, np.full((len(pairs), 1), p)], axis=1)
    labels = (pairs[:, 0] + pairs[:, 1]) % p
    order = np.random.default_rng(a.seed).permutation(len(pairs))
    n_train = int(a.frac * len(pairs))
    tr, te = order[:n_train], order[n_train:]
    X, Y = torch.tensor(tokens), torch.tensor(labels)
    cfg = HookedTransformerConfig(n_layers=1, d_model=a.d_model, n_heads=a.heads, d_head=a.d_model // a.heads,
                                  d_mlp=a.d_mlp, d_vocab=p + 1, d_vocab_out=p, n_ctx=3, act_fn="relu",
                                  normalization_type=None, seed=a.seed, device="cpu")
    model = HookedTransformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.wd, betas=(0.9, a.beta2))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(s / 10, 1))
    first = {}
    start = time.time()
    for step in range(a.steps + 1):
        logits = model(X[tr])[:, -1]
        loss = torch.nn.functional.cross_entropy(logits, Y[tr])
        if step % 100 == 0:
            with torch.no_grad():
                train_acc = (logits.argmax(-1) == Y[tr]).float().mean().item()
                tl = model(X[te])[:, -1]
                test_loss = torch.nn.functional.cross_entropy(tl, Y[te]).item()
                test_acc = (tl.argmax(-1) == Y[te]).float().mean().item()
            for name, acc in (("train", train_acc), ("test", test_acc)):
                if acc >= 0.99 and name not in first:
                    first[name] = step
            if step % 500 == 0:
                print(f"step {step} train {loss.item():.4f} {train_acc:.3f} test {test_loss:.4f} {test_acc:.3f} "
                      f"({time.time() - start:.0f} s)", flush=True)
            if "test" in first:
                break
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    print(f"p {p} frac {a.frac} d_model {a.d_model} wd {a.wd} lr {a.lr}: train >= 99 % at step "
          f"{first.get('train')}, test >= 99 % at step {first.get('test')}")


if __name__ == "__main__":
    main()
