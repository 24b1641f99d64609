"""Fit a baseline (a preset) to a study's budget: its size argument set to the largest that fits."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..core.config import PETLConfig
from ..core.params import count_params
from ..core.presets import SIZE_ARGUMENT, preset
from .study import Baseline, StudyError


@dataclass(frozen=True)
class FittedBaseline:
    """A baseline made concrete for one study: its preset, the arguments it is built with (size included),
    the point they give, and the label shown to users."""

    preset: str
    args: Mapping[str, Any]
    config: PETLConfig

    @property
    def label(self) -> str:
        return Baseline(self.preset, self.args).label


def fit_to_budget(baseline: Baseline, budget: float, model_config: Any) -> FittedBaseline:
    """The baseline with its size, unless given, set to the largest that keeps it within the budget."""
    def build(args: Mapping[str, Any]) -> PETLConfig:
        return preset(baseline.preset, model_config=model_config, **args)

    size_arg = SIZE_ARGUMENT[baseline.preset]
    if size_arg in baseline.args:
        return FittedBaseline(baseline.preset, dict(baseline.args), build(baseline.args))

    def fits(size: int) -> bool:
        return count_params(build({**baseline.args, size_arg: size}), model_config).stored_fraction <= budget

    if not fits(1):
        stored = count_params(build({**baseline.args, size_arg: 1}), model_config).stored_fraction
        raise StudyError(f"baseline {baseline.label} does not fit the budget {budget:.4%} even with "
                         f"{size_arg}=1 (it stores {stored:.4%})")
    low, high = 1, 2
    while fits(high) and high < 1 << 16:
        low, high = high, high * 2
    while high - low > 1:  # largest size that fits: fits(low) and not fits(high)
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    args = {**baseline.args, size_arg: low}
    return FittedBaseline(baseline.preset, args, build(args))
