"""Merging linear Δh into the base weights gives the same outputs with no Δh left."""
from __future__ import annotations

import pytest
import torch

import petl_search as ps
from petl_search.core.config import DeltaSpec, PETLConfig
from conftest import ARCHS, hidden, make_inputs, make_model, randomise_deltas

MERGEABLE = {
    "lora": ps.presets.lora(r=2, projections=("q", "k", "v")),
    "lora_gate_sequential_qkv": PETLConfig(attn_qkv=DeltaSpec(form="lora", size=4, insertion="sequential",
                                                              composition="gate", heads=2)),
    "sequential_lora_ffn_and_out": PETLConfig(
        attn_out=DeltaSpec(form="lora", size=2, insertion="sequential", composition="learned_scale", scale=2.0),
        ffn=DeltaSpec(form="lora", size=2, insertion="sequential", composition="scale", scale=0.5)),
}


@pytest.mark.parametrize("name", sorted(MERGEABLE))
def test_merged_model_matches_the_unmerged_one(arch: str, name: str) -> None:
    model = ps.apply_petl(make_model(arch), MERGEABLE[name])
    randomise_deltas(model)
    inputs = make_inputs(arch)
    with torch.no_grad():
        expected = hidden(model, inputs)
        ps.merge_petl(model)
        got = hidden(model, inputs)
    assert not hasattr(model, "petl")
    assert not any(ps.is_petl_parameter(n) for n, _ in model.named_parameters())
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_non_linear_or_non_local_deltas_are_refused_and_nothing_changes() -> None:
    model = ps.apply_petl(make_model("bert"), ps.presets.mam(prefix_len=2, ffn_r=4))
    before = {n: p.clone() for n, p in model.named_parameters()}
    with pytest.raises(ps.PETLError, match=r"not mergeable: .*attn_heads: a prefix is not a weight delta.*"
                                           r"ffn_b0: not linear \(form 'bottleneck'\)"):
        ps.merge_petl(model)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    parallel = ps.apply_petl(make_model("bert"), PETLConfig(ffn=DeltaSpec(form="lora", size=2)))
    assert ps.mergeable(parallel)["ffn_b0"].startswith("parallel Δh reads the sublayer's input")
    after_norm = ps.apply_petl(make_model("bert"), PETLConfig(ffn=DeltaSpec(form="lora", size=2, insertion="after_norm")))
    assert ps.mergeable(after_norm)["ffn_b0"].startswith("Δh inserted after the norm reads the residual Add&Norm")


@pytest.mark.parametrize("name", ["sequential_lora_fixed_scale", "lora"])
def test_merging_works_where_the_model_lives_and_keeps_its_dtype(name: str) -> None:
    """A model that is not on the CPU (here the 'meta' device: no GPU needed, and any CPU tensor merge made
    would meet the weights there and raise) merges in place: every weight stays on its device, with its
    dtype. Sequential Δh builds α·I + β·M, the identity included, on the weight's device."""
    config = {"lora": MERGEABLE["lora"],
              "sequential_lora_fixed_scale": PETLConfig(
                  attn_out=DeltaSpec(form="lora", size=2, insertion="sequential", composition="scale", scale=2.0),
                  ffn=DeltaSpec(form="lora", size=2, insertion="sequential", composition="add"))}[name]
    model = ps.apply_petl(make_model("bert"), config).to(device="meta", dtype=torch.float64)
    ps.merge_petl(model)
    assert not hasattr(model, "petl")
    assert {(p.device.type, p.dtype) for p in model.parameters()} == {("meta", torch.float64)}
