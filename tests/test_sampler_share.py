"""A sampler that samples: after its start-up the model proposes, a repeat asks the model again, and a
study counts who proposed its trained points (issue 20, item 4)."""
from __future__ import annotations

import optuna
import pytest

from petl_search.analysis.sampling import TARGET_MODEL_SHARE, proposal_shares
from petl_search.search.language.study import parse_study
from petl_search.search.optuna_bridge.proposer import Proposer
from petl_search.search.optuna_bridge.samplers import MODEL_REPEATS, SearchStartup, proposal_source
from petl_search.search.optuna_bridge.storage import open_store
from petl_search.search.optuna_bridge.records import TrialRecord

from conftest import TINY_CONFIGS
from test_study import completed, study_data


def tpe_proposer(tmp_path, **overrides) -> Proposer:
    spec = parse_study(study_data(tmp_path, baselines=[], sampler={"name": "tpe", "seed": 0, "startup_trials": 1},
                                  **overrides))
    return Proposer(open_store(spec), spec, TINY_CONFIGS["bert"]())


def test_after_a_repeat_the_model_is_asked_again_and_falls_back_only_after_a_row_of_repeats(tmp_path) -> None:
    proposer = tpe_proposer(tmp_path, n_trials=4)
    first = proposer.next()
    assert proposal_source(proposer.study.sampler, first.number) == "startup"
    proposer.finish(first.number, completed(proposer, first.number, 0.9))
    sampler = proposer.study.sampler
    assert isinstance(sampler, SearchStartup)

    def ask_and_repeat() -> str:
        trial = proposer.study.ask()
        source = proposal_source(sampler, trial.number)
        proposer._tell_duplicate(trial, {}, first.number)
        return source

    # past the start-up every repeat is followed by the model again, MODEL_REPEATS times in a row ...
    assert [ask_and_repeat() for _ in range(MODEL_REPEATS + 1)] == ["model"] * (MODEL_REPEATS + 1)
    # ... then one random fallback, and the model again
    assert ask_and_repeat() == "fallback"
    assert ask_and_repeat() == "model"


def test_a_proposal_that_is_not_a_repeat_breaks_the_row(tmp_path) -> None:
    proposer = tpe_proposer(tmp_path, n_trials=4)
    first = proposer.next()
    proposer.finish(first.number, completed(proposer, first.number, 0.9))
    sampler = proposer.study.sampler
    for _ in range(MODEL_REPEATS):
        trial = proposer.study.ask()
        proposer._tell_duplicate(trial, {}, first.number)
    fresh = proposer.study.ask()  # not a repeat: told as rejected over budget, say
    proposer.study.tell(fresh, state=optuna.trial.TrialState.FAIL)
    for _ in range(MODEL_REPEATS):
        trial = proposer.study.ask()
        assert proposal_source(sampler, trial.number) == "model"
        proposer._tell_duplicate(trial, {}, first.number)


def record(number: int, kind: str, state: str, proposed_by: str | None) -> TrialRecord:
    return TrialRecord(number, state, kind, "x", 0.5, 10, 0.01, proposed_by=proposed_by)


def test_shares_count_trained_search_points_by_proposer() -> None:
    records = [record(0, "search", "COMPLETE", "startup"), record(1, "search", "COMPLETE", "model"),
               record(2, "search", "PRUNED", "model"), record(3, "search", "COMPLETE", "fallback"),
               record(4, "search", "FAIL", "model"), record(5, "baseline", "COMPLETE", None),
               record(6, "search", "COMPLETE", None)]
    shares = proposal_shares(records)
    assert shares.counts == {"startup": 1, "model": 2, "fallback": 1, "not recorded": 1}
    assert shares.model_share == pytest.approx(2 / 3)
    assert "the model proposed 67% of those after the start-up (below the 70% target)" in shares.sentence()
    assert proposal_shares([record(0, "search", "COMPLETE", "random")]).model_share is None
    assert TARGET_MODEL_SHARE == 0.7
