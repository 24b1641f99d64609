"""Δh on head attention, for every architecture at once, through transformers' AttentionInterface.

Transformers 5 routes each attention module's core computation through a registered function that
receives the module itself. We register `petl_sdpa` and `petl_eager`, which look up the Δh attached to
that module (a `HeadSite`) and then call the model's own sdpa or eager function (the eager one is each
modeling file's own, found by `transformers_compat.eager_attention_of`):

  * a prefix (Li & Liang 2021) prepends l learned keys/values to every head and extends the mask with
    l always-visible columns. Keys and values in the cache stay the real tokens', so generation with a
    cache works unchanged; position ids are not shifted (the paper's Eq. 7; PEFT, which feeds
    prefixes through the cache, shifts them by l);
  * a bottleneck on the heads adds Δh to each head's output, computed from that head's query x W_q^(i)
    (parallel, as prefix tuning's Eq. 10 does) or from the head's output (sequential).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, eager_mask, sdpa_mask

from .modules import PrefixBank, SiteDelta
from .transformers_compat import eager_attention_of

HEAD_SITE_ATTR = "_petl_head_site"
SUPPORTED_INNER = ("sdpa", "eager")


@dataclass
class HeadSite:
    """What petl attaches to one attention module. A plain object: it holds no parameters itself."""

    prefix: PrefixBank | None = None
    prefix_key: str | None = None
    delta: SiteDelta | None = None


def _extend_with_prefix(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        mask: torch.Tensor | None, kwargs: dict, site: HeadSite, eager: bool):
    prefix = site.prefix.kv(site.prefix_key).to(key.dtype)  # (2, kv_heads, l, head_dim)
    batch, length = key.shape[0], prefix.shape[2]
    p_k = prefix[0].unsqueeze(0).expand(batch, -1, -1, -1)
    p_v = prefix[1].unsqueeze(0).expand(batch, -1, -1, -1)
    q_len = query.shape[2]
    if mask is None:
        is_causal = kwargs.get("is_causal")
        is_causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
        if not (is_causal and q_len > 1):
            return torch.cat([p_k, key], 2), torch.cat([p_v, value], 2), None
        # Without a mask, sdpa would attend causally over the first q_len keys (top-left aligned): say
        # the same explicitly, with the prefix columns visible to every query.
        key, value = key[:, :, :q_len], value[:, :, :q_len]
        visible = torch.ones(q_len, q_len, dtype=torch.bool, device=key.device).tril()
        mask = visible[None, None]
        if eager:
            mask = torch.zeros(mask.shape, dtype=query.dtype, device=key.device).masked_fill(
                ~mask, torch.finfo(query.dtype).min)
    pad = torch.ones if mask.dtype == torch.bool else torch.zeros
    columns = pad((*mask.shape[:-1], length), dtype=mask.dtype, device=mask.device)
    return torch.cat([p_k, key], 2), torch.cat([p_v, value], 2), torch.cat([columns, mask], -1)


def _head_delta(site: HeadSite, query: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    heads_out = out.flatten(-2)  # (B, T, H·d_h)
    queries = query.transpose(1, 2).flatten(-2)
    return (heads_out + site.delta.increment(queries, heads_out)).view_as(out)


def _make(inner_name: str) -> Callable[..., Any]:
    eager = inner_name == "eager"

    def petl_attention(module, query, key, value, attention_mask, **kwargs):
        inner = eager_attention_of(module) if eager else sdpa_attention_forward  # the model's own eager
        site: HeadSite | None = module.__dict__.get(HEAD_SITE_ATTR)
        if site is not None and site.prefix is not None:
            key, value, attention_mask = _extend_with_prefix(module, query, key, value, attention_mask, kwargs,
                                                             site, eager)
        out, weights = inner(module, query, key, value, attention_mask, **kwargs)
        if site is not None and site.delta is not None:
            out = _head_delta(site, query, out)
        return out, weights

    petl_attention.__name__ = f"petl_{inner_name}_attention"
    return petl_attention


def implementation_name(inner: str) -> str:
    return f"petl_{inner}"


for _inner in SUPPORTED_INNER:
    AttentionInterface.register(implementation_name(_inner), _make(_inner))
    # The mask is built as for the inner implementation; only our function extends it.
    AttentionMaskInterface.register(implementation_name(_inner), sdpa_mask if _inner == "sdpa" else eager_mask)
