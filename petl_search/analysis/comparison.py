"""Comparing two sets of scores (a method over its seeds against another): mean ± std per side and a
Welch 95% interval for the difference of means, from SciPy.

An interval needs seed noise to measure: with fewer than two scores a side, or with no spread on either
side (identical seed lists, or each constant), there is none, and no verdict may read as if there were.
"""
from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass
from typing import Sequence

from scipy import stats


def spread(scores: Sequence[float]) -> float:
    """The sample standard deviation; 0 for a single score."""
    return statistics.stdev(scores) if len(scores) > 1 else 0.0


def seeds_text(scores: Sequence[float]) -> str:
    """'0.8577 ± 0.0006 (3)': mean ± std over seeds (n), as every report and dashboard writes it; one seed has no
    spread to show, no seed is '-'."""
    if not scores:
        return "-"
    std = f" ± {spread(scores):.4f}" if len(scores) > 1 else ""
    return f"{statistics.mean(scores):.4f}{std} ({len(scores)})"


@dataclass(frozen=True)
class Side:
    label: str
    scores: tuple[float, ...]
    percent: float  # stored Δh, % of the backbone
    head_params: int | None = None  # the task head trained with it (not in the budget), when recorded

    @property
    def mean(self) -> float:
        return statistics.mean(self.scores)

    @property
    def std(self) -> float:
        return spread(self.scores)


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
    def no_interval(self) -> str | None:
        """Why the scores give no interval (too few, or no spread to measure noise by), else None."""
        return why_no_interval(self.a.scores, self.b.scores)

    @property
    def verdict(self) -> str:
        if self.no_interval:
            return self.no_interval
        if self.low > 0:
            return f"{self.a.label} better"
        if self.high < 0:
            return f"{self.b.label} better"
        return "not distinguishable from noise"


def why_no_interval(a: Sequence[float], b: Sequence[float]) -> str | None:
    """Why two seed lists give no Welch interval, in words; None when they give one."""
    if len(a) < 2 or len(b) < 2:
        return "too few seeds for an interval"
    if _flat(a) and _flat(b):
        return "no spread over seeds on either side: seed noise not measured"
    return None


def _flat(scores: Sequence[float]) -> bool:
    """No spread, up to rounding (the same score summed in another order differs in its last bits)."""
    return max(scores) - min(scores) <= 1e-9 * max(1.0, *(abs(x) for x in scores))


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Welch's t interval for mean(a) - mean(b) (unequal variances), from SciPy; NaN when `why_no_interval`
    gives a reason: fewer than 2 scores a side, or no spread on either side (identical or constant seed
    lists measure no noise; a zero-width interval there would read as a certain difference)."""
    if why_no_interval(a, b):
        return math.nan, math.nan
    with warnings.catch_warnings():  # a constant side (a collapsed method: every seed 0.5) has variance 0
        # exactly, which SciPy computes right while warning of "catastrophic cancellation"
        warnings.filterwarnings("ignore", message="Precision loss occurred in moment calculation")
        interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(level)
    return float(interval.low), float(interval.high)


def compare(question: str, a: Side, b: Side) -> Comparison:
    low, high = welch_interval(a.scores, b.scores)
    return Comparison(question, a, b, low, high)
