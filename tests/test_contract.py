"""Contract tests, every preset × every architecture: identity at init, exact counts, gradients only
in Δh, save → load onto a fresh model → identical outputs."""
from __future__ import annotations

import pytest
import torch

import petl_search as ps
from petl_search.nn.serialization import stored_state_dict
from conftest import ARCHS, hidden, make_inputs, make_model, preset_for, randomise_deltas

PRESETS = sorted(ps.PRESETS)
CASES = [(a, p) for a in ARCHS for p in PRESETS]


def created_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if ps.is_petl_parameter(n))


@pytest.mark.parametrize("arch,name", CASES)
def test_zero_init_presets_start_at_the_frozen_model(arch: str, name: str) -> None:
    config = preset_for(name)
    model = make_model(arch)
    inputs = make_inputs(arch)
    with torch.no_grad():
        before = hidden(model, inputs)
        ps.apply_petl(model, config)
        after = hidden(model, inputs)
    if all(spec.is_zero_init for _, spec in config.sites()):
        assert torch.equal(before, after)
    else:  # a prefix changes attention from the start (Eq. 8: λ(x) > 0)
        assert not torch.allclose(before, after)


@pytest.mark.parametrize("arch,name", CASES)
def test_count_params_equals_parameters_created(arch: str, name: str) -> None:
    config = preset_for(name)
    model = ps.apply_petl(make_model(arch), config)
    counted = ps.count_params(config, model.config)
    assert counted.trained == created_params(model)
    stored = sum(t.numel() for t in stored_state_dict(model).values())
    assert counted.stored == stored
    assert counted.backbone == sum(p.numel() for n, p in make_model(arch).named_parameters())


@pytest.mark.parametrize("arch,name", CASES)
def test_gradients_reach_only_delta_parameters(arch: str, name: str) -> None:
    model = ps.apply_petl(make_model(arch), preset_for(name))
    hidden(model, make_inputs(arch)).pow(2).mean().backward()
    for n, p in model.named_parameters():
        if ps.is_petl_parameter(n):
            assert p.requires_grad and p.grad is not None, n
        else:
            assert not p.requires_grad and p.grad is None, n
    # Δh learns from the first step: some of it gets a non-zero gradient (W_up, the gate or the prefix).
    assert any(p.grad.abs().sum() > 0 for n, p in model.named_parameters() if ps.is_petl_parameter(n))


@pytest.mark.parametrize("arch,name", CASES)
def test_save_then_load_on_a_fresh_model_gives_identical_outputs(arch: str, name: str, tmp_path) -> None:
    model = ps.apply_petl(make_model(arch), preset_for(name))
    randomise_deltas(model)
    inputs = make_inputs(arch)
    with torch.no_grad():
        expected = hidden(model, inputs)
    ps.save_petl(model, tmp_path / "delta")
    fresh = ps.load_petl(make_model(arch), tmp_path / "delta")
    with torch.no_grad():
        assert torch.equal(hidden(fresh, inputs), expected)
    assert not any(p.requires_grad for n, p in fresh.named_parameters() if not ps.is_petl_parameter(n))


def test_train_modules_stay_trainable() -> None:
    from transformers import AutoModelForSequenceClassification
    from conftest import TINY_CONFIGS
    model = AutoModelForSequenceClassification.from_config(TINY_CONFIGS["bert"]())
    ps.apply_petl(model, ps.presets.lora(r=2), train_modules=["classifier"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"classifier.weight", "classifier.bias"} <= trainable
    assert all(ps.is_petl_parameter(n) or n.startswith("classifier.") for n in trainable)
    with pytest.raises(ps.PETLError, match=r"train_modules must be names of submodules .*but got \['clasifier'\]"):
        ps.apply_petl(AutoModelForSequenceClassification.from_config(TINY_CONFIGS["bert"]()),
                      ps.presets.lora(r=2), train_modules=["clasifier"])


def test_remove_petl_restores_the_frozen_model() -> None:
    model = make_model("gpt2")
    inputs = make_inputs("gpt2")
    with torch.no_grad():
        before = hidden(model, inputs)
    ps.apply_petl(model, ps.presets.mam(prefix_len=3, ffn_r=8))
    randomise_deltas(model)
    ps.remove_petl(model)
    assert model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        assert torch.equal(hidden(model, inputs), before)


@pytest.mark.parametrize("name", ["mam", "lora", "houlsby"])
def test_deepcopy_gives_an_independent_model(arch: str, name: str) -> None:
    """Workers copy models (Ray, checkpoints): a copy must carry its own Δh and hooks."""
    import copy
    model = ps.apply_petl(make_model(arch), preset_for(name))
    randomise_deltas(model)
    twin = copy.deepcopy(model)
    inputs = make_inputs(arch)
    with torch.no_grad():
        expected = hidden(model, inputs)
        assert torch.equal(hidden(twin, inputs), expected)
        for n, p in twin.named_parameters():
            if ps.is_petl_parameter(n):
                p.add_(1.0)
        assert torch.equal(hidden(model, inputs), expected)
        assert not torch.allclose(hidden(twin, inputs), expected)
