"""Reference equivalence: our LoRA and prefix tuning against PEFT's with the same weights copied in,
the paper's Eq. 8 (prefix attention = gated mix of ordinary attention and attention over the
prefix), checked numerically, and the multi-head parallel adapter checked head by head inside a model."""
from __future__ import annotations

import copy

import peft
import pytest
import torch
from torch import nn
from transformers import AttentionInterface

import petl_search as ps
from petl_search.core.architectures import family_of, geometry
from petl_search.nn.attention import HEAD_SITE_ATTR, HeadSite
from petl_search.nn.modules import PrefixBank
from conftest import ARCHS, hidden, make_inputs, make_model, randomise_deltas

LORA_TARGETS = {"bert": ["query", "value"], "roberta": ["query", "value"], "bart": ["q_proj", "v_proj"],
                "gpt2": ["c_attn"], "llama": ["q_proj", "v_proj"], "mpnet": ["q", "v"]}


def _names(model: nn.Module) -> dict[int, str]:
    return {id(m): n for n, m in model.named_modules()}


@pytest.mark.parametrize("arch", ARCHS)
def test_lora_matches_peft(arch: str) -> None:
    r, alpha = 2, 6.0
    fused = arch == "gpt2"  # PEFT puts one LoRA on the fused c_attn; we put one per q, k, v slice
    projections = ("q", "k", "v") if fused else ("q", "v")
    peft_r = 3 * r if fused else r
    base = make_model(arch)
    ours = ps.apply_petl(copy.deepcopy(base), ps.presets.lora(r=r, alpha=alpha * r / peft_r,
                                                              projections=projections))
    randomise_deltas(ours)
    theirs = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(
        r=peft_r, lora_alpha=alpha, target_modules=LORA_TARGETS[arch], lora_dropout=0.0))
    names = _names(ours)
    by_module: dict[str, list] = {}
    for wiring in ours.petl._wirings:
        by_module.setdefault(names[id(wiring.exit)], []).append(wiring)
    with torch.no_grad():
        for name, wirings in by_module.items():
            layer = theirs.base_model.model.get_submodule(name)
            wirings.sort(key=lambda w: w.start or 0)
            a = torch.cat([w.delta.bottleneck.down_weight[0] for w in wirings])
            b = torch.block_diag(*(w.delta.bottleneck.up_weight[0] for w in wirings))
            layer.lora_A["default"].weight.copy_(a)
            layer.lora_B["default"].weight.copy_(b)
    inputs = make_inputs(arch)
    with torch.no_grad():
        torch.testing.assert_close(hidden(ours, inputs), theirs(**inputs).last_hidden_state, atol=1e-5, rtol=0)


def _peft_prefix_weight(ours: nn.Module, n_layers: int, heads: int, length: int) -> torch.Tensor:
    """Our per-module prefixes in PEFT's layout: (l, layers·2·heads·head_dim), keys before values."""
    bank = ours.petl.prefixes["attn_heads"]
    per_layer = [bank.kv(f"attn_heads_b{i}_self") for i in range(n_layers)]  # (2, H, l, d_h)
    stacked = torch.stack(per_layer)  # (L, 2, H, l, d_h)
    return stacked.permute(3, 0, 1, 2, 4).reshape(length, -1)


@pytest.mark.parametrize("arch", ["bert", "roberta", "gpt2", "llama"])
def test_prefix_tuning_matches_peft(arch: str) -> None:
    length = 5
    base = make_model(arch)
    ours = ps.apply_petl(copy.deepcopy(base), ps.presets.prefix_tuning(l=length, reparam=None))
    randomise_deltas(ours)
    geo = geometry(base.config)
    attn = geo[0].attentions[0]
    theirs = peft.get_peft_model(copy.deepcopy(base), peft.PrefixTuningConfig(
        task_type="FEATURE_EXTRACTION", num_virtual_tokens=length, num_layers=len(geo),
        token_dim=attn.kv_width, num_attention_heads=attn.kv_heads))
    with torch.no_grad():
        theirs.prompt_encoder["default"].embedding.weight.copy_(
            _peft_prefix_weight(ours, len(geo), attn.kv_heads, length))
    inputs = make_inputs(arch)
    # PEFT feeds the prefix through the cache and adds l to every position id (it treats the prefix as
    # l earlier tokens); we keep the paper's positions (Eq. 7). Cancel its offset to compare the rest.
    first = base.config.pad_token_id + 1 if arch == "roberta" else 0  # RoBERTa counts from padding_idx + 1
    positions = first + torch.arange(inputs["input_ids"].shape[1]).expand_as(inputs["input_ids"])
    with torch.no_grad():
        expected = theirs(**inputs, position_ids=positions - length).last_hidden_state
        got = hidden(ours, {**inputs, "position_ids": positions})
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


class _Attention(nn.Module):
    """The minimum an attention function reads off its module."""

    is_causal = False


@pytest.mark.parametrize("implementation", ["petl_sdpa", "petl_eager"])
def test_prefix_attention_is_the_gated_composition_of_eq_8(implementation: str) -> None:
    """He et al. Eq. 8: head = (1-λ(x))·Attn(xW_q, CW_k, CW_v) + λ(x)·Attn(xW_q, P_k, P_v), with
    λ(x) = Σ_i exp(xW_q P_kᵀ)_i / (Σ_i exp(xW_q P_kᵀ)_i + Σ_j exp(xW_q W_kᵀ Cᵀ)_j)."""
    torch.manual_seed(0)
    batch, heads, t, d_h, length = 2, 3, 6, 8, 4
    q, k, v = (torch.randn(batch, heads, t, d_h, dtype=torch.float64) for _ in range(3))
    bank = PrefixBank({"m": (heads, d_h, length)}, hidden=heads * d_h, reparam=None, dtype=torch.float64)
    module = _Attention()
    module.__dict__[HEAD_SITE_ATTR] = HeadSite(prefix=bank, prefix_key="m")
    if implementation == "petl_eager":  # the eager function is looked up in the module's own file
        _Attention.__module__ = "transformers.models.bert.modeling_bert"
    scale = d_h ** -0.5
    with torch.no_grad():
        got, _ = AttentionInterface()[implementation](module, q, k, v, None, scaling=scale)
        p_k, p_v = bank.kv("m")
        logits_c = q @ k.transpose(-1, -2) * scale
        logits_p = q @ p_k.transpose(-1, -2) * scale
        attn_c = torch.softmax(logits_c, -1) @ v
        attn_p = torch.softmax(logits_p, -1) @ p_v
        mass_p, mass_c = logits_p.exp().sum(-1, keepdim=True), logits_c.exp().sum(-1, keepdim=True)
        lam = mass_p / (mass_p + mass_c)
        expected = ((1 - lam) * attn_c + lam * attn_p).transpose(1, 2)  # (B, T, H, d_h) like the function
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)
    assert 0 < lam.min() and lam.max() < 1


def _query_and_heads(model: nn.Module, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer 0's query projection output q = x W_q + b_q and the input of its attention output projection
    (the concatenated head outputs), captured with hooks during one forward pass."""
    layer = model.encoder.layer[0]
    paths = family_of(model.config).stacks[0].attentions[0]
    seen: dict[str, torch.Tensor] = {}
    handles = [layer.get_submodule(paths.q.path).register_forward_hook(lambda m, a, out: seen.update(q=out)),
               layer.get_submodule(paths.out).register_forward_pre_hook(lambda m, a: seen.update(heads=a[0]))]
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    return seen["q"], seen["heads"]


@pytest.mark.parametrize("arch,attn", [("bert", "sdpa"), ("bert", "eager"), ("mpnet", "eager")])
def test_multi_head_adapter_on_heads_is_block_diagonal_and_reads_each_heads_query(arch: str, attn: str) -> None:
    """MH PA (He et al. 2022, multi-head parallel adapter, read from the query as prefix tuning's Eq. 10
    reads x W_q): through the model, head i's output o_i gains exactly
    f(q_i W_down^(i) + b_down^(i)) W_up^(i) + b_up^(i), with q_i head i's own slice of x W_q + b_q: each head
    reads its own query and writes its own slice of the concatenated heads, nothing else changes. MPNet's
    attention is inline, so there the Δh goes through hooks on q and on the output projection."""
    heads, r_per_head, d_h = 4, 2, 8
    base = make_model(arch, attn=attn)
    model = ps.apply_petl(make_model(arch, attn=attn), ps.presets.mh_parallel_adapter(heads=heads,
                                                                                         r_per_head=r_per_head))
    randomise_deltas(model)
    bn = model.petl.deltas["attn_heads_b0_self"].bottleneck
    assert bn.down_weight.shape == (heads, r_per_head, d_h) and bn.up_weight.shape == (heads, d_h, r_per_head)
    inputs = make_inputs(arch)
    q, without = _query_and_heads(base, inputs)
    q_with, with_delta = _query_and_heads(model, inputs)
    torch.testing.assert_close(q_with, q, atol=0, rtol=0)  # layer 0 sees the same input in both models
    change = with_delta - without

    def delta_h(i: int, q_in: torch.Tensor) -> torch.Tensor:
        """Head i's adapter, f(q_in W_down^(i) + b_down^(i)) W_up^(i) + b_up^(i), written out."""
        rows, cols = slice(i * r_per_head, (i + 1) * r_per_head), slice(i * d_h, (i + 1) * d_h)
        return torch.relu(q_in @ bn.down_weight[i].T + bn.down_bias[rows]) @ bn.up_weight[i].T + bn.up_bias[cols]

    def head(i: int, x: torch.Tensor) -> torch.Tensor:
        return x[..., i * d_h:(i + 1) * d_h]

    with torch.no_grad():
        for i in range(heads):
            expected = delta_h(i, head(i, q))
            torch.testing.assert_close(head(i, change), expected, atol=1e-5, rtol=0)
            # And the check can tell heads apart: another head's query would give a clearly different Δh.
            assert (expected - delta_h(i, head((i + 1) % heads, q))).abs().max() > 1e-3
