"""Tasks: what to read, how to normalise it, and which metric judges it.

Every task loads (with `datasets`) into a DatasetDict with splits `train` / `validation` and the
normalised columns
    classification / regression:  text_a, [text_b], label (int class id, or float score)
    seq2seq:                      source, target
    causal_lm:                    prompt (the task's template filled in), label (the answer's text; with a
                                  verbalizer the int class id, whose answer words are verbalizer[id])
from a local folder (GLUE's TSV distribution, or JSON-lines/CSV files for seq2seq) or from the Hub
(`hub=True`, or data_dir=HUB). With no data_dir, a GLUE task is read from $PETL_SEARCH_GLUE_DIR, else the
`shared/data/glue` folder beside the checkout, else the copy that ships with the package (SST-2 only:
petl_search/data/glue, whose README says where it comes from). A task names its metric family (metrics.py).
When data is missing, the error says where it looked and the ways to get it (`petl-search data glue`, a
folder, the Hub). A study may define its own task (`task:` as a mapping; own_tasks.py checks it and builds its
Task): its files (CSV, TSV, JSON lines, Parquet) or its Hub dataset are read here like a built-in task's, and a
`TaskName` carries the task wherever its name goes (Ray's workers, a child process). This module knows nothing
of models or training.
"""
from __future__ import annotations

import json
import os
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..core.errors import PETLError
from .hub import load_hub_splits
from .metrics import SCORE_NAMES

GLUE_DIR_ENV = "PETL_SEARCH_GLUE_DIR"
# The `shared/data/glue` folder beside the checkout, where default_glue_dir() looks after $PETL_SEARCH_GLUE_DIR
SHARED_GLUE_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "glue"
# The GLUE files inside the package (package data: an install carries them), read last, for the tasks it holds:
# the quickstart's SST-2, so that a fresh clone or install runs it with no download. Byte-identical to the
# shared folder's, so a study reads the same examples wherever its data comes from (README.md there).
PACKAGED_GLUE_DIR = Path(__file__).resolve().parents[1] / "data" / "glue"
GLUE_HUB_ID = "nyu-mll/glue"
# The data_dir that means "read the task from the Hub" (a study's `hub: true`). A value of data_dir rather
# than a `hub` flag beside it: data_dir already reaches every place a study loads its data (the driver, Ray's
# run dict, the workers' train(), the per-process caches' keys) as a plain string, so one sentinel threads
# through them all without a new parameter anywhere.
HUB = "hub://"


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # "classification", "regression", "seq2seq" or "causal_lm"
    metric: str  # a key of metrics.METRICS
    main_metric: str  # the score a search optimises
    labels: tuple[str, ...] = ()  # class names as the local files spell them (id = position)
    # local GLUE layout: folder, file per split, and the file's columns -> our columns
    folder: str = ""
    files: dict[str, str] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)
    header: bool = True
    # the Hub: dataset id, config, split per our split, and its columns -> our columns
    hub: tuple[str, str | None] = ("", None)
    hub_splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "validation": "validation"})
    hub_columns: dict[str, str] = field(default_factory=dict)
    # A study's own task (own_tasks.py): the file that defines it (its errors name it), and what defines it,
    # resolved (kind, columns, labels, metric, its files with their SHA-256 or its Hub dataset): a study's
    # identity holds it. Both empty for a built-in task, whose name says it all.
    defined_in: str = ""
    definition: Mapping[str, Any] = field(default_factory=dict)
    # causal_lm: the prompt's template, `{column}` fields filled from each row (a prompt column is "{column}"), and,
    # for classification data, the answer word(s) of each class (id = position), which the model scores
    prompt: str = ""
    verbalizer: tuple[str, ...] = ()

    @property
    def own(self) -> bool:
        """A study's own task (`task:` as a mapping), not a built-in one."""
        return bool(self.defined_in)

    @property
    def scores(self) -> tuple[str, ...]:
        """Every score an evaluation records (a study may name any of them as its objective)."""
        return SCORE_NAMES[self.metric]

    @property
    def num_labels(self) -> int:
        return 1 if self.kind == "regression" else len(self.labels)

    @property
    def has_head(self) -> bool:
        """Whether the model gets a new task head (trained with Δh, counted apart): a classifier's or a
        regressor's. A language model (seq2seq, causal_lm) answers with its own LM head, which stays frozen."""
        return self.kind in ("classification", "regression")

    @property
    def has_classes(self) -> bool:
        """Whether the label column holds class ids (a classifier's, or a causal LM's with a verbalizer): what the
        search split is stratified by, and what predictions are."""
        return self.kind == "classification" or (self.kind == "causal_lm" and bool(self.verbalizer))

    @property
    def text_columns(self) -> tuple[str, ...]:
        if self.kind == "seq2seq":
            return ("source",)
        if self.kind == "causal_lm":
            return ("prompt",)
        return tuple(c for c in ("text_a", "text_b") if c in self.columns.values())


def _glue(name: str, folder: str, metric: str, main: str, labels: tuple[str, ...], columns: dict[str, str],
          hub_columns: dict[str, str], *, dev: str = "dev.tsv", header: bool = True, kind: str = "classification",
          hub_validation: str = "validation") -> Task:
    return Task(name, kind, metric, main, labels, folder, {"train": "train.tsv", "validation": dev}, columns,
                header, (GLUE_HUB_ID, name), {"train": "train", "validation": hub_validation}, hub_columns)


_PAIR = {"sentence1": "text_a", "sentence2": "text_b", "label": "label"}
_BIN = ("0", "1")
_NLI2 = ("entailment", "not_entailment")
TASKS: dict[str, Task] = {t.name: t for t in (
    _glue("sst2", "SST-2", "accuracy", "accuracy", _BIN, {"sentence": "text_a", "label": "label"},
          {"sentence": "text_a", "label": "label"}),
    _glue("cola", "CoLA", "matthews_correlation", "matthews_correlation", _BIN,
          {"source": "", "label": "label", "orig_label": "", "sentence": "text_a"},
          {"sentence": "text_a", "label": "label"}, header=False),
    _glue("stsb", "STS-B", "pearson_spearman", "pearson", (), {"sentence1": "text_a", "sentence2": "text_b",
          "score": "label"}, _PAIR, kind="regression"),
    _glue("mrpc", "MRPC", "f1", "f1", _BIN, {"#1 String": "text_a", "#2 String": "text_b", "Quality": "label"},
          _PAIR),
    _glue("rte", "RTE", "accuracy", "accuracy", _NLI2, _PAIR, _PAIR),
    _glue("qnli", "QNLI", "accuracy", "accuracy", _NLI2, {"question": "text_a", "sentence": "text_b",
          "label": "label"}, {"question": "text_a", "sentence": "text_b", "label": "label"}),
    _glue("wnli", "WNLI", "accuracy", "accuracy", _BIN, _PAIR, _PAIR),
    _glue("mnli", "MNLI", "accuracy", "accuracy", ("entailment", "neutral", "contradiction"),
          {"sentence1": "text_a", "sentence2": "text_b", "gold_label": "label"},
          {"premise": "text_a", "hypothesis": "text_b", "label": "label"}, dev="dev_matched.tsv",
          hub_validation="validation_matched"),
    _glue("qqp", "QQP", "f1", "f1", _BIN, {"question1": "text_a", "question2": "text_b", "is_duplicate": "label"},
          {"question1": "text_a", "question2": "text_b", "label": "label"}),
    Task("xsum", "seq2seq", "rouge", "rouge2", columns={"document": "source", "summary": "target"},
         hub=("EdinburghNLP/xsum", None), hub_columns={"document": "source", "summary": "target"}),
    Task("wmt16_en_ro", "seq2seq", "bleu", "bleu", columns={"en": "source", "ro": "target"},
         hub=("wmt/wmt16", "ro-en"), hub_columns={"en": "source", "ro": "target"}),
)}


class TaskName(str):
    """A study's own task's name, carrying the task: what `StudySpec.task` holds for a `task:` mapping.

    It is the name wherever a name is shown or stored (reports, JSON, the storage), and it takes the task along
    wherever the name goes: Ray's workers and child processes receive it pickled, and `get_task` there learns
    the task from it. So every place that passes a task by name (the runners, the trainer, export) works
    unchanged for a study's own task."""

    task: Task

    def __new__(cls, task: Task) -> "TaskName":
        name = super().__new__(cls, task.name)
        name.task = task
        return name

    def __reduce__(self) -> tuple:  # pickled and copied with its task, not as a bare string
        return TaskName, (self.task,)


# Per process: the own tasks that get_task has seen (a TaskName brings its task), by name, so that a plain name
# (a trial record's, the trainer's task.name) finds them too. The latest definition of a name wins.
_OWN: dict[str, Task] = {}


def get_task(name: str) -> Task:
    if isinstance(name, TaskName):
        _OWN[name.task.name] = name.task
        return name.task
    if name in TASKS:
        return TASKS[name]
    if name in _OWN:
        return _OWN[name]
    raise PETLError(f"task must be one of {sorted(TASKS)}, but got {name!r} (a study's own task is known once its "
                    f"study file, or its --task-file, is read)")


_LOADED: dict[tuple, Any] = {}  # per process: loaded task data, reused by later trials


def load_cached_task(task: str, data_dir: str | None) -> Any:
    """The task's splits, loaded once per process (later trials and exports reuse them). An own task's key
    holds its definition (its files' hashes): a changed file, or another task of the same name, loads anew."""
    key = (task, json.dumps(get_task(task).definition, sort_keys=True), str(data_dir))
    if key not in _LOADED:
        _LOADED[key] = load_task(task, data_dir)
    return _LOADED[key]


def default_glue_dir(task: str | None = None) -> Path | None:
    """Where a GLUE task is read without a data_dir: $PETL_SEARCH_GLUE_DIR, else a `shared/data/glue` folder
    beside this checkout, else (when `task` is named and its files ship with the package) PACKAGED_GLUE_DIR,
    else None (none found).

    The first folder found is the answer, whether or not it holds the task: a folder someone set up is never
    passed over for another copy (its missing file is reported instead)."""
    if os.environ.get(GLUE_DIR_ENV):
        return Path(os.environ[GLUE_DIR_ENV])
    if SHARED_GLUE_DIR.is_dir():
        return SHARED_GLUE_DIR
    return PACKAGED_GLUE_DIR if task is not None and task in packaged_tasks() else None


def packaged_tasks() -> tuple[str, ...]:
    """The GLUE tasks whose train and dev files ship with the package (in PACKAGED_GLUE_DIR)."""
    return tuple(name for name, task in TASKS.items() if task.folder and
                 all((PACKAGED_GLUE_DIR / task.folder / file).is_file() for file in task.files.values()))


def glue_fixes(name: str) -> str:
    """The ways to give GLUE task `name` its data, as one sentence (the end of every "not found" error)."""
    return (f"get the data with `petl-search data glue {name} --out DIR` (on a machine with internet), then pass "
            f"`--data-dir DIR`, or `data_dir: DIR` in a study, or set ${GLUE_DIR_ENV}=DIR; or read the task from "
            f"the Hub instead: `hub: true` in a study (`--hub` for `petl-search train`)")


def _no_glue_folder(name: str) -> PETLError:
    """No data_dir and no default folder: say which folders were tried, and how to fix it."""
    env = os.environ.get(GLUE_DIR_ENV)
    if env:  # set, so default_glue_dir() looked nowhere else
        state = "does not exist" if not Path(env).exists() else "is not a folder"
        return PETLError(f"no GLUE folder for task {name!r}: ${GLUE_DIR_ENV} is set to {env}, which {state} (fix or "
                         f"unset it); or {glue_fixes(name)}")
    return PETLError(f"no GLUE folder found for task {name!r}: tried ${GLUE_DIR_ENV} (not set), {SHARED_GLUE_DIR} "
                     f"(beside the checkout; not a folder) and the files that ship with petl-search (only "
                     f"{', '.join(packaged_tasks()) or 'none'}); {glue_fixes(name)}")


def hub_instead(task: Task) -> str:
    """What to use when the Hub cannot be reached, for `task` (the end of a HubUnreachableError)."""
    if task.kind == "seq2seq":
        return "pass data_dir: a folder with train/validation .jsonl, .json or .csv files"
    return (f"use a GLUE folder from elsewhere (the GLUE distribution, or one that `petl-search data glue --out DIR` "
            f"wrote on a machine with internet): pass `--data-dir DIR` (`data_dir: DIR` in a study) or set "
            f"${GLUE_DIR_ENV}=DIR")


def load_task(name: str, data_dir: str | os.PathLike | None = None, *, splits: tuple[str, ...] = ("train", "validation"),
              hub: bool = False) -> Any:
    """Load `splits` of task `name` as a normalised DatasetDict.

    data_dir: for GLUE tasks the folder that holds `SST-2/`, `CoLA/`, ... (default: default_glue_dir(name));
    for seq2seq tasks the folder with `train.jsonl`/`validation.jsonl` (or .json/.csv). hub=True (or
    data_dir=HUB) reads the Hub instead (needs network).
    """
    task = get_task(name)
    if task.own:
        if hub or data_dir is not None:
            raise PETLError(f"{task.defined_in}: task {task.name!r} says where its data is (its files or its Hub "
                            f"dataset): no data_dir or hub, but got data_dir={data_dir!r}, hub={hub!r}")
        return _own_task_data(task, splits)
    if hub or data_dir == HUB:
        return _from_hub(task, splits)
    if task.kind == "seq2seq":
        if data_dir is None:
            raise PETLError(f"task {name!r} needs data_dir (a folder with train/validation .jsonl, .json or .csv "
                            "files) or hub=True")
        return _seq2seq_local(task, Path(data_dir), splits)
    if data_dir is not None:
        root = Path(data_dir)
        if not root.is_dir():
            raise PETLError(f"task {name!r}: the GLUE folder {root} (data_dir) is not a folder; {glue_fixes(name)}")
        return _glue_local(task, root, splits)
    root = default_glue_dir(name)
    if root is None or not root.is_dir():
        raise _no_glue_folder(name)
    return _glue_local(task, root, splits)


def _glue_local(task: Task, root: Path, splits: tuple[str, ...]) -> Any:
    from datasets import DatasetDict, load_dataset

    files = {}
    for split in splits:
        path = root / task.folder / task.files[split]
        if not path.is_file():
            raise PETLError(f"task {task.name!r}: {path} not found (expected the GLUE distribution's "
                            f"{task.folder}/{task.files[split]}; splits there: "
                            f"{sorted(p.name for p in (root / task.folder).glob('*.tsv'))}); {glue_fixes(task.name)}")
        _check_first_row(task, path)
        files[split] = str(path)
    # MRPC starts with a BOM. Fields are taken literally: no quoting (several files hold bare quote characters),
    # and no "NA"/"null"/empty-to-NaN conversion (a text "NA" stays "NA"; an empty label is reported as empty).
    kwargs: dict[str, Any] = {"delimiter": "\t", "quoting": 3, "encoding": "utf-8-sig", "keep_default_na": False}
    if not task.header:
        kwargs["column_names"] = list(task.columns)
    out = {}
    for split, file in files.items():  # one file at a time: read together, a dev file whose label column
        try:  # differs in type from train's (an empty label makes it text) fails with no word of why
            raw = load_dataset("csv", data_files={split: file}, **kwargs)[split]
        except Exception as exc:  # pandas/pyarrow parse errors: name the file, keep the cause
            cause = f" ({type(exc.__cause__).__name__}: {exc.__cause__})" if exc.__cause__ else ""
            raise PETLError(f"task {task.name!r}: could not read {file}: {exc}{cause}") from exc
        out[split] = _normalise(task, raw, task.columns, file)
    return DatasetDict(out)


def _check_first_row(task: Task, path: Path) -> None:
    """The columns the loader reads are in the file: by name in its header, or by position (CoLA, no header).

    Checked on the file itself: `datasets` reads the splits together and gives a split that lacks a column
    the others have that column, empty (a dev.tsv without labels would read as labels None)."""
    try:
        with path.open(encoding="utf-8-sig") as f:
            fields = f.readline().rstrip("\r\n").split("\t")
    except UnicodeDecodeError:  # not text: the reader below says it could not read the file
        return
    expected = list(task.columns)
    if task.header:
        _require_columns(task, fields, task.columns, str(path))
        return
    if len(fields) == len(expected):
        return
    missing = [f"the {_role(task.columns[c])} column {c!r} (field {i + 1})" for i, c in enumerate(expected)
               if i >= len(fields) and task.columns[c]]
    raise PETLError(f"task {task.name!r}: {path} has no header row; its fields are, by position, {expected}, but its "
                    f"first row has {len(fields)} fields ({fields!r})" + (f": missing {', '.join(missing)}" if missing
                                                                          else ""))


def _require_columns(task: Task, present: list[str], columns: dict[str, str], source: str) -> None:
    """Every column `columns` maps to one of ours is in `present`, or one error naming the missing ones."""
    wanted = {src: dst for src, dst in columns.items() if dst}
    missing = [c for c in wanted if c not in present]
    if missing:
        which = ", ".join(f"the {wanted[c] if task.kind == 'seq2seq' else _role(wanted[c])} column {c!r}"
                          for c in missing)
        raise PETLError(f"{_who(task)}: {source} lacks columns {missing}; it has {present} (missing: {which}; "
                        f"the loader reads {list(wanted)})")


def _who(task: Task) -> str:
    """The task, as its errors begin: a study's own task with the file that defines it."""
    return f"{task.defined_in}: task {task.name!r}" if task.own else f"task {task.name!r}"


def _role(column: str) -> str:
    """What one of our columns is, in words (for messages)."""
    return {"label": "label", "prompt": "prompt field"}.get(column, "text")


def _seq2seq_local(task: Task, root: Path, splits: tuple[str, ...]) -> Any:
    from datasets import DatasetDict, load_dataset

    out = {}
    for split in splits:
        candidates = [root / f"{split}{ext}" for ext in (".jsonl", ".json", ".csv")]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise PETLError(f"task {task.name!r}: none of {[str(p) for p in candidates]} found")
        try:
            raw = load_dataset("csv" if path.suffix == ".csv" else "json", data_files={split: str(path)})[split]
        except Exception as exc:
            raise PETLError(f"task {task.name!r}: could not read {path}: {exc}") from exc
        if "translation" in raw.column_names:  # WMT style: {"translation": {"en": ..., "ro": ...}}
            raw = raw.map(lambda row: row["translation"], remove_columns=["translation"])
        out[split] = _normalise(task, raw, task.columns, str(path))
    return DatasetDict(out)


# An own task's files, by extension: the `datasets` builder that reads them and its options. For CSV and TSV the
# options are pandas.read_csv's (what `datasets` reads CSV with), so own_tasks.py checks a file read exactly as
# it is loaded; no NA conversion, as for GLUE: a text "NA" stays "NA", an empty label is reported as empty.
FILE_FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    ".csv": ("csv", {"sep": ",", "keep_default_na": False}), ".tsv": ("csv", {"sep": "\t", "keep_default_na": False}),
    ".jsonl": ("json", {}), ".json": ("json", {}), ".parquet": ("parquet", {})}


def _own_task_data(task: Task, splits: tuple[str, ...]) -> Any:
    """An own task's splits: its files (own_tasks.py checked them when the study was read), or its Hub
    dataset (checked here, as it loads: columns, labels, no empty split), normalised like a built-in task's."""
    from datasets import DatasetDict, load_dataset

    out = {}
    if task.files:
        for split in splits:
            path = task.files[split]
            builder, options = FILE_FORMATS[Path(path).suffix.lower()]
            try:  # one file at a time, as for GLUE: splits read together must agree on their columns' types
                raw = load_dataset(builder, data_files={split: path}, **options)[split]
            except Exception as exc:  # pandas/pyarrow parse errors: name the file, keep the cause
                raise PETLError(f"{_who(task)}: could not read {path}: {' '.join(str(exc).split())}") from exc
            out[split] = _own_split(task, raw, path)
        return DatasetDict(out)
    repo, config = task.hub
    try:
        loaded = load_hub_splits(repo, config, [task.hub_splits[s] for s in splits], task=task.name,
                                 instead=f"give the task local files (task.files in {task.defined_in})")
    except PETLError:
        raise
    except Exception as exc:  # an unknown dataset, config or split: datasets' own words, in one line
        raise PETLError(f"{_who(task)}: could not read the Hub dataset {repo}{'/' + config if config else ''}: "
                        f"{' '.join(str(exc).split())}") from exc
    label = next((c for c, ours in task.columns.items() if ours == "label"), None)
    for split in splits:
        out[split] = _own_split(task, class_names(loaded[task.hub_splits[split]], label),
                                f"{repo}{'/' + config if config else ''}:{task.hub_splits[split]}")
    return DatasetDict(out)


def _own_split(task: Task, raw: Any, source: str) -> Any:
    if len(raw) == 0:  # a split with no rows would fail later, in the carve or in a metric, with no word of why
        raise PETLError(f"{_who(task)}: {source} has no rows")
    return _normalise(task, raw, task.columns, source)


def class_names(data: Any, column: str | None) -> Any:
    """`data` with its label `column`'s class ids (a Hub ClassLabel) replaced by the class names, which an own
    task's labels list; other columns, or a column of another type, as they are."""
    from datasets import ClassLabel, Value

    feature = data.features.get(column) if column else None
    if not isinstance(feature, ClassLabel):
        return data
    return data.cast_column(column, Value("int64")).map(
        lambda batch: {column: feature.int2str(batch[column])}, batched=True)


def _from_hub(task: Task, splits: tuple[str, ...]) -> Any:
    from datasets import DatasetDict

    path, config = task.hub
    loaded = load_hub_splits(path, config, [task.hub_splits[s] for s in splits], task=task.name,
                             instead=hub_instead(task))
    out = {}
    for split in splits:
        raw = loaded[task.hub_splits[split]]
        if "translation" in raw.column_names:
            raw = raw.map(lambda row: row["translation"], remove_columns=["translation"])
        # Hub GLUE labels are already class ids, in the order of `task.labels`.
        out[split] = _normalise(task, raw, task.hub_columns, f"{path}/{config}:{split}", labels_are_ids=True)
    return DatasetDict(out)


def _normalise(task: Task, raw: Any, columns: dict[str, str], source: str, labels_are_ids: bool = False) -> Any:
    _require_columns(task, raw.column_names, columns, source)
    wanted = {src: dst for src, dst in columns.items() if dst}
    if task.kind == "causal_lm":
        return _prompts(task, raw, wanted, source)
    data = raw.select_columns(list(wanted)).rename_columns(wanted)
    if task.kind == "seq2seq":
        return data
    from datasets import Value

    label_column = next(c for c, dst in wanted.items() if dst == "label")
    where = _row_locator(task, source)

    if task.kind == "regression":
        bad = None  # a score column read as text holds an empty or a bad value somewhere
        if data.features["label"].dtype in ("string", "large_string"):
            bad = next((i for i, x in enumerate(data["label"]) if not _is_number(x)), None)
        if bad is not None:
            raise PETLError(f"{_who(task)}: {where(bad)} has {label_column} {data[bad]['label']!r} (column "
                            f"{label_column!r}); expected a number")
        return data.cast_column("label", Value("float32"))
    if labels_are_ids:
        return data
    index = {name: i for i, name in enumerate(task.labels)}

    def to_id(row: dict, i: int) -> dict:
        return {"label": _class_id(task, index, row["label"], where(i), label_column)}

    return data.map(to_id, with_indices=True).cast_column("label", Value("int64"))


def _row_locator(task: Task, source: str) -> Any:
    """A function of a row's index to where it is, for messages: an own task's files differ in format (a Parquet
    file has no lines), so its rows are counted; a GLUE file's lines are (after its header, if it has one)."""
    first_line = 2 if task.header else 1  # of a local file: the line of its first example
    return lambda i: f"{source} row {i + 1}" if task.own else f"{source} line {i + first_line}"


def _class_id(task: Task, index: dict[str, int], value: Any, where: str, label_column: str) -> int:
    """`value`'s class id in `task.labels` (`index`: name -> id), or one error naming the row and the column."""
    label = label_text(value)
    if label not in index:
        why = "is empty: a row shorter than the header? GLUE's test files have no labels" if label == "" else ""
        raise PETLError(f"{_who(task)}: {where} has label {label!r}; expected one of {list(task.labels)} "
                        f"(column {label_column!r}{' ' + why if why else ''})")
    return index[label]


def template_fields(template: str) -> list[str]:
    """The `{column}` fields of a prompt template, in order (`{{` and `}}` are literal braces); a field with a
    format spec or a conversion (`{x:>5}`, `{x!r}`), or an empty `{}`, is a ValueError that says so, as is an
    unbalanced brace."""
    fields = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if not name or spec or conversion:
            whole = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"a field is a column's name in braces, as {{sentence}}, but got {whole!r}")
        fields.append(name)
    return fields


def render_prompt(template: str, row: Mapping[str, Any]) -> str:
    """The template with each `{column}` field replaced by the row's value, as text (nothing else is
    interpreted: `{a.b}` is the column `a.b`, not an attribute)."""
    return "".join(literal + ("" if name is None else str(row[name]))
                   for literal, name, _, _ in string.Formatter().parse(template))


def _prompts(task: Task, raw: Any, wanted: dict[str, str], source: str) -> Any:
    """A causal_lm split: each row's prompt (the template filled in) and its label (the answer's text, or with a
    verbalizer its class id)."""
    from datasets import Value

    label_column = next(c for c, dst in wanted.items() if dst == "label")
    index = {name: i for i, name in enumerate(task.labels)}
    where = _row_locator(task, source)

    def to_row(row: dict, i: int) -> dict:
        label = row[label_column]
        return {"prompt": render_prompt(task.prompt, row),
                "label": _class_id(task, index, label, where(i), label_column) if task.verbalizer else str(label)}

    data = raw.map(to_row, with_indices=True, remove_columns=raw.column_names)
    return data.cast_column("label", Value("int64" if task.verbalizer else "string"))


def label_text(value: Any) -> str:
    """A label as its class is named: the value as text, trimmed (a file's 1 and "1" are one class). What the
    loader maps to class ids and own_tasks.py checks the files with: one spelling for both."""
    return str(value).strip()


def _is_number(text: Any) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True
