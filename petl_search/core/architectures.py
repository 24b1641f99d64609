"""Where things live in each supported architecture family: one small table per family.

Everything else in petl-search is generic. A family says, per stack of blocks (encoder, decoder):
the module path of the block list, for each attention in a block (self, cross) where its projections
live, and which modules begin and end the feed-forward sublayer. It also reads the geometry (widths,
heads, block counts) off a model *config*, so parameters can be counted without building a model.

A sublayer is described by the module whose input is the sublayer's input x, the module whose input is
the residual stream r that its output is added to (x itself in post-norm blocks; before the pre-norm in
GPT-2 and Llama), the module whose output is the sublayer's output h *after its dropout* (where Δh is
added, as Houlsby's adapter-bert, He et al.'s code and AdapterHub add it: dense → dropout → Δh → Add&Norm),
and, in post-norm families, the frozen LayerNorm of that Add&Norm. Sequential Δh reads h, parallel Δh
reads x, and Δh inserted after the norm reads the Add&Norm's output, LN(r + h), or r + h where no norm
follows the add (Pfeiffer et al. 2021, as AdapterHub's SeqBnConfig); all are added to h. Where a family's dropout is a function,
not a module (BART), the block attribute that holds its rate is named and petl-search applies that
dropout itself at the exit (nn/inject.py). This module must not import transformers' modeling code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .errors import UnsupportedModelError


@dataclass(frozen=True)
class Projection:
    """A q/k/v projection: its own module, or a slice `part` of `parts` of a fused module (GPT-2)."""

    path: str
    part: int | None = None
    parts: int = 1


@dataclass(frozen=True)
class AttentionPaths:
    kind: str  # "self" or "cross"
    module: str  # the module that computes attention (calls the attention interface, or does it inline)
    q: Projection
    k: Projection
    v: Projection
    out: str  # the output projection (its weights are what a merge folds Δh into)
    exit: str = ""  # whose output is the sublayer's output after its dropout ("" = `out`: no dropout module)
    norm: str | None = None  # the frozen LayerNorm of the Add&Norm after this sublayer (None: pre-norm)
    input: str = ""  # whose first input is the sublayer's input x ("" = q's module)
    residual: str = ""  # whose first input is the residual stream the output is added to ("" = `input`)

    @property
    def exit_path(self) -> str:
        return self.exit or self.out

    @property
    def input_path(self) -> str:
        return self.input or self.q.path

    @property
    def residual_path(self) -> str:
        return self.residual or self.input_path


@dataclass(frozen=True)
class StackLayout:
    name: str  # "encoder", "decoder"
    blocks: str  # dotted suffix of the ModuleList of blocks, matched against the model's module names
    attentions: tuple[AttentionPaths, ...]
    ffn_in: tuple[str, ...]
    ffn_out: str  # the FFN's output projection (what a merge folds Δh into)
    ffn_exit: str = ""  # whose output is the FFN's output after its dropout ("" = ffn_out)
    ffn_norm: str | None = None  # the frozen LayerNorm of the Add&Norm after the FFN (None: pre-norm)
    ffn_residual: str = ""  # whose first input is the residual stream the FFN's output is added to
    # The block attribute holding the rate of a dropout applied as a function after each sublayer's exit
    # (BART's `self.dropout`): petl-search then applies that dropout itself, before Δh (nn/inject.py).
    functional_dropout: str | None = None

    @property
    def ffn_exit_path(self) -> str:
        return self.ffn_exit or self.ffn_out

    @property
    def ffn_residual_path(self) -> str:
        return self.ffn_residual or self.ffn_in[0]


@dataclass(frozen=True)
class AttentionGeometry:
    kind: str
    heads: int
    kv_heads: int
    head_dim: int

    @property
    def q_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim


@dataclass(frozen=True)
class BlockGeometry:
    index: int  # counted across stacks, encoder first
    stack: str
    position: int  # index inside its stack
    hidden: int
    attentions: tuple[AttentionGeometry, ...]


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]
    stacks: tuple[StackLayout, ...]
    # model config -> per stack: (number of blocks, hidden width, per-attention (kind, heads, kv_heads, head_dim))
    read: Callable[[Any], tuple[tuple[int, int, tuple[tuple[str, int, int, int], ...]], ...]]
    unsupported: Callable[[Any], str | None] = lambda config: None
    head_route: str = "interface"  # how Δh reaches head attention: "interface" or "hooks" (see above)
    key_arguments: tuple[str, ...] = ()  # hooks route: the attention module's per-key additive arguments


def head_route_problem(family: Family, attention: AttentionPaths) -> str | None:
    """Why Δh on the heads of `attention` cannot be wired in `family`, or None when it can.

    The hooks route widens the attention module's input by the prefix length and overwrites rows of k
    and v, so it needs separate k and v projections and keys computed from that same input (self-attention).
    """
    if family.head_route == "interface":
        return None
    if attention.kind != "self":
        return f"the hooks route reaches only self-attention, and this is {attention.kind}-attention"
    fused = [name for name in ("q", "k", "v") if getattr(attention, name).part is not None]
    if fused:
        return f"the hooks route needs separate q/k/v projections, and {fused} are slices of a fused one"
    return None


def _sep(prefix: str, q: str, k: str, v: str, out: str, kind: str = "self", **where: str) -> AttentionPaths:
    return AttentionPaths(kind, prefix, Projection(f"{prefix}.{q}"), Projection(f"{prefix}.{k}"),
                          Projection(f"{prefix}.{v}"), out, **where)


def _bert_read(c: Any):
    heads = c.num_attention_heads
    return ((c.num_hidden_layers, c.hidden_size, (("self", heads, heads, c.hidden_size // heads),)),)


def _bert_unsupported(c: Any) -> str | None:
    if getattr(c, "add_cross_attention", False):
        return "BERT-style cross-attention (add_cross_attention=True) has no layout table"
    return None


def _bart_read(c: Any):
    eh, dh = c.encoder_attention_heads, c.decoder_attention_heads
    d = c.d_model
    return ((c.encoder_layers, d, (("self", eh, eh, d // eh),)),
            (c.decoder_layers, d, (("self", dh, dh, d // dh), ("cross", dh, dh, d // dh))))


def _gpt2_read(c: Any):
    return ((c.n_layer, c.n_embd, (("self", c.n_head, c.n_head, c.n_embd // c.n_head),)),)


def _gpt2_unsupported(c: Any) -> str | None:
    if getattr(c, "add_cross_attention", False):
        return "GPT-2 cross-attention (add_cross_attention=True) has no layout table"
    return None


def _llama_read(c: Any):
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    kv = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
    return ((c.num_hidden_layers, c.hidden_size, (("self", c.num_attention_heads, kv, head_dim),)),)


_BERT_STACK = StackLayout(
    "encoder", "encoder.layer",
    (_sep("attention.self", "query", "key", "value", "attention.output.dense",
          exit="attention.output.dropout", norm="attention.output.LayerNorm"),),
    ("intermediate.dense",), "output.dense", ffn_exit="output.dropout", ffn_norm="output.LayerNorm")

FAMILIES: tuple[Family, ...] = (
    Family("bert", ("bert", "roberta"), (_BERT_STACK,), _bert_read, _bert_unsupported),
    Family("bart", ("bart",), (
        StackLayout("encoder", "encoder.layers",
                    (_sep("self_attn", "q_proj", "k_proj", "v_proj", "self_attn.out_proj",
                          norm="self_attn_layer_norm"),),
                    ("fc1",), "fc2", ffn_norm="final_layer_norm", functional_dropout="dropout"),
        StackLayout("decoder", "decoder.layers",
                    (_sep("self_attn", "q_proj", "k_proj", "v_proj", "self_attn.out_proj",
                          norm="self_attn_layer_norm"),
                     _sep("encoder_attn", "q_proj", "k_proj", "v_proj", "encoder_attn.out_proj", "cross",
                          norm="encoder_attn_layer_norm")),
                    ("fc1",), "fc2", ffn_norm="final_layer_norm", functional_dropout="dropout"),
    ), _bart_read),
    Family("gpt2", ("gpt2",), (
        StackLayout("decoder", "h",
                    (AttentionPaths("self", "attn", Projection("attn.c_attn", 0, 3), Projection("attn.c_attn", 1, 3),
                                    Projection("attn.c_attn", 2, 3), "attn.c_proj", exit="attn.resid_dropout",
                                    residual="ln_1"),),
                    ("mlp.c_fc",), "mlp.c_proj", ffn_exit="mlp.dropout", ffn_residual="ln_2"),
    ), _gpt2_read, _gpt2_unsupported),
    Family("llama", ("llama",), (
        StackLayout("decoder", "layers",
                    (_sep("self_attn", "q_proj", "k_proj", "v_proj", "self_attn.o_proj",
                          residual="input_layernorm"),),
                    ("mlp.gate_proj", "mlp.up_proj"), "mlp.down_proj", ffn_residual="post_attention_layernorm"),
    ), _llama_read),
    # MPNet's attention is inline (no AttentionInterface): head-attention Δh goes through hooks. Those
    # widen the attention's input by the prefix, so x is read off the block's attention wrapper, outside
    # the widened call.
    Family("mpnet", ("mpnet",), (
        StackLayout("encoder", "encoder.layer",
                    (_sep("attention.attn", "q", "k", "v", "attention.attn.o", exit="attention.dropout",
                          norm="attention.LayerNorm", input="attention"),),
                    ("intermediate.dense",), "output.dense", ffn_exit="output.dropout",
                    ffn_norm="output.LayerNorm"),
    ), _bert_read, head_route="hooks", key_arguments=("attention_mask", "position_bias")),
)

SUPPORTED_MODEL_TYPES = tuple(t for f in FAMILIES for t in f.model_types)


def family_of(model_config: Any) -> Family:
    """The layout family of a transformers config; a clear error lists the supported model types."""
    model_type = getattr(model_config, "model_type", None)
    for family in FAMILIES:
        if model_type in family.model_types:
            reason = family.unsupported(model_config)
            if reason:
                raise UnsupportedModelError(f"model_type {model_type!r} is supported, but not this variant: {reason}")
            return family
    raise UnsupportedModelError(
        f"model_type must be one of {list(SUPPORTED_MODEL_TYPES)}, but got {model_type!r} "
        f"(add a Family table in petl_search/core/architectures.py to support it)")


def geometry(model_config: Any) -> tuple[BlockGeometry, ...]:
    """Every block of the model, numbered across stacks (encoder first), with its widths and attentions."""
    family = family_of(model_config)
    blocks: list[BlockGeometry] = []
    for layout, (count, hidden, attns) in zip(family.stacks, family.read(model_config)):
        attentions = tuple(AttentionGeometry(*a) for a in attns)
        for position in range(count):
            blocks.append(BlockGeometry(len(blocks), layout.name, position, hidden, attentions))
    return tuple(blocks)
