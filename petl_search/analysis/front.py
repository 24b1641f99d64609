"""A study's fronts and comparisons, as pure functions of its trial records: the Pareto front by stored
parameters, hypervolume, the best baseline and what matches it, a front table, and the trial `--best`
picks. Neither torch nor Ray is imported.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from ..core.errors import PETLError
from ..search.pareto import hypervolume_2d, pareto_front
from ..search.records import COUNTED_KINDS, TrialRecord


def record_objectives(record: TrialRecord) -> tuple[float, float]:
    """(metric, -stored params): both maximised."""
    return float(record.metric), -float(record.stored_params)


def front_records(records: Iterable[TrialRecord], *, kinds: Sequence[str] = COUNTED_KINDS) -> list[TrialRecord]:
    """The scored records of the given kinds that no other one dominates, by stored parameters."""
    pool = [r for r in records if r.scored and r.kind in kinds]
    keep = pareto_front([record_objectives(r) for r in pool])
    return sorted((pool[i] for i in keep), key=lambda r: (r.stored_params, -r.metric))


def study_hypervolume(records: Iterable[TrialRecord], *, budget_fraction: float, metric_floor: float = 0.0,
                      kinds: Sequence[str] = ("search",)) -> float:
    """Hypervolume of (metric, 1 - stored/budget): reference (metric_floor, 0), so a budget-filling point
    with the metric's floor adds nothing and the best possible value is (1 - floor) * 1."""
    points = [(r.metric, 1.0 - r.stored_fraction / budget_fraction) for r in records
              if r.scored and r.kind in kinds and r.stored_fraction is not None]
    return hypervolume_2d(points, (metric_floor, 0.0))


def best_baseline(records: Iterable[TrialRecord]) -> TrialRecord | None:
    """The baseline with the highest metric (fewest parameters on ties)."""
    scored = [r for r in records if r.scored and r.kind == "baseline"]
    return max(scored, key=lambda r: (r.metric, -r.stored_params), default=None)


def matches_or_beats(records: Iterable[TrialRecord], reference: TrialRecord) -> list[TrialRecord]:
    """Search points at least as good as `reference` on the metric with no more stored parameters."""
    return [r for r in records if r.scored and r.kind == "search" and r.metric >= reference.metric
            and r.stored_params <= reference.stored_params]


def front_table(records: Sequence[TrialRecord], metric_name: str) -> str:
    """A plain-text table of records (usually a front), one per line."""
    header = f"{'trial':>5}  {'kind':<8}  {metric_name:>10}  {'stored':>10}  {'% backbone':>10}  design point"
    lines = [header]
    for r in records:
        lines.append(f"{r.number:>5}  {r.kind:<8}  {r.metric:>10.4f}  {r.stored_params:>10,}  "
                     f"{100 * r.stored_fraction:>9.3f}%  {r.label}")
    return "\n".join(lines)


def best_trial(records: Iterable[TrialRecord], *, max_params: float | None = None,
               verb: str = "exported") -> TrialRecord:
    """The completed trial with the best metric (fewest parameters on ties) within max_params."""
    scored = [r for r in records if r.scored]
    if not scored:
        raise PETLError(f"the study has no completed trials yet: nothing can be {verb}")
    pool = [r for r in scored if max_params is None or r.stored_fraction <= max_params]
    if not pool:
        smallest = min(scored, key=lambda r: r.stored_fraction)
        raise PETLError(f"no completed trial stores at most {max_params:.4%} of the backbone (the smallest, "
                        f"trial {smallest.number}, stores {smallest.stored_fraction:.4%})")
    return max(pool, key=lambda r: (r.metric, -r.stored_params, -r.number))
