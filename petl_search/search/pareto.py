"""Multi-objective arithmetic shared by the search and the analysis: dominance, Pareto fronts and
hypervolume. Every objective is maximised here; callers negate what they minimise.
"""
from __future__ import annotations

from typing import Sequence


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a dominates b when it is no worse in every objective and better in one (all maximised)."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points (every objective maximised), in input order.

    Sort by the first objective (descending, ties by the rest) and sweep: O(n log n) for two objectives,
    which is all a study front needs; more objectives fall back to pairwise checks.
    """
    if not points:
        return []
    if len(points[0]) != 2:
        return [i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)]
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1]))
    front, best_second, previous = [], float("-inf"), None
    for i in order:
        p = tuple(points[i])
        if p[1] > best_second or p == previous:
            front.append(i)
            if p[1] > best_second:
                best_second = p[1]
            previous = p
    return sorted(front)


def hypervolume_2d(points: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by `points` (both coordinates maximised) and bounded below by `reference`."""
    inside = [p for p in points if p[0] > reference[0] and p[1] > reference[1]]
    if not inside:
        return 0.0
    area, top = 0.0, reference[1]
    for x, y in sorted(inside, key=lambda p: (-p[0], -p[1])):  # sweep from the best first coordinate
        if y > top:
            area += (x - reference[0]) * (y - top)
            top = y
    return area
