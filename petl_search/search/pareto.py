"""Multi-objective arithmetic shared by the search and the analysis: dominance, Pareto fronts and
hypervolume. Every objective is maximised here; callers negate what they minimise.

The front and the hypervolume are Optuna's own (the code that ranks a study's trials), not copies of it;
this module only adapts them to plain lists of points. It must not keep state between calls.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a dominates b when it is no worse in every objective and better in one (all maximised)."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points (every objective maximised), in input order; equal points are
    all kept, as neither dominates the other.

    The points become the trials of a throwaway in-memory study and its `best_trials` (Optuna's Pareto
    front) is read back. Optuna already keeps every copy of a duplicated front point (it ranks the unique
    values, then maps them back to each trial), which is this function's contract, so nothing is adapted.
    """
    if not points:
        return []
    for i, p in enumerate(points):
        if any(math.isnan(v) for v in p):  # Optuna refuses a complete trial with NaN; say which point
            raise ValueError(f"points[{i}] must not contain NaN, but got {tuple(p)}")
    with _optuna_quiet():
        study = optuna.create_study(directions=["maximize"] * len(points[0]))
    study.add_trials(optuna.trial.create_trial(values=list(p)) for p in points)
    # A fresh study numbers its trials 0, 1, ... in the order they were added: the number is the index.
    return sorted(t.number for t in study.best_trials)


def hypervolume_2d(points: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by `points` (both coordinates maximised) and bounded below by `reference`.

    Optuna 5 has no public hypervolume function: `optuna._hypervolume` is the module behind its public
    `optuna.visualization.plot_hypervolume_history`, used here rather than a hand-written sweep. It
    minimises and refuses points worse than the reference, so points outside the reference box (which add
    nothing) are dropped first and the rest negated.
    """
    inside = [p for p in points if p[0] > reference[0] and p[1] > reference[1]]
    if not inside:
        return 0.0
    losses = -np.asarray(inside, dtype=float)
    return float(compute_hypervolume(losses, -np.asarray(reference, dtype=float)))


@contextmanager
def _optuna_quiet() -> Iterator[None]:
    """Silence create_study's INFO line ("A new study created in memory ...") for a throwaway study,
    which would otherwise print on every front; the caller's verbosity is restored afterwards."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(before, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def nondominated_ranks(points: Sequence[Sequence[float]]) -> list[int]:
    """Each point's non-domination rank (0: on the Pareto front; 1: on the front once those are removed;
    ...), by peeling Optuna's front off the points that are left."""
    ranks = [-1] * len(points)
    left = list(range(len(points)))
    rank = 0
    while left:
        for i in pareto_front([points[j] for j in left]):
            ranks[left[i]] = rank
        left = [j for j in left if ranks[j] < 0]
        rank += 1
    return ranks


def crowding_distances(points: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II's crowding distance of each point among `points` (one front): per objective, the gap
    between its two neighbours over the objective's range; the extremes are infinitely far. Larger
    means lonelier, so it is kept first: it widens the front."""
    n = len(points)
    if n <= 2:
        return [math.inf] * n
    distance = [0.0] * n
    for k in range(len(points[0])):
        order = sorted(range(n), key=lambda i: points[i][k])
        low, high = points[order[0]][k], points[order[-1]][k]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high == low:
            continue
        for before, i, after in zip(order, order[1:], order[2:]):
            distance[i] += (points[after][k] - points[before][k]) / (high - low)
    return distance
