"""The numbers behind a study's dashboard, as pure functions of its trial records (no plotting here).

Each function takes `TrialRecord`s (from `front.read_records`) and returns plain data that a renderer
draws and a test checks: the front and the dominated/failed points, hypervolume after each trial, the
seed methods where they were evaluated, the effect of each design dimension at comparable budgets,
and the table of front points.
"""
from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from .front import TrialRecord, front_records, study_hypervolume

# The paper's questions, as functions of a config: which value of the dimension a point takes.
# A point with Δh at several sites or of several kinds has no single value and is left out (None).


def _single(values: set) -> Any:
    return next(iter(values)) if len(values) == 1 else None


def _specs(config: dict) -> list[tuple[str, dict]]:
    return [(site, spec) for site, spec in sorted(config.items()) if isinstance(spec, dict)]


def _dim(name: str, default: Any = None) -> Callable[[dict], Any]:
    def value(config: dict) -> Any:
        return _single({spec.get(name, default) for _, spec in _specs(config) if spec.get("form") != "prefix"})
    return value


def _representation(config: dict) -> Any:
    sites = {site for site, _ in _specs(config)}
    if not sites:
        return None
    if sites <= {"attn_heads", "attn_out", "attn_qkv"}:
        return "attention"
    return "ffn" if sites == {"ffn"} else "attention + ffn"


def _heads(config: dict) -> Any:
    heads = {spec.get("heads", 1) > 1 for _, spec in _specs(config) if spec.get("form") != "prefix"}
    return {True: "multi-head", False: "single-head"}.get(_single(heads))


def _composition(config: dict) -> Any:
    return _single({spec.get("composition", "add") for _, spec in _specs(config) if spec.get("form") != "prefix"})


def _form(config: dict) -> Any:
    return _single({spec.get("form") for _, spec in _specs(config)})


def _bucket(value: float, edges: Sequence[float], unit: str) -> str:
    """The range of `edges` holding value, as text: a numeric dimension becomes a few ordered groups."""
    for low, high in zip(edges, edges[1:]):
        if low <= value < high:
            return f"{unit} {low:g}–{high:g}"
    return f"{unit} ≥ {edges[-1]:g}" if value >= edges[-1] else f"{unit} < {edges[0]:g}"


def _size(config: dict) -> Any:
    """Bottleneck r / prefix l, in ×4 groups (the largest Δh's size when there are several)."""
    sizes = [spec.get("size") for _, spec in _specs(config) if spec.get("size")]
    return _bucket(max(sizes), (1, 5, 17, 65, 257, 1025), "size") if sizes else None


def _scale(config: dict) -> Any:
    """The fixed scale s of scaled compositions (points with other compositions are left out)."""
    scales = {spec.get("scale") for _, spec in _specs(config)
              if spec.get("form") != "prefix" and spec.get("composition") == "scale"}
    value = _single(scales)
    return _bucket(value, (0.5, 1, 2, 4, 8), "s") if value is not None else None


DIMENSIONS: dict[str, Callable[[dict], Any]] = {
    "insertion": _dim("insertion"),
    "representation": _representation,
    "composition": _composition,
    "heads": _heads,
    "form": _form,
    "size": _size,
    "scale": _scale,
}


@dataclass(frozen=True)
class Effect:
    """Mean metric of each value of a dimension within one budget band (a band is a ×`ratio` range)."""

    dimension: str
    band: tuple[float, float]  # stored fraction range [low, high)
    value: str
    n: int
    mean: float
    std: float


def budget_band(fraction: float, ratio: float = 4.0) -> tuple[float, float]:
    """The band [ratio^k, ratio^(k+1)) holding `fraction`: points compared only within a band."""
    k = math.floor(math.log(fraction, ratio))
    return ratio**k, ratio ** (k + 1)


def dimension_effects(records: Iterable[TrialRecord], dimension: str, *, ratio: float = 4.0) -> list[Effect]:
    """For each budget band with at least two values of `dimension`, each value's mean ± std metric.

    Only completed, trained points (search and baselines) with one value of the dimension count; a band
    where only one value was tried answers nothing and is left out.
    """
    of = DIMENSIONS[dimension]
    groups: dict[tuple[tuple[float, float], str], list[float]] = {}
    for r in records:
        if not r.scored or not r.stored_fraction:
            continue
        value = of(r.config)
        if value is None:
            continue
        groups.setdefault((budget_band(r.stored_fraction, ratio), str(value)), []).append(r.metric)
    bands: dict[tuple[float, float], list[str]] = {}
    for band, value in groups:
        bands.setdefault(band, []).append(value)
    effects = []
    for band in sorted(bands):
        if len(bands[band]) < 2:
            continue
        for value in sorted(bands[band]):
            scores = groups[(band, value)]
            effects.append(Effect(dimension, band, value, len(scores), statistics.mean(scores),
                                  statistics.stdev(scores) if len(scores) > 1 else 0.0))
    return effects


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


def scatter_points(records: Iterable[TrialRecord]) -> list[Point]:
    """Every trial with its place on the plot: on the front, dominated, or not scored (and why)."""
    records = list(records)
    front = {r.number for r in front_records(records)}
    points = []
    for r in records:
        # a duplicate or a reseed sits on its original's spot; an interrupted trial was queued again
        if r.kind in ("duplicate", "reseed") or r.extra.get("interrupted") or r.state in ("RUNNING", "WAITING"):
            continue
        if r.kind == "over_budget":
            status = "over_budget"
        elif r.scored:
            status = "front" if r.number in front else "dominated"
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
