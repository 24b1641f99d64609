"""Our metrics agree with the reference implementations on one shared test set."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk

from petl_search.training import metrics
from petl_search.core.errors import PETLError

RNG = np.random.default_rng(0)
BINARY_P, BINARY_R = RNG.integers(0, 2, 500), RNG.integers(0, 2, 500)
MULTI_P, MULTI_R = RNG.integers(0, 3, 500), RNG.integers(0, 3, 500)
SCORES_R = RNG.uniform(0, 5, 400).round(1)  # ties, as STS-B's 0.2-step scores have
SCORES_P = SCORES_R + RNG.normal(0, 1.0, 400)


def test_classification_metrics_match_scikit_learn() -> None:
    assert metrics.accuracy(BINARY_P, BINARY_R) == pytest.approx(sk.accuracy_score(BINARY_R, BINARY_P), abs=1e-12)
    assert metrics.f1(BINARY_P, BINARY_R) == pytest.approx(sk.f1_score(BINARY_R, BINARY_P), abs=1e-12)
    for p, r in ((BINARY_P, BINARY_R), (MULTI_P, MULTI_R), (BINARY_R, BINARY_R)):
        assert metrics.matthews_correlation(p, r) == pytest.approx(sk.matthews_corrcoef(r, p), abs=1e-12)
    constant = np.zeros(10, dtype=int)  # undefined MCC: 0, as scikit-learn
    assert metrics.matthews_correlation(constant, BINARY_R[:10]) == sk.matthews_corrcoef(BINARY_R[:10], constant) == 0


def test_correlations_match_scipy_with_ties() -> None:
    assert metrics.pearson(SCORES_P, SCORES_R) == pytest.approx(stats.pearsonr(SCORES_P, SCORES_R)[0], abs=1e-12)
    assert metrics.spearman(SCORES_P, SCORES_R) == pytest.approx(stats.spearmanr(SCORES_P, SCORES_R)[0], abs=1e-12)
    assert metrics.spearman(SCORES_R.round(0), SCORES_R) == pytest.approx(
        stats.spearmanr(SCORES_R.round(0), SCORES_R)[0], abs=1e-12)


HYPS = ["the cat sat on the mat .", "a quick brown fox jumps", "completely unrelated words here", ""]
REFS = ["the cat is sitting on the mat .", "the quick brown fox jumped over", "nothing shared", "empty prediction"]


def test_bleu_is_sacrebleus_corpus_bleu() -> None:
    import sacrebleu
    assert metrics.bleu(HYPS, REFS) == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score)
    assert metrics.bleu(REFS, REFS) == pytest.approx(100.0)


def test_rouge_is_the_mean_rouge_score_f_measure() -> None:
    from rouge_score import rouge_scorer
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    got = metrics.rouge(HYPS, REFS)
    for name in got:
        expected = 100 * np.mean([scorer.score(r, h)[name].fmeasure for h, r in zip(HYPS, REFS)])
        assert got[name] == pytest.approx(expected)
    assert metrics.rouge(["sitting cats"], ["the cat sits"])["rouge1"] > 0  # stemming: cats~cat, sitting~sits


def test_metric_families_and_bad_input() -> None:
    assert set(metrics.compute("pearson_spearman", SCORES_P, SCORES_R)) == {"pearson", "spearmanr", "combined"}
    with pytest.raises(PETLError, match=r"metric must be one of .*but got 'auc'"):
        metrics.compute("auc", [1], [1])
    with pytest.raises(PETLError, match="same length, but got 2 and 1"):
        metrics.accuracy([1, 0], [1])
    with pytest.raises(PETLError, match="at least one prediction"):
        metrics.accuracy([], [])
