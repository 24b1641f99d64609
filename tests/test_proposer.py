"""The proposer's choices that need no training: which front points get the reseeds, and how the work left
is said (trials stored as trained, no model run)."""
from __future__ import annotations

import optuna

import petl_search as ps
from petl_search.core.config import PETLConfig
from petl_search.core.params import count_params
from petl_search.search.optuna_bridge.proposer import Proposer, constant_scores
from petl_search.search.optuna_bridge.records import read_records
from petl_search.search.optuna_bridge.storage import REFERENCES_KEY, open_store
from petl_search.search.language.study import load_study
from petl_search.toy import write_toy_study
from petl_search.training.models import load_model_config


def store_search_point(store, spec, model_config, config: PETLConfig, score: float,
                       evaluated_on: str = "search split") -> int:
    """A search trial stored as trained to the end with `score` (nothing is trained)."""
    stored = count_params(config, model_config).stored
    return store.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.COMPLETE, values=[score, stored],
        user_attrs={"kind": "search", "label": config.describe(), "petl_config": config.to_dict(),
                    "seed": spec.seed, "stored_params": stored, "evaluated_on": evaluated_on}))


def test_reseeds_skip_the_frozen_backbone_and_points_no_better_than_a_constant_answer(tmp_path) -> None:
    """A queued frozen backbone (0 stored parameters, 0.86) sits on the front trivially and dominates the small
    points; a point at exactly what a constant answer scores on the search split (0.52) is on the real front
    too. With top 3, the reseeds go to the two real front points above the constant answer, the best first:
    not to the frozen backbone (which took a slot on RTE and MRPC), not to the collapsed point."""
    spec = load_study(write_toy_study(tmp_path, "targets", n_trials=5, reseed={"top": 3, "seeds": [1]}))
    store = open_store(spec)
    store.study.set_user_attr(REFERENCES_KEY, {"search split": {"accuracy": 0.52}, "dev": {"accuracy": 0.51}})
    model_config = load_model_config(spec.model)
    number = {name: store_search_point(store, spec, model_config, config, score) for name, config, score in (
        ("frozen", PETLConfig(), 0.86), ("r1", ps.presets.lora(r=1), 0.52), ("r2", ps.presets.lora(r=2), 0.60),
        ("r8", ps.presets.lora(r=8), 0.90), ("r16", ps.presets.lora(r=16), 0.88))}  # r16: dominated by r8
    proposer = Proposer(store, spec, model_config)
    candidates = [proposer.next(), proposer.next()]
    assert proposer.next() is None
    assert [c.kind for c in candidates] == ["reseed", "reseed"]
    reseeded = [r.extra["reseed_of"] for r in read_records(store.study) if r.kind == "reseed"]
    assert reseeded == [number["r8"], number["r2"]]


def test_a_point_is_measured_against_the_constant_answer_on_the_set_it_was_selected_on() -> None:
    from types import SimpleNamespace

    from petl_search.search.optuna_bridge.proposer import worth_reseeding

    constant = constant_scores({"search split": {"f1": 0.81, "accuracy": 0.68}, "dev": {"f1": 0.70}, "x": None},
                               "f1")
    assert constant == {"search split": 0.81, "dev": 0.70}
    assert constant_scores(None, "f1") == {} and constant_scores({"dev": {"accuracy": 0.5}}, "f1") == {}

    def point(score, where, stored=10):
        return SimpleNamespace(metric=score, evaluated_on=where, stored_params=stored)

    assert not worth_reseeding(point(0.80, "search split"), constant)  # below the split's 0.81
    assert worth_reseeding(point(0.80, "dev"), constant)  # above dev's 0.70: a study that selects on dev
    assert not worth_reseeding(point(0.70, "dev"), constant)  # at it
    assert worth_reseeding(point(0.10, "search split"), {})  # an older storage without references
    assert not worth_reseeding(point(0.99, "dev", stored=0), constant)  # no Δh


def test_the_work_left_is_said_by_kind_with_bounds_said_as_bounds(tmp_path) -> None:
    """A fresh study with 6 search trials, no baselines, reseeds and confirmations: the reseeds and the
    confirmations are counted at their most (the front and the picks are not known yet), and say so."""
    from types import SimpleNamespace

    spec = load_study(write_toy_study(tmp_path, "left", n_trials=6, reseed={"top": 2, "seeds": [1, 2]},
                                      confirm={"seeds": [100, 101, 102]}))
    proposer = Proposer(open_store(spec), spec, load_model_config(spec.model))
    assert proposer.remaining == 6 + 4 + 6  # 1 claim size x (2 search picks) x 3 seeds
    assert proposer.remaining_text() == "6 search trials, 0 baselines, up to 4 reseeds, up to 6 confirmations"
    # once the picks are known, the count is exact; one of a kind is singular; a study without reseeds or
    # confirmations does not mention them; a bound of 0 is no bound
    known = SimpleNamespace(spec=spec, search_left=1, baselines=["lora"], reseeds_left=0, confirm_left=1,
                            confirm_exact=True)
    assert Proposer.remaining_text(known) == "1 search trial, 1 baseline, 0 reseeds, 1 confirmation"
    plain = SimpleNamespace(spec=SimpleNamespace(reseed=None, confirm=None), search_left=0, baselines=[0, 1])
    assert Proposer.remaining_text(plain) == "0 search trials, 2 baselines"
