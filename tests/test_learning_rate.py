"""The learning rate belongs to a design: a study's `train.learning_rate` may be a range, checked when the file
is read; the study's sampler samples each search trial's rate beside its Δh point; every trial records the rate
it trains at, and that rate is what the trainer gets (inline runs, reseeds, exports); the same design at another
rate is a new point; status, the report and the dashboard show each point's rate."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pytest
import yaml

import petl_search.export
import petl_search.search.runner.inline
from petl_search.analysis.dashboard import write_dashboard
from petl_search.analysis.front import front, lr_text, methods
from petl_search.cli import main
from petl_search.core.config import PETLConfig
from petl_search.core.errors import PETLError
from petl_search.export import export_trial
from petl_search.search.language.study import StudyError, load_study, parse_study
from petl_search.search.optuna_bridge.proposer import Proposer, baseline_learning_rate
from petl_search.search.optuna_bridge.records import read_records
from petl_search.search.optuna_bridge.storage import open_store, open_study
from petl_search.search.runner.inline import reseed_trial, run_study_inline
from petl_search.toy import write_toy_study

from conftest import TINY_CONFIGS

ROOT = Path(__file__).resolve().parents[1]
RANGE = {"low": 1e-3, "high": 1e-1}
FAST = {"max_steps": 40, "eval_every": 40, "batch_size": 16}  # enough for the toy task to be learnt
ONE_LORA = {"name": "one", "sites": {"attn_qkv": {"optional": False, "form": ["lora"], "size": 2,
            "insertion": "parallel", "composition": "add", "heads": 1, "init": "lora", "input_norm": False,
            "projections": [["q", "v"]]}}}


def study_data(tmp_path: Path, **overrides) -> dict:
    data = {"name": "t", "model": "tiny", "task": "sst2", "space": str(ROOT / "search_spaces" / "unified.yaml"),
            "budget": 0.05, "n_trials": 6, "sampler": {"name": "random", "seed": 0}, "baselines": ["lora"],
            "storage": f"sqlite:///{tmp_path / 'study.db'}", "train": {"max_steps": 10, "learning_rate": RANGE}}
    data.update(overrides)
    return data


def completed(proposer: Proposer, number: int, metric: float) -> dict:
    trial = proposer.study.get_trials(deepcopy=False)[number]
    return {"status": "completed", "metrics": {"accuracy": metric}, "throughput": 1.0, "steps": 10,
            "params": {"delta_stored": trial.user_attrs["stored_params"]}}


class TrainSpy:
    """Wraps the trainer where a module calls it: records each call's TrainConfig, then trains for real."""

    def __init__(self, real) -> None:
        self.real, self.configs = real, []

    def __call__(self, *args, **kwargs):
        self.configs.append(kwargs["train_config"])
        return self.real(*args, **kwargs)


# ---- the study file ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("rate, message", [
    ({"low": 1e-2, "high": 1e-3}, "train.learning_rate: `low < high` must hold, but got (low=0.01, high=0.001)"),
    ({"low": 1e-3, "high": 1e-3}, "`low < high` must hold"),
    ({"low": 1e-3, "high": 1e-2, "log": False}, "train.learning_rate.log must be true (a rate is searched on a "
                                                "log scale), but got False"),
    ({"low": 0.0, "high": 1e-2}, "train.learning_rate.low must be a number in (0, 1), but got 0.0"),
    ({"low": 1e-3, "high": 1.5}, "train.learning_rate.high must be a number in (0, 1), but got 1.5"),
    ({"low": 1e-3}, "train.learning_rate.high must be a number in (0, 1), but got None"),
    ({"low": "1e-4", "high": 1e-2}, "train.learning_rate.low must be a number in (0, 1) (YAML reads a number "
                                    "without a dot as text: write 1.0e-4, not 1e-4), but got '1e-4'"),
    ({"low": 1e-3, "high": 1e-2, "step": 1e-3}, "train.learning_rate has no key 'step'"),
    (2.0, "train.learning_rate must be a number in (0, 1), but got 2.0"),  # a number: checked as before
])
def test_a_bad_learning_rate_names_the_file_and_the_key(tmp_path, rate, message) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(study_data(tmp_path, train={"max_steps": 10, "learning_rate": rate})))
    with pytest.raises(StudyError) as info:
        load_study(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_a_oneshot_study_takes_one_rate(tmp_path) -> None:
    path = tmp_path / "oneshot.yaml"
    data = study_data(tmp_path, strategy="oneshot", oneshot={"top_k": 6})
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(StudyError, match=f"{path}: a one-shot study trains one supernet at one rate: "
                                         r"train.learning_rate must be a number"):
        load_study(path)


def test_a_range_is_one_study_however_spelt_and_a_number_stays_as_it_was(tmp_path) -> None:
    spec = parse_study(study_data(tmp_path))
    said = parse_study(study_data(tmp_path, train={"max_steps": 10, "learning_rate": {**RANGE, "log": True}}))
    assert spec.fingerprint() == said.fingerprint() and spec.train["learning_rate"] == RANGE
    assert (spec.learning_rate_range.low, spec.learning_rate_range.high) == (1e-3, 1e-1)
    assert spec.fixed_learning_rate is None and spec.identity()["train"]["learning_rate"] == RANGE
    assert spec.train_config(3, learning_rate=0.004).learning_rate == 0.004
    with pytest.raises(StudyError, match=r"<dict>: train.learning_rate is a range \(0.001 to 0.1\), so a trial "
                                         r"trains at the rate it sampled: pass it"):
        spec.train_config(3)
    fixed = parse_study(study_data(tmp_path, train={"max_steps": 10, "learning_rate": 0.02}))
    assert fixed.learning_rate_range is None and fixed.fixed_learning_rate == 0.02
    assert fixed.train_config(0).learning_rate == 0.02 == baseline_learning_rate(fixed)
    assert fixed.fingerprint() != spec.fingerprint()  # a fixed study cannot be resumed as a range one
    default = parse_study(study_data(tmp_path, train={"max_steps": 10}))
    assert default.fixed_learning_rate == 1e-3 == default.train_config(0).learning_rate  # the trainer's default
    assert baseline_learning_rate(spec) == pytest.approx(1e-2)  # the geometric mean of the range, for now


# ---- the proposer --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sampler", [{"name": "random", "seed": 0}, {"name": "tpe", "seed": 0, "startup_trials": 2}])
def test_search_trials_sample_their_rates_through_the_studys_sampler(tmp_path, sampler) -> None:
    spec = parse_study(study_data(tmp_path, sampler=sampler))
    proposer = Proposer(open_store(spec), spec, TINY_CONFIGS["bert"]())
    handed = []
    while (candidate := proposer.next()) is not None:
        handed.append(candidate)
        proposer.finish(candidate.number, completed(proposer, candidate.number, 0.5 + 0.01 * len(handed)))
    trials = proposer.study.get_trials()
    search = [c for c in handed if c.kind == "search"]
    assert len(search) == 6 and len({c.learning_rate for c in search}) == 6
    for c in search:
        trial = trials[c.number]
        assert trial.distributions["learning_rate"] == optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)
        assert trial.params["learning_rate"] == trial.user_attrs["learning_rate"] == c.learning_rate
        assert 1e-3 <= c.learning_rate <= 1e-1
    records = {r.number: r for r in read_records(proposer.study)}
    baseline = next(c for c in handed if c.kind == "baseline")
    assert baseline.learning_rate == records[baseline.number].learning_rate == pytest.approx(1e-2)
    # who proposed each search trial is recorded as it is handed out
    sources = [records[c.number].proposed_by for c in search]
    if sampler["name"] == "random":
        assert sources == ["random"] * 6
    else:
        assert sources[:2] == ["startup"] * 2 and set(sources) <= {"startup", "model", "fallback"}


def test_the_same_design_at_another_rate_is_a_new_point_and_at_the_same_rate_a_repeat(tmp_path) -> None:
    space = tmp_path / "one_point.yaml"
    space.write_text(yaml.safe_dump(ONE_LORA))
    spec = parse_study(study_data(tmp_path, space=str(space), n_trials=4, baselines=[]))
    proposer = Proposer(open_store(spec), spec, TINY_CONFIGS["bert"]())
    first = proposer.next()
    proposer.finish(first.number, completed(proposer, first.number, 0.7))
    second = proposer.next()  # the only design there is, at another rate: trained
    assert second.kind == "search" and second.petl_config == first.petl_config
    assert second.learning_rate != first.learning_rate
    proposer.finish(second.number, completed(proposer, second.number, 0.6))
    proposer.study.enqueue_trial({"learning_rate": first.learning_rate})  # the sampler proposes it again
    third = proposer.next()
    repeats = [t for t in proposer.study.get_trials() if t.user_attrs["kind"] == "duplicate"]
    assert [(t.user_attrs["duplicate_of"], t.user_attrs["learning_rate"]) for t in repeats] == \
        [(first.number, first.learning_rate)]
    assert third.learning_rate not in (first.learning_rate, second.learning_rate)


def test_a_trial_stored_without_its_rate_trained_at_the_studys_fixed_one(tmp_path) -> None:
    """A storage written before trials recorded their rate (the committed studies): its trials are points
    at the study's fixed rate, so the same design proposed again is a repeat of them."""
    space = tmp_path / "one_point.yaml"
    space.write_text(yaml.safe_dump(ONE_LORA))
    spec = parse_study(study_data(tmp_path, space=str(space), n_trials=2, baselines=[],
                                  train={"max_steps": 10, "learning_rate": 0.02}))
    store = open_store(spec)
    config = spec.space().sample(optuna.trial.FixedTrial({}), TINY_CONFIGS["bert"]())
    old = optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, values=[0.7, 10], user_attrs={
        "kind": "search", "label": config.describe(), "petl_config": config.to_dict(), "seed": 0,
        "stored_params": 10, "stored_fraction": 0.001})
    number = store.add_trial(old)
    record = next(r for r in read_records(store.study) if r.number == number)
    assert record.learning_rate is None and spec.trial_learning_rate(record.learning_rate) == 0.02
    proposer = Proposer(store, spec, TINY_CONFIGS["bert"]())
    proposer.max_rejections = 3
    with pytest.raises(PETLError, match="already trained"):
        proposer.next()
    repeats = [t for t in store.study.get_trials() if t.user_attrs.get("kind") == "duplicate"]
    assert len(repeats) == 3 and {t.user_attrs["duplicate_of"] for t in repeats} == {number}
    assert PETLConfig.from_dict(repeats[0].user_attrs["petl_config"]) == config


# ---- a range study trained: the trainer, reseeds, what is shown, export ----------------------------------

@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """A toy study whose designs sample their rates, run inline with the trainer spied on."""
    folder = tmp_path_factory.mktemp("toy")
    spec = load_study(write_toy_study(folder, "lr", n_trials=3, baselines=[{"preset": "lora", "args": {"r": 4}}],
                                      train={**FAST, "learning_rate": RANGE}))
    # the frozen backbone (every site off) first: a search point on the front whatever it scores (0 stored)
    open_study(spec).enqueue_trial({f"{site.site}.use": False for site in spec.space().sites})
    spy = TrainSpy(petl_search.search.runner.inline.train)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(petl_search.search.runner.inline, "train", spy)
        records = run_study_inline(spec, progress=lambda line: None)
    return spec, records, spy


def test_each_trial_trains_at_the_rate_it_recorded(ran) -> None:
    spec, records, spy = ran
    trained = sorted((r for r in records if r.kind in ("search", "baseline")), key=lambda r: r.number)
    assert [c.learning_rate for c in spy.configs] == [r.learning_rate for r in trained]
    search = [r.learning_rate for r in trained if r.kind == "search"]
    assert len(search) == 3 and len(set(search)) == 3 and all(1e-3 <= x <= 1e-1 for x in search)
    assert all(r.extra["history"] and r.state == "COMPLETE" for r in trained)


def test_a_ray_worker_trains_at_its_candidates_rate(ran, tmp_path, monkeypatch) -> None:
    """`run_candidate` as a Ray worker runs it, outside Ray: the study's `train` block holds the range, the
    candidate its rate."""
    import ray.tune

    import petl_search.search.runner.ray_runner as ray_runner

    spec, records, _ = ran
    reports = []
    monkeypatch.setattr(ray.tune, "report", reports.append)
    spy = TrainSpy(ray_runner.train)
    monkeypatch.setattr(ray_runner, "train", spy)
    proposer = Proposer(open_store(spec), spec, load_study(spec.source).model_config())
    original = next(r for r in records if r.kind == "search")
    candidate = proposer.open_reseed(original, 9)  # a candidate at a sampled rate, without a sampler's ask
    ray_runner.run_candidate({"candidate": candidate.to_dict(), "run": ray_runner.run_settings(spec, tmp_path)})
    proposer.finish(candidate.number, json.loads(reports[-1]["record"]))
    assert [c.learning_rate for c in spy.configs] == [original.learning_rate] and \
        json.loads(reports[-1]["record"])["status"] == "completed"


def test_a_reseed_trains_at_its_originals_rate(ran, monkeypatch) -> None:
    spec, records, _ = ran
    original = next(r for r in records if r.kind == "search")
    spy = TrainSpy(petl_search.search.runner.inline.train)
    monkeypatch.setattr(petl_search.search.runner.inline, "train", spy)
    again = next(r for r in reseed_trial(spec, original.number, [1], progress=lambda line: None) if r.seed == 1)
    assert [c.learning_rate for c in spy.configs] == [original.learning_rate]
    assert (again.kind, again.seed, again.learning_rate) == ("reseed", 1, original.learning_rate)


def test_status_the_report_and_the_dashboard_show_each_points_rate(ran, tmp_path, capsys) -> None:
    spec, _, _ = ran
    records = read_records(optuna.load_study(study_name=spec.name, storage=spec.storage))
    line = front(methods(records, spec.main_metric))
    assert any(m.kind == "search" for m in line) and all(m.learning_rate is not None for m in line)
    assert main(["status", spec.source]) == 0
    status = capsys.readouterr().out
    rows = status.split("design point\n")[1].splitlines()[:len(line)]
    assert all(f"  {lr_text(m.learning_rate)}  {m.label}" in row for m, row in zip(line, rows))
    assert main(["report", spec.source, "--out", str(tmp_path / "report.md")]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "| head | lr | design point |" in report
    for m in line:
        assert f"| {lr_text(m.learning_rate)} | {m.label}" in report
    page = write_dashboard(spec, tmp_path / "lr.html").read_text()
    table = page[page.index("<table id='front-table'>"):]
    overview = page[page.index("<table id='summary-front'>"):page.index("<table id='summary-baselines'>")]
    for m in line:
        assert f"<td class='lr'>{lr_text(m.learning_rate)}</td>" in table
        assert f"<td class='lr'>{lr_text(m.learning_rate)}</td>" in overview


def test_a_study_stored_before_rates_were_recorded_shows_its_fixed_rate(tmp_path, capsys) -> None:
    """The committed studies ran at their fixed rate, which their storages do not hold per trial."""
    shutil.copy(ROOT / "studies" / "sst2_heldout_mam" / "study.db", tmp_path / "study.db")
    source, storage = str(ROOT / "studies" / "sst2_heldout_mam.yaml"), f"sqlite:///{tmp_path / 'study.db'}"
    assert load_study(source).fixed_learning_rate == 1e-3
    assert main(["status", source, "--storage", storage]) == 0
    rows = capsys.readouterr().out.split("design point\n")[1].split("\nbest baseline")[0].splitlines()
    assert rows and all("  1.00e-03  " in row for row in rows)
    assert main(["report", source, "--storage", storage, "--out", str(tmp_path / "report.md")]) == 0
    front_rows = [row for row in (tmp_path / "report.md").read_text().split("## The front")[1].splitlines()
                  if row.startswith("| #")]
    assert front_rows and all("| 1.00e-03 |" in row for row in front_rows)


def test_export_retrains_at_the_trials_rate_and_says_so(ran, tmp_path, monkeypatch) -> None:
    spec, records, _ = ran
    chosen = next(r for r in records if r.kind == "search" and r.scored)
    spy = TrainSpy(petl_search.export.train)
    monkeypatch.setattr(petl_search.export, "train", spy)
    done = export_trial(spec, chosen, tmp_path / "out", progress=lambda line: None)
    assert [c.learning_rate for c in spy.configs] == [chosen.learning_rate] == [done.learning_rate]
    assert done.reproduced is True  # the trial's rate, so the trial's model
    trial = json.loads((done.folder / "trial.json").read_text())
    assert trial["learning_rate"] == chosen.learning_rate == trial["train_config"]["learning_rate"]
    saved = json.loads((done.folder / "petl_config.json").read_text())
    assert saved["metadata"]["learning_rate"] == chosen.learning_rate
    assert f"at learning rate {lr_text(chosen.learning_rate)}, seed 0 |" in (done.folder / "README.md").read_text()
