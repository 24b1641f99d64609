"""Between the sampler and the workers: which candidate to train next, and what its result tells Optuna.

The Optuna storage is the one source of truth. `Proposer.next()` opens a trial and returns a
`Candidate` to train; `Proposer.finish()` closes it with the trainer's record. Each trial is told
exactly once, the moment its result arrives, so a study killed at any point loses no finished trial.

The order: search points queued again after an interruption (`storage.reconcile` queues them, and
only the sampler's `ask()` takes queued trials, so they keep their role), then the baselines (created
directly in the storage: they take nothing from the queue and nothing from the sampler), then the
sampler's new points, then (when the study asks for it with `reseed:`) the front's best search points
trained again with other seeds, once every search trial has finished: a search point's claim to beat
a baseline is judged over seeds, as the baseline's is. Only points with a Δh that score above a constant
answer get them (`worth_reseeding`): a queued frozen backbone and a collapsed point claim nothing.

Points over the budget are rejected analytically and never trained: they are told to Optuna as complete,
with the metric's floor and their true size, and a positive `budget` constraint, so the sampler learns
where the budget lies (TPE, NSGA-II and GP read `trial.set_constraint`). A point that does not fit the
model (plan() refuses it: heads that divide no width, layers past its blocks) is rejected the same way,
with plan()'s reason. A point sampled twice is not trained twice and not told twice: the repeat is closed
as failed (no second observation), and its record points to the first. None of these kinds counts as a
trial of the study.

A study with `tuning` trains each baseline at every claim size, `trainings` times, each at its own setting
(language/tuning.py), instead of once at the budget. A study with `confirm` ends with a confirmation stage,
once everything else has finished: each pick its claims are about (optuna_bridge/confirm.py) is trained again
with each fresh seed, as a `confirm` trial (like a reseed: off fronts, out of the count, invisible to the
sampler); only those trainings judge the picks on dev.

The point with no Δh at all (the frozen backbone: only the task head trains) is no design of Δh: when the
sampler proposes it, it is told as infeasible, never trained (kind `empty`). Left as a point, it sat at 0
stored parameters on every front and TPE proposed it again and again (50 repeats in one held-out study). A
user who wants it as a reference queues it (`study.enqueue_trial`), and a queued point is trained as asked.

A point is a Δh design and the learning rate it trains at. A study with `train.learning_rate: {low, high}`
has the sampler suggest each search trial's rate beside its Δh point (`learning_rate`, log-uniform), so the
same design at another rate is another point. Every trial records the rate it trains at (`learning_rate`);
a reseed trains at its original's, a baseline at `baseline_learning_rate`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

import optuna

from ...core.config import PETLConfig
from ...core.errors import PETLConfigError, PETLError
from ...core.params import ParamCount, budget_text, count_params, percent
from ...training.metrics import floor
from ..language.budget import FittedBaseline, fit_baselines
from ..language.tuning import claim_sizes, study_tuning
from .confirm import picks, pending
from .pareto import pareto_front
from .records import CLAIM_SIZES_KEY, COUNTED_KINDS, TrialRecord, read_records
from .samplers import proposal_source
from .storage import REFERENCES_KEY, Store
from ..language.study import StudySpec

EMPTY_REASON = "no Δh: the frozen backbone alone (only the task head trains) is not a design of the space"
WAIT = "wait"  # next(): nothing to hand out until running trials finish (the reseeds wait for the front)
SAME_FAILURE_LIMIT = 3  # identical failures in a row, before any success, that stop the study (a setup error)
MAX_REJECTIONS = 500  # consecutive over-budget/misfit/duplicate proposals before the space is declared exhausted
# How far a point that does not fit the model is told to violate the `budget` constraint. It has no size to
# measure it by, and every trial must carry the same constraint names (GPSampler refuses a mix), so it is
# told as over the budget by a whole backbone: feasible points and those nearly within budget rank above it.
MISFIT_VIOLATION = 1.0
WAITING = optuna.trial.TrialState.WAITING
LEARNING_RATE_PARAM = "learning_rate"  # the sampled parameter of a study whose designs sample their rates
# What finish() copies from the trainer's record into the trial's attributes (what it lacks is skipped).
RECORD_KEYS = ("metrics", "dev_metrics", "evaluated_on", "params", "seconds", "steps", "throughput",
               "peak_memory_mb", "history", "device", "dev_predictions")


@dataclass(frozen=True)
class Candidate:
    number: int  # the Optuna trial number
    kind: str  # search | baseline | reseed
    label: str
    petl_config: dict[str, Any]
    seed: int
    preset: str | None = None  # baselines: the preset and its arguments, as data
    preset_args: dict[str, Any] = field(default_factory=dict)
    stored_params: int = 0  # what the scheduler ranks it on, beside its score
    learning_rate: float | None = None  # the rate it trains at (the proposer always says; None: the study's fixed one)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PlannedBaseline:
    """A baseline training still to do: the fitted point, its seed and rate, and what its trial records
    besides (a tuned one: its method, group, setting and target size)."""

    fitted: FittedBaseline
    seed: int
    learning_rate: float
    extra: Mapping[str, Any] = field(default_factory=dict)


def planned_baselines(spec: StudySpec, model_config: Any, done: list[TrialRecord]) -> list[PlannedBaseline]:
    """The baseline trainings `spec` asks for that `done` does not hold: each baseline at the budget with
    each of its seeds, or, with `tuning`, each tuning training (tuning.study_tuning)."""
    finished = {(r.label, r.seed) for r in done if r.kind == "baseline"}
    if spec.tuning:
        tuned = {(r.extra.get("tuning_group"), r.extra.get("tuning_index")) for r in done if r.kind == "baseline"}
        return [PlannedBaseline(t.fitted, spec.seed, t.learning_rate,
                                {"tuning_method": t.method, "tuning_group": t.group.label,
                                 "tuning_index": t.index, "target_size": t.group.target})
                for t in study_tuning(spec, model_config) if (t.group.label, t.index) not in tuned]
    out = []
    for baseline, fitted in zip(spec.baselines, fit_baselines(spec, model_config)):
        out += [PlannedBaseline(fitted, s, baseline_learning_rate(spec)) for s in baseline.seeds
                if (fitted.label, s) not in finished]
    return out


def confirm_bound(spec: StudySpec, sizes: list[int]) -> int:
    """At most how many confirm trainings a study runs: per claim size, the search's picks within it and
    within half of it, and the baselines' (each method's, or the best one's), each with every confirm seed."""
    if not spec.confirm:
        return 0
    searched = 2 if spec.n_trials else 0
    baselines = 0 if not spec.baselines else 1 if spec.confirm["baselines"] == "best" else len(spec.baselines)
    return len(sizes) * (searched + baselines) * len(spec.confirm["seeds"])


def constant_scores(references: Mapping[str, Mapping[str, float] | None] | None, score: str) -> dict[str, float]:
    """What a constant answer scores in `score` on each evaluation set ("search split", "dev"), from the
    study's REFERENCES_KEY attribute (storage.record_references); a set without it is left out."""
    return {where: float(scores[score]) for where, scores in (references or {}).items() if scores and score in scores}


def worth_reseeding(record: TrialRecord, constant: Mapping[str, float]) -> bool:
    """Whether a search point's claim is worth more seeds: it has a Δh (a queued frozen backbone stores 0
    parameters and so sits on every front, where it took the reseeds of the real points on RTE and MRPC),
    and it scores above a constant answer on the set it was selected on (what front.py flags as useless)."""
    if not record.stored_params:
        return False
    floor_here = constant.get(record.evaluated_on)
    return floor_here is None or record.metric > floor_here


def _count(n: int, noun: str, *, at_most: bool = False) -> str:
    """"3 reseeds", "1 reseed"; "up to 3 reseeds" for a bound (a bound of 0 is exact)."""
    return f"{'up to ' if at_most and n else ''}{n} {noun}{'' if n == 1 else 's'}"


def point_key(config: PETLConfig, learning_rate: float | None) -> tuple[str, float | None]:
    """What makes two trials the same point, for repeats: the Δh design and the rate it trains at."""
    return config.fingerprint(), learning_rate


def baseline_learning_rate(spec: StudySpec) -> float:
    """The rate a baseline trains at: the study's fixed rate; for a study whose designs sample their rates,
    for now, the geometric mean of the range (its middle on the log scale), untuned. Tuned baselines (the same
    tuning budget as the search gives a point) are to replace this."""
    span = spec.learning_rate_range
    return spec.fixed_learning_rate if span is None else span.geometric_mean


def _rate_distribution(spec: StudySpec) -> optuna.distributions.FloatDistribution:
    span = spec.learning_rate_range
    return optuna.distributions.FloatDistribution(span.low, span.high, log=True)


class Proposer:
    """Hands out candidates for one study and tells Optuna their outcomes. One per driver, which holds
    the study's lease (search/optuna_bridge/lease.py) while it runs."""

    def __init__(self, store: Store, spec: StudySpec, model_config: Any,
                 on_finish: Callable[[TrialRecord, list[TrialRecord]], None] | None = None) -> None:
        self.store, self.study = store, store.study
        self.spec, self.model_config, self.on_finish = spec, model_config, on_finish
        self.space = spec.space()
        self.sampling_budget = spec.budget if spec.budget_aware else None  # sizes within what it leaves
        self.metric_floor = floor(spec.main_metric)
        records = read_records(self.study)
        done = [r for r in records if r.kind in COUNTED_KINDS and r.state in ("COMPLETE", "PRUNED", "FAIL")
                and not r.extra.get("interrupted")]
        self.search_left = max(0, spec.n_trials - sum(r.kind == "search" for r in done))
        self.reseed_seeds = list((spec.reseed or {}).get("seeds", ()))
        self.reseeds_left = max(0, (spec.reseed or {}).get("top", 0) * len(self.reseed_seeds) - sum(
            bool(r.kind == "reseed" and r.extra.get("automatic") and r.state in ("COMPLETE", "PRUNED", "FAIL")
                 and not r.extra.get("interrupted")) for r in records))
        self.baselines = planned_baselines(spec, model_config, done)
        self.sizes = claim_sizes(spec, model_config)
        if spec.tuning or spec.confirm:  # reports read the sizes the claims are about without the model
            self.study.set_user_attr(CLAIM_SIZES_KEY, self.sizes)
        self.confirm_left = max(0, confirm_bound(spec, self.sizes) - sum(
            r.kind == "confirm" and r.state in ("COMPLETE", "PRUNED") for r in records))
        self.confirm_exact = False  # confirm_left is a bound (confirm_bound) until the picks are known
        if self.confirm_left and not (self.search_left or self.baselines or self.reseeds_left) and not any(
                r.state in ("RUNNING", "WAITING") for r in records):  # the picks are known: count exactly
            self.confirm_left = len(self._confirmations_pending(records))
            self.confirm_exact = True
        self.any_success = any(r.state == "COMPLETE" and r.kind in COUNTED_KINDS for r in records)
        self.failures: list[str] = []  # reasons of the latest failures in a row
        self.max_rejections = MAX_REJECTIONS
        self.abort: str | None = None  # set when the study cannot succeed; next() then proposes nothing
        self.known: dict[tuple[str, float | None], int] = {}  # point_key -> trial number that trained it
        for r in records:
            if r.kind in COUNTED_KINDS and r.config and r.state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING") \
                    and not r.extra.get("interrupted") and r.seed == spec.seed:
                # a trial stored before trials recorded their rate trained at the study's fixed one
                rate = r.learning_rate if r.learning_rate is not None else spec.fixed_learning_rate
                self.known.setdefault(point_key(PETLConfig.from_dict(r.config), rate), r.number)

    @property
    def remaining(self) -> int:
        """Trainings still to hand out; confirmations are counted at their most (confirm_bound)."""
        return self.search_left + len(self.baselines) + self.reseeds_left + self.confirm_left

    def remaining_text(self) -> str:
        """`remaining` by kind, in words: "6 search trials, 0 baselines, up to 30 confirmations". Reseeds and
        confirmations are counted at their most until the front and the picks are known, and say so: a total
        ("36 trials to run") read as 36 trainings where 6 were certain."""
        parts = [_count(self.search_left, "search trial"), _count(len(self.baselines), "baseline")]
        if self.spec.reseed:
            parts.append(_count(self.reseeds_left, "reseed", at_most=True))
        if self.spec.confirm:
            parts.append(_count(self.confirm_left, "confirmation", at_most=not self.confirm_exact))
        return ", ".join(parts)

    def queued(self) -> list[int]:
        """Numbers of the trials waiting in the queue (search points to run again)."""
        return [t.number for t in self.study.get_trials(deepcopy=False, states=(WAITING,))]

    def next(self) -> Candidate | str | None:
        """The next candidate to train; WAIT when the next one depends on trials still running (the
        reseeds wait for the final front); None when the study has all its trials (or must stop)."""
        if self.abort:
            return None
        if self.queued():
            if self.search_left > 0:
                return self._next_search()
            self._drop_queue()
        if self.baselines:
            planned = self.baselines.pop(0)
            return self._open_added("baseline", planned.fitted.label, planned.fitted.config, planned.seed,
                                    planned.learning_rate, fitted=planned.fitted, extra=planned.extra)
        if self.search_left > 0:
            return self._next_search()
        reseed = self._next_reseed()
        return reseed if reseed is not None else self._next_confirm()

    def _others_running(self, kinds: tuple[str, ...]) -> bool:
        # the storage's own states: this driver's trials are running whatever a reader makes of its lease
        unfinished = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING, WAITING))
        return any(t.user_attrs.get("kind", "search") in kinds for t in unfinished)

    def _confirmations_pending(self, records: list[TrialRecord]) -> list[tuple[int, int]]:
        """(trial number, seed) of the picks' confirm trainings not yet done or running."""
        budget_size = self.sizes[-1]  # resolve_sizes: the budget's size is the largest
        chosen = picks(records, self.sizes, budget_size, baselines=self.spec.confirm["baselines"])
        return pending(records, chosen, self.spec.confirm["seeds"])

    def _next_confirm(self) -> Candidate | str | None:
        """The next fresh-seed training of a pick (confirm.py), once every trial that could change the picks
        has finished; picks already confirmed with a seed, or being confirmed, are not trained again."""
        if self.confirm_left <= 0:
            return None
        if self._others_running(COUNTED_KINDS + ("reseed",)):
            return WAIT
        records = read_records(self.study)
        todo = self._confirmations_pending(records)
        if not todo:
            self.confirm_left = 0
            return None
        number, seed = todo[0]
        self.confirm_left -= 1
        original = next(r for r in records if r.number == number)
        preset = {"preset": original.preset, "preset_args": dict(original.preset_args)} if original.preset else {}
        return self._open_added("confirm", original.label, PETLConfig.from_dict(original.config), seed,
                                self.spec.trial_learning_rate(original.learning_rate), extra={"confirm_of": number},
                                preset=preset)

    def _next_reseed(self) -> Candidate | str | None:
        """The next seed of one of the front's `top` best search points (by the selected score)."""
        if self.reseeds_left <= 0:
            return None
        if self._others_running(COUNTED_KINDS):
            return WAIT
        records = read_records(self.study)
        constant = constant_scores(self.study.user_attrs.get(REFERENCES_KEY), self.spec.main_metric)
        todo = [(point, seed) for point in self.reseed_targets(records, constant) for seed in self.reseed_seeds
                if seed not in {point.seed} | {r.seed for r in records if r.kind == "reseed" and
                                               r.extra.get("reseed_of") == point.number and r.state != "FAIL"}]
        if not todo:
            self.reseeds_left = 0
            return None
        point, seed = todo[0]
        self.reseeds_left -= 1
        return self.open_reseed(point, seed, automatic=True)

    def reseed_targets(self, records: list[TrialRecord],
                       constant: Mapping[str, float] | None = None) -> list[TrialRecord]:
        """The `top` search points of the front (stored parameters vs the selected score) with the best scores,
        among those worth a seed (`worth_reseeding`; `constant`: see `constant_scores`)."""
        pool = [r for r in records if r.scored and r.kind == "search" and worth_reseeding(r, constant or {})]
        front = [pool[i] for i in pareto_front([(r.metric, -r.stored_params) for r in pool])]
        return sorted(front, key=lambda r: (-r.metric, r.stored_params))[:(self.spec.reseed or {}).get("top", 0)]

    def _next_search(self) -> Candidate:
        """The sampler's next point (a queued one first: `ask()` takes the queue before sampling)."""
        misfit = None  # the latest reason a point did not fit the model, for the error below
        for _ in range(self.max_rejections):
            queued = bool(self.queued())  # ask() takes the oldest queued trial first: a point asked for by name
            trial = self.study.ask()
            point = self._sample(trial)
            if isinstance(point, str):
                misfit = point
                self._tell_misfit(trial, point)
                continue
            config, counted, rate = point
            if counted.stored == 0 and not queued:  # queued (by a user, or again after an interruption): trained
                self._tell_misfit(trial, EMPTY_REASON, kind="empty")
                continue
            trial.set_constraint("budget", counted.stored_fraction - self.spec.budget)
            attrs = {"petl_config": config.to_dict(), "label": config.describe(), "learning_rate": rate,
                     "stored_params": counted.stored, "stored_fraction": counted.stored_fraction}
            if counted.stored_fraction > self.spec.budget:
                self._tell_unrun(trial, attrs, counted.stored, f"stores {percent(counted.stored_fraction)} of "
                                 f"the backbone, over the budget {budget_text(self.spec.budget)}")
                continue
            earlier = self.known.get(point_key(config, rate))
            if earlier is not None:
                self._tell_duplicate(trial, attrs, earlier)
                continue
            self.search_left -= 1
            self._describe(trial.number, "search", config.describe(), config, self.spec.seed, rate)
            # asked now, while the sampler still knows the trial (it forgets it once the trial is told)
            trial.set_user_attr("proposed_by", proposal_source(self.study.sampler, trial.number))
            return Candidate(trial.number, "search", config.describe(), config.to_dict(), self.spec.seed,
                             stored_params=counted.stored, learning_rate=rate)
        last = f" (the last: {misfit})" if misfit else ""
        raise PETLError(f"{self.spec.source}: the sampler proposed {self.max_rejections} points in a row that were "
                        f"over the budget {budget_text(self.spec.budget)}, already trained or did not fit the "
                        f"model{last}; widen the space, raise `budget` or take out what the model cannot hold")

    def _sample(self, trial: optuna.Trial) -> tuple[PETLConfig, ParamCount, float] | str:
        """The point `trial` samples (its Δh design, its count and the rate it trains at); or, for a point the
        model cannot hold, plan()'s reason.

        plan() checks a point against the model's geometry, which the space file cannot know; budget-aware
        sizes call it while they are sampled, count_params after. Only PETLConfigError is a property of the
        point: anything else (an unsupported model) would fail every point, and stops the study. The rate,
        when the study samples rates, is one more dimension of the same trial, so the study's sampler models
        it as any other (a queued trial gets back the rate it had)."""
        try:
            config = self.space.sample(trial, self.model_config, budget=self.sampling_budget)
            counted = count_params(config, self.model_config)
        except PETLConfigError as exc:
            return str(exc)
        span = self.spec.learning_rate_range
        rate = self.spec.fixed_learning_rate if span is None else \
            trial.suggest_float(LEARNING_RATE_PARAM, span.low, span.high, log=True)
        return config, counted, rate

    def _drop_queue(self) -> None:
        """The study needs no more search trials (n_trials was lowered): close the queued ones unrun."""
        for number in self.queued():
            trial = self.study.ask()  # takes the oldest queued trial
            trial.set_user_attr("kind", "dropped")
            trial.set_user_attr("reason", f"queued again after an interruption, but the study has its "
                                          f"{self.spec.n_trials} search trials")
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)

    def open_reseed(self, original: TrialRecord, seed: int, *, automatic: bool = False) -> Candidate:
        """A trial that trains `original`'s point again with another seed, to measure seed noise.

        It is stored, resumable and readable by reports like any trial, but its kind keeps it off fronts
        and out of the trial count; it carries no sampled parameters, so the sampler learns nothing
        from it that it did not know.
        """
        return self._open_added("reseed", original.label, PETLConfig.from_dict(original.config), seed,
                                self.spec.trial_learning_rate(original.learning_rate),  # the original's rate
                                extra={"reseed_of": original.number, **({"automatic": True} if automatic else {})})

    def _open_added(self, kind: str, label: str, config: PETLConfig, seed: int, learning_rate: float, *,
                    fitted: FittedBaseline | None = None, extra: Mapping[str, Any] | None = None,
                    preset: Mapping[str, Any] | None = None) -> Candidate:
        """A running trial created in the storage directly (not by the sampler, not from the queue), trained
        at `learning_rate`. A baseline that lies inside the space gets the parameters that sample it
        (`SearchSpace.replay`, and its rate when the study samples rates), so the sampler learns from it as
        from its own trials (MAM in the MAM neighbourhood)."""
        replayed = (self.space.replay(config, self.model_config, budget=self.sampling_budget) or {}) \
            if kind == "baseline" else {}
        if replayed and self.spec.learning_rate_range is not None:
            replayed[LEARNING_RATE_PARAM] = (_rate_distribution(self.spec), learning_rate)
        counted = count_params(config, self.model_config)
        frozen = optuna.trial.create_trial(
            state=optuna.trial.TrialState.RUNNING, params={n: v for n, (_, v) in replayed.items()},
            distributions={n: d for n, (d, _) in replayed.items()}, user_attrs=dict(extra or {}))
        frozen.set_constraint("budget", counted.stored_fraction - self.spec.budget)
        number = self.store.add_trial(frozen)
        if fitted:
            preset = {"preset": fitted.preset, "preset_args": dict(fitted.args)}
        preset = dict(preset or {})
        self._describe(number, kind, label, config, seed, learning_rate, **preset)
        return Candidate(number, kind, label, config.to_dict(), seed, stored_params=counted.stored,
                         learning_rate=learning_rate, **preset)

    def _describe(self, number: int, kind: str, label: str, config: PETLConfig, seed: int, learning_rate: float,
                  **more: Any) -> None:
        counted = count_params(config, self.model_config)
        for key, value in {"kind": kind, "label": label, "petl_config": config.to_dict(), "seed": seed,
                           "learning_rate": learning_rate, "stored_params": counted.stored,
                           "stored_fraction": counted.stored_fraction, "started": time.time(), **more}.items():
            self.store.set_trial_attr(number, key, value)
        if kind in COUNTED_KINDS and seed == self.spec.seed:  # same point, same seed as the search: known
            self.known.setdefault(point_key(config, learning_rate), number)

    def _tell_unrun(self, trial: optuna.Trial, attrs: Mapping[str, Any], stored: int, reason: str) -> None:
        for key, value in {**attrs, "kind": "over_budget", "reason": reason}.items():
            trial.set_user_attr(key, value)
        self.study.tell(trial, self._values({"metric": self.metric_floor, "stored_params": stored,
                                             "throughput": 0.0}))

    def _tell_misfit(self, trial: optuna.Trial, reason: str, *, kind: str = "misfit") -> None:
        """A point the model cannot hold (or, kind "empty", the point without Δh), told as infeasible with the
        worst values a point within the budget can have (the score's floor, the budget's size): only the
        constraint says why, so that the sampler learns to avoid the point without learning a size or score
        it never had."""
        trial.set_constraint("budget", MISFIT_VIOLATION)
        limit = round(self.spec.budget * count_params(PETLConfig(), self.model_config).backbone)
        trial.set_user_attr("kind", kind)
        trial.set_user_attr("reason", f"does not fit the model: {reason}" if kind == "misfit" else reason)
        self.study.tell(trial, self._values({"metric": self.metric_floor, "stored_params": limit, "throughput": 0.0}))

    def _tell_duplicate(self, trial: optuna.Trial, attrs: Mapping[str, Any], earlier: int) -> None:
        """A repeat adds no observation: the sampler already has the earlier trial's (a second COMPLETE
        copy would count twice in TPE's density estimates). Closed as failed, which samplers ignore."""
        for key, value in {**attrs, "kind": "duplicate", "duplicate_of": earlier,
                           "reason": f"same design point as trial {earlier}"}.items():
            trial.set_user_attr(key, value)
        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        if hasattr(self.study.sampler, "repeated"):  # counts repeats in a row (samplers.SearchStartup)
            self.study.sampler.repeated()

    def _values(self, named: Mapping[str, float]) -> list[float]:
        """The objective values in the study's order; `metric` is the selected score, whatever its name."""
        named = {**named, self.spec.main_metric: named["metric"]}
        return [float(named[o]) for o in self.spec.objectives]

    def finish(self, number: int, record: Mapping[str, Any] | None, *, stopped_reason: str | None = None,
               error: str | None = None) -> TrialRecord:
        """Tell Optuna how trial `number` ended: the trainer's record, an early stop, or a crash."""
        def attr(key: str, value: Any) -> None:
            self.store.set_trial_attr(number, key, value)

        if record is not None:
            for key in RECORD_KEYS:
                if key in record:
                    attr(key, record[key])
        if stopped_reason is not None or (record or {}).get("status") == "pruned":
            attr("reason", stopped_reason or record.get("reason"))
            self.study.tell(number, state=optuna.trial.TrialState.PRUNED)
        elif error is not None or record is None or record.get("status") == "failed":
            attr("reason", error or (record or {}).get("reason") or "no result came back")
            self.study.tell(number, state=optuna.trial.TrialState.FAIL)
        else:
            if record.get("reason"):
                attr("reason", record["reason"])
            main = record["metrics"][self.spec.main_metric]
            self.study.tell(number, self._values({"metric": main, "stored_params": record["params"]["delta_stored"],
                                                  "throughput": record.get("throughput", 0.0)}))
        records = read_records(self.study)
        finished = next(r for r in records if r.number == number)
        self._watch_failures(finished)
        if self.on_finish:
            self.on_finish(finished, records)
        return finished

    def _watch_failures(self, record: TrialRecord) -> None:
        """The same failure again and again before anything worked is a setup problem: stop and say so."""
        if record.state != "FAIL":
            self.any_success |= record.state == "COMPLETE"
            self.failures = []
            return
        self.failures.append(record.reason or "")
        recent = self.failures[-SAME_FAILURE_LIMIT:]
        if not self.any_success and len(recent) == SAME_FAILURE_LIMIT and len(set(recent)) == 1:
            self.abort = f"the first {SAME_FAILURE_LIMIT} trials failed the same way: {recent[0]}"
