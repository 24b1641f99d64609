"""Whole studies on local Ray with 2 workers, a tiny real-architecture model and a toy task: the storage
holds every trial and the front; a study killed mid-run resumes without losing or double counting a trial;
`petl-search search/status` print progress and fronts, and a bad study is one clear error."""
from __future__ import annotations

import contextlib
import os
import pickle
import sqlite3
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import yaml
from ray import cloudpickle

from petl_search.cli import main
from petl_search.core.config import PETLConfig
from petl_search.core.errors import PETLError
from petl_search.analysis.front import front, methods
from petl_search.search.optuna_bridge.proposer import Proposer
from petl_search.search.runner.ray_runner import _searcher_class
from petl_search.search.optuna_bridge.records import read_records
from petl_search.search.optuna_bridge.storage import open_store, open_study
from petl_search.search.language.study import load_study, parse_study

from conftest import TINY_CONFIGS

ROOT = Path(__file__).resolve().parents[1]


def write_study(folder: Path, name: str, **overrides) -> Path:
    data = {"name": name, "model": str(folder / "model"), "task": "sst2", "data_dir": str(folder / "glue"),
            "space": str(ROOT / "search_spaces" / "unified.yaml"), "budget": 0.05,
            "sampler": {"name": "tpe", "seed": 0, "startup_trials": 3}, "n_trials": 5, "concurrency": 2,
            "resources": {"cpus": 1}, "early_stopping": {"grace_evals": 1, "reduction_factor": 2},
            "train": {"max_steps": 60, "eval_every": 20, "batch_size": 16, "learning_rate": 0.01},
            "baselines": ["lora"]}
    data.update(overrides)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_study_runs_on_two_ray_workers_and_its_storage_holds_trials_and_front(toy, capsys) -> None:
    path = write_study(toy, "e2e")
    spec = load_study(path)
    assert main(["search", str(path)]) == 0  # as a user runs it: progress lines, then the front
    out = capsys.readouterr().out
    records = read_records(optuna.load_study(study_name="e2e", storage=spec.storage))
    trained = [r for r in records if r.kind in ("search", "baseline")]
    assert sum(r.kind == "search" for r in trained) == 5 and sum(r.kind == "baseline" for r in trained) == 1
    assert all(r.state in ("COMPLETE", "PRUNED", "FAIL") for r in trained)
    assert all(r.reason for r in trained if r.state != "COMPLETE")  # every non-success says why
    baseline = next(r for r in trained if r.kind == "baseline")
    assert baseline.state == "COMPLETE"  # baselines are never stopped early: they are the reference
    assert max(r.metric for r in trained if r.metric is not None) > 0.7  # the toy task is learnt in 60 steps
    line = front(methods(records, spec.main_metric))
    assert line and all(PETLConfig.from_dict(m.record.config) != PETLConfig() or m.stored_params == 0 for m in line)
    assert all(r.evaluated_on == "search split" and r.dev_scores for r in trained if r.state == "COMPLETE")
    assert all(r.stored_fraction <= 0.05 for r in trained)
    # two trials ran at the same time: some trial started before another one ended
    spans = sorted((t.datetime_start, t.datetime_complete) for t in optuna.load_study(
        study_name="e2e", storage=spec.storage).get_trials() if t.user_attrs.get("kind") in ("search", "baseline"))
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))
    assert "[6/6]" in out and "Pareto front" in out and "best baseline on the search split: lora(r=" in out
    # status prints the same front from the storage
    assert main(["status", str(toy / "e2e.yaml")]) == 0
    status = capsys.readouterr().out
    for m in line:
        assert f"{m.stored_params:,}" in status


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "gp", "random"])
def test_the_searcher_ray_pickles_does_so_with_every_sampler_and_is_never_restored(tmp_path, sampler) -> None:
    """Ray's Tuner pickles its searcher before it trains anything (for Tuner.restore). Optuna 5.1's NSGA-II
    sampler holds a thread lock and does not pickle, which stopped every NSGA-II study (each one-shot study)
    there. A study resumes from its storage, so what a pickled searcher turns into is a clear refusal."""
    spec = parse_study({"name": "p", "model": "tiny", "task": "sst2", "budget": 0.05, "n_trials": 4,
                        "space": str(ROOT / "search_spaces" / "unified.yaml"), "sampler": {"name": sampler},
                        "storage": f"sqlite:///{tmp_path / 'study.db'}"})
    searcher = _searcher_class()(Proposer(open_store(spec), spec, TINY_CONFIGS["bert"]()),
                                 {"ray_dir": str(tmp_path / "ray")})
    pickled = cloudpickle.dumps(searcher)
    with pytest.raises(PETLError, match="cannot be restored with Tuner.restore: a study resumes from its storage"):
        pickle.loads(pickled)


def test_a_oneshot_study_trains_a_supernet_scores_designs_and_trains_its_top_k_stand_alone(toy, capsys,
                                                                                           monkeypatch) -> None:
    def no_model_in_the_driver(*args, **kwargs):
        raise AssertionError("the driver loaded the model: stages 1-2 must run in a child process")

    # the child is spawned, so it imports the real load_model; this process must never call it
    monkeypatch.setattr("petl_search.search.oneshot.pipeline.load_model", no_model_in_the_driver)
    path = write_study(toy, "oneshot", strategy="oneshot", n_trials=None, sampler={"name": "nsga2", "seed": 0,
                       "population_size": 6}, early_stopping=None,
                       oneshot={"supernet_steps": 40, "random_designs": 1, "designs": 12, "eval_examples": 64,
                                "top_k": 3})
    data = yaml.safe_load(path.read_text())
    del data["n_trials"]
    path.write_text(yaml.safe_dump(data))
    spec = load_study(path)
    assert main(["search", str(path)]) == 0
    out = capsys.readouterr().out
    assert "one-shot: supernet step 40/40" in out and "one-shot: 12/12 designs scored" in out
    assert (toy / "oneshot" / "supernet.safetensors").is_file()
    designs = optuna.load_study(study_name="oneshot.oneshot", storage=spec.storage)
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in designs.trials) == 12
    records = read_records(optuna.load_study(study_name="oneshot", storage=spec.storage))
    search = [r for r in records if r.kind == "search"]
    queued = optuna.load_study(study_name="oneshot", storage=spec.storage).user_attrs["oneshot_queued"]
    assert len(search) == 3 and sorted(r.extra["oneshot_design"] for r in search) == sorted(queued)
    for r in search:  # each trains the design it was queued for, as an ordinary trial judged on dev at the end
        assert r.config == designs.trials[r.extra["oneshot_design"]].user_attrs["config"]
        assert r.state == "COMPLETE" and r.dev_scores
    assert sum(r.kind == "baseline" for r in records) == 1
    # a second run finds every stage done: no supernet training, no design scored, nothing queued again
    assert main(["search", str(path)]) == 0
    again = capsys.readouterr().out
    assert "supernet step" not in again and "designs scored" not in again and "already has its" in again
    # the report sets each chosen design's inherited score beside its stand-alone one
    assert main(["report", str(path)]) == 0
    report = capsys.readouterr().out
    section = report[report.index("## One-shot: the supernet's choice"):]
    assert "A supernet trained 40 steps scored 12 designs" in section
    for r in search:
        inherited = designs.trials[r.extra["oneshot_design"]].values[0]
        assert f"| #{r.number} | {r.extra['oneshot_design']} | {inherited:.4f} | {r.metric:.4f} |" in section


def study_is_made(database: Path, name: str) -> bool:
    """Whether the study `name` exists in the SQLite file, read without writing (no schema stamped here)."""
    if not database.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
            return connection.execute("SELECT COUNT(*) FROM studies WHERE study_name = ?", (name,)).fetchone()[0] > 0
    except sqlite3.Error:  # no tables yet, or locked while the driver writes
        return False


def test_a_killed_study_resumes_without_losing_or_recounting_trials(toy, capsys) -> None:
    """While a driver runs, a second one is refused and `status` says running; once it is killed,
    `status` says interrupted, and the next `search` takes over and re-runs exactly what was lost."""
    path = write_study(toy, "killed", n_trials=6, baselines=[], early_stopping=None,
                       train={"max_steps": 240, "eval_every": 80, "batch_size": 16, "learning_rate": 0.01})
    spec = load_study(path)
    command = [sys.executable, "-m", "petl_search.cli", "search", str(path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 600  # generous: a loaded machine starts Ray and trains slowly
        while time.time() < deadline:  # wait for one finished trial while others run
            time.sleep(0.5)
            if process.poll() is not None:
                pytest.fail(f"the study ended before the kill: {process.stdout.read().decode()[-3000:]}")
            # Open the storage only once the driver has made the study in it: opening it earlier stamps the
            # schema from this process too, and a driver that lost that race once stopped at its start
            # while this loop waited out its deadline.
            if study_is_made(spec.folder / "study.db", "killed"):
                try:
                    trials = optuna.load_study(study_name="killed", storage=spec.storage).get_trials()
                except (KeyError, sqlalchemy.exc.SQLAlchemyError):  # busy: the driver is writing
                    continue
                # a search trial younger than half the shortest finished one cannot finish before the
                # kill below lands; measuring the machine's own trial time keeps slow machines in the window
                durations = [t.datetime_complete.timestamp() - t.user_attrs["started"] for t in trials
                             if t.state == optuna.trial.TrialState.COMPLETE]
                if durations and any(
                        t.state == optuna.trial.TrialState.RUNNING and t.user_attrs.get("kind") == "search"
                        and time.time() - t.user_attrs.get("started", 0) < min(durations) / 2 for t in trials):
                    break
        else:
            pytest.fail("the study never had a finished and a running trial at once")
        capsys.readouterr()
        assert main(["search", str(path)]) == 2  # a second driver on the same storage
        assert "is being run by another driver (pid " in capsys.readouterr().err
        assert main(["status", str(path)]) == 0
        assert "running now: #" in capsys.readouterr().out
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the driver and everything it started, at once
        process.wait()
    before = {t.number: (t.state, t.values) for t in optuna.load_study(study_name="killed",
                                                                        storage=spec.storage).get_trials()}
    finished_before = {n for n, (state, _) in before.items() if state == optuna.trial.TrialState.COMPLETE}
    running_before = {n for n, (state, _) in before.items() if state == optuna.trial.TrialState.RUNNING}
    assert finished_before and running_before
    assert main(["status", str(path)]) == 0
    status = capsys.readouterr().out
    assert "interrupted (their driver is gone" in status and "running now" not in status
    assert f"{len(running_before)} interrupted" in status

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming: trials {sorted(running_before)} were interrupted" in resumed.stdout
    study = optuna.load_study(study_name="killed", storage=spec.storage)
    after = {t.number: t for t in study.get_trials()}
    for n in finished_before:  # nothing finished was lost or re-told
        assert (after[n].state, after[n].values) == before[n]
    for n in running_before:
        assert after[n].state == optuna.trial.TrialState.FAIL and after[n].user_attrs["interrupted"]
    counted = [t for t in after.values() if t.user_attrs.get("kind") == "search" and
               not t.user_attrs.get("interrupted")]
    assert len(counted) == 6 and all(t.state.is_finished() for t in counted)  # exactly n_trials, none twice
    configs = [PETLConfig.from_dict(t.user_attrs["petl_config"]).fingerprint() for t in counted]
    assert len(set(configs)) == len(configs)
    for n in running_before:  # each interrupted candidate was trained again (a half-made proposal needs not)
        if after[n].user_attrs.get("kind") == "search":
            assert after[n].user_attrs["petl_config"] in [t.user_attrs["petl_config"] for t in counted]
        else:
            assert after[n].user_attrs["reason"] == "interrupted while being proposed; nothing was trained"
    assert any(after[n].user_attrs.get("kind") == "search" for n in running_before)


def test_search_and_status_reject_bad_input_in_one_line(toy, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntask: sst2\nspace: nowhere.yaml\nbudget: 0.01\n")
    assert main(["search", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("petl-search: error: ") and "nowhere.yaml" in err and err.count("\n") == 1
    fresh = write_study(toy, "never_run")
    assert main(["status", str(fresh)]) == 2
    assert "has no results yet" in capsys.readouterr().err
    assert main(["search", str(fresh), "--n-trials", "0"]) == 2
    assert "--n-trials must be a positive integer" in capsys.readouterr().err
    missing_data = write_study(toy, "no_data", data_dir=str(tmp_path))
    assert main(["search", str(missing_data)]) == 2
    assert "SST-2/train.tsv not found" in capsys.readouterr().err
