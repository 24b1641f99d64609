"""`petl-search data glue`: Hub-shaped GLUE splits written as TSV read back by the task loaders text for text
and label for label; checksums, --force, and the one-line error when the Hub cannot be reached. No network:
the Hub's splits are built by hand in the nyu-mll/glue configs' shapes (column names, integer labels)."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from petl_search.cli import main
from petl_search.core.errors import PETLError
from petl_search.training import glue_data, hub, tasks
from petl_search.training.glue_data import GLUE_TASKS, clean_text, fetch_glue, read_checksums, write_task
from petl_search.training.hub import HubUnreachableError
from petl_search.training.tasks import HUB, load_task

# Texts a TSV read without quoting could lose: tabs, newlines, quotes, "NA"/"null" (pandas' missing values),
# a leading '#', surrounding spaces, an empty text, a number, non-ASCII.
TEXTS = ["it 's a charming \t journey . ", "line one\nline two\r\nthree", '"quoted" and a bare " quote', "NA",
         "null", "# not a comment", "  spaced  ", "", "42", "naïve café — 日本語"]
NAMES = {  # the Hub's label names (ClassLabel), in the order of its integer ids
    "sst2": ["negative", "positive"], "cola": ["unacceptable", "acceptable"], "mrpc": ["not_equivalent", "equivalent"],
    "qqp": ["not_duplicate", "duplicate"], "rte": ["entailment", "not_entailment"],
    "qnli": ["entailment", "not_entailment"], "wnli": ["not_entailment", "entailment"],
    "mnli": ["entailment", "neutral", "contradiction"],
}
TEXT_COLUMNS = {"sst2": ["sentence"], "cola": ["sentence"], "stsb": ["sentence1", "sentence2"],
                "mrpc": ["sentence1", "sentence2"], "rte": ["sentence1", "sentence2"],
                "wnli": ["sentence1", "sentence2"], "qnli": ["question", "sentence"],
                "mnli": ["premise", "hypothesis"], "qqp": ["question1", "question2"]}
VALIDATION = {"mnli": "validation_matched"}


def hub_split(name: str, n: int, shift: int) -> Dataset:
    """n examples of config `name` as the Hub has them: its text columns, `label` and `idx`."""
    columns = {c: [TEXTS[(i * (k + 1) + shift) % len(TEXTS)] + ("" if k == 0 else " b") for i in range(n)]
               for k, c in enumerate(TEXT_COLUMNS[name])}
    if name == "stsb":
        columns["label"] = [round(((i * 7 + shift) % 11) * 0.457, 3) for i in range(n)]  # 0.0 .. 4.57, e.g. 1.371
        label = Value("float32")
    else:
        columns["label"] = [(i + shift) % len(NAMES[name]) for i in range(n)]
        label = ClassLabel(names=NAMES[name])
    columns["idx"] = list(range(n))
    features = Features({**{c: Value("string") for c in TEXT_COLUMNS[name]}, "label": label, "idx": Value("int32")})
    return Dataset.from_dict(columns, features=features)


def hub_config(name: str, shift: int = 0) -> DatasetDict:
    """A small DatasetDict shaped like nyu-mll/glue's config `name` (MNLI: validation_matched/_mismatched)."""
    splits = {"train": hub_split(name, 12, shift), VALIDATION.get(name, "validation"): hub_split(name, 7, shift + 3)}
    if name == "mnli":
        splits["validation_mismatched"] = hub_split(name, 5, shift + 5)
    return DatasetDict(splits)


@pytest.mark.parametrize("name", GLUE_TASKS)
def test_written_files_read_back_as_the_hub_texts_and_labels(tmp_path, name: str) -> None:
    config = hub_config(name)
    written = write_task(name, config, tmp_path)
    assert [w.path for w in written] == glue_data.task_files(name)
    data = load_task(name, tmp_path)
    for split, hub_name in (("train", "train"), ("validation", VALIDATION.get(name, "validation"))):
        source = config[hub_name]
        assert len(data[split]) == len(source) == dict((w.path.split("/")[1], w.rows) for w in written)[
            tasks.get_task(name).files[split]]
        for ours, theirs in zip(("text_a", "text_b"), TEXT_COLUMNS[name]):
            assert data[split][ours] == [clean_text(t) for t in source[theirs]]
        if name == "stsb":
            assert data[split]["label"] == [float(np.float32(x)) for x in source["label"]]
        else:
            assert data[split]["label"] == source["label"]


def test_tabs_and_newlines_become_spaces_and_nothing_else_changes() -> None:
    assert clean_text("a\tb\nc\r\nd") == "a b c  d"
    assert clean_text(' "x"  NA ') == ' "x"  NA '


@pytest.mark.parametrize("name", ["sst2", "cola", "stsb", "mnli"])
def test_the_files_read_back_as_the_hub_loader_reads_the_hub(tmp_path, monkeypatch, name: str) -> None:
    """Through `load_task(hub=True)` (its column map, its label order) the same examples as from the files."""
    config = hub_config(name)
    write_task(name, config, tmp_path)
    with monkeypatch.context() as m:
        m.setenv("HF_HUB_OFFLINE", "1")  # no probe; load_dataset answers from memory
        m.setattr("datasets.load_dataset", lambda path, cfg, split: config[split])
        from_hub = load_task(name, hub=True)
    from_files = load_task(name, tmp_path)
    for split in ("train", "validation"):
        expected = from_hub[split].to_dict()
        for column in tasks.get_task(name).text_columns:
            expected[column] = [clean_text(t) for t in expected[column]]
        assert from_files[split].to_dict() == expected


def test_cola_is_written_without_a_header_and_mnli_dev_as_dev_matched(tmp_path) -> None:
    write_task("cola", hub_config("cola"), tmp_path)
    first = (tmp_path / "CoLA" / "train.tsv").read_text(encoding="utf-8").splitlines()[0]
    assert first.split("\t")[1] in ("0", "1") and len(first.split("\t")) == 4
    write_task("mnli", hub_config("mnli"), tmp_path)
    assert sorted(p.name for p in (tmp_path / "MNLI").iterdir()) == ["dev_matched.tsv", "train.tsv"]
    header = (tmp_path / "MNLI" / "train.tsv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "index\tsentence1\tsentence2\tgold_label"
    assert {line.split("\t")[-1] for line in (tmp_path / "MNLI" / "train.tsv").read_text().splitlines()[1:]} == \
        {"entailment", "neutral", "contradiction"}


def test_sha256sums_lists_every_file_with_its_checksum(tmp_path) -> None:
    first = write_task("sst2", hub_config("sst2"), tmp_path)
    second = write_task("rte", hub_config("rte"), tmp_path)
    sums = read_checksums(tmp_path / "SHA256SUMS")
    assert sorted(sums) == sorted(w.path for w in first + second)  # the second run kept the first's lines
    for path, digest in sums.items():
        assert hashlib.sha256((tmp_path / path).read_bytes()).hexdigest() == digest
    assert {w.path: w.sha256 for w in first + second} == sums
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]  # no temporary file left behind


def test_existing_files_are_kept_unless_force(tmp_path) -> None:
    write_task("sst2", hub_config("sst2"), tmp_path)
    before = (tmp_path / "SST-2" / "train.tsv").read_bytes()
    with pytest.raises(PETLError, match=r"already has \['SST-2/train.tsv', 'SST-2/dev.tsv'\]; pass --force"):
        write_task("sst2", hub_config("sst2", shift=1), tmp_path)
    assert (tmp_path / "SST-2" / "train.tsv").read_bytes() == before
    written = write_task("sst2", hub_config("sst2", shift=1), tmp_path, force=True)
    assert (tmp_path / "SST-2" / "train.tsv").read_bytes() != before
    assert read_checksums(tmp_path / "SHA256SUMS")["SST-2/train.tsv"] == written[0].sha256


def test_the_cli_writes_prints_and_refuses_to_overwrite(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(glue_data, "download", hub_config)
    out = tmp_path / "glue"
    assert main(["data", "glue", "sst2", "cola", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    sums = read_checksums(out / "SHA256SUMS")
    assert printed[:4] == [f"{p}\t{n} rows\tsha256 {sums[p]}" for p, n in
                           (("SST-2/train.tsv", 12), ("SST-2/dev.tsv", 7), ("CoLA/train.tsv", 12), ("CoLA/dev.tsv", 7))]
    assert main(["data", "glue", "cola", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already has ['CoLA/train.tsv', 'CoLA/dev.tsv']; pass --force" in err
    assert main(["data", "glue", "cola", "--out", str(out), "--force"]) == 0
    assert main(["data", "glue", "sst3", "--out", str(out)]) == 2
    assert "a task must be one of ['sst2', 'cola', 'stsb', 'mrpc', 'rte', 'qnli', 'wnli', 'mnli', 'qqp'], but got " \
           "'sst3'" in capsys.readouterr().err


def test_no_task_named_means_every_glue_task() -> None:
    assert glue_data.glue_tasks([]) == ("sst2", "cola", "stsb", "mrpc", "rte", "qnli", "wnli", "mnli", "qqp")
    assert glue_data.glue_tasks(["rte", "sst2", "rte"]) == ("rte", "sst2")


OFFLINE_ERROR = ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (OfflineModeIsEnabled)")


def offline(monkeypatch) -> None:
    """HF_HUB_OFFLINE=1 and a datasets cache without nyu-mll/glue: load_dataset raises what it raises then."""
    def load_dataset(*args, **kwargs):
        raise OFFLINE_ERROR

    def probe(*args, **kwargs):
        raise AssertionError("offline: the Hub must not be asked")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("datasets.load_dataset", load_dataset)
    monkeypatch.setattr(hub, "probe_hub", probe)


def test_offline_the_cli_fails_in_one_line_naming_the_task_and_the_alternatives(tmp_path, monkeypatch, capsys) -> None:
    offline(monkeypatch)
    assert main(["data", "glue", "--out", str(tmp_path / "glue")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("petl-search: error: could not reach the Hugging Face Hub for task 'sst2' (nyu-mll/glue, "
                          "config sst2): HF_HUB_OFFLINE is set and the datasets cache has no copy")
    assert "`--data-dir DIR`" in err and "$PETL_SEARCH_GLUE_DIR=DIR" in err
    assert not (tmp_path / "glue").exists() or not any((tmp_path / "glue").rglob("*.tsv"))


def test_without_network_the_hub_is_probed_once_quickly_and_datasets_never_retries(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []
    monkeypatch.setattr(hub, "probe_hub", lambda repo: calls.append(repo) or "ConnectError: [Errno -2] no DNS")
    monkeypatch.setattr("datasets.load_dataset", lambda *a, **k: pytest.fail("load_dataset retries for ~30 s"))
    with pytest.raises(HubUnreachableError, match=r"task 'rte' \(nyu-mll/glue, config rte\): ConnectError: "
                                                  r"\[Errno -2\] no DNS \(with HF_HUB_OFFLINE=1 a copy in the "
                                                  r"datasets cache"):
        fetch_glue(["rte"], tmp_path)
    assert calls == ["nyu-mll/glue"]


def test_the_probe_tells_no_answer_from_an_answer(monkeypatch) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.utils import HfHubHTTPError

    def raising(exc):
        def dataset_info(self, repo_id, **kwargs):
            raise exc
        return dataset_info

    monkeypatch.setattr(HfApi, "dataset_info", raising(OSError("[Errno -2] Name or service not known")))
    assert hub.probe_hub("nyu-mll/glue", timeout=0.1) == "OSError: [Errno -2] Name or service not known"
    monkeypatch.setattr(HfApi, "dataset_info", raising(HfHubHTTPError.__new__(HfHubHTTPError)))
    assert hub.probe_hub("nyu-mll/glue") is None  # a 404 is an answer: load_dataset will say what is wrong
    monkeypatch.setattr(HfApi, "dataset_info", lambda self, repo_id, **kwargs: object())
    assert hub.probe_hub("nyu-mll/glue") is None


def test_a_study_reading_the_hub_fails_in_one_line_offline(monkeypatch) -> None:
    """`hub: true` travels as data_dir=HUB: load_task and load_cached_task read the Hub, or say why not."""
    offline(monkeypatch)
    for load in (lambda: load_task("qnli", HUB), lambda: tasks.load_cached_task("qnli", HUB),
                 lambda: load_task("qnli", hub=True)):
        with pytest.raises(HubUnreachableError) as info:
            load()
        assert "\n" not in str(info.value) and "task 'qnli' (nyu-mll/glue, config qnli)" in str(info.value)
    with pytest.raises(HubUnreachableError, match=r"instead, pass data_dir: a folder with train/validation \.jsonl"):
        load_task("xsum", hub=True)


def test_hub_labels_out_of_range_are_refused(tmp_path) -> None:
    config = hub_config("rte")
    test_like = Dataset.from_dict({"sentence1": ["a"], "sentence2": ["b"], "label": [-1], "idx": [0]})
    with pytest.raises(PETLError, match=r"row 0 column 'label' must be a class id in 0..1 \(\['entailment', "
                                        r"'not_entailment'\]\), but got -1"):
        write_task("rte", {"train": config["train"], "validation": test_like}, tmp_path)
    assert (tmp_path / "RTE" / "train.tsv").is_file() and not (tmp_path / "RTE" / "dev.tsv").exists()  # no half file
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    with pytest.raises(PETLError, match=r"lacks columns \['sentence2'\]"):
        write_task("rte", {"train": config["train"].remove_columns("sentence2"), "validation": test_like}, tmp_path,
                   force=True)


def test_a_hub_study_offline_stops_the_search_in_one_line(tmp_path, monkeypatch, capsys) -> None:
    """`hub: true` reaches run_study's first load of the data (and the error is the Hub's, not a folder's)."""
    import yaml

    from petl_search.toy import write_toy_study

    study = write_toy_study(tmp_path, "from_hub", data_dir=None, hub=True)
    data = yaml.safe_load(study.read_text())
    study.write_text(yaml.safe_dump({k: v for k, v in data.items() if k != "data_dir"}))
    offline(monkeypatch)
    monkeypatch.setenv(tasks.GLUE_DIR_ENV, str(tmp_path / "absent"))  # were hub lost on the way: fail, not train
    capsys.readouterr()  # the tiny model's writing
    assert main(["search", str(study)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not reach the Hugging Face Hub for task 'sst2'" in err
    assert not (tmp_path / "from_hub" / "study.db").exists()  # stopped before the storage was created


def test_train_refuses_hub_with_a_data_dir(capsys) -> None:
    assert main(["train", "--task", "sst2", "--preset", "lora", "--hub", "--data-dir", "glue"]) == 2
    assert "--hub and --data-dir exclude each other" in capsys.readouterr().err
