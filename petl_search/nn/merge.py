"""Fold linear Δh into the frozen weights, so inference costs nothing extra (LoRA's merge).

A placement is mergeable when Δ = x Mᵀ is linear (form 'lora', no input norm) and it reads the input
or the output of the very module it is added to: projections (attn_qkv), or sequential Δh at the end
of a sublayer (added after the sublayer's dropout, which is the identity at inference: a merged model
equals the unmerged one in eval mode, the mode merging is for).
With compose(h, Δ) = α·h + β·Δ (any composition) and y = x Wᵀ + b:
    parallel   (Δ from x):  W' = α·W + β·M,          b' = α·b
    sequential (Δ from y):  W' = (α·I + β·M)·W,      b' = (α·I + β·M)·b
GPT-2's Conv1D stores Wᵀ; fused q/k/v projections are merged in their output slice. The algebra runs in
float64 on the weight's device (a model on a GPU merges there), and the result keeps the weight's dtype.
"""
from __future__ import annotations

import torch
from torch import nn

from ..core.errors import PETLError
from .inject import PETL_PREFIX, Wiring, petl_config, remove_petl


def _why_not(wiring: Wiring) -> str | None:
    bottleneck = wiring.delta.bottleneck
    if bottleneck.down_bias is not None or bottleneck.activation not in (None, "identity"):
        return "not linear (form 'bottleneck')"
    if bottleneck.norm is not None:
        return "has an input LayerNorm"
    if wiring.delta.parallel and not wiring.same_module:
        return "parallel Δh reads the sublayer's input, not the input of the module it is added to"
    if wiring.reads_sum:
        return "Δh inserted after the norm reads the residual Add&Norm's output, not the module's own output"
    return None


def mergeable(model: nn.Module) -> dict[str, str | None]:
    """For every placement of the model's config: None if it can be merged, else the reason."""
    petl_config(model)
    container = getattr(model, PETL_PREFIX)
    reasons = {w.key: _why_not(w) for w in container._wirings}
    reasons.update({key: "acts inside the attention function (head attention)"
                    for key in container.deltas if key not in reasons})
    reasons.update({site: "a prefix is not a weight delta" for site in container.prefixes})
    return reasons


@torch.no_grad()
def _merge_one(wiring: Wiring) -> None:
    module, delta = wiring.dense, wiring.delta
    alpha, beta = delta.composition.coefficients()
    m = delta.bottleneck.dense_matrix().to(torch.float64)
    transposed = not isinstance(module, nn.Linear)  # transformers' Conv1D: weight is (in, out)
    weight = module.weight.data
    w = (weight.T if transposed else weight).to(torch.float64)  # (out, in) view for the algebra
    rows = slice(wiring.start, wiring.stop)
    if wiring.delta.parallel:
        w[rows] = alpha * w[rows] + beta * m
        factor = alpha
    else:
        factor = alpha * torch.eye(m.shape[0], dtype=torch.float64, device=m.device) + beta * m
        w[rows] = factor @ w[rows]
    weight.copy_((w.T if transposed else w).to(weight.dtype))
    if module.bias is not None:
        b = module.bias.data.to(torch.float64)
        b[rows] = factor * b[rows] if wiring.delta.parallel else factor @ b[rows]
        module.bias.data.copy_(b.to(module.bias.dtype))


def merge_petl(model: nn.Module) -> nn.Module:
    """Merge every Δh into the base weights and take petl off the model; returns the plain model.

    Raises (changing nothing) if any placement is not linear and local, naming each and why.
    """
    blocked = {key: why for key, why in mergeable(model).items() if why}
    if blocked:
        listed = "; ".join(f"{k}: {v}" for k, v in sorted(blocked.items()))
        raise PETLError(f"only linear Δh on the module it is added to can be merged; not mergeable: {listed}")
    for wiring in getattr(model, PETL_PREFIX)._wirings:
        _merge_one(wiring)
    return remove_petl(model)
