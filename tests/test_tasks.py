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


def test_no_glue_folder_names_the_folders_tried_and_the_three_fixes(tmp_path, monkeypatch) -> None:
    absent = tmp_path / "shared" / "data" / "glue"
    monkeypatch.setattr(tasks, "SHARED_GLUE_DIR", absent)
    monkeypatch.delenv(tasks.GLUE_DIR_ENV, raising=False)
    with pytest.raises(PETLError) as info:
        load_task("sst2")
    message = str(info.value)
    assert f"tried $PETL_SEARCH_GLUE_DIR (not set) and {absent} (beside the checkout; not a folder)" in message
    for fix in ("`petl-search data glue sst2 --out DIR`", "`--data-dir DIR`", "`data_dir: DIR` in a study",
                "$PETL_SEARCH_GLUE_DIR=DIR", "`hub: true`", "`--hub` for `petl-search train`"):
        assert fix in message
    assert "\n" not in message
    monkeypatch.setenv(tasks.GLUE_DIR_ENV, str(tmp_path / "typo"))
    with pytest.raises(PETLError, match=rf"\$PETL_SEARCH_GLUE_DIR is set to {tmp_path / 'typo'}, which does not exist "
                                        r"\(fix or unset it\); or get the data with `petl-search data glue sst2"):
        load_task("sst2")
    with pytest.raises(PETLError, match=r"the GLUE folder .*nowhere \(data_dir\) is not a folder; get the data with"):
        load_task("sst2", tmp_path / "nowhere")


def test_a_task_missing_from_the_glue_folder_says_how_to_get_it(tmp_path) -> None:
    with pytest.raises(PETLError, match=r"RTE/train.tsv not found .*; get the data with `petl-search data glue rte "
                                        r"--out DIR`"):
        load_task("rte", tmp_path)


def write_split_files(folder, train: str, dev: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "train.tsv").write_text(train)
    (folder / "dev.tsv").write_text(dev)


def test_a_missing_label_or_text_column_names_the_column_the_file_and_the_columns_there(tmp_path) -> None:
    good = "sentence\tlabel\nfine\t1\n"
    write_split_files(tmp_path / "SST-2", good, "sentence\nno label here\n")
    dev = tmp_path / "SST-2" / "dev.tsv"
    with pytest.raises(PETLError, match=rf"task 'sst2': {dev} lacks columns \['label'\]; it has \['sentence'\] "
                                        r"\(missing: the label column 'label'; the loader reads \['sentence', "
                                        r"'label'\]\)"):
        load_task("sst2", tmp_path)
    write_split_files(tmp_path / "QNLI", "index\tquestion\tlabel\n0\tq?\tentailment\n", "")
    with pytest.raises(PETLError, match=r"QNLI/train.tsv lacks columns \['sentence'\]; it has \['index', 'question', "
                                        r"'label'\] \(missing: the text column 'sentence'"):
        load_task("qnli", tmp_path, splits=("train",))


def test_an_empty_label_or_score_names_the_line_and_the_column(tmp_path) -> None:
    write_split_files(tmp_path / "SST-2", "sentence\tlabel\nfine\t1\na row without its label\nbad\t0\n",
                      "sentence\tlabel\nok\t0\n")
    with pytest.raises(PETLError, match=r"SST-2/train.tsv line 3 has label ''; expected one of \['0', '1'\] \(column "
                                        r"'label' is empty: a row shorter than the header\?"):
        load_task("sst2", tmp_path)
    write_split_files(tmp_path / "SST-2", "sentence\tlabel\nfine\t1\n", "sentence\tlabel\nok\t0\nshort row\n")
    with pytest.raises(PETLError, match=r"SST-2/dev.tsv line 3 has label ''"):  # train's labels are numbers, dev's not
        load_task("sst2", tmp_path)
    write_split_files(tmp_path / "STS-B", "sentence1\tsentence2\tscore\na\tb\t1.5\nc\td\n",
                      "sentence1\tsentence2\tscore\n")
    with pytest.raises(PETLError, match=r"STS-B/train.tsv line 3 has score '' \(column 'score'\); expected a number"):
        load_task("stsb", tmp_path, splits=("train",))


def test_a_headerless_cola_file_with_missing_fields_names_them(tmp_path) -> None:
    rows = "gj04\t1\t\tA fine sentence.\n"
    write_split_files(tmp_path / "CoLA", rows, "index\tsentence\n0\tA test row without a label.\n")
    with pytest.raises(PETLError, match=r"CoLA/dev.tsv has no header row; its fields are, by position, \['source', "
                                        r"'label', 'orig_label', 'sentence'\], but its first row has 2 fields "
                                        r"\(\['index', 'sentence'\]\): missing the text column 'sentence' \(field 4\)"):
        load_task("cola", tmp_path)
    write_split_files(tmp_path / "CoLA", rows, "gj04\t1\n")
    with pytest.raises(PETLError, match=r"first row has 2 fields \(\['gj04', '1'\]\): missing the text column "
                                        r"'sentence' \(field 4\)"):
        load_task("cola", tmp_path)
    write_split_files(tmp_path / "CoLA", rows, rows)
    assert load_task("cola", tmp_path)["validation"][0] == {"label": 1, "text_a": "A fine sentence."}


def test_texts_that_look_missing_are_read_as_written(tmp_path) -> None:
    """No "NA"/"null"/empty-to-None conversion: a text is what the file says."""
    write_split_files(tmp_path / "SST-2", "sentence\tlabel\nNA\t1\nnull\t0\n\t1\nN/A\t0\n", "sentence\tlabel\nnan\t1\n")
    data = load_task("sst2", tmp_path)
    assert data["train"]["text_a"] == ["NA", "null", "", "N/A"] and data["validation"]["text_a"] == ["nan"]
