"""Statistics for a report's claims about dev scores: a paired bootstrap over dev examples and seeds, Holm's
correction over the claims of one report, and rank correlations (Spearman's ρ, Kendall's τ, with an interval) between
two rankings of the same points.

    result = paired_bootstrap(a_predictions, b_predictions, dev_labels, "accuracy")  # per seed, paired
    verdicts = judge([Claim(question=..., kind="superiority", margin=0.0, a_label="mam", a_size=0.5,
                            b_label="lora", b_size=0.5, result=result)])

It reads the predictions the trainer records (`dev_predictions`); it never trains or loads a model, and it
imports no torch. What the intervals cover and what they do not: `paired_bootstrap`, docs/statistics.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import stats

from ..core.errors import PETLError
from ..training import metrics as metric_lib

Score = Callable[[Sequence, Sequence], float]
KINDS = ("superiority", "non-inferiority")
# Memory per bootstrap chunk: (replicates in a chunk) x (dev examples) counts; results depend only on the
# inputs and the seed, since the chunk size depends only on the number of examples.
_CHUNK_CELLS = 2_000_000


@dataclass(frozen=True, eq=False)
class PairedResult:
    """A paired bootstrap of mean(metric of A over seeds) - mean(metric of B over seeds) on one dev set."""

    metric: str
    observed: float  # the difference on the dev set as it is, with the seeds as they are
    replicates: np.ndarray  # the difference recomputed on each bootstrap replicate
    margin: float  # the non-inferiority margin δ, in the metric's units (0.005 = half a point of accuracy)
    n_examples: int
    n_seeds: int

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """The two-sided percentile interval: the replicates' (1 - level)/2 and (1 + level)/2 quantiles."""
        tail = (1 - _level(level)) / 2
        low, high = np.quantile(self.replicates, [tail, 1 - tail])
        return float(low), float(high)

    def lower_bound(self, level: float = 0.95) -> float:
        """The one-sided percentile bound: the difference is at least this, at `level` (what a
        non-inferiority claim reads)."""
        return float(np.quantile(self.replicates, 1 - _level(level)))

    @property
    def p_value(self) -> float:
        """Two-sided, for difference != 0: twice the smaller share of replicates on either side of 0, with
        the +1 correction ((count + 1) / (n + 1): a bootstrap never reports p = 0), capped at 1."""
        below, above = self._share(self.replicates <= 0), self._share(self.replicates >= 0)
        return min(1.0, 2 * min(below, above))

    @property
    def p_noninferior(self) -> float:
        """One-sided, for H0: difference <= -margin (A worse than B by δ or more): the share of replicates
        at or below -margin, with the +1 correction. Small: A is at most δ worse."""
        return self._share(self.replicates <= -self.margin)

    def _share(self, hits: np.ndarray) -> float:
        return (int(hits.sum()) + 1) / (len(self.replicates) + 1)


def paired_bootstrap(a: Sequence[Sequence], b: Sequence[Sequence], labels: Sequence, metric: str | Score, *,
                     n_boot: int = 10_000, seed: int = 0, margin: float = 0.0) -> PairedResult:
    """Bootstrap the difference mean_s metric(a[s]) - mean_s metric(b[s]) on one dev set.

    a, b: per-seed prediction lists on the same dev examples (in the same order as `labels`), paired by
    seed: a[i] and b[i] were trained with the same seed. metric: a score name (accuracy, f1,
    matthews_correlation, pearson, spearmanr, combined, or any other score training/metrics.py records), or
    a function (predictions, references) -> float. margin: δ for `p_noninferior`, in the metric's units.

    Each replicate draws N dev examples with replacement (one draw, shared by both sides and every seed)
    and S seed indices with replacement (one draw, shared by both sides: a seed's A and B stay together),
    and recomputes the difference with the task's own metric. Pairing removes what both sides share: the
    examples that are hard for every model and a seed's luck common to both (its data order).

    What it covers: seed noise (which seeds were drawn) and the dev set's sampling noise (which examples
    it holds), so a claim generalises to new seeds and new examples from the same distribution. What it
    does not: how A and B were chosen (a point selected from many, or on this dev set, carries selection
    bias no resampling here undoes; select on the search split and judge with fresh seeds), other data
    sets or tasks, other training budgets or learning rates. Its width is approximate both ways: the two
    resamplings each count every (seed, example) cell's own noise, so where that noise dominates the
    interval leans wide (simulated: 95% nominal covers 97.5%, tests/test_inference.py); with few seeds (5)
    a percentile interval over their draws reaches little past them, so where seed effects of each side
    dominate it leans narrow.
    """
    a_arr, b_arr, label_arr = _paired_arrays(a, b, labels)
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise PETLError(f"n_boot must be a positive integer, but got {n_boot!r}")
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 0):
        raise PETLError(f"margin must be a finite number >= 0 (δ in the metric's units), but got {margin!r}")
    score = _score_function(metric)
    n_seeds, n = a_arr.shape
    observed = float(np.mean([score(p, label_arr) for p in a_arr]) - np.mean([score(p, label_arr) for p in b_arr]))
    per_seed = _batched(metric, [a_arr, b_arr], label_arr) if isinstance(metric, str) and metric in _BATCHED \
        else _looped(score, [a_arr, b_arr], label_arr)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, _CHUNK_CELLS // n))
    replicates = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        examples = rng.integers(0, n, size=(size, n))
        seeds = rng.integers(0, n_seeds, size=(size, n_seeds))
        score_a, score_b = per_seed(examples)  # (size, n_seeds) each: every seed's score on the replicate
        replicates[start:start + size] = np.take_along_axis(score_a - score_b, seeds, axis=1).mean(axis=1)
    name = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
    return PairedResult(name, observed, replicates, float(margin), n, n_seeds)


def _paired_arrays(a: Sequence[Sequence], b: Sequence[Sequence], labels: Sequence) -> tuple[np.ndarray, ...]:
    """a, b as (seeds, examples) arrays and labels as (examples,), after checking they pair up."""
    if len(a) < 1 or len(a) != len(b):
        raise PETLError(f"a and b must hold predictions for the same number of seeds (>= 1; a[i] and b[i] share "
                        f"seed i), but got {len(a)} and {len(b)}")
    if len(labels) < 1:
        raise PETLError("labels must hold at least one dev example, but got none")
    for side, lists in (("a", a), ("b", b)):
        for i, predictions in enumerate(lists):
            if len(predictions) != len(labels):
                raise PETLError(f"every prediction list must hold one prediction per label ({len(labels)}), but "
                                f"got {side}[{i}] with {len(predictions)}")
    return np.asarray(a), np.asarray(b), np.asarray(labels)


def _level(level: float) -> float:
    if not 0 < level < 1:
        raise PETLError(f"level must be in (0, 1), but got {level!r}")
    return level


# --- The metric: the task's own functions, and the same scores on many replicates at once ----------------

def _score_function(metric: str | Score) -> Score:
    """A function (predictions, references) -> the score, through training/metrics.py's `compute`."""
    if callable(metric):
        return metric
    families = {name: family for family, names in reversed(metric_lib.SCORE_NAMES.items()) for name in names}
    if metric not in families:
        raise PETLError(f"metric must be a function or one of {sorted(families)}, but got {metric!r}")
    family = families[metric]
    return lambda predictions, references: metric_lib.compute(family, list(predictions), list(references))[metric]


PerSeed = Callable[[np.ndarray], list[np.ndarray]]  # drawn indices (replicates, n) -> per side (replicates, seeds)


def _looped(score: Score, sides: list[np.ndarray], labels: np.ndarray) -> PerSeed:
    """Every side's every seed's score on each replicate, one metric call at a time (any metric; slow)."""
    def per_seed(examples: np.ndarray) -> list[np.ndarray]:
        return [np.array([[score(p[idx], labels[idx]) for p in side] for idx in examples]) for side in sides]
    return per_seed


def _batched(metric: str, sides: list[np.ndarray], labels: np.ndarray) -> PerSeed:
    """The same scores as `_looped` (a test holds them equal), for every replicate of a chunk at once.

    A replicate is its count vector c (how often each dev example was drawn), and every GLUE score is a
    function of count-weighted sums: a chunk's scores are a few (replicates x examples) @ (examples x seeds)
    products instead of replicates x seeds metric calls."""
    prepare, score = _BATCHED[metric]
    prepared = [prepare(side, labels) for side in sides]

    def per_seed(examples: np.ndarray) -> list[np.ndarray]:
        counts = _counts(examples, len(labels))
        return [score(counts, side) for side in prepared]
    return per_seed


def _counts(examples: np.ndarray, n: int) -> np.ndarray:
    """(replicates, n) draw counts of each example, from (replicates, n) drawn indices."""
    rows = len(examples)
    flat = (examples + n * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


# Each batched score: prepare(predictions (seeds, n), labels (n,)) once per side, then
# score(counts (replicates, n), prepared) -> (replicates, seeds).

def _accuracy_prepare(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    return (p == r).astype(np.float64).T


def _accuracy(c: np.ndarray, correct: np.ndarray) -> np.ndarray:
    return c @ correct / c.shape[1]


def _exact_match_prepare(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Each (example, seed) answer's match, normalised once here as metrics.exact_match normalises it; then
    the replicates' scores are accuracy's."""
    references = [metric_lib.normalise_answer(text) for text in r]
    return np.array([[metric_lib.normalise_answer(text) == ref for text, ref in zip(seed, references)]
                     for seed in p], dtype=np.float64).T


def _f1_prepare(p: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, ...]:
    return (((p == 1) & (r == 1)).astype(np.float64).T, (p == 1).astype(np.float64).T,
            (r == 1).astype(np.float64))


def _f1(c: np.ndarray, prepared: tuple[np.ndarray, ...]) -> np.ndarray:
    """Binary F1 of label 1: 2 tp / (predicted 1s + actual 1s), 0 when both are 0 (as metrics.f1)."""
    true_positive, predicted, actual = prepared
    tp, denominator = c @ true_positive, c @ predicted + (c @ actual)[:, None]
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def _matthews_prepare(p: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, ...]:
    classes = np.union1d(np.unique(p), np.unique(r))
    predicted = (p[:, :, None] == classes).astype(np.float64)  # seeds, examples, classes
    return predicted, (r[:, None] == classes).astype(np.float64), (p == r).astype(np.float64).T


def _matthews(c: np.ndarray, prepared: tuple[np.ndarray, ...]) -> np.ndarray:
    """Multi-class MCC from class counts, as metrics.matthews_correlation (Gorodkin; 0 when undefined)."""
    predicted, actual, correct = prepared
    n = c.shape[1]
    t = c @ actual  # (replicates, classes): how many of each class were drawn
    q = np.einsum("bn,snk->bsk", c, predicted)  # (replicates, seeds, classes): how many predicted
    cov_pp = n * n - np.einsum("bsk,bsk->bs", q, q)
    cov_tt = (n * n - np.einsum("bk,bk->b", t, t))[:, None]
    numerator = (c @ correct) * n - np.einsum("bk,bsk->bs", t, q)
    defined = (cov_pp != 0) & (cov_tt != 0)
    return np.divide(numerator, np.sqrt(cov_pp * cov_tt), out=np.zeros_like(numerator), where=defined)


def _pearson_prepare(p: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values centred on their dev means: the count-weighted sums then lose no digits to cancellation."""
    x, y = p.astype(np.float64), r.astype(np.float64)
    return x - x.mean(axis=1, keepdims=True), y - y.mean()


def _pearson(c: np.ndarray, prepared: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    x, y = prepared
    n = c.shape[1]
    sx, sy = c @ x.T, (c @ y)[:, None]
    sxx, syy, sxy = c @ (x * x).T, (c @ (y * y))[:, None], c @ (x * y).T
    cov, vx, vy = sxy - sx * sy / n, sxx - sx * sx / n, syy - sy * sy / n
    # metrics.pearson gives 0 when a side is constant; rounding leaves a constant side's variance at about
    # 1e-16 of its sum of squares here rather than exactly 0
    flat = (vx <= 1e-10 * sxx) | (vy <= 1e-10 * syy)
    return np.where(flat, 0.0, cov / np.sqrt(np.where(flat, 1.0, vx * vy)))


@dataclass(frozen=True)
class _Ties:
    """How a fixed set of values ranks under any resampling: their sort order and their groups of ties."""

    order: np.ndarray  # argsort of the values
    starts: np.ndarray  # where each group of equal values begins, in sorted order
    group: np.ndarray  # each example's group

    @classmethod
    def of(cls, values: np.ndarray) -> "_Ties":
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        first = np.r_[True, ordered[1:] != ordered[:-1]]
        group = np.empty(len(values), dtype=np.int64)
        group[order] = np.cumsum(first) - 1
        return cls(order, np.flatnonzero(first), group)

    def centred_ranks(self, c: np.ndarray) -> np.ndarray:
        """Each example's average rank within each replicate (ties share their mean rank, as
        metrics.spearman), less the mean rank (n + 1) / 2, which every replicate of n draws has: exact."""
        drawn = np.add.reduceat(c[:, self.order], self.starts, axis=1)  # (replicates, groups): draws per value
        average = np.cumsum(drawn, axis=1) - drawn + (drawn + 1) / 2
        return average[:, self.group] - (c.shape[1] + 1) / 2


def _spearman_prepare(p: np.ndarray, r: np.ndarray) -> tuple[list[_Ties], _Ties]:
    return [_Ties.of(seed) for seed in p], _Ties.of(r)


def _spearman(c: np.ndarray, prepared: tuple[list[_Ties], _Ties]) -> np.ndarray:
    """Pearson's r of the ranks within each replicate; the ranks are centred exactly, so the sums need
    no correction and a constant side's variance is exactly 0 (metrics.pearson's 0)."""
    seeds, labels = prepared
    ry = labels.centred_ranks(c)
    weighted = c * ry
    vy = np.einsum("bn,bn->b", weighted, ry)
    out = np.zeros((len(c), len(seeds)))
    for s, ties in enumerate(seeds):
        rx = ties.centred_ranks(c)
        cov, vx = np.einsum("bn,bn->b", weighted, rx), np.einsum("bn,bn->b", c * rx, rx)
        defined = (vx > 0) & (vy > 0)
        out[:, s] = np.divide(cov, np.sqrt(vx * vy), out=np.zeros_like(cov), where=defined)
    return out


def _combined(c: np.ndarray, prepared: tuple) -> np.ndarray:
    """STS-B's combined score, as metrics.METRICS["pearson_spearman"] defines it."""
    return (_pearson(c, prepared[0]) + _spearman(c, prepared[1])) / 2


_BATCHED: dict[str, tuple[Callable, Callable]] = {
    "accuracy": (_accuracy_prepare, _accuracy),
    "exact_match": (_exact_match_prepare, _accuracy),
    "f1": (_f1_prepare, _f1),
    "matthews_correlation": (_matthews_prepare, _matthews),
    "pearson": (_pearson_prepare, _pearson),
    "spearmanr": (_spearman_prepare, _spearman),
    "combined": (lambda p, r: (_pearson_prepare(p, r), _spearman_prepare(p, r)), _combined),
}


# --- Several claims in one report: Holm ---------------------------------------------------------------

def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    Sort the m p-values ascending, p(1) <= ... <= p(m) (ties keep their input order). The j-th smallest's
    adjusted value is
        max over i <= j of min(1, (m - i + 1) * p(i)),
    the step-down: p(1) is tested at alpha / m, p(2) at alpha / (m - 1), ..., stopping at the first that
    fails; adjusted <= alpha is the same decision, and the running max keeps the adjusted values in the raw
    values' order. Controls the chance of any false claim among the m at alpha, whatever their dependence.
    """
    values = [float(p) for p in pvalues]
    for p in values:
        if not 0 <= p <= 1:
            raise PETLError(f"every p-value must be in [0, 1], but got {p!r}")
    m = len(values)
    adjusted = [0.0] * m
    running = 0.0
    for step, i in enumerate(sorted(range(m), key=lambda i: values[i]), start=1):
        running = max(running, min(1.0, (m - step + 1) * values[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Claim:
    """One claim a report makes about two arms on the dev set, with the bootstrap that tests it.

    superiority: A's score differs from B's, in A's favour (two-sided test of difference != 0, margin 0);
    non-inferiority: A is no worse than B by `margin` or more (one-sided test of H0: difference <= -margin).
    Sizes: stored Δh as % of the backbone (None when not a Δh, e.g. full fine-tuning)."""

    question: str
    kind: str
    margin: float
    a_label: str
    a_size: float | None
    b_label: str
    b_size: float | None
    result: PairedResult

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise PETLError(f"Claim.kind must be one of {list(KINDS)}, but got {self.kind!r}")
        if self.kind == "superiority" and self.margin != 0:
            raise PETLError(f"a superiority claim tests difference != 0 and takes margin 0, but got {self.margin!r}")
        if self.kind == "non-inferiority" and (self.margin <= 0 or self.margin != self.result.margin):
            raise PETLError(f"a non-inferiority claim's margin must be > 0 and the one its bootstrap tested "
                            f"({self.result.margin!r}), but got {self.margin!r}")

    @property
    def p_value(self) -> float:
        return self.result.p_value if self.kind == "superiority" else self.result.p_noninferior


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict within its report (`judge`), and the sentence a report prints for it."""

    claim: Claim
    p_adjusted: float  # Holm's, over the claims judged together
    alpha: float  # the family-wise error rate they were judged at
    holds: bool
    step: int  # where Holm tested it: 1 for the smallest p-value, ..., m
    of: int  # how many claims were judged together (m)
    level: float  # 1 - alpha / (m - step + 1): the level Holm tested it at
    low: float  # the interval at `level`: two-sided for superiority, [low, inf) for non-inferiority
    high: float

    @property
    def sentence(self) -> str:
        c, r = self.claim, self.claim.result
        a, b = _arm(c.a_label, c.a_size), _arm(c.b_label, c.b_size)
        if c.kind == "superiority":
            said = f"{a} beats {b}"
            where = f"[{self.low:+.4f}, {self.high:+.4f}] ({self.level:.2%} interval"
        else:
            said = f"{a} is no worse than {b} by {c.margin:.4f} or more"
            where = f"at least {self.low:+.4f} ({self.level:.2%} one-sided bound"
        verdict = "holds" if self.holds else "does not hold"
        if c.kind == "superiority" and not self.holds and self.p_adjusted <= self.alpha and r.observed < 0:
            verdict += f": {c.b_label} is the better"
        return (f"{c.question}: {said}. {r.metric} difference {r.observed:+.4f}, {where}, Holm step {self.step} "
                f"of {self.of}); adjusted p = {self.p_adjusted:.4g}: {verdict}.")


def _arm(label: str, size: float | None) -> str:
    return label if size is None else f"{label} ({size:.3g}%)"


def judge(claims: Sequence[Claim], alpha: float = 0.05) -> list[Verdict]:
    """Each claim's verdict, in the input order, with Holm's correction over all of them: a claim holds
    when its adjusted p-value is at most alpha (and, for superiority, A is the better side)."""
    if not 0 < alpha < 1:
        raise PETLError(f"alpha must be in (0, 1), but got {alpha!r}")
    adjusted = holm([c.p_value for c in claims])
    m = len(claims)
    steps = {i: step for step, i in enumerate(sorted(range(m), key=lambda i: claims[i].p_value), start=1)}
    verdicts = []
    for i, claim in enumerate(claims):
        level = 1 - alpha / (m - steps[i] + 1)
        if claim.kind == "superiority":
            low, high = claim.result.interval(level)
            holds = adjusted[i] <= alpha and claim.result.observed > 0
        else:
            low, high = claim.result.lower_bound(level), math.inf
            holds = adjusted[i] <= alpha
        verdicts.append(Verdict(claim, adjusted[i], alpha, holds, steps[i], m, level, low, high))
    return verdicts


def correction_header(claims: Sequence, alpha: float = 0.05) -> str:
    """What a report's header says about its tests, e.g. '3 claims, Holm-corrected at 5%'."""
    m = len(claims)
    return f"{m} claim{'' if m == 1 else 's'}, Holm-corrected at {100 * alpha:g}%"


# --- Does the search split rank points as dev does? --------------------------------------------------

def why_no_spearman(x: Sequence[float], y: Sequence[float]) -> str | None:
    """Why Spearman's ρ of x and y is undefined, in words; None when it is defined."""
    if len(x) != len(y):
        raise PETLError(f"x and y must pair up (one value each per point), but got {len(x)} and {len(y)}")
    if not all(math.isfinite(v) for v in (*x, *y)):
        raise PETLError("x and y must hold finite numbers only (drop failed points first), but got a NaN or inf")
    if len(x) < 3:
        return f"fewer than 3 points ({len(x)}): no rank correlation to speak of"
    for name, values in (("x", x), ("y", y)):
        if len(set(values)) == 1:
            return f"{name} is constant ({values[0]!r}): nothing to rank"
    return None


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ of x and y (SciPy's spearmanr; ties share their average rank), e.g. the search-split
    and dev scores of the same points; NaN when `why_no_spearman` gives a reason."""
    if why_no_spearman(x, y):
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's τ-b of x and y (SciPy's kendalltau: ties count as τ-b counts them); NaN when `why_no_spearman`
    gives a reason."""
    if why_no_spearman(x, y):
        return math.nan
    return float(stats.kendalltau(x, y).statistic)


# The variance of Fisher's z = atanh(r) for a rank correlation over n points, and the fewest points it holds for:
# Spearman's ρ (Bonett & Wright 2000, Psychometrika 65: (1 + ρ²/2) / (n - 3)) and Kendall's τ (Fieller, Hartley &
# Pearson 1957, Biometrika 44: 0.437 / (n - 4)).
_RANK_Z_VARIANCE = {"spearman": (lambda r, n: (1 + r * r / 2) / (n - 3), 4),
                    "kendall": (lambda r, n: 0.437 / (n - 4), 5)}


def rank_interval(value: float, n: int, *, statistic: str = "spearman",
                  level: float = 0.95) -> tuple[float, float]:
    """An approximate two-sided interval for a rank correlation `value` (Spearman's ρ or Kendall's τ) over n
    points: Fisher's z, tanh(atanh(value) ± q·se), with the variances above. It covers which points were drawn,
    not the noise in each point's scores. NaN (no interval) for NaN, for ±1 (z is unbounded there: the interval
    would claim certainty) and below the fewest points its variance holds for (ρ: 4, τ: 5)."""
    if statistic not in _RANK_Z_VARIANCE:
        raise PETLError(f"statistic must be one of {sorted(_RANK_Z_VARIANCE)}, but got {statistic!r}")
    variance, fewest = _RANK_Z_VARIANCE[statistic]
    if math.isnan(value) or abs(value) >= 1 or n < fewest:
        return math.nan, math.nan
    half = float(stats.norm.ppf(1 - (1 - _level(level)) / 2)) * math.sqrt(variance(value, n))
    z = math.atanh(value)
    return math.tanh(z - half), math.tanh(z + half)
