"""Δh on head attention through hooks, for families whose attention does not call transformers'
AttentionInterface (MPNet computes softmax(q kᵀ/√d_h + position_bias + mask) v inline, so attention.py's
registered function never sees it). The same two Δh as attention.py, wired with hooks on the frozen
modules; nothing of the modeling code is copied:

  * a prefix (Li & Liang 2021; He et al. 2022 Eq. 7). The attention module reshapes k and v with its
    *input's* length, `k(x).view(B, T, -1, d_h)`, so keys longer than the input would be misread as
    more heads. Hence the input is widened instead:

        pre-hook on the attention module   x ← [0; x] (l zero rows); each per-key argument (the additive
                                           padding mask, MPNet's relative position bias) gains l zero
                                           columns in front (and l rows where it has one per query)
        forward hooks on k and v           rows 0..l-1 of k(x), v(x) ← P_k, P_v (all heads, flattened)
        forward hook on the module         drops the l extra rows of its output

    The l extra queries cost l rows of attention and are discarded. A zero column of the additive
    bias leaves the prefix logits q·P_kᵀ/√d_h as the paper writes them: a prefix has no position, so
    it gets no relative-position bias (and is never masked).
  * a bottleneck on the heads: a forward hook on q keeps the queries x W_q, a forward pre-hook on the
    output projection adds Δh to its input, the concatenated head outputs (parallel: Δh read from each
    head's query, as prefix tuning's Eq. 10; sequential: from the head outputs).

Hooks are bound methods of a `HookedHeads` (not closures), so a deep copy of the model carries its own.
"""
from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from .modules import PrefixBank, SiteDelta


def _widen(t: torch.Tensor, length: int) -> torch.Tensor:
    """l visible columns in front of an additive mask or bias (True ones for a boolean mask), and l
    rows in front where it has one row per query."""
    value = True if t.dtype == torch.bool else 0.0
    t = torch.cat([t.new_full((*t.shape[:-1], length), value), t], -1)
    if t.dim() >= 2 and t.shape[-2] > 1:
        t = torch.cat([t.new_full((*t.shape[:-2], length, t.shape[-1]), value), t], -2)
    return t


class HookedHeads:
    """The hooks of one attention module's head-attention Δh (a plain holder: no parameters of its own)."""

    def __init__(self, module: nn.Module, q: nn.Module, k: nn.Module, v: nn.Module, out: nn.Module,
                 key_arguments: tuple[str, ...], *, prefix: PrefixBank | None = None, prefix_key: str | None = None,
                 delta: SiteDelta | None = None) -> None:
        self.prefix, self.prefix_key, self.delta = prefix, prefix_key, delta
        self.key_arguments = key_arguments
        self.signature = inspect.signature(module.forward)
        self.handles: list[Any] = []
        self._kv: torch.Tensor | None = None  # (2, l, H·d_h) for the call in progress
        self._queries: torch.Tensor | None = None
        if prefix is not None:
            self.handles += [module.register_forward_pre_hook(self.widen, with_kwargs=True),
                             k.register_forward_hook(self.put_keys), v.register_forward_hook(self.put_values),
                             module.register_forward_hook(self.narrow)]
        if delta is not None:
            self.handles += [q.register_forward_hook(self.keep_queries),
                             out.register_forward_pre_hook(self.add_to_heads)]

    # --- prefix ------------------------------------------------------------------------------------
    def widen(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        bound = self.signature.bind(*args, **kwargs)
        x = next(iter(bound.arguments.values()))  # the hidden states: the first argument
        kv = self.prefix.kv(self.prefix_key).to(x.dtype)  # (2, H, l, d_h)
        length = kv.shape[2]
        self._kv = kv.transpose(1, 2).flatten(-2)  # (2, l, H·d_h), the layout of k(x) and v(x)
        first = next(iter(bound.arguments))
        bound.arguments[first] = torch.cat([x.new_zeros(x.shape[0], length, x.shape[-1]), x], 1)
        for name in self.key_arguments:
            value = bound.arguments.get(name)
            if isinstance(value, torch.Tensor):
                bound.arguments[name] = _widen(value, length)
        return bound.args, bound.kwargs

    def _put(self, output: torch.Tensor, which: int) -> torch.Tensor:
        rows = self._kv[which].to(output.dtype)  # under autocast, k(x) may be narrower than x
        return torch.cat([rows.expand(output.shape[0], -1, -1), output[:, rows.shape[0]:]], 1)

    def put_keys(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return self._put(output, 0)

    def put_values(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return self._put(output, 1)

    def narrow(self, module: nn.Module, args: tuple, output: Any) -> Any:
        length = self._kv.shape[1]
        self._kv = None  # do not keep the prefix's graph alive past this call
        if isinstance(output, torch.Tensor):
            return output[:, length:]
        first, *rest = output  # (o, attention probabilities (B, H, l+T, l+T) when asked for)
        return (first[:, length:], *(r[:, :, length:] if isinstance(r, torch.Tensor) else r for r in rest))

    # --- bottleneck on the heads -------------------------------------------------------------------
    def keep_queries(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self._queries = output

    def add_to_heads(self, module: nn.Module, args: tuple) -> tuple:
        heads, queries = args[0], self._queries
        self._queries = None
        return (heads + self.delta.increment(queries, heads), *args[1:])

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
