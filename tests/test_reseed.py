"""`petl-search reseed`: a study's point trained again with other seeds is stored as `reseed` trials that
reproduce a direct training run, stay off the front and out of the trial count, and are not retrained
when the command runs again; bad requests are refused before any training."""
from __future__ import annotations

import optuna
import pytest

from petl_search.cli import main
from petl_search.analysis.front import methods
from petl_search.search.optuna_bridge.records import counts, read_records
from petl_search.training.models import load_model_config
from petl_search.search.optuna_bridge.proposer import Proposer
from petl_search.search.optuna_bridge.storage import open_store
from petl_search.analysis.dashboard_data import front_plot
from petl_search.search.runner.inline import run_study_inline
from petl_search.search.language.study import load_study
from petl_search.toy import write_toy_study
from petl_search.training.trainer import train


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    spec = load_study(write_toy_study(tmp_path_factory.mktemp("toy"), "toy", n_trials=2,
                                      baselines=[{"preset": "lora", "args": {"r": 4}}]))
    run_study_inline(spec, progress=lambda line: None)
    return spec


def records_of(spec):
    return read_records(optuna.load_study(study_name=spec.name, storage=spec.storage))


def test_reseeds_are_stored_reproducible_and_kept_off_the_front(study, capsys) -> None:
    before = records_of(study)
    lora = next(r for r in before if r.kind == "baseline")
    assert main(["reseed", study.source, "--trial", str(lora.number), "--seeds", "1", "2"]) == 0
    out = capsys.readouterr().out
    after = records_of(study)
    reseeds = [r for r in after if r.kind == "reseed"]
    assert [(r.seed, r.state, r.extra["reseed_of"], r.label, r.config) for r in reseeds] == [
        (s, "COMPLETE", lora.number, lora.label, lora.config) for s in (1, 2)]
    # a reseed is the same training as a direct run with that seed
    direct = train(lora.config, study.task, model=study.model, data_dir=study.data_dir,
                   train_config=study.train_config(1))
    assert reseeds[0].metric == direct.metrics[study.main_metric]
    scores = [lora.metric] + [r.metric for r in reseeds]
    assert f"over seeds [0, 1, 2] ({', '.join(f'{x:.4f}' for x in scores)})" in out
    # more seeds of a point, not points: the study's points are what they were, the baseline has 3 seeds
    assert [m.number for m in methods(after, study.main_metric)] == [m.number for m in methods(before, study.main_metric)]
    assert next(m for m in methods(after, study.main_metric) if m.number == lora.number).scores == tuple(scores)
    def drawn(records):
        return {p.number for points in front_plot(records, study.main_metric, study.budget).groups.values()
                for p in points}
    assert drawn(after) == drawn(before)
    assert counts(after)["completed"] == counts(before)["completed"] and counts(after)["reseed"] == 2
    assert Proposer(open_store(study), study, load_model_config(study.model)).remaining == 0
    # again: the seeds it has are not trained twice
    assert main(["reseed", study.source, "--trial", str(lora.number), "--seeds", "2", "1"]) == 0
    assert "already has seeds [0, 1, 2]: nothing to train" in capsys.readouterr().err
    assert len(records_of(study)) == len(after)


def test_bad_reseed_requests_are_refused_before_training(study, capsys) -> None:
    records = records_of(study)
    search = next(r for r in records if r.kind == "search" and r.scored)
    for argv, message in [
            (["--trial", "999", "--seeds", "1"], "trial 999 is not in the study"),
            (["--trial", str(search.number), "--seeds", "3", "3"], "--seeds repeats a seed: [3, 3]")]:
        assert main(["reseed", study.source, *argv]) == 2
        assert message in capsys.readouterr().err
    assert len(records_of(study)) == len(records)
    # a reseed is not itself reseeded: the original is
    assert main(["reseed", study.source, "--trial", str(search.number), "--seeds", "5"]) == 0
    reseed = next(r for r in records_of(study) if r.kind == "reseed" and r.extra["reseed_of"] == search.number)
    capsys.readouterr()
    assert main(["reseed", study.source, "--trial", str(reseed.number), "--seeds", "6"]) == 2
    assert f"re-trained trial {search.number} with another seed: use that one" in capsys.readouterr().err


def test_an_interrupted_reseed_says_it_was_interrupted(study, capsys) -> None:
    """A reseed killed mid-training (its driver gone: the trial is left running) was handed out and
    trained: the reason it is failed with says it was interrupted and how it resumes, never that nothing
    was trained (what a proposal killed before it was handed out is told)."""
    from petl_search.search.optuna_bridge.storage import reconcile

    store = open_store(study)
    original = next(r for r in records_of(study) if r.kind == "baseline")
    killed = Proposer(store, study, load_model_config(study.model)).open_reseed(original, 7)  # then the process died
    reconcile(store)
    record = next(r for r in records_of(study) if r.number == killed.number)
    assert (record.state, record.kind, record.extra.get("interrupted")) == ("FAIL", "reseed", True)
    assert "nothing was trained" not in record.reason
    assert record.reason == (f"interrupted while training seed 7 again; `petl-search reseed` with that seed "
                             f"trains it again")
    stored = store.study.get_trials(deepcopy=False)[killed.number].user_attrs["reason"]
    assert stored == record.reason  # written so by reconcile, not only corrected when read
