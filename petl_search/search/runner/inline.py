"""Run a study in this process, one trial after another (no Ray, no early stopping), and train a
study's point again with other seeds (`reseed`). The same Proposer, storage and trainer as the Ray
runner: for debugging a study, for benchmarks that compare samplers without scheduling noise, for tests.
Each trial trains at its candidate's learning rate (a reseed at its original's).
"""
from __future__ import annotations

from typing import Callable

from ...core.errors import PETLError
from ...training.trainer import train
from ..language.budget import fit_baselines
from ..oneshot.pipeline import prepare_oneshot
from ..optuna_bridge.proposer import WAIT, Proposer
from ..optuna_bridge.records import TrialRecord, read_records, trained_trial
from ..optuna_bridge.lease import DriverLease
from ..optuna_bridge.storage import open_store, reconcile, record_references, upgrade
from ..language.study import StudySpec


def run_study_inline(spec: StudySpec, *, progress: Callable[[str], None] = print,
                     on_record: Callable[[list[TrialRecord]], None] | None = None) -> list[TrialRecord]:
    """Run `spec` in this process, one trial after another, without Ray and without early stopping.

    The same Proposer, storage and trainer as `run_study` (a one-shot study's supernet and design search
    included); for debugging a study, for benchmarks that compare samplers (no scheduling noise) and for tests.
    on_record(records) runs after each trial.
    """
    model_config = spec.model_config()  # an unknown model fails before the storage is created,
    fit_baselines(spec, model_config)  # and so does a baseline that cannot fit the budget
    store = open_store(spec)
    with DriverLease(store.study):
        reconcile(store)
        upgrade(store, spec, model_config)
        record_references(store, spec)
        if spec.strategy == "oneshot":  # the supernet and the design search, here too; then the queued designs
            prepare_oneshot(spec, store, model_config, progress=progress)
        proposer = Proposer(store, spec, model_config)
        while (candidate := proposer.next()) is not None:
            if candidate == WAIT:  # cannot happen in one process: every trial it opened has finished
                raise PETLError("the proposer waits for a running trial, but this process runs none")
            result = train(candidate.petl_config, spec.task, model=spec.model, data_dir=spec.data_source,
                           train_config=spec.train_config(candidate.seed, learning_rate=candidate.learning_rate))
            finished = proposer.finish(candidate.number, result.to_dict())
            progress(f"#{finished.number} {finished.kind} {finished.label}: {finished.state.lower()} "
                     f"{finished.metric}")
            if on_record:
                on_record(read_records(store.study))
        return read_records(store.study)


def reseed_trial(spec: StudySpec, number: int, seeds: list[int], *,
                 progress: Callable[[str], None] = print) -> list[TrialRecord]:
    """Train trial `number`'s point again with each of `seeds` (in this process), stored as `reseed` trials.

    A search trains each point once, with the study's seed, so a point that looks better than a
    baseline may be seed luck; its reseeds give it a mean ± std comparable to the baselines'. Seeds it
    already has (its own, or an earlier reseed's) are skipped, so an interrupted run is resumed by
    running it again. Returns the point's records: the original first, then every finished reseed.
    """
    store = open_store(spec, create=False)
    study = store.study
    original = trained_trial(read_records(study), number, verb="reseeded")
    if len(set(seeds)) != len(seeds):
        raise PETLError(f"--seeds repeats a seed: {seeds}")

    def measured() -> list[TrialRecord]:
        return [r for r in read_records(study) if r.kind == "reseed" and r.extra.get("reseed_of") == number
                and r.state == "COMPLETE" and not r.extra.get("interrupted")]

    with DriverLease(study):
        reconcile(store)  # a reseed killed earlier is failed here; its seed is trained again below
        have = {original.seed} | {r.seed for r in measured()}
        todo = [s for s in seeds if s not in have]
        if not todo:
            progress(f"trial {number} already has seeds {sorted(have)}: nothing to train")
        proposer = Proposer(store, spec, spec.model_config())
        for i, seed in enumerate(todo, 1):
            candidate = proposer.open_reseed(original, seed)
            progress(f"[{i}/{len(todo)}] trial #{candidate.number}: {original.label} with seed {seed}")
            try:
                result = train(candidate.petl_config, spec.task, model=spec.model, data_dir=spec.data_source,
                               train_config=spec.train_config(seed, learning_rate=candidate.learning_rate)).to_dict()
            except KeyboardInterrupt:
                proposer.finish(candidate.number, None, error="interrupted; run the same command to train it")
                raise
            finished = proposer.finish(candidate.number, result)
            progress(f"    {finished.state.lower()}: " + (f"{spec.main_metric}={finished.metric:.4f}"
                                                          if finished.metric is not None else str(finished.reason)))
    return [original] + measured()
