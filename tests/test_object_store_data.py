"""The data travels with the study: the driver tokenises the task once (`encode_task`), Ray's object store hands
it to every trial, and a trial that gets it reads no file of the task and runs no tokenizer; it trains exactly as
a trial that loads and tokenises the task itself (SST-2-format toy data on a tiny BERT; a causal LM prompt task
with a verbalizer and with an answer on a tiny Llama). A study on Ray whose data folder is gone once the driver
has tokenised it still trains every trial."""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import optuna
import pytest
import ray
import yaml
from transformers import PreTrainedTokenizerBase

import petl_search as ps
from petl_search.search.language.study import load_study
from petl_search.search.optuna_bridge.records import read_records
from petl_search.search.runner import ray_runner
from petl_search.search.runner.ray_runner import run_candidate, run_settings, run_study
from petl_search.training import data as data_module, tasks as tasks_module
from petl_search.training.config import TrainConfig
from petl_search.training.trainer import encode_task, train

from test_causal_lm import ANSWERED, TOKENIZER, VERBALIZED, causal_lm, own_task

ROOT = Path(__file__).resolve().parents[1]
CFG = dict(max_steps=12, eval_every=6, batch_size=16, learning_rate=0.01, eval_examples=32, threads=1,
           search_split=0.1, split_seed=0)


@pytest.fixture
def tokenizer_calls(monkeypatch) -> list[str]:
    """Every tokenizer run in this process from now on (encoding a text; loading a tokenizer is no run)."""
    calls: list[str] = []
    for name in ("__call__", "encode"):
        real = getattr(PreTrainedTokenizerBase, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(self, *args, **kwargs)
        monkeypatch.setattr(PreTrainedTokenizerBase, name, counted)
    return calls


@pytest.fixture
def fresh_caches(monkeypatch) -> None:
    """An empty per-process cache of loaded and tokenised data, as in a fresh worker."""
    monkeypatch.setattr(tasks_module, "_LOADED", {})
    monkeypatch.setattr(data_module, "_ENCODED", {})


def shipped(encoded):
    """What a worker gets from the object store: the driver's object, pickled and read back."""
    return pickle.loads(pickle.dumps(encoded))


def test_a_trial_given_the_encoded_task_reads_no_file_runs_no_tokenizer_and_trains_the_same(
        toy, tmp_path, monkeypatch, fresh_caches, tokenizer_calls) -> None:
    glue = tmp_path / "glue"
    shutil.copytree(toy / "glue", glue)
    spec = load_study(write_study(tmp_path, toy, glue))
    reports: list[dict] = []
    monkeypatch.setattr(ray.tune, "report", lambda metrics, **kw: reports.append(dict(metrics)))
    candidate = {"petl_config": ps.presets.lora(r=2).to_dict(), "seed": 3, "kind": "search"}
    run = run_settings(spec, tmp_path / "ray")

    run_candidate({"candidate": candidate, "run": run})  # as a worker did: loads and tokenises the task itself
    lazy = json.loads(reports[-1]["record"])
    assert lazy["status"] == "completed" and tokenizer_calls  # (the counter counts)

    encoded = ray_runner.encode_study_data(spec, progress=lambda line: None)  # the driver
    glue.rename(tmp_path / "gone")  # no file of the task from here on
    tasks_module._LOADED.clear(), data_module._ENCODED.clear(), tokenizer_calls.clear()
    run_candidate({"candidate": candidate, "run": run}, data=shipped(encoded))
    record = json.loads(reports[-1]["record"])
    assert record["status"] == "completed", record.get("reason")
    assert tokenizer_calls == [] and tasks_module._LOADED == {} and data_module._ENCODED == {}
    for key in ("metrics", "dev_metrics", "dev_predictions", "history", "steps", "constant_scores"):
        assert record[key] == lazy[key], key

    run_candidate({"candidate": candidate, "run": run})  # without it, the same trial needs the folder
    assert "the GLUE folder" in json.loads(reports[-1]["record"])["reason"]


@pytest.mark.parametrize("block", [VERBALIZED, ANSWERED], ids=["verbalizer", "answer"])
def test_a_causal_lm_task_travels_encoded_too(block, tmp_path, fresh_caches, tokenizer_calls) -> None:
    model = tmp_path / "model"
    causal_lm("llama").save_pretrained(model)
    TOKENIZER.save_pretrained(model)
    task = own_task(tmp_path, block)
    cfg = TrainConfig(**{**CFG, "max_target_length": 3, "eval_batch_size": 16, "search_split": 0.25})
    lazy = train(ps.presets.lora(r=2), task, model=str(model), train_config=cfg)
    encoded = shipped(encode_task(task, str(model), cfg))
    for name in ("train.jsonl", "dev.jsonl"):
        (tmp_path / name).unlink()
    tasks_module._LOADED.clear(), data_module._ENCODED.clear(), tokenizer_calls.clear()
    again = train(ps.presets.lora(r=2), task, model=str(model), train_config=cfg, encoded=encoded)
    assert again.status == "completed" and tokenizer_calls == []
    assert (again.metrics, again.dev_metrics, again.dev_predictions, again.history) == \
        (lazy.metrics, lazy.dev_metrics, lazy.dev_predictions, lazy.history)


def test_a_trial_refuses_data_encoded_for_other_settings(toy, fresh_caches) -> None:
    cfg = TrainConfig(**CFG)
    encoded = encode_task("sst2", str(toy / "model"), cfg, str(toy / "glue"))
    with pytest.raises(ps.PETLError, match=r"tokenised for task 'sst2', model .* with \{'max_length': 128, .*"
                                           r"but this run trains task 'sst2', .*'max_length': 64"):
        train(ps.presets.lora(r=2), "sst2", model=str(toy / "model"), encoded=encoded,
              train_config=TrainConfig(**{**CFG, "max_length": 64}))


def write_study(folder: Path, toy: Path, glue: Path, **overrides) -> Path:
    data = {"name": "shipped", "model": str(toy / "model"), "task": "sst2", "data_dir": str(glue),
            "space": str(ROOT / "search_spaces" / "unified.yaml"), "budget": 0.05, "n_trials": 2,
            "sampler": {"name": "random", "seed": 1}, "concurrency": 2, "resources": {"cpus": 1},
            "train": {"max_steps": 12, "eval_every": 6, "batch_size": 16, "learning_rate": 0.01,
                      "eval_examples": 32}}
    data.update(overrides)
    path = folder / "shipped.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_study_on_ray_trains_every_trial_once_its_data_folder_is_gone(toy, tmp_path) -> None:
    """The driver tokenises, then the folder goes: a worker that read the task would fail its trial."""
    glue = tmp_path / "glue"
    shutil.copytree(toy / "glue", glue)
    spec = load_study(write_study(tmp_path, toy, glue))
    lines: list[str] = []

    def progress(line: str) -> None:
        lines.append(line)
        if line.startswith("data: sst2 tokenised once") and glue.exists():
            glue.rename(tmp_path / "gone")

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        run_study(spec, progress=progress)
    finally:
        ray.shutdown()
    assert not glue.exists() and any(line.startswith("data: sst2 tokenised once for every trial (") for line in lines)
    records = read_records(optuna.load_study(study_name="shipped", storage=spec.storage))
    search = [r for r in records if r.kind == "search"]
    assert len(search) == 2 and all(r.state == "COMPLETE" for r in search), [(r.state, r.reason) for r in search]
    assert all(r.extra["seconds"]["tokenize"] < 0.05 for r in search)  # nothing loaded, nothing tokenised
