"""Tasks: what to read, how to normalise it, and which metric judges it.

Every task loads (with `datasets`) into a DatasetDict with splits `train` / `validation` and the
normalised columns
    classification / regression:  text_a, [text_b], label (int class id, or float score)
    seq2seq:                      source, target
from a local folder (GLUE's TSV distribution, or JSON-lines/CSV files for seq2seq) or from the Hub
when `data_dir` is None and the machine is online. A task names its metric family (metrics.py).
This module knows nothing of models or training.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import PETLError
from .metrics import SCORE_NAMES

GLUE_DIR_ENV = "PETL_SEARCH_GLUE_DIR"


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # "classification", "regression" or "seq2seq"
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

    @property
    def scores(self) -> tuple[str, ...]:
        """Every score an evaluation records (a study may name any of them as its objective)."""
        return SCORE_NAMES[self.metric]

    @property
    def num_labels(self) -> int:
        return 1 if self.kind == "regression" else len(self.labels)

    @property
    def text_columns(self) -> tuple[str, ...]:
        if self.kind == "seq2seq":
            return ("source",)
        return tuple(c for c in ("text_a", "text_b") if c in self.columns.values())


def _glue(name: str, folder: str, metric: str, main: str, labels: tuple[str, ...], columns: dict[str, str],
          hub_columns: dict[str, str], *, dev: str = "dev.tsv", header: bool = True, kind: str = "classification",
          hub_validation: str = "validation") -> Task:
    return Task(name, kind, metric, main, labels, folder, {"train": "train.tsv", "validation": dev}, columns,
                header, ("nyu-mll/glue", name), {"train": "train", "validation": hub_validation}, hub_columns)


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


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise PETLError(f"task must be one of {sorted(TASKS)}, but got {name!r}")
    return TASKS[name]


_LOADED: dict[tuple, Any] = {}  # per process: loaded task data, reused by later trials


def load_cached_task(task: str, data_dir: str | None) -> Any:
    """The task's splits, loaded once per process (later trials and exports reuse them)."""
    key = (task, str(data_dir))
    if key not in _LOADED:
        _LOADED[key] = load_task(task, data_dir)
    return _LOADED[key]


def default_glue_dir() -> Path | None:
    """$PETL_SEARCH_GLUE_DIR, else a `shared/data/glue` folder beside this checkout, else None (the Hub)."""
    if os.environ.get(GLUE_DIR_ENV):
        return Path(os.environ[GLUE_DIR_ENV])
    beside = Path(__file__).resolve().parents[3] / "shared" / "data" / "glue"
    return beside if beside.is_dir() else None


def load_task(name: str, data_dir: str | os.PathLike | None = None, *, splits: tuple[str, ...] = ("train", "validation"),
              hub: bool = False) -> Any:
    """Load `splits` of task `name` as a normalised DatasetDict.

    data_dir: for GLUE tasks the folder that holds `SST-2/`, `CoLA/`, ... (default: default_glue_dir());
    for seq2seq tasks the folder with `train.jsonl`/`validation.jsonl` (or .json/.csv). hub=True reads
    the Hub instead (needs network).
    """
    task = get_task(name)
    if hub:
        return _from_hub(task, splits)
    if task.kind == "seq2seq":
        if data_dir is None:
            raise PETLError(f"task {name!r} needs data_dir (a folder with train/validation .jsonl, .json or .csv "
                            "files) or hub=True")
        return _seq2seq_local(task, Path(data_dir), splits)
    root = Path(data_dir) if data_dir is not None else default_glue_dir()
    if root is None:
        raise PETLError(f"no GLUE folder found for task {name!r}: pass data_dir, set ${GLUE_DIR_ENV}, or use hub=True")
    return _glue_local(task, root, splits)


def _glue_local(task: Task, root: Path, splits: tuple[str, ...]) -> Any:
    from datasets import DatasetDict, load_dataset

    files = {}
    for split in splits:
        path = root / task.folder / task.files[split]
        if not path.is_file():
            raise PETLError(f"task {task.name!r}: {path} not found (expected the GLUE distribution's "
                            f"{task.folder}/{task.files[split]}; splits there: "
                            f"{sorted(p.name for p in (root / task.folder).glob('*.tsv'))})")
        files[split] = str(path)
    kwargs: dict[str, Any] = {"delimiter": "\t", "quoting": 3, "encoding": "utf-8-sig"}  # MRPC starts with a BOM
    if not task.header:
        kwargs["column_names"] = list(task.columns)
    try:
        raw = load_dataset("csv", data_files=files, **kwargs)
    except Exception as exc:  # pandas/pyarrow parse errors: name the files, keep the cause
        raise PETLError(f"task {task.name!r}: could not read {sorted(files.values())}: {exc}") from exc
    return DatasetDict({split: _normalise(task, raw[split], task.columns, files[split]) for split in splits})


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


def _from_hub(task: Task, splits: tuple[str, ...]) -> Any:
    from datasets import DatasetDict, load_dataset

    path, config = task.hub
    out = {}
    for split in splits:
        raw = load_dataset(path, config, split=task.hub_splits[split])
        if "translation" in raw.column_names:
            raw = raw.map(lambda row: row["translation"], remove_columns=["translation"])
        # Hub GLUE labels are already class ids, in the order of `task.labels`.
        out[split] = _normalise(task, raw, task.hub_columns, f"{path}/{config}:{split}", labels_are_ids=True)
    return DatasetDict(out)


def _normalise(task: Task, raw: Any, columns: dict[str, str], source: str, labels_are_ids: bool = False) -> Any:
    wanted = {src: dst for src, dst in columns.items() if dst}
    missing = [c for c in wanted if c not in raw.column_names]
    if missing:
        raise PETLError(f"task {task.name!r}: {source} lacks columns {missing}; it has {raw.column_names}")
    data = raw.select_columns(list(wanted)).rename_columns(wanted)
    if task.kind == "seq2seq":
        return data
    from datasets import Value

    if task.kind == "regression":
        return data.cast_column("label", Value("float32"))
    if labels_are_ids:
        return data
    index = {name: i for i, name in enumerate(task.labels)}

    def to_id(row: dict) -> dict:
        label = str(row["label"]).strip()
        if label not in index:
            raise PETLError(f"task {task.name!r}: {source} has label {label!r}; expected one of {list(task.labels)}")
        return {"label": index[label]}

    return data.map(to_id).cast_column("label", Value("int64"))
