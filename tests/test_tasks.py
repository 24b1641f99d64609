"""Task loaders on GLUE's files (the test fixtures cut from them, the SST-2 that ships with the package, and
the whole files where a GLUE folder is set up) and on local seq2seq files; clear errors for bad input."""
from __future__ import annotations

import csv
import hashlib
import json

import pytest

from conftest import GLUE_FIXTURES
from petl_search.training import tasks
from petl_search.core.errors import PETLError
from petl_search.training.glue_data import read_checksums
from petl_search.training.tasks import load_task

# Rows per split in tests/fixtures/glue (the first 200 of each file; WNLI's dev has 71), and the label sets
FIXTURE_EXPECTED = {
    "sst2": ({"train": 200, "validation": 200}, {0, 1}),
    "cola": ({"train": 200, "validation": 200}, {0, 1}),
    "wnli": ({"train": 200, "validation": 71}, {0, 1}),
}
# Row counts and label sets of the whole files, from shared/data/glue/README.md
GLUE_EXPECTED = {
    "sst2": ({"train": 67349, "validation": 872}, {0, 1}),
    "cola": ({"train": 8551, "validation": 1043}, {0, 1}),
    "wnli": ({"train": 635, "validation": 71}, {0, 1}),
}
# A GLUE folder with the whole files, where this machine has one ($PETL_SEARCH_GLUE_DIR, else ../shared/data/glue)
FULL_GLUE = tasks.default_glue_dir()
needs_full_glue = pytest.mark.skipif(FULL_GLUE is None, reason="no GLUE folder ($PETL_SEARCH_GLUE_DIR unset, no "
                                     "../shared/data/glue): the same loader is tested on tests/fixtures/glue")


def read_tsv(path, columns: list[str] | None = None) -> list[dict[str, str]]:
    """A GLUE file's rows read with the csv module (an independent reading to hold the loader's against)."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, fieldnames=columns, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.mark.parametrize("name", sorted(FIXTURE_EXPECTED))
def test_glue_classification_tasks_load_with_their_sizes_and_labels(name: str) -> None:
    sizes, labels = FIXTURE_EXPECTED[name]
    data = load_task(name, GLUE_FIXTURES)
    assert {split: len(data[split]) for split in data} == sizes
    task = tasks.get_task(name)
    for split in data:
        assert set(data[split]["label"]) == labels
        rows = read_tsv(GLUE_FIXTURES / task.folder / task.files[split], None if task.header else list(task.columns))
        text, label = (next(c for c, ours in task.columns.items() if ours == role) for role in ("text_a", "label"))
        assert data[split]["text_a"] == [row[text] for row in rows]  # every row, none lost or merged
        assert data[split]["label"] == [task.labels.index(row[label]) for row in rows]


@needs_full_glue
@pytest.mark.parametrize("name", sorted(GLUE_EXPECTED))
def test_the_whole_glue_files_load_with_their_sizes_and_labels(name: str) -> None:
    sizes, labels = GLUE_EXPECTED[name]
    data = load_task(name, FULL_GLUE)
    assert {split: len(data[split]) for split in data} == sizes
    for split in data:
        assert set(data[split]["label"]) == labels
        assert all(isinstance(t, str) and t for t in data[split]["text_a"][:50])


def test_sst2_ships_with_the_package_whole_and_unchanged() -> None:
    """The packaged SST-2 is GLUE's: its checksums hold, and it loads with the official sizes."""
    sums = read_checksums(tasks.PACKAGED_GLUE_DIR / "SHA256SUMS")
    assert sorted(sums) == ["SST-2/dev.tsv", "SST-2/train.tsv"] and tasks.packaged_tasks() == ("sst2",)
    for file, digest in sums.items():
        assert hashlib.sha256((tasks.PACKAGED_GLUE_DIR / file).read_bytes()).hexdigest() == digest, file
    data = load_task("sst2", tasks.PACKAGED_GLUE_DIR)
    assert {split: len(data[split]) for split in data} == GLUE_EXPECTED["sst2"][0]


@pytest.mark.skipif(not tasks.SHARED_GLUE_DIR.is_dir(), reason="no ../shared/data/glue beside the checkout: the "
                    "packaged files are checked against their own SHA256SUMS above")
def test_the_packaged_sst2_is_byte_identical_to_the_shared_copy() -> None:
    """The committed studies read ../shared's SST-2: the packaged copy gives them the very same examples."""
    shared = read_checksums(tasks.SHARED_GLUE_DIR / "SHA256SUMS")
    packaged = read_checksums(tasks.PACKAGED_GLUE_DIR / "SHA256SUMS")
    assert {file: shared[file] for file in packaged} == packaged


def test_without_a_data_dir_sst2_is_read_from_the_setup_folder_else_shared_else_the_package(tmp_path,
                                                                                            monkeypatch) -> None:
    monkeypatch.setattr(tasks, "SHARED_GLUE_DIR", tmp_path / "absent")
    monkeypatch.delenv(tasks.GLUE_DIR_ENV, raising=False)
    assert tasks.default_glue_dir("sst2") == tasks.PACKAGED_GLUE_DIR
    assert tasks.default_glue_dir("cola") is None and tasks.default_glue_dir() is None
    assert len(load_task("sst2", splits=("validation",))["validation"]) == 872
    monkeypatch.setattr(tasks, "SHARED_GLUE_DIR", GLUE_FIXTURES)  # present: it wins, for every task
    assert tasks.default_glue_dir("sst2") == tasks.default_glue_dir() == GLUE_FIXTURES
    assert len(load_task("sst2", splits=("validation",))["validation"]) == 200
    monkeypatch.setenv(tasks.GLUE_DIR_ENV, str(tmp_path))  # set: it wins, even where it lacks the task
    assert tasks.default_glue_dir("sst2") == tmp_path
    with pytest.raises(PETLError, match=r"SST-2/train.tsv not found"):
        load_task("sst2")


def test_cola_has_no_header_and_keeps_its_first_row() -> None:
    first = load_task("cola", GLUE_FIXTURES, splits=("validation",))["validation"][0]
    assert first == {"label": 1, "text_a": "The sailors rode the breeze clear of the rocks."}


def test_stsb_is_regression_with_float_scores() -> None:
    data = load_task("stsb", GLUE_FIXTURES)
    assert len(data["train"]) == 200 and len(data["validation"]) == 200
    scores = data["validation"]["label"]
    rows = read_tsv(GLUE_FIXTURES / "STS-B" / "dev.tsv")
    assert scores == pytest.approx([float(row["score"]) for row in rows]) and min(scores) == 0.0
    assert data["validation"].features["label"].dtype == "float32"
    assert tasks.get_task("stsb").num_labels == 1 and tasks.get_task("stsb").text_columns == ("text_a", "text_b")


@needs_full_glue
def test_the_whole_stsb_and_qnli_files_load() -> None:
    data = load_task("stsb", FULL_GLUE)
    assert len(data["train"]) == 5749 and len(data["validation"]) == 1500
    scores = data["validation"]["label"]
    assert min(scores) == 0.0 and max(scores) == 5.0
    qnli = load_task("qnli", FULL_GLUE, splits=("validation",))["validation"]
    assert len(qnli) == 5463 and set(qnli["label"]) == {0, 1}


def test_qnli_string_labels_become_class_ids() -> None:
    data = load_task("qnli", GLUE_FIXTURES, splits=("validation",))["validation"]
    assert len(data) == 200 and set(data["label"]) == {0, 1}
    assert data[0]["label"] == 0  # "entailment" is class 0, as on the Hub
    assert sum('"' in text for text in data["text_b"]) > 0  # bare quote characters, read as text (no quoting)


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
        load_task("cola")  # sst2 would be read from the package
    message = str(info.value)
    assert (f"tried $PETL_SEARCH_GLUE_DIR (not set), {absent} (beside the checkout; not a folder) and the files "
            f"that ship with petl-search (only sst2)") in message
    for fix in ("`petl-search data glue cola --out DIR`", "`--data-dir DIR`", "`data_dir: DIR` in a study",
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
