"""Head-attention Δh (prefixes, multi-head adapters) behave the same under sdpa and eager, with padding
masks, and with a generation cache in decoders."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

import petl_search as ps
from petl_search.core.config import DeltaSpec
from conftest import ARCHS, TINY_CONFIGS, hidden, make_inputs, make_model, randomise_deltas, uses_attention_interface

HEAD_CONFIGS = {
    "prefix": ps.presets.prefix_tuning(l=3, reparam=8),
    "mh_pa": ps.presets.mh_parallel_adapter(heads=4, r_per_head=2),
    "seq_heads_gate": ps.PETLConfig(attn_heads=DeltaSpec(form="bottleneck", size=4, insertion="sequential",
                                                         composition="gate")),
}


# MPNet's attention is inline and eager only (no sdpa to compare): its head Δh goes through hooks,
# checked by test_head_delta_comes_off_and_leaves_the_attention_implementation and the paper's equations
@pytest.mark.parametrize("arch", [a for a in ARCHS if uses_attention_interface(a)])
@pytest.mark.parametrize("name", sorted(HEAD_CONFIGS))
def test_sdpa_and_eager_agree(arch: str, name: str) -> None:
    inputs = make_inputs(arch)
    outputs = []
    for attn in ("sdpa", "eager"):
        model = ps.apply_petl(make_model(arch, attn=attn), HEAD_CONFIGS[name])
        randomise_deltas(model)
        assert model.config._attn_implementation == f"petl_{attn}"
        with torch.no_grad():
            outputs.append(hidden(model, inputs))
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(HEAD_CONFIGS))
def test_head_delta_comes_off_and_leaves_the_attention_implementation(arch: str, name: str) -> None:
    """Head Δh changes the output (all of it random), routes attention through petl's functions only where
    the family's attention calls the AttentionInterface, and remove_petl gives back the frozen model."""
    model = make_model(arch)
    implementation = model.config._attn_implementation
    inputs = make_inputs(arch)
    with torch.no_grad():
        before = hidden(model, inputs)
        ps.apply_petl(model, HEAD_CONFIGS[name])
        randomise_deltas(model)
        routed = model.config._attn_implementation
        changed = hidden(model, inputs)
        ps.remove_petl(model)
        after = hidden(model, inputs)
    assert routed == (f"petl_{implementation}" if uses_attention_interface(arch) else implementation)
    assert not torch.allclose(changed, before)
    assert torch.equal(after, before) and model.config._attn_implementation == implementation


def test_padding_is_still_masked_with_a_prefix(arch: str) -> None:
    """Changing a padded token must not change the other tokens' outputs."""
    model = ps.apply_petl(make_model(arch), HEAD_CONFIGS["prefix"])
    randomise_deltas(model)
    inputs = make_inputs(arch)
    changed = {k: v.clone() for k, v in inputs.items()}
    changed["input_ids"][-1, -1] = 5 if inputs["input_ids"][-1, -1] != 5 else 6
    with torch.no_grad():
        a, b = hidden(model, inputs), hidden(model, changed)
    if arch == "bart":  # the encoder pads; compare the decoder output, which reads the encoder
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    else:
        torch.testing.assert_close(a[-1, :-2], b[-1, :-2], atol=1e-6, rtol=0)


def _lm(arch: str, attn: str) -> torch.nn.Module:
    torch.manual_seed(0)
    config = TINY_CONFIGS[arch]()
    config._attn_implementation = attn
    cls = AutoModelForSeq2SeqLM if arch == "bart" else AutoModelForCausalLM
    return cls.from_config(config).eval()


@pytest.mark.parametrize("arch", ["gpt2", "llama", "bart"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("name", ["prefix", "mh_pa"])
def test_generation_with_cache_equals_without(arch: str, attn: str, name: str) -> None:
    model = ps.apply_petl(_lm(arch, attn), HEAD_CONFIGS[name])
    randomise_deltas(model)
    ids = make_inputs(arch)["input_ids"][:1]
    kwargs = dict(max_new_tokens=6, do_sample=False, output_scores=True, return_dict_in_generate=True,
                  pad_token_id=0)
    with torch.no_grad():
        cached = model.generate(ids, use_cache=True, **kwargs)
        uncached = model.generate(ids, use_cache=False, **kwargs)
    assert torch.equal(cached.sequences, uncached.sequences)
    for a, b in zip(cached.scores, uncached.scores):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_prefix_changes_every_attention_of_an_encoder_decoder() -> None:
    """BART: encoder self-, decoder self- and cross-attention each get their own prefix."""
    model = ps.apply_petl(make_model("bart"), HEAD_CONFIGS["prefix"])
    assert sorted(model.petl.prefixes["attn_heads"].entries) == [
        "attn_heads_b0_self", "attn_heads_b1_self", "attn_heads_b2_cross", "attn_heads_b2_self",
        "attn_heads_b3_cross", "attn_heads_b3_self"]


def test_mpnet_prefix_with_attention_weights_requested() -> None:
    """MPNet (hooks route): asking for attention weights gives one row per real token and l + T columns,
    the prefix's first, and the same hidden states."""
    model = ps.apply_petl(make_model("mpnet"), HEAD_CONFIGS["prefix"])
    randomise_deltas(model)
    inputs = make_inputs("mpnet")
    with torch.no_grad():
        plain = hidden(model, inputs)
        out = model(**inputs, output_attentions=True)
    assert torch.equal(out.last_hidden_state, plain)
    assert [tuple(a.shape) for a in out.attentions] == [(2, 4, 7, 3 + 7)] * 2
    assert (out.attentions[0][-1, :, :, -2:] == 0).all()  # the padded tokens stay masked


def test_mpnet_prefix_keys_and_values_stay_exact_beside_a_delta_on_k_and_v() -> None:
    """MPNet (hooks route) with a prefix and a biased Δh on k and v: the prefix hooks run after the Δh's, so
    the attention reads exactly [P_k; k(x) + Δk] and [P_v; v(x) + Δv] (not P_k plus Δk of a zero row)."""
    config = ps.PETLConfig(attn_heads=DeltaSpec(form="prefix", size=3),
                           attn_qkv=DeltaSpec(form="bottleneck", size=4, insertion="sequential",
                                              projections=("k", "v")))
    model = ps.apply_petl(make_model("mpnet"), config)
    randomise_deltas(model)
    attn = model.encoder.layer[0].attention.attn
    seen: dict[str, torch.Tensor] = {}
    handles = [attn.k.register_forward_hook(lambda m, a, out: seen.update(k=out)),  # registered last: runs last
               attn.v.register_forward_hook(lambda m, a, out: seen.update(v=out))]
    with torch.no_grad():
        model(**make_inputs("mpnet"))
        prefix = model.petl.prefixes["attn_heads"].kv("attn_heads_b0_self")  # (2, H, l, d_h)
    for handle in handles:
        handle.remove()
    for i, name in enumerate("kv"):
        expected = prefix[i].transpose(0, 1).flatten(-2).expand(2, -1, -1)  # (B, l, H·d_h)
        assert torch.equal(seen[name][:, :3], expected), name
    assert (model.petl.deltas["attn_qkv_b0_self_k"].bottleneck.up_bias != 0).all()  # Δk(0) ≠ 0: the order matters


def test_hooks_route_refuses_what_it_cannot_reach(monkeypatch) -> None:
    """A family whose attention is inline cannot take head Δh on a fused q/k/v projection: a PETLError names
    the model type, the site and why, before the model is touched. (GPT-2's table, as if it were inline.)"""
    import dataclasses
    from petl_search.core import architectures
    hooked = tuple(dataclasses.replace(f, head_route="hooks") if f.name == "gpt2" else f
                   for f in architectures.FAMILIES)
    monkeypatch.setattr(architectures, "FAMILIES", hooked)
    model = make_model("gpt2")
    with pytest.raises(ps.PETLError, match=r"model_type 'gpt2' cannot take Δh on site attn_heads .*does not call "
                                           r"transformers' AttentionInterface.*\['q', 'k', 'v'\] are slices"):
        ps.apply_petl(model, HEAD_CONFIGS["prefix"])
    assert not hasattr(model, "petl") and all(p.requires_grad for p in model.parameters())  # untouched
    ps.apply_petl(model, ps.presets.lora(r=2))  # sublayer sites need no head route


def test_unsupported_attention_implementation_is_refused() -> None:
    model = make_model("llama")
    model.config._attn_implementation_internal = "flex_attention"
    with pytest.raises(ps.PETLError, match=r"attn_implementation must be one of \['sdpa', 'eager'\].*flex_attention"):
        ps.apply_petl(model, HEAD_CONFIGS["prefix"])
    assert not hasattr(model, "petl") and all(p.requires_grad for p in model.parameters())  # untouched
