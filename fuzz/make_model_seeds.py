"""Seeds for the `model` fuzz target (fuzz/fuzz_targets/model.rs), made with numpy alone from the
committed TransformerLens fixtures: each seed is a config, its weights npz (stored and deflated),
tokens npy, and a few `--cache` names and interventions, in the target's layout.

    python3 fuzz/make_model_seeds.py     # writes fuzz/corpus/model/seed_*
"""
import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "corpus" / "model"


def npz_bytes(arrays, compression):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, a in arrays.items():
            member = io.BytesIO()
            np.save(member, a)
            z.writestr(name + ".npy", member.getvalue())
    return buf.getvalue()


def npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def seed(config, weights, tokens, text, compression):
    cfg = json.dumps(config).encode()
    w = npz_bytes(weights, compression)
    return struct.pack("<HI", len(cfg), len(w)) + cfg + w + npy_bytes(tokens) + b"\xff" + text.encode()


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for case in ["tiny"]:  # small seeds fuzz fastest
        config = json.loads((ROOT / "fixtures" / "transformer" / f"{case}.json").read_text())
        z = np.load(ROOT / "fixtures" / "transformer" / f"{case}.npz")
        weights = {k: z[k] for k in z.files if k not in ("tokens", "logits") and not k.startswith("cache.")}
        tokens = z["tokens"]
        text = "\n".join([
            "cache blocks.0.attn.hook_pattern",
            "cache all",
            "zero blocks.0.attn.hook_z head=1",
            "scale blocks.0.hook_resid_post 0.5 pos=1",
            "replace hook_embed batch=0",
        ])
        for name, compression in [("stored", zipfile.ZIP_STORED), ("deflated", zipfile.ZIP_DEFLATED)]:
            (OUT / f"seed_{case}_{name}").write_bytes(seed(config, weights, tokens, text, compression))
        (OUT / f"seed_{case}_int32_tokens").write_bytes(
            seed(config, weights, tokens.astype(np.int32), "cache bogus.name", zipfile.ZIP_STORED))


if __name__ == "__main__":
    main()
