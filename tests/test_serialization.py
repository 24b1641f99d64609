"""The saved Δh folder's file names: `petl_config.json` beside a model's own `config.json`, and 0.1's
folders (which called it `config.json`) still load."""
from __future__ import annotations

import json

import pytest
import torch

import petl_search as ps
from conftest import hidden, make_inputs, make_model, randomise_deltas


def trained(seed: int = 0) -> torch.nn.Module:
    model = ps.apply_petl(make_model("bert", seed), ps.presets.houlsby(r=4))
    randomise_deltas(model)
    return model


def test_a_saved_delta_sits_beside_the_models_own_config(tmp_path) -> None:
    model = trained()
    model.config.save_pretrained(tmp_path)  # the model's config.json, as in an export folder
    ps.save_petl(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "petl_config.json", "weights.safetensors"]
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "bert"  # untouched
    fresh = ps.load_petl(make_model("bert"), tmp_path)
    inputs = make_inputs("bert")
    with torch.no_grad():
        assert torch.equal(hidden(fresh, inputs), hidden(model, inputs))


def test_a_folder_written_by_0_1_still_loads_and_is_replaced_whole(tmp_path) -> None:
    model = trained()
    ps.save_petl(model, tmp_path)
    (tmp_path / "petl_config.json").rename(tmp_path / "config.json")  # 0.1's layout
    inputs = make_inputs("bert")
    with torch.no_grad():
        assert torch.equal(hidden(ps.load_petl(make_model("bert"), tmp_path), inputs), hidden(model, inputs))
    with pytest.raises(ps.PETLError, match="already holds a saved Δh"):
        ps.save_petl(trained(seed=1), tmp_path)
    ps.save_petl(trained(seed=1), tmp_path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["petl_config.json", "weights.safetensors"]


def test_a_models_config_json_alone_is_not_a_saved_delta(tmp_path) -> None:
    make_model("bert").config.save_pretrained(tmp_path)
    with pytest.raises(ps.PETLError, match="petl_config.json not found"):
        ps.load_petl(make_model("bert"), tmp_path)
