"""Task loaders on the shared GLUE files and on local seq2seq files; clear errors for bad input."""
from __future__ import annotations

import json

import pytest

from petl_search.training import tasks
from petl_search.core.errors import PETLError
from petl_search.training.tasks import load_task

# Row counts and label sets from shared/data/glue/README.md
GLUE_EXPECTED = {
    "sst2": ({"train": 67349, "validation": 872}, {0, 1}),
    "cola": ({"train": 8551, "validation": 1043}, {0, 1}),
    "wnli": ({"train": 635, "validation": 71}, {0, 1}),
}


@pytest.mark.parametrize("name", sorted(GLUE_EXPECTED))
def test_glue_classification_tasks_load_with_their_sizes_and_labels(name: str) -> None:
    sizes, labels = GLUE_EXPECTED[name]
    data = load_task(name)
    assert {split: len(data[split]) for split in data} == sizes
    for split in data:
        assert set(data[split]["label"]) == labels
        assert all(isinstance(t, str) and t for t in data[split]["text_a"][:50])


def test_cola_has_no_header_and_keeps_its_first_row() -> None:
    first = load_task("cola", splits=("validation",))["validation"][0]
    assert first == {"label": 1, "text_a": "The sailors rode the breeze clear of the rocks."}


def test_stsb_is_regression_with_float_scores() -> None:
    data = load_task("stsb")
    assert len(data["train"]) == 5749 and len(data["validation"]) == 1500
    scores = data["validation"]["label"]
    assert min(scores) == 0.0 and max(scores) == 5.0 and data["validation"].features["label"].dtype == "float32"
    assert tasks.get_task("stsb").num_labels == 1 and tasks.get_task("stsb").text_columns == ("text_a", "text_b")


def test_qnli_string_labels_become_class_ids() -> None:
    data = load_task("qnli", splits=("validation",))["validation"]
    assert len(data) == 5463 and set(data["label"]) == {0, 1}
    assert data[0]["label"] == 0  # "entailment" is class 0, as on the Hub


def test_mrpc_header_with_byte_order_mark(tmp_path) -> None:
    folder = tmp_path / "MRPC"
    folder.mkdir()
    rows = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tHe said \"yes\".\tHe agreed.\n0\t3\t4\tA.\tB.\n"
    for split in ("train.tsv", "dev.tsv"):
        (folder / split).write_text(rows, encoding="utf-8")
    data = load_task("mrpc", tmp_path)
    assert data["train"][0] == {"text_a": 'He said "yes".', "text_b": "He agreed.", "label": 1}


def test_seq2seq_local_files(tmp_path) -> None:
    with (tmp_path / "train.jsonl").open("w") as f:
        f.write(json.dumps({"document": "a long text", "summary": "short", "id": 1}) + "\n")
    (tmp_path / "validation.csv").write_text("document,summary\nanother text,sum\n")
    data = load_task("xsum", tmp_path)
    assert data["train"][0] == {"source": "a long text", "target": "short"}
    assert data["validation"][0] == {"source": "another text", "target": "sum"}
    wmt = tmp_path / "wmt"
    wmt.mkdir()
    for split in ("train", "validation"):
        (wmt / f"{split}.jsonl").write_text(json.dumps({"translation": {"en": "house", "ro": "casa"}}) + "\n")
    assert load_task("wmt16_en_ro", wmt)["train"][0] == {"source": "house", "target": "casa"}


def test_bad_input_gives_one_clear_error(tmp_path) -> None:
    with pytest.raises(PETLError, match=r"task must be one of \[.*'sst2'.*\], but got 'sst3'"):
        load_task("sst3")
    with pytest.raises(PETLError, match=r"task 'mrpc': .*MRPC/train.tsv not found"):
        load_task("mrpc", tmp_path)
    (tmp_path / "SST-2").mkdir()
    for split in ("train.tsv", "dev.tsv"):
        (tmp_path / "SST-2" / split).write_text("text\tlabel\nfine\t1\n")
    with pytest.raises(PETLError, match=r"lacks columns \['sentence'\]; it has \['text', 'label'\]"):
        load_task("sst2", tmp_path)
    for split in ("train.tsv", "dev.tsv"):
        (tmp_path / "SST-2" / split).write_text("sentence\tlabel\nfine\tmaybe\n")
    with pytest.raises(PETLError, match=r"has label 'maybe'; expected one of \['0', '1'\]"):
        load_task("sst2", tmp_path)
    (tmp_path / "SST-2" / "train.tsv").write_bytes(b"\x00\xff\xfe garbage")
    with pytest.raises(PETLError, match=r"task 'sst2': could not read"):
        load_task("sst2", tmp_path)
    with pytest.raises(PETLError, match=r"task 'xsum' needs data_dir"):
        load_task("xsum")
