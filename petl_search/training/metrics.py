"""Task metrics that run offline and agree with the reference implementations.

GLUE's metrics (accuracy, binary F1, Matthews correlation, Pearson, Spearman) are a few lines of
numpy each and are written here; tests compare them with scikit-learn and SciPy. Exact match (a causal
LM's generated answer against the reference answer) compares answers as `normalise_answer` writes them: white
space collapsed and trimmed, lower case; nothing else (punctuation and articles count, unlike SQuAD's script).
BLEU and ROUGE are delegated to sacrebleu and rouge-score themselves: they *are* the references papers report, and a
re-implementation could only drift from them (tokenisation, smoothing, stemming). Scores are in
[0, 1] for classification/correlation metrics and in [0, 100] for BLEU and ROUGE, as their tools print.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..core.errors import PETLError


def accuracy(predictions: Sequence, references: Sequence) -> float:
    p, r = _pair(predictions, references)
    return float((p == r).mean())


def f1(predictions: Sequence, references: Sequence) -> float:
    """Binary F1 of the positive class (label 1), as GLUE reports for MRPC and QQP."""
    p, r = _pair(predictions, references)
    tp = float(((p == 1) & (r == 1)).sum())
    denominator = float((p == 1).sum() + (r == 1).sum())
    return 2 * tp / denominator if denominator else 0.0


def matthews_correlation(predictions: Sequence, references: Sequence) -> float:
    """Multi-class MCC from the confusion matrix (Gorodkin 2004); 0 when undefined, as scikit-learn."""
    p, r = _pair(predictions, references)
    classes = np.union1d(p, r)
    confusion = np.array([[np.sum((r == a) & (p == b)) for b in classes] for a in classes], dtype=np.float64)
    t, q = confusion.sum(1), confusion.sum(0)  # true and predicted counts per class
    n, correct = confusion.sum(), np.trace(confusion)
    cov_pp, cov_tt = n * n - q @ q, n * n - t @ t
    if cov_pp == 0 or cov_tt == 0:
        return 0.0
    return float((correct * n - t @ q) / np.sqrt(cov_pp * cov_tt))


def pearson(predictions: Sequence, references: Sequence) -> float:
    p, r = _pair(predictions, references, dtype=np.float64)
    p, r = p - p.mean(), r - r.mean()
    denominator = np.sqrt((p @ p) * (r @ r))
    return float(p @ r / denominator) if denominator else 0.0


def spearman(predictions: Sequence, references: Sequence) -> float:
    """Pearson correlation of the ranks, ties sharing their average rank."""
    p, r = _pair(predictions, references, dtype=np.float64)
    return pearson(_ranks(p), _ranks(r))


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def normalise_answer(text: object) -> str:
    """An answer as exact match compares it: every run of white space made one space, trimmed, lower-cased
    ("  Positive\n" and "positive" are one answer; "positive." is another)."""
    return " ".join(str(text).split()).lower()


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """The share of predictions equal to their reference once both are normalised (`normalise_answer`)."""
    _pair_lengths(predictions, references)
    if len(predictions) == 0:
        raise PETLError("a metric needs at least one prediction, but got none")
    return float(np.mean([normalise_answer(p) == normalise_answer(r) for p, r in zip(predictions, references)]))


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU with sacrebleu's defaults (13a tokenisation, exponential smoothing), one reference."""
    import sacrebleu

    _pair_lengths(predictions, references)
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE F-measures (×100) with Porter stemming; rougeLsum splits summaries at newlines."""
    from rouge_score import rouge_scorer

    _pair_lengths(predictions, references)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, reference in zip(predictions, references):
        scores = scorer.score(reference, prediction)
        for name in ROUGE_TYPES:
            totals[name] += scores[name].fmeasure
    return {name: 100 * total / max(len(predictions), 1) for name, total in totals.items()}


def _pair_lengths(predictions: Sequence, references: Sequence) -> None:
    if len(predictions) != len(references):
        raise PETLError(f"predictions and references must have the same length, but got "
                        f"{len(predictions)} and {len(references)}")


def _pair(predictions: Sequence, references: Sequence, dtype=None) -> tuple[np.ndarray, np.ndarray]:
    _pair_lengths(predictions, references)
    if len(predictions) == 0:
        raise PETLError("a metric needs at least one prediction, but got none")
    return np.asarray(predictions, dtype=dtype), np.asarray(references, dtype=dtype)


# name -> function of (predictions, references) returning {metric name: value}
METRICS: dict[str, Callable[[Sequence, Sequence], dict[str, float]]] = {
    "accuracy": lambda p, r: {"accuracy": accuracy(p, r)},
    "f1": lambda p, r: {"f1": f1(p, r), "accuracy": accuracy(p, r)},
    "matthews_correlation": lambda p, r: {"matthews_correlation": matthews_correlation(p, r),
                                          "accuracy": accuracy(p, r)},
    "pearson_spearman": lambda p, r: {"pearson": pearson(p, r), "spearmanr": spearman(p, r),
                                      "combined": (pearson(p, r) + spearman(p, r)) / 2},
    "bleu": lambda p, r: {"bleu": bleu(p, r)},
    "rouge": rouge,
    "exact_match": lambda p, r: {"exact_match": exact_match(p, r)},
}


# metric family -> the scores it records (what a study may name as an objective)
SCORE_NAMES: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy",), "f1": ("f1", "accuracy"), "matthews_correlation": ("matthews_correlation", "accuracy"),
    "pearson_spearman": ("pearson", "spearmanr", "combined"), "bleu": ("bleu",), "rouge": ROUGE_TYPES,
    "exact_match": ("exact_match",),
}


def compute(metric: str, predictions: Sequence, references: Sequence) -> dict[str, float]:
    """All scores of a task's metric family, e.g. compute('f1', ...) -> {'f1': .., 'accuracy': ..}."""
    if metric not in METRICS:
        raise PETLError(f"metric must be one of {sorted(METRICS)}, but got {metric!r}")
    return METRICS[metric](predictions, references)


# Scores that can go below zero (correlations); every other score's worst value is 0.
_SIGNED = {"matthews_correlation", "pearson", "spearmanr", "combined"}


def constant_scores(metric: str, train_labels: Sequence, references: Sequence) -> dict[str, float] | None:
    """What a model that ignores its input scores: the training data's most frequent class (classification),
    its mean (regression) or its most frequent answer (exact match; ties: the first in sorted order), on
    `references`. A trained point at or below it has learnt nothing usable. None for BLEU and ROUGE, where no
    constant answer is meaningful."""
    if metric in ("bleu", "rouge"):
        return None
    if metric == "exact_match":
        answers, counts = np.unique([normalise_answer(a) for a in train_labels], return_counts=True)
        constant = str(answers[np.argmax(counts)])
    elif metric == "pearson_spearman":
        constant = float(np.mean(np.asarray(train_labels, dtype=np.float64)))
    else:
        values, counts = np.unique(np.asarray(train_labels), return_counts=True)
        constant = values[np.argmax(counts)].item()  # ties: the smallest class id
    return compute(metric, [constant] * len(references), list(references))


def floor(score: str) -> float:
    """The worst value a score can take: what a never-trained (over-budget) point is told it scored."""
    return -1.0 if score in _SIGNED else 0.0
