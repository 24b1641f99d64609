"""A round that Ray Tune gives up on: when Ray kills a worker in a way Tune does not treat as a trial's failure
(its memory monitor killing a worker Tune is starting, as happened to a contest study on this machine: Tune
re-raised the OutOfMemoryError as `RuntimeError: Caught unexpected exception`, and the driver died with it),
the study goes on: the round's running trials are lost as a dead node's are, and the next round trains them
again. The kill is simulated where Tune meets it, in its actor manager, with Ray's own exception as the cause.
"""
from __future__ import annotations

import optuna
import pytest
from ray.air.execution._internal import actor_manager
from ray.exceptions import OutOfMemoryError

from petl_search.search.language.study import load_study
from petl_search.search.optuna_bridge.records import read_records
from petl_search.search.runner.ray_runner import LOST, run_study

from test_search import write_study

KILLED = "1 worker(s) were killed due to the node running low on memory."


def kill_once(monkeypatch, *, cause: Exception, at: int = 1) -> dict:
    """Tune's actor manager raises as Tune 2.x does for an unexpected Ray error, at its `at`-th task result."""
    original, calls = actor_manager.RayActorManager._actor_task_resolved, {"n": 0}

    def resolved(self, tracked_actor_task, result):
        calls["n"] += 1
        if calls["n"] == at:
            raise RuntimeError(f"Caught unexpected exception: {cause}") from cause
        return original(self, tracked_actor_task, result)

    monkeypatch.setattr(actor_manager.RayActorManager, "_actor_task_resolved", resolved)
    return calls


def study(toy, name: str):
    return load_study(write_study(toy, name, n_trials=3, baselines=[], early_stopping=None,
                                  train={"max_steps": 40, "eval_every": 20, "batch_size": 16, "learning_rate": 0.01}))


def test_a_round_ray_tune_gives_up_on_is_run_again_and_the_study_ends_with_n_trials(toy, monkeypatch) -> None:
    spec = study(toy, "killed_round")
    calls = kill_once(monkeypatch, cause=OutOfMemoryError(f"{KILLED}\nMemory on the node (IP: ...) was 22GB used"))
    lines: list[str] = []
    run_study(spec, progress=lines.append)
    assert calls["n"] > 1  # the study went on after the kill
    records = read_records(optuna.load_study(study_name=spec.name, storage=spec.storage))
    lost = [r for r in records if r.extra.get(LOST)]
    assert lost and all(r.state == "FAIL" and r.extra["interrupted"] for r in lost), lost
    assert all(r.extra[LOST] == f"Ray killed its worker ({KILLED})" for r in lost)
    counted = [r for r in records if r.kind == "search" and not r.extra.get("interrupted")]
    assert len(counted) == 3 and all(r.state == "COMPLETE" for r in counted), [(r.state, r.reason) for r in counted]
    assert all(r.config in [c.config for c in counted] for r in lost)  # what they were training ran again
    assert f"Ray Tune stopped the round: {KILLED}" in lines
    assert any(line.startswith(f"trials #{lost[0].number}") and "running them again" in line for line in lines)


def test_an_error_of_tune_itself_is_not_taken_for_a_lost_worker(toy, monkeypatch) -> None:
    spec = study(toy, "tune_bug")
    kill_once(monkeypatch, cause=ValueError("a bug in Tune"))
    with pytest.raises(RuntimeError, match="a bug in Tune"):
        run_study(spec, progress=lambda line: None)
