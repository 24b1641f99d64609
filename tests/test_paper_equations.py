"""The presets against the papers' equations, written out by hand on a tiny BERT and a tiny MPNet with
fixed weights, in eval mode and in training mode under one fixed dropout mask.

Each test applies a preset, gives every Δh parameter random values, and compares the model's
last_hidden_state with `reference_encoder`: a forward pass of the BERT encoder written here from the
equations (Vaswani et al. attention, post-LN residual blocks) using the frozen model's own weights, read
off its modules, and the Δh parameters, read off `model.petl`. Only the embeddings are taken from the
model (positions 0..T-1, not shifted). MPNet's layer is BERT's with one more term in the attention
logits, a learned relative-position bias b[h, bucket(j - i)] (Song et al. 2020, T5's buckets), written
out here too; its attention is computed inline, so petl reaches its heads through hooks, not through
the AttentionInterface. In training mode, the sublayers' hidden dropout is `fixed_dropout` (one mask per
shape, tests/reference/fixed_dropout.py) in the model and here alike; every sequential or parallel Δh is
added after that dropout, as Houlsby's adapter-bert, He et al.'s code and AdapterHub add it
(dense → dropout → Δh → Add&Norm). Where each Δh goes is spelled out by each test, from its paper:

    Houlsby et al. 2019     h ← h + f(h W_down + b_down) W_up + b_up after the attention output projection
                            and after the FFN output projection, before each residual + LayerNorm (f = ReLU)
    Houlsby, FFN only       the same, after the FFN only (preset houlsby_ffn)
    Pfeiffer et al. 2021    h ← h + f(LN(x + h) W_down + b_down) W_up + b_up after the FFN, LN the FFN's own
                            frozen Add&Norm, which is then applied again: LN(x + h + Δ(LN(x + h)))
    He et al. 2022, PA      FFN(x) + s·(f(x W_down + b_down) W_up + b_up), x the FFN's *input* (s = 1 for PA)
    Li & Liang 2021 /       head = softmax(x W_q [P_k; C W_k]ᵀ / √d_h) [P_v; C W_v]: l learned keys/values
    He et al. 2022 Eq. 7    per head, always visible (the padding mask gains l open columns)
    He et al. 2022, MAM     prefix on the heads + scaled PA on the FFN
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from transformers import AutoModel

import sys
from pathlib import Path

import petl_search as ps
from petl_search.nn.modules import DownUp
from conftest import TINY_CONFIGS, hidden, make_inputs, randomise_deltas

sys.path.insert(0, str(Path(__file__).parent / "reference"))
from fixed_dropout import fixed_dropout, fixed_dropout_mask  # noqa: E402

HEADS = 4  # the tiny BERT of conftest: hidden 32, 4 heads of 8, 2 layers, FFN 64, dropout 0
LAYERS = 2
S = 4.0  # the scaled PA's s (He et al. 2022)
PREFIX_LEN = 3
DROPOUT = 0.25  # the tiny models' hidden dropout here (conftest's is 0), so training mode differs from eval


# --- the equations, by hand -------------------------------------------------------------------------
def linear(x: torch.Tensor, module: nn.Linear) -> torch.Tensor:
    return x @ module.weight.T + module.bias


def layer_norm(x: torch.Tensor, module: nn.LayerNorm) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + module.eps) * module.weight + module.bias


def gelu(x: torch.Tensor) -> torch.Tensor:
    """BERT's exact GELU, x·Φ(x)."""
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def adapter(bottleneck: DownUp, x: torch.Tensor) -> torch.Tensor:
    """Δh = f(x W_down + b_down) W_up + b_up (Houlsby et al. 2019, Fig. 2, which names no f), with f = ReLU,
    petl-search's default (Houlsby's adapter-bert code uses GELU, He et al. ReLU, AdapterHub swish)."""
    assert bottleneck.heads == 1 and bottleneck.norm is None and bottleneck.activation == "relu"
    w_down, w_up = bottleneck.down_weight[0], bottleneck.up_weight[0]  # nn.Linear layout: (r, d), (d, r)
    return torch.relu(x @ w_down.T + bottleneck.down_bias) @ w_up.T + bottleneck.up_bias


@dataclass
class LayerDeltas:
    """The Δh of one encoder layer, where the papers put them (None: absent)."""

    after_attn_out: DownUp | None = None  # sequential, reads the attention output projection's output
    parallel_attn_out: DownUp | None = None  # parallel, reads the attention sublayer's input
    after_ffn: DownUp | None = None  # sequential, reads the FFN's output
    after_ffn_norm: DownUp | None = None  # reads LN(x + FFN(x)), the FFN's frozen Add&Norm (Pfeiffer)
    parallel_ffn: DownUp | None = None  # parallel, reads the FFN's input
    parallel_scale: float = 1.0  # s
    prefix: torch.Tensor | None = None  # (2, heads, l, d_h): P_k, P_v


# Where each family keeps the pieces the reference reads: q, k, v, the attention output projection and
# the LayerNorm after the attention's residual (the FFN's pieces have the same names in both).
PARTS = {
    "bert": ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
             "attention.output.LayerNorm"),
    "mpnet": ("attention.attn.q", "attention.attn.k", "attention.attn.v", "attention.attn.o",
              "attention.LayerNorm"),
}


def mpnet_bucket(i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """MPNet's bucket of a key at j for a query at i (T5's bidirectional buckets, 32 of them): below a
    distance of 8 each offset has its own bucket, j <= i → i - j, j > i → 16 + (j - i)."""
    assert (i - j).abs().max() < 8, "the short form holds for sequences of at most 8 tokens"
    return torch.where(j <= i, i - j, 16 + (j - i))


def position_bias(model: nn.Module, length: int) -> torch.Tensor:
    """MPNet's relative position bias b[h, i, j] = w[bucket(i, j), h], shape (H, T, T)."""
    positions = torch.arange(length)
    buckets = mpnet_bucket(positions[:, None], positions[None, :])
    return model.encoder.relative_attention_bias.weight[buckets].permute(2, 0, 1)


def attention(layer: nn.Module, arch: str, h: torch.Tensor, visible: torch.Tensor, prefix: torch.Tensor | None,
              bias: torch.Tensor | None) -> torch.Tensor:
    """Multi-head attention, concatenated heads (before the output projection); `visible` (B, T) is the
    padding mask, `bias` (H, T, T) MPNet's position bias. With a prefix, each head's keys and values are
    [P_k; C W_k], [P_v; C W_v] (Eq. 7)."""
    q_proj, k_proj, v_proj = (layer.get_submodule(path) for path in PARTS[arch][:3])
    batch, length, width = h.shape
    d_h = width // HEADS

    def split(x: torch.Tensor) -> torch.Tensor:  # (B, T, H·d_h) -> (B, H, T, d_h)
        return x.view(batch, length, HEADS, d_h).transpose(1, 2)

    q, k, v = split(linear(h, q_proj)), split(linear(h, k_proj)), split(linear(h, v_proj))
    if prefix is not None:
        p_k, p_v = (p.unsqueeze(0).expand(batch, -1, -1, -1) for p in prefix)
        k, v = torch.cat([p_k, k], 2), torch.cat([p_v, v], 2)
        visible = torch.cat([torch.ones(batch, prefix.shape[2], dtype=torch.bool), visible], 1)
        if bias is not None:
            # Our choice: the prefix columns get no position bias. A prefix has no position (Eq. 7 writes
            # its logits as x W_q P_kᵀ alone), so giving it a bucket would invent one; a zero bias keeps
            # the paper's prefix logits, and the tokens' own logits keep their bias unchanged.
            bias = torch.cat([torch.zeros(HEADS, length, prefix.shape[2]), bias], -1)
    logits = q @ k.transpose(-1, -2) / math.sqrt(d_h)
    if bias is not None:
        logits = logits + bias
    logits = logits.masked_fill(~visible[:, None, None, :], float("-inf"))
    heads = torch.softmax(logits, -1) @ v  # (B, H, T, d_h)
    return heads.transpose(1, 2).reshape(batch, length, width)


def encoder_layer(layer: nn.Module, arch: str, h: torch.Tensor, visible: torch.Tensor, d: LayerDeltas,
                  bias: torch.Tensor | None) -> torch.Tensor:
    """One post-LN BERT/MPNet layer with the Δh of `d` placed as the papers place them: after each
    sublayer's hidden dropout (the identity in eval mode)."""
    out, attn_norm = (layer.get_submodule(path) for path in PARTS[arch][3:])
    drop = lambda t: fixed_dropout(t, DROPOUT, layer.training)  # noqa: E731
    a = drop(linear(attention(layer, arch, h, visible, d.prefix, bias), out))
    if d.after_attn_out is not None:
        a = a + adapter(d.after_attn_out, a)
    if d.parallel_attn_out is not None:
        a = a + adapter(d.parallel_attn_out, h)
    x = layer_norm(a + h, attn_norm)  # the FFN sublayer's input
    f = drop(linear(gelu(linear(x, layer.intermediate.dense)), layer.output.dense))
    if d.after_ffn is not None:
        f = f + adapter(d.after_ffn, f)
    if d.after_ffn_norm is not None:
        f = f + adapter(d.after_ffn_norm, layer_norm(f + x, layer.output.LayerNorm))
    if d.parallel_ffn is not None:
        f = f + d.parallel_scale * adapter(d.parallel_ffn, x)
    return layer_norm(f + x, layer.output.LayerNorm)


def reference_encoder(model: nn.Module, arch: str, inputs: dict, deltas: list[LayerDeltas]) -> torch.Tensor:
    h = model.embeddings(input_ids=inputs["input_ids"])
    visible = inputs["attention_mask"].bool()
    bias = position_bias(model, h.shape[1]) if arch == "mpnet" else None
    for layer, d in zip(model.encoder.layer, deltas, strict=True):
        h = encoder_layer(layer, arch, h, visible, d, bias)
    return h


# --- the presets ------------------------------------------------------------------------------------
def tiny_model(arch: str, attn: str) -> nn.Module:
    """conftest's tiny BERT or MPNet with weights drawn 10x wider (initializer_range 0.2, not 0.02). At 0.02
    every attention is nearly uniform (largest weight ≈ 0.15 over 7 tokens), so the attention scores barely
    matter: zeroing the prefix keys moves the output by only ~1e-4. At 0.2 the heads are peaked (largest
    weight ≈ 0.9) and the same mistake moves it by ~3e-2, far beyond the tolerance; MPNet's position bias
    is drawn as wide, so a bias in the wrong place shows too."""
    torch.manual_seed(0)
    config = TINY_CONFIGS[arch]()
    config.initializer_range = 0.2
    config.hidden_dropout_prob = DROPOUT
    if arch == "bert":  # MPNet's attention is inline: eager is its only implementation
        config._attn_implementation = attn
    return AutoModel.from_config(config).eval()


def prepared(config: ps.PETLConfig, arch: str, attn: str) -> nn.Module:
    model = ps.apply_petl(tiny_model(arch, attn), config)
    randomise_deltas(model)
    return model


def check(model: nn.Module, arch: str, deltas: list[LayerDeltas]) -> None:
    """The model against the reference, in eval mode and in training mode under one fixed dropout mask."""
    inputs = make_inputs(arch)  # the second row is padded: the mask matters
    assert not inputs["attention_mask"].all()
    for training in (False, True):
        model.train(training)
        with torch.no_grad(), fixed_dropout_mask():
            torch.testing.assert_close(hidden(model, inputs), reference_encoder(model, arch, inputs, deltas),
                                       atol=1e-5, rtol=0, msg=lambda m: f"training={training}: {m}")
    model.eval()


def bottlenecks(model: nn.Module, site: str) -> list[DownUp]:
    """The Δh bottleneck of `site` in each layer (attention sites are keyed by attention kind too)."""
    suffix = "_self" if site.startswith("attn") else ""
    return [model.petl.deltas[f"{site}_b{i}{suffix}"].bottleneck for i in range(LAYERS)]


# BERT under both attention implementations; MPNet (eager only) through the hooks route.
ATTN = pytest.mark.parametrize("arch,attn", [("bert", "sdpa"), ("bert", "eager"), ("mpnet", "eager")])


@ATTN
def test_houlsby_adds_an_adapter_after_attention_and_after_the_ffn(arch: str, attn: str) -> None:
    """Houlsby et al. 2019 (Fig. 2): h ← h + f(h W_down + b_down) W_up + b_up on the output of the attention
    output projection and on the output of the FFN, each before its residual + LayerNorm."""
    model = prepared(ps.presets.houlsby(r=8), arch, attn)
    assert sorted(model.petl.deltas) == ["attn_out_b0_self", "attn_out_b1_self", "ffn_b0", "ffn_b1"]
    check(model, arch, [LayerDeltas(after_attn_out=a, after_ffn=f)
                  for a, f in zip(bottlenecks(model, "attn_out"), bottlenecks(model, "ffn"))])


@ATTN
def test_houlsby_ffn_adds_houlsby_adapter_after_the_ffn_only(arch: str, attn: str) -> None:
    """Houlsby's adapter, h ← h + f(h W_down + b_down) W_up + b_up, after the FFN only."""
    model = prepared(ps.presets.houlsby_ffn(r=8), arch, attn)
    assert sorted(model.petl.deltas) == ["ffn_b0", "ffn_b1"]
    check(model, arch, [LayerDeltas(after_ffn=f) for f in bottlenecks(model, "ffn")])


@ATTN
def test_pfeiffer_reads_the_ffn_add_and_norm_and_is_normed_again(arch: str, attn: str) -> None:
    """Pfeiffer et al. 2021 (AdapterHub's SeqBnConfig, He et al.'s `--ffn_option pfeiffer`): the adapter reads
    the output of the FFN's frozen Add&Norm, LN(x + h), and the same frozen LayerNorm is applied again:
    LN(x + h + f(LN(x + h) W_down + b_down) W_up + b_up)."""
    model = prepared(ps.presets.pfeiffer(r=8), arch, attn)
    assert sorted(model.petl.deltas) == ["ffn_b0", "ffn_b1"]
    check(model, arch, [LayerDeltas(after_ffn_norm=f) for f in bottlenecks(model, "ffn")])


@ATTN
def test_parallel_adapter_reads_the_ffn_input(arch: str, attn: str) -> None:
    """He et al. 2022, PA: FFN(x) + f(x W_down + b_down) W_up + b_up, x the FFN sublayer's input (the
    attention block's output after its LayerNorm), added before the FFN's residual + LayerNorm."""
    model = prepared(ps.presets.parallel_adapter(r=8), arch, attn)
    assert sorted(model.petl.deltas) == ["ffn_b0", "ffn_b1"]
    check(model, arch, [LayerDeltas(parallel_ffn=f) for f in bottlenecks(model, "ffn")])


@ATTN
def test_scaled_parallel_adapter_scales_delta_h_by_s(arch: str, attn: str) -> None:
    """He et al. 2022, scaled PA: FFN(x) + s·(f(x W_down + b_down) W_up + b_up), s = 4, x the FFN's input."""
    model = prepared(ps.presets.scaled_parallel_adapter(r=8, s=S), arch, attn)
    assert sorted(model.petl.deltas) == ["ffn_b0", "ffn_b1"]
    check(model, arch, [LayerDeltas(parallel_ffn=f, parallel_scale=S) for f in bottlenecks(model, "ffn")])


def prefixes(model: nn.Module) -> list[torch.Tensor]:
    bank = model.petl.prefixes["attn_heads"]
    out = [bank.kv(f"attn_heads_b{i}_self") for i in range(LAYERS)]
    assert all(p.shape == (2, HEADS, PREFIX_LEN, 8) for p in out)
    return out


@ATTN
def test_prefix_tuning_prepends_keys_and_values_to_every_head(arch: str, attn: str) -> None:
    """Li & Liang 2021; He et al. 2022 Eq. 7: head = softmax(x W_q [P_k; C W_k]ᵀ / √d_h) [P_v; C W_v], the
    padding mask extended by l always-visible columns, positions not shifted."""
    model = prepared(ps.presets.prefix_tuning(l=PREFIX_LEN, reparam=None), arch, attn)
    assert len(model.petl.deltas) == 0
    check(model, arch, [LayerDeltas(prefix=p) for p in prefixes(model)])


@ATTN
def test_mam_is_prefix_attention_plus_scaled_parallel_adapter(arch: str, attn: str) -> None:
    """He et al. 2022, MAM: prefix tuning on every head (Li & Liang 2021; He et al. Eq. 7:
    head = softmax(x W_q [P_k; C W_k]ᵀ / √d_h) [P_v; C W_v], l always-visible columns, positions not
    shifted) + scaled PA on the FFN (s = 4)."""
    config = ps.presets.mam(prefix_len=PREFIX_LEN, ffn_r=8, s=S, reparam=None)
    model = prepared(config, arch, attn)
    assert sorted(model.petl.deltas) == ["ffn_b0", "ffn_b1"]
    check(model, arch, [LayerDeltas(prefix=p, parallel_ffn=f, parallel_scale=S)
                  for p, f in zip(prefixes(model), bottlenecks(model, "ffn"))])


@ATTN
def test_parallel_adapter_on_the_attention_output_reads_its_input_beside_a_prefix(arch: str, attn: str) -> None:
    """A parallel adapter at attn_out reads the attention sublayer's input x, also when a prefix sits on the
    heads (MPNet's hooks route widens the attention call by l rows: x is read outside that call)."""
    config = ps.PETLConfig(attn_heads=dict(form="prefix", size=PREFIX_LEN, reparam=None),
                           attn_out=dict(form="bottleneck", size=8, insertion="parallel"))
    model = prepared(config, arch, attn)
    check(model, arch, [LayerDeltas(prefix=p, parallel_attn_out=a)
                        for p, a in zip(prefixes(model), bottlenecks(model, "attn_out"))])


@ATTN
def test_reference_without_delta_h_is_the_frozen_model(arch: str, attn: str) -> None:
    """The hand-written encoder itself, with no Δh, against transformers' BERT and MPNet (so a failure above is about
    Δh, not about a reference that differs everywhere)."""
    model = tiny_model(arch, attn)
    check(model, arch, [LayerDeltas() for _ in range(LAYERS)])
