"""What a study found, as plain data: trial records, Pareto fronts, hypervolume, a front table, and
which trial a command (export, reseed) may take.

Pure functions over `TrialRecord`s (read from an Optuna storage by `read_records`), so the CLI, the
benchmarks and the dashboards compute the same front the same way. Neither torch nor Ray is imported.

A record's `kind` says where it came from:
    search       proposed by the sampler and trained
    baseline     a preset evaluated as a reference point
    over_budget  proposed by the sampler, rejected analytically (never trained; feeds the sampler)
    duplicate    proposed again: the earlier trial's result was reused (never trained twice)
    reseed       a trained point trained again with another seed (`petl-search reseed`): evidence about
                 seed noise, so it has a metric but is never a point of a front
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from .errors import PETLError

COUNTED_KINDS = ("search", "baseline")  # the points of a study: what the sampler and the baselines trained
MEASURED_KINDS = COUNTED_KINDS + ("reseed",)  # everything trained, so everything with a metric


@dataclass(frozen=True)
class TrialRecord:
    number: int
    state: str  # COMPLETE | PRUNED | FAIL | RUNNING | WAITING
    kind: str
    label: str  # baseline label, or the config's short description
    metric: float | None  # the task's main metric on the full dev set
    stored_params: int | None
    stored_fraction: float | None
    config: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    seed: int | None = None
    seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # every other user attribute

    @property
    def scored(self) -> bool:
        """Trained to the end with a metric: may sit on a front."""
        return self.state == "COMPLETE" and self.kind in COUNTED_KINDS and self.metric is not None


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a dominates b when it is no worse in every objective and better in one (all maximised)."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points (every objective maximised), in input order.

    Sort by the first objective (descending, ties by the rest) and sweep: O(n log n) for two objectives,
    which is all a study front needs; more objectives fall back to pairwise checks.
    """
    if not points:
        return []
    if len(points[0]) != 2:
        return [i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)]
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1]))
    front, best_second, previous = [], float("-inf"), None
    for i in order:
        p = tuple(points[i])
        if p[1] > best_second or p == previous:
            front.append(i)
            if p[1] > best_second:
                best_second = p[1]
            previous = p
    return sorted(front)


def record_objectives(record: TrialRecord) -> tuple[float, float]:
    """(metric, -stored params): both maximised."""
    return float(record.metric), -float(record.stored_params)


def front_records(records: Iterable[TrialRecord], *, kinds: Sequence[str] = COUNTED_KINDS) -> list[TrialRecord]:
    """The scored records of the given kinds that no other one dominates, by stored parameters."""
    pool = [r for r in records if r.scored and r.kind in kinds]
    keep = pareto_front([record_objectives(r) for r in pool])
    return sorted((pool[i] for i in keep), key=lambda r: (r.stored_params, -r.metric))


def hypervolume_2d(points: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by `points` (both coordinates maximised) and bounded below by `reference`."""
    inside = [p for p in points if p[0] > reference[0] and p[1] > reference[1]]
    if not inside:
        return 0.0
    area, top = 0.0, reference[1]
    for x, y in sorted(inside, key=lambda p: (-p[0], -p[1])):  # sweep from the best first coordinate
        if y > top:
            area += (x - reference[0]) * (y - top)
            top = y
    return area


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


def counts(records: Iterable[TrialRecord]) -> dict[str, int]:
    """How many trials of each outcome: completed, pruned, failed, running, over_budget, duplicate, reseed."""
    out = {"completed": 0, "pruned": 0, "failed": 0, "running": 0, "over_budget": 0, "duplicate": 0, "reseed": 0}
    for r in records:
        if r.kind in ("over_budget", "duplicate"):
            out[r.kind] += 1
        elif r.extra.get("interrupted"):
            continue  # re-queued; its rerun is a separate trial
        elif r.kind == "reseed":
            out["reseed"] += r.state == "COMPLETE"
        elif r.state == "COMPLETE":
            out["completed"] += 1
        elif r.state == "PRUNED":
            out["pruned"] += 1
        elif r.state == "FAIL":
            out["failed"] += 1
        else:
            out["running"] += 1
    return out


def read_records(study: Any) -> list[TrialRecord]:
    """TrialRecords from an Optuna study (its storage is the one source of truth)."""
    records = []
    for t in study.get_trials(deepcopy=False):
        attrs = dict(t.user_attrs)
        kind = attrs.pop("kind", "search")
        values = t.values if t.state.name == "COMPLETE" and kind in MEASURED_KINDS else None
        records.append(TrialRecord(
            number=t.number, state=t.state.name, kind=kind, label=attrs.pop("label", ""),
            metric=values[0] if values else None,
            stored_params=attrs.get("stored_params"), stored_fraction=attrs.get("stored_fraction"),
            config=attrs.pop("petl_config", {}), reason=attrs.pop("reason", None), seed=attrs.pop("seed", None),
            seconds=(attrs.get("seconds") or {}).get("total"), extra=attrs))
    return records


def select_trial(records: Iterable[TrialRecord], *, trial: int | None = None, best: bool = False,
                 max_params: float | None = None, verb: str = "exported") -> TrialRecord:
    """The trial to export or reseed (`verb`): by number, or the best metric (fewest parameters on ties)
    within max_params; a trial that was not trained to the end is refused with the reason."""
    records = list(records)
    scored = [r for r in records if r.scored]
    if not scored:
        raise PETLError(f"the study has no completed trials yet: nothing can be {verb}")
    if trial is not None:
        chosen = next((r for r in records if r.number == trial), None)
        if chosen is None:
            raise PETLError(f"trial {trial} is not in the study (its trials are 0..{len(records) - 1})")
        if not chosen.scored:
            what = {"over_budget": "was over the budget and never trained",
                    "duplicate": f"repeated trial {chosen.extra.get('duplicate_of')}: use that one",
                    "reseed": f"re-trained trial {chosen.extra.get('reseed_of')} with another seed: use that one",
                    }.get(
                chosen.kind, f"did not complete ({chosen.state.lower()}: {chosen.reason})")
            raise PETLError(f"trial {trial} {what}; only completed search or baseline trials can be {verb}")
        return chosen
    if not best:
        raise PETLError("say which trial: --trial N, or --best [--max-params F]")
    pool = [r for r in scored if max_params is None or r.stored_fraction <= max_params]
    if not pool:
        smallest = min(scored, key=lambda r: r.stored_fraction)
        raise PETLError(f"no completed trial stores at most {max_params:.4%} of the backbone (the smallest, "
                        f"trial {smallest.number}, stores {smallest.stored_fraction:.4%})")
    return max(pool, key=lambda r: (r.metric, -r.stored_params, -r.number))
