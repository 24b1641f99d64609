"""Run a study: Ray Tune trains candidates in parallel workers, Optuna (through `Proposer`) chooses them.

    run_study(load_study("studies/quickstart.yaml"))             # local Ray, SQLite next to the study
    run_study(spec, address="auto")                              # join a running Ray cluster

Ray Tune owns the workers and the scheduler: each trial is `run_candidate` in a worker, which reports
the study's score after every evaluation; MO-ASHA (schedulers.py) stops candidates whose (score, stored
parameters) ranks low among the others' at the same point of training. The searcher below is the only link between
Ray and Optuna, and it lives in the driver, so only the driver writes to the storage (SQLite needs a
single writer; PostgreSQL would take more, but does not need them). The one exception comes before Ray
starts: a one-shot study's stages 1-2 write from a child process while the driver waits (child.py).

The data travels with the study: the driver tokenises the task once (`trainer.encode_task`) and puts it in
Ray's object store; every trial reads it from there, so a worker node needs neither the data nor a tokenizer
run (only the package and the model). A trial whose worker is lost (its node died, or Ray lost the process)
is what a killed driver leaves behind: it stays running in the storage until the trials then running have
finished; then `reconcile` marks it interrupted and queues its point, and another round of Ray Tune runs it.
A round Ray Tune gives up on (Ray's memory monitor killed a worker Tune was starting: Tune re-raises that) is
a round whose running trials were all lost, and goes on the same way (`_fit`).
"""
from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from ...core.errors import Interrupted, PETLError
from ...core.params import budget_text, percent
from ...training.config import TrainConfig
from ...training.metrics import floor
from ...training.tasks import get_task, load_cached_task
from ...training.trainer import EncodedTask, encode_task, train
from ..language.budget import fit_baselines
from ..optuna_bridge.proposer import WAIT, Proposer
from ..optuna_bridge.records import TrialRecord, read_records
from .schedulers import MOASHA
from ..optuna_bridge.lease import DriverLease
from ..oneshot.pipeline import run_oneshot_stages
from ..optuna_bridge.storage import REQUEUED_FROM, open_store, reconcile, record_references, upgrade
from ..language.study import StudySpec, objective_note

SCORE = "score"  # the key every report carries: the task metric (on the dev subset, then the full dev set)
TrialCallback = Callable[[TrialRecord, list[TrialRecord]], None]
LOST = "worker_lost"  # a trial's attribute: why Ray lost its worker (or its node) while it trained
IDLE_ROUNDS = 2  # rounds in a row that lose trials and finish none: the study stops (something kills workers)


def run_candidate(config: dict[str, Any], data: EncodedTask | None = None) -> None:
    """Ray Tune trainable: train one candidate, report each evaluation, then the full record. `data`: the task as
    the driver tokenised it (through Ray's object store); without it the worker loads and tokenises the task."""
    from ray import tune

    cand, run = config["candidate"], config["run"]

    def on_eval(step: int, scores: dict[str, float]) -> bool:
        tune.report({SCORE: scores[run["main_metric"]], "step": step})
        return False  # stopping is the scheduler's call: Ray ends this function at the report

    try:
        # the trial's own rate: run["train"] holds the study's `train` block, a range when designs sample rates
        rate = {} if cand.get("learning_rate") is None else {"learning_rate": cand["learning_rate"]}
        train_config = TrainConfig.from_dict({**run["train"], "seed": cand["seed"], **rate})
        result = train(cand["petl_config"], run["task"], model=run["model"], data_dir=run["data_dir"],
                       encoded=data, train_config=train_config, on_eval=on_eval)
        record = result.to_dict()
    except Exception as exc:  # recorded as the trial's failure reason, with where it happened
        where = traceback.extract_tb(exc.__traceback__)[-1]
        record = {"status": "failed", "reason": f"{type(exc).__name__}: {exc} ({Path(where.filename).name}:"
                                                  f"{where.lineno})"}
    score = (record.get("metrics") or {}).get(run["main_metric"], floor(run["main_metric"]))
    tune.report({SCORE: score, "step": record.get("steps", 0), "record": json.dumps(record)})


def _searcher_class() -> type:
    from ray.tune.search import Searcher

    class StudySearcher(Searcher):
        """Ray's view of a Proposer: suggest() opens an Optuna trial, on_trial_complete() closes it."""

        def __init__(self, proposer: Proposer, run: dict[str, Any], *, samples: int | None = None,
                     say: Callable[[str], None] = print) -> None:
            super().__init__(metric=SCORE, mode="max")
            self.proposer, self.run, self.say = proposer, run, say
            self.numbers: dict[str, int] = {}  # Ray's trial id -> the Optuna trial it trains, while it runs
            self.last: dict[str, dict[str, Any]] = {}
            self.samples = samples  # the round's num_samples: once handed out, Ray asks for no more
            self.handed = 0
            self.done = False  # nothing more to hand out this round (not the same as Ray stopping the round)
            self.lost: list[int] = []  # trials whose worker was lost: still running in the storage
            self.told = 0  # trials told to the proposer (finished, failed or stopped)

        def suggest(self, trial_id: str) -> dict[str, Any] | None:
            candidate = self.proposer.next()
            if candidate is None or (candidate == WAIT and not self.numbers):
                # WAIT with nothing of this round running: the trials it waits for were lost; the next round
                # runs them again (asking again would wait for ever)
                self.done = True
                return Searcher.FINISHED
            if candidate == WAIT:
                return None  # Ray asks again when a running trial has finished
            self.numbers[trial_id] = candidate.number
            self.handed += 1
            self.done = self.samples is not None and self.handed >= self.samples
            return {"candidate": candidate.to_dict(), "run": self.run}

        @property
        def ended_with_losses(self) -> bool:
            """Whether the round handed out all it had and ended with trials lost (not stopped by a Ctrl-C or a
            time budget, which leave trials of the round running): another round must run them."""
            return bool(self.lost) and self.done and not self.numbers

        def save(self, checkpoint_path: str) -> None:
            """Nothing to save: the Optuna storage holds the state, written as each trial ends."""

        def __reduce__(self) -> tuple:
            # Ray's Tuner pickles its search algorithm into the run's folder, for Tuner.restore, which a
            # study never uses (its storage resumes it). The proposer holds the live study, whose sampler
            # need not pickle (Optuna 5.1's NSGA-II holds a thread lock), so a stand-in is pickled instead.
            return _unrestorable, (self.run["ray_dir"],)

        def restore(self, checkpoint_path: str) -> None:
            """Nothing to restore: `reconcile` and the storage resume a study."""

        def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
            self.last[trial_id] = result

        def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
            number = self.numbers.pop(trial_id, None)
            if number is None:
                return
            result = result or self.last.pop(trial_id, None) or {}
            if error:  # run_candidate reports every exception of training: the worker itself is gone
                self._lost(number)
                return
            self.told += 1
            if "record" in result:
                self.proposer.finish(number, json.loads(result["record"]))
            else:
                self.proposer.finish(number, None, stopped_reason=(
                    f"stopped early by MO-ASHA at step {result.get('step', '?')}: {self.run['main_metric']} "
                    f"{result.get(SCORE, float('nan')):.4f} at its size ranked below the best 1/η of the trials "
                    f"at that point"))

        def abandon(self, why: str) -> None:
            """Ray Tune gave this round up (`_fit`): every trial it was running is lost, and nothing more is
            handed out in it."""
            self.say(f"Ray Tune stopped the round: {why}")
            for trial_id in list(self.numbers):
                self._lost(self.numbers.pop(trial_id), why=f"Ray killed its worker ({why})")
            self.done = True

        def _lost(self, number: int, why: str = "its worker was lost (its node died, or Ray lost the process)") -> None:
            """Trial `number`'s worker is gone (its node died, or the process did): left running in the storage,
            so that it is interrupted and run again after this round, as a killed driver's trials are. A point
            lost before (a queued point whose first trial was lost too) fails instead: it may kill its worker."""
            trials = {t.number: t for t in self.proposer.study.get_trials(deepcopy=False)}
            attrs = trials[number].user_attrs
            before = attrs.get(REQUEUED_FROM)
            what = f"#{number} {attrs.get('kind', 'search')} {attrs.get('label', '')}".rstrip()
            if before is not None and trials[before].user_attrs.get(LOST):
                self.told += 1
                self.proposer.finish(number, None, error=(
                    f"its worker was lost twice (trial #{before} trained the same point): the point may kill its "
                    f"worker (memory?); see the Ray logs under {self.run['ray_dir']}"))
                return
            self.proposer.store.set_trial_attr(number, LOST, why)  # reconcile gives it its reason after the round
            self.lost.append(number)
            self.say(f"{what}: {why}; it runs again once the trials running now have finished")

    return StudySearcher


def _fit(tuner: Any, searcher: Any) -> bool:
    """Run one round; True when Ray Tune gave the round up because Ray killed a worker it was starting or
    driving (its memory monitor, mostly: Tune 2.x re-raises that as a RuntimeError instead of failing the trial).
    The round's running trials are then lost, as a dead node's are, and the next round runs them again."""
    from ray.exceptions import RayError

    try:
        tuner.fit()
        return False
    except RuntimeError as exc:
        if not isinstance(exc.__cause__, RayError):
            raise
        searcher.abandon(str(exc.__cause__).splitlines()[0])
        return True


def _unrestorable(ray_dir: str) -> None:
    """What a pickled StudySearcher becomes when Ray unpickles it (see StudySearcher.__reduce__)."""
    raise PETLError(f"the Ray run under {ray_dir} cannot be restored with Tuner.restore: a study resumes from "
                    f"its storage; run `petl-search search` with the same study file again")


def trial_line(record: TrialRecord) -> str:
    """One finished trial in words (the CLI prints a richer line with the front so far)."""
    outcome = (f"{record.metric:.4f} at {percent(record.stored_fraction)}" if record.metric is not None
               else f"{record.state.lower()}: {record.reason}")
    rate = "" if record.learning_rate is None else f", lr {record.learning_rate:.3g}"
    again = next((f" of #{record.extra[k]}" for k in ("confirm_of", "reseed_of") if k in record.extra), "")
    return f"#{record.number} {record.kind}{again} {record.label} (seed {record.seed}{rate}): {outcome}"


def run_study(spec: StudySpec, *, address: str | None = None, progress: Callable[[str], None] = print,
              on_trial: TrialCallback | None = None, time_budget_s: float | None = None) -> list[TrialRecord]:
    """Run (or resume) `spec` until it has n_trials search trials and every baseline; return its records.

    progress(line) hears what the driver does; on_trial(record, records) hears each finished trial
    (default: one line through `progress`). time_budget_s: stop after so many seconds of Ray Tune (the
    trials still running then are interrupted, and the next run resumes them): the run returns, and its
    last line says the budget ended it. Stopped by the user (Ctrl-C) instead, it raises `Interrupted`, so
    that the CLI exits 130, not 0: a script must not take an interrupted study for a finished one.
    """
    from datasets.utils.logging import disable_progress_bar

    model_config = spec.model_config()  # an unknown model fails here, at once, naming the study file
    fit_baselines(spec, model_config)  # so does a baseline that cannot fit the budget, before any storage
    disable_progress_bar()
    load_cached_task(spec.task, spec.data_source)  # missing data fails here, once (and is encoded from it later)
    store = open_store(spec)
    with DriverLease(store.study):
        interrupted = reconcile(store)
        if interrupted:
            progress(f"resuming: trials {interrupted} were interrupted; their points are queued again")
        upgrade(store, spec, model_config)
        record_references(store, spec)
        if spec.strategy == "oneshot":  # stages 1-2 in a child process; the queued designs are trained below
            run_oneshot_stages(spec, store, model_config, progress=progress)
        on_finish = on_trial or (lambda record, records: progress(trial_line(record)))
        proposer = Proposer(store, spec, model_config, on_finish=on_finish)
        if proposer.remaining == 0:
            progress(f"study {spec.name} already has its {spec.n_trials} trials and baselines")
            return read_records(store.study)
        progress(f"study {spec.name}: {proposer.remaining_text()} to run ({spec.concurrency} at a time), "
                 f"{objective_note(spec)}, budget {budget_text(spec.budget)} ({spec.model}), "
                 f"storage {spec.storage_shown}")
        start = time.monotonic()
        proposer = _tune(spec, store, proposer, encode_study_data(spec, progress), address=address,
                         time_budget_s=time_budget_s, progress=progress,
                         renew=lambda: Proposer(store, spec, model_config, on_finish=on_finish))
        elapsed = time.monotonic() - start
        records = read_records(store.study)
    if proposer.abort:
        raise PETLError(f"study {spec.name} stopped: {proposer.abort}")
    # Ctrl-C or the time budget: Ray stops the trials and returns; the storage keeps every finished one
    cut_short = [r.number for r in records if r.state in ("RUNNING", "INTERRUPTED")]
    why = stopped_early(proposer.remaining + len(cut_short), elapsed, time_budget_s)
    if why is not None:
        message = stop_message(spec.name, why, time_budget_s, proposer.remaining_text(), cut_short)
        if why == INTERRUPTED:
            raise Interrupted(message)
        progress(message)
    return records


INTERRUPTED, TIME_BUDGET = "interrupted", "time budget"  # why a run ended with work left (stopped_early)


def stopped_early(left: int, elapsed: float, time_budget_s: float | None) -> str | None:
    """Why Ray Tune returned with `left` trainings still to do after `elapsed` seconds of `_tune`: None when
    none is left (the study is done), TIME_BUDGET when the run lasted its `time_budget_s`, else INTERRUPTED
    (Ctrl-C: Ray catches SIGINT, stops its trials and returns as from a finished run).

    What fit() returns says neither (Ray 2.60 keeps its interrupt flag inside tune.run), so the clock tells:
    Ray's budget clock starts at its first check, after `_tune` has started, so a run its budget stopped has
    always lasted `time_budget_s` here. A Ctrl-C in the last seconds of a budget (within Ray's start-up time)
    reads as the budget: the run ends normally, and the next run resumes it as it would either way."""
    if left <= 0:
        return None
    if time_budget_s is not None and elapsed >= time_budget_s:
        return TIME_BUDGET
    return INTERRUPTED


def stop_message(name: str, why: str, time_budget_s: float | None, remaining: str, cut_short: list[int]) -> str:
    """What a run stopped early says: why, what it left (`remaining`: Proposer.remaining_text; the trials
    `cut_short` run again first) and how to go on."""
    cause = (f"the time budget ({time_budget_s:g} s) ended study {name}" if why == TIME_BUDGET
             else f"study {name} interrupted")
    cut = "" if not cut_short else (f"trial{'s' if len(cut_short) > 1 else ''} {', '.join(f'#{n}' for n in cut_short)} "
                                    f"cut short (run again first) and ")
    return (f"{cause} with {cut}{remaining} still to run: run the same command to resume (not Ray's "
            f"Tuner.restore: the study's storage is what resumes)")


def run_settings(spec: StudySpec, ray_dir: Path) -> dict[str, Any]:
    """What every worker of the study reads beside its candidate (`run_candidate`'s config["run"]): plain data.
    `train` is the study's block as written (a range when designs sample rates: each candidate brings its own)."""
    return {"task": spec.task, "model": spec.model, "data_dir": spec.data_source,
            "train": {**spec.train, **spec.split_fields, "threads": spec.threads}, "main_metric": spec.main_metric,
            "ray_dir": str(ray_dir)}


def trial_resources(spec: StudySpec) -> dict[str, float]:
    """What each trial asks Ray for: the study's CPUs and GPUs, and its custom resources (`resources: {worker: 1}`
    keeps trials on the nodes started with that resource)."""
    return {"cpu": spec.cpus, "gpu": spec.gpus, **spec.custom_resources}


def check_resources(spec: StudySpec, cluster: dict[str, float]) -> None:
    """A custom resource that no node of the cluster has would leave every trial waiting for ever: say so."""
    for name, amount in spec.custom_resources.items():
        if cluster.get(name, 0) < amount:
            raise PETLError(f"{spec.source}: resources.{name} is {amount:g} per trial, but the Ray cluster has "
                            f"{cluster.get(name, 0):g} {name} (it has {sorted(cluster)}): start its worker nodes "
                            f"with `ray start --address HEAD:6379 --resources '{{\"{name}\": 1}}'`")


def encode_study_data(spec: StudySpec, progress: Callable[[str], None] = print) -> EncodedTask:
    """The study's task tokenised once, for every trial (seeds and rates change neither the rows nor their tokens)."""
    rate = None if spec.fixed_learning_rate is not None else spec.learning_rate_range.low
    start = time.perf_counter()
    encoded = encode_task(spec.task, spec.model, spec.train_config(spec.seed, learning_rate=rate), spec.data_source)
    sizes = ", ".join(f"{len(split):,} {name}" for name, split in (
        ("training", encoded.train), ("search split" if spec.search_split else "dev", encoded.select),
        ("dev", encoded.dev)) if split is not None)
    progress(f"data: {get_task(spec.task).name} tokenised once for every trial ({sizes} rows) in "
             f"{time.perf_counter() - start:.1f} s; the trials read it from Ray's object store")
    return encoded


def _tune(spec: StudySpec, store: Any, proposer: Proposer, encoded: EncodedTask, *, address: str | None,
          time_budget_s: float | None, progress: Callable[[str], None], renew: Callable[[], Proposer]) -> Proposer:
    """Ray Tune trains what the proposer hands out, `spec.concurrency` trials at a time, each reading `encoded`
    from the object store. A round that lost trials is followed by another (`renew` makes its proposer, after
    `reconcile` has queued what was lost); returns the last round's proposer."""
    import ray
    from ray import tune

    ray_dir = (spec.folder / "ray").resolve()
    run = run_settings(spec, ray_dir)
    own_ray = not ray.is_initialized()
    if own_ray:
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no tables; we print progress
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        check_resources(spec, ray.cluster_resources())
        data = ray.put(encoded)  # once: every trial of every round reads this copy
        del encoded
        trainable = tune.with_resources(tune.with_parameters(run_candidate, data=data), trial_resources(spec))
        start, idle = time.monotonic(), 0
        while True:
            left = None if time_budget_s is None else time_budget_s - (time.monotonic() - start)
            searcher = _searcher_class()(proposer, run, samples=proposer.remaining, say=progress)
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=searcher, scheduler=make_scheduler(spec), num_samples=proposer.remaining,
                    max_concurrent_trials=spec.concurrency, reuse_actors=True, time_budget_s=left),
                run_config=tune.RunConfig(name=f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                                          storage_path=str(ray_dir), verbose=0))
            aborted = _fit(tuner, searcher)
            out_of_time = time_budget_s is not None and time.monotonic() - start >= time_budget_s
            if not (searcher.ended_with_losses or aborted) or proposer.abort or out_of_time:
                return proposer
            idle = 0 if searcher.told else idle + 1
            if idle >= IDLE_ROUNDS:
                raise PETLError(f"study {spec.name} stopped: {IDLE_ROUNDS} rounds in a row lost the workers of all "
                                f"their trials (last: {', '.join(f'#{n}' for n in searcher.lost)}) and finished "
                                f"none; see the Ray logs under {ray_dir}, then run the same command to resume")
            reconcile(store)  # the lost trials: interrupted, their points queued (as after a killed driver)
            proposer = renew()
            progress(f"trials {', '.join(f'#{n}' for n in searcher.lost)} lost their workers: running them "
                     f"again ({proposer.remaining_text()} to run)")
    finally:
        if own_ray:
            ray.shutdown()


def evaluations(spec: StudySpec) -> int:
    """How many times a trial reports to the scheduler: each evaluation during training, then the last."""
    steps = spec.train.get("max_steps", TrainConfig.max_steps)
    every = spec.train.get("eval_every", TrainConfig.eval_every)
    return (steps - 1) // every + 1  # the last step has no evaluation of its own: the final one is it


def make_scheduler(spec: StudySpec) -> Any:
    """MO-ASHA on (score, stored parameters) when the study stops early, else every trial runs to the end."""
    from ray.tune.schedulers import FIFOScheduler

    if not spec.early_stopping:
        return FIFOScheduler()
    reports = evaluations(spec)
    return MOASHA(metric=SCORE, max_t=reports, grace_period=min(spec.early_stopping["grace_evals"], reports),
                  reduction_factor=spec.early_stopping["reduction_factor"])
