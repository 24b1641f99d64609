"""The effect of each design dimension on the metric, at comparable budgets: points are grouped into
budget bands (×4 wide) and, within a band, by the value a point takes in the dimension.

Pure functions of `TrialRecord`s; the report and the dashboard show them. Observational: the sampler
chose the search points.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from ..search.optuna_bridge.records import TrialRecord

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
