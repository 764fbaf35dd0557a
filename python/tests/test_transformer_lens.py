"""`Model.from_transformer_lens` and `Cache.to_transformer_lens`.

The first test needs no torch: a stand-in with TransformerLens's two entry points (`cfg.to_dict()`,
`state_dict()` of tensors) exercises the adapter in every CI run. The others use TransformerLens
itself when it is installed and say so when it is not (CI does not install torch)."""

import json

import numpy as np
import pytest

import shaderlens
from conftest import TRANSFORMER_CASES, assert_close, transformer_case


class _Tensor:
    """What the adapter calls on a torch tensor: detach().to("cpu").float().numpy()."""

    def __init__(self, array):
        self.array = array

    def detach(self):
        return self

    def to(self, device):
        assert device == "cpu"
        return self

    def float(self):
        return _Tensor(self.array.astype(np.float32))

    def numpy(self):
        return self.array


class _StandIn:
    """A HookedTransformer as far as from_transformer_lens reads one."""

    def __init__(self, config, state):
        self.cfg = type("Cfg", (), {"to_dict": lambda _self: dict(config)})()
        self._state = state

    def state_dict(self):
        return {k: _Tensor(v) for k, v in self._state.items()}


@pytest.mark.parametrize("case", TRANSFORMER_CASES)
def test_from_transformer_lens_without_torch(case):
    config_path, _, data = transformer_case(case)
    config = json.loads(config_path.read_text())
    # What TransformerLens's to_dict() holds beyond SPEC's keys, and its attention-only d_mlp.
    config.update({"model_name": "custom", "seed": None, "device": "cpu", "dtype": "torch.float32", "initializer_range": 0.02})
    if config["attn_only"]:
        config["d_mlp"] = 4 * config["d_model"]
    state = {k: data[k].astype(np.float64) for k in data.files if k not in ("tokens", "logits") and not k.startswith("cache.")}
    state["blocks.0.attn.mask"] = np.tril(np.ones((config["n_ctx"], config["n_ctx"]), bool))
    state["blocks.0.attn.IGNORE"] = np.array(-np.inf)
    model = shaderlens.Model.from_transformer_lens(_StandIn(config, state))
    logits, cache = model.run_with_cache(data["tokens"], "blocks.0.attn.hook_pattern")
    assert_close(logits, data["logits"], what=f"{case} logits")
    assert_close(cache["blocks.0.attn.hook_pattern"], data["cache.blocks.0.attn.hook_pattern"])


def test_from_transformer_lens_refuses_what_it_cannot_run():
    config_path, _, data = transformer_case("tiny")
    config = {**json.loads(config_path.read_text()), "positional_embedding_type": "rotary"}
    state = {k: data[k] for k in data.files if k not in ("tokens", "logits") and not k.startswith("cache.")}
    with pytest.raises(shaderlens.InputError, match="rotary"):
        shaderlens.Model.from_transformer_lens(_StandIn(config, state))


def test_to_transformer_lens_needs_the_model(tiny):
    model, tokens = tiny
    _, cache = model.run_with_cache(tokens)
    tl = pytest.importorskip("transformer_lens", reason="transformer_lens is not installed; to run: pip install transformer-lens==3.9.0")
    del tl
    with pytest.raises(ValueError, match="HookedTransformer"):
        cache.to_transformer_lens()


def _hooked_transformer(case):
    torch = pytest.importorskip("torch", reason="torch is not installed; to run: pip install torch transformer-lens==3.9.0")
    tl = pytest.importorskip("transformer_lens", reason="transformer_lens is not installed; to run: pip install transformer-lens==3.9.0")
    config_path, _, data = transformer_case(case)
    import sys
    from pathlib import Path

    # The fixtures' configs are TransformerLens's full to_dict() (dtype as a string, n_params):
    # scripts/tl_format.py turns such a saved config back into a HookedTransformerConfig.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    import tl_format

    cfg = tl_format.config_from_saved(json.loads(config_path.read_text()), dtype=torch.float32)
    hooked = tl.HookedTransformer(cfg, move_to_device=False)
    hooked.load_state_dict({k: torch.from_numpy(data[k]) for k in data.files
                            if k not in ("tokens", "logits") and not k.startswith("cache.")}, strict=False)
    hooked.eval()
    return torch, hooked, data


@pytest.mark.parametrize("case", TRANSFORMER_CASES)
def test_against_transformer_lens(case):
    torch, hooked, data = _hooked_transformer(case)
    model = shaderlens.Model.from_transformer_lens(hooked)
    tokens = data["tokens"]
    logits, cache = model.run_with_cache(tokens)
    with torch.no_grad():
        want_logits, want_cache = hooked.run_with_cache(torch.from_numpy(tokens))
    assert_close(logits, want_logits.numpy(), what="logits")
    assert set(cache) == set(want_cache.keys())
    for name in cache:
        assert_close(cache[name], want_cache[name].numpy(), what=name)

    ours = cache.to_transformer_lens()
    with torch.no_grad():
        for args in [dict(apply_ln=False), dict(apply_ln=True)]:
            got = ours.accumulated_resid(**args, return_labels=False)
            want = want_cache.accumulated_resid(**args, return_labels=False)
            assert_close(got.numpy(), want.numpy(), what=f"accumulated_resid {args}")
        got = ours.decompose_resid(return_labels=False)
        want = want_cache.decompose_resid(return_labels=False)
        assert_close(got.numpy(), want.numpy(), what="decompose_resid")
        answer = torch.zeros(tokens.shape[0], dtype=torch.long)
        stack = ours.accumulated_resid(layer=-1, incl_mid=False, pos_slice=-1)
        want_stack = want_cache.accumulated_resid(layer=-1, incl_mid=False, pos_slice=-1)
        got = ours.logit_attrs(stack, tokens=answer, pos_slice=-1)
        want = want_cache.logit_attrs(want_stack, tokens=answer, pos_slice=-1)
        assert_close(got.numpy(), want.numpy(), what="logit_attrs")


def test_hooks_against_transformer_lens():
    torch, hooked, data = _hooked_transformer("gelu_new_3layer")
    model = shaderlens.Model.from_transformer_lens(hooked)
    tokens = data["tokens"]

    def ablate(z, hook):
        z[:, :, 1] = 0
        return z

    got = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.attn.hook_z", ablate)])
    with torch.no_grad():
        want = hooked.run_with_hooks(torch.from_numpy(tokens), fwd_hooks=[("blocks.1.attn.hook_z", ablate)])
    assert_close(got, want.numpy(), what="ablated logits")
