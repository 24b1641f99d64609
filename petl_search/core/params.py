"""Analytic parameter counts of a PETLConfig on a model config (no model built for Δh).

Two numbers matter (He et al. count the second): parameters *trained* (including a prefix's
reparameterisation MLP) and parameters *stored* after training (the MLP is dropped: 2·l·d_kv per
attention). Budgets are on stored parameters, as a fraction of the backbone. The backbone size comes
from the model config, instantiated on the meta device (no memory, no weights), once per config.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any

from .config import PETLConfig
from .placement import Placement, plan


@dataclass(frozen=True)
class ParamCount:
    trained: int  # Δh parameters that receive gradients while training
    stored: int  # Δh parameters kept after training (what an export holds)
    backbone: int  # parameters of the frozen base model (without task head)

    @property
    def trained_fraction(self) -> float:
        return self.trained / self.backbone

    @property
    def stored_fraction(self) -> float:
        """The budgeted quantity: stored Δh parameters / backbone parameters."""
        return self.stored / self.backbone

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "trained_fraction": self.trained_fraction, "stored_fraction": self.stored_fraction}


def percent(fraction: float, digits: int = 3) -> str:
    """A fraction as a percentage with `digits` significant digits and no exponent, so tiny values stay
    readable: 0.0032 -> '0.32%', 1e-07 -> '0.00001%', 0.05 -> '5%'."""
    value = 100 * fraction
    if value == 0 or not math.isfinite(value):
        return f"{value:g}%"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:.{decimals}f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + "%"


def budget_text(fraction: float) -> str:
    """A budget (a fraction of the backbone) as it was given and as a percentage: '1e-07 (0.00001% of the
    backbone)'. Every message that states a budget uses it."""
    return f"{fraction:g} ({percent(fraction)} of the backbone)"


def delta_params(p: Placement) -> int:
    """Parameters of one bottleneck/LoRA placement (block-diagonal over heads)."""
    spec, r, i, o = p.spec, p.size, p.in_width, p.out_width
    n = (r * i + o * r) // spec.heads  # heads · (r/h)·(i/h) + heads · (o/h)·(r/h)
    if spec.form == "bottleneck":
        n += r + o  # biases
    if spec.input_norm:
        n += 2 * i
    if spec.composition in ("learned_scale", "gate"):
        n += 1
    return n


def _prefix_params(placements: list[Placement]) -> tuple[int, int]:
    """(trained, stored) for the prefix placements of one site."""
    kv_total = sum(2 * p.attention_geometry.kv_width for p in placements)
    stored = sum(2 * p.size * p.attention_geometry.kv_width for p in placements)
    spec = placements[0].spec
    if spec.reparam is None:
        return stored, stored
    m, hidden, length = spec.reparam, placements[0].block.hidden, spec.size
    trained = length * hidden + (hidden * m + m) + (m * kv_total + kv_total)  # E, MLP layer 1, layer 2
    return trained, stored


def count_params(config: PETLConfig, model_config: Any, *, backbone: int | None = None) -> ParamCount:
    """Trained and stored Δh parameters of `config` on a model with `model_config`."""
    trained = stored = 0
    prefixes: dict[str, list[Placement]] = {}
    for p in plan(config, model_config):
        if p.spec.form == "prefix":
            prefixes.setdefault(p.site, []).append(p)
        else:
            n = delta_params(p)
            trained, stored = trained + n, stored + n
    for group in prefixes.values():
        t, s = _prefix_params(group)
        trained, stored = trained + t, stored + s
    return ParamCount(trained, stored, backbone if backbone is not None else backbone_params(model_config))


def backbone_params(model_config: Any) -> int:
    """Parameters of the base model (AutoModel, no task head) for `model_config`, built on 'meta'."""
    key = model_config.to_json_string(use_diff=False)
    if key not in _BACKBONE_CACHE:
        import torch  # here, not at the top: core is imported without torch (spaces, studies, the CLI)
        from transformers import AutoModel

        with torch.device("meta"):
            model = AutoModel.from_config(copy.deepcopy(model_config))
        _BACKBONE_CACHE[key] = sum(p.numel() for p in model.parameters())
    return _BACKBONE_CACHE[key]


_BACKBONE_CACHE: dict[str, int] = {}
