"""Pareto fronts and hypervolume against brute force, and the record helpers the CLI prints from."""
from __future__ import annotations

import itertools
import logging
import random

import optuna
import pytest

from petl_search.analysis.front import best_baseline, front_records, matches_or_beats
from petl_search.search.pareto import dominates, hypervolume_2d, pareto_front
from petl_search.search.records import TrialRecord, counts


def brute_dominates(q, p) -> bool:
    """The reference's own dominance, written out without the code under test: q is >= p in every
    objective and > in at least one (all maximised)."""
    no_worse, better = True, False
    for k in range(len(p)):
        if q[k] < p[k]:
            no_worse = False
        elif q[k] > p[k]:
            better = True
    return no_worse and better


def brute_front(points):
    return [i for i, p in enumerate(points) if not any(brute_dominates(q, p) for j, q in enumerate(points) if j != i)]


@pytest.mark.parametrize("a,b,expected", [
    ((1, 1), (1, 1), False),  # equal points: neither dominates
    ((2, 1), (1, 1), True),  # better in the first, equal in the second
    ((1, 2), (1, 1), True),  # better in the second, equal in the first
    ((1, 1), (2, 1), False),  # worse in one
    ((2, 0), (0, 2), False),  # a trade-off: neither dominates
    ((0, 2), (2, 0), False),
    ((3, 3), (1, 2), True),  # better in both
    ((1.0, -5.0), (1.0, -6.0), True),  # fewer parameters (negated) at the same metric
    ((1, 1, 1), (1, 1, 1), False),
    ((1, 1, 2), (1, 1, 1), True),  # three objectives, better in the last only
    ((2, 2, 0), (1, 1, 1), False),  # better in two, worse in the third
    ((2, 2, 1), (1, 1, 1), True),
    ((5,), (4,), True),  # one objective: plain comparison
    ((4,), (4,), False),
])
def test_dominates_on_hand_made_cases(a, b, expected) -> None:
    assert dominates(a, b) is expected
    assert brute_dominates(a, b) is expected  # the reference agrees, so it checks the front honestly


@pytest.mark.parametrize("seed", range(30))
def test_pareto_front_equals_brute_force(seed) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 60)
    grid = rng.random() < 0.5  # coarse values: many ties and exact duplicates
    points = [(rng.randint(0, 5), rng.randint(0, 5)) if grid else (rng.random(), rng.random()) for _ in range(n)]
    assert pareto_front(points) == brute_front(points)


def test_pareto_front_three_objectives_and_edge_cases() -> None:
    rng = random.Random(0)
    points = [(rng.randint(0, 3), rng.randint(0, 3), rng.randint(0, 3)) for _ in range(40)]
    assert pareto_front(points) == brute_front(points)
    assert pareto_front([]) == []
    assert pareto_front([(1, 1), (1, 1)]) == [0, 1]  # equal points do not dominate each other
    assert pareto_front([(1, 2), (1, 1)]) == [0]  # equal in one objective, better in the other
    assert pareto_front([(2, 0), (1, 1), (2, 0), (1, 0), (1, 0)]) == [0, 1, 2]  # both copies on, both off
    assert pareto_front([(3,), (2,), (3,)]) == [0, 2]  # one objective: every copy of the best


def test_pareto_front_names_a_nan_point() -> None:
    with pytest.raises(ValueError, match=r"points\[1\] must not contain NaN, but got \(0.5, nan\)"):
        pareto_front([(1.0, 1.0), (0.5, float("nan"))])


def test_pareto_front_study_logs_nothing_and_restores_the_verbosity() -> None:
    """The front is a throwaway Optuna study: its "A new study created" INFO line would print on every
    front. Listened to on Optuna's own logger, at INFO, as its handler does not propagate to pytest's."""
    messages = []
    listener = logging.Handler()
    listener.emit = lambda record: messages.append(record.getMessage())
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    logging.getLogger("optuna").addHandler(listener)
    try:
        assert pareto_front([(1.0, 1.0), (0.0, 2.0)]) == [0, 1]
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
    finally:
        logging.getLogger("optuna").removeHandler(listener)
        optuna.logging.set_verbosity(before)
    assert messages == []


def brute_hypervolume(points, reference, steps=400):
    """Midpoint-grid estimate of the dominated area (exact for points on the grid's cell centres)."""
    xs = [reference[0] + (i + 0.5) / steps for i in range(steps)]
    ys = [reference[1] + (j + 0.5) / steps for j in range(steps)]
    inside = sum(1 for x, y in itertools.product(xs, ys) if any(px >= x and py >= y for px, py in points))
    return inside / steps**2


@pytest.mark.parametrize("seed", range(5))
def test_hypervolume_matches_a_grid_count(seed) -> None:
    rng = random.Random(seed)
    points = [(rng.randint(1, 20) / 20, rng.randint(1, 20) / 20) for _ in range(rng.randint(1, 12))]
    assert hypervolume_2d(points, (0.0, 0.0)) == pytest.approx(brute_hypervolume(points, (0.0, 0.0)), abs=1e-9)


def test_hypervolume_simple_values() -> None:
    assert hypervolume_2d([(1.0, 1.0)], (0.0, 0.0)) == 1.0
    assert hypervolume_2d([(1.0, 0.5), (0.5, 1.0)], (0.0, 0.0)) == pytest.approx(0.75)
    assert hypervolume_2d([(0.5, 0.5), (1.0, 1.0)], (0.0, 0.0)) == 1.0  # a dominated point adds nothing
    assert hypervolume_2d([(-1.0, 2.0)], (0.0, 0.0)) == 0.0  # outside the reference box
    assert hypervolume_2d([(-1.0, 2.0), (1.0, 1.0)], (0.0, 0.0)) == 1.0  # ... and adds nothing beside others
    assert hypervolume_2d([(2.0, -1.0), (1.0, 1.0)], (0.0, 0.0)) == 1.0  # below in the second coordinate too
    assert hypervolume_2d([(0.0, 2.0), (2.0, 0.0)], (0.0, 0.0)) == 0.0  # on the box's edge: no area
    assert hypervolume_2d([], (0.0, 0.0)) == 0.0
    assert hypervolume_2d([(3.0, 4.0)], (1.0, 2.0)) == 4.0  # measured from the reference, not the origin


def record(number, metric, stored, kind="search", state="COMPLETE", **extra) -> TrialRecord:
    return TrialRecord(number=number, state=state, kind=kind, label=f"p{number}", metric=metric,
                       stored_params=stored, stored_fraction=stored / 1000, extra=extra)


def test_front_records_best_baseline_and_wins() -> None:
    records = [record(0, 0.80, 100, kind="baseline"), record(1, 0.82, 200, kind="baseline"),
               record(2, 0.83, 150), record(3, 0.79, 50), record(4, 0.90, 900, kind="over_budget"),
               record(5, None, 10, state="FAIL"), record(6, 0.81, 160)]
    assert [r.number for r in front_records(records)] == [3, 0, 2]
    assert [r.number for r in front_records(records, kinds=("search",))] == [3, 2]
    assert best_baseline(records).number == 1
    assert [r.number for r in matches_or_beats(records, best_baseline(records))] == [2]


def test_counts_leave_out_interrupted_trials() -> None:
    records = [record(0, 0.8, 1), record(1, None, 1, state="PRUNED"), record(2, None, 1, state="FAIL"),
               record(3, None, 1, state="FAIL", interrupted=True), record(4, 0.1, 9, kind="over_budget"),
               record(5, None, 1, state="RUNNING"), record(6, 0.8, 1, kind="reseed"),
               record(7, None, 1, state="INTERRUPTED"), record(8, None, 1, state="WAITING"),
               record(9, None, 1, state="FAIL", kind="dropped"), record(10, None, 1, state="FAIL", kind="duplicate")]
    assert counts(records) == {"completed": 1, "pruned": 1, "failed": 1, "running": 1, "interrupted": 1,
                               "queued": 1, "over_budget": 1, "duplicate": 1, "dropped": 1,
                               "reseed": 1}  # a reseed is another seed of #0, not a trial
