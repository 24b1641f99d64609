"""Comparing two sets of scores (a method over its seeds against another): mean ± std per side and a
Welch 95% interval for the difference of means, from SciPy.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

from scipy import stats


def spread(scores: Sequence[float]) -> float:
    """The sample standard deviation; 0 for a single score."""
    return statistics.stdev(scores) if len(scores) > 1 else 0.0


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
    def verdict(self) -> str:
        if math.isnan(self.low):
            return "too few seeds for an interval"
        if self.low > 0:
            return f"{self.a.label} better"
        if self.high < 0:
            return f"{self.b.label} better"
        return "not distinguishable from noise"


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Welch's t interval for mean(a) - mean(b) (unequal variances), from SciPy; NaN with fewer than 2
    scores per side. Two sides without any spread differ by exactly their difference (SciPy says NaN)."""
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    if statistics.variance(a) == 0 and statistics.variance(b) == 0:
        diff = statistics.mean(a) - statistics.mean(b)
        return diff, diff
    interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(level)
    return float(interval.low), float(interval.high)


def compare(question: str, a: Side, b: Side) -> Comparison:
    low, high = welch_interval(a.scores, b.scores)
    return Comparison(question, a, b, low, high)
