"""Seed methods fitted to a size and tuned like the search: the pure part of a fair contest.

A claim "the search's point beats method M" holds at one stored size and after equal tuning. So each seed
method (a preset) is fitted to each claimed size (`fit_to_size`), and each (method, size) gets the same
tuning budget: k trainings over the learning rate and, where the method has a scale, its s
(`tuning_points`). A `TuningGroup` is one (method, size) with its k settings; `pick` chooses a group's
setting on the search split, never on dev.

    sizes: [227000, 0.02], budget 0.04  ──resolve_sizes──►  [227000, 454264, 908528] (MiniLM: 22,713,216)
    baselines × sizes  ──tuning_groups──►  TuningGroup("mam(ffn_r=92,prefix_len=5) @ 450,000", k points)
    a group's k records  ──pick──►  the record whose setting the method is judged with

This module decides nothing about training, storage or Ray, and imports none of torch, Optuna or Ray itself
(study.py, whose Baseline it fits, loads Optuna's distributions for the search space).
"""
from __future__ import annotations

import hashlib
import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from scipy.stats import qmc

from ...core.config import PETLConfig
from ...core.errors import PETLError
from ...core.params import budget_text, count_params, percent
from ...core.presets import PRESETS, SIZE_ARGUMENT
from .budget import LARGEST_SIZE, FittedBaseline, build_baseline, largest_fitting
from .study import Baseline, StudyError

# Presets whose size is several arguments scaled by one factor, keeping the preset's own proportions (its
# defaults): MAM's prefix length and FFN width (30 : 512). Every other preset's size is SIZE_ARGUMENT.
SCALED_TOGETHER: dict[str, tuple[str, ...]] = {"mam": ("prefix_len", "ffn_r")}

# The presets with a scale to tune beside the learning rate, and its argument; the others tune only the
# learning rate. A baseline that sets the scale itself (or LoRA's alpha, s = alpha / r) keeps it.
SCALE_ARGUMENT: dict[str, str] = {"lora": "s", "scaled_parallel_adapter": "s", "mam": "s"}
FIXES_SCALE = ("s", "alpha")  # arguments that set the scale, so that it is not tuned

SEARCH_SPLIT = "search split"  # TrialRecord.evaluated_on for a score on the search split


def size_arguments(name: str) -> tuple[str, ...]:
    """The arguments that set a preset's size (fitted together when there are several)."""
    return SCALED_TOGETHER.get(name, (SIZE_ARGUMENT[name],))


def fit_to_size(baseline: Baseline, target_stored: int, model_config: Any, *,
                where: str = "baseline") -> FittedBaseline:
    """The baseline at the largest size whose stored parameters are at most `target_stored`.

    Size arguments the baseline gives are kept (the user asked for that point, as `fit_to_budget` does);
    those left out are fitted. MAM with neither prefix_len nor ffn_r scales both by one factor f,
    (max(1, round(30 f)), max(1, round(512 f))), at the largest f that fits: exactly, not to a tolerance
    (`_proportional`). `where` names the study entry in errors.
    """
    if not (isinstance(target_stored, int) and not isinstance(target_stored, bool) and target_stored > 0):
        raise StudyError(f"{where}: the size to fit must be a positive number of stored parameters, but got "
                         f"{target_stored!r}")

    def build(args: Mapping[str, Any]):
        return build_baseline(baseline.preset, args, model_config, where)

    free = [a for a in size_arguments(baseline.preset) if a not in baseline.args]
    if not free:
        return FittedBaseline(baseline.preset, dict(baseline.args), build(baseline.args))
    sized, cap = _proportional(baseline.preset, free) if len(free) > 1 else (lambda n: {free[0]: n}, LARGEST_SIZE)

    def stored(n: int) -> int:
        return count_params(build({**baseline.args, **sized(n)}), model_config).stored

    if stored(1) > target_stored:
        smallest = count_params(build({**baseline.args, **sized(1)}), model_config)
        at = ", ".join(f"{k}={v}" for k, v in sized(1).items())
        raise StudyError(f"{where} ({baseline.label}) does not fit {target_stored:,} stored parameters: even with "
                         f"{at} it stores {smallest.stored:,} ({percent(smallest.stored_fraction)} of the "
                         f"backbone); claim a larger size or remove this baseline")
    args = {**baseline.args, **sized(largest_fitting(lambda n: stored(n) <= target_stored, cap=cap))}
    return FittedBaseline(baseline.preset, args, build(args))


def _proportional(name: str, arguments: Sequence[str]) -> tuple[Callable[[int], dict[str, int]], int]:
    """Sizes as a function of n = 1, 2, ...: each argument round(base · f), at least 1, for the factor
    f = (2n - 1) / (4L), L the lcm of the bases (the preset's defaults); and the largest n worth trying.

    Why this grid: round(base · f) changes only where base · f is a half-integer, i.e. at multiples of
    1/(2L); the grid's points are the midpoints between those multiples, so every combination of sizes
    that some f gives is reached by one n, and bisection over n finds the largest f that fits exactly.
    In integers, round(a / c) = (2a + c) // (2c): a = 2n - 1 is odd and c = 4L / base even, never a tie.
    """
    defaults = inspect.signature(PRESETS[name]).parameters
    bases = {a: defaults[a].default for a in arguments}
    lcm = math.lcm(*bases.values())
    steps = {a: 4 * lcm // b for a, b in bases.items()}  # c: f · base = (2n - 1) / c

    def sized(n: int) -> dict[str, int]:
        return {a: max(1, (2 * (2 * n - 1) + c) // (2 * c)) for a, c in steps.items()}

    return sized, LARGEST_SIZE * 2 * lcm // max(bases.values())  # the largest base reaches LARGEST_SIZE


def resolve_sizes(sizes: Sequence[Any] | None, budget: float, backbone: int, *, where: str = "sizes") -> list[int]:
    """A study's claim sizes in stored parameters: the budget's, plus each entry, an integer (stored
    parameters) or a fraction of the backbone in (0, 1); de-duplicated and sorted. A fraction becomes the
    largest count within it, as the budget does (stored / backbone <= fraction), so the budget's size
    fits each baseline to the same point as `fit_to_budget`."""
    budget_size = stored_within(budget, backbone)
    if budget_size < 1:
        raise StudyError(f"the budget {budget_text(budget)} allows no stored parameter on a backbone of "
                         f"{backbone:,}; raise `budget`")
    if sizes is None:
        sizes = []
    if not isinstance(sizes, (list, tuple)):
        raise StudyError(f"{where} must be a list of sizes (stored parameters, or fractions of the backbone in "
                         f"(0, 1)), but got {sizes!r}")
    out = {budget_size}
    for i, value in enumerate(sizes):
        if isinstance(value, int) and not isinstance(value, bool):
            size = value
        elif isinstance(value, float) and 0 < value < 1:
            size = stored_within(value, backbone)
        else:
            raise StudyError(f"{where}[{i}] must be a number of stored parameters (an integer) or a fraction of "
                             f"the backbone in (0, 1), but got {value!r}")
        if size < 1:
            raise StudyError(f"{where}[{i}] must be more than 0 stored parameters, but got {value!r} "
                             f"({size:,} of a backbone of {backbone:,})")
        if size > budget_size:
            raise StudyError(f"{where}[{i}] must be within the budget {budget_text(budget)}, {budget_size:,} stored "
                             f"parameters (the search claims nothing above it), but got {value!r} ({size:,})")
        out.add(size)
    return sorted(out)


def stored_within(fraction: float, backbone: int) -> int:
    """The largest count n with n / backbone <= fraction, compared as `stored_fraction <= budget` is."""
    n = math.floor(fraction * backbone)
    while (n + 1) / backbone <= fraction:  # the product's rounding may land one off either way
        n += 1
    while n > 0 and n / backbone > fraction:
        n -= 1
    return n


def tuning_points(k: int, lr_range: Sequence[float], scale_range: Sequence[float], has_scale: bool, seed: int,
                  group: str, *, scale_name: str = "s") -> list[dict[str, float]]:
    """k settings {learning_rate, s?} spread over the ranges on a log scale, for one tuning group.

    Low-discrepancy, not random: with k = 3 or 4, independent draws often land two settings close together
    and leave a decade untried. The first 2^j points of a scrambled Halton sequence sit one in each 2^-j
    slice of the learning-rate axis (base 2; s's axis, base 3, likewise in thirds), so 3 or 4 settings are
    at least a quarter of the log range apart (Sobol' balances only for k a power of 2, and scipy warns
    otherwise). Scrambling with a generator seeded from (seed, group) via SeedSequence gives each method and
    size its own offsets (no method is always tried at the same learning rates) that a resumed study draws
    again. k = 1 is the geometric centre.
    Values are rounded to 3 significant digits (labels read 0.000316, not 0.00031622776), kept in range.
    """
    if not (isinstance(k, int) and not isinstance(k, bool) and k >= 1):
        raise StudyError(f"k (tuning trainings per method and size) must be a positive integer, but got {k!r}")
    if not (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0):
        raise StudyError(f"seed must be a non-negative integer, but got {seed!r}")
    ranges = {"learning_rate": _log_range("lr_range", lr_range)}
    if has_scale:
        ranges[scale_name] = _log_range("scale_range", scale_range)
    if k == 1:
        unit = np.full((1, len(ranges)), 0.5)
    else:
        rng = np.random.default_rng(np.random.SeedSequence([seed, _label_entropy(group)]))
        # `seed=` (scipy >= 1.10, which pyproject allows); scipy >= 1.15 also calls it `rng`
        unit = qmc.Halton(d=len(ranges), scramble=True, seed=rng).random(k)
    # u in [0, 1) to low · (high / low)^u: even spacing in u is even spacing in log
    points = [{name: _rounded(low * (high / low) ** u, low, high)
               for (name, (low, high)), u in zip(ranges.items(), row)} for row in unit]
    if len({tuple(p.values()) for p in points}) < k:
        within = {name: list(bounds) for name, bounds in ranges.items()}
        raise StudyError(f"{k} tuning settings for {group!r} collide at 3 significant digits within {within}: "
                         f"widen the ranges or lower k")
    return points


def _log_range(name: str, pair: Sequence[float]) -> tuple[float, float]:
    ok = (isinstance(pair, (list, tuple)) and len(pair) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in pair))
    if not ok or not 0 < pair[0] <= pair[1]:
        raise StudyError(f"{name} must be [low, high] with 0 < low <= high (searched on a log scale), but got {pair!r}")
    return float(pair[0]), float(pair[1])


def _label_entropy(group: str) -> int:
    """A group label as SeedSequence entropy: stable across processes and Python versions (unlike hash())."""
    return int.from_bytes(hashlib.sha256(group.encode()).digest()[:16], "big")


def _rounded(value: float, low: float, high: float) -> float:
    """3 significant digits, clipped back into [low, high] when rounding crossed a bound."""
    return min(high, max(low, float(f"{value:.3g}")))


@dataclass(frozen=True)
class TuningGroup:
    """One seed method at one claimed size, with the k settings it is trained at (one training each).

    Every (method, size) is its own group, even where two sizes fit the method to the same arguments (a
    size the baseline fixes, or a step coarser than the gap): the label, and so the draw, differs, and
    each size gets its k trainings, as the contest counts them (language/contest.py's `trainings`).
    """

    label: str  # e.g. "mam(ffn_r=92,prefix_len=5) @ 450,000": the method, its actual args, the target
    fitted: FittedBaseline
    target: int  # the claimed size, in stored parameters
    stored: int  # what the fitted point stores: at most `target`, unless the baseline fixed its size
    points: tuple[dict[str, float], ...]  # {learning_rate, s?}: s is a preset argument, the rate TrainConfig's
    method: str = ""  # the baseline as the study names it (its label before fitting): what claims call it


def tuning_groups(spec_baselines: Sequence[Baseline], sizes: Iterable[int], k: int, lr_range: Sequence[float],
                  scale_range: Sequence[float], seed: int, model_config: Any, *,
                  where: str = "baselines") -> list[TuningGroup]:
    """Every baseline fitted to every size, with its k tuning settings: in the baselines' order, then by
    size. `where` names the baselines' key in errors (e.g. "study.yaml: baselines")."""
    groups = []
    for i, baseline in enumerate(spec_baselines):
        scale = SCALE_ARGUMENT.get(baseline.preset)
        tuned = scale is not None and not set(FIXES_SCALE) & set(baseline.args)
        for target in sorted(set(sizes)):
            fitted = fit_to_size(baseline, target, model_config, where=f"{where}[{i}]")
            label = f"{fitted.label} @ {target:,}"
            points = tuning_points(k, lr_range, scale_range, tuned, seed, label, scale_name=scale or "s")
            groups.append(TuningGroup(label, fitted, target, count_params(fitted.config, model_config).stored,
                                      tuple(points), baseline.label))
    return groups


def pick(records_of_group: Iterable[Any]) -> Any:
    """The group's chosen setting: its completed record with the best score on the search split.

    Dev never chooses: only `metric` on the search split is read, never `dev_scores`; the dev set judges
    the chosen setting afterwards, with seeds that did not choose it. Ties go to the smaller learning rate
    (the setting less likely to diverge under another seed; a rate not recorded, the study's fixed one,
    counts as larger than any recorded), then to the lower trial number (the same choice on every re-read).
    Records are TrialRecord-like: number, state, metric, evaluated_on, learning_rate (its s, where tuned,
    is among the arguments it was built with).
    """
    records = list(records_of_group)
    scored = [r for r in records if r.state == "COMPLETE" and r.metric is not None and not math.isnan(r.metric)]
    for r in scored:
        if r.evaluated_on != SEARCH_SPLIT:
            raise PETLError(f"trial {r.number} was scored on {r.evaluated_on!r}, not the {SEARCH_SPLIT}: a tuned "
                            f"setting is chosen on the {SEARCH_SPLIT} only (the study needs a search_split)")
    if not scored:
        raise PETLError(f"no trial of the group completed with a score (trials "
                        f"{[r.number for r in records]}): nothing to pick")
    return min(scored, key=lambda r: (-r.metric, math.inf if r.learning_rate is None else r.learning_rate,
                                      r.number))


def backbone_size(model_config: Any) -> int:
    """The backbone's parameter count, what fractions of the backbone are fractions of."""
    return count_params(PETLConfig(), model_config).backbone


def claim_sizes(spec: Any, model_config: Any) -> list[int]:
    """A study's claim sizes in stored parameters: the budget's and its `sizes` (`resolve_sizes`)."""
    return resolve_sizes(list(spec.sizes), spec.budget, backbone_size(model_config), where=f"{spec.source}: sizes")


@dataclass(frozen=True)
class TuningTraining:
    """One training of a tuning group: the method fitted to the group's size, at one setting."""

    group: TuningGroup
    index: int  # which of the group's settings (a resumed study recognises a finished one by it)
    fitted: FittedBaseline  # the group's point with the setting's scale, if it tunes one
    learning_rate: float

    @property
    def method(self) -> str:
        """The method the group tunes: the baseline as the study names it (its label without fitted sizes)."""
        return self.group.method


def study_tuning(spec: Any, model_config: Any) -> list[TuningTraining]:
    """Every training a study's `tuning` asks for: each baseline fitted to each claim size, at each of its
    `trainings` settings, in the baselines' order, then by size, then by setting."""
    if not spec.tuning:
        return []
    rates = spec.learning_rate_range
    scale = spec.tuning["scale"]
    groups = tuning_groups(spec.baselines, claim_sizes(spec, model_config), spec.tuning["trainings"],
                           (rates.low, rates.high), (scale["low"], scale["high"]), spec.seed, model_config,
                           where=f"{spec.source}: baselines")
    out = []
    for group in groups:
        for index, point in enumerate(group.points):
            settings = {k: v for k, v in point.items() if k != "learning_rate"}
            fitted = group.fitted
            if settings:  # the scale joins the preset's arguments: what the trial is built and labelled with
                args = {**fitted.args, **settings}
                fitted = FittedBaseline(fitted.preset, args, build_baseline(fitted.preset, args, model_config,
                                                                            f"{spec.source}: baselines"))
            out.append(TuningTraining(group, index, fitted, point["learning_rate"]))
    return out
