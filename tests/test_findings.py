"""The paper's questions from a study's trials: controlled baseline pairs with Welch intervals (checked
against SciPy), FFN vs attention per budget band, MAM against the search front, and the Markdown report."""
from __future__ import annotations

import dataclasses
import statistics
import warnings

import pytest
from scipy import stats

from petl_search.analysis.comparison import seeds_text, welch_interval
from petl_search.analysis.findings import baseline_comparisons, mam_claims
from petl_search.analysis.front import methods
from petl_search.analysis.report import markdown
from petl_search.search.optuna_bridge.records import TrialRecord
from petl_search.search.language.study import Baseline

_numbers = iter(range(10_000))


def rec(method, metric, fraction, kind="baseline", config=None) -> TrialRecord:
    """A baseline as the storage keeps it: `method` is (preset, args); a search point: `method` is its label."""
    preset, args = method if kind == "baseline" else (None, {})
    label = Baseline(preset, args).label if kind == "baseline" else method
    return TrialRecord(number=next(_numbers), state="COMPLETE", kind=kind, label=label, metric=metric,
                       stored_params=int(fraction * 1e7), stored_fraction=fraction, config=config or {},
                       preset=preset, preset_args=dict(args))


@pytest.mark.parametrize("a, b", [([0.80, 0.82, 0.81], [0.70, 0.74, 0.69, 0.71]), ([1.0, 2.0], [1.5, 1.4, 1.6])])
def test_welch_interval_matches_scipy(a, b) -> None:
    expected = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert welch_interval(a, b) == pytest.approx((expected.low, expected.high))


def test_a_constant_side_gives_the_other_sides_t_interval_without_a_warning() -> None:
    """A collapsed method scores the same on every seed: its variance is 0, so Welch's interval is the other
    side's one-sample t interval (df = n - 1), which SciPy gets right while warning of cancellation."""
    constant, other = [0.5] * 3, [0.60, 0.64, 0.62, 0.58]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        low, high = welch_interval(constant, other)
    half = stats.t.ppf(0.975, len(other) - 1) * statistics.stdev(other) / len(other) ** 0.5
    centre = 0.5 - statistics.mean(other)
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-12)


def study_records() -> list[TrialRecord]:
    return [
        *(rec(("parallel_adapter", {"r": 245}), m, 0.0499) for m in (0.83, 0.84, 0.835)),
        *(rec(("houlsby_ffn", {"r": 245}), m, 0.0499) for m in (0.80, 0.81, 0.805)),
        *(rec(("scaled_parallel_adapter", {"r": 245}), m, 0.0499) for m in (0.83, 0.845, 0.82)),
        *(rec(("parallel_adapter", {"r": 4}), m, 0.00091) for m in (0.78, 0.79, 0.785)),
        *(rec(("prefix_tuning", {"l": 246}), m, 0.0499) for m in (0.81, 0.80, 0.805)),
        *(rec(("lora", {"r": 2}), m, 0.00081) for m in (0.79, 0.80, 0.795)),
        *(rec(("mam", {"ffn_r": 215}), m, 0.0498) for m in (0.82, 0.83, 0.825)),
        rec("a", 0.83, 0.02, kind="search"), rec("b", 0.86, 0.06, kind="search"), rec("c", 0.81, 0.01, kind="search"),
    ]


def test_a_baseline_with_list_arguments_is_compared_by_its_data_not_its_label() -> None:
    """LoRA on q, k, v has a list argument, whose label ('lora(projections=['q', 'k', 'v'],r=8)') no
    parser should read back: the comparisons use the preset and arguments stored with the trial."""
    qkv = {"projections": ["q", "k", "v"], "r": 8}
    records = study_records() + [rec(("lora", qkv), m, 0.00085) for m in (0.80, 0.81)]  # the ~0.1% band
    text = markdown(records, "accuracy", "s")
    assert "lora(projections=['q', 'k', 'v'],r=8)" in text  # shown, and the report did not crash
    bands = [c for c in baseline_comparisons(records, "accuracy") if c.question.startswith("representation")]
    assert any(c.b.label == "lora(projections=['q', 'k', 'v'],r=8)" for c in bands)


def test_controlled_pairs_and_representation_by_band() -> None:
    comparisons = {c.question: c for c in baseline_comparisons(study_records(), "accuracy")}
    insertion = comparisons["insertion: parallel vs sequential FFN adapter, at the budget"]
    assert insertion.a.label == "parallel_adapter(r=245)" and insertion.b.label == "houlsby_ffn(r=245)"
    assert insertion.difference == pytest.approx(0.03) and insertion.verdict == "parallel_adapter(r=245) better"
    scaled = comparisons["composition: scaled vs plain parallel adapter, at the budget"]
    assert scaled.verdict == "not distinguishable from noise" and scaled.low < 0 < scaled.high
    assert "heads: multi-head vs single-head adapter on the head attention, at a tiny budget" not in comparisons
    assert not any(q.startswith("insertion: reading the FFN's Add&Norm") for q in comparisons)  # no pfeiffer here
    with_pfeiffer = study_records() + [rec(("pfeiffer", {"r": 245}), m, 0.0499) for m in (0.82, 0.83, 0.825)]
    read = {c.question: c for c in baseline_comparisons(with_pfeiffer, "accuracy")}[
        "insertion: reading the FFN's Add&Norm (Pfeiffer) vs its output, at the budget"]
    assert (read.a.label, read.b.label) == ("pfeiffer(r=245)", "houlsby_ffn(r=245)")
    assert read.difference == pytest.approx(0.02)
    bands = [c for q, c in comparisons.items() if q.startswith("representation")]
    assert [(c.a.label, c.b.label) for c in bands] == [("parallel_adapter(r=4)", "lora(r=2)"),
                                                         ("parallel_adapter(r=245)", "prefix_tuning(l=246)")]  # 0.835 > 0.832


def test_mam_against_the_front_and_the_markdown() -> None:
    records = study_records()
    ((mam, found),) = mam_claims(methods(records, "accuracy"))
    assert mam.mean == pytest.approx(0.825) and mam.dev_mean == pytest.approx(0.825)
    # the front's search points within MAM's size: c (1%, 0.81) and a (2%, 0.83); b stores more
    assert [claim.point.label for claim in found] == ["c", "a"]
    assert not any(claim.holds for claim in found)  # c is below it; a is above it on one seed: no claim
    text = markdown(records, "accuracy", "s")
    assert "| insertion: parallel vs sequential FFN adapter, at the budget |" in text
    assert "parallel_adapter(r=245) better" in text and "mam(ffn_r=215)" in text
    assert "#" in text and "on one seed, +0.0050 against MAM's mean: no claim without reseeds" in text


def test_a_reseeded_search_point_is_compared_with_mam_over_seeds() -> None:
    records = study_records()
    a = next(r for r in records if r.label == "a")
    again = [TrialRecord(number=next(_numbers), state="COMPLETE", kind="reseed", label="a", metric=m,
                         stored_params=a.stored_params, stored_fraction=a.stored_fraction, seed=s,
                         extra={"reseed_of": a.number}) for s, m in ((1, 0.835), (2, 0.825))]
    ((mam, found),) = mam_claims(methods(records + again, "accuracy"))
    claim = next(c for c in found if c.point.number == a.number)
    assert claim.holds and claim.comparison.a.scores == (0.83, 0.835, 0.825)
    expected = stats.ttest_ind([0.83, 0.835, 0.825], [0.82, 0.83, 0.825], equal_var=False).confidence_interval(0.95)
    assert (claim.comparison.low, claim.comparison.high) == pytest.approx((expected.low, expected.high))
    text = markdown(records + again, "accuracy", "s")
    assert f"#{a.number} (a, 2.000%, lr -) over 3 seeds: dev 0.8300 ± 0.0050; minus MAM: +0.0050" in text
    assert "within seed noise" in text


def test_the_report_says_where_its_trials_ran_and_when_there_are_no_pairs() -> None:
    """GPU trials autocast to bf16, so the report names the device of every trained trial."""
    records = [dataclasses.replace(r, extra={"device": "cuda" if i % 3 else "cpu"}) for i, r in
               enumerate(study_records())]
    assert "Trained on cuda (bf16 autocast): 16 trials, cpu: 8 trials." in markdown(records, "accuracy", "s")
    only_mam = [r for r in records if r.preset in (None, "mam")]
    text = markdown(only_mam, "accuracy", "s")
    assert "None: the study's baselines hold no pair of seed methods" in text and "| question |" not in text


def test_scores_without_spread_are_never_beyond_seed_noise() -> None:
    """Two seed lists that do not vary (identical, or each constant) measure no seed noise: no interval,
    and no verdict that reads as one (not 'better', not 'beyond seed noise', not 'within seed noise')."""
    from petl_search.analysis.comparison import Side, compare
    from petl_search.analysis.front import claims
    from petl_search.analysis.summary import claim_line

    for a, b in [((0.9, 0.9), (0.8, 0.8)), ((0.85, 0.85, 0.85), (0.85, 0.85, 0.85)),
                 ((0.9, 0.9 + 1e-15), (0.8, 0.8 - 1e-15))]:  # the same scores up to rounding
        low, high = welch_interval(a, b)
        assert low != low and high != high  # NaN: no width to measure, not a zero-width interval
        verdict = compare("q", Side("A", a, 1.0), Side("B", b, 1.0)).verdict
        assert verdict == "no spread over seeds on either side: seed noise not measured"
    records = study_records()
    a = next(r for r in records if r.label == "a")
    flat = [dataclasses.replace(r, metric=0.9 if r.number == a.number else r.metric) for r in records
            if r.preset != "mam"] + [
        TrialRecord(number=next(_numbers), state="COMPLETE", kind="reseed", label="a", metric=0.9,
                    stored_params=a.stored_params, stored_fraction=a.stored_fraction, seed=s,
                    extra={"reseed_of": a.number}) for s in (1, 2)] + [
        rec(("mam", {"ffn_r": 215}), 0.8, 0.0498) for _ in range(3)]
    ((mam, found),) = mam_claims(methods(flat, "accuracy"))
    claim = next(c for c in found if c.point.number == a.number)
    assert claim.comparison.a.scores == (0.9, 0.9, 0.9) and claim.comparison.difference == pytest.approx(0.1)
    assert claim.verdict == "beats it on the mean; no spread over seeds on either side: seed noise not measured"
    assert "beyond seed noise" not in claim_line(claim) and "[95% CI" not in claim_line(claim)
    text = markdown(flat, "accuracy", "s")
    line = next(x for x in text.splitlines() if f"#{a.number} (a," in x)
    assert "beyond seed noise" not in line and "no spread over seeds on either side" in line
    # one seed of the baseline: no interval either, so no 'within seed noise' on the point's three
    one = [r for r in flat if r.preset != "mam"] + [rec(("mam", {"ffn_r": 215}), 0.8, 0.0498)]
    ((_, found),) = mam_claims(methods(one, "accuracy"))
    claim = next(c for c in found if c.point.number == a.number)
    assert claim.verdict == "beats it on the mean; too few seeds for an interval"
    # identical seed lists that do vary: a difference of 0 is a tie, not a win
    same = [r for r in flat if r.preset != "mam" and r.kind != "reseed"] + [
        TrialRecord(number=next(_numbers), state="COMPLETE", kind="reseed", label="a", metric=m,
                    stored_params=a.stored_params, stored_fraction=a.stored_fraction, seed=s,
                    extra={"reseed_of": a.number}) for s, m in ((1, 0.8), (2, 0.85))] + [
        rec(("mam", {"ffn_r": 215}), m, 0.0498) for m in (0.9, 0.8, 0.85)]
    ((_, found),) = mam_claims(methods(same, "accuracy"))
    claim = next(c for c in found if c.point.number == a.number)
    assert claim.comparison.difference == 0 and claim.comparison.low < 0 < claim.comparison.high
    assert claim.verdict == "ties it: equal dev means, within seed noise"


def test_a_stored_pfeiffer_from_before_0_2_is_read_as_what_it_trained() -> None:
    """0.1's `pfeiffer` preset built Houlsby's adapter on the FFN (Δh from h); a storage of that time holds
    it under that name. Read back, it is `houlsby_ffn`; a `pfeiffer` that reads the Add&Norm stays one."""
    import optuna

    from petl_search.search.optuna_bridge.records import read_records

    study = optuna.create_study(directions=["maximize"])
    for insertion in ("sequential", "after_norm"):
        study.add_trial(optuna.trial.create_trial(value=0.8, user_attrs={
            "kind": "baseline", "label": "pfeiffer(r=245)", "preset": "pfeiffer", "preset_args": {"r": 245},
            "petl_config": {"ffn": {"form": "bottleneck", "size": 245, "insertion": insertion}}}))
    old, new = read_records(study)
    assert (old.preset, old.label) == ("houlsby_ffn", "houlsby_ffn(r=245)")
    assert (new.preset, new.label) == ("pfeiffer", "pfeiffer(r=245)")


def test_seeds_text_is_mean_and_sample_std_over_seeds_with_their_count() -> None:
    assert seeds_text([]) == "-"
    assert seeds_text([0.8]) == "0.8000 (1)"  # one seed: no spread to show
    assert seeds_text([0.80, 0.84, 0.82]) == "0.8200 ± 0.0200 (3)"  # sample std: sqrt(((-.02)² + .02²) / 2)


def test_a_study_without_mam_says_so_under_the_mam_heading() -> None:
    no_mam = [r for r in study_records() if r.preset != "mam"]
    text = markdown(no_mam, "accuracy", "s")
    section = text.split("## MAM against the search front")[1].split("\n## ")[0]
    assert "- The study trained no MAM baseline: nothing to compare." in section
    assert "The study trained no MAM baseline" not in markdown(study_records(), "accuracy", "s")
