"""A study's Optuna storage: opening it (refusing one made from another definition), writing trial
attributes by number, and reconciling what an interrupted driver left behind.

Everything else in the package reaches a study through its public API (`optuna.load_study`,
`study.get_trials`, `study.tell`, `study.enqueue_trial`, `study.set_user_attr`, `study.user_attrs`);
`Store` is the one place that calls the storage itself, and only where Optuna has no study-level route.
Checked against the source of Optuna 5.1.0 (the pin allows 5.x; `check_optuna_version` warns outside it):

  * `optuna.storages.get_storage(url)` builds the storage object so that it can be kept, and the study is
    loaded on that very object (`Study` keeps a storage object it is given): the writes below then pass
    through the study's own trial cache. Optuna marks it "only for internal usage"; it is what
    `load_study(storage=url)` calls itself.
  * `get_study_id_from_name`: the study's id, which `Study` keeps only in its private `_study_id`.
  * `get_trial_id_from_study_id_trial_number` and `set_trial_user_attr`: a user attribute of a trial by
    its number. `Trial.set_user_attr` needs the live `Trial`, which exists only in the call that asked
    for it; the trials written here were created by `add_trial` below, are finished from a Ray callback
    that keeps only numbers, or were left running by a dead driver. `study.tell` takes a number, but
    nothing public sets an attribute by number.
  * `create_new_trial` and `get_trial_number_from_id`: a RUNNING trial made from a template (a baseline or
    a reseed), and its number. `study.ask()` would consult the sampler and take a trial from the queue;
    `study.add_trial` returns nothing and is meant for finished trials.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import optuna

from ...core.errors import PETLError
from ...core.version import checked_major, major

from ...training.config import TrainConfig
from ...training.splits import constant_references
from ...training.tasks import get_task, load_cached_task
from ..language.budget import fit_baselines
from .records import BASELINES_KEY, interruption_reason
from .samplers import make_sampler
from ..language.study import StudySpec, shown_url

REQUEUED_FROM = "requeued_from"  # a waiting trial's attribute: the interrupted search trial it runs again
CHECKED_OPTUNA = "5.1.0"  # the Optuna whose source the storage calls of `Store` were read in
CHECKED_OPTUNA_MAJOR = major(CHECKED_OPTUNA)


def check_optuna_version(version: str = optuna.__version__) -> bool:
    """Whether `version` is an Optuna major release whose storage calls `Store` knows; warns if not."""
    return checked_major("Optuna", version, CHECKED_OPTUNA,
                         relies="petl-search's storage calls (search/optuna_bridge/storage.py)",
                         risk="trial attributes and baseline trials may not be written as expected")


check_optuna_version()


@dataclass
class Store:
    """An open study: the Optuna study and the storage object it was loaded on (the same object, so that
    what `Store` writes passes through the study's own cache; `open_store` makes them so)."""

    study: optuna.Study
    storage: optuna.storages.BaseStorage

    def __post_init__(self) -> None:
        # looked up once: every attribute a trial gets is written by trial id, and the study's never changes
        self.study_id = self.storage.get_study_id_from_name(self.study.study_name)

    def trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def set_trial_attr(self, number: int, key: str, value: Any) -> None:
        """Set a user attribute of trial `number` (opened by this process or an earlier one)."""
        self.storage.set_trial_user_attr(self.trial_id(number), key, value)

    def add_trial(self, template: optuna.trial.FrozenTrial) -> int:
        """Create a trial from `template` (a running baseline or reseed) and return its number. Unlike
        `study.ask()`, this neither consults the sampler nor takes a trial from the queue."""
        return self.storage.get_trial_number_from_id(self.storage.create_new_trial(self.study_id, template))


def open_store(spec: StudySpec, *, create: bool = True) -> Store:
    """The study's storage; refuses a storage made from a different study definition."""
    if spec.sqlite_path is not None:
        spec.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = optuna.storages.get_storage(spec.storage)
    except ImportError as exc:  # SQLAlchemy found no driver for the URL's database
        raise PETLError(missing_driver(spec.storage, exc)) from None
    try:
        study = optuna.load_study(study_name=spec.name, storage=storage, sampler=make_sampler(spec))
    except KeyError:
        if not create:
            raise PETLError(f"study {spec.name!r} has no results yet in {spec.storage_shown}; "
                            f"run `petl-search search {spec.source}` first") from None
        study = optuna.create_study(study_name=spec.name, storage=storage, directions=spec.directions,
                                    sampler=make_sampler(spec))
        study.set_user_attr("spec", spec.to_dict())
        study.set_user_attr("fingerprint", spec.fingerprint())
        return Store(study, storage)
    stored = study.user_attrs.get("spec", {})
    if study.user_attrs.get("fingerprint") != spec.fingerprint():
        changed = [k for k, v in spec.identity().items() if json_norm(stored.get(k)) != json_norm(v)]
        raise PETLError(f"study {spec.name!r} in {spec.storage_shown} was run with a different definition "
                        f"(changed: {', '.join(changed) or 'unknown'}); give the study a new name to start "
                        f"afresh, or restore the old values to resume it")
    return Store(study, storage)


# How to install the module a PostgreSQL URL asks for: SQLAlchemy 2.1 reads `postgresql://` with psycopg 3
# (`psycopg`), 2.0 with `psycopg2`; the `postgres` extra brings psycopg 3 and SQLAlchemy >= 2.1 (pyproject.toml)
POSTGRES_INSTALL = {"psycopg": 'pip install "petl-search[postgres]"',
                    "psycopg2": 'pip install psycopg2-binary (or pip install "petl-search[postgres]": SQLAlchemy '
                                '>= 2.1 reads a plain postgresql:// with psycopg 3)'}


def missing_driver(url: str, exc: ImportError) -> str:
    """The one-line error for a storage URL whose database driver is not installed (its password hidden)."""
    missing = getattr(exc.__cause__, "name", None) or "its database driver"
    install = POSTGRES_INSTALL.get(missing, f"install the package that provides {missing!r}")
    return f"storage {shown_url(url)} needs the Python module {missing!r}, which is not installed: {install}"


def open_study(spec: StudySpec, *, create: bool = True) -> optuna.Study:
    """The study alone, for readers (status, reports, dashboards, exports)."""
    return open_store(spec, create=create).study


def json_norm(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=list)


def reconcile(store: Store) -> list[int]:
    """Mark the trials an interrupted driver left RUNNING as failed and `interrupted`; return their numbers.

    Call it only while holding the study's lease (so no live driver owns them). Each interrupted point is
    run again in its own role: a search point is queued (`enqueue_trial`, with its parameters and a
    `requeued_from` attribute) and the proposer hands queued trials out before anything else, so no other
    role can take it; a baseline is simply not finished, so the proposer trains it again.
    """
    study = store.study
    interrupted = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        attrs = t.user_attrs
        store.set_trial_attr(t.number, "interrupted", True)
        store.set_trial_attr(t.number, "reason", interruption_reason(
            attrs.get("kind"), attrs.get("seed"), automatic=bool(attrs.get("automatic"))))
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        if t.user_attrs.get("kind") == "search":
            study.enqueue_trial(dict(t.params), user_attrs={REQUEUED_FROM: t.number})
        interrupted.append(t.number)
    return interrupted


def upgrade(store: Store, spec: StudySpec, model_config: Any) -> int:
    """Bring a storage written by an earlier petl-search up to date (under the lease); return how many
    baseline trials it describes that did not describe themselves.

    Baseline trials once kept their preset only inside their label, and Optuna refuses to change a
    finished trial. So the study's baselines are fitted to the budget again (as the run that trained
    them did) and the study keeps, as data, which preset and arguments each baseline label stands for;
    `read_records` reads a baseline's preset from there when its trial lacks one.
    """
    fitted = fit_baselines(spec, model_config)
    known = dict(store.study.user_attrs.get(BASELINES_KEY, {}))
    known.update({f.label: {"preset": f.preset, "args": dict(f.args)} for f in fitted})
    store.study.set_user_attr(BASELINES_KEY, known)
    return sum(t.user_attrs.get("kind") == "baseline" and "preset" not in t.user_attrs
               and t.user_attrs.get("label") in known for t in store.study.get_trials(deepcopy=False))


REFERENCES_KEY = "constant_scores"  # study attribute: what a constant answer scores, per evaluation set
DEV_LABELS_KEY = "dev_labels"  # study attribute: the dev set's labels, in row order (what claims score against)


def record_references(store: Store, spec: StudySpec) -> None:
    """Keep, with the study, what a model that ignores its input scores on the search split and on dev
    (the training data's majority class, or its mean): fronts flag points at or below it; and the dev
    labels, which the report's claims score the recorded dev predictions against, so that a report needs
    the storage alone. Only the split's fields matter here, so no learning rate is needed."""
    splits = load_cached_task(spec.task, spec.data_source)
    task = get_task(spec.task)
    store.study.set_user_attr(REFERENCES_KEY, constant_references(task, splits,
                                                                  TrainConfig.from_dict(spec.split_fields)))
    if task.kind != "seq2seq":
        store.study.set_user_attr(DEV_LABELS_KEY, [label.item() if hasattr(label, "item") else label
                                                   for label in splits["validation"]["label"]])
