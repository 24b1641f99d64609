"""Multi-objective arithmetic shared by the search and the analysis: dominance, Pareto fronts and
hypervolume. Every objective is maximised here; callers negate what they minimise.

The front is Optuna's own (the code that ranks a study's trials), not a copy of it; the 2-D hypervolume is
a short sweep written here, as Optuna 5 keeps its hypervolume in the private `optuna._hypervolume`. This
module must not keep state between calls.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Sequence

import optuna


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
    """Area dominated by `points` (both coordinates maximised) and bounded below by `reference`: the area of
    the union of the boxes [reference[0], x] × [reference[1], y]. Points not strictly above the reference
    in both coordinates (and points with NaN) add nothing; dominated and repeated points add nothing more.

    A sweep from the largest x down: each point higher than every point met before it adds the strip
    between the two heights, as wide as the point's own x (measured from the reference):

        y2 ┤ ┌───┐              the sweep meets (x1, y1) first and adds x1 · y1;
        y1 ┤ │   └──────┐       then (x2, y2), higher: x2 · (y2 - y1);
           └─┴───┴──────┴─      a point no higher than one met before adds nothing
                 x2     x1
    """
    inside = sorted(((x, y) for x, y in points if x > reference[0] and y > reference[1]), reverse=True)
    area, highest = 0.0, reference[1]
    for x, y in inside:
        if y > highest:
            area += (x - reference[0]) * (y - highest)
            highest = y
    return float(area)


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
