"""A study's Optuna storage: opening it (refusing one made from another definition), writing trial
attributes by number, and reconciling what an interrupted run left behind.
"""
from __future__ import annotations

import json
from typing import Any

import optuna

from ..core.errors import PETLError
from .records import COUNTED_KINDS
from .samplers import make_sampler
from .study import StudySpec


def open_study(spec: StudySpec, *, create: bool = True) -> optuna.Study:
    """The study's Optuna storage; refuses a storage made from a different study definition."""
    if spec.sqlite_path is not None:
        spec.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=spec.name, storage=spec.storage, sampler=make_sampler(spec))
    except KeyError:
        if not create:
            raise PETLError(f"study {spec.name!r} has no results yet in {spec.storage}; "
                            f"run `petl-search search {spec.source}` first") from None
        study = optuna.create_study(study_name=spec.name, storage=spec.storage, directions=spec.directions,
                                    sampler=make_sampler(spec))
        study.set_user_attr("spec", spec.to_dict())
        study.set_user_attr("fingerprint", spec.fingerprint())
        return study
    stored = study.user_attrs.get("spec", {})
    if study.user_attrs.get("fingerprint") != spec.fingerprint():
        changed = [k for k, v in spec.identity().items() if json_norm(stored.get(k)) != json_norm(v)]
        raise PETLError(f"study {spec.name!r} in {spec.storage} was run with a different definition "
                        f"(changed: {', '.join(changed) or 'unknown'}); give the study a new name to start "
                        f"afresh, or restore the old values to resume it")
    return study


def json_norm(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=list)


def reconcile(study: optuna.Study) -> list[int]:
    """Mark trials left RUNNING by an interrupted run as failed/interrupted; return their numbers.

    Their candidates are proposed again by the next run: baselines because they are not finished,
    search points because Optuna re-enqueues their parameters.
    """
    interrupted = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        handed_out = t.user_attrs.get("kind") in COUNTED_KINDS  # else killed while being proposed
        set_trial_attr(study, t.number, "interrupted", True)
        set_trial_attr(study, t.number, "reason", "interrupted; its point was queued again" if handed_out
                       else "interrupted while being proposed; nothing was trained")
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        if t.user_attrs.get("kind") == "search":
            study.enqueue_trial(dict(t.params))
        interrupted.append(t.number)
    return interrupted


def set_trial_attr(study: optuna.Study, number: int, key: str, value: Any) -> None:
    """Set a user attribute of a trial by number (it may have been opened by another process)."""
    storage = study._storage  # Optuna has no public by-number setter; the storage call is stable API
    storage.set_trial_user_attr(storage.get_trial_id_from_study_id_trial_number(study._study_id, number),
                                key, value)
