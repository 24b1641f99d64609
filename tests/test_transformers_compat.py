"""nn/transformers_compat.py: the eager attention petl finds for a module is the very function its model calls
under attn_implementation='eager', for every tiny architecture that routes attention through the
AttentionInterface; a module without one, and a transformers outside the checked major, are reported."""
from __future__ import annotations

import sys
import warnings

import pytest
import torch
from torch import nn

import petl_search as ps
from petl_search.nn.transformers_compat import (CHECKED_TRANSFORMERS_MAJOR, EAGER_NAME, check_transformers_version,
                                                eager_attention_of)
from conftest import ARCHS, make_inputs, make_model, uses_attention_interface

INTERFACE_ARCHS = [a for a in ARCHS if uses_attention_interface(a)]


def record_eager_calls(monkeypatch, model: nn.Module) -> list[nn.Module]:
    """Replace the eager function of `model`'s modeling file by a recording wrapper around it; return the
    list the attention modules the model hands to it are appended to."""
    modeling = sys.modules[type(model).__module__]
    original = getattr(modeling, EAGER_NAME)
    seen: list[nn.Module] = []

    def recording(module, *args, **kwargs):
        seen.append(module)
        return original(module, *args, **kwargs)

    monkeypatch.setattr(modeling, EAGER_NAME, recording)
    return seen


@pytest.mark.parametrize("arch", INTERFACE_ARCHS)
def test_the_eager_function_found_is_the_one_the_model_calls(arch: str, monkeypatch) -> None:
    model = make_model(arch, attn="eager")
    seen = record_eager_calls(monkeypatch, model)
    with torch.no_grad():
        model(**make_inputs(arch))
    assert seen, f"{arch}: the model never called its modeling file's {EAGER_NAME}"
    called = getattr(sys.modules[type(model).__module__], EAGER_NAME)
    assert all(eager_attention_of(m) is called for m in seen)


@pytest.mark.parametrize("arch", INTERFACE_ARCHS)
def test_petl_eager_calls_the_model_own_eager_for_every_attention_module(arch: str, monkeypatch) -> None:
    """Under petl's eager attention (a multi-head adapter on every attention module), the model's own eager
    function is called as often as without petl, and, the adapter starting at zero, gives the same output."""
    inputs = make_inputs(arch)
    plain = make_model(arch, attn="eager")
    seen_plain = record_eager_calls(monkeypatch, plain)
    with torch.no_grad():
        expected = plain(**inputs).last_hidden_state
    calls_plain = len(seen_plain)  # the wrapper below wraps this one: it keeps counting
    model = ps.apply_petl(make_model(arch, attn="eager"), ps.presets.mh_parallel_adapter(heads=4, r_per_head=2))
    assert model.config._attn_implementation == "petl_eager"
    seen_petl = record_eager_calls(monkeypatch, model)
    with torch.no_grad():
        got = model(**inputs).last_hidden_state
    assert len(seen_petl) == calls_plain > 0
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


class _Orphan(nn.Module):
    """An attention module defined where no eager attention function lives (this test file)."""


def test_a_module_without_an_eager_function_is_reported_by_name() -> None:
    with pytest.raises(ps.PETLError, match=rf"_Orphan \(in {__name__}\) has no module-level `{EAGER_NAME}`.*"
                                           r"installed: 5\..*attn_implementation='sdpa'"):
        eager_attention_of(_Orphan())


def test_the_installed_transformers_is_a_checked_one() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_transformers_version() is True
        assert check_transformers_version(f"{CHECKED_TRANSFORMERS_MAJOR}.99.0.dev0") is True


@pytest.mark.parametrize("version", ["4.57.1", "6.0.0", "6.0.0.dev0"])
def test_an_unchecked_transformers_version_is_reported(version: str) -> None:
    with pytest.warns(UserWarning, match=rf"transformers {version} is installed.*transformers>=5,<6"):
        assert check_transformers_version(version) is False
