"""The paper's questions, answered from a study's own trials, with numbers and confidence.

Two kinds of evidence, kept apart:
- controlled pairs of seed methods (baselines) that differ in one dimension at the same size, each
  trained with several seeds: mean ± std per side and a Welch 95% interval for the difference;
- the search trials: the dimension effects within budget bands (`report.dimension_effects`), which
  are observational (the sampler chose the points) and are reported as such.

Where the interval contains 0, the answer is "not distinguishable from noise", whatever the paper found.
Pure functions of `TrialRecord`s; `markdown()` renders them.
"""
from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass
from typing import Iterable, Sequence

from .front import TrialRecord, front_records
from .report import Effect, dimension_effects

# (question, side A (preset, args), side B): A and B differ in the dimension the question names.
# Sizes left out of args match any size: both sides are then the study's budget-fitted presets.
PAIRS: tuple[tuple[str, tuple[str, dict], tuple[str, dict]], ...] = (
    ("insertion: parallel vs sequential FFN adapter, at the budget", ("parallel_adapter", {}), ("pfeiffer", {})),
    ("composition: scaled vs plain parallel adapter, at the budget", ("scaled_parallel_adapter", {}),
     ("parallel_adapter", {})),
    ("composition: scaled vs plain parallel adapter, at ~0.1%", ("scaled_parallel_adapter", {"r": "4"}),
     ("parallel_adapter", {"r": "4"})),
    ("heads: multi-head vs single-head adapter on the head attention, at a tiny budget",
     ("mh_parallel_adapter", {"r_per_head": "3"}), ("parallel_adapter", {"r": "3", "site": "attn_heads"})),
)
FFN_PRESETS = {"parallel_adapter", "scaled_parallel_adapter", "pfeiffer"}
ATTENTION_PRESETS = {"prefix_tuning", "lora", "mh_parallel_adapter"}


def parse_label(label: str) -> tuple[str, dict[str, str]]:
    """'lora(r=8,alpha=16)' -> ('lora', {'r': '8', 'alpha': '16'}); a bare name has no arguments."""
    match = re.fullmatch(r"([a-z_]+)(?:\((.*)\))?", label)
    if not match:
        return label, {}
    args = dict(part.split("=", 1) for part in match.group(2).split(",")) if match.group(2) else {}
    return match.group(1), args


@dataclass(frozen=True)
class Side:
    label: str
    scores: tuple[float, ...]
    percent: float  # stored Δh, % of the backbone

    @property
    def mean(self) -> float:
        return statistics.mean(self.scores)

    @property
    def std(self) -> float:
        return statistics.stdev(self.scores) if len(self.scores) > 1 else 0.0


@dataclass(frozen=True)
class Comparison:
    question: str
    a: Side
    b: Side
    low: float  # 95% interval of mean(A) - mean(B)
    high: float

    @property
    def difference(self) -> float:
        return self.a.mean - self.b.mean

    @property
    def verdict(self) -> str:
        if math.isnan(self.low):
            return "too few seeds for an interval"
        if self.low > 0:
            return f"{self.a.label} better"
        if self.high < 0:
            return f"{self.b.label} better"
        return "not distinguishable from noise"


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Welch's t interval for mean(a) - mean(b) (unequal variances); NaN with fewer than 2 per side."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.mean(a) - statistics.mean(b)
    if va + vb == 0:
        return diff, diff
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + level / 2, dof) * math.sqrt(va + vb)
    return diff - half, diff + half


def _side(records: Sequence[TrialRecord], preset: str, args: dict) -> Side | None:
    chosen = [r for r in records if r.kind == "baseline" and r.scored
              and parse_label(r.label)[0] == preset and _args_match(parse_label(r.label)[1], args)]
    if not chosen:
        return None
    labels = {r.label for r in chosen}
    if len(labels) > 1:  # e.g. a preset at two sizes and no size given: take the largest (the budget-fitted)
        top = max(chosen, key=lambda r: r.stored_params).label
        chosen = [r for r in chosen if r.label == top]
    return Side(chosen[0].label, tuple(r.metric for r in chosen), 100 * chosen[0].stored_fraction)


def _args_match(have: dict[str, str], want: dict) -> bool:
    if not want:  # the budget-fitted preset: only its size argument
        return len(have) == 1
    return all(have.get(k) == str(v) for k, v in want.items()) and len(have) == len(want)


def compare(question: str, a: Side, b: Side) -> Comparison:
    low, high = welch_interval(a.scores, b.scores)
    return Comparison(question, a, b, low, high)


def baseline_comparisons(records: Iterable[TrialRecord]) -> list[Comparison]:
    """The controlled pairs the study evaluated (pairs it lacks are left out), plus FFN vs attention."""
    records = list(records)
    out = []
    for question, (pa, aa), (pb, ab) in PAIRS:
        a, b = _side(records, pa, aa), _side(records, pb, ab)
        if a and b:
            out.append(compare(question, a, b))
    out += representation_comparisons(records)
    return out


def representation_comparisons(records: Sequence[TrialRecord]) -> list[Comparison]:
    """FFN vs attention within each budget band: the best FFN seed method against the best attention one."""
    from .report import budget_band

    by_band: dict[tuple[float, float], dict[str, list[Side]]] = {}
    for label in sorted({r.label for r in records if r.kind == "baseline" and r.scored}):
        preset, args = parse_label(label)
        group = "ffn" if preset in FFN_PRESETS and args.get("site", "ffn") == "ffn" else \
            "attention" if preset in ATTENTION_PRESETS else None
        if group is None:
            continue
        side = _side([r for r in records if r.label == label], preset, args)
        band = budget_band(side.percent / 100)
        by_band.setdefault(band, {}).setdefault(group, []).append(side)
    out = []
    for band, groups in sorted(by_band.items()):
        if "ffn" in groups and "attention" in groups:
            best_ffn = max(groups["ffn"], key=lambda s: s.mean)
            best_att = max(groups["attention"], key=lambda s: s.mean)
            out.append(compare(f"representation: best FFN vs best attention method, {100 * band[0]:.3g}–"
                               f"{100 * band[1]:.3g}% of the backbone", best_ffn, best_att))
    return out


@dataclass(frozen=True)
class MamPlacement:
    mam: Side
    dominated_by: tuple[TrialRecord, ...]  # search points at least as good with no more parameters
    best_within: TrialRecord | None  # the best search point with no more parameters than MAM
    # a search point (a win, or the best within) that was reseeded, against MAM over seeds
    reseeded: tuple[tuple[TrialRecord, Comparison], ...] = ()


def point_side(records: Sequence[TrialRecord], point: TrialRecord) -> Side:
    """A trained point over its seeds: its own metric and those of its finished reseeds."""
    again = [r.metric for r in records if r.kind == "reseed" and r.extra.get("reseed_of") == point.number
             and r.metric is not None]
    return Side(f"#{point.number} {point.label}", (point.metric, *again), 100 * point.stored_fraction)


def mam_placement(records: Iterable[TrialRecord]) -> list[MamPlacement]:
    """Each MAM baseline (per size) against the search: which search points match or beat it on one seed,
    and, for those trained again with other seeds (`petl-search reseed`), whether that holds over seeds."""
    records = list(records)
    out = []
    for label in sorted({r.label for r in records if r.kind == "baseline" and r.scored
                         and parse_label(r.label)[0] == "mam"}):
        side = _side([r for r in records if r.label == label], "mam", parse_label(label)[1])
        stored = next(r.stored_params for r in records if r.label == label)
        within = [r for r in records if r.scored and r.kind == "search" and r.stored_params <= stored]
        wins = tuple(sorted((r for r in within if r.metric >= side.mean), key=lambda r: r.stored_params))
        best = max(within, key=lambda r: r.metric, default=None)
        candidates = list(wins) + ([best] if best is not None and best not in wins else [])
        over_seeds = [(r, point_side(records, r)) for r in candidates]
        reseeded = tuple((r, compare(f"{r.label} vs {label}", s, side)) for r, s in over_seeds if len(s.scores) > 1)
        out.append(MamPlacement(side, wins, best, reseeded))
    return out


def markdown(records: Sequence[TrialRecord], metric: str, study_name: str) -> str:
    """The report: controlled comparisons, search-trial effects, MAM against the front."""
    lines = [f"# {study_name}: what the data says", "",
             f"Metric: {metric} on the full dev set. Seeds per baseline as run; 95% Welch intervals for the "
             f"difference of means (A − B).", "", "## Controlled comparisons (seed methods, same size)", "",
             "| question | A | B | A: mean ± std (n) | B: mean ± std (n) | A − B [95% CI] | answer |",
             "|---|---|---|---|---|---|---|"]
    for c in baseline_comparisons(records):
        lines.append(f"| {c.question} | {c.a.label} ({c.a.percent:.3f}%) | {c.b.label} ({c.b.percent:.3f}%) | "
                     f"{c.a.mean:.4f} ± {c.a.std:.4f} ({len(c.a.scores)}) | {c.b.mean:.4f} ± {c.b.std:.4f} "
                     f"({len(c.b.scores)}) | {c.difference:+.4f} {_interval(c)} | {c.verdict} |")
    lines += ["", "## All trained points by design dimension, within budget bands (observational: the sampler "
              "chose the search points)", "",
              "| dimension | budget band | value | n | mean ± std |", "|---|---|---|---|---|"]
    for dimension in ("insertion", "representation", "composition", "heads", "size", "scale"):
        for e in dimension_effects(records, dimension):
            lines.append(_effect_row(e))
    lines += ["", "## MAM against the search front", ""]
    for p in mam_placement(records):
        best = p.best_within
        lines.append(f"- {p.mam.label} ({p.mam.percent:.3f}%): {p.mam.mean:.4f} ± {p.mam.std:.4f} over "
                     f"{len(p.mam.scores)} seeds. Search points as good with no more parameters: "
                     + (", ".join(f"#{r.number} {r.metric:.4f} at {100 * r.stored_fraction:.3f}%" for r in p.dominated_by)
                        or "none")
                     + (f"; the best search point within its size: #{best.number} {best.metric:.4f}" if best else ""))
        for r, c in p.reseeded:
            lines.append(f"  - #{r.number} ({r.label}, {100 * r.stored_fraction:.3f}%) over {len(c.a.scores)} "
                         f"seeds: {c.a.mean:.4f} ± {c.a.std:.4f}; minus MAM: {c.difference:+.4f} {_interval(c)}: "
                         f"{_against_mam(c)}")
    front = front_records(records)
    lines += ["", f"Front ({len(front)} points): " + ", ".join(f"#{r.number} {r.kind} {r.metric:.4f} at "
                                                              f"{100 * r.stored_fraction:.3f}%" for r in front)]
    return "\n".join(lines) + "\n"


def _against_mam(c: Comparison) -> str:
    mean = "at least as good as MAM on average" if c.difference >= 0 else "below MAM on average"
    if math.isnan(c.low):
        return f"{mean} (too few seeds for an interval)"
    if c.low > 0:
        return f"{mean}, better beyond seed noise"
    if c.high < 0:
        return f"{mean}, worse beyond seed noise"
    return f"{mean}; the difference is within seed noise"


def _interval(c: Comparison) -> str:
    return "[n/a]" if math.isnan(c.low) else f"[{c.low:+.4f}, {c.high:+.4f}]"


def _effect_row(e: Effect) -> str:
    return (f"| {e.dimension} | {100 * e.band[0]:.3g}–{100 * e.band[1]:.3g}% | {e.value} | {e.n} | "
            f"{e.mean:.4f} ± {e.std:.4f} |")
