"""Fit a baseline (a preset) to a study's budget: its size argument set to the largest that fits.

A baseline that cannot fit even at size 1 is refused with the study file, its `baselines[i]` entry and
the `budget` it does not fit (the study schema cannot check it: it needs the model's geometry).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ...core.config import PETLConfig
from ...core.errors import PETLConfigError
from ...core.params import budget_text, count_params, percent
from ...core.presets import SIZE_ARGUMENT, preset
from .study import Baseline, StudyError, StudySpec


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


def fit_baselines(spec: StudySpec, model_config: Any) -> list[FittedBaseline]:
    """Every baseline of the study, fitted to its budget; an error names the file and the entry."""
    return [fit_to_budget(b, spec.budget, model_config, where=f"{spec.source}: baselines[{i}]")
            for i, b in enumerate(spec.baselines)]


def fit_to_budget(baseline: Baseline, budget: float, model_config: Any, *,
                  where: str = "baseline") -> FittedBaseline:
    """The baseline with its size, unless given, set to the largest that keeps it within the budget.
    `where` says which entry of which study file it is (the error names it)."""
    def build(args: Mapping[str, Any]) -> PETLConfig:
        try:
            return preset(baseline.preset, model_config=model_config, **args)
        except PETLConfigError as exc:  # e.g. "lora: r must be a positive integer, but got -3"
            raise StudyError(f"{where}.args: {exc}") from None

    size_arg = SIZE_ARGUMENT[baseline.preset]
    if size_arg in baseline.args:
        return FittedBaseline(baseline.preset, dict(baseline.args), build(baseline.args))

    def fits(size: int) -> bool:
        return count_params(build({**baseline.args, size_arg: size}), model_config).stored_fraction <= budget

    if not fits(1):
        smallest = count_params(build({**baseline.args, size_arg: 1}), model_config)
        raise StudyError(f"{where} ({baseline.label}) does not fit the budget {budget_text(budget)}: even with "
                         f"{size_arg}=1 it stores {percent(smallest.stored_fraction)} of the backbone "
                         f"({smallest.stored:,} parameters); raise `budget` or remove this baseline")
    low, high = 1, 2
    while fits(high) and high < 1 << 16:
        low, high = high, high * 2
    while high - low > 1:  # largest size that fits: fits(low) and not fits(high)
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    args = {**baseline.args, size_arg: low}
    return FittedBaseline(baseline.preset, args, build(args))
