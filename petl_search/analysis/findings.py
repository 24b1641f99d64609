"""The paper's questions, answered from a study's own trials, with numbers and confidence.

Three kinds of evidence, kept apart:
- controlled pairs of seed methods (baselines) that differ in one dimension at the same size, each
  trained with several seeds: mean ± std per side and a Welch 95% interval for the difference;
- the search trials: the dimension effects within budget bands (`effects.dimension_effects`), which
  are observational (the sampler chose the points) and are reported as such;
- MAM against the front: points selected on the search split, judged on the official dev set over seeds.

Where the interval contains 0, the answer is "not distinguishable from noise", whatever the paper found.
Pure functions of `TrialRecord`s; report.py renders them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from ..search.records import TrialRecord
from .effects import budget_band
from .comparison import Comparison, Side, compare
from .front import Claim, Method, claims

# (question, side A (preset, args), side B): A and B differ in the dimension the question names.
# Sizes left out of args match any size: both sides are then the study's budget-fitted presets.
PAIRS: tuple[tuple[str, tuple[str, dict], tuple[str, dict]], ...] = (
    ("insertion: parallel vs sequential FFN adapter, at the budget", ("parallel_adapter", {}), ("pfeiffer", {})),
    ("composition: scaled vs plain parallel adapter, at the budget", ("scaled_parallel_adapter", {}),
     ("parallel_adapter", {})),
    ("composition: scaled vs plain parallel adapter, at ~0.1%", ("scaled_parallel_adapter", {"r": 4}),
     ("parallel_adapter", {"r": 4})),
    ("heads: multi-head vs single-head adapter on the head attention, at a tiny budget",
     ("mh_parallel_adapter", {"r_per_head": 3}), ("parallel_adapter", {"r": 3, "site": "attn_heads"})),
)
FFN_PRESETS = {"parallel_adapter", "scaled_parallel_adapter", "pfeiffer"}
ATTENTION_PRESETS = {"prefix_tuning", "lora", "mh_parallel_adapter"}


def _baselines(records: Iterable[TrialRecord]) -> list[TrialRecord]:
    return [r for r in records if r.kind == "baseline" and r.scored and r.preset]


def _side(records: Sequence[TrialRecord], preset: str, args: dict) -> Side | None:
    chosen = [r for r in _baselines(records) if r.preset == preset and _args_match(r.preset_args, args)]
    if not chosen:
        return None
    labels = {r.label for r in chosen}
    if len(labels) > 1:  # e.g. a preset at two sizes and no size given: take the largest (the budget-fitted)
        top = max(chosen, key=lambda r: r.stored_params).label
        chosen = [r for r in chosen if r.label == top]
    return Side(chosen[0].label, tuple(r.metric for r in chosen), 100 * chosen[0].stored_fraction)


def _args_match(have: dict, want: dict) -> bool:
    if not want:  # the budget-fitted preset: only its size argument
        return len(have) == 1
    return have == want


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
    by_band: dict[tuple[float, float], dict[str, list[Side]]] = {}
    methods = {r.label: r for r in _baselines(records)}
    for label, r in sorted(methods.items()):
        group = "ffn" if r.preset in FFN_PRESETS and r.preset_args.get("site", "ffn") == "ffn" else \
            "attention" if r.preset in ATTENTION_PRESETS else None
        if group is None:
            continue
        side = _side([x for x in records if x.label == label], r.preset, r.preset_args)
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


def mam_claims(points: Sequence[Method]) -> list[tuple[Method, list[Claim]]]:
    """Each MAM baseline (per size) and the front's search points with no more stored parameters, each
    judged against it on the official dev set over seeds (front.claims)."""
    return [(m, claims(points, m)) for m in points if m.kind == "baseline" and m.record.preset == "mam"]
