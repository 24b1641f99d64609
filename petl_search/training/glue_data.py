"""`petl-search data glue`: GLUE tasks from the Hub, written as the TSV folders the task loaders read.

    fetch_glue(["sst2", "cola"], "glue")    # glue/SST-2/{train,dev}.tsv, glue/CoLA/{train,dev}.tsv, glue/SHA256SUMS
    write_task("sst2", splits, "glue")      # the same from Hub-shaped splits already in memory

A config of the Hub's nyu-mll/glue (the Hub's column names, integer labels) becomes the folder, file names,
columns and label spellings that tasks.py reads back (Task.folder, files, columns, labels), so that
`load_task(name, DIR)` gives the texts and labels `load_task(name, hub=True)` gives. On the way:
- the loaders read TSV without quoting, so a tab, carriage return or newline inside a text becomes a space;
- a file with a header gets the loader's columns after an `index` column (the Hub's idx); CoLA has no header
  and positional columns (source, label, orig_label, sentence): those the loader ignores are written empty
  (the Hub does not carry CoLA's source);
- an STS-B score is written as the shortest decimal that reads back as the same float32.
Each file is written under a temporary name and renamed into place (an interrupted run leaves no half file);
existing files are kept unless force; SHA256SUMS (sha256sum's format) lists the files written, keeping the
lines of files written earlier. The Hub is read only through hub.py; this module knows nothing of models.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from ..core.errors import PETLError
from .hub import load_hub_splits
from .tasks import GLUE_HUB_ID, TASKS, Task, get_task, hub_instead

GLUE_TASKS = tuple(name for name, task in TASKS.items() if task.hub[0] == GLUE_HUB_ID)
SPLITS = ("train", "validation")  # what the loaders read (GLUE's test splits have no labels)
CHECKSUMS = "SHA256SUMS"
_FIELD_BREAKS = str.maketrans({"\t": " ", "\r": " ", "\n": " "})


@dataclass(frozen=True)
class WrittenFile:
    """One file written: its path under the output folder, its examples (rows after any header), its SHA-256."""

    path: str
    rows: int
    sha256: str


def glue_tasks(names: Sequence[str]) -> tuple[str, ...]:
    """The GLUE tasks named, each once, in order (every GLUE task when none is named)."""
    for name in names:
        if name not in GLUE_TASKS:
            raise PETLError(f"data glue: a task must be one of {list(GLUE_TASKS)}, but got {name!r}")
    return tuple(dict.fromkeys(names)) or GLUE_TASKS


def task_files(name: str) -> list[str]:
    """The files task `name` is written to, relative to the output folder (e.g. MNLI/dev_matched.tsv)."""
    task = get_task(name)
    return [f"{task.folder}/{task.files[split]}" for split in SPLITS]


def refuse_existing(out: Path, names: Iterable[str], force: bool) -> None:
    """Stop before any download or write if a file would be replaced without force."""
    if out.exists() and not out.is_dir():
        raise PETLError(f"--out {out} is a file, not a folder")
    existing = [path for name in names for path in task_files(name) if (out / path).exists()]
    if existing and not force:
        raise PETLError(f"{out} already has {existing}; pass --force to replace them")


def clean_text(text: str) -> str:
    """A text as one TSV field read without quoting: tabs, carriage returns and newlines become spaces."""
    return text.translate(_FIELD_BREAKS)


def header(task: Task) -> list[str] | None:
    """The header row of `task`'s files, or None where the loader reads none (CoLA)."""
    return ["index", *task.columns] if task.header else None


def task_rows(task: Task, split: Any, source: str) -> Iterator[list[str]]:
    """The rows (lists of fields) of Hub split `split` in `task`'s file layout, header excluded."""
    hub_column = {role: column for column, role in task.hub_columns.items()}
    missing = [c for c in hub_column.values() if c not in split.column_names]
    if missing:
        raise PETLError(f"task {task.name!r}: {source} lacks columns {missing}; it has {split.column_names} "
                        f"(the Hub's {GLUE_HUB_ID} columns: {list(task.hub_columns)})")
    has_idx = "idx" in split.column_names
    for i, example in enumerate(split):
        fields = [str(example["idx"] if has_idx else i)] if task.header else []
        for column, role in task.columns.items():
            value = example[hub_column[role]] if role else None
            fields.append(_field(task, role, value, f"{source} row {i} column {hub_column.get(role, column)!r}"))
        yield fields


def _field(task: Task, role: str, value: Any, where: str) -> str:
    """One value as the loader reads it back: text cleaned, class id as its label name, score as a decimal."""
    if not role:  # a column the loader ignores (CoLA's source and orig_label)
        return ""
    if role != "label":
        if not isinstance(value, str):
            raise PETLError(f"task {task.name!r}: {where} must be a text, but got {value!r}")
        return clean_text(value)
    if task.kind == "regression":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PETLError(f"task {task.name!r}: {where} must be a number, but got {value!r}")
        return np.format_float_positional(np.float32(value), unique=True, trim="0")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(task.labels):
        raise PETLError(f"task {task.name!r}: {where} must be a class id in 0..{len(task.labels) - 1} "
                        f"({list(task.labels)}), but got {value!r} (the Hub's test splits have no labels: -1)")
    return task.labels[value]


def write_task(name: str, splits: Mapping[str, Any], out: str | os.PathLike, *, force: bool = False,
               progress: bool = False, on_file: Callable[[WrittenFile], None] | None = None) -> list[WrittenFile]:
    """Write GLUE task `name` from `splits` (Hub split name -> Dataset, as nyu-mll/glue has them) under `out`.

    Updates out/SHA256SUMS; refuses to replace an existing file unless force; progress: a bar per file.
    """
    task = get_task(glue_tasks([name])[0])
    out = Path(out)
    refuse_existing(out, [name], force)
    written = []
    for split, path in zip(SPLITS, task_files(name)):
        hub_split = task.hub_splits[split]
        if hub_split not in splits:
            raise PETLError(f"task {name!r}: the data has no split {hub_split!r} (written as {path}); it has "
                            f"{sorted(splits)}")
        data = splits[hub_split]
        rows = task_rows(task, data, f"{GLUE_HUB_ID}/{task.hub[1]}:{hub_split}")
        with tqdm(total=len(data), desc=path, unit=" rows", disable=None if progress else True) as bar:
            count, digest = _write_tsv(out / path, header(task), rows, bar.update)
        written.append(WrittenFile(path, count, digest))
        write_checksums(out, written[-1:])  # file by file: an interrupted run's SHA256SUMS lists what it wrote
        if on_file:
            on_file(written[-1])
    return written


def download(name: str) -> dict[str, Any]:
    """The Hub splits GLUE task `name` is written from ({hub split: Dataset}); one line if the Hub is out of reach."""
    task = get_task(name)
    return load_hub_splits(GLUE_HUB_ID, task.hub[1], [task.hub_splits[s] for s in SPLITS], task=name,
                           instead=hub_instead(task))


def fetch_glue(names: Sequence[str], out: str | os.PathLike, *, force: bool = False, progress: bool = False,
               on_file: Callable[[WrittenFile], None] | None = None) -> list[WrittenFile]:
    """Download GLUE tasks `names` (all when empty) from the Hub and write them under `out`, task by task."""
    names, out = glue_tasks(names), Path(out)
    refuse_existing(out, names, force)  # before the first download
    written = []
    for name in names:
        written += write_task(name, download(name), out, force=force, progress=progress, on_file=on_file)
    return written


def read_checksums(path: Path) -> dict[str, str]:
    """{file: sha256} from a sha256sum-style file ("<hex>  <path>" per line)."""
    sums = {}
    for line in path.read_text().splitlines():
        digest, sep, name = line.partition("  ")
        if sep:
            sums[name] = digest
    return sums


def write_checksums(out: Path, written: Iterable[WrittenFile]) -> Path:
    """out/SHA256SUMS with the files just written, keeping the lines of other files already there."""
    path = out / CHECKSUMS
    sums = read_checksums(path) if path.is_file() else {}
    sums.update({w.path: w.sha256 for w in written})
    _write_atomically(path, (f"{sums[name]}  {name}\n".encode() for name in sorted(sums)))
    return path


def _write_tsv(path: Path, head: list[str] | None, rows: Iterable[list[str]],
               on_row: Callable[[int], Any]) -> tuple[int, str]:
    """Write a header (if any) and `rows` as TSV lines to `path`; return (rows written, SHA-256)."""
    count = 0

    def lines() -> Iterator[bytes]:
        nonlocal count
        if head:
            yield ("\t".join(head) + "\n").encode("utf-8")
        for fields in rows:
            count += 1
            on_row(1)
            yield ("\t".join(fields) + "\n").encode("utf-8")

    digest = _write_atomically(path, lines())
    return count, digest


def _write_atomically(path: Path, chunks: Iterable[bytes]) -> str:
    """Write `chunks` to a temporary file beside `path`, then rename it to `path`; return the SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as f:
            for chunk in chunks:
                digest.update(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return digest.hexdigest()
