"""The early-stopping scheduler (MO-ASHA) and the trial agree on how long a trial is: a trial reports
exactly `max_t` times, so the rungs (placed up to max_t) are all reachable, and the stop at max_t falls on
the last report, the one that carries the trial's record, never before it (which would lose the record).
MO-ASHA ranks a rung on (score, stored parameters): it keeps the cheap end of the front that metric-only
ASHA stops, stops what is dominated, and never stops a baseline or a reseed."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import ray.tune
from ray.tune.schedulers import TrialScheduler

import petl_search as ps
from petl_search.search.runner.ray_runner import SCORE, evaluations, make_scheduler, run_candidate
from petl_search.search.language.study import parse_study

SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "unified.yaml"


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
    max_t = scheduler.max_t
    assert max_t == evaluations(spec) and scheduler.time_attr == "training_iteration"

    reports = []
    monkeypatch.setattr(ray.tune, "report", lambda metrics, **kw: reports.append(dict(metrics)))
    run = {"task": spec.task, "model": spec.model, "data_dir": spec.data_dir, "main_metric": spec.main_metric,
           "train": {**spec.train, **spec.split_fields, "threads": 1}}  # as run_study builds it
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


def trial(number: int, stored: int, kind: str = "search") -> SimpleNamespace:
    return SimpleNamespace(trial_id=str(number), config={"candidate": {"kind": kind, "stored_params": stored}})


def test_mo_asha_keeps_a_small_slow_point_that_metric_only_asha_stops() -> None:
    """Rung 1, η=2: a large point scores 0.80; a small one (a tenth of its parameters) 0.70. Metric-only ASHA
    stops the small one (0.70 < the median 0.80); on (score, stored) both are on the front, so it goes on."""
    from petl_search.search.runner.schedulers import MOASHA

    scheduler = MOASHA(metric=SCORE, max_t=4, grace_period=1, reduction_factor=2)
    big, small, worse = trial(0, 100_000), trial(1, 10_000), trial(2, 100_000)
    assert scheduler.on_trial_result(None, big, {SCORE: 0.80, "training_iteration": 1}) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, small, {SCORE: 0.70, "training_iteration": 1}) == TrialScheduler.CONTINUE
    # dominated by `big` (same size, lower score) and not in the top half: stopped
    assert scheduler.on_trial_result(None, worse, {SCORE: 0.75, "training_iteration": 1}) == TrialScheduler.STOP
    assert scheduler.stopped == ["2"]
    # the same three under ASHA's rule (score only): the small one would have been the one stopped
    from ray.tune.schedulers import ASHAScheduler

    asha = ASHAScheduler(metric=SCORE, mode="max", max_t=4, grace_period=1, reduction_factor=2)
    for t in (big, small):
        asha.on_trial_add(None, t)
    asha.on_trial_result(None, big, {SCORE: 0.80, "training_iteration": 1})
    assert asha.on_trial_result(None, small, {SCORE: 0.70, "training_iteration": 1}) == TrialScheduler.STOP


def test_mo_asha_never_stops_a_baseline_a_reseed_or_a_confirmation_but_ranks_them() -> None:
    from petl_search.search.runner.schedulers import MOASHA

    def verdict(kind: str) -> str:
        """A point dominated by both earlier points of its rung: last of 3, outside the top ⌈3/2⌉."""
        scheduler = MOASHA(metric=SCORE, max_t=4, grace_period=1, reduction_factor=2)
        scheduler.on_trial_result(None, trial(0, 10), {SCORE: 0.9, "training_iteration": 1})
        scheduler.on_trial_result(None, trial(1, 10), {SCORE: 0.8, "training_iteration": 1})
        return scheduler.on_trial_result(None, trial(2, 20, kind), {SCORE: 0.5, "training_iteration": 1})

    assert verdict("search") == TrialScheduler.STOP
    assert [verdict(kind) for kind in ("baseline", "reseed", "confirm")] == [TrialScheduler.CONTINUE] * 3

    scheduler = MOASHA(metric=SCORE, max_t=4, grace_period=1, reduction_factor=2)
    scheduler.on_trial_result(None, trial(0, 10), {SCORE: 0.9, "training_iteration": 1})
    for number, kind in ((1, "baseline"), (2, "reseed"), (3, "confirm")):  # all dominated by trial 0
        assert scheduler.on_trial_result(None, trial(number, 20, kind), {SCORE: 0.5, "training_iteration": 1}) \
            == TrialScheduler.CONTINUE, kind
    assert set(scheduler.rungs[1]) == {"0", "1", "2", "3"} and scheduler.stopped == []
    # their results count: a search point below them is ranked behind them too, and stopped
    assert scheduler.on_trial_result(None, trial(4, 20), {SCORE: 0.45, "training_iteration": 1}) == TrialScheduler.STOP


def test_the_rungs_and_the_rank_rule() -> None:
    from petl_search.search.runner.schedulers import continues, milestones

    assert milestones(9, 1, 3) == [3, 1] and milestones(5, 2, 2) == [4, 2] and milestones(1, 1, 2) == []
    assert continues((0.5, -10.0), [], 2)  # the first at a rung goes on
    assert not continues((0.5, -10.0), [(0.6, -5.0)], 2)  # dominated, in a rung of 2
    assert continues((0.5, -1.0), [(0.6, -5.0)], 2)  # a trade-off: both on the front, the extremes kept
    # 5 points on one front, η=2: the top 3 by crowding are the two extremes and the lonelier middle one
    front = [(0.9, -50.0), (0.8, -40.0), (0.7, -10.0), (0.6, -9.0)]
    assert continues((0.5, -1.0), front, 2)  # an extreme (the smallest)
    assert not continues((0.65, -9.5), front, 2)  # crowded between two neighbours
