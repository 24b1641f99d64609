"""The paper's questions answered from a study's own trials, as Markdown (`petl-search report`)."""
from __future__ import annotations

import math
from typing import Sequence

from ..search.records import TrialRecord
from .effects import Effect, dimension_effects
from .findings import baseline_comparisons, mam_placement
from .front import front_records
from .comparison import Comparison


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
