"""The numbers behind a study's dashboard that are not fronts or effects, as pure functions of its trial
records (no plotting here): hypervolume after each search trial, where each trial goes on the plot,
the seed methods' mean and spread, and Optuna's parameter importances.
"""
from __future__ import annotations

import statistics
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..search.records import TrialRecord
from .front import front, methods, study_hypervolume


def hypervolume_curve(records: Sequence[TrialRecord], budget_fraction: float, metric_floor: float = 0.0
                      ) -> list[tuple[int, float]]:
    """(trial number, hypervolume of the search points finished so far) after each finished search trial."""
    ordered = sorted((r for r in records if r.kind == "search" and r.state in ("COMPLETE", "PRUNED", "FAIL")
                      and not r.extra.get("interrupted")),  # queued again: its rerun is the trial
                     key=lambda r: r.number)
    curve = []
    for i, r in enumerate(ordered):
        curve.append((r.number, study_hypervolume(ordered[:i + 1], budget_fraction=budget_fraction,
                                                  metric_floor=metric_floor)))
    return curve


@dataclass(frozen=True)
class Point:
    number: int
    kind: str
    label: str
    status: str  # front | dominated | pruned | failed | over_budget
    percent: float | None  # stored parameters, % of the backbone
    metric: float | None
    reason: str | None


def scatter_points(records: Iterable[TrialRecord], score: str = "") -> list[Point]:
    """Every trial with its place on the plot: on the front (of points over their seeds), dominated, or
    not scored (and why)."""
    records = list(records)
    on_front = {m.number for m in front(methods(records, score))}
    points = []
    for r in records:
        # a duplicate or a reseed sits on its original's spot; an interrupted trial was queued again
        if r.kind in ("duplicate", "reseed") or r.extra.get("interrupted") or r.state in ("RUNNING", "WAITING"):
            continue
        if r.kind == "over_budget":
            status = "over_budget"
        elif r.scored:
            status = "front" if r.number in on_front else "dominated"
        else:
            status = "pruned" if r.state == "PRUNED" else "failed"
        percent = 100 * r.stored_fraction if r.stored_fraction is not None else None
        points.append(Point(r.number, r.kind, r.label, status, percent, r.metric if r.scored else None, r.reason))
    return points


def seed_methods(records: Iterable[TrialRecord]) -> list[dict[str, Any]]:
    """Each baseline label: mean ± std metric over its seeds and its stored share (for labels on the plot)."""
    groups: dict[str, list[TrialRecord]] = {}
    for r in records:
        if r.kind == "baseline" and r.scored:
            groups.setdefault(r.label, []).append(r)
    out = []
    for label, rs in sorted(groups.items()):
        scores = [r.metric for r in rs]
        out.append({"label": label, "n": len(rs), "mean": statistics.mean(scores),
                    "std": statistics.stdev(scores) if len(rs) > 1 else 0.0,
                    "percent": 100 * rs[0].stored_fraction, "stored_params": rs[0].stored_params})
    return out


def importances(study: Any, *, min_trials: int = 4) -> tuple[dict[str, float], str]:
    """Optuna's importances (its default evaluator) of the sampled parameters for the metric, over completed search
    trials only (over-budget proposals would teach it the budget, not the metric); a note says on what.

    Optuna reads the parameters every one of those trials has, so in a conditional space that is the
    sites' `use` switches and whatever is always sampled.
    """
    import optuna

    trials = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
              if t.user_attrs.get("kind") == "search"]
    if len(trials) < min_trials:
        return {}, f"needs {min_trials} completed search trials, has {len(trials)}"
    view = optuna.create_study(directions=study.directions)
    view.add_trials(trials)
    try:
        with warnings.catch_warnings():  # "few trials in some regime": the note says how many there are
            warnings.simplefilter("ignore", UserWarning)
            scores = optuna.importance.get_param_importances(view, target=lambda t: t.values[0])
    except (ValueError, RuntimeError) as exc:  # e.g. no parameter common to all trials
        return {}, f"not computable: {exc}"
    return dict(scores), f"{len(trials)} completed search trials"
