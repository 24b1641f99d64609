"""The early-stopping scheduler and the trial agree on how long a trial is: a trial reports to ASHA exactly
`max_t` times, so ASHA's rungs (placed up to max_t) are all reachable, and its stop at max_t falls on the
last report, the one that carries the trial's record, never before it (which would lose the record)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import ray.tune
from ray.tune.schedulers import TrialScheduler

import petl_search as ps
from petl_search.search.ray_runner import SCORE, evaluations, make_scheduler, run_candidate
from petl_search.search.study import parse_study
from petl_search.toy import write_tiny_model, write_toy_glue

SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "unified.yaml"


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("toy")
    write_tiny_model(folder / "model")
    write_toy_glue(folder / "glue")
    return folder


# (max_steps, eval_every): evaluations land inside, beyond, on, one short of and one past the end
@pytest.mark.parametrize("max_steps, eval_every", [(60, 20), (50, 100), (100, 100), (101, 20), (300, 100), (7, 3),
                                                   (1, 1), (2, 1), (20, 1)])
def test_a_trial_reports_to_asha_exactly_max_t_times(toy, tmp_path, monkeypatch, max_steps, eval_every) -> None:
    spec = parse_study({
        "name": "t", "model": str(toy / "model"), "task": "sst2", "data_dir": str(toy / "glue"),
        "space": str(SPACE), "budget": 0.05, "n_trials": 1, "sampler": {"name": "random", "seed": 0},
        "storage": f"sqlite:///{tmp_path / 'study.db'}", "early_stopping": {"grace_evals": 1, "reduction_factor": 2},
        "train": {"max_steps": max_steps, "eval_every": eval_every, "batch_size": 8, "learning_rate": 0.01,
                  "eval_examples": 16}})
    scheduler = make_scheduler(spec)
    max_t = scheduler._max_t  # Ray 2.60's ASHAScheduler keeps it here
    assert max_t == evaluations(spec) and scheduler._time_attr == "training_iteration"

    reports = []
    monkeypatch.setattr(ray.tune, "report", lambda metrics, **kw: reports.append(dict(metrics)))
    run = {"task": spec.task, "model": spec.model, "data_dir": spec.data_dir, "main_metric": spec.main_metric,
           "train": {**spec.train, "threads": 1}}  # as run_study builds it
    run_candidate({"candidate": {"petl_config": ps.presets.lora(r=2).to_dict(), "seed": 0, "kind": "search"},
                   "run": run})

    steps = [r["step"] for r in reports]
    assert len(steps) == max_t, f"reports at steps {steps} for max_t={max_t} ({max_steps=}, {eval_every=})"
    assert "record" in reports[-1] and not any("record" in r for r in reports[:-1])
    assert reports[-1]["step"] == max_steps and '"status": "completed"' in reports[-1]["record"]

    # Replay them into the scheduler as Ray would (training_iteration counts reports): a lone trial is never
    # behind the others, so ASHA continues until max_t, and stops it exactly at the report with the record.
    trial = SimpleNamespace(trial_id="0", config={"candidate": {"kind": "search"}})
    scheduler.on_trial_add(None, trial)
    decisions = [scheduler.on_trial_result(None, trial, {**r, "training_iteration": i + 1})
                 for i, r in enumerate(reports)]
    assert decisions == [TrialScheduler.CONTINUE] * (max_t - 1) + [TrialScheduler.STOP]
    assert all(SCORE in r for r in reports)
