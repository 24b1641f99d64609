"""Δh is added after each sublayer's hidden dropout in every family, in training mode, against layers
written out here by hand under one fixed dropout mask (tests/reference/fixed_dropout.py).

BART applies that dropout as a function inside its layer's forward, where no hook reaches: petl-search
takes it over at the sublayer exits (nn/inject.py, DropoutTakeover). GPT-2 keeps it in modules, and is
pre-norm: Δh inserted after the norm reads the residual stream r + h there, as AdapterHub does. Each
reference calls the *untouched* frozen modules of a copy made before Δh went on, and writes the Δh by
hand from its weights:

    sequential  h ← h + s·f(h W_down + b) W_up + b         (h after the dropout)
    parallel    h ← h + s·f(x W_down + b) W_up + b         (x the sublayer's input)
    after_norm  h ← h + f(N(r + h) W_down + b) W_up + b    (N the Add&Norm's frozen LN; none in GPT-2)
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import AutoModel, BartConfig, GPT2Config

import petl_search as ps
from petl_search.nn.modules import SiteDelta

sys.path.insert(0, str(Path(__file__).parent / "reference"))
from fixed_dropout import fixed_dropout, fixed_dropout_mask  # noqa: E402

P = 0.25  # the hidden dropout rate of both tiny models
POINTS = {
    "houlsby": ps.presets.houlsby(r=4),
    "pfeiffer": ps.presets.pfeiffer(r=4),
    "scaled_pa": ps.presets.scaled_parallel_adapter(r=4, s=4.0),
    "after_norm_attn_parallel_ffn": ps.PETLConfig(attn_out=dict(form="bottleneck", size=4, insertion="after_norm"),
                                                   ffn=dict(form="bottleneck", size=4, insertion="parallel")),
}


def tiny(arch: str) -> nn.Module:
    torch.manual_seed(0)
    if arch == "bart":
        config = BartConfig(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                            decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=100,
                            max_position_embeddings=64, dropout=P, attention_dropout=0.0, activation_dropout=0.0)
    else:
        config = GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=100, resid_pdrop=P, embd_pdrop=0.0,
                            attn_pdrop=0.0)
    return AutoModel.from_config(config)


def by_hand(delta: SiteDelta | None, *, x: torch.Tensor, h: torch.Tensor, r: torch.Tensor,
            norm: nn.Module | None) -> torch.Tensor:
    """h with its Δh, from the delta's weights (ReLU bottleneck, add or fixed scale)."""
    if delta is None:
        return h
    b = delta.bottleneck
    source = {"sequential": h, "parallel": x,
              "after_norm": (r + h) if norm is None else norm(r + h)}[delta.insertion]
    down = torch.relu(source @ b.down_weight[0].T + b.down_bias)
    return h + delta.composition.fixed * (down @ b.up_weight[0].T + b.up_bias)


def first(output):
    return output[0] if isinstance(output, tuple) else output


def bart_encoder_layer(base: nn.Module, deltas, h: torch.Tensor) -> torch.Tensor:
    drop = lambda t: fixed_dropout(t, P, True)  # noqa: E731
    a = by_hand(deltas.get("attn_out_b0_self"), x=h, h=drop(first(base.self_attn(h))), r=h,
                norm=base.self_attn_layer_norm)
    x = base.self_attn_layer_norm(h + a)
    f = by_hand(deltas.get("ffn_b0"), x=x, h=drop(base.fc2(base.activation_fn(base.fc1(x)))), r=x,
                norm=base.final_layer_norm)
    return base.final_layer_norm(x + f)


def bart_decoder_layer(base: nn.Module, deltas, h: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    drop = lambda t: fixed_dropout(t, P, True)  # noqa: E731
    a = by_hand(deltas.get("attn_out_b2_self"), x=h, h=drop(first(base.self_attn(h))), r=h,
                norm=base.self_attn_layer_norm)
    h = base.self_attn_layer_norm(h + a)
    c = by_hand(deltas.get("attn_out_b2_cross"), x=h, h=drop(first(base.encoder_attn(h, key_value_states=memory))),
                r=h, norm=base.encoder_attn_layer_norm)
    x = base.encoder_attn_layer_norm(h + c)
    f = by_hand(deltas.get("ffn_b2"), x=x, h=drop(base.fc2(base.activation_fn(base.fc1(x)))), r=x,
                norm=base.final_layer_norm)
    return base.final_layer_norm(x + f)


def gpt2_block(base: nn.Module, deltas, h: torch.Tensor) -> torch.Tensor:
    x = base.ln_1(h)
    a = by_hand(deltas.get("attn_out_b0_self"), x=x, h=first(base.attn(x)), r=h, norm=None)  # attn drops itself
    h = h + a
    x = base.ln_2(h)
    f = by_hand(deltas.get("ffn_b0"), x=x, h=base.mlp(x), r=h, norm=None)  # so does the MLP
    return h + f


def prepared(arch: str, point: ps.PETLConfig) -> tuple[nn.Module, nn.Module]:
    """(the model with Δh, randomised; an untouched frozen copy made before), both in training mode."""
    model = tiny(arch)
    base = copy.deepcopy(model)
    ps.apply_petl(model, point)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ps.is_petl_parameter(name):
                param.copy_(torch.randn(param.shape, generator=g) * 0.3)
    return model.train(), base.train()


@pytest.mark.parametrize("name", sorted(POINTS))
def test_bart_adds_delta_h_after_its_functional_dropout(name: str) -> None:
    model, base = prepared("bart", POINTS[name])
    deltas = dict(model.petl.deltas)
    g = torch.Generator().manual_seed(5)
    h, memory = torch.randn(2, 6, 32, generator=g), torch.randn(2, 5, 32, generator=g)
    with torch.no_grad(), fixed_dropout_mask():
        encoder = first(model.encoder.layers[0](h, attention_mask=None))
        decoder = first(model.decoder.layers[0](h, encoder_hidden_states=memory))
        torch.testing.assert_close(encoder, bart_encoder_layer(base.encoder.layers[0], deltas, h), atol=1e-5, rtol=0)
        torch.testing.assert_close(decoder, bart_decoder_layer(base.decoder.layers[0], deltas, h, memory),
                                   atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(POINTS))
def test_gpt2_adds_delta_h_after_its_residual_dropout(name: str) -> None:
    model, base = prepared("gpt2", POINTS[name])
    h = torch.randn(2, 6, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad(), fixed_dropout_mask():
        torch.testing.assert_close(first(model.h[0](h)), gpt2_block(base.h[0], dict(model.petl.deltas), h),
                                   atol=1e-5, rtol=0)


def test_bart_gets_its_dropout_back_when_delta_h_comes_off() -> None:
    """The takeover sets the layer's rate to 0 while Δh is on; remove_petl restores it, and the plain
    model's training-mode outputs are the frozen model's again."""
    model = tiny("bart").train()
    ids = torch.randint(3, 100, (2, 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), fixed_dropout_mask():
        before = model(input_ids=ids).last_hidden_state
        ps.apply_petl(model, ps.presets.houlsby(r=4))
        assert {layer.dropout for layer in (*model.encoder.layers, *model.decoder.layers)} == {0.0}
        on = model(input_ids=ids).last_hidden_state  # zero-initialised Δh: the same outputs, dropout included
        ps.remove_petl(model)
        assert {layer.dropout for layer in (*model.encoder.layers, *model.decoder.layers)} == {P}
        after = model(input_ids=ids).last_hidden_state
    assert torch.equal(before, on) and torch.equal(before, after)
