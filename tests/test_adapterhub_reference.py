"""Our bottleneck adapters against an outside implementation, AdapterHub `adapters` 1.3, in training mode.

tests/reference/adapterhub_bert.safetensors holds a tiny random BERT, AdapterHub's adapter weights and
its outputs, made by tests/reference/make_adapterhub_reference.py in an environment with `adapters`
(it needs transformers 4.57; this project runs on 5). Here the same weights go into our presets, and
both sides run under one fixed dropout mask (tests/reference/fixed_dropout.py), so where each adds Δh
relative to the hidden dropout shows: a Δh added before the dropout, as petl-search once added it,
misses AdapterHub's training-mode outputs by far more than the tolerance while matching in eval mode.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import BertConfig, BertModel

import petl_search as ps

sys.path.insert(0, str(Path(__file__).parent / "reference"))
from fixed_dropout import fixed_dropout_mask  # noqa: E402

FIXTURE = Path(__file__).parent / "reference" / "adapterhub_bert.safetensors"
# AdapterHub configuration -> our preset (width 8 on hidden 32, as the fixture's reduction factor 4)
PRESETS = {
    "seq_bn": ps.presets.pfeiffer(r=8),
    "double_seq_bn": ps.presets.houlsby(r=8, activation="silu"),  # DoubleSeqBnConfig(non_linearity="swish")
    "par_bn": ps.presets.parallel_adapter(r=8),
    "par_bn_s4": ps.presets.scaled_parallel_adapter(r=8, s=4.0),
}
# Where AdapterHub keeps each site's adapter in a BERT layer
SITE_MODULES = {"ffn": "output", "attn_out": "attention.output"}


@pytest.fixture(scope="module")
def reference() -> tuple[dict, dict[str, torch.Tensor]]:
    with safe_open(str(FIXTURE), "pt") as f:
        return f.metadata(), {key: f.get_tensor(key) for key in f.keys()}


def our_model(name: str, reference: tuple[dict, dict[str, torch.Tensor]]) -> BertModel:
    """The fixture's BERT with our preset for AdapterHub's configuration `name`, its weights copied in."""
    metadata, tensors = reference
    model = BertModel(BertConfig(**json.loads(metadata["config"])), add_pooling_layer=False)
    base = {k.removeprefix("base."): v for k, v in tensors.items() if k.startswith("base.")}
    missing, unexpected = model.load_state_dict(base, strict=False)
    assert not unexpected and all("position_ids" in k or "token_type_ids" in k for k in missing), (missing, unexpected)
    ps.apply_petl(model, PRESETS[name])
    copied = 0
    with torch.no_grad():
        for key, delta in model.petl.deltas.items():
            site, block = key.split("_b")[0], int(key.split("_b")[1].split("_")[0])
            theirs = f"{name}.encoder.layer.{block}.{SITE_MODULES[site]}.adapters.{name}."
            bottleneck = delta.bottleneck
            bottleneck.down_weight[0].copy_(tensors[theirs + "adapter_down.0.weight"])
            bottleneck.down_bias.copy_(tensors[theirs + "adapter_down.0.bias"])
            bottleneck.up_weight[0].copy_(tensors[theirs + "adapter_up.weight"])
            bottleneck.up_bias.copy_(tensors[theirs + "adapter_up.bias"])
            copied += 4
    assert copied == sum(1 for k in tensors if k.startswith(f"{name}.encoder."))  # every one of theirs used
    return model


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_bottleneck_adapters_equal_adapterhub(name: str, mode: str, reference) -> None:
    _, tensors = reference
    model = our_model(name, reference).train(mode == "train")
    with torch.no_grad(), fixed_dropout_mask():
        ours = model(input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"]).last_hidden_state
    expected = tensors[f"{name}.out_{mode}"]
    visible = tensors["attention_mask"].bool()  # padded positions' outputs are not part of the contract
    torch.testing.assert_close(ours[visible], expected[visible], atol=2e-5, rtol=1e-5)


def test_the_fixture_is_not_trivial(reference) -> None:
    """Each adapter moves the outputs (its up-projection is not zero) and the dropout matters in training."""
    _, tensors = reference
    base = our_model("seq_bn", reference)
    ps.remove_petl(base)
    with torch.no_grad(), fixed_dropout_mask():
        frozen = base.train()(input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"]).last_hidden_state
    for name in PRESETS:
        assert (tensors[f"{name}.out_train"] - frozen).abs().max() > 0.1
        assert (tensors[f"{name}.out_train"] - tensors[f"{name}.out_eval"]).abs().max() > 0.1
