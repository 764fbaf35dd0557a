"""The PyTorch twin of `shaderlens bench train_step` (it never calls shaderlens): one full training
update (forward, mean cross-entropy, backward, global-norm clipping at 1.0, AdamW) of the same
model on the same batch, in float32 on the CPU, and the forward alone; prints the median seconds
of each, steps/s and the update's cost in forwards.

Shapes as the bench case reads them, B,S,LAYERS,D_MODEL,HEADS (d_head = d_model / heads, d_mlp =
4 d_model): a sequence of 3 is modular addition with p = 113 (vocabulary 114 in, 113 out, ReLU,
no layer norm, the loss on the last position), anything else Othello-shaped (vocabulary 61, GELU,
LayerNorm, next-token targets, none on the last position). The batches are the bench case's.

    python3 scripts/bench_train_torch.py --shape 3830,3,1,128,4 --iterations 5 --threads 2
"""

import argparse
import time

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

P, OTHELLO_VOCAB = 113, 61


def batch(b, s):
    """The bench case's tokens and targets (-1: no target)."""
    if s == 3:
        pairs = [((i * 37) % P, (i // P + i * 11) % P) for i in range(b)]
        tokens = torch.tensor([[a, c, P] for a, c in pairs])
        targets = torch.tensor([[-1, -1, (a + c) % P] for a, c in pairs])
    else:
        tok = [[(g * 17 + i * 5) % OTHELLO_VOCAB for i in range(s)] for g in range(b)]
        tokens = torch.tensor(tok)
        targets = torch.tensor([row[1:] + [-1] for row in tok])
    return tokens, targets


def model_for(s, layers, d_model, heads):
    grokking = s == 3
    cfg = HookedTransformerConfig(
        n_layers=layers, d_model=d_model, n_heads=heads, d_head=d_model // heads, d_mlp=4 * d_model,
        d_vocab=P + 1 if grokking else OTHELLO_VOCAB, d_vocab_out=P if grokking else OTHELLO_VOCAB, n_ctx=s,
        act_fn="relu" if grokking else "gelu", normalization_type=None if grokking else "LN", seed=7, device="cpu",
        dtype=torch.float32)
    return HookedTransformer(cfg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="3830,3,1,128,4")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    b, s, layers, d_model, heads = (int(x) for x in a.shape.split(","))
    model = model_for(s, layers, d_model, heads)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=1.0)
    tokens, targets = batch(b, s)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(tokens)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    def forward():
        with torch.no_grad():
            model(tokens)

    step()  # warm-up: allocations, AdamW's state
    forward()
    steps, forwards = [], []
    for _ in range(a.iterations):  # interleaved, so that a busy machine slows both alike
        t = time.perf_counter()
        step()
        steps.append(time.perf_counter() - t)
        t = time.perf_counter()
        forward()
        forwards.append(time.perf_counter() - t)
    med = lambda xs: sorted(xs)[len(xs) // 2]
    st, fw = med(steps), med(forwards)
    print(f"torch {torch.__version__} CPU float32, {a.threads} threads, shape {a.shape}")
    print(f"update : {1e3 * st:10.1f} ms median of {a.iterations} ({1 / st:.2f} steps/s)")
    print(f"forward: {1e3 * fw:10.1f} ms median of {a.iterations}")
    print(f"update / forward: {st / fw:.2f}x")


if __name__ == "__main__":
    main()
