"""A study's claims on fresh seeds (analysis/claims.py): built from a real storage that a tiny-model proposer
filled with synthetic records whose dev predictions are chosen, so that every verdict is known beforehand:
the search right on every dev example, LoRA wrong on 30% of them, Houlsby's adapter exactly as the search."""
from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Callable

import pytest
import yaml

from petl_search.analysis.claims import (ClaimRow, PickSide, compare_picks, judge_rows, pick_sides, rank_agreement,
                                         rows_header, study_claims)
from petl_search.analysis.inference import holm
from petl_search.analysis.report import markdown
from petl_search.core.presets import preset
from petl_search.search.optuna_bridge.proposer import WAIT, Proposer
from petl_search.search.optuna_bridge.records import CLAIM_SIZES_KEY, read_records
from petl_search.search.optuna_bridge.storage import DEV_LABELS_KEY

from conftest import TINY_CONFIGS
from test_contest import fair_data, fair_proposer, record as worker_record, score_of

LABELS = [i % 2 for i in range(40)]
SEEDS = [10, 11, 12, 13]


def right() -> list[int]:
    return list(LABELS)


def wrong(share: float, seed: int) -> list[int]:
    """The labels with `share` of them flipped, which ones depending on the seed."""
    flips = round(share * len(LABELS))
    start = (7 * seed) % len(LABELS)
    chosen = {(start + j) % len(LABELS) for j in range(flips)}
    return [1 - y if i in chosen else y for i, y in enumerate(LABELS)]


@pytest.fixture(scope="module")
def fast_dir():
    """SQLite commits on a RAM disk when there is one (a storage commits per attribute: 3x faster)."""
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=base) as folder:
        yield Path(folder)


def group_of(proposer: Proposer, number: int) -> tuple[str, int]:
    """(the group whose pick trial `number` trains: 'search' or the baseline's method, the seed it trains)."""
    attrs = proposer.study.get_trials(deepcopy=False)[number].user_attrs
    original = proposer.study.get_trials(deepcopy=False)[attrs.get("confirm_of", number)].user_attrs
    group = "search" if original.get("kind") == "search" else original.get("tuning_method") or original["label"]
    return group, attrs["seed"]


def enqueue_small_point(proposer: Proposer) -> None:
    """A LoRA of r=1 first, so that the search has a point within every half size."""
    model_config = TINY_CONFIGS["bert"]()
    params = proposer.space.replay(preset("lora", model_config=model_config, r=1), model_config,
                                   budget=proposer.sampling_budget)
    proposer.study.enqueue_trial({**{n: v for n, (_, v) in params.items()}, "learning_rate": 1.0e-3})


def record(proposer: Proposer, number: int, metric: float, dev: list[int]) -> dict:
    """A worker's record whose dev accuracy is scored against LABELS."""
    return {**worker_record(proposer, number, metric, dev), "dev_metrics": {"accuracy": _accuracy(dev)}}


def drive_with(proposer: Proposer, dev_for: Callable[[str, int, bool, int], list[int]]) -> None:
    """Run the proposer to its end; each training's dev predictions are dev_for(group, seed, confirming,
    trial number)."""
    proposer.study.set_user_attr(DEV_LABELS_KEY, LABELS)  # as storage.record_references keeps them
    enqueue_small_point(proposer)
    while (candidate := proposer.next()) is not None:
        assert candidate != WAIT
        group, seed = group_of(proposer, candidate.number)
        proposer.finish(candidate.number, record(proposer, candidate.number, score_of(candidate),
                                                 dev_for(group, seed, candidate.kind == "confirm",
                                                                 candidate.number)))


def chosen_predictions(group: str, seed: int, confirming: bool, number: int) -> list[int]:
    """Fresh seeds: the search right everywhere, LoRA wrong on 30%, Houlsby as the search. The study's own
    seed: about the reverse (LoRA right, the others wrong on 10-30%), which must change no claim."""
    if not confirming:
        return right() if group == "lora" else wrong(0.1 + 0.05 * (number % 5), seed)
    return wrong(0.3, seed) if group == "lora" else right()


@pytest.fixture(scope="module")
def study(fast_dir):
    proposer = fair_proposer(fast_dir, n_trials=3, confirm={"seeds": SEEDS})
    drive_with(proposer, chosen_predictions)
    return proposer, read_records(proposer.study), dict(proposer.study.user_attrs)


def claims_of(records, attrs, **confirm):
    return study_claims(records, attrs, "accuracy", {"seeds": SEEDS, **confirm}, n_boot=2000)


def test_each_size_has_a_superiority_and_a_half_size_claim_per_baseline(study) -> None:
    _, records, attrs = study
    sizes = attrs[CLAIM_SIZES_KEY]
    claims = claims_of(records, attrs)
    assert len(sizes) == 2 and len(claims.rows) == 2 * 2 * 2  # sizes x baselines x (superiority, half size)
    for row in claims.rows:
        assert row.judged and row.seeds == tuple(SEEDS) and row.verdict.of == 8
        assert row.a.role == "search" and row.b.role in ("lora", "houlsby")
        assert row.a.record.stored_params <= (row.size if row.kind == "superiority" else row.size // 2)
        assert row.b.record.extra["target_size"] == row.size
    verdicts = {(row.size, row.kind, row.b.role): row.holds for row in claims.rows}
    for size in sizes:
        assert verdicts[(size, "superiority", "lora")]  # 1.0 against 0.7 on every fresh seed
        assert not verdicts[(size, "superiority", "houlsby")]  # identical predictions: no difference
        assert verdicts[(size, "non-inferiority", "lora")] and verdicts[(size, "non-inferiority", "houlsby")]
    lora = next(r for r in claims.rows if r.kind == "superiority" and r.b.role == "lora")
    assert lora.observed == pytest.approx(0.3)
    assert "not judged" not in "".join(r.verdict_text for r in claims.rows)


def test_holm_runs_over_every_judged_claim_of_the_report(study) -> None:
    _, records, attrs = study
    rows = claims_of(records, attrs).rows
    assert [r.verdict.p_adjusted for r in rows] == pytest.approx(holm([r.claim.p_value for r in rows]))
    # alone, a claim's p is not adjusted: the same row judged by itself has a smaller adjusted p
    (alone,) = judge_rows([dataclasses.replace(rows[1], verdict=None)], 0.05)
    assert alone.verdict.of == 1 and alone.verdict.p_adjusted == pytest.approx(rows[1].claim.p_value)
    assert rows[1].verdict.p_adjusted > alone.verdict.p_adjusted


def test_one_pair_of_picks_asked_about_at_several_sizes_is_one_test_for_holm(study) -> None:
    _, records, attrs = study
    rows = [dataclasses.replace(r, verdict=None) for r in claims_of(records, attrs).rows]
    again = dataclasses.replace(rows[0], question="the same two picks, asked at another size", size=rows[0].size * 2,
                                claim=dataclasses.replace(rows[0].claim, question="the same two picks, again"))
    judged = judge_rows([*rows, again], 0.05)
    distinct = judge_rows(rows, 0.05)
    assert all(r.verdict.of == len(rows) for r in judged)  # 8 tests, not 9
    assert [r.verdict.p_adjusted for r in judged[:-1]] == [r.verdict.p_adjusted for r in distinct]
    assert judged[-1].verdict.p_adjusted == judged[0].verdict.p_adjusted
    assert judged[-1].verdict.claim.question == "the same two picks, again"  # each row keeps its own words
    assert rows_header(judged, 0.05) == ("9 claims, 8 distinct tests (one pair of picks asked about at several sizes "
                                         "is one test), Holm-corrected at 5% over the 8")
    assert rows_header(distinct, 0.05) == "8 claims, Holm-corrected at 5%"


def test_claims_pair_on_common_seeds_and_need_three(study) -> None:
    _, records, attrs = study
    lora_picks = {side.record.number for (size, group), side in
                  pick_sides(records, attrs[CLAIM_SIZES_KEY], len(LABELS)).items() if group == "lora"}
    small, large = sorted(lora_picks, key=lambda n: next(r.stored_params for r in records if r.number == n))
    # LoRA's smaller pick lost seed 13: its claims pair over 10, 11, 12; the other claims keep all four
    fewer = [r for r in records if not (r.kind == "confirm" and r.extra["confirm_of"] == small and r.seed == 13)]
    rows = claims_of(fewer, attrs).rows
    for row in rows:
        expected = SEEDS[:3] if row.b.record.number == small else SEEDS
        assert row.seeds == tuple(expected) and row.claim.result.n_seeds == len(expected)
    # a seed's predictions on each side stay together: the observed difference is the mean over the seeds
    row = next(r for r in rows if r.b.record.number == small and r.kind == "superiority")
    assert row.observed == pytest.approx(1.0 - sum(_accuracy(wrong(0.3, s)) for s in SEEDS[:3]) / 3)
    # two common seeds: listed, not judged, and Holm counts only the judged
    two = [r for r in fewer if not (r.kind == "confirm" and r.extra["confirm_of"] == small and r.seed == 12)]
    claims = claims_of(two, attrs)
    unjudged = [r for r in claims.rows if not r.judged]
    assert len(unjudged) == 2 and all(r.b.record.number == small for r in unjudged)
    assert unjudged[0].verdict_text == "not judged: 2 common confirm seeds (10, 11); a claim needs at least 3"
    assert {r.verdict.of for r in claims.rows if r.judged} == {6}
    assert large in {r.b.record.number for r in claims.judged}


def _accuracy(predictions: list[int]) -> float:
    return sum(p == y for p, y in zip(predictions, LABELS)) / len(LABELS)


def test_the_selecting_seed_never_enters_a_claim(study) -> None:
    """The study's seed chose the picks: its trials' dev predictions (and a confirm trial at that seed, were
    there one) change nothing in the claims or their section of the report."""
    _, records, attrs = study
    expected = claims_of(records, attrs)
    flipped = [dataclasses.replace(r, extra={**r.extra, "dev_predictions": [1 - y for y in r.extra["dev_predictions"]]},
                                   dev_scores={"accuracy": 1 - r.dev_scores["accuracy"]})
               if r.kind != "confirm" and r.extra.get("dev_predictions") else r for r in records]
    assert flipped != records
    # a confirm training of every pick at the study's seed, as if one had been stored: never counted
    stray = next(r for r in records if r.kind == "confirm")
    picked = {r.extra["confirm_of"] for r in records if r.kind == "confirm"}
    selecting = [dataclasses.replace(stray, number=10_000 + n, seed=0, extra={**stray.extra, "confirm_of": n,
                                                                             "dev_predictions": [0] * 40})
                 for n in picked]
    changed = claims_of(flipped + selecting, attrs)
    assert [(r.question, r.seeds, r.observed, r.claim.p_value, r.holds) for r in changed.rows] == \
        [(r.question, r.seeds, r.observed, r.claim.p_value, r.holds) for r in expected.rows]

    def section(rs, c):
        return markdown(rs, "accuracy", "s", claims=c).split("## Claims (fresh seeds only)")[1].split("\n## ")[0]

    # ρ reads the study seed's dev scores (it asks how the split ranks points on dev): leave it out here
    same_ranks = dataclasses.replace(changed, ranks=expected.ranks)
    assert section(flipped, same_ranks) == section(records, expected)
    # the guard is not vacuous: a fresh seed's predictions do move the claims
    spoiled = [dataclasses.replace(r, extra={**r.extra, "dev_predictions": [0] * 40})
               if r.kind == "confirm" and r.seed == 10 else r for r in records]
    assert [r.observed for r in claims_of(spoiled, attrs).rows] != [r.observed for r in expected.rows]


def test_non_inferiority_reads_its_margin(study) -> None:
    """One point apart (4 examples of 400 wrong on each seed): not within 0.005, within 0.05."""
    _, records, _ = study
    picked = next(r for r in records if r.kind == "search")
    labels = [i % 2 for i in range(400)]
    worse = {s: [1 - y if (i - s) % 100 == 0 else y for i, y in enumerate(labels)] for s in SEEDS[:3]}
    a = PickSide("search", 100, picked, worse)
    b = PickSide("lora", 100, picked, {s: list(labels) for s in SEEDS})
    tight, loose = (compare_picks("q", "non-inferiority", 100, a, b, labels, "accuracy", margin=m, n_boot=2000)
                    for m in (0.005, 0.05))
    assert tight.observed == pytest.approx(-0.01) and tight.seeds == tuple(SEEDS[:3])
    assert (tight.margin, loose.margin) == (0.005, 0.05)
    tight, loose = judge_rows([tight], 0.05)[0], judge_rows([loose], 0.05)[0]
    assert not tight.holds and loose.holds
    assert compare_picks("q", "superiority", 100, None, b, LABELS, "accuracy", missing="no search point within 100"
                         ).reason == "no search point within 100"
    assert compare_picks("q", "superiority", 100, a, b, None, "accuracy").reason.startswith("the storage keeps no dev")


def test_the_report_has_a_claims_section_and_calls_the_rest_exploratory(study) -> None:
    proposer, records, attrs = study
    claims = claims_of(records, attrs)
    text = markdown(records, "accuracy", "s", claims=claims)
    section = text.split("## Claims (fresh seeds only)")[1].split("\n## ")[0]
    assert "8 claims, Holm-corrected at 5%" in section
    rows = [line for line in section.splitlines() if line.startswith("| at ")]
    assert len(rows) == 8 and sum(line.endswith("| holds |") for line in rows) == 6
    assert "search: #" in rows[0] and "lr " in rows[0] and "| 10, 11, 12, 13 |" in rows[0]
    assert "Spearman's ρ between the search-split score and the dev score over" in section
    assert "Proposals: trained search points by proposer:" in section
    for heading in ("## Controlled comparisons", "## MAM against the search front", "## All trained points"):
        line = next(x for x in text.splitlines() if x.startswith(heading))
        assert "exploratory: the selecting seed counts" in line
    assert "exploratory" not in markdown(records, "accuracy", "s")  # no claims: nothing to set it apart from


def test_spearman_over_trained_points_or_why_not(study) -> None:
    _, records, _ = study
    ranks = rank_agreement(records, "accuracy")
    trained = [r for r in records if r.kind in ("search", "baseline") and r.state == "COMPLETE"]
    assert ranks.n == len(trained) and ranks.reason is None and -1 <= ranks.rho <= 1
    few = rank_agreement(trained[:2], "accuracy")
    assert few.n == 2 and few.reason.startswith("fewer than 3 points") and few.text.startswith("n/a (fewer")


def test_a_study_without_labels_or_sizes_claims_nothing_it_cannot_judge(study) -> None:
    _, records, attrs = study
    unlabelled = claims_of(records, {**attrs, DEV_LABELS_KEY: None})
    assert unlabelled.rows and not unlabelled.judged
    assert not claims_of(records, {}).rows  # no claim sizes stored: no picks to claim about
    assert isinstance(unlabelled.rows[0], ClaimRow)


def test_petl_search_report_judges_a_study_with_confirm_trials(study, fast_dir, capsys) -> None:
    from petl_search.cli import main

    proposer, _, _ = study
    path = fast_dir / "t.yaml"
    path.write_text(yaml.safe_dump(fair_data(fast_dir, n_trials=3, confirm={"seeds": SEEDS})))
    assert main(["report", str(path)]) == 0
    text = capsys.readouterr().out
    assert "## Claims (fresh seeds only)" in text and "8 claims, Holm-corrected at 5%" in text
    assert "## Controlled comparisons (seed methods, same size, dev; exploratory: the selecting seed counts)" in text
