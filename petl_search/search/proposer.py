"""Between the sampler and the workers: which candidate to train next, and what its result tells Optuna.

The Optuna storage is the one source of truth. `Proposer.next()` opens a trial and returns a
`Candidate` to train (baselines first, then the sampler's points); `Proposer.finish()` closes it with
the trainer's record. Each trial is told exactly once, the moment its result arrives, so a study killed
at any point loses no finished trial, and `reconcile` (run when a study is opened again) re-queues the
trials that were running, under new numbers, marking the old ones `interrupted`.

Points over the budget are rejected analytically and never trained: they are told to Optuna as complete,
with the metric's floor and their true size, and a positive `budget` constraint, so the sampler learns
where the budget lies (TPE, NSGA-II and GP read `trial.set_constraint`). A point sampled twice is not
trained twice: the earlier outcome (result, early stop or failure) is told again. Neither kind counts
as a trial of the study.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

import optuna

from ..core.config import PETLConfig
from ..core.errors import PETLError
from ..core.params import count_params
from ..training.metrics import floor
from .budget import fit_to_budget
from .records import COUNTED_KINDS, TrialRecord, read_records
from .storage import set_trial_attr
from .study import StudySpec

SAME_FAILURE_LIMIT = 3  # identical failures in a row, before any success, that stop the study (a setup error)
MAX_REJECTIONS = 500  # consecutive over-budget/duplicate proposals before the space is declared exhausted


@dataclass(frozen=True)
class Candidate:
    number: int  # the Optuna trial number
    kind: str  # search | baseline
    label: str
    petl_config: dict[str, Any]
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Proposer:
    """Hands out candidates for one study and tells Optuna their outcomes."""

    def __init__(self, study: optuna.Study, spec: StudySpec, model_config: Any,
                 on_finish: Callable[[TrialRecord, list[TrialRecord]], None] | None = None) -> None:
        self.study, self.spec, self.model_config, self.on_finish = study, spec, model_config, on_finish
        self.space = spec.space()
        self.metric_floor = floor(spec.main_metric)
        records = read_records(study)
        done = [r for r in records if r.kind in COUNTED_KINDS and r.state in ("COMPLETE", "PRUNED", "FAIL")
                and not r.extra.get("interrupted")]
        self.search_left = max(0, spec.n_trials - sum(r.kind == "search" for r in done))
        finished_baselines = {(r.label, r.seed) for r in done if r.kind == "baseline"}
        self.baselines: list[tuple[str, PETLConfig, int]] = []
        for baseline in spec.baselines:
            config, label = fit_to_budget(baseline, spec.budget, model_config)
            self.baselines += [(label, config, s) for s in baseline.seeds if (label, s) not in finished_baselines]
        self.any_success = any(r.state == "COMPLETE" and r.kind in COUNTED_KINDS for r in records)
        self.failures: list[str] = []  # reasons of the latest failures in a row
        self.max_rejections = MAX_REJECTIONS
        self.abort: str | None = None  # set when the study cannot succeed; next() then proposes nothing
        self.known: dict[str, int] = {}  # config fingerprint -> trial number that trained it
        for r in records:
            if r.kind in COUNTED_KINDS and r.config and r.state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING") \
                    and not r.extra.get("interrupted") and r.seed == spec.seed:
                self.known.setdefault(PETLConfig.from_dict(r.config).fingerprint(), r.number)

    @property
    def remaining(self) -> int:
        return self.search_left + len(self.baselines)

    def next(self) -> Candidate | None:
        """The next candidate to train, or None when the study has all its trials (or must stop)."""
        if self.abort:
            return None
        if self.baselines:
            label, config, seed = self.baselines.pop(0)
            trial = self.study.ask()
            self._place_in_space(trial, config)
            return self._open(trial, "baseline", label, config, seed)
        if self.search_left <= 0:
            return None
        for _ in range(self.max_rejections):
            trial = self.study.ask()
            config = self.space.sample(trial, self.model_config)
            counted = count_params(config, self.model_config)
            trial.set_constraint("budget", counted.stored_fraction - self.spec.budget)
            attrs = {"petl_config": config.to_dict(), "label": config.describe(),
                     "stored_params": counted.stored, "stored_fraction": counted.stored_fraction}
            if counted.stored_fraction > self.spec.budget:
                self._tell_unrun(trial, "over_budget", attrs, counted.stored,
                                 f"stores {counted.stored_fraction:.4%} of the backbone, over the budget "
                                 f"{self.spec.budget:.4%}")
                continue
            earlier = self.known.get(config.fingerprint())
            if earlier is not None:
                self._tell_duplicate(trial, attrs, earlier)
                continue
            self.search_left -= 1
            return self._open(trial, "search", config.describe(), config, self.spec.seed)
        raise PETLError(f"the sampler proposed {self.max_rejections} points in a row that were over the budget "
                        f"{self.spec.budget:.4%} or already trained; widen the space or raise the budget")

    def _open(self, trial: optuna.Trial, kind: str, label: str, config: PETLConfig, seed: int) -> Candidate:
        counted = count_params(config, self.model_config)
        if kind != "search":  # a search point's constraint was set when it was sampled
            trial.set_constraint("budget", counted.stored_fraction - self.spec.budget)
        for key, value in {"kind": kind, "label": label, "petl_config": config.to_dict(), "seed": seed,
                           "stored_params": counted.stored, "stored_fraction": counted.stored_fraction,
                           "started": time.time()}.items():
            trial.set_user_attr(key, value)
        if seed == self.spec.seed:  # the search trains at the study's seed: same point, same seed = known
            self.known.setdefault(config.fingerprint(), trial.number)
        return Candidate(trial.number, kind, label, config.to_dict(), seed)

    def _place_in_space(self, trial: optuna.Trial, config: PETLConfig) -> None:
        """Give a baseline that lies inside the space the parameters that sample it, so the sampler learns
        from it as from its own trials (e.g. MAM in the MAM neighbourhood). One outside the space keeps
        no parameters: the sampler sees its objectives only. The parameters are written as Optuna's own
        suggest would write them (the storage call `Trial.suggest_*` makes), without sampling anything."""
        replayed = self.space.replay(config, self.model_config)
        if replayed is None:
            return
        storage = self.study._storage
        for name, (distribution, value) in replayed.items():
            storage.set_trial_param(trial._trial_id, name, distribution.to_internal_repr(value), distribution)

    def open_reseed(self, original: TrialRecord, seed: int) -> Candidate:
        """A trial that trains `original`'s point again with another seed, to measure seed noise.

        It is told like any trial (so it is stored, resumable and readable by reports) but its kind keeps
        it off fronts and out of the trial count; the sampler sees one more trial with no sampled
        parameters, as it does for a baseline.
        """
        trial = self.study.ask()
        trial.set_user_attr("reseed_of", original.number)
        return self._open(trial, "reseed", original.label, PETLConfig.from_dict(original.config), seed)

    def _tell_unrun(self, trial: optuna.Trial, kind: str, attrs: Mapping[str, Any], stored: int,
                    reason: str) -> None:
        for key, value in {**attrs, "kind": kind, "reason": reason}.items():
            trial.set_user_attr(key, value)
        self.study.tell(trial, self._values({"metric": self.metric_floor, "stored_params": stored,
                                             "throughput": 0.0}))

    def _tell_duplicate(self, trial: optuna.Trial, attrs: Mapping[str, Any], earlier: int) -> None:
        previous = self.study.get_trials(deepcopy=False)[earlier]
        for key, value in {**attrs, "kind": "duplicate", "duplicate_of": earlier,
                           "reason": f"same design point as trial {earlier}"}.items():
            trial.set_user_attr(key, value)
        if previous.state == optuna.trial.TrialState.COMPLETE:
            self.study.tell(trial, previous.values)
        elif previous.state == optuna.trial.TrialState.PRUNED:  # stopped early once: not worth a second run
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:  # failed (it would again) or still running (nothing to learn yet)
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)

    def _values(self, named: Mapping[str, float]) -> list[float]:
        return [float(named[o]) for o in self.spec.objectives]

    def finish(self, number: int, record: Mapping[str, Any] | None, *, stopped_reason: str | None = None,
               error: str | None = None) -> TrialRecord:
        """Tell Optuna how trial `number` ended: the trainer's record, an early stop, or a crash."""
        def attr(key: str, value: Any) -> None:
            set_trial_attr(self.study, number, key, value)

        if record is not None:
            for key in ("metrics", "params", "seconds", "steps", "throughput", "peak_memory_mb", "history", "device"):
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
            main = record["metrics"][record["main_metric"]]
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
