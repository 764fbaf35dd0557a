"""Time TransformerLens's activation patching on the case of benches/act_patch.rs, on CPU torch:
SPEC's four sweeps (get_act_patch_resid_pre, _attn_out, _mlp_out, _attn_head_out_all_pos; 76
patches, one forward each, as TransformerLens runs them) on a 2-layer model (d_model 64, 2 heads,
d_mlp 256, 61 tokens) with 2 prompt pairs of 12 tokens, float32. The weights are TransformerLens's
own random init: the time does not depend on their values.

    python3 scripts/bench_tl_patching.py [--repeats 5] [--threads N]

Prints the median and the best of the repeats (seconds for all four sweeps) and patches/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from importlib import metadata

os.environ.setdefault("TQDM_DISABLE", "1")
import torch  # noqa: E402
from transformer_lens import HookedTransformer, HookedTransformerConfig, patching  # noqa: E402

BATCH, SEQ = 2, 12


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=2, d_model=64, n_heads=2, d_head=32, d_mlp=256, d_vocab=61,
                                  d_vocab_out=61, n_ctx=12, act_fn="gelu", normalization_type="LN",
                                  dtype=torch.float32, device="cpu")
    model = HookedTransformer(cfg).eval()
    clean = torch.tensor([[(b * 17 + s * 5) % 61 for s in range(SEQ)] for b in range(BATCH)])
    corrupt = clean.clone()
    corrupt[:, 3] = (clean[:, 3] + 7) % 61
    answer = torch.arange(BATCH) * 3
    wrong = answer + 1
    rows = torch.arange(BATCH)

    def metric(logits):
        last = logits[:, -1, :]
        return (last[rows, answer] - last[rows, wrong]).mean()

    sweeps = [patching.get_act_patch_resid_pre, patching.get_act_patch_attn_out,
              patching.get_act_patch_mlp_out, patching.get_act_patch_attn_head_out_all_pos]
    times = []
    with torch.no_grad():
        _, cache = model.run_with_cache(clean)
        for _ in range(args.repeats):
            start = time.perf_counter()
            for sweep in sweeps:
                sweep(model, corrupt, cache, metric)
            times.append(time.perf_counter() - start)
    patches = 3 * cfg.n_layers * SEQ + cfg.n_layers * cfg.n_heads
    med = statistics.median(times)
    print(f"transformer-lens {metadata.version('transformer-lens')}, torch {torch.__version__}, CPU, "
          f"{args.threads} threads")
    print(f"{patches} patches: median {med:.3f} s, best {min(times):.3f} s over {args.repeats} repeats "
          f"({patches / med:.0f} patches/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
