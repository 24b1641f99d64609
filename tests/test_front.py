"""Pareto fronts and hypervolume against brute force, and the record helpers the CLI prints from."""
from __future__ import annotations

import itertools
from dataclasses import replace
import logging
import math
import random

import optuna
import pytest

from petl_search.analysis.front import best_baseline, claims, front, front_table, methods, study_hypervolume
from petl_search.search.optuna_bridge.pareto import dominates, hypervolume_2d, pareto_front
from petl_search.search.optuna_bridge.records import TrialRecord, counts


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


def record(number, metric, stored, kind="search", state="COMPLETE", label=None, **extra) -> TrialRecord:
    return TrialRecord(number=number, state=state, kind=kind, label=label or f"p{number}", metric=metric,
                       stored_params=stored, stored_fraction=stored / 1000, extra=extra)


def test_fronts_judge_points_over_their_seeds() -> None:
    """A baseline is one point at its mean over seeds (not its best seed); a search point is its trial plus
    its reseeds; unscored trials and rejections are not points."""
    records = [record(0, 0.80, 100, kind="baseline"), record(1, 0.84, 200, kind="baseline", label="p0"),
               record(2, 0.83, 150), record(3, 0.79, 50), record(4, 0.90, 900, kind="over_budget"),
               record(5, None, 10, state="FAIL"), record(6, 0.81, 160),
               record(7, 0.70, 150, kind="reseed", reseed_of=2)]
    points = {m.number: m for m in methods(records, "accuracy")}
    assert sorted(points) == [0, 2, 3, 6]  # trials 0 and 1 are one baseline (same label): its first seed's number
    assert points[0].scores == (0.80, 0.84) and points[0].mean == pytest.approx(0.82)
    assert points[2].scores == (0.83, 0.70) and points[2].mean == pytest.approx(0.765)
    assert [m.number for m in front(points.values())] == [3, 0]  # #2's reseed pulled it off the front
    assert [m.number for m in front(methods(records[:-1], "accuracy"))] == [3, 0, 2]  # on one seed it was on it
    assert best_baseline(points.values()).number == 0


def test_a_claim_is_judged_on_dev_over_seeds_not_where_the_point_was_selected() -> None:
    """#1 tops the search split (0.95) but scores 0.70 on dev: it is on the front (selected there) and its
    claim against the baseline is judged on dev, where it loses; one seed never makes a claim."""
    def held(number, metric, stored, dev, kind="search", **extra):
        return replace(record(number, metric, stored, kind=kind, **extra), evaluated_on="search split",
                       dev_scores={"accuracy": dev})

    records = [held(0, 0.80, 100, 0.81, kind="baseline"), held(1, 0.95, 90, 0.70),
               held(2, 0.94, 90, 0.72, kind="reseed", reseed_of=1), held(3, 0.79, 50, 0.83)]
    points = methods(records, "accuracy")
    reference = best_baseline(points)
    found = {c.point.number: c for c in claims(points, reference)}
    assert set(found) == {1, 3}
    assert found[1].comparison.a.scores == (0.70, 0.72) and not found[1].holds  # below on dev
    assert found[3].comparison.difference > 0 and not found[3].holds  # above, but on one seed
    assert study_hypervolume(records, budget_fraction=1.0, on_dev=True, score="accuracy") == pytest.approx(
        hypervolume_2d([(0.70, 0.91), (0.83, 0.95)], (0.0, 0.0)))


def test_points_at_or_below_a_constant_answer_are_flagged() -> None:
    references = {"search split": {"accuracy": 0.51}, "dev": {"accuracy": 0.509}}
    records = [replace(record(0, 0.51, 10), evaluated_on="search split", dev_scores={"accuracy": 0.49}),
               replace(record(1, 0.80, 20), evaluated_on="search split", dev_scores={"accuracy": 0.79})]
    flagged = {m.number: m.flags for m in methods(records, "accuracy", references)}
    assert len(flagged[0]) == 2 and "constant answer (0.5100) on the search split" in flagged[0][0]
    assert flagged[1] == ()
    assert "[at or below a constant answer" in front_table(methods(records, "accuracy", references), "accuracy")


def test_counts_leave_out_interrupted_trials() -> None:
    records = [record(0, 0.8, 1), record(1, None, 1, state="PRUNED"), record(2, None, 1, state="FAIL"),
               record(3, None, 1, state="FAIL", interrupted=True), record(4, 0.1, 9, kind="over_budget"),
               record(5, None, 1, state="RUNNING"), record(6, 0.8, 1, kind="reseed"),
               record(7, None, 1, state="INTERRUPTED"), record(8, None, 1, state="WAITING"),
               record(9, None, 1, state="FAIL", kind="dropped"), record(10, None, 1, state="FAIL", kind="duplicate"),
               record(11, None, 1, state="INTERRUPTED", kind="duplicate")]  # killed while being proposed
    # a reseed is another seed of #0, not a trial; a proposal killed half-made is interrupted, as `status`
    # lists it among the interrupted ones
    assert counts(records) == {"completed": 1, "pruned": 1, "failed": 1, "running": 1, "interrupted": 2,
                               "queued": 1, "over_budget": 1, "misfit": 0, "duplicate": 1, "dropped": 1, "reseed": 1,
                               "empty": 0, "confirm": 0}


@pytest.mark.parametrize("seed", range(10))
def test_nondominated_ranks_peel_fronts_as_brute_force_does(seed) -> None:
    from petl_search.search.optuna_bridge.pareto import nondominated_ranks

    rng = random.Random(seed)
    points = [(rng.randint(0, 6), rng.randint(0, 6)) for _ in range(rng.randint(1, 40))]
    expected, left, rank = [None] * len(points), list(range(len(points))), 0
    while left:
        layer = [i for i in left if not any(brute_dominates(points[j], points[i]) for j in left if j != i)]
        for i in layer:
            expected[i] = rank
        left, rank = [i for i in left if i not in layer], rank + 1
    assert nondominated_ranks(points) == expected


def test_crowding_distance_by_hand() -> None:
    from petl_search.search.optuna_bridge.pareto import crowding_distances

    front = [(0.0, 4.0), (1.0, 3.0), (3.0, 1.0), (4.0, 0.0)]
    # interior points: (gap in x + gap in y) / range 4: (3 - 0)/4 + (4 - 1)/4 = 1.5 for both
    assert crowding_distances(front) == [math.inf, 1.5, 1.5, math.inf]
    assert crowding_distances([(1.0, 1.0), (2.0, 0.0)]) == [math.inf, math.inf]


def test_every_recorded_score_is_shown_beside_the_selected_one() -> None:
    """MRPC selects on F1 and records accuracy too: both are averaged over seeds, on both sets."""
    runs = [replace(record(0, 0.80, 10, kind="baseline", label="b"), evaluated_on="search split",
                    scores={"f1": 0.80, "accuracy": 0.70}, dev_scores={"f1": 0.78, "accuracy": 0.68}),
            replace(record(1, 0.84, 10, kind="baseline", label="b"), evaluated_on="search split",
                    scores={"f1": 0.84, "accuracy": 0.74}, dev_scores={"f1": 0.80, "accuracy": 0.70})]
    (point,) = methods(runs, "f1")
    assert point.all_scores["accuracy"] == pytest.approx((0.72, 0.69))
    assert "accuracy 0.7200 (dev 0.6900)" in front_table([point], "f1")


def test_each_point_shows_the_learning_rate_it_trained_at() -> None:
    """To 3 significant digits; '-' for a record read without its study's fixed rate (stored before trials
    recorded theirs), which `fill_learning_rates` gives it."""
    from petl_search.analysis.front import lr_text
    from petl_search.search.optuna_bridge.records import fill_learning_rates

    runs = [replace(record(0, 0.80, 10), learning_rate=3.16227766e-4), record(1, 0.85, 20)]
    table = front_table(front(methods(runs, "accuracy")), "accuracy").splitlines()
    assert table[0].split()[-3:] == ["lr", "design", "point"]
    assert "  3.16e-04  " in table[1] and "  -  " in table[2]
    filled = fill_learning_rates(runs, 1e-3)
    assert [r.learning_rate for r in filled] == [3.16227766e-4, 1e-3]
    assert "  1.00e-03  " in front_table(front(methods(filled, "accuracy")), "accuracy").splitlines()[2]
    assert (lr_text(0.01), lr_text(None)) == ("1.00e-02", "-")
