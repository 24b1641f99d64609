"""`petl-search transfer`: a study's front trained again on another task, with fresh seeds, in a storage of its own.

The source study is the toy study (tiny BERT, the toy SST-2) with its trainings recorded rather than run (scores that
grow with size, so that every point is on the front; the smallest at a constant answer's score); the transfers train
for real on a 200-row STS-B (tests/fixtures/glue) or on a small task of one's own (a task file), at 20 steps. Checked:
exactly front x seeds trainings, each with its point's design and learning rate and a seed the study never used; a
Ctrl-C, a killed run and a time budget each resume without training a finished one again; the report's ρ and τ equal a
hand computation from its own table; the best point and the target's front; each refusal is one line, before any
training.
"""
from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import optuna
import pytest
import yaml

from petl_search.analysis import transfer_report
from petl_search.analysis.front import best_point
from petl_search.analysis.inference import kendall, rank_interval, spearman
from petl_search.cli import main
from petl_search.search.language.study import load_study
from petl_search.search.optuna_bridge.proposer import Proposer
from petl_search.search.optuna_bridge.records import read_records
from petl_search.search.optuna_bridge.storage import open_store, record_references
from petl_search.search.runner import transfer
from petl_search.toy import write_toy_study
from petl_search.training.models import load_model_config

from conftest import GLUE_FIXTURES

REAL_TRAIN = transfer.train
STEPS = {"max_steps": 20, "eval_every": 10, "batch_size": 16, "learning_rate": 0.02}


def recorded(candidate, score: float) -> dict:
    """What a worker would report for `candidate`, with the score given (no training)."""
    return {"status": "completed", "main_metric": "accuracy", "metrics": {"accuracy": score},
            "evaluated_on": "search split", "dev_metrics": {"accuracy": score - 0.05},
            "params": {"delta_stored": candidate.stored_params, "head": 1090}, "throughput": 10.0, "steps": 20}


def toy_source(folder: Path, name: str = "toy", **overrides):
    """The toy study, its trainings recorded: a LoRA baseline with seeds 0 and 1, then 5 search points whose score
    grows with their size (so all are on the front), the smallest at a constant answer's score."""
    keys = {"n_trials": 5, "sampler": {"name": "random", "seed": 3}, "train": STEPS,
            "baselines": [{"preset": "lora", "args": {"r": 16}, "seeds": [0, 1]}], **overrides}
    spec = load_study(write_toy_study(folder, name, **keys))
    shutil.copytree(GLUE_FIXTURES / "STS-B", folder / "glue" / "STS-B", dirs_exist_ok=True)
    store = open_store(spec)
    record_references(store, spec)
    proposer = Proposer(store, spec, load_model_config(spec.model))
    candidates = []
    while (candidate := proposer.next()) is not None:
        candidates.append(candidate)
    smallest = min(c.stored_params for c in candidates if c.kind == "search")
    for c in candidates:
        score = 0.4 if c.stored_params == smallest else 0.6 + c.stored_params / 1e6 + 0.01 * c.seed
        proposer.finish(c.number, recorded(c, score))
    return spec


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return toy_source(tmp_path_factory.mktemp("transfer"))


class Counted:
    """The trainer the transfer calls, counting its calls; `interrupt_at`: a Ctrl-C during that call."""

    def __init__(self, monkeypatch, interrupt_at: int | None = None) -> None:
        self.calls, self.interrupt_at = [], interrupt_at
        monkeypatch.setattr(transfer, "train", self)

    def __call__(self, config, task, **kwargs):
        self.calls.append(kwargs["train_config"].seed)
        if len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        return REAL_TRAIN(config, task, **kwargs)


def transferred(spec, task: str = "stsb", folder: str | None = None):
    return transfer.stored_transfer(transfer.transfer_spec(spec, transfer.resolve_task(task), folder))


def test_the_front_is_trained_with_fresh_seeds_resumes_after_ctrl_c_and_reports_its_order(source, monkeypatch,
                                                                                          capsys) -> None:
    first = Counted(monkeypatch, interrupt_at=3)
    assert main(["transfer", source.source, "--task", "stsb", "--seeds", "2"]) == 130
    out, err = capsys.readouterr()
    assert "[1/" in out and "[2/" in out and "run the same command to resume" in err
    again = Counted(monkeypatch)
    assert main(["transfer", source.source, "--task", "stsb", "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    stored = transferred(source)
    choice = transfer_report.choose(stored.source)
    points = [m.number for m in choice.points]
    # the front less its point at a constant answer: 3 search points and the baseline, each with 2 fresh seeds
    assert len(points) == 4 and len(choice.at_chance) == 1 and stored.plan["points"] == points
    seeds = stored.plan["seeds"]
    used = set(stored.source.used_seeds)
    assert seeds == [2, 3] and not set(seeds) & used and {0, 1} <= used
    # 2 finished before the Ctrl-C, the third (interrupted) trained again: front x seeds trainings in all
    assert len(first.calls) == 3 and len(first.calls) - 1 + len(again.calls) == len(points) * len(seeds)
    done = [r for r in stored.records if r.kind == "reseed" and r.state == "COMPLETE"]
    assert sorted((r.extra["reseed_of"], r.seed) for r in done) == sorted((n, s) for n in points for s in seeds)
    interrupted = [r for r in stored.records if r.state == "FAIL"]
    assert len(interrupted) == 1 and "interrupted" in interrupted[0].reason
    by_number = {r.number: r for r in stored.source.records}
    for r in done:  # each training is its point: design, label and learning rate; scored on stsb's own sets
        point = by_number[r.extra["reseed_of"]]
        assert (r.config, r.label, r.learning_rate) == (point.config, point.label, point.learning_rate)
        assert r.evaluated_on == "search split" and "pearson" in r.dev_scores and "pearson" in r.scores
    # the report: ρ and τ over the table's own means, as computed by hand
    report = (Path(stored.spec.sqlite_path).parent / "report.md").read_text()
    assert report in out
    rows = [line.split(" | ") for line in report.splitlines() if re.match(r"\| \d+ \|", line)]
    assert [int(row[0].strip("| ")) for row in rows] == points
    src = [float(row[4].split()[0]) for row in rows]
    tgt = [float(row[6].split()[0]) for row in rows]
    rank = lambda xs: [1 + sum(o < x for o in xs) for x in xs]  # noqa: E731 (ascending ranks, no ties here)
    n = len(src)
    rho = 1 - 6 * sum((a - b) ** 2 for a, b in zip(rank(src), rank(tgt))) / (n * (n * n - 1))
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    tau = sum(math.copysign(1, (src[i] - src[j]) * (tgt[i] - tgt[j])) for i, j in pairs) / len(pairs)
    line = next(l for l in report.splitlines() if l.startswith("- sst2's search split against stsb's search split"))
    assert f"ρ = {rho:+.2f}" in line and f"τ = {tau:+.2f}" in line and f"n = {n}" in line
    low, high = rank_interval(rho, n)
    assert (f"[95% {low:+.2f}, {high:+.2f}]" in line) if not math.isnan(low) else "(no interval)" in line
    # the best point: the source's (best_point), and the target's by the same rule
    best = best_point(transfer_report.source_points(stored.source), max_fraction=source.budget, score="accuracy",
                      on="search split").point
    assert best is not None and best.number in points
    assert f"`export --best` names #{best.number} " in report
    target = transfer_report.target_points(stored)
    now = best_point(list(target.values()), max_fraction=source.budget, score="pearson", on="search split").point
    assert ("it is still the best" in report) == (now.number == best.number)
    assert all(len(m.scores) == 2 for m in target.values())
    assert "## The front on the target" in report and "## Left out" in report
    assert "at or below a constant answer on sst2's search split" in report
    # a third run trains nothing
    third = Counted(monkeypatch)
    assert main(["transfer", source.source, "--task", "stsb", "--seeds", "2"]) == 0
    assert third.calls == [] and "0 to run" in capsys.readouterr().out


def test_a_task_file_default_seeds_max_points_and_report_only(source, tmp_path, monkeypatch, capsys) -> None:
    rows = [{"sentence": f"{'wonderful' if i % 2 else 'terrible'} movie {i}", "label": i % 2} for i in range(80)]
    for split, part in (("train", rows[:60]), ("dev", rows[60:])):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    task = tmp_path / "mine.yaml"
    task.write_text(yaml.safe_dump({"kind": "classification", "files": {"train": "train.jsonl", "dev": "dev.jsonl"},
                                    "text": ["sentence"], "label": "label"}))
    counted = Counted(monkeypatch)
    folder = tmp_path / "out"
    assert main(["transfer", source.source, "--task", str(task), "--max-points", "2", "--folder", str(folder)]) == 0
    out = capsys.readouterr().out
    stored = transferred(source, str(task), str(folder))
    choice = transfer_report.choose(stored.source, 2)
    best = best_point(transfer_report.source_points(stored.source), max_fraction=source.budget, score="accuracy",
                      on="search split").point
    assert [m.number for m in choice.points] == stored.plan["points"] and best in choice.points
    assert stored.plan["seeds"] == [2, 3, 4] and len(counted.calls) == 6  # 3 fresh seeds by default
    assert "fewer than 3 points (2)" in out and (folder / "report.md").is_file()
    assert "not among the points chosen (--max-points)" in out
    report = (folder / "report.md").read_text()
    assert main(["transfer", source.source, "--task", str(task), "--folder", str(folder), "--report-only"]) == 0
    assert capsys.readouterr().out.strip() == report.strip() and len(counted.calls) == 6


def test_a_killed_run_and_a_time_budget_resume(tmp_path, monkeypatch, capsys) -> None:
    spec = toy_source(tmp_path, n_trials=3)
    target = transfer.transfer_spec(spec, "stsb")
    counted = Counted(monkeypatch)
    assert main(["transfer", spec.source, "--task", "stsb", "--seeds", "1", "--time-budget", "0.001"]) == 0
    out = capsys.readouterr().out
    # the first training always runs (a budget shorter than one training still makes progress), then it stops
    assert len(counted.calls) == 1 and "the time budget (0.001 s) ended the transfer" in out
    stored = transfer.stored_transfer(target)
    assert "1 of " in (target.sqlite_path.parent / "report.md").read_text()
    # a run killed while training leaves its trial running; the next run fails it as interrupted and trains it again
    store = open_store(target)
    point = next(r for r in stored.source.records if r.number == stored.plan["points"][-1])
    killed = Proposer(store, target, load_model_config(spec.model)).open_reseed(point, stored.plan["seeds"][0])
    assert main(["transfer", spec.source, "--task", "stsb", "--seeds", "1"]) == 0
    records = {r.number: r for r in read_records(optuna.load_study(study_name=target.name, storage=target.storage))}
    assert records[killed.number].state == "FAIL" and records[killed.number].reason == transfer.INTERRUPTED
    done = [r for r in records.values() if r.kind == "reseed" and r.state == "COMPLETE"]
    assert len(done) == len(stored.plan["points"]) and len(counted.calls) == len(stored.plan["points"])


def test_refusals_are_one_line_and_train_nothing(source, tmp_path, monkeypatch, capsys) -> None:
    counted = Counted(monkeypatch)
    empty = load_study(write_toy_study(tmp_path / "empty", "empty", n_trials=1, train=STEPS))
    open_store(empty)  # a storage, but nothing trained
    other = toy_source(tmp_path / "other", name="other", n_trials=2)
    taken = tmp_path / "taken"
    transfer.run_transfer(transfer.transfer_spec(other, "stsb", taken), transfer_report_source(other),
                          [], 1, progress=lambda line: None)
    capsys.readouterr()  # what building the studies printed
    cases = [
        (["--task", "sst3"], "--task must be a built-in task (cola, mnli, mrpc"),
        (["--task", "missing.yaml"], "--task: the task file missing.yaml was not found"),
        (["--task", "xsum"], "task xsum is a seq2seq task, which needs a seq2seq model, but study toy trained its "
                             "points on sst2 (classification) as a sequence classifier or regressor"),
        (["--task", "sst2"], "--task sst2 is study toy's own task"),
        (["--task", "stsb", "--seeds", "0"], "--seeds must be a positive number, but got 0"),
        (["--task", "stsb", "--folder", str(taken)], "holds study 'other_transfer_stsb', not this transfer "
                                                     "('toy_transfer_stsb')"),
        (["--task", "stsb", "--folder", str(tmp_path / "new"), "--report-only"], "no transfer of study toy to stsb"),
    ]
    for argv, message in cases:
        assert main(["transfer", source.source, *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (argv, err)
    assert main(["transfer", empty.source, "--task", "stsb"]) == 2
    assert "study 'empty' has no front yet" in capsys.readouterr().err
    assert main(["transfer", str(tmp_path / "never.yaml"), "--task", "stsb"]) == 2
    assert counted.calls == []


def transfer_report_source(spec) -> transfer.TransferSource:
    study = optuna.load_study(study_name=spec.name, storage=spec.storage)
    return transfer.TransferSource.of(spec, read_records(study), {}, "search split")


def test_seeds_points_and_rank_statistics() -> None:
    assert transfer.fresh_seeds([0, 1, 2], [], 3) == [3, 4, 5]
    assert transfer.fresh_seeds([0, 5], [7, 3], 4) == [7, 3, 1, 2]  # an earlier run's first, then the smallest unused
    assert transfer.fresh_seeds([0], [7, 3], 1) == [7]
    # ρ and τ against their definitions on a hand example: ranks (1,2,3,4,5) and (2,1,4,3,5)
    x, y = [0.1, 0.2, 0.3, 0.4, 0.5], [0.25, 0.2, 0.6, 0.5, 0.9]
    assert spearman(x, y) == pytest.approx(1 - 6 * 4 / (5 * 24))
    assert kendall(x, y) == pytest.approx((8 - 2) / 10)
    low, high = rank_interval(0.8, 5)
    half = 1.959964 * math.sqrt((1 + 0.32) / 2)
    assert (low, high) == pytest.approx((math.tanh(math.atanh(0.8) - half), math.tanh(math.atanh(0.8) + half)))
    none = rank_interval(1.0, 10) + rank_interval(0.5, 3) + rank_interval(0.5, 4, statistic="kendall")
    assert all(math.isnan(v) for v in none)
    order = transfer_report.order(x, y)
    assert order.n == 5 and "ρ = +0.80" in order.text and "τ = +0.60" in order.text
