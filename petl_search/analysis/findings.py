"""The paper's questions, answered from a study's own trials, with numbers and confidence.

Three kinds of evidence, kept apart:
- controlled pairs of seed methods (baselines) that differ in one dimension at the same size, each
  trained with several seeds: mean ± std per side and a Welch 95% interval for the difference;
- the search trials: the dimension effects within budget bands (`effects.dimension_effects`), which
  are observational (the sampler chose the points) and are reported as such;
- MAM against the front: points selected on the search split, judged on the official dev set over seeds.

Every comparison is on the official dev set; every choice (which seed method is the best FFN or the best
attention one in a band) is on the set the study selects on, mean over seeds, so dev is never what picks
the sides it then judges. Where the interval contains 0, the answer is "not distinguishable from noise",
whatever the paper found. Pure functions of `TrialRecord`s; report.py renders them.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Iterable, Sequence

from ..search.optuna_bridge.records import TrialRecord
from .effects import budget_band
from .comparison import Comparison, Side, compare
from .front import Claim, Method, claims, dev_score

# (question, side A (preset, args), side B): A and B differ in the dimension the question names.
# Sizes left out of args match any size: both sides are then the study's budget-fitted presets.
PAIRS: tuple[tuple[str, tuple[str, dict], tuple[str, dict]], ...] = (
    ("insertion: parallel vs sequential FFN adapter, at the budget", ("parallel_adapter", {}), ("houlsby_ffn", {})),
    ("insertion: reading the FFN's Add&Norm (Pfeiffer) vs its output, at the budget", ("pfeiffer", {}),
     ("houlsby_ffn", {})),
    ("composition: scaled vs plain parallel adapter, at the budget", ("scaled_parallel_adapter", {}),
     ("parallel_adapter", {})),
    ("composition: scaled vs plain parallel adapter, at ~0.1%", ("scaled_parallel_adapter", {"r": 4}),
     ("parallel_adapter", {"r": 4})),
    ("heads: multi-head vs single-head adapter on the head attention, at a tiny budget",
     ("mh_parallel_adapter", {"r_per_head": 3}), ("parallel_adapter", {"r": 3, "site": "attn_heads"})),
)
FFN_PRESETS = {"parallel_adapter", "scaled_parallel_adapter", "houlsby_ffn", "pfeiffer"}
ATTENTION_PRESETS = {"prefix_tuning", "lora", "mh_parallel_adapter"}


def _baselines(records: Iterable[TrialRecord]) -> list[TrialRecord]:
    return [r for r in records if r.kind == "baseline" and r.scored and r.preset]


def _runs(records: Sequence[TrialRecord], preset: str, args: dict) -> list[TrialRecord]:
    """The seeds of the seed method `preset(args)` (none if the study lacks it)."""
    chosen = [r for r in _baselines(records) if r.preset == preset and _args_match(r.preset_args, args)]
    labels = {r.label for r in chosen}
    if len(labels) > 1:  # e.g. a preset at two sizes and no size given: take the largest (the budget-fitted)
        top = max(chosen, key=lambda r: r.stored_params).label
        chosen = [r for r in chosen if r.label == top]
    return chosen


def _dev_side(runs: Sequence[TrialRecord], score: str) -> Side | None:
    """The seed method on the official dev set, over its seeds that have a dev score (None if none has)."""
    dev = tuple(d for d in (dev_score(r, score) for r in runs) if d is not None)
    if not runs or not dev:
        return None
    return Side(runs[0].label, dev, 100 * runs[0].stored_fraction, runs[0].head_params)


def _args_match(have: dict, want: dict) -> bool:
    if not want:  # the budget-fitted preset: only its size argument
        return len(have) == 1
    return have == want


def baseline_comparisons(records: Iterable[TrialRecord], score: str) -> list[Comparison]:
    """The controlled pairs the study evaluated (pairs it lacks, or without dev scores, are left out), plus
    FFN vs attention; every side on the official dev set (`score` names the score there)."""
    records = list(records)
    out = []
    for question, (pa, aa), (pb, ab) in PAIRS:
        a, b = _dev_side(_runs(records, pa, aa), score), _dev_side(_runs(records, pb, ab), score)
        if a and b:
            out.append(compare(question, a, b))
    out += representation_comparisons(records, score)
    return out


def representation_comparisons(records: Sequence[TrialRecord], score: str) -> list[Comparison]:
    """FFN vs attention within each budget band: the best FFN seed method against the best attention one,
    each the best on the set the study selects on (mean over seeds; fewer stored parameters, then label,
    on ties), compared on the official dev set."""
    by_band: dict[tuple[float, float], dict[str, list[list[TrialRecord]]]] = {}
    methods = {r.label: r for r in _baselines(records)}
    for label, r in sorted(methods.items()):
        group = "ffn" if r.preset in FFN_PRESETS and r.preset_args.get("site", "ffn") == "ffn" else \
            "attention" if r.preset in ATTENTION_PRESETS else None
        if group is None:
            continue
        runs = _runs([x for x in records if x.label == label], r.preset, r.preset_args)
        by_band.setdefault(budget_band(runs[0].stored_fraction), {}).setdefault(group, []).append(runs)
    out = []
    for band, groups in sorted(by_band.items()):
        if "ffn" in groups and "attention" in groups:
            best = [max(groups[g], key=lambda runs: (statistics.mean(r.metric for r in runs), -runs[0].stored_params))
                    for g in ("ffn", "attention")]
            a, b = (_dev_side(runs, score) for runs in best)
            if a and b:
                on = "dev set" if best[0][0].evaluated_on == "dev" else best[0][0].evaluated_on
                out.append(compare(f"representation: best FFN vs best attention method (each the best on the {on}), "
                                   f"{100 * band[0]:.3g}–{100 * band[1]:.3g}% of the backbone", a, b))
    return out


def mam_claims(points: Sequence[Method]) -> list[tuple[Method, list[Claim]]]:
    """Each MAM baseline (per size) and the front's search points with no more stored parameters, each
    judged against it on the official dev set over seeds (front.claims)."""
    return [(m, claims(points, m)) for m in points if m.kind == "baseline" and m.record.preset == "mam"]
