"""A study's own task (`task:` as a mapping; training/own_tasks.py): a JSON-lines sentiment task written here runs
through search, report, dashboard and export like a built-in one; a CSV regression task and a seq2seq task load
with their kinds and metrics; a Hub task reads its classes only when it must; the task's definition and its files'
contents are the study's identity; `petl-search train --task-file` trains on one; every mistake is one line that
names the study file and the key, raised when the study is read."""
from __future__ import annotations

import copy
import json
import pickle
import random
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

import petl_search
from petl_search.analysis.dashboard import write_dashboard
from petl_search.cli import main
from petl_search.core.errors import PETLError
from petl_search.export import evaluate_export
from petl_search.search.language.study import StudyError, load_study, load_task_file, parse_study
from petl_search.search.optuna_bridge.records import read_records
from petl_search.search.optuna_bridge.storage import open_store
from petl_search.search.runner.inline import run_study_inline
from petl_search.toy import write_tiny_model
from petl_search.training import own_tasks, tasks
from petl_search.training.models import load_model
from petl_search.training.tasks import TaskName, get_task, load_task

ROOT = Path(__file__).resolve().parents[1]
UNIFIED = str(ROOT / "search_spaces" / "unified.yaml")
WORDS = "the a movie film story plot actor scene music some very quite rather it was is".split()


def reviews(n: int, seed: int, classes: tuple[str, ...] = ("negative", "positive")) -> list[dict]:
    """A tiny sentiment task: the class is told by one word among filler words."""
    rng = random.Random(seed)
    cue = {"negative": "terrible", "positive": "wonderful", "neutral": "ordinary"}
    rows = []
    for _ in range(n):
        label = rng.choice(classes)
        words = rng.choices(WORDS, k=rng.randint(3, 8))
        words.insert(rng.randint(0, len(words)), cue[label])
        rows.append({"sentence": " ".join(words), "label": label})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def sentiment_files(folder: Path) -> None:
    write_jsonl(folder / "data" / "train.jsonl", reviews(60, 0))
    write_jsonl(folder / "data" / "dev.jsonl", reviews(20, 1))


SENTIMENT = {"kind": "classification", "files": {"train": "data/train.jsonl", "dev": "data/dev.jsonl"},
             "text": ["sentence"], "label": "label"}


def write_study(folder: Path, task: dict, name: str = "reviews", **overrides) -> Path:
    study = {"name": name, "model": "tiny", "task": task, "space": UNIFIED, "budget": 0.05, "n_trials": 2,
             "sampler": {"name": "random", "seed": 0}, **overrides}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return str(write_tiny_model(tmp_path_factory.mktemp("tiny") / "model"))


@pytest.fixture(scope="module")
def searched(tmp_path_factory, tiny_model):
    """The sentiment task's study, searched in this process: two search trials and a LoRA baseline."""
    folder = tmp_path_factory.mktemp("own")
    sentiment_files(folder)
    path = write_study(folder, {**SENTIMENT, "name": "my_reviews"}, model=tiny_model,
                       baselines=[{"preset": "lora", "args": {"r": 2}}],
                       train={"max_steps": 20, "eval_every": 10, "batch_size": 8, "learning_rate": 0.01})
    spec = load_study(path)
    run_study_inline(spec, progress=lambda line: None)
    return spec


def test_a_jsonl_task_is_a_task_like_the_built_in_ones(tmp_path) -> None:
    sentiment_files(tmp_path)
    spec = load_study(write_study(tmp_path, SENTIMENT))
    assert isinstance(spec.task, TaskName) and spec.task == "reviews"  # the study's name by default
    task = get_task(spec.task)
    assert (task.kind, task.metric, task.main_metric, task.labels) == ("classification", "accuracy", "accuracy",
                                                                        ("negative", "positive"))
    assert task.text_columns == ("text_a",) and task.num_labels == 2
    assert spec.objectives == ("accuracy", "stored_params")
    data = load_task(spec.task)
    rows = [json.loads(line) for line in (tmp_path / "data" / "train.jsonl").read_text().splitlines()]
    assert data["train"]["text_a"] == [r["sentence"] for r in rows]
    assert data["train"]["label"] == [task.labels.index(r["label"]) for r in rows]
    assert len(data["validation"]) == 20
    assert spec.to_dict()["task"] == spec.identity()["task"]  # the storage describes the task, not just its name


def test_search_report_dashboard_and_export_run_on_an_own_task(searched, tmp_path, capsys) -> None:
    records = read_records(optuna.load_study(study_name="reviews", storage=searched.storage))
    done = [r for r in records if r.state == "COMPLETE"]
    assert {r.kind for r in done} == {"search", "baseline"} and len(done) == 3
    # the held-out protocol: selected on the search split carved from train, then judged on dev
    assert all(r.evaluated_on == "search split" and "accuracy" in r.dev_scores for r in done)
    assert main(["status", searched.source]) == 0
    report = tmp_path / "report.md"
    assert main(["report", searched.source, "--out", str(report)]) == 0
    assert "reviews" in report.read_text()
    page = tmp_path / "reviews.html"
    assert main(["dashboard", searched.source, "--out", str(page)]) == 0
    assert "on my_reviews" in page.read_text()
    assert write_dashboard(searched, tmp_path / "again.html").is_file()
    out = tmp_path / "export"
    lora = next(r for r in done if r.kind == "baseline")  # --trial: a 20-step toy need not beat a constant answer
    assert main(["export", searched.source, "--trial", str(lora.number), "--out", str(out)]) == 0
    capsys.readouterr()
    trial = json.loads((out / "trial.json").read_text())
    assert trial["task"] == "my_reviews"
    assert "| task | `my_reviews` |" in (out / "README.md").read_text()
    model = petl_search.load(load_model(searched.model, get_task(searched.task), seed=123)[0], out)
    scores = evaluate_export(model, out)  # the own task's dev file, found by its name in this process
    assert scores == pytest.approx(trial["dev_metrics"])  # what the export scored on dev


def test_a_changed_file_is_a_changed_study_but_a_touched_one_is_not(searched) -> None:
    spec = load_study(searched.source)
    assert spec.fingerprint() == searched.fingerprint()
    dev = Path(get_task(spec.task).files["validation"])
    text = dev.read_text()
    dev.write_text(text)  # the same bytes, a new mtime: the same study
    assert load_study(searched.source).fingerprint() == searched.fingerprint()
    relabelled = text.replace('"label": "negative"', '"label": "positive"', 1)  # one label, the same size
    assert relabelled != text and len(relabelled) == len(text)
    dev.write_text(relabelled)
    try:
        with pytest.raises(PETLError, match=r"was run with a different definition \(changed: task\)"):
            open_store(load_study(searched.source), create=False)
    finally:
        dev.write_text(text)
    assert load_study(searched.source).fingerprint() == searched.fingerprint()


def test_labels_written_out_or_inferred_are_one_study_and_built_in_tasks_keep_their_identity(tmp_path) -> None:
    sentiment_files(tmp_path)
    inferred = load_study(write_study(tmp_path, SENTIMENT))
    written = load_study(write_study(tmp_path, {**SENTIMENT, "labels": ["negative", "positive"], "text": "sentence",
                                                "metric": "accuracy"}))
    assert written.identity() == inferred.identity()
    swapped = load_study(write_study(tmp_path, {**SENTIMENT, "labels": ["positive", "negative"]}))
    assert swapped.fingerprint() != inferred.fingerprint()  # the class ids differ
    builtin = parse_study({"name": "b", "task": "sst2", "space": UNIFIED, "budget": 0.05})
    assert builtin.identity()["task"] == "sst2" and builtin.to_dict()["task"] == "sst2"


def test_the_task_travels_pickled_to_a_fresh_process(tmp_path) -> None:
    """What Ray does with the run settings: a worker (a fresh process) gets the TaskName pickled, and the
    trainer's get_task and load_task by plain name work there."""
    sentiment_files(tmp_path)
    spec = load_study(write_study(tmp_path, SENTIMENT))
    assert copy.deepcopy(spec.task).task == spec.task.task  # Ray Tune copies its configs, too
    (tmp_path / "task.pkl").write_bytes(pickle.dumps({"task": spec.task}))
    code = ("import pickle, sys\nfrom petl_search.training.tasks import get_task, load_cached_task\n"
            "run = pickle.load(open(sys.argv[1], 'rb'))\ntask = get_task(run['task'])\n"
            "data = load_cached_task(task.name, None)\nprint(type(run['task']).__name__, task.labels, "
            "len(data['train']), data['validation'][0]['label'])")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "task.pkl")], capture_output=True, text=True,
                         check=True).stdout.split()
    first = json.loads((tmp_path / "data" / "dev.jsonl").read_text().splitlines()[0])["label"]
    assert out == ["TaskName", "('negative',", "'positive')", "60", str(["negative", "positive"].index(first))]


def test_a_csv_regression_task_loads_with_its_kind_and_metric(tmp_path) -> None:
    rng = random.Random(0)
    for name, n in (("train", 30), ("dev", 10)):
        rows = [f"{' '.join(rng.choices(WORDS, k=4))},{' '.join(rng.choices(WORDS, k=3))},{rng.uniform(0, 5):.2f}"
                for _ in range(n)]
        (tmp_path / f"{name}.csv").write_text("first,second,score\n" + "\n".join(rows) + "\n")
    task = {"kind": "regression", "files": {"train": "train.csv", "dev": "dev.csv"}, "text": ["first", "second"],
            "label": "score"}
    spec = load_study(write_study(tmp_path, task, name="similar", objectives=["metric", "stored_params"]))
    found = get_task(spec.task)
    assert (found.kind, found.metric, found.main_metric, found.num_labels) == ("regression", "pearson_spearman",
                                                                                "pearson", 1)
    assert found.text_columns == ("text_a", "text_b") and spec.objectives == ("pearson", "stored_params")
    data = load_task(spec.task)
    assert data["train"].features["label"].dtype == "float32" and len(data["validation"]) == 10
    by_score = load_study(write_study(tmp_path, {**task, "metric": "spearmanr"}, name="ranked"))
    assert get_task(by_score.task).main_metric == "spearmanr"


def test_parquet_and_tsv_files_read_as_they_load(tmp_path) -> None:
    import pandas as pd

    pd.DataFrame(reviews(30, 0)).to_parquet(tmp_path / "train.parquet")
    pd.DataFrame(reviews(10, 1)).to_csv(tmp_path / "dev.tsv", sep="\t", index=False)
    spec = load_study(write_study(tmp_path, {**SENTIMENT, "files": {"train": "train.parquet", "dev": "dev.tsv"}}))
    data = load_task(spec.task)
    assert get_task(spec.task).labels == ("negative", "positive") and (len(data["train"]), len(data["validation"])) \
        == (30, 10)
    assert data["validation"]["label"] == [("negative", "positive").index(r["label"]) for r in reviews(10, 1)]


def test_a_seq2seq_task_reads_a_source_and_a_target(tmp_path) -> None:
    for name in ("train", "dev"):
        write_jsonl(tmp_path / f"{name}.jsonl", [{"doc": f"long text {i}", "summary": f"short {i}"} for i in range(5)])
    spec = load_study(write_study(tmp_path, {"kind": "seq2seq", "files": {"train": "train.jsonl", "dev": "dev.jsonl"},
                                             "source": "doc", "target": "summary"}, name="summaries"))
    task = get_task(spec.task)
    assert (task.metric, task.main_metric, task.labels) == ("rouge", "rouge2", ())
    assert load_task(spec.task)["validation"][0] == {"source": "long text 0", "target": "short 0"}


def hub_data():
    from datasets import ClassLabel, Dataset, Features, Value

    features = Features({"premise": Value("string"), "label": ClassLabel(names=["entailment", "not_entailment"])})
    return {split: Dataset.from_dict({"premise": [f"{split} {i}" for i in range(6)], "label": [0, 1, 1, 0, 1, 0]},
                                     features=features) for split in ("train", "validation")}


def test_a_hub_task_reads_its_classes_only_when_it_must(tmp_path, monkeypatch) -> None:
    """Without labels, a classification task's classes are read from the Hub (a ClassLabel keeps its order) when
    the study is read; with them, the Hub is read only when the data loads."""
    asked = []

    def fake_hub(repo, config, splits, *, task, instead):
        asked.append((repo, config, tuple(splits)))
        return {split: hub_data()[split] for split in splits}

    monkeypatch.setattr(own_tasks, "load_hub_splits", fake_hub)
    monkeypatch.setattr(tasks, "load_hub_splits", fake_hub)
    block = {"kind": "classification", "hub": {"id": "nyu-mll/glue", "config": "rte"}, "text": "premise",
             "label": "label"}
    spec = load_study(write_study(tmp_path, block, name="entails"))
    assert get_task(spec.task).labels == ("entailment", "not_entailment") and len(asked) == 1
    assert spec.identity()["task"]["hub"] == {"id": "nyu-mll/glue", "config": "rte",
                                              "splits": {"train": "train", "dev": "validation"}}
    given = load_study(write_study(tmp_path, {**block, "labels": ["entailment", "not_entailment"]}, name="entails"))
    assert len(asked) == 1 and given.identity() == spec.identity()  # not read; the same study
    assert load_task(given.task)["train"]["label"] == [0, 1, 1, 0, 1, 0] and len(asked) == 2
    wrong = load_study(write_study(tmp_path, {**block, "text": "hypothesis", "labels": ["a", "b"]}, name="wrong"))
    with pytest.raises(PETLError, match=rf"^{tmp_path / 'wrong.yaml'}: task 'wrong': nyu-mll/glue/rte:train lacks "
                                        r"columns \['hypothesis'\]; it has \['premise', 'label'\]"):
        load_task(wrong.task)


def test_train_takes_a_task_file(tmp_path, tiny_model, capsys) -> None:
    sentiment_files(tmp_path)
    task_file = tmp_path / "sentiment.yaml"
    task_file.write_text(yaml.safe_dump(SENTIMENT))
    args = ["train", "--task-file", str(task_file), "--preset", "lora", "--arg", "r=2", "--model", tiny_model,
            "--steps", "4", "--eval-every", "2", "--batch-size", "8", "--out", str(tmp_path / "result.json")]
    assert main(args) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["task"] == "sentiment" and result["status"] == "completed" and "accuracy" in result["metrics"]
    assert get_task(load_task_file(task_file)).definition["files"]["train"]["path"] == "data/train.jsonl"
    capsys.readouterr()
    assert main([*args[:3], "--data-dir", str(tmp_path), *args[3:]]) == 2
    assert capsys.readouterr().err.strip() == (f"petl-search: error: --task-file {task_file} says where its data is "
                                               f"(its files or hub): leave out --data-dir and --hub")
    task_file.write_text(yaml.safe_dump({**SENTIMENT, "kind": "clasification"}))
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == (f"petl-search: error: {task_file}: kind must be one of "
                                               f"['classification', 'regression', 'seq2seq', 'causal_lm'], but got "
                                               f"'clasification'")


def csv_task(folder: Path, train: str, dev: str) -> dict:
    (folder / "train.csv").write_text(train)
    (folder / "dev.csv").write_text(dev)
    return {"kind": "classification", "files": {"train": "train.csv", "dev": "dev.csv"}, "text": "s", "label": "y"}


def sentiment(folder: Path, **changes) -> dict:
    """The sentiment task's files written to `folder`; its mapping with `changes`."""
    sentiment_files(folder)
    return {**SENTIMENT, **changes}


def dev_with(folder: Path, classes: tuple[str, ...]) -> dict:
    sentiment_files(folder)
    write_jsonl(folder / "data" / "dev.jsonl", reviews(20, 1, classes))
    return SENTIMENT


def broken_dev(folder: Path) -> dict:
    sentiment_files(folder)
    (folder / "data" / "dev.jsonl").write_text('{"sentence": ')
    return SENTIMENT


def prompted(folder: Path, **changes) -> dict:
    """The sentiment task as a causal LM's prompt task (a template and a verbalizer), with `changes`; a key
    changed to None is left out."""
    sentiment_files(folder)
    block = {"kind": "causal_lm", "files": SENTIMENT["files"], "prompt": "Review: {sentence}\nSentiment:",
             "label": "label", "verbalizer": {"negative": " bad", "positive": " good"}, **changes}
    return {key: value for key, value in block.items() if value is not None}


def answered(folder: Path, **changes) -> dict:
    """The prompt task with an answer column (the label's text) instead of a verbalizer."""
    return prompted(folder, **{"label": None, "verbalizer": None, "answer": "label", **changes})


def spreadsheet(folder: Path) -> dict:
    (folder / "train.xlsx").write_bytes(b"PK")
    (folder / "dev.csv").write_text("s,y\n")
    return {**SENTIMENT, "files": {"train": "train.xlsx", "dev": "dev.csv"}}


# (what the test writes: the task mapping, given the folder; the message, {folder} standing for it)
MISTAKES = {
    "a missing file": (lambda d: sentiment(d, files={"train": "data/nope.jsonl", "dev": "data/dev.jsonl"}),
                       "task.files.train: {folder}/data/nope.jsonl not found"),
    "an unknown column": (lambda d: sentiment(d, text=["sentense"]),
                          "task.text: no column 'sentense' in {folder}/data/train.jsonl; its columns: ['sentence', "
                          "'label']"),
    "an unknown label column": (lambda d: sentiment(d, label="gold"),
                                "task.label: no column 'gold' in {folder}/data/train.jsonl; its columns: "
                                "['sentence', 'label']"),
    "a dev label train lacks": (lambda d: dev_with(d, ("negative", "positive", "neutral")),
                                "task.label: {folder}/data/dev.jsonl has labels ['neutral'] (column 'label') that "
                                "{folder}/data/train.jsonl lacks (it has ['negative', 'positive']): the model would "
                                "never learn them"),
    "a label not in labels": (lambda d: sentiment(d, labels=["negative", "good"]),
                              "task.labels: {folder}/data/train.jsonl has labels ['positive'] (column 'label') that "
                              "are not in ['negative', 'good']"),
    "an empty split": (lambda d: csv_task(d, "s,y\na,0\nb,1\n", "s,y\n"),
                       "task.files.dev: {folder}/dev.csv has no rows"),
    "an empty file": (lambda d: csv_task(d, "s,y\na,0\nb,1\n", ""), "task.files.dev: {folder}/dev.csv has no rows"),
    "an empty label": (lambda d: csv_task(d, "s,y\na,0\nb,\nc,1\n", "s,y\na,0\n"),
                       "task.label: {folder}/train.csv row 2 has no label (column 'y')"),
    "one class": (lambda d: csv_task(d, "s,y\na,0\nb,0\n", "s,y\na,0\n"),
                  "task.label: {folder}/train.csv has one class, '0' (column 'y'); a classifier needs two or more"),
    "accuracy on regression": (lambda d: {**csv_task(d, "s,y\na,0.5\n", "s,y\na,1\n"), "kind": "regression",
                                          "metric": "accuracy"},
                               "task.metric: 'accuracy' does not fit kind 'regression'; a regression task takes one "
                               "of ['pearson_spearman', 'pearson', 'spearmanr', 'combined']"),
    "an unknown metric": (lambda d: {**csv_task(d, "s,y\na,0\n", "s,y\na,1\n"), "metric": "auc"},
                          "task.metric: 'auc' is not a metric petl-search computes; a classification task takes one "
                          "of ['accuracy', 'f1', 'matthews_correlation']"),
    "f1 on three classes": (lambda d: {**csv_task(d, "s,y\na,0\nb,1\nc,2\n", "s,y\na,1\n"), "metric": "f1"},
                            "task.metric: f1 is the F1 of the positive class (the second of two labels), but this "
                            "task has 3 classes ['0', '1', '2']: use accuracy or matthews_correlation"),
    "a text regression label": (lambda d: {**csv_task(d, "s,y\na,0.5\nb,high\n", "s,y\na,1\n"), "kind": "regression"},
                                "task.label: {folder}/train.csv row 2 has 'high' in column 'y'; a regression label "
                                "is a number"),
    "an unknown kind": (lambda d: {**SENTIMENT, "kind": "clasification"},
                        "task.kind must be one of ['classification', 'regression', 'seq2seq', 'causal_lm'], but got "
                        "'clasification'"),
    "text on causal_lm": (lambda d: {**SENTIMENT, "kind": "causal_lm"},
                          "task.text: a causal_lm task reads a prompt (prompt: a column, or a template with {{column}} "
                          "fields) and an answer (answer: a column; or label: and verbalizer: for classification "
                          "data), not text"),
    "prompt on classification": (lambda d: {**SENTIMENT, "prompt": "Review: {{sentence}}"},
                                 "task.prompt: prompt, answer and verbalizer are for a causal_lm task, not a "
                                 "classification task"),
    "neither answer nor verbalizer": (lambda d: prompted(d, verbalizer=None),
                                      "task.answer: a causal_lm task needs one of answer (the answer column: exact "
                                      "match on the generated answer) or verbalizer (each label's answer words, with "
                                      "label: the label column: accuracy over the scored words), but got neither"),
    "answer and verbalizer": (lambda d: prompted(d, answer="label"), "task.answer: a causal_lm task needs one of "
                              "answer (the answer column: exact match on the generated answer) or verbalizer"),
    "labels beside an answer": (lambda d: answered(d, labels=["negative", "positive"]),
                                "task.labels: a causal_lm task with an answer column has no classes; for "
                                "classification data give label: and verbalizer: instead of answer:"),
    "an unknown prompt field": (lambda d: prompted(d, prompt="Review: {sentense}"),
                                "task.prompt: no column 'sentense' in {folder}/data/train.jsonl; its columns: "
                                "['sentence', 'label']"),
    "an unknown prompt column": (lambda d: answered(d, prompt="review"),
                                 "task.prompt: no column 'review' in {folder}/data/train.jsonl"),
    "a field with a format": (lambda d: prompted(d, prompt="{sentence:>9}"),
                              "task.prompt: a field is a column's name in braces, as {{sentence}}, but got "
                              "'{{sentence:>9}}' (write {{{{ and }}}} for literal braces)"),
    "an empty prompt": (lambda d: prompted(d, prompt=" "), "task.prompt must be a column's name or a template"),
    "an unknown answer column": (lambda d: answered(d, answer="reply"),
                                 "task.answer: no column 'reply' in {folder}/data/train.jsonl; its columns: "
                                 "['sentence', 'label']"),
    "the answer in the prompt": (lambda d: answered(d, prompt="{sentence} {label}"),
                                 "task.answer must not be a field of the prompt too (the model would read its answer), "
                                 "but got 'label'"),
    "accuracy on generated answers": (lambda d: answered(d, metric="accuracy"),
                                      "task.metric: 'accuracy' does not fit kind 'causal_lm'; a causal_lm task with an "
                                      "answer column takes one of ['exact_match', 'rouge', 'bleu', "),
    "exact match on scored words": (lambda d: prompted(d, metric="exact_match"),
                                    "task.metric: 'exact_match' does not fit kind 'causal_lm' with a verbalizer; a "
                                    "causal_lm task with a verbalizer takes one of ['accuracy', 'f1', "
                                    "'matthews_correlation']"),
    "exact match on classification": (lambda d: {**SENTIMENT, "metric": "exact_match"},
                                      "task.metric: 'exact_match' does not fit kind 'classification'; a classification "
                                      "task takes one of ['accuracy', 'f1', 'matthews_correlation']"),
    "a label the verbalizer lacks": (lambda d: prompted(d, verbalizer={"negative": " bad", "neutral": " meh"}),
                                     "task.verbalizer: {folder}/data/train.jsonl has labels ['positive'] (column "
                                     "'label') that are not in ['negative', 'neutral']"),
    "labels that are not the verbalizer's": (lambda d: prompted(d, labels=["negative", "good"]),
                                             "task.labels must be the verbalizer's labels ['negative', 'positive'] (in "
                                             "any order), but got ['negative', 'good']"),
    "one word for two labels": (lambda d: prompted(d, verbalizer={"negative": " ok", "positive": " ok"}),
                                "task.verbalizer gives two labels the same words ' ok': they could never be told "
                                "apart"),
    "a verbalizer of one label": (lambda d: prompted(d, verbalizer={"negative": " bad"}),
                                  "task.verbalizer must map two or more labels to their answer words"),
    "an empty answer": (lambda d: {"kind": "causal_lm", "prompt": "s", "answer": "y",
                                   "files": csv_task(d, "s,y\na,yes\nb,\n", "s,y\na,no\n")["files"]},
                        "task.answer: {folder}/train.csv row 2 has no answer (column 'y')"),
    "an unreadable format": (spreadsheet,
                             "task.files.train: train.xlsx is not in a format petl-search reads (CSV, TSV, JSON "
                             "lines, Parquet: .csv, .tsv, .jsonl, .json, .parquet)"),
    "a broken JSON-lines file": (broken_dev,
                                 "task.files.dev: could not read {folder}/data/dev.jsonl as JSON lines (one object "
                                 "per line): "),
    "an unknown key": (lambda d: {**SENTIMENT, "lable": "label"}, "task has no key 'lable'; keys: ['name', 'kind', "),
    "files and hub": (lambda d: {**SENTIMENT, "hub": {"id": "x"}}, "task needs one of files (local files) or hub (a "
                                                                   "Hugging Face dataset), but got both"),
    "a built-in name": (lambda d: {**SENTIMENT, "name": "sst2"}, "task.name must not be a built-in task's name "
                                                                 "(`task: sst2` is that task), but got 'sst2'"),
    "labels on regression": (lambda d: {**SENTIMENT, "kind": "regression", "labels": ["a", "b"]},
                             "task.labels: a regression task has no classes (its label is a number): leave labels out"),
    "text on seq2seq": (lambda d: {**SENTIMENT, "kind": "seq2seq"}, "task.text: a seq2seq task reads a source and a "
                                                                    "target column (source: and target:), not text"),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_every_mistake_is_one_line_naming_the_study_file_and_the_key(tmp_path, mistake) -> None:
    write, message = MISTAKES[mistake]
    path = write_study(tmp_path, write(tmp_path))
    with pytest.raises(StudyError) as info:
        load_study(path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: " + message.format(folder=tmp_path.resolve())), text


def test_data_dir_and_hub_are_for_built_in_tasks(tmp_path) -> None:
    sentiment_files(tmp_path)
    path = write_study(tmp_path, SENTIMENT, data_dir=str(tmp_path))
    with pytest.raises(StudyError, match=rf"^{path}: data_dir is for a built-in task; the study's own task says where "
                                         r"its data is \(task.files or task.hub\): leave data_dir out"):
        load_study(path)
    with pytest.raises(StudyError, match=r"task must be one of \[.*\], or a mapping that defines the study's own "
                                         r"task .* but got 'sst3'"):
        parse_study({"name": "b", "task": "sst3", "space": UNIFIED, "budget": 0.05})
