"""A study's own task: `task:` as a mapping instead of a built-in task's name, checked when the study is read
and made into a Task like the built-in ones (tasks.py reads its data), so that the held-out protocol, reports,
dashboards and export treat it as they treat SST-2.

    task:
      name: my_reviews              # optional: a label for reports (default: the study's name)
      kind: classification          # classification | regression | seq2seq | causal_lm
      files: {train: data/train.jsonl, dev: data/dev.jsonl}   # CSV, TSV, JSON lines, Parquet; relative to the file
      # hub: {id: nyu-mll/glue, config: rte, splits: {train: train, dev: validation}}
      text: [sentence]              # one or two text columns; seq2seq: `source:` and `target:` columns instead
      label: label                  # classification and regression
      labels: [negative, positive]  # optional: inferred from train (sorted; a Hub ClassLabel keeps its own order)
      metric: accuracy              # optional: a metric family of metrics.py or one of its scores; default per kind

    task:                           # a causal LM's prompt -> answer task
      kind: causal_lm
      files: {train: data/train.tsv, dev: data/dev.tsv}
      prompt: "Review: {sentence}\nSentiment:"   # a column, or a template with {column} fields
      answer: answer                # the answer column (exact match on the generated answer) ...
      # label: label                # ... or, for classification data, the label column and each class's
      # verbalizer: {0: " negative", 1: " positive"}   # answer words (accuracy: the best-scored words' class)

Local files are checked here, before anything starts, reading only what the checks need: a CSV or TSV file's
header and then single columns (pandas, as `datasets` reads CSV), a Parquet file's schema and single columns, a
JSON-lines file whole (pyarrow, as `datasets` reads JSON lines). Every column named exists (the error lists those
that do), no split is empty, a regression label is a number, every dev label is one train has. A Hub dataset is
read here only when a classification task leaves its labels out (the size of its head needs them); otherwise it
is checked as it loads (tasks.py), which a run does before Ray starts. Every error is one line that names the file
and the key. This module starts nothing and reads no model.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Callable, Mapping

from ..core.errors import PETLError
from .hub import load_hub_splits
from .metrics import SCORE_NAMES
from .tasks import FILE_FORMATS, TASKS, Task, class_names, label_text, template_fields

KINDS = ("classification", "regression", "seq2seq", "causal_lm")
TASK_KEYS = ("name", "kind", "files", "hub", "text", "label", "labels", "metric", "source", "target", "prompt",
             "answer", "verbalizer")
SPLITS = {"train": "train", "dev": "validation"}  # a task file's word for a split -> the loader's
# The metric families that fit each kind; the first is the kind's default. A causal_lm task's depend on its form:
# with an answer column its generated answers are compared with the reference (text metrics); with a verbalizer
# the class whose answer words the model scores highest is its prediction (class metrics)
KIND_METRICS = {"classification": ("accuracy", "f1", "matthews_correlation"), "regression": ("pearson_spearman",),
                "seq2seq": ("rouge", "bleu"), "causal_lm": ("exact_match", "rouge", "bleu"),
                "causal_lm with a verbalizer": ("accuracy", "f1", "matthews_correlation")}
# The score a task selects on when its metric names a family: the family's first score, but ROUGE-2 for ROUGE
# (what XSum, the built-in summarisation task, selects on)
FAMILY_MAIN = {"rouge": "rouge2"}
FORMAT_NAMES = {"csv": "CSV", "json": "JSON lines (one object per line)", "parquet": "Parquet"}


class TaskError(PETLError):
    """A task mapping (a study's `task:`, or a --task-file) is invalid; the message names the file and the key."""


def parse_task(block: Any, *, source: str, default_name: str, prefix: str = "task.") -> Task:
    """`block` (a study's `task:` mapping, or a task file's content) checked, its files read as far as the checks
    need, and made into a Task. `prefix` is how its keys are named in errors (`task.` in a study, nothing in a task
    file); relative paths are relative to `source`'s folder."""
    what = prefix.rstrip(".") or "a task file"

    def at(key: str) -> str:
        return f"{source}: {prefix}{key}"

    if not isinstance(block, Mapping):
        raise TaskError(f"{source}: {what} must be a mapping with keys {list(TASK_KEYS)}, but got {block!r}")
    unknown = sorted(set(block) - set(TASK_KEYS))
    if unknown:
        raise TaskError(f"{source}: {what} has no key {unknown[0]!r}; keys: {list(TASK_KEYS)}")
    kind = _kind(block.get("kind"), at)
    name = block.get("name", default_name)
    if not (isinstance(name, str) and name.replace("-", "").replace("_", "").isalnum()):
        raise TaskError(f"{at('name')} must be a name of letters, digits, '-' and '_', but got {name!r}")
    if name in TASKS:
        raise TaskError(f"{at('name')} must not be a built-in task's name (`task: {name}` is that task), but got "
                        f"{name!r}")
    columns = _columns(block, kind, at)
    form = "causal_lm with a verbalizer" if kind == "causal_lm" and "verbalizer" in block else kind
    family, main = _metric(block.get("metric"), form, at)
    given = _given_labels(block.get("labels"), at)
    prompt, verbalizer = "", {}
    if kind == "causal_lm":
        prompt = _template(block["prompt"])
        if "verbalizer" in block:
            verbalizer = _verbalizer(block["verbalizer"], given, at)
            given = tuple(verbalizer)
    if ("files" in block) == ("hub" in block):
        raise TaskError(f"{source}: {what} needs one of files (local files) or hub (a Hugging Face dataset), but got "
                        f"{'both' if 'files' in block else 'neither'}")
    definition: dict[str, Any] = {"name": name, "kind": kind, "metric": family, "main_metric": main,
                                  **_written_columns(block, kind)}
    label = next((c for c, ours in columns.items() if ours == "label"), None)
    if "files" in block:
        paths = _files(block["files"], source, at)
        splits = {key: _File(path, f"files.{key}", at) for key, path in paths.items()}
        labels = _check(splits, columns, form, given, at)
        # A content hash, not the files' sizes and mtimes: a copy, a fresh clone or a `touch` changes the mtime of
        # unchanged data (its study would refuse to resume), and an edit of a label ('0' -> '1') keeps the size
        # (it would resume silently). Hashing reads each file once more, as fast as the disk; loading reads it anyway.
        definition["files"] = {key: {"path": block["files"][key], "sha256": file_sha256(path)}
                               for key, path in paths.items()}
        source_fields: dict[str, Any] = {"files": {SPLITS[key]: str(path) for key, path in paths.items()}}
    else:
        repo, config, hub_splits_written = _hub(block["hub"], at)
        labels = given
        if kind == "classification" and given is None:  # the head's size needs the classes now: read them
            splits = _hub_splits(repo, config, hub_splits_written, name, label, at, f"{prefix}labels")
            labels = _check(splits, columns, kind, None, at)
        definition["hub"] = {"id": repo, "config": config, "splits": hub_splits_written}
        source_fields = {"hub": (repo, config), "hub_columns": dict(columns),
                         "hub_splits": {SPLITS[key]: split for key, split in hub_splits_written.items()}}
    if verbalizer:
        definition["verbalizer"] = {label_name: verbalizer[label_name] for label_name in labels}
    if labels:
        definition["labels"] = list(labels)
        if family == "f1" and len(labels) != 2:
            raise TaskError(f"{at('metric')}: f1 is the F1 of the positive class (the second of two labels), but "
                            f"this task has {len(labels)} classes {list(labels)}: use accuracy or "
                            f"matthews_correlation")
    return Task(name, kind, family, main, tuple(labels or ()), columns=columns, defined_in=source,
                definition=definition, prompt=prompt,
                verbalizer=tuple(verbalizer[n] for n in labels) if verbalizer else (), **source_fields)


def _kind(kind: Any, at: Callable[[str], str]) -> str:
    if kind not in KINDS:
        raise TaskError(f"{at('kind')} must be one of {list(KINDS)}, but got {kind!r}")
    return kind


def _columns(block: Mapping[str, Any], kind: str, at: Callable[[str], str]) -> dict[str, str]:
    """{the file's column: ours} (text_a, text_b, label; or source, target; or a causal LM's prompt fields and its
    answer or label column, both `label`), checked against the kind."""
    if kind == "causal_lm":
        return _prompt_columns(block, at)
    wrong = next((k for k in ("prompt", "answer", "verbalizer") if k in block), None)
    if wrong:
        raise TaskError(f"{at(wrong)}: prompt, answer and verbalizer are for a causal_lm task, not a {kind} task")
    if kind == "seq2seq":
        wrong = next((k for k in ("text", "label", "labels") if k in block), None)
        if wrong:
            raise TaskError(f"{at(wrong)}: a seq2seq task reads a source and a target column (source: and "
                            f"target:), not {wrong}")
        names = {key: block.get(key) for key in ("source", "target")}
        for key, value in names.items():
            if not (isinstance(value, str) and value):
                raise TaskError(f"{at(key)} must be the name of the {key} text column, but got {value!r}")
        if names["source"] == names["target"]:
            raise TaskError(f"{at('target')} must differ from source, but both are {names['source']!r}")
        return {names["source"]: "source", names["target"]: "target"}
    wrong = next((k for k in ("source", "target") if k in block), None)
    if wrong:
        raise TaskError(f"{at(wrong)}: a {kind} task reads text: and label: columns; source and target are for "
                        f"seq2seq")
    text = block.get("text")
    text = [text] if isinstance(text, str) else text
    if not (isinstance(text, list) and 1 <= len(text) <= 2 and all(isinstance(c, str) and c for c in text)
            and len(set(text)) == len(text)):
        raise TaskError(f"{at('text')} must be one or two text columns (a name, or a list of one or two), but got "
                        f"{block.get('text')!r}")
    label = block.get("label")
    if not (isinstance(label, str) and label):
        raise TaskError(f"{at('label')} must be the name of the label column, but got {label!r}")
    if label in text:
        raise TaskError(f"{at('label')} must not be a text column too, but got {label!r}")
    if kind == "regression" and "labels" in block:
        raise TaskError(f"{at('labels')}: a regression task has no classes (its label is a number): leave labels out")
    return {**dict(zip(text, ("text_a", "text_b"))), label: "label"}


def _prompt_columns(block: Mapping[str, Any], at: Callable[[str], str]) -> dict[str, str]:
    """A causal_lm task's columns: {each prompt field (or the prompt column): "prompt", the answer or label column:
    "label"}; one of answer (a column) or verbalizer (with label) is given."""
    wrong = next((k for k in ("text", "source", "target") if k in block), None)
    if wrong:
        raise TaskError(f"{at(wrong)}: a causal_lm task reads a prompt (prompt: a column, or a template with "
                        f"{{column}} fields) and an answer (answer: a column; or label: and verbalizer: for "
                        f"classification data), not {wrong}")
    prompt = block.get("prompt")
    if not (isinstance(prompt, str) and prompt.strip()):
        raise TaskError(f"{at('prompt')} must be a column's name or a template with {{column}} fields, as "
                        f"\"Review: {{sentence}}\\nSentiment:\", but got {prompt!r}")
    try:
        fields = template_fields(prompt) or [prompt]  # no field: the prompt is a column
    except ValueError as exc:
        raise TaskError(f"{at('prompt')}: {exc} (write {{{{ and }}}} for literal braces)") from None
    if ("answer" in block) == ("verbalizer" in block):
        raise TaskError(f"{at('answer')}: a causal_lm task needs one of answer (the answer column: exact match on the "
                        f"generated answer) or verbalizer (each label's answer words, with label: the label column: "
                        f"accuracy over the scored words), but got {'both' if 'answer' in block else 'neither'}")
    key = "answer" if "answer" in block else "label"
    if key == "answer":
        wrong = next((k for k in ("label", "labels") if k in block), None)
        if wrong:
            raise TaskError(f"{at(wrong)}: a causal_lm task with an answer column has no classes; for classification "
                            f"data give label: and verbalizer: instead of answer:")
    column = block.get(key)
    if not (isinstance(column, str) and column):
        raise TaskError(f"{at(key)} must be the name of the {key} column, but got {column!r}")
    if column in fields:
        raise TaskError(f"{at(key)} must not be a field of the prompt too (the model would read its answer), but got "
                        f"{column!r}")
    return {**{field: "prompt" for field in fields}, column: "label"}


def _template(prompt: str) -> str:
    """The prompt as a template: itself when it has fields, else the column it names as the one field."""
    return prompt if template_fields(prompt) else "{" + prompt + "}"


def _verbalizer(value: Any, given: tuple[str, ...] | None, at: Callable[[str], str]) -> dict[str, str]:
    """{class name: its answer words}, in the order of `labels:` when given (the same classes), else its own."""
    if not (isinstance(value, Mapping) and len(value) >= 2
            and all(isinstance(k, (str, int, float, bool)) for k in value)
            and all(isinstance(v, str) and v.strip() for v in value.values())):
        raise TaskError(f"{at('verbalizer')} must map two or more labels to their answer words, as {{0: \" negative\", "
                        f"1: \" positive\"}}, but got {value!r}")
    words = {label_text(k): v for k, v in value.items()}
    if len(words) != len(value):
        raise TaskError(f"{at('verbalizer')} names a label twice ({list(value)}), but got {value!r}")
    same = sorted({w for w in words.values() if list(words.values()).count(w) > 1})
    if same:
        raise TaskError(f"{at('verbalizer')} gives two labels the same words {same[0]!r}: they could never be told "
                        f"apart")
    if given is not None:
        if set(given) != set(words):
            raise TaskError(f"{at('labels')} must be the verbalizer's labels {list(words)} (in any order), but got "
                            f"{list(given)}")
        return {name: words[name] for name in given}
    return words


def _written_columns(block: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The columns as the definition keeps them (text always a list: `text: s` and `text: [s]` are one task)."""
    if kind == "causal_lm":
        return {key: block[key] for key in ("prompt", "answer", "label") if key in block}
    if kind == "seq2seq":
        return {"source": block["source"], "target": block["target"]}
    text = block["text"]
    return {"text": [text] if isinstance(text, str) else list(text), "label": block["label"]}


def _metric(value: Any, kind: str, at: Callable[[str], str]) -> tuple[str, str]:
    """(the metric family, the score selected on) for `metric:`: a family of metrics.py, or one of its scores
    (`spearmanr` selects on Spearman), that fits the kind; left out, the kind's default."""
    fitting = {family: (family, FAMILY_MAIN.get(family, SCORE_NAMES[family][0])) for family in KIND_METRICS[kind]}
    for family in KIND_METRICS[kind]:
        for score in SCORE_NAMES[family]:
            fitting.setdefault(score, (family, score))
    if value is None:
        return fitting[KIND_METRICS[kind][0]]
    if isinstance(value, str) and value in fitting:
        return fitting[value]
    known = set(SCORE_NAMES) | {score for scores in SCORE_NAMES.values() for score in scores}
    fits_another = isinstance(value, str) and value in known
    what = {"causal_lm": "a causal_lm task with an answer column",
            "causal_lm with a verbalizer": "a causal_lm task with a verbalizer"}.get(kind, f"a {kind} task")
    fit = f"kind {kind!r}" if kind in KINDS else "kind 'causal_lm' with a verbalizer"
    why = f"does not fit {fit}" if fits_another else "is not a metric petl-search computes"
    raise TaskError(f"{at('metric')}: {value!r} {why}; {what} takes one of {list(fitting)}")


def _given_labels(value: Any, at: Callable[[str], str]) -> tuple[str, ...] | None:
    """`labels:` as class names (id = position), or None when left out."""
    if value is None:
        return None
    names = [label_text(v) for v in value] if isinstance(value, list) else []
    if not (len(names) >= 2 and all(isinstance(v, (str, int, float, bool)) for v in value)
            and len(set(names)) == len(names)):
        raise TaskError(f"{at('labels')} must be a list of two or more distinct class names (id = position), but got "
                        f"{value!r}")
    return tuple(names)


def _files(value: Any, source: str, at: Callable[[str], str]) -> dict[str, Path]:
    """{train, dev: the file}, each there and of a format the loader reads."""
    if not (isinstance(value, Mapping) and set(value) == set(SPLITS)):
        raise TaskError(f"{at('files')} must be {{train: FILE, dev: FILE}}, but got {value!r}")
    out = {}
    for key in SPLITS:
        written = value[key]
        if not (isinstance(written, str) and written):
            raise TaskError(f"{at('files.' + key)} must be a file's path, but got {written!r}")
        path = Path(written)
        if not path.is_absolute() and source != "<dict>":
            path = Path(source).parent / path
        path = path.resolve()  # workers run in other folders: hand them absolute paths
        if not path.is_file():
            raise TaskError(f"{at('files.' + key)}: {path} not found")
        if path.suffix.lower() not in FILE_FORMATS:
            raise TaskError(f"{at('files.' + key)}: {written} is not in a format petl-search reads (CSV, TSV, JSON "
                            f"lines, Parquet: {', '.join(FILE_FORMATS)})")
        out[key] = path
    return out


def _hub(value: Any, at: Callable[[str], str]) -> tuple[str, str | None, dict[str, str]]:
    """(dataset id, config, {train, dev: the Hub's split}) of `hub:`."""
    form = "{id: DATASET, config: NAME, splits: {train: SPLIT, dev: SPLIT}} (config and splits optional)"
    if not (isinstance(value, Mapping) and "id" in value and not set(value) - {"id", "config", "splits"}):
        raise TaskError(f"{at('hub')} must be {form}, but got {value!r}")
    repo, config = value["id"], value.get("config")
    if not (isinstance(repo, str) and repo):
        raise TaskError(f"{at('hub.id')} must be a Hugging Face dataset id, but got {repo!r}")
    if config is not None and not isinstance(config, str):
        raise TaskError(f"{at('hub.config')} must be the dataset's config name or left out, but got {config!r}")
    splits = value.get("splits", {"train": "train", "dev": "validation"})
    if not (isinstance(splits, Mapping) and set(splits) == set(SPLITS)
            and all(isinstance(s, str) and s for s in splits.values())):
        raise TaskError(f"{at('hub.splits')} must be {{train: SPLIT, dev: SPLIT}} (the Hub's split names), but got "
                        f"{splits!r}")
    return repo, config, {key: splits[key] for key in SPLITS}


class _File:
    """One local file, read only as far as the checks need: its column names first, then single columns."""

    def __init__(self, path: Path, key: str, at: Callable[[str], str]) -> None:
        self.where, self.key, self._at = str(path), key, at
        self._path = path
        self._format, self._options = FILE_FORMATS[path.suffix.lower()]
        self._read: dict[str, list] = {}
        self._table: Any = None
        if path.stat().st_size == 0:
            self.columns: list[str] = []
            return
        try:
            if self._format == "csv":
                import pandas as pd

                self.columns = [str(c) for c in pd.read_csv(path, nrows=0, **self._options).columns]
            elif self._format == "parquet":
                import pyarrow.parquet as pq

                self.columns = list(pq.read_schema(path).names)
            else:
                import pyarrow.json as paj

                self._table = paj.read_json(path)
                self.columns = list(self._table.column_names)
        except Exception as exc:  # noqa: BLE001 -- pandas' and pyarrow's parse errors: the file, the cause
            raise self._unreadable(exc) from exc

    def column(self, name: str) -> list:
        if name not in self._read:
            try:
                if self._format == "csv":
                    import pandas as pd

                    self._read[name] = pd.read_csv(self._path, usecols=[name], **self._options)[name].tolist()
                elif self._format == "parquet":
                    import pyarrow.parquet as pq

                    self._read[name] = pq.read_table(self._path, columns=[name]).column(name).to_pylist()
                else:
                    self._read[name] = self._table.column(name).to_pylist()
            except Exception as exc:  # noqa: BLE001 -- as in __init__
                raise self._unreadable(exc) from exc
        return self._read[name]

    def _unreadable(self, exc: Exception) -> TaskError:
        return TaskError(f"{self._at(self.key)}: could not read {self.where} as {FORMAT_NAMES[self._format]}: "
                         f"{' '.join(str(exc).split())}")


class _Loaded:
    """One split of a Hub dataset, loaded, with the same face as _File (a ClassLabel column as class names)."""

    def __init__(self, data: Any, where: str, key: str, label: str | None) -> None:
        self.where, self.key = where, key
        self.columns = list(data.column_names)
        self._data = class_names(data, label if label in self.columns else None)
        self.class_order = list(getattr(data.features.get(label), "names", None) or []) if label else []

    def column(self, name: str) -> list:
        return list(self._data[name])


def _hub_splits(repo: str, config: str | None, splits: dict[str, str], name: str, label: str | None,
                at: Callable[[str], str], labels_key: str) -> dict[str, _Loaded]:
    """The train and dev splits of a Hub dataset, read now (a classification task that leaves its labels out)."""
    try:
        loaded = load_hub_splits(repo, config, list(splits.values()), task=name,
                                 instead=f"list the classes in {labels_key} (the Hub is then read when the data "
                                         f"loads, not when the file is read)")
    except Exception as exc:  # noqa: BLE001 -- unreachable, or an unknown dataset, config or split
        raise TaskError(f"{at('hub')}: {' '.join(str(exc).split())}") from exc
    where = f"{repo}{'/' + config if config else ''}"
    return {key: _Loaded(loaded[split], f"{where}:{split}", f"hub.splits.{key}", label)
            for key, split in splits.items()}


def _check(splits: Mapping[str, Any], columns: Mapping[str, str], kind: str, given: tuple[str, ...] | None,
           at: Callable[[str], str]) -> tuple[str, ...]:
    """Check the train and dev splits (_File or _Loaded) against the task (`kind`: its kind, or a causal_lm task's
    form); return its class names (classification: `given`, else train's sorted, or a Hub ClassLabel's order; a
    verbalizer's: `given`), else ()."""
    roles = {ours: column for column, ours in columns.items()}
    answers = kind == "causal_lm"  # its label column holds answers, not classes
    key_of = {"text_a": "text", "text_b": "text", "label": "answer" if answers else "label", "source": "source",
              "target": "target", "prompt": "prompt"}
    for split in splits.values():
        if not split.columns:
            raise TaskError(f"{at(split.key)}: {split.where} has no rows")
        for column, ours in columns.items():
            if column not in split.columns:
                raise TaskError(f"{at(key_of[ours])}: no column {column!r} in {split.where}; its columns: "
                                f"{split.columns}")
    read = roles["label"] if "label" in roles else roles["source"]  # the one column a check needs: it counts rows
    values = {key: split.column(read) for key, split in splits.items()}
    for key, split in splits.items():
        if not values[key]:
            raise TaskError(f"{at(split.key)}: {split.where} has no rows")
    if kind == "seq2seq":
        return ()
    given_key = "verbalizer" if kind.startswith("causal_lm") else "labels"
    for key, split in splits.items():
        for i, value in enumerate(values[key]):
            if kind == "regression" and not _is_finite_number(value):
                raise TaskError(f"{at('label')}: {split.where} row {i + 1} has {value!r} in column {read!r}; a "
                                f"regression label is a number")
            if value is None or label_text(value) == "":
                raise TaskError(f"{at(key_of['label'])}: {split.where} row {i + 1} has no {key_of['label']} (column "
                                f"{read!r})")
    if kind in ("regression", "causal_lm"):
        return ()
    train, dev = splits["train"], splits["dev"]
    seen = {key: {label_text(v) for v in values[key]} for key in splits}
    if given is not None:
        for key, split in splits.items():
            unknown = sorted(seen[key] - set(given))
            if unknown:
                raise TaskError(f"{at(given_key)}: {split.where} has labels {unknown} (column {read!r}) that are not "
                                f"in {list(given)}")
    labels = given or tuple(getattr(train, "class_order", None) or _sorted_labels(seen["train"]))
    if len(labels) < 2:
        raise TaskError(f"{at('label')}: {train.where} has one class, {labels[0]!r} (column {read!r}); a classifier "
                        f"needs two or more")
    only_dev = sorted(seen["dev"] - seen["train"])
    if only_dev:
        raise TaskError(f"{at('label')}: {dev.where} has labels {only_dev} (column {read!r}) that {train.where} lacks "
                        f"(it has {_sorted_labels(seen['train'])}): the model would never learn them")
    return labels


def _sorted_labels(names: set[str]) -> list[str]:
    """Class names in order: as numbers when every one is a number (2 before 10), else as text."""
    try:
        return sorted(names, key=float)
    except ValueError:
        return sorted(names)


def _is_finite_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


_HASHES: dict[tuple, str] = {}  # per process: a file's SHA-256 by (path, size, mtime), so each is hashed once


def file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]
