"""The numbers behind a study's dashboard, as pure functions of its trial records (no plotting here):
the one-screen overview (the front, the seed methods, what beat what, what to export), where each
point goes on the front plot and how its stored-parameter axis is laid out, which dimension-effect
panels have anything to show, the top parameter importances, and hypervolume after each search trial.
Every choice here (the front, the reference, what to export) is made on the set the study selects on;
dev scores are only quoted.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..search.optuna_bridge.records import TrialRecord, counts
from .effects import DIMENSIONS, Effect, dimension_effects
from .front import (Claim, Method, best_baseline, best_point, claims, front, methods, nothing_learned,
                    study_head_params, study_hypervolume)

ZERO_LABEL = "0 (frozen)"  # where points with no stored Δh sit on the log axis, left of the smallest


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


def selected_on(records: Iterable[TrialRecord]) -> str:
    """The set the study selected on ("search split" or "dev"), as its trained records say."""
    return next((r.evaluated_on for r in records if r.scored), "dev")


# ---- the stored-parameter axis -------------------------------------------------------------------

@dataclass(frozen=True)
class XAxis:
    """A log axis of stored parameters (% of the backbone) from the data to a little past the budget,
    with a place apart, left of the smallest point, for points that store nothing (a log axis has no 0).

    `range` is in log10 units (as plotly takes a log axis's range); everything else is in percent."""

    range: tuple[float, float]
    budget: float
    zero: float | None  # where 0-parameter points are drawn; None when there are none
    gap: float | None  # between the zero place and the smallest real value: the axis is broken here
    tickvals: tuple[float, ...]
    ticktext: tuple[str, ...]

    def x(self, percent: float) -> float:
        """Where a point storing `percent` % of the backbone is drawn."""
        if percent > 0:
            return percent
        if self.zero is None:
            raise ValueError("this axis has no place for 0-parameter points (x_axis was given none)")
        return self.zero


def x_axis(percents: Iterable[float], budget: float, *, past: float = 1.25) -> XAxis:
    """The axis for points at `percents` (% of the backbone) under a `budget` (%): from a little left of
    the smallest positive point to `past` × the budget (or the largest point, if one lies beyond), and,
    when some point stores nothing, a zero place apart on the left, labelled ZERO_LABEL."""
    percents = list(percents)
    positive = [p for p in percents if p > 0]
    low = math.log10(min(positive, default=budget / 10)) - 0.15
    high = math.log10(max(positive + [budget]) * past)
    ticks = [(v, f"{v:g}%") for v in _log_ticks(low, high)]
    zero = gap = None
    start = low
    if any(p == 0 for p in percents):
        zero, gap = 10 ** (low - 0.4), 10 ** (low - 0.15)
        start = low - 0.75  # room for the label's half left of the zero place
        ticks.insert(0, (zero, ZERO_LABEL))
    return XAxis((start, high), budget, zero, gap, tuple(v for v, _ in ticks), tuple(t for _, t in ticks))


def _log_ticks(low: float, high: float) -> list[float]:
    """Round values in [10^low, 10^high]: 1, 2, 5 × 10^k (only 10^k over a wide span, every digit over a
    narrow one)."""
    for mantissas in ((1,), (1, 2, 5), tuple(range(1, 10))):
        if mantissas == (1,) and high - low <= 3:
            continue
        values = [float(f"{m}e{k}") for k in range(math.floor(low), math.ceil(high) + 1) for m in mantissas]
        inside = [v for v in values if low <= math.log10(v) <= high]
        if len(inside) >= 3 or mantissas == tuple(range(1, 10)):
            return inside
    return []


# ---- the front plot -----------------------------------------------------------------------------

@dataclass(frozen=True)
class PlotPoint:
    """One marker: a trained point over its seeds, or an unscored trial on the strip under the lowest."""

    number: int
    kind: str
    label: str
    percent: float  # stored Δh, % of the backbone
    stored_params: int
    x: float  # where it is drawn (the zero place for a point that stores nothing)
    y: float  # mean selected score over seeds; the strip for an unscored trial
    std: float = 0.0
    seeds: int = 0
    dev: float | None = None  # mean on the official dev set, when it has one
    dev_std: float = 0.0
    reason: str | None = None  # why an unscored trial has no score
    head_params: int | None = None  # the task head trained with it (not in the budget)
    learning_rate: float | None = None  # the rate it trained at (None: not recorded)


@dataclass(frozen=True)
class FrontPlot:
    """The front plot's data: markers by group (search points on the front and dominated, each over its
    seeds; search or baseline trials stopped early or failed; one marker per seed method at its mean),
    the Pareto line through the front (baselines included), the axis, and what is not drawn and why."""

    groups: Mapping[str, tuple[PlotPoint, ...]]  # front, dominated, pruned, failed, baselines (even if empty)
    line: tuple[tuple[float, float], ...]  # (x, mean) of the front's points, by stored parameters
    axis: XAxis
    strip: float | None  # the y of unscored trials
    selected_on: str
    not_drawn: Mapping[str, int]  # trials with no marker of their own: reseeds, duplicates, over budget, no size


def front_plot(records: Sequence[TrialRecord], score: str, budget_fraction: float,
               references: Mapping[str, Mapping[str, float] | None] | None = None) -> FrontPlot:
    """Where everything goes on the front plot (selected score, mean over seeds, vs stored parameters)."""
    points = methods(records, score, references)
    on_front = {m.number for m in front(points)}
    trained = {"front": [], "dominated": [], "baselines": []}
    for m in points:
        key = "baselines" if m.kind == "baseline" else "front" if m.number in on_front else "dominated"
        trained[key].append(m)
    unscored: dict[str, list[TrialRecord]] = {"pruned": [], "failed": []}
    no_size = 0
    for r in records:
        if r.kind not in ("search", "baseline") or r.scored or r.extra.get("interrupted") or \
                r.state not in ("PRUNED", "FAIL"):
            continue
        if r.stored_fraction is None:
            no_size += 1
        else:
            unscored["pruned" if r.state == "PRUNED" else "failed"].append(r)
    percents = [100 * m.stored_fraction for group in trained.values() for m in group] + \
               [100 * r.stored_fraction for group in unscored.values() for r in group]
    axis = x_axis(percents, 100 * budget_fraction)
    means = [m.mean for group in trained.values() for m in group]
    strip = None
    if any(unscored.values()):
        low, high = min(means, default=0.0), max(means, default=0.0)
        strip = low - max(0.02, 0.08 * (high - low))

    study_head = study_head_params(records)

    def drawn(m: Method) -> PlotPoint:
        percent = 100 * m.stored_fraction
        return PlotPoint(m.number, m.kind, m.label, percent, m.stored_params, axis.x(percent), m.mean, m.std,
                         len(m.scores), m.dev_mean, m.dev_std, head_params=m.head_params,
                         learning_rate=m.learning_rate)

    def stopped(r: TrialRecord) -> PlotPoint:
        percent = 100 * r.stored_fraction
        return PlotPoint(r.number, r.kind, r.label, percent, r.stored_params or 0, axis.x(percent), strip,
                         reason=r.reason, head_params=r.head_params if r.head_params is not None else study_head,
                         learning_rate=r.learning_rate)

    groups = {"front": tuple(sorted((drawn(m) for m in trained["front"]), key=lambda p: p.percent)),
              "dominated": tuple(drawn(m) for m in trained["dominated"]),
              "pruned": tuple(stopped(r) for r in unscored["pruned"]),
              "failed": tuple(stopped(r) for r in unscored["failed"]),
              "baselines": tuple(drawn(m) for m in trained["baselines"])}
    c = counts(records)
    not_drawn = {"reseed": c["reseed"], "duplicate": c["duplicate"], "over_budget": c["over_budget"],
                 "misfit": c["misfit"], "no_size": no_size}
    line = tuple((axis.x(100 * m.stored_fraction), m.mean) for m in front(points))
    return FrontPlot(groups, line, axis, strip, selected_on(records), not_drawn)


# ---- the overview: the front, the seed methods, what beat what, what to export --------------------

@dataclass(frozen=True)
class ExportChoice:
    number: int
    label: str
    why: str
    command: str


@dataclass(frozen=True)
class Overview:
    selected_on: str
    front: tuple[Method, ...]  # selected on `selected_on`, mean over seeds; baselines included
    baselines: tuple[Method, ...]  # the seed methods, one per label
    reference: Method | None  # the best baseline on `selected_on`: what the claims are against
    claims: tuple[Claim, ...]  # the front's search points no larger than the reference, judged on dev
    export_claim: Claim | None  # the exported point's claim against the reference: quoted, not what chose it
    export: ExportChoice | None
    no_export: str | None = None  # why nothing is recommended, when nothing is
    nothing_learnt: str | None = None  # said first when no trained point beats a constant answer


def overview(records: Sequence[TrialRecord], score: str, *, budget_fraction: float, study_file: str,
             study_name: str, references: Mapping[str, Mapping[str, float] | None] | None = None) -> Overview:
    """What the top of the dashboard answers. What to export: `best_point` within the budget, chosen on the
    set the search chose on, never on dev; its dev score and its claim against the best baseline, if it has
    one, are quoted."""
    points = methods(records, score, references)
    line = tuple(front(points))
    reference = best_baseline(points)
    found = tuple(claims(points, reference)) if reference is not None else ()
    on = selected_on(records)
    pick = best_point(points, max_fraction=budget_fraction, score=score, on=on)
    chosen = pick.point
    claim = next((c for c in found if chosen is not None and c.point.number == chosen.number), None)
    export = None
    if chosen is not None:
        why = pick.why
        if claim is not None and claim.comparison is not None:
            why += (f"; on dev {claim.comparison.difference:+.4f} against {claim.against.label} over "
                    f"{_seeds(len(chosen.dev))}: {claim.verdict}")
        elif chosen.dev and on != "dev":
            why += f"; dev {chosen.dev_mean:.4f} over {_seeds(len(chosen.dev))}"
        export = ExportChoice(chosen.number, chosen.label, why, export_command(study_file, study_name, chosen.number))
    baselines = tuple(sorted((m for m in points if m.kind == "baseline"), key=lambda m: m.stored_params))
    return Overview(on, line, baselines, reference, found, claim, export, pick.why if export is None else None,
                    nothing_learned(points, score))


def export_command(study_file: str, study_name: str, number: int) -> str:
    """The command that exports trial `number`, as the dashboard, report and status print it."""
    return f"petl-search export {study_file} --trial {number} --out exports/{study_name}-trial{number}"


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


# ---- dimension effects and importances ----------------------------------------------------------

def effect_panels(records: Iterable[TrialRecord], dimensions: Iterable[str] = DIMENSIONS
                  ) -> tuple[dict[str, list[Effect]], list[str]]:
    """The dimensions with something to compare (each with its effects), and those with nothing yet
    (no budget band holds two of their values): the dashboard draws the first and names the second."""
    records = list(records)
    shown, empty = {}, []
    for dimension in dimensions:
        effects = dimension_effects(records, dimension)
        if effects:
            shown[dimension] = effects
        else:
            empty.append(dimension)
    return shown, empty


def top_importances(scores: Mapping[str, float], top: int = 10) -> list[tuple[str, float]]:
    """The `top` most important parameters, largest first, and the rest summed into one
    "other N parameters" entry (left out when there is no rest)."""
    ordered = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    head, rest = ordered[:top], ordered[top:]
    if rest:
        head.append((f"other {len(rest)} parameters", sum(v for _, v in rest)))
    return head


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
