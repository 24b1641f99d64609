"""Fit a baseline (a preset) to a study's budget: its size argument set to the largest that fits.

A baseline that cannot fit even at size 1 is refused with the study file, its `baselines[i]` entry and
the `budget` it does not fit (the study schema cannot check it: it needs the model's geometry).
The search for the largest size (`largest_fitting`) and the build with its errors (`build_baseline`) are
shared with tuning.py, which fits a baseline to a number of stored parameters instead of a budget.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ...core.config import PETLConfig
from ...core.errors import PETLConfigError
from ...core.params import budget_text, count_params, percent
from ...core.presets import SIZE_ARGUMENT, preset
from .study import Baseline, StudyError, StudySpec

# Where the search for the largest size stops: far above any size a budget (at most the backbone) allows
# on the models used here (an FFN adapter holding all of MiniLM's 22.7M parameters has r≈4,900).
LARGEST_SIZE = 1 << 16


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


def build_baseline(name: str, args: Mapping[str, Any], model_config: Any, where: str) -> PETLConfig:
    """The preset's point; a bad argument is refused naming `where` (the study entry) and the argument."""
    try:
        return preset(name, model_config=model_config, **args)
    except PETLConfigError as exc:  # e.g. "lora: r must be a positive integer, but got -3"
        raise StudyError(f"{where}.args: {exc}") from None


def largest_fitting(fits: Callable[[int], bool], *, cap: int = LARGEST_SIZE) -> int:
    """The largest n in [1, cap) with fits(n), for a `fits` that holds at 1 and, once false, stays false
    (counts grow with the size). Doubling, then bisection: about 2·log2(n) calls."""
    low, high = 1, 2
    while fits(high) and high < cap:
        low, high = high, high * 2
    while high - low > 1:  # fits(low) and not fits(high), or high is the cap
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def fit_to_budget(baseline: Baseline, budget: float, model_config: Any, *,
                  where: str = "baseline") -> FittedBaseline:
    """The baseline with its size, unless given, set to the largest that keeps it within the budget.
    `where` says which entry of which study file it is (the error names it)."""
    def build(args: Mapping[str, Any]) -> PETLConfig:
        return build_baseline(baseline.preset, args, model_config, where)

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
    args = {**baseline.args, size_arg: largest_fitting(fits)}
    return FittedBaseline(baseline.preset, args, build(args))
