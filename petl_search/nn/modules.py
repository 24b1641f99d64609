"""The trainable Δh pieces: a (multi-head) down-up projection (bottleneck or LoRA), a composition, and a
bank of prefix keys/values.

    parallel:    x ──► [norm] ─► W_down ─► f ─► W_up ──► Δh ─┐
                 x ──► frozen sublayer ─► dropout ───────► h ─┴─► compose(h, Δh) ─► LN(x + ·)
    sequential:  x ──► frozen sublayer ─► dropout ─► h ─► [norm] ─► W_down ─► f ─► W_up ─► Δh ─► compose(h, Δh)
    after_norm:  as sequential, but Δh reads LN(x + h), the frozen Add&Norm's output (Pfeiffer et al.)

W_up (or the gate λ) starts at zero, so a candidate starts exactly at the frozen model. These modules
know nothing about where they are placed; `inject.py` wires them into a model.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..core.config import DeltaSpec

_ACTIVATIONS: dict[str | None, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu, "gelu": F.gelu, "silu": F.silu, "tanh": torch.tanh, "identity": lambda x: x, None: lambda x: x,
}


class DownUp(nn.Module):
    """Δ = f(norm(x) W_down + b_down) W_up + b_up, block-diagonal over `heads`: both forms that project down
    and up, the bottleneck adapter (activation f, biases) and LoRA (f the identity, no biases).

    SiteDelta keeps it under the attribute name `bottleneck`, which is part of the saved parameter names
    (`deltas.<key>.bottleneck.down_weight`), so that folders written before the rename load unchanged."""

    def __init__(self, spec: DeltaSpec, size: int, in_width: int, out_width: int, *,
                 dtype: torch.dtype | None = None, device: torch.device | None = None) -> None:
        super().__init__()
        h = spec.heads
        self.heads, self.size = h, size
        self.activation = spec.activation
        kw = {"dtype": dtype, "device": device}
        self.norm = nn.LayerNorm(in_width, **kw) if spec.input_norm else None
        # Weights in nn.Linear's (out, in) layout, one matrix per head.
        self.down_weight = nn.Parameter(torch.empty(h, size // h, in_width // h, **kw))
        self.up_weight = nn.Parameter(torch.zeros(h, out_width // h, size // h, **kw))
        bias = spec.form == "bottleneck"
        self.down_bias = nn.Parameter(torch.zeros(size, **kw)) if bias else None
        self.up_bias = nn.Parameter(torch.zeros(out_width, **kw)) if bias else None
        for head in range(h):
            if spec.init == "lora":  # nn.Linear's default init, as LoRA's A matrix
                nn.init.kaiming_uniform_(self.down_weight.data[head], a=math.sqrt(5))
            else:  # BERT's init
                nn.init.normal_(self.down_weight.data[head], std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm is not None:
            x = self.norm(x)
        act = _ACTIVATIONS[self.activation]
        if self.heads == 1:  # flatten, not [0]: its backward is a view, where indexing's allocates a copy
            z = act(F.linear(x, self.down_weight.flatten(0, 1), self.down_bias))
            return F.linear(z, self.up_weight.flatten(0, 1), self.up_bias)
        xs = x.unflatten(-1, (self.heads, -1))
        z = torch.einsum("...hi,hri->...hr", xs, self.down_weight).flatten(-2)
        if self.down_bias is not None:
            z = z + self.down_bias
        z = act(z).unflatten(-1, (self.heads, -1))
        out = torch.einsum("...hr,hor->...ho", z, self.up_weight).flatten(-2)
        return out + self.up_bias if self.up_bias is not None else out

    def dense_matrix(self) -> torch.Tensor:
        """W_up·W_down as one (out, in) matrix (block-diagonal over heads): Δ = x Mᵀ for linear forms."""
        return torch.block_diag(*(self.up_weight[i] @ self.down_weight[i] for i in range(self.heads)))


class Composition(nn.Module):
    """Puts Δh back: h + Δh, h + s·Δh, h + s·Δh with s learned, or (1-λ)h + λΔh with λ learned (from 0)."""

    def __init__(self, spec: DeltaSpec, *, dtype: torch.dtype | None = None,
                 device: torch.device | None = None) -> None:
        super().__init__()
        self.kind = spec.composition
        self.fixed = spec.scale
        kw = {"dtype": dtype, "device": device}
        self.weight = None
        if self.kind == "learned_scale":
            self.weight = nn.Parameter(torch.full((), spec.scale, **kw))
        elif self.kind == "gate":
            self.weight = nn.Parameter(torch.zeros((), **kw))

    def increment(self, h: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """What is added to h. Exactly zero when Δh (or the gate) is zero."""
        if self.kind == "add":
            return delta
        if self.kind == "scale":
            return self.fixed * delta
        if self.kind == "learned_scale":
            return self.weight * delta
        return self.weight * (delta - h)  # gate: (1-λ)h + λΔh = h + λ(Δh - h)

    def coefficients(self) -> tuple[float, float]:
        """(α, β) with compose(h, Δh) = α·h + β·Δh, for merging linear deltas."""
        if self.kind == "gate":
            lam = float(self.weight)
            return 1.0 - lam, lam
        beta = float(self.weight) if self.weight is not None else self.fixed
        return 1.0, beta


class SiteDelta(nn.Module):
    """Δh for one placement: a bottleneck read from the sublayer's input or output, then composed."""

    def __init__(self, spec: DeltaSpec, size: int, in_width: int, out_width: int, **kw) -> None:
        super().__init__()
        self.insertion = spec.insertion
        self.bottleneck = DownUp(spec, size, in_width, out_width, **kw)
        self.composition = Composition(spec, **kw)

    @property
    def parallel(self) -> bool:
        return self.insertion == "parallel"

    def increment(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The amount added to the sublayer's output h, given what Δh reads when it does not read h: the
        sublayer's input (parallel) or the frozen Add&Norm's output LN(x + h) (after_norm)."""
        delta = self.bottleneck(h if self.insertion == "sequential" else x)
        return self.composition.increment(h, delta)


class PrefixBank(nn.Module):
    """Learned prefix keys and values P_k, P_v for a set of attention modules, each of its own length.

    Trained directly, or reparameterised (Li & Liang 2021): P = MLP(E) with E of shape (l, hidden) and
    one MLP for all modules (one length for all: a config refuses per-block lengths with an MLP);
    `materialize()` gives the raw prefixes to store once training is done.
    """

    def __init__(self, entries: dict[str, tuple[int, int, int]], hidden: int, reparam: int | None, *,
                 dtype: torch.dtype | None = None, device: torch.device | None = None) -> None:
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        self.entries = dict(entries)  # key -> (kv_heads, head_dim, length)
        self.reparam = reparam
        if reparam is None:
            self.raw = nn.ParameterDict({
                key: nn.Parameter(torch.randn(2, kvh, length, hd, **kw) * 0.02)
                for key, (kvh, hd, length) in self.entries.items()})
            return
        lengths = {length for _, _, length in self.entries.values()}
        if len(lengths) != 1:
            raise ValueError(f"a reparameterised prefix has one length, but got {sorted(lengths)}")
        self.length = lengths.pop()
        self.embedding = nn.Parameter(torch.randn(self.length, hidden, **kw))
        self.mlp_in = nn.Linear(hidden, reparam, **kw)
        # The output layer, split by module: the same parameters as one wide Linear, but each attention
        # call computes (and back-propagates into) only its own rows instead of a full-size gradient.
        self.mlp_out = nn.ModuleDict({key: nn.Linear(reparam, 2 * kvh * hd, **kw)
                                      for key, (kvh, hd, _) in self.entries.items()})

    def kv(self, key: str) -> torch.Tensor:
        """Prefix keys and values of one attention module, shape (2, kv_heads, l, head_dim)."""
        if self.reparam is None:
            return self.raw[key]
        kvh, hd, _ = self.entries[key]
        out = self.mlp_out[key](torch.tanh(self.mlp_in(self.embedding)))
        return out.view(self.length, 2, kvh, hd).permute(1, 2, 0, 3)

    @torch.no_grad()
    def materialize(self) -> dict[str, torch.Tensor]:
        return {key: self.kv(key).detach().clone().contiguous() for key in self.entries}
