"""A study's trials as plain records, read from its Optuna storage (the one source of truth).

A record's `kind` says where it came from:
    search       proposed by the sampler and trained
    baseline     a preset evaluated as a reference point
    over_budget  proposed by the sampler, rejected analytically (never trained; feeds the sampler)
    misfit       proposed by the sampler, refused by the model's geometry (heads that do not divide a
                 width, layers past its blocks): never trained; told to the sampler as infeasible
    duplicate    proposed again: the earlier trial's result was reused (never trained twice)
    empty        proposed by the sampler with no Δh at all (the frozen backbone): not a design, never trained;
                 told to the sampler as infeasible
    reseed       a trained point trained again with another seed (`petl-search reseed`): evidence about
                 seed noise, so it has a metric but is never a point of a front
    confirm      a pick of the study's claims trained again with a fresh seed (`confirm:`): only these judge
                 the picks on dev; like a reseed, never a point of a front

The search (resume, the proposer) and the analysis (fronts, reports, dashboards) read the same records.
Neither torch nor Ray is imported.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable

from ...core.errors import PETLError
from .lease import LEASE_KEY, lease_alive

COUNTED_KINDS = ("search", "baseline")  # the points of a study: what the sampler and the baselines trained
MEASURED_KINDS = COUNTED_KINDS + ("reseed", "confirm")  # everything trained, so everything with a metric
BASELINES_KEY = "baselines"  # study attribute: {label: {"preset", "args"}}, written by storage.upgrade
CLAIM_SIZES_KEY = "claim_sizes"  # study attribute: a study's claim sizes in stored parameters (budget's last)
DESIGN_KEY = "oneshot_design"  # a one-shot study's queued trial: the design (search/oneshot/pipeline.py) it trains


@dataclass(frozen=True)
class OneShotStage:
    """What a one-shot study's first two stages did (search/oneshot/pipeline.py reads it), for reports: `inherited`
    maps each design queued for stand-alone training, by its number in the design study, to its
    inherited score."""

    supernet_steps: int
    adapt_steps: int
    eval_examples: int | None
    designs_scored: int
    inherited: dict[int, float]


@dataclass(frozen=True)
class TrialRecord:
    number: int
    # Optuna's COMPLETE | PRUNED | FAIL | RUNNING | WAITING, and INTERRUPTED: running in the storage, but the
    # driver that ran it is gone (the next `search` queues its point again)
    state: str
    kind: str
    label: str  # baseline label, or the config's short description
    metric: float | None  # the score the study selects on (its first objective), on `evaluated_on`
    stored_params: int | None
    stored_fraction: float | None
    config: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    seed: int | None = None
    seconds: float | None = None
    preset: str | None = None  # a baseline's preset and the arguments it was built with (data, not a label)
    preset_args: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)  # every score on the set it was judged on
    dev_scores: dict[str, float] = field(default_factory=dict)  # the official dev set, once trained (if held out)
    evaluated_on: str = "dev"  # what `metric` and `scores` come from: "search split" or "dev"
    finished_at: float | None = None  # when Optuna was told its outcome (a timestamp; None if not yet)
    # the rate it trained at; None for a trial stored before trials recorded it, which trained at the study's
    # fixed rate (`fill_learning_rates`, `StudySpec.trial_learning_rate`)
    learning_rate: float | None = None
    proposed_by: str | None = None  # a search trial's proposer: startup | model | fallback | random (samplers.py)
    extra: dict[str, Any] = field(default_factory=dict)  # every other user attribute

    @property
    def scored(self) -> bool:
        """Trained to the end with a metric: may sit on a front."""
        return self.state == "COMPLETE" and self.kind in COUNTED_KINDS and self.metric is not None

    @property
    def head_params(self) -> int | None:
        """Parameters of the task head trained with the point (BERT's pooler + classifier), as the trainer
        counted them on the modules it trained (`params.head`); outside the budget, which is on Δh. None
        when the trial recorded no trainer report (never trained, or stopped before one came back)."""
        return (self.extra.get("params") or {}).get("head")


PROPOSAL_INTERRUPTED = "interrupted while being proposed; nothing was trained"


def interruption_reason(kind: str | None, seed: int | None = None, *, automatic: bool = False) -> str:
    """The reason a trial its driver left running is failed with (storage.reconcile), by what the trial was:
    a point of the study is queued again; a reseed was training its seed, which its command trains again
    (the study's search for an automatic one); anything else was killed before it was handed out."""
    if kind in COUNTED_KINDS:
        return "interrupted; its point was queued again"
    if kind == "confirm":
        return f"interrupted while confirming with seed {seed}; resuming the study trains it again"
    if kind == "reseed":
        again = "resuming the study (`petl-search search`)" if automatic else "`petl-search reseed` with that seed"
        return f"interrupted while training seed {seed} again; {again} trains it again"
    return PROPOSAL_INTERRUPTED


def counts(records: Iterable[TrialRecord]) -> dict[str, int]:
    """How many trials of each outcome: completed, pruned, failed, running, interrupted (running when their
    driver died), queued (waiting to run again), over_budget, misfit, duplicate, dropped (queued, then not
    needed), reseed, empty (the point without Δh, never trained), confirm (fresh-seed trainings of picks)."""
    out = {"completed": 0, "pruned": 0, "failed": 0, "running": 0, "interrupted": 0, "queued": 0,
           "over_budget": 0, "misfit": 0, "duplicate": 0, "dropped": 0, "reseed": 0,
           "empty": 0, "confirm": 0}
    for r in records:
        if r.state == "INTERRUPTED":  # whatever its kind: a proposal killed half-made is listed as one too
            out["interrupted"] += 1
        elif r.kind in ("over_budget", "misfit", "duplicate", "dropped", "empty"):
            out[r.kind] += 1
        elif r.extra.get("interrupted"):
            continue  # re-queued; its rerun is a separate trial
        elif r.kind in ("reseed", "confirm"):
            out[r.kind] += r.state == "COMPLETE"
        elif r.state == "COMPLETE":
            out["completed"] += 1
        elif r.state == "PRUNED":
            out["pruned"] += 1
        elif r.state == "FAIL":
            out["failed"] += 1
        elif r.state == "WAITING":
            out["queued"] += 1
        else:
            out["running"] += 1
    return out


def read_records(study: Any) -> list[TrialRecord]:
    """TrialRecords from an Optuna study (its storage is the one source of truth)."""
    study_attrs = study.user_attrs
    driver_alive = lease_alive(study_attrs.get(LEASE_KEY))
    baselines = study_attrs.get(BASELINES_KEY, {})  # presets of baselines stored before trials kept them
    records = []
    for t in study.get_trials(deepcopy=False):
        attrs = dict(t.user_attrs)
        kind = attrs.pop("kind", "search")
        values = t.values if t.state.name == "COMPLETE" and kind in MEASURED_KINDS else None
        state = "INTERRUPTED" if t.state.name == "RUNNING" and not driver_alive else t.state.name
        reason = attrs.pop("reason", None)
        if kind == "reseed" and attrs.get("interrupted") and reason == PROPOSAL_INTERRUPTED:
            # written by a reconcile that took every trial not of COUNTED_KINDS for an unfinished proposal
            reason = interruption_reason(kind, attrs.get("seed"), automatic=bool(attrs.get("automatic")))
        if kind == "baseline" and "preset" not in attrs and attrs.get("label") in baselines:
            attrs["preset"] = baselines[attrs["label"]]["preset"]
            attrs["preset_args"] = baselines[attrs["label"]]["args"]
        _name_legacy_pfeiffer(attrs)
        records.append(TrialRecord(
            number=t.number, state=state, kind=kind, label=attrs.pop("label", ""),
            metric=values[0] if values else None,
            stored_params=attrs.get("stored_params"), stored_fraction=attrs.get("stored_fraction"),
            config=attrs.pop("petl_config", {}), reason=reason, seed=attrs.pop("seed", None),
            seconds=(attrs.get("seconds") or {}).get("total"), preset=attrs.pop("preset", None),
            preset_args=attrs.pop("preset_args", None) or {}, scores=attrs.pop("metrics", None) or {},
            dev_scores=attrs.pop("dev_metrics", None) or {}, evaluated_on=attrs.pop("evaluated_on", "dev"),
            finished_at=t.datetime_complete.timestamp() if t.datetime_complete else None,
            learning_rate=attrs.pop("learning_rate", None), proposed_by=attrs.pop("proposed_by", None), extra=attrs))
    return records


def fill_learning_rates(records: Iterable[TrialRecord], fixed: float | None) -> list[TrialRecord]:
    """The records with the rate each trained at: a trial trained before trials recorded their rate trained
    at the study's `fixed` one (`StudySpec.fixed_learning_rate`; a study that samples rates has no such trial)."""
    return [replace(r, learning_rate=fixed) if r.learning_rate is None and fixed is not None
            and r.kind in MEASURED_KINDS else r for r in records]


def _name_legacy_pfeiffer(attrs: dict[str, Any]) -> None:
    """Before 0.2, preset `pfeiffer` built Houlsby's adapter on the FFN (Δh read h, not LN(x + h)); such a
    stored trial is named for what it trained, `houlsby_ffn`, so it is never compared as Pfeiffer's."""
    ffn = (attrs.get("petl_config") or {}).get("ffn") or {}
    if attrs.get("preset") == "pfeiffer" and ffn.get("insertion") == "sequential":
        attrs["preset"] = "houlsby_ffn"
        attrs["label"] = str(attrs.get("label", "")).replace("pfeiffer(", "houlsby_ffn(", 1)


def trained_trial(records: Iterable[TrialRecord], number: int, *, verb: str = "exported") -> TrialRecord:
    """Trial `number`, which must have been trained to the end (a command is about to use its point);
    anything else is refused with the reason, `verb` saying what the command does."""
    records = list(records)
    if not any(r.scored for r in records):
        raise PETLError(f"the study has no completed trials yet: nothing can be {verb}")
    chosen = next((r for r in records if r.number == number), None)
    if chosen is None:
        raise PETLError(f"trial {number} is not in the study (its trials are 0..{len(records) - 1})")
    if not chosen.scored:
        what = {"over_budget": "was over the budget and never trained",
                "misfit": f"did not fit the model and was never trained ({chosen.reason})",
                "duplicate": f"repeated trial {chosen.extra.get('duplicate_of')}: use that one",
                "reseed": f"re-trained trial {chosen.extra.get('reseed_of')} with another seed: use that one",
                "confirm": f"re-trained trial {chosen.extra.get('confirm_of')} with a fresh seed: use that one",
                "empty": "had no Δh and was never trained",
                }.get(chosen.kind, f"did not complete ({chosen.state.lower()}: {chosen.reason})")
        raise PETLError(f"trial {number} {what}; only completed search or baseline trials can be {verb}")
    return chosen
