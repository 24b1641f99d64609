"""search/optuna_bridge/storage.py's `Store`, the one place that calls an Optuna storage directly: it writes by trial number
to its own study's trials only (another study in the same storage has the same numbers), reaches trials
that another study object (another process) opened, adds a running trial without the sampler or the
queue, and reports an Optuna outside the checked major."""
from __future__ import annotations

import warnings

import optuna
import pytest

from petl_search.search.optuna_bridge.storage import CHECKED_OPTUNA_MAJOR, Store, check_optuna_version

RUNNING = optuna.trial.TrialState.RUNNING


class CountingSampler(optuna.samplers.RandomSampler):
    """A random sampler that counts the trials it is told about (`before_trial`: every ask)."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.asked = 0

    def before_trial(self, study, trial) -> None:
        self.asked += 1
        super().before_trial(study, trial)


@pytest.fixture(params=["sqlite", "memory"])
def url(request, tmp_path) -> str | None:
    return f"sqlite:///{tmp_path / 'study.db'}" if request.param == "sqlite" else None


def open_two(url: str | None) -> tuple[Store, optuna.Study]:
    """Our study, created second in a storage whose first study already holds trials 0 and 1 (so trial
    ids and numbers differ, and each number exists in both studies)."""
    storage = optuna.storages.get_storage(url)
    other = optuna.create_study(study_name="other", storage=storage)
    other.add_trials([optuna.trial.create_trial(value=1.0), optuna.trial.create_trial(value=2.0)])
    ours = optuna.create_study(study_name="ours", storage=storage, sampler=CountingSampler())
    return Store(ours, storage), other


def test_add_trial_takes_neither_the_sampler_nor_the_queue(url) -> None:
    store, _ = open_two(url)
    store.study.enqueue_trial({"x": 1.0})  # trial 0, waiting
    template = optuna.trial.create_trial(state=RUNNING, user_attrs={"kind": "baseline"})
    template.set_constraint("budget", -0.5)
    number = store.add_trial(template)
    trials = store.study.get_trials()
    assert number == 1 and [t.state for t in trials] == [optuna.trial.TrialState.WAITING, RUNNING]
    assert trials[1].user_attrs == {"kind": "baseline"}
    assert store.study.sampler.asked == 0


def test_attributes_go_to_our_study_trial_of_that_number(url) -> None:
    store, other = open_two(url)
    for _ in range(2):
        store.add_trial(optuna.trial.create_trial(state=RUNNING))
    store.set_trial_attr(1, "label", "mam")
    assert [t.user_attrs for t in store.study.get_trials()] == [{}, {"label": "mam"}]
    assert all(t.user_attrs == {} for t in other.get_trials())


def test_a_trial_another_process_opened_is_written_and_closed_by_number(tmp_path) -> None:
    """What `reconcile` does with a dead driver's trial: that driver's study object (its own storage
    object, as in another process) asked for the trial; ours writes its attributes and fails it."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    store, _ = open_two(url)
    dead = optuna.load_study(study_name="ours", storage=url)
    left_running = dead.ask().number
    store.set_trial_attr(left_running, "interrupted", True)
    store.study.tell(left_running, state=optuna.trial.TrialState.FAIL)
    trial = optuna.load_study(study_name="ours", storage=url).get_trials()[left_running]
    assert trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs == {"interrupted": True}


def test_the_installed_optuna_is_a_checked_one() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_optuna_version() is True
        assert check_optuna_version(f"{CHECKED_OPTUNA_MAJOR}.99.0") is True


@pytest.mark.parametrize("version", ["4.5.0", "6.0.0", "6.0.0.dev"])
def test_an_unchecked_optuna_version_is_reported(version: str) -> None:
    with pytest.warns(UserWarning, match=rf"Optuna {version} is installed.*optuna>=5,<6"):
        assert check_optuna_version(version) is False
