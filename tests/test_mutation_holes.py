"""Tests written against mutations of the code that no other test failed under (issue #19, item 13).

The trainer's half (a trial trains on all of train, search split included) is closed in test_trainer.py:
`test_a_trial_never_trains_on_a_search_split_example`.
"""
from __future__ import annotations

import optuna

import petl_search as ps
from petl_search.core.params import count_params
from petl_search.search.optuna_bridge.proposer import Proposer
from petl_search.search.optuna_bridge.records import read_records
from petl_search.search.optuna_bridge.storage import open_store
from petl_search.search.language.study import load_study
from petl_search.toy import write_toy_study
from petl_search.training.models import load_model_config


def test_automatic_reseeds_go_to_the_best_front_points_by_the_selected_score(tmp_path) -> None:
    """A study that asks for its front's best 2 points to be reseeded, with five search points stored as
    trained (no training here): four on the front (more parameters, higher score) and one off it, whose
    score is the second best. The reseeds go to the two front points with the highest search-split scores,
    the best first; not to the front's worst, not to the dominated point, and not by the dev scores (which
    here rank the points the other way round)."""
    spec = load_study(write_toy_study(tmp_path, "holes", n_trials=5, reseed={"top": 2, "seeds": [1]}))
    store = open_store(spec)
    model_config = load_model_config(spec.model)
    numbers = {}
    for r, score in ((1, 0.70), (2, 0.80), (4, 0.85), (8, 0.90), (16, 0.88)):  # r=16 is dominated by r=8
        config = ps.presets.lora(r=r)
        stored = count_params(config, model_config).stored
        numbers[r] = store.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, values=[score, stored],
            user_attrs={"kind": "search", "label": config.describe(), "petl_config": config.to_dict(),
                        "seed": spec.seed, "stored_params": stored, "evaluated_on": "search split",
                        "dev_metrics": {spec.main_metric: 1.0 - score}}))
    proposer = Proposer(store, spec, model_config)
    assert proposer.remaining == 2
    candidates = [proposer.next(), proposer.next()]
    assert proposer.next() is None
    assert [c.kind for c in candidates] == ["reseed", "reseed"] and [c.seed for c in candidates] == [1, 1]
    reseeded = [r.extra["reseed_of"] for r in read_records(store.study) if r.kind == "reseed"]
    assert reseeded == [numbers[8], numbers[4]]
