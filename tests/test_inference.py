"""The statistics behind a report's claims (analysis/inference.py): the paired bootstrap over dev examples
and seeds, Holm's correction, the verdicts and Spearman's ρ. Data are simulated with fixed seeds: every
check below is deterministic, and each fails when the piece it names is broken."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from petl_search.analysis.inference import (Claim, PairedResult, correction_header, holm, judge, paired_bootstrap,
                                            spearman, why_no_spearman)
from petl_search.core.errors import PETLError
from petl_search.training import metrics


def simulated(rng: np.random.Generator, n: int = 872, seeds: int = 5, *, a_shift: float = 0.0,
              shared_seed_sd: float = 0.3, own_seed_sd: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binary predictions of two methods over `seeds` seeds on n examples: each example has an ease shared
    by every model, each seed a luck shared by both methods (pairing) and one of each method's own; A's
    logit is shifted by `a_shift`. Returns a, b (seeds, n) and the labels."""
    labels = rng.integers(0, 2, n)
    ease = rng.normal(1.5, 2.0, n)
    shared = rng.normal(0, shared_seed_sd, seeds)
    sides = []
    for shift in (a_shift, 0.0):
        own = rng.normal(0, own_seed_sd, seeds)
        logit = ease[None] + shared[:, None] + own[:, None] + shift
        right = rng.random((seeds, n)) < 1 / (1 + np.exp(-logit))
        sides.append(np.where(right, labels, 1 - labels))
    return sides[0], sides[1], labels


def mean_score(score, predictions, labels) -> float:
    return float(np.mean([score(p, labels) for p in predictions]))


def test_identical_predictions_differ_by_zero_with_p_one() -> None:
    a, _, labels = simulated(np.random.default_rng(0))
    result = paired_bootstrap(a, a.copy(), labels, "accuracy", n_boot=2000)
    assert result.observed == 0 and result.interval(0.95) == (0.0, 0.0)
    assert result.p_value == 1.0
    assert (result.n_examples, result.n_seeds, len(result.replicates)) == (872, 5, 2000)


def test_a_clearly_better_side_is_found_with_the_interval_away_from_zero() -> None:
    """About +10 points of accuracy on 872 examples and 5 seeds: p < 0.001 (the smallest p 10,000 replicates
    can give is 2/10,001) and the 95% interval excludes 0 and holds the observed difference."""
    a, b, labels = simulated(np.random.default_rng(1), a_shift=0.9)
    result = paired_bootstrap(a, b, labels, "accuracy")
    expected = mean_score(metrics.accuracy, a, labels) - mean_score(metrics.accuracy, b, labels)
    assert result.observed == pytest.approx(expected, abs=1e-12) and 0.08 < result.observed < 0.12
    low, high = result.interval(0.95)
    assert 0 < low < result.observed < high
    assert result.p_value < 0.001
    swapped = paired_bootstrap(b, a, labels, "accuracy")  # the same evidence, read from the other side
    assert swapped.observed == pytest.approx(-result.observed) and swapped.p_value == result.p_value


def test_the_interval_covers_a_null_difference_about_as_often_as_it_says() -> None:
    """200 simulated pairs of exchangeable methods (true difference 0), 200 replicates each. Nominal 80% and
    95%; measured 0.895 and 0.975 (the two resamplings both count each (seed, example) cell's own noise, so
    the interval leans wide: docs/statistics.md). Dropping either resampling brings 95% down to about 0.84;
    an interval too wide everywhere brings 80% up to near 1."""
    rng = np.random.default_rng(0)
    covered = []
    for k in range(200):
        a, b, labels = simulated(rng, n=200)
        result = paired_bootstrap(a, b, labels, "accuracy", n_boot=200, seed=k)
        covered.append([low <= 0 <= high for low, high in (result.interval(0.80), result.interval(0.95))])
    at80, at95 = np.mean(covered, axis=0)
    assert 0.75 <= at80 <= 0.95
    assert 0.92 <= at95 <= 0.995


def seed_luck_data(rng: np.random.Generator, n: int = 872) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """B's accuracy swings from seed to seed (0.70 .. 0.95: a seed's luck); A is B with 2% of the examples
    B got wrong put right, on every seed: A is exactly 2 points better on each seed. Also returns B without
    the swing (every seed at 0.85) and the labels."""
    labels = rng.integers(0, 2, n)

    def with_accuracy(accuracy: float) -> np.ndarray:
        right = np.zeros(n, dtype=bool)
        right[rng.choice(n, int(accuracy * n), replace=False)] = True
        return np.where(right, labels, 1 - labels)

    def better(b: np.ndarray) -> np.ndarray:
        a = b.copy()
        fixed = rng.choice(np.flatnonzero(b != labels), int(0.02 * n), replace=False)
        a[fixed] = labels[fixed]
        return a

    swinging = np.stack([with_accuracy(acc) for acc in (0.70, 0.95, 0.78, 0.90, 0.85)])
    steady = np.stack([with_accuracy(0.85) for _ in range(5)])
    return np.stack([better(b) for b in swinging]), swinging, np.stack([better(b) for b in steady]), steady, labels


def test_pairing_cancels_a_seed_luck_both_sides_share() -> None:
    """Pairing by seed, the swing of ±12 points between seeds cancels: the interval is as narrow as
    without any swing. Paired by the wrong seed (as an unpaired bootstrap in effect does), the same data
    give the same observed difference and an interval many times wider, which reaches 0."""
    a, b, a_steady, b_steady, labels = seed_luck_data(np.random.default_rng(3))
    paired = paired_bootstrap(a, b, labels, "accuracy", n_boot=4000)
    steady = paired_bootstrap(a_steady, b_steady, labels, "accuracy", n_boot=4000)
    mispaired = paired_bootstrap(a, b[[1, 2, 3, 4, 0]], labels, "accuracy", n_boot=4000)
    width = lambda result: result.interval(0.95)[1] - result.interval(0.95)[0]
    assert paired.observed == pytest.approx(0.02, abs=1e-3) and mispaired.observed == pytest.approx(paired.observed)
    assert paired.interval(0.95)[0] > 0 and paired.p_value < 0.001
    assert width(paired) < 1.5 * width(steady)
    assert width(mispaired) > 5 * width(paired) and mispaired.interval(0.95)[0] < 0


def regression_data(rng: np.random.Generator, n: int = 300) -> tuple[list, list, list]:
    labels = np.round(rng.uniform(0, 5, n), 1)  # STS-B-like: many tied labels
    a = [np.round(labels + rng.normal(0, 0.8, n), 2).tolist() for _ in range(3)]
    b = [np.round(labels + rng.normal(0, 1.6, n), 2).tolist() for _ in range(3)]
    return a, b, labels.tolist()


def test_pearson_works_and_finds_the_better_regressor() -> None:
    a, b, labels = regression_data(np.random.default_rng(4))
    result = paired_bootstrap(a, b, labels, "pearson", n_boot=2000)
    expected = mean_score(metrics.pearson, a, labels) - mean_score(metrics.pearson, b, labels)
    assert result.observed == pytest.approx(expected, abs=1e-12) and result.observed > 0.1
    assert result.interval(0.95)[0] > 0 and result.p_value < 0.001
    assert result.metric == "pearson"


def classes(rng: np.random.Generator, labels: np.ndarray, k: int, right: float) -> list:
    return [np.where(rng.random(len(labels)) < right, labels, rng.integers(0, k, len(labels))).tolist()
            for _ in range(3)]


@pytest.mark.parametrize("score", ["accuracy", "f1", "matthews_correlation", "pearson", "spearmanr", "combined",
                                   "exact_match"])
def test_every_replicate_scores_as_the_task_metric_scores_it(score) -> None:
    """The vectorised scores give, replicate by replicate, what training/metrics.py gives on the same draw
    (called one (replicate, seed) at a time, through a function, which takes the slow path)."""
    rng = np.random.default_rng(5)
    if score in ("pearson", "spearmanr", "combined"):
        a, b, labels = regression_data(rng, n=120)
    elif score == "exact_match":  # generated answers: case and white space do not count, punctuation does
        words = np.array(["positive", "negative", "Positive ", " negative\n", "positive."])
        labels = rng.choice(words[1:4], 120)
        a, b = ([rng.choice(words, 120).tolist() for _ in range(3)] for _ in range(2))
        labels = labels.tolist()
    else:
        k = 3 if score == "matthews_correlation" else 2
        labels = rng.integers(0, k, 120)
        a, b, labels = classes(rng, labels, k, 0.8), classes(rng, labels, k, 0.7), labels.tolist()
    family = next(f for f, names in metrics.SCORE_NAMES.items() if score in names)
    fast = paired_bootstrap(a, b, labels, score, n_boot=60, seed=9)
    slow = paired_bootstrap(a, b, labels, lambda p, r: metrics.compute(family, list(p), list(r))[score], n_boot=60,
                            seed=9)
    assert fast.observed == slow.observed
    assert np.abs(fast.replicates - slow.replicates).max() < 1e-12
    assert np.ptp(fast.replicates) > 0  # the replicates do vary


@pytest.mark.parametrize("score", ["f1", "matthews_correlation", "pearson", "spearmanr", "combined"])
def test_degenerate_draws_score_as_the_task_metric_scores_them(score) -> None:
    """Three examples, two with the same label: many replicates draw only those (constant labels, varied
    predictions), and one seed predicts a constant: where a score is undefined the metric says 0, and so
    must every replicate."""
    labels = [0, 1, 1] if score in ("f1", "matthews_correlation") else [1.0, 4.0, 4.0]
    a = [[1, 1, 1], [0, 1, 0]] if score in ("f1", "matthews_correlation") else [[2.0, 2.0, 2.0], [1.5, 2.0, 3.5]]
    b = [list(reversed(p)) for p in a]
    family = next(f for f, names in metrics.SCORE_NAMES.items() if score in names)
    fast = paired_bootstrap(a, b, labels, score, n_boot=300, seed=2)
    slow = paired_bootstrap(a, b, labels, lambda p, r: metrics.compute(family, list(p), list(r))[score], n_boot=300,
                            seed=2)
    assert np.abs(fast.replicates - slow.replicates).max() < 1e-12


def test_non_inferiority_within_a_margin_and_not_beyond_it() -> None:
    """A is B with 3.05% of the examples B got right made wrong and 2.95% of those it got wrong made right,
    on 20,000 examples and every seed: 0.1 points worse, with a realistic 6% of examples changing. With
    δ = 0.5 points A is non-inferior (p < 0.05); 2 points worse, it is not (p > 0.5)."""
    rng = np.random.default_rng(6)
    n = 20_000
    labels = rng.integers(0, 2, n)

    def worse_by(b: np.ndarray, points: float) -> np.ndarray:
        a = b.copy()
        down = int(0.0305 * n)
        up = down - int(round(points / 100 * n))
        right, wrong = np.flatnonzero(b == labels), np.flatnonzero(b != labels)
        for chosen in (rng.choice(right, down, replace=False), rng.choice(wrong, up, replace=False)):
            a[chosen] = 1 - a[chosen]
        return a

    b = np.stack([np.where(rng.random(n) < 0.85, labels, 1 - labels) for _ in range(5)])
    close = paired_bootstrap(np.stack([worse_by(s, 0.1) for s in b]), b, labels, "accuracy", n_boot=2000,
                             margin=0.005)
    assert close.observed == pytest.approx(-0.001, abs=1e-9)
    assert close.p_noninferior < 0.05
    far = paired_bootstrap(np.stack([worse_by(s, 2.0) for s in b]), b, labels, "accuracy", n_boot=2000,
                           margin=0.005)
    assert far.observed == pytest.approx(-0.02, abs=1e-9) and far.p_noninferior > 0.5


def test_holm_matches_hand_worked_values_and_is_monotone() -> None:
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # sorted: 0.01 x3 = 0.03, 0.5 x2 = 1.0 (capped), 0.5 x1 = 0.5 -> running max 1.0
    assert holm([0.5, 0.5, 0.01]) == pytest.approx([1.0, 1.0, 0.03])
    assert holm([0.2]) == [0.2] and holm([]) == []
    raw = np.random.default_rng(7).uniform(0, 0.2, 30).tolist()
    adjusted = holm(raw)
    order = np.argsort(raw)
    assert all(np.diff(np.array(adjusted)[order]) >= 0)  # the raw order is kept
    assert all(r <= a <= 1 for r, a in zip(raw, adjusted))
    with pytest.raises(PETLError, match=r"every p-value must be in \[0, 1\], but got 1.5"):
        holm([0.1, 1.5])


def fixed_result(replicates, observed: float, margin: float = 0.0) -> PairedResult:
    return PairedResult("accuracy", observed, np.asarray(replicates, dtype=float), margin, 872, 5)


def test_judge_applies_holm_and_reports_each_claim_at_its_step_level() -> None:
    """Three claims whose p-values are known by construction (999 replicates: p = (count + 1) / 1000):
    a strong superiority (p 0.004), a non-inferiority (p 0.02), a weak superiority (p 0.2). Holm, by hand:
    0.004 x 3 = 0.012, 0.02 x 2 = 0.04, 0.2 x 1 = 0.2; steps 1, 2, 3, at levels 1 - 0.05/3, 1 - 0.05/2,
    1 - 0.05."""
    strong = fixed_result(np.r_[-0.01, np.linspace(0.001, 0.05, 998)], 0.03)  # one <= 0: 2 * (1 + 1) / 1000
    close = fixed_result(np.r_[np.full(19, -0.006), np.linspace(-0.004, 0.004, 980)], -0.001,
                         margin=0.005)  # 19 <= -δ: (19 + 1) / 1000
    weak = fixed_result(np.r_[np.full(99, -0.001), np.linspace(0.001, 0.02, 900)], 0.01)  # 2 * (99 + 1) / 1000
    claims = [Claim(question="q1", kind="superiority", margin=0.0, a_label="mam", a_size=0.5, b_label="lora",
                    b_size=0.5, result=strong),
              Claim(question="q2", kind="non-inferiority", margin=0.005, a_label="search", a_size=0.1,
                    b_label="houlsby", b_size=0.1, result=close),
              Claim(question="q3", kind="superiority", margin=0.0, a_label="pa", a_size=None, b_label="prefix",
                    b_size=2.0, result=weak)]
    assert [c.p_value for c in claims] == pytest.approx([0.004, 0.02, 0.2])
    verdicts = judge(claims)
    assert [v.p_adjusted for v in verdicts] == pytest.approx([0.012, 0.04, 0.2])
    assert [v.holds for v in verdicts] == [True, True, False]
    assert [v.step for v in verdicts] == [1, 2, 3] and {v.of for v in verdicts} == {3}
    assert [v.level for v in verdicts] == pytest.approx([1 - 0.05 / 3, 1 - 0.05 / 2, 1 - 0.05])
    assert (verdicts[0].low, verdicts[0].high) == strong.interval(1 - 0.05 / 3)
    assert verdicts[1].low == close.lower_bound(0.975) and verdicts[1].low > -0.005 and verdicts[1].high == math.inf
    assert verdicts[0].sentence.startswith("q1: mam (0.5%) beats lora (0.5%). accuracy difference +0.0300, [")
    assert "Holm step 1 of 3); adjusted p = 0.012: holds." in verdicts[0].sentence
    assert "search (0.1%) is no worse than houlsby (0.1%) by 0.0050 or more" in verdicts[1].sentence
    assert "one-sided bound" in verdicts[1].sentence
    assert verdicts[2].sentence.endswith("adjusted p = 0.2: does not hold.") and "pa beats prefix (2%)" in \
        verdicts[2].sentence
    # a stricter family-wise rate: the second claim no longer holds
    assert [v.holds for v in judge(claims, alpha=0.03)] == [True, False, False]
    assert correction_header(claims) == "3 claims, Holm-corrected at 5%"
    assert correction_header(claims[:1], alpha=0.01) == "1 claim, Holm-corrected at 1%"


def test_a_significant_difference_the_other_way_is_no_superiority() -> None:
    worse = fixed_result(np.linspace(-0.05, -0.01, 999), -0.03)
    verdict, = judge([Claim(question="q", kind="superiority", margin=0.0, a_label="a", a_size=None, b_label="b",
                            b_size=None, result=worse)])
    assert verdict.p_adjusted == pytest.approx(0.002) and not verdict.holds
    assert verdict.sentence.endswith("does not hold: b is the better.")


def test_p_values_follow_their_definitions() -> None:
    result = fixed_result(np.r_[np.full(10, -0.01), np.zeros(5), np.full(84, 0.01)], 0.01, margin=0.005)
    # <= 0: 15, >= 0: 89 of 99 -> 2 * (15 + 1) / 100; <= -0.005: 10 -> (10 + 1) / 100
    assert result.p_value == pytest.approx(0.32) and result.p_noninferior == pytest.approx(0.11)
    assert fixed_result(np.zeros(99), 0.0).p_value == 1.0  # capped
    assert result.interval(0.5) == tuple(np.quantile(result.replicates, [0.25, 0.75]))
    with pytest.raises(PETLError, match=r"level must be in \(0, 1\), but got 95"):
        result.interval(95)


@pytest.mark.parametrize("a,b,labels,message", [
    ([[0, 1]] * 3, [[0, 1]] * 2, [0, 1], r"same number of seeds \(>= 1; a\[i\] and b\[i\] share seed i\), but got "
                                         r"3 and 2"),
    ([], [], [0, 1], r"same number of seeds .*but got 0 and 0"),
    ([[0, 1], [0, 1]], [[0, 1], [0, 1, 1]], [0, 1], r"one prediction per label \(2\), but got b\[1\] with 3"),
    ([[0, 1, 0]], [[0, 1, 0]], [0, 1], r"one prediction per label \(2\), but got a\[0\] with 3"),
    ([[]], [[]], [], "labels must hold at least one dev example"),
])
def test_unpaired_inputs_are_refused_with_the_sizes_named(a, b, labels, message) -> None:
    with pytest.raises(PETLError, match=message):
        paired_bootstrap(a, b, labels, "accuracy")


def test_bad_arguments_and_claims_are_refused() -> None:
    with pytest.raises(PETLError, match="metric must be a function or one of .*'accuracy'.*but got 'acc'"):
        paired_bootstrap([[1]], [[1]], [1], "acc")
    with pytest.raises(PETLError, match="n_boot must be a positive integer, but got 0"):
        paired_bootstrap([[1]], [[1]], [1], "accuracy", n_boot=0)
    with pytest.raises(PETLError, match="margin must be a finite number >= 0"):
        paired_bootstrap([[1]], [[1]], [1], "accuracy", margin=-0.01)
    result = fixed_result(np.zeros(9), 0.0, margin=0.005)
    common = dict(question="q", a_label="a", a_size=None, b_label="b", b_size=None, result=result)
    with pytest.raises(PETLError, match="Claim.kind must be one of"):
        Claim(kind="better", margin=0.0, **common)
    with pytest.raises(PETLError, match="a superiority claim tests difference != 0 and takes margin 0"):
        Claim(kind="superiority", margin=0.005, **common)
    with pytest.raises(PETLError, match=r"the one its bootstrap tested \(0.005\), but got 0.01"):
        Claim(kind="non-inferiority", margin=0.01, **common)
    with pytest.raises(PETLError, match=r"alpha must be in \(0, 1\)"):
        judge([], alpha=5)


def test_spearman_is_scipys_and_says_why_when_undefined() -> None:
    x, y = [0.81, 0.84, 0.80, 0.90, 0.88], [0.80, 0.86, 0.81, 0.89, 0.85]
    # ranks 2 3 1 5 4 and 1 4 2 5 3: Σd² = 4, ρ = 1 - 6 * 4 / (5 * 24) = 0.8
    assert spearman(x, y) == pytest.approx(0.8) and spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert why_no_spearman(x, y) is None
    assert math.isnan(spearman([1, 2], [2, 1])) and why_no_spearman([1, 2], [2, 1]).startswith("fewer than 3 points")
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5])) and why_no_spearman([1, 2, 3], [5, 5, 5]).startswith(
        "y is constant")
    with pytest.raises(PETLError, match="x and y must pair up .*but got 3 and 2"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(PETLError, match="finite numbers only"):
        spearman([1, 2, math.nan], [1, 2, 3])
