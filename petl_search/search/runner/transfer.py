"""Train a study's front again on another task, with fresh seeds, in a storage of its own
(`petl-search transfer STUDY --task OTHER`); resumable like a search.

    target = transfer_spec(load_study("studies/quickstart.yaml"), resolve_task("stsb"))
    run_transfer(target, source, points=[14, 20, 3], n_seeds=3)   # source: a TransferSource (below)

The transfer is a study of its own (`transfer_spec`): the source study with the other task (the same model, space,
budget, trainer settings and search-split settings, the split drawn from the other task's training data as a study
draws it, the other task's main metric selected on), named <study>_transfer_<task>, kept in SQLite in
<study folder>/transfer_<task>/ (or a folder given), whose fingerprint refuses a changed definition. Each training
is a `reseed` trial of the transfer's storage (`Proposer.open_reseed`): the source point's design, label and own
learning rate, `reseed_of` naming the point's trial in the source study, with a seed that no training of the source
study used. The storage also keeps what it transfers (`TransferSource`: the source's finished trainings, as they
were when the transfer began, and what a constant answer scored there) and the plan (which points, which seeds), so
a run resumes, and its report is written (analysis/transfer_report.py), from this storage alone.

Which points to transfer is the analysis layer's choice (the front, the best point); this module trains the ones
it is given, one after another in this process, and never reads an analysis.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import optuna

from ...core.errors import PETLError
from ...training.tasks import TASKS, get_task, load_task
from ...training.trainer import train
from ..language.study import StudySpec, load_task_file
from ..optuna_bridge.lease import DriverLease
from ..optuna_bridge.proposer import Proposer
from ..optuna_bridge.records import MEASURED_KINDS, TrialRecord, read_records
from ..optuna_bridge.storage import REFERENCES_KEY, Store, open_store, record_references

SOURCE_KEY = "transfer_source"  # study attribute of a transfer: TransferSource.to_dict()
PLAN_KEY = "transfer_plan"  # study attribute: {"points", "seeds", "runs": [{command, commit, date, machine}, ...]}
STORAGE_FILE = "transfer.db"
DEFAULT_SEEDS = 3
# The model a task trains: tasks of one shape share the study's model and its designs; a head of their own is made
# for each (a classifier's labels, a regressor's one output). Any other kind is a shape of its own.
SHAPES = {"classification": "a sequence classifier or regressor", "regression": "a sequence classifier or regressor"}
INTERRUPTED = "interrupted while training; `petl-search transfer` with the same study and task trains it again"


def resolve_task(value: str) -> str:
    """`--task`: a built-in task's name, or a task file (what a study's `task:` mapping holds, alone in a YAML file;
    `train --task-file` reads the same), given as its TaskName."""
    if value in TASKS:
        return value
    path = Path(value)
    if path.is_file():
        return load_task_file(path)
    if path.suffix in (".yaml", ".yml"):
        raise PETLError(f"--task: the task file {value} was not found")
    raise PETLError(f"--task must be a built-in task ({', '.join(sorted(TASKS))}) or a task file (a YAML file "
                    f"holding what a study's `task:` mapping holds, docs/training.md), but got {value!r}")


def shape(kind: str) -> str:
    return SHAPES.get(kind, f"a {kind} model")


def transfer_spec(source: StudySpec, task: str, folder: str | Path | None = None) -> StudySpec:
    """The transfer of `source`'s points to `task`, as a study: see the module docstring. Refuses the study's own
    task and a task whose kind needs another model than the study's."""
    was, now = get_task(source.task), get_task(task)
    if (now.definition or now.name) == source.task_definition:
        raise PETLError(f"--task {now.name} is study {source.name}'s own task: a transfer trains its front on another "
                        f"task (to train its points again on {now.name}, use `petl-search reseed`)")
    if shape(now.kind) != shape(was.kind):
        same = " (classification or regression)" if was.kind in SHAPES else ""
        raise PETLError(f"task {now.name} is a {now.kind} task, which needs {shape(now.kind)}, but study {source.name} "
                        f"trained its points on {was.name} ({was.kind}) as {shape(was.kind)} of {source.model}: "
                        f"transfer them to a task of that kind{same}, or transfer from a study of a {now.kind} task")
    folder = Path(folder) if folder is not None else source.folder / f"transfer_{now.name}"
    return dataclasses.replace(
        source, name=f"{source.name}_transfer_{now.name}", task=task,
        objectives=(now.main_metric, *source.objectives[1:]),
        n_trials=0, baselines=(), reseed=None, sizes=(), tuning=None, confirm=None, early_stopping=None, concurrency=1,
        strategy="standalone", oneshot=None, data_dir=None if now.own else source.data_dir,
        hub=False if now.own else source.hub, storage=f"sqlite:///{folder.resolve() / STORAGE_FILE}")


@dataclass(frozen=True)
class TransferSource:
    """What a transfer transfers: the source study's finished trainings as they were when it began (enough to draw
    its front and its points' scores over seeds), and what the study's points are judged against there."""

    study: str
    study_file: str
    fingerprint: str
    task: str
    metric: str  # the score the source study selected on
    selected_on: str  # "search split" or "dev"
    budget: float
    records: tuple[TrialRecord, ...]
    references: Mapping[str, Any] = field(default_factory=dict)  # what a constant answer scores there, per set
    used_seeds: tuple[int, ...] = ()  # every seed a training of the source study used (never a transfer's)

    @classmethod
    def of(cls, spec: StudySpec, records: Iterable[TrialRecord], references: Mapping[str, Any],
           selected_on: str) -> "TransferSource":
        records = list(records)
        kept = tuple(_slim(r) for r in records if r.kind in MEASURED_KINDS and r.state == "COMPLETE")
        used = sorted({spec.seed} | {r.seed for r in records if r.seed is not None})
        return cls(spec.name, spec.source, spec.fingerprint(), str(spec.task), spec.main_metric, selected_on,
                   spec.budget, kept, dict(references), tuple(used))

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "records": [dataclasses.asdict(r) for r in self.records]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TransferSource":
        return cls(**{**data, "records": tuple(TrialRecord(**r) for r in data["records"]),
                      "used_seeds": tuple(data.get("used_seeds", ()))})


def _slim(record: TrialRecord) -> TrialRecord:
    """A record with only what fronts and means read (no dev predictions, no histories): a study attribute stays
    small."""
    extra = {k: record.extra[k] for k in ("reseed_of", "confirm_of", "automatic") if k in record.extra}
    head = (record.extra.get("params") or {}).get("head")
    return dataclasses.replace(record, extra={**extra, **({"params": {"head": head}} if head is not None else {})})


def fresh_seeds(used: Iterable[int], chosen: Sequence[int], n: int) -> list[int]:
    """n seeds for a transfer: those an earlier run of it chose (`chosen`, so a resumed transfer keeps its seeds),
    then the smallest non-negative integers that no training of the source study used."""
    if n < 1:
        raise PETLError(f"--seeds must be a positive number of seeds, but got {n}")
    out, taken, candidate = list(chosen)[:n], set(used) | set(chosen), 0
    while len(out) < n:
        if candidate not in taken:
            out.append(candidate)
        candidate += 1
    return out


def pending(records: Iterable[TrialRecord], points: Sequence[int], seeds: Sequence[int]) -> list[tuple[int, int]]:
    """(point, seed) trainings still to do, seed by seed (every point gets its first seed before any its second, so
    a run cut short leaves every point scored): those without a finished or running training (a failed one is
    tried again)."""
    done = {(r.extra.get("reseed_of"), r.seed) for r in records
            if r.kind == "reseed" and r.state in ("COMPLETE", "PRUNED", "RUNNING")}
    return [(n, s) for s in seeds for n in points if (n, s) not in done]


@dataclass(frozen=True)
class StoredTransfer:
    """A transfer as its storage holds it: what it transfers, its plan, its trainings and what a constant answer
    scores on the target's sets (`record_references`)."""

    spec: StudySpec
    source: TransferSource
    plan: Mapping[str, Any]
    records: tuple[TrialRecord, ...]
    references: Mapping[str, Any]


def stored_transfer(target: StudySpec) -> StoredTransfer | None:
    """What earlier runs of this transfer stored; None when it has no storage yet. Refuses a storage that holds
    another study, or this transfer under another definition (open_store)."""
    path = target.sqlite_path
    if path is None or not path.is_file():
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = optuna.get_all_study_names(storage=target.storage)
    others = [n for n in names if n != target.name]
    if others:
        raise PETLError(f"{path} holds study {others[0]!r}, not this transfer ({target.name!r}): give the transfer "
                        f"another --folder, or move that storage away")
    if not names:
        return None
    try:
        study = open_store(target, create=False).study
    except PETLError as exc:
        raise PETLError(f"{exc}; or give the transfer another --folder") from None
    attrs = study.user_attrs
    if SOURCE_KEY not in attrs:
        return None  # created, then stopped before its source was stored: begun afresh
    return StoredTransfer(target, TransferSource.from_dict(attrs[SOURCE_KEY]), dict(attrs.get(PLAN_KEY) or {}),
                          tuple(read_records(study)), dict(attrs.get(REFERENCES_KEY) or {}))


def run_transfer(target: StudySpec, source: TransferSource, points: Sequence[int], n_seeds: int = DEFAULT_SEEDS, *,
                 progress: Callable[[str], None] = print, time_budget_s: float | None = None,
                 provenance: Mapping[str, Any] | None = None) -> StoredTransfer:
    """Train each of the source's `points` (trial numbers) with `n_seeds` fresh seeds on the target, one after
    another in this process; skip what an earlier run finished. Stops before a training that would start after
    `time_budget_s` seconds (the one running finishes), saying how to go on. Ctrl-C: the training in progress is
    stored as failed ("interrupted"), and KeyboardInterrupt goes on up; the next run trains it again. A transfer
    that has begun goes on with the source it stored then (`stored_transfer(target).source`), whatever is passed."""
    model_config = target.model_config()
    load_task(target.task, target.data_source)  # missing data fails here, once, before any storage is made
    earlier = stored_transfer(target)
    if earlier is not None and earlier.source.fingerprint != source.fingerprint:
        raise PETLError(f"{target.sqlite_path} holds the transfer of study {earlier.source.study} as it was defined "
                        f"then (fingerprint {earlier.source.fingerprint}), not as {source.study_file} defines it now "
                        f"({source.fingerprint}): give the transfer another --folder, or restore the study's "
                        f"definition")
    source = earlier.source if earlier is not None else source
    by_number = {r.number: r for r in source.records if r.kind in ("search", "baseline")}
    unknown = [n for n in points if n not in by_number]
    if unknown:
        raise PETLError(f"trial {unknown[0]} is not a trained point of study {source.study}")
    store = open_store(target)
    study = store.study
    with DriverLease(study):
        if earlier is None:
            study.set_user_attr(SOURCE_KEY, source.to_dict())
        plan = dict(study.user_attrs.get(PLAN_KEY) or {})
        seeds = fresh_seeds(source.used_seeds, plan.get("seeds", []), n_seeds)
        runs = list(plan.get("runs", [])) + ([dict(provenance)] if provenance else [])
        study.set_user_attr(PLAN_KEY, {"points": list(points), "seeds": seeds, "runs": runs})
        _fail_interrupted(store)
        record_references(store, target)
        proposer = Proposer(store, target, model_config)
        todo = pending(read_records(study), points, seeds)
        total = len(points) * len(seeds)
        progress(f"transfer of study {source.study} ({source.task}) to {target.task}: {len(points)} points x seeds "
                 f"{seeds} = {total} trainings, {len(todo)} to run (one at a time, in this process), selecting on "
                 f"{target.main_metric}; storage {target.storage_shown}")
        _train_all(target, proposer, [(by_number[n], s) for n, s in todo], total - len(todo), total,
                   progress, time_budget_s)
        return StoredTransfer(target, source, dict(study.user_attrs[PLAN_KEY]), tuple(read_records(study)),
                              dict(study.user_attrs.get(REFERENCES_KEY) or {}))


def _fail_interrupted(store: Store) -> None:
    """The trainings a killed run left running (under the lease, no live run owns them): failed as interrupted, and
    trained again by this run (`pending`). Not storage.reconcile, whose reason for a reseed names `petl-search
    reseed`: a finished trial's reason cannot be written again."""
    for t in store.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        store.set_trial_attr(t.number, "interrupted", True)
        store.set_trial_attr(t.number, "reason", INTERRUPTED)
        store.study.tell(t.number, state=optuna.trial.TrialState.FAIL)


def _train_all(target: StudySpec, proposer: Proposer, todo: Sequence[tuple[TrialRecord, int]], done: int, total: int,
               progress: Callable[[str], None], time_budget_s: float | None) -> None:
    start = time.monotonic()
    for i, (point, seed) in enumerate(todo):
        if time_budget_s is not None and time.monotonic() - start >= time_budget_s:
            left = len(todo) - i
            progress(f"the time budget ({time_budget_s:g} s) ended the transfer with {left} training"
                     f"{'' if left == 1 else 's'} still to run: run the same command to resume")
            return
        candidate = proposer.open_reseed(point, seed)
        try:
            result = train(candidate.petl_config, target.task, model=target.model, data_dir=target.data_source,
                           train_config=target.train_config(seed, learning_rate=candidate.learning_rate)).to_dict()
        except KeyboardInterrupt:
            proposer.finish(candidate.number, None, error=INTERRUPTED)
            raise
        except Exception as exc:  # the training's failure, stored with its reason; the transfer goes on
            result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        finished = proposer.finish(candidate.number, result)
        done += finished.state == "COMPLETE"
        progress(_line(finished, point, done, total, target.main_metric, time.monotonic() - start))
        if proposer.abort:
            raise PETLError(f"transfer {target.name} stopped: {proposer.abort}")


def _line(finished: TrialRecord, point: TrialRecord, done: int, total: int, metric: str, elapsed: float) -> str:
    """One finished training, as `search` prints one: where the run is, what it scored, how long it has taken."""
    if finished.metric is not None:
        dev = finished.dev_scores.get(metric)
        outcome = f"{metric} {finished.metric:.4f} on the {finished.evaluated_on}" + (
            f" (dev {dev:.4f})" if dev is not None and finished.evaluated_on != "dev" else "")
    else:
        outcome = f"{finished.state.lower()}: {finished.reason}"
    rate = "" if finished.learning_rate is None else f", lr {finished.learning_rate:.2e}"
    return (f"[{done}/{total}] #{point.number} {point.kind} {point.label} (seed {finished.seed}{rate}): {outcome} | "
            f"{elapsed / 60:.1f} min")
