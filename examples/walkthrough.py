"""The Python walk-through (docs/python.md) as one script that CI runs: load a model, cache its
activations, ablate a head, patch from a corrupted prompt, and plot an attention pattern.

    pip install ./python matplotlib
    python examples/walkthrough.py [OUT_DIR]      # writes pattern.png and patching.png there

The model is fixtures/transformer/othello_small (Othello-GPT's shape, shrunk, random weights), so
the numbers illustrate the calls, not a circuit.
"""

import os
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import shaderlens  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def save(figure, path: Path):
    """Writes the figure under a temporary name in the same folder, then renames it, so that a
    reader never sees half a file."""
    figure.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    figure.savefig(tmp, format="png", dpi=100)
    os.replace(tmp, path)
    plt.close(figure)
    print(f"wrote {path}")


def main(out_dir: Path):
    # 1. Load a model (a config JSON and a weights npz, as scripts/export_transformerlens.py writes).
    fixture = ROOT / "fixtures" / "transformer" / "othello_small"
    model = shaderlens.Model.from_files(fixture.with_suffix(".json"), fixture.with_suffix(".npz"))
    print("adapter:", shaderlens.adapter())
    print(model)
    clean = np.load(fixture.with_suffix(".npz"))["tokens"][:1, :20]  # one game, its first 20 moves

    # 2. Run with a cache: numpy arrays under TransformerLens's names.
    logits, cache = model.run_with_cache(clean, names_filter="blocks.*.attn.hook_pattern")
    print("logits", logits.shape, "| cached:", {k: v.shape for k, v in cache.items()})
    answer = int(logits[0, -1].argmax())
    wrong = int(logits[0, -1].argsort()[-2])

    def logit_diff(logits):
        return float(logits[0, -1, answer] - logits[0, -1, wrong])

    print(f"clean logit difference (token {answer} over {wrong}): {logit_diff(logits):.4f}")

    # 3. Ablate a head: zero head 2 of layer 1's z, on the GPU inside the forward pass.
    ablated = model.run_with_hooks(clean, fwd_hooks=[shaderlens.zero("blocks.1.attn.hook_z", head=2)])
    print(f"head 1.2 zero-ablated: {logit_diff(ablated):.4f}")
    # The same with a Python hook function, as in TransformerLens (one extra pass: see the docs).

    def ablate_head(z, hook):
        z[:, :, 2] = 0.0

    by_hook = model.run_with_hooks(clean, fwd_hooks=[("blocks.1.attn.hook_z", ablate_head)])
    print(f"the same by a hook function: {logit_diff(by_hook):.4f}")
    # Mean ablation over a batch of games (the mean is broadcast to every game and position).
    games = np.load(fixture.with_suffix(".npz"))["tokens"][:, :20]
    _, z_cache = model.run_with_cache(games, "blocks.1.attn.hook_z")
    mean_z = z_cache["blocks.1.attn.hook_z"].mean(axis=0)  # [positions, heads, d_head]
    mean = model.run_with_hooks(clean, fwd_hooks=[shaderlens.mean_ablate("blocks.1.attn.hook_z", mean_z, head=2)])
    print(f"head 1.2 mean-ablated: {logit_diff(mean):.4f}")

    # 4. Patch from a corrupted prompt: change one move, then put back the clean residual stream at
    # one layer and position at a time and see how much of the clean logit difference returns.
    corrupt = clean.copy()
    corrupt[0, 5] = (corrupt[0, 5] + 7) % model.cfg["d_vocab"]
    _, clean_cache = model.run_with_cache(clean, names_filter="blocks.*.hook_resid_pre")
    base = logit_diff(model.run(corrupt))
    print(f"corrupted logit difference: {base:.4f}")
    n_layers, seq = model.cfg["n_layers"], clean.shape[1]
    restored = np.zeros((n_layers, seq))
    for layer in range(n_layers):
        for pos in range(seq):
            hook = f"blocks.{layer}.hook_resid_pre"
            patched = model.run_with_hooks(corrupt, fwd_hooks=[shaderlens.patch(hook, clean_cache, pos=pos)])
            restored[layer, pos] = logit_diff(patched) - base
    layer, pos = (int(i) for i in np.unravel_index(np.abs(restored).argmax(), restored.shape))
    print(f"patching the clean resid_pre back: largest effect {restored[layer, pos]:+.4f} at layer {layer}, position {pos}")

    # 5. Plot an attention pattern and the patching result.
    pattern = cache["blocks.0.attn.hook_pattern"][0, 0]
    figure, axis = plt.subplots(figsize=(5, 4))
    image = axis.imshow(pattern, cmap="viridis")
    axis.set(title="blocks.0.attn.hook_pattern, head 0", xlabel="key position", ylabel="query position")
    figure.colorbar(image)
    save(figure, out_dir / "pattern.png")
    figure, axis = plt.subplots(figsize=(7, 2.5))
    image = axis.imshow(restored, cmap="RdBu", aspect="auto")
    axis.set(title="logit difference restored by patching resid_pre", xlabel="position", ylabel="layer")
    figure.colorbar(image)
    save(figure, out_dir / "patching.png")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="shaderlens-walkthrough-"))
    target.mkdir(parents=True, exist_ok=True)
    main(target)
