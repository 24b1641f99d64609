"""The 2-D hypervolume sweep (search/optuna_bridge/pareto.py) against an exact union of boxes counted cell by cell."""
from __future__ import annotations

import itertools
import math
import random

import pytest

from petl_search.search.optuna_bridge.pareto import hypervolume_2d


def union_area(points, reference) -> float:
    """The area of the union of the boxes [reference[0], x] × [reference[1], y], exactly: the distinct
    coordinates cut the plane into cells, and a cell counts when some box covers it (a box covers a cell
    when it reaches the cell's upper corner). Shares nothing with the sweep but the definition."""
    boxes = [(x, y) for x, y in points if x > reference[0] and y > reference[1]]
    xs = sorted({reference[0], *(x for x, _ in boxes)})
    ys = sorted({reference[1], *(y for _, y in boxes)})
    area = 0.0
    for (x0, x1), (y0, y1) in itertools.product(zip(xs, xs[1:]), zip(ys, ys[1:])):
        if any(x >= x1 and y >= y1 for x, y in boxes):
            area += (x1 - x0) * (y1 - y0)
    return area


def random_points(rng: random.Random) -> list[tuple[float, float]]:
    """Points on a coarse grid around the reference, so that duplicates, shared coordinates, dominated
    points and points on or beyond the reference's edges all occur."""
    grid = [i / 4 for i in range(-4, 13)]
    points = [(rng.choice(grid), rng.choice(grid)) for _ in range(rng.randint(0, 15))]
    points += rng.sample(points, min(len(points), rng.randint(0, 3)))  # exact repeats
    rng.shuffle(points)
    return points


@pytest.mark.parametrize("seed", range(200))
def test_hypervolume_equals_the_union_of_boxes(seed: int) -> None:
    rng = random.Random(seed)
    points = random_points(rng)
    reference = (rng.choice([0.0, 0.5, -0.25]), rng.choice([0.0, 0.25, -0.5]))
    assert hypervolume_2d(points, reference) == pytest.approx(union_area(points, reference), abs=1e-12)


@pytest.mark.parametrize("seed", range(50))
def test_hypervolume_equals_the_union_of_boxes_on_real_valued_points(seed: int) -> None:
    rng = random.Random(1000 + seed)
    points = [(rng.uniform(-0.5, 1.0), rng.uniform(-0.5, 1.0)) for _ in range(rng.randint(1, 30))]
    assert hypervolume_2d(points, (0.0, 0.0)) == pytest.approx(union_area(points, (0.0, 0.0)), rel=1e-12)


def test_the_brute_force_itself_on_hand_computed_areas() -> None:
    """The reference is checked too, so that a wrong reference cannot agree with a wrong sweep."""
    assert union_area([(2.0, 1.0), (1.0, 2.0)], (0.0, 0.0)) == 3.0  # 2 + 2 - the shared unit square
    assert union_area([(2.0, 3.0), (1.0, 1.0)], (0.0, 0.0)) == 6.0  # the second box lies in the first
    assert union_area([(-1.0, 3.0)], (0.0, 0.0)) == 0.0


@pytest.mark.parametrize("points, reference, area", [
    ([(3.0, 1.0), (2.0, 2.0), (1.0, 3.0)], (0.0, 0.0), 6.0),  # a staircase: 3 + 2 + 1
    ([(3.0, 1.0), (3.0, 1.0), (2.0, 2.0)], (0.0, 0.0), 5.0),  # a repeated point counts once
    ([(3.0, 1.0), (3.0, 0.5), (2.0, 2.0)], (0.0, 0.0), 5.0),  # same x, lower y: dominated
    ([(2.0, 2.0), (1.0, 1.0), (2.0, 1.0)], (0.0, 0.0), 4.0),  # dominated, including weakly
    ([(2.0, 2.0), (5.0, -1.0), (-1.0, 5.0)], (0.0, 0.0), 4.0),  # beyond the box on either side
    ([(2.0, 2.0), (5.0, 0.0), (0.0, 5.0)], (0.0, 0.0), 4.0),  # on the box's edges: no area
    ([(2.0, 2.0), (math.nan, 5.0), (5.0, math.nan)], (0.0, 0.0), 4.0),  # NaN adds nothing
    ([(0.75, 0.5)], (0.5, 0.25), 0.0625),  # measured from the reference
    ([], (0.0, 0.0), 0.0),
])
def test_hypervolume_hand_computed(points, reference, area) -> None:
    assert hypervolume_2d(points, reference) == pytest.approx(area, abs=1e-15)


def test_hypervolume_ignores_input_order_and_returns_a_float() -> None:
    points = [(0.9, 0.1), (0.5, 0.5), (0.1, 0.9), (0.5, 0.5), (0.3, 0.2)]
    values = {hypervolume_2d(list(p), (0.0, 0.0)) for p in itertools.permutations(points)}
    assert len(values) == 1 and type(values.pop()) is float
