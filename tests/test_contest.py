"""A fair contest inside one study: baselines tuned at every claim size (`tuning`), picks confirmed with fresh
seeds (`confirm`), the point without Δh kept out of the search; and the study keys that ask for them."""
from __future__ import annotations

import optuna
import pytest

from petl_search.core.config import PETLConfig
from petl_search.core.params import count_params
from petl_search.search.language.study import StudyError, parse_study
from petl_search.search.language.tuning import backbone_size, claim_sizes
from petl_search.search.optuna_bridge.confirm import picks
from petl_search.search.optuna_bridge.proposer import EMPTY_REASON, MISFIT_VIOLATION, WAIT, Proposer
from petl_search.search.optuna_bridge.records import counts, read_records
from petl_search.search.optuna_bridge.storage import open_store

from conftest import TINY_CONFIGS
from test_study import study_data

RATES = {"low": 1.0e-4, "high": 1.0e-2}


def fair_data(tmp_path, **overrides) -> dict:
    data = study_data(tmp_path, budget=0.04, sizes=[0.02], n_trials=4, baselines=["lora", "houlsby"],
                      train={"max_steps": 10, "learning_rate": RATES}, tuning={"trainings": 2},
                      confirm={"seeds": [10, 11, 12]})
    data.update(overrides)
    return data


def fair_proposer(tmp_path, **overrides) -> Proposer:
    spec = parse_study(fair_data(tmp_path, **overrides))
    return Proposer(open_store(spec), spec, TINY_CONFIGS["bert"]())


def record(proposer: Proposer, number: int, metric: float, dev: list[int]) -> dict:
    """A worker's record of a study with a search split: the score there, dev's predictions beside it."""
    trial = proposer.study.get_trials(deepcopy=False)[number]
    return {"status": "completed", "main_metric": "accuracy", "metrics": {"accuracy": metric},
            "evaluated_on": "search split", "dev_metrics": {"accuracy": sum(dev) / len(dev)},
            "dev_predictions": dev, "params": {"delta_stored": trial.user_attrs["stored_params"]},
            "throughput": 10.0, "steps": 10}


def score_of(candidate) -> float:
    """A score that differs between points and settings, so that every pick is a definite one."""
    return 0.5 + (candidate.stored_params % 97) / 1000 + (candidate.learning_rate or 0)


def test_study_keys_for_a_fair_contest_are_checked(tmp_path) -> None:
    spec = parse_study(fair_data(tmp_path))
    assert spec.tuning == {"trainings": 2, "scale": {"low": 1.0, "high": 8.0}}
    assert spec.confirm == {"seeds": [10, 11, 12], "baselines": "all", "margin": 0.005, "alpha": 0.05}
    assert spec.sizes == (0.02,)
    plain = parse_study(study_data(tmp_path))
    assert plain.fingerprint() == parse_study({**study_data(tmp_path), "sizes": [0.01]}).fingerprint()  # not identity
    bad = [({"tuning": {"trainings": 2}, "train": {"max_steps": 10}}, "learning_rate to {low, high}"),
           ({"tuning": {"trainings": 0}}, "tuning.trainings must be a positive integer"),
           ({"tuning": {"trainings": 2, "scale": {"low": 4.0, "high": 1.0}}}, "tuning.scale"),
           ({"baselines": [{"preset": "lora", "seeds": [0, 1]}]}, "remove the baselines' seeds"),
           ({"confirm": {"seeds": [10, 11]}}, "at least 3"),
           ({"confirm": {"seeds": [0, 10, 11]}}, "must not hold the study's seed 0"),
           ({"confirm": {"seeds": [10, 11, 12], "baselines": "some"}}, "'all' or 'best'"),
           ({"search_split": None}, "search_split must not be null"),
           ({"sizes": [0.05]}, "within the budget"), ({"sizes": [0]}, "sizes[0]"),
           ({"n_trials": 0, "baselines": [], "tuning": None}, "n_trials may be 0 only")]
    for overrides, message in bad:
        with pytest.raises(StudyError, match=message.replace("(", r"\(").replace(")", r"\)")
                           .replace("[", r"\[").replace("]", r"\]").replace("{", r"\{").replace("}", r"\}")):
            parse_study(fair_data(tmp_path, **overrides))
    assert parse_study(fair_data(tmp_path, n_trials=0)).n_trials == 0  # the tuned arm of a contest


def drive(proposer: Proposer) -> list:
    """Run the proposer to its end as a driver with one worker would; return every candidate in order."""
    seen = []
    while (candidate := proposer.next()) is not None:
        assert candidate != WAIT  # one at a time: nothing else is running
        seen.append(candidate)
        dev = [1, 0, 1, 1] if candidate.seed % 2 else [1, 1, 0, 1]
        proposer.finish(candidate.number, record(proposer, candidate.number, score_of(candidate), dev))
    return seen


def test_tuned_baselines_at_every_size_then_fresh_seed_confirmations(tmp_path) -> None:
    proposer = fair_proposer(tmp_path)
    model_config = TINY_CONFIGS["bert"]()
    sizes = claim_sizes(proposer.spec, model_config)
    assert sizes == sorted(sizes) and len(sizes) == 2 and sizes[-1] <= 0.04 * backbone_size(model_config)
    seen = drive(proposer)
    baselines = [c for c in seen if c.kind == "baseline"]
    records = {r.number: r for r in read_records(proposer.study)}
    # 2 methods x 2 sizes x 2 settings, each fitted to within its size, at the study's seed
    assert len(baselines) == 8 and {c.seed for c in baselines} == {0}
    for c in baselines:
        extra = records[c.number].extra
        assert extra["tuning_method"] in ("lora", "houlsby") and extra["target_size"] in sizes
        assert c.stored_params <= extra["target_size"]
        assert RATES["low"] <= c.learning_rate <= RATES["high"]
        # LoRA's scale is tuned beside its rate (an argument of the preset); Houlsby's adapter has none
        assert ("s" in c.preset_args) == (c.preset == "lora")
    for method in ("lora", "houlsby"):
        for size in sizes:
            settings = {(c.learning_rate, c.preset_args.get("s")) for c in baselines
                        if records[c.number].extra["tuning_method"] == method
                        and records[c.number].extra["target_size"] == size}
            assert len(settings) == 2  # two different settings, not one trained twice
    assert sum(c.kind == "search" for c in seen) == 4
    confirms = [c for c in seen if c.kind == "confirm"]
    assert seen[-len(confirms):] == confirms  # the last stage: after the search and the baselines
    final = read_records(proposer.study)
    chosen = {p.number for p in picks(final, sizes, sizes[-1])}
    confirmed = {}
    for c in confirms:
        original = records[records[c.number].extra["confirm_of"]]
        assert original.number in chosen and c.learning_rate == original.learning_rate
        assert c.petl_config == original.config and c.preset == original.preset
        confirmed.setdefault(original.number, []).append(c.seed)
    assert confirmed.keys() == chosen and all(sorted(s) == [10, 11, 12] for s in confirmed.values())
    assert counts(final)["confirm"] == len(confirms)
    kept = [r for r in final if r.kind == "confirm"]
    assert all(r.extra["dev_predictions"] and r.dev_scores for r in kept)  # what the claims are judged with
    again = Proposer(open_store(proposer.spec), proposer.spec, model_config)
    assert again.remaining == 0 and again.next() is None  # resumed: nothing left, counted exactly


def test_confirmations_wait_for_the_picks_and_an_interrupted_one_is_trained_again(tmp_path) -> None:
    proposer = fair_proposer(tmp_path, n_trials=1, baselines=["lora"], sizes=[],
                             confirm={"seeds": [10, 11, 12], "baselines": "best"})
    first = proposer.next()
    while first.kind != "search":
        proposer.finish(first.number, record(proposer, first.number, score_of(first), [1, 0]))
        first = proposer.next()
    assert proposer.next() == WAIT  # the search trial still runs: the picks are not known yet
    proposer.finish(first.number, record(proposer, first.number, 0.9, [1, 1]))
    one = proposer.next()
    assert one.kind == "confirm"
    spec = proposer.spec
    del proposer  # the driver dies with `one` running
    store = open_store(spec)
    from petl_search.search.optuna_bridge.storage import reconcile
    assert reconcile(store) == [one.number]
    resumed = Proposer(store, spec, TINY_CONFIGS["bert"]())
    redo = resumed.next()
    assert (redo.kind, redo.seed, redo.petl_config) == ("confirm", one.seed, one.petl_config)


def test_the_sampler_s_point_without_delta_h_is_never_trained(tmp_path, monkeypatch) -> None:
    """The frozen backbone alone has 0 stored parameters: proposed by the sampler, it is told as infeasible
    and the sampler proposes again; queued by a user, it is trained as asked."""
    proposer = fair_proposer(tmp_path, baselines=[], tuning=None, confirm=None, n_trials=2)
    model_config = TINY_CONFIGS["bert"]()
    space_class = type(proposer.space)
    sample, calls = space_class.sample, []

    def empty_first(self, trial, *args, **kwargs):  # the sampler's first proposal is the empty point
        calls.append(trial.number)
        point = sample(self, trial, *args, **kwargs)
        return PETLConfig() if len(calls) == 1 else point

    monkeypatch.setattr(space_class, "sample", empty_first)
    candidate = proposer.next()
    assert count_params(PETLConfig.from_dict(candidate.petl_config), model_config).stored > 0
    empty = [r for r in read_records(proposer.study) if r.kind == "empty"]
    assert len(empty) == 1 and empty[0].reason == EMPTY_REASON and empty[0].number == calls[0]
    trial = proposer.study.get_trials(deepcopy=False)[empty[0].number]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.constraints["budget"] == MISFIT_VIOLATION
    assert counts(read_records(proposer.study))["empty"] == 1
    monkeypatch.setattr(space_class, "sample", sample)
    params = proposer.space.replay(PETLConfig(), model_config, budget=proposer.sampling_budget)
    proposer.study.enqueue_trial({**{n: v for n, (_, v) in params.items()}, "learning_rate": 1.0e-3})
    queued = proposer.next()
    assert queued.kind == "search" and queued.stored_params == 0  # asked for by name: trained


def contest_data(tmp_path) -> dict:
    base = {k: v for k, v in fair_data(tmp_path).items() if k not in ("name", "storage", "n_trials", "baselines",
                                                                      "tuning", "sampler")}
    return {"name": "duel", "base": base, "reference": "tuned", "arms": {
        "search": {"seeds": [0, 1], "n_trials": 8, "sampler": {"name": "tpe", "startup_trials": 3}},
        "random": {"seeds": [0, 1], "n_trials": 8, "sampler": {"name": "random"}},
        "tuned": {"n_trials": 0, "baselines": ["lora", "houlsby"], "tuning": {"trainings": 2}}}}


def test_a_contest_is_studies_with_equal_trainings(tmp_path) -> None:
    from petl_search.search.language.contest import parse_contest

    source = str(tmp_path / "duel.yaml")
    contest = parse_contest(contest_data(tmp_path), source=source)
    assert [a.name for a in contest.arms] == ["search", "random", "tuned"] and contest.reference == "tuned"
    assert [s.name for s in contest.arm("search").studies] == ["duel_search_s0", "duel_search_s1"]
    assert {a.trainings for a in contest.arms} == {8}  # 2 methods x 2 sizes x 2 settings = 8 search trials
    study = contest.arm("random").studies[1]
    assert study.seed == 1 and study.storage == f"sqlite:///{tmp_path / 'duel' / 'random_s1' / 'study.db'}"
    assert study.confirm["seeds"] == [10, 11, 12] and study.sampler["name"] == "random"
    unequal = contest_data(tmp_path)
    unequal["arms"]["random"]["n_trials"] = 9
    with pytest.raises(StudyError, match="same number of trainings.*'random': 9"):
        parse_contest(unequal, source=source)
    named = contest_data(tmp_path)
    named["arms"]["search"]["seed"] = 3
    with pytest.raises(StudyError, match="seed is set by the contest"):
        parse_contest(named, source=source)
    bad = contest_data(tmp_path)
    bad["arms"]["tuned"]["tuning"] = {"trainings": 0}
    with pytest.raises(StudyError, match=r"arms.tuned \(study seed 0\).*tuning.trainings"):
        parse_contest(bad, source=source)


def test_a_search_split_like_dev_is_a_study_key(tmp_path) -> None:
    plain = parse_study(study_data(tmp_path))
    like = parse_study(study_data(tmp_path, search_split={"size": 0.1, "max": 1000, "like": "dev"}))
    assert "split_like" not in plain.split_fields  # studies stored before keep their meaning and fingerprint
    assert like.split_fields["split_like"] == "dev" and like.train_config(0).split_like == "dev"
    assert like.fingerprint() != plain.fingerprint()
    with pytest.raises(StudyError, match="search_split.like must be 'dev'"):
        parse_study(study_data(tmp_path, search_split={"size": 0.1, "like": "train"}))
    with pytest.raises(StudyError, match="train.split_like is set by the study"):
        parse_study(study_data(tmp_path, train={"split_like": "dev"}))


def test_the_progress_counter_counts_reseeds_as_its_total_does(tmp_path) -> None:
    from petl_search.analysis.summary import progress_line
    from petl_search.search.optuna_bridge.records import TrialRecord

    spec = parse_study(study_data(tmp_path))
    records = [TrialRecord(i, "COMPLETE", kind, "lora(r=2)", 0.8, 100, 0.01, seed=seed, learning_rate=1e-3)
               for i, (kind, seed) in enumerate([("search", 0), ("baseline", 0), ("reseed", 1)])]
    assert progress_line(records[2], records, 5, spec, 60.0).startswith("[3/5] #2 reseed")


def test_a_tuned_method_at_two_rates_is_two_points_not_two_seeds() -> None:
    from petl_search.analysis.front import methods
    from petl_search.search.optuna_bridge.records import TrialRecord

    def baseline(number, rate, seed, metric):
        return TrialRecord(number, "COMPLETE", "baseline", "houlsby(r=24)", metric, 226080, 0.00995, seed=seed,
                           learning_rate=rate, preset="houlsby", preset_args={"r": 24})

    points = methods([baseline(0, 6e-3, 0, 0.85), baseline(1, 6e-4, 0, 0.80), baseline(2, 6e-3, 1, 0.84)],
                     "accuracy")
    assert sorted((m.number, m.scores) for m in points) == [(0, (0.85, 0.84)), (1, (0.80,))]


def test_a_trial_line_names_the_seed_the_rate_and_what_it_confirms() -> None:
    from petl_search.search.optuna_bridge.records import TrialRecord
    from petl_search.search.runner.ray_runner import trial_line

    line = trial_line(TrialRecord(7, "COMPLETE", "confirm", "houlsby(r=24)", 0.845, 226080, 0.00995, seed=101,
                                  learning_rate=0.00604, extra={"confirm_of": 1}))
    assert line == "#7 confirm of #1 houlsby(r=24) (seed 101, lr 0.00604): 0.8450 at 0.995%"
