"""A study's claims, judged on fresh seeds only: its picks' confirm trainings (docs/statistics.md).

At each claim size S (the study attribute `claim_sizes`, the budget's last), for each baseline's pick at S:
    superiority      the search's pick at S against <method>'s pick at S;
    non-inferiority  the search's pick at S//2 is no worse than <method>'s pick at S by more than `margin`.
The picks are optuna_bridge/confirm.py's (made on the search split). Each side is judged only by its
`confirm` trainings, paired seed by seed over the seeds both sides were confirmed with; the seed that picked
a point never judges it. A claim with fewer than MIN_CONFIRM_SEEDS common seeds is listed, not judged, with
the reason. Holm's correction runs over every judged claim of one report (`judge_rows`).

Beside the claims: Spearman's ρ between the search-split score and the dev score over the study's trained
points (does the split rank points as dev does?), and who proposed the trained search points.

Pure functions of `TrialRecord`s and the study's attributes; the contest report (contest_report.py) builds
its claims from the same pieces. No torch, no training, no model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from ..core.params import percent
from ..search.language.study import DEFAULT_CONFIRM, MIN_CONFIRM_SEEDS
from ..search.optuna_bridge.confirm import SEARCH, Pick, confirmations, picks
from ..search.optuna_bridge.records import CLAIM_SIZES_KEY, TrialRecord
from ..search.optuna_bridge.storage import DEV_LABELS_KEY
from .front import lr_text
from .inference import Claim, Verdict, correction_header, judge, paired_bootstrap, spearman, why_no_spearman
from .sampling import ProposalShares, proposal_shares

N_BOOT = 10_000  # bootstrap replicates per claim
BOOT_SEED = 0  # every claim's bootstrap draws from this seed: a report depends only on its storages


@dataclass(frozen=True)
class PickSide:
    """One side of a claim: a picked trial and the dev predictions of its fresh-seed trainings."""

    role: str  # who picked it: "search", a baseline's method, or in a contest "<arm> s<seed> ..."
    size: int  # the stored size it was picked within
    record: TrialRecord  # the picked trial (trained at the study's seed, which never judges it)
    predictions: Mapping[int, Sequence]  # confirm seed -> dev predictions in dev row order

    @property
    def text(self) -> str:
        """What a table shows: role, trial, label, stored size and learning rate."""
        r = self.record
        size = f"{r.stored_params:,} ({percent(r.stored_fraction)})" if r.stored_params is not None else "-"
        return f"{self.role}: #{r.number} {r.label}, {size}, lr {lr_text(r.learning_rate)}"


@dataclass(frozen=True)
class ClaimRow:
    """One claim of a report: what it asks, its sides, the seeds it is paired over, and once judged its
    bootstrap (`claim`) and verdict; or, not judged, why."""

    question: str
    kind: str  # superiority | non-inferiority
    size: int  # the claim size S
    a: PickSide | None
    b: PickSide | None
    margin: float  # 0 for superiority
    seeds: tuple[int, ...] = ()  # the confirm seeds both sides have
    claim: Claim | None = None  # the bootstrap, when the claim could be judged
    reason: str | None = None  # why it was not judged
    verdict: Verdict | None = None  # set by judge_rows

    @property
    def judged(self) -> bool:
        return self.claim is not None

    @property
    def holds(self) -> bool:
        return self.verdict is not None and self.verdict.holds

    @property
    def observed(self) -> float | None:
        return self.claim.result.observed if self.claim is not None else None

    @property
    def verdict_text(self) -> str:
        if self.claim is None:
            return f"not judged: {self.reason}"
        if self.verdict is None:
            return "not judged yet (judge_rows)"
        v = self.verdict
        if v.holds:
            return "holds"
        if self.kind == "superiority" and v.p_adjusted <= v.alpha and self.claim.result.observed < 0:
            return f"does not hold: {self.b.role} is the better"
        return "does not hold"


@dataclass(frozen=True)
class RankAgreement:
    """Spearman's ρ between the search-split score and the dev score over a study's trained points."""

    n: int
    rho: float  # NaN when `reason` says why there is none
    reason: str | None

    @property
    def text(self) -> str:
        return f"{self.rho:+.3f}" if self.reason is None else f"n/a ({self.reason})"

    @property
    def sentence(self) -> str:
        return f"Spearman's ρ between the search-split score and the dev score over {self.n} trained points: " \
               f"{self.text}"


@dataclass(frozen=True)
class StudyClaims:
    """What a study report says on fresh seeds: its claims (judged together), ρ and the proposal shares."""

    rows: tuple[ClaimRow, ...]
    alpha: float
    ranks: RankAgreement
    shares: ProposalShares

    @property
    def judged(self) -> list[ClaimRow]:
        return [r for r in self.rows if r.judged]


# --- Sides: the picks and their fresh seeds ----------------------------------------------------------

def fresh_predictions(records: Sequence[TrialRecord], picked: TrialRecord, n_labels: int) -> dict[int, list]:
    """Confirm seed -> dev predictions of `picked`'s finished confirm trainings, leaving out the seed that
    picked it and any training whose predictions do not cover the dev set."""
    out = {}
    for r in confirmations(records, picked.number):
        predictions = r.extra.get("dev_predictions")
        if r.seed != picked.seed and isinstance(predictions, list) and len(predictions) == n_labels:
            out[r.seed] = predictions
    return out


def pick_sides(records: Sequence[TrialRecord], sizes: Sequence[int], n_labels: int, *,
               baselines: str = "all") -> dict[tuple[int, str], PickSide]:
    """(size, group) -> that group's pick at that size (the search's at each size and at half of it)."""
    by_number = {r.number: r for r in records}
    chosen: list[Pick] = picks(records, sizes, max(sizes), baselines=baselines) if sizes else []
    return {(p.size, p.group): PickSide(p.group, p.size, by_number[p.number],
                                        fresh_predictions(records, by_number[p.number], n_labels))
            for p in chosen}


# --- One claim -------------------------------------------------------------------------------------

def compare_picks(question: str, kind: str, size: int, a: PickSide | None, b: PickSide | None,
                  labels: Sequence | None, metric: str, *, margin: float = 0.0, missing: str = "",
                  n_boot: int = N_BOOT) -> ClaimRow:
    """The claim `a` against `b`, bootstrapped over the confirm seeds both have when there are at least
    MIN_CONFIRM_SEEDS of them; otherwise listed with the reason. `missing` says why a side is None."""
    margin = margin if kind == "non-inferiority" else 0.0
    row = ClaimRow(question, kind, size, a, b, margin)
    if a is None or b is None:
        return replace(row, reason=missing or "a side has no pick")
    seeds = tuple(sorted(set(a.predictions) & set(b.predictions)))
    row = replace(row, seeds=seeds)
    if not labels:
        return replace(row, reason="the storage keeps no dev labels to score the predictions against")
    if len(seeds) < MIN_CONFIRM_SEEDS:
        return replace(row, reason=f"{len(seeds)} common confirm seed{'' if len(seeds) == 1 else 's'} "
                                   f"({_seeds(seeds)}); a claim needs at least {MIN_CONFIRM_SEEDS}")
    result = paired_bootstrap([a.predictions[s] for s in seeds], [b.predictions[s] for s in seeds], labels, metric,
                              n_boot=n_boot, seed=BOOT_SEED, margin=margin)
    claim = Claim(question, kind, margin, a.role, _percent(a.record), b.role, _percent(b.record), result)
    return replace(row, claim=claim)


def hypothesis(row: ClaimRow) -> tuple:
    """What a judged row tests: its kind and margin, the two picks (who picked, which trial) and the seeds.
    A report asks one question at several sizes, and where one pick answers at each (a small search point is
    the pick at every size above it) the rows are one test with one p-value, not several."""
    return (row.kind, row.margin, row.a.role, row.a.record.number, row.b.role, row.b.record.number, row.seeds)


def judge_rows(rows: Sequence[ClaimRow], alpha: float) -> list[ClaimRow]:
    """Every row, the judged ones with their verdicts from Holm's correction over the distinct tests among them
    (`hypothesis`): counting a repeated test again would only make the correction stricter for the others."""
    judged = [i for i, r in enumerate(rows) if r.judged]
    first: dict[tuple, int] = {}
    for i in judged:
        first.setdefault(hypothesis(rows[i]), i)
    verdicts = dict(zip(first, judge([rows[i].claim for i in first.values()], alpha))) if first else {}
    out = list(rows)
    for i in judged:
        out[i] = replace(rows[i], verdict=replace(verdicts[hypothesis(rows[i])], claim=rows[i].claim))
    return out


def rows_header(judged: Sequence[ClaimRow], alpha: float) -> str:
    """What a report's header says about its judged rows: how many, how many distinct tests Holm ran over."""
    distinct = len({hypothesis(r) for r in judged})
    if distinct == len(judged):
        return correction_header(judged, alpha)
    return (f"{len(judged)} claims, {distinct} distinct tests (one pair of picks asked about at several sizes is "
            f"one test), Holm-corrected at {100 * alpha:g}% over the {distinct}")


def _percent(record: TrialRecord) -> float | None:
    return None if record.stored_fraction is None else 100 * record.stored_fraction


def _seeds(seeds: Sequence[int]) -> str:
    return ", ".join(map(str, seeds)) or "none"


# --- A study's claims ------------------------------------------------------------------------------

def study_claim_rows(records: Sequence[TrialRecord], sizes: Sequence[int], labels: Sequence | None, metric: str, *,
                     margin: float, baselines: str = "all", n_boot: int = N_BOOT) -> list[ClaimRow]:
    """At each size S, for each baseline pick at S: the search's pick at S against it (superiority) and
    the search's pick at S//2 against it (non-inferiority within `margin`); not judged yet."""
    sides = pick_sides(records, sizes, len(labels or ()), baselines=baselines)
    rows = []
    for size in sorted(set(sizes)):
        search, half = sides.get((size, SEARCH)), sides.get((size // 2, SEARCH))
        for (at, group), method in sorted(sides.items()):
            if at != size or group == SEARCH:
                continue
            rows.append(compare_picks(f"at {size:,}: search beats {group}", "superiority", size, search, method,
                                      labels, metric, missing=f"no search point within {size:,}", n_boot=n_boot))
            rows.append(compare_picks(f"at {size:,}: search at {size // 2:,} no worse than {group}", "non-inferiority",
                                      size, half, method, labels, metric, margin=margin,
                                      missing=f"no search point within {size // 2:,}", n_boot=n_boot))
    return rows


def rank_agreement(records: Sequence[TrialRecord], metric: str) -> RankAgreement:
    """ρ between the search-split score and the dev score over the trained points (search and baseline
    trials that completed with both)."""
    pairs = [(r.metric, r.dev_scores[metric]) for r in records
             if r.kind in ("search", "baseline") and r.state == "COMPLETE" and r.metric is not None
             and r.evaluated_on != "dev" and _finite(r.metric) and _finite(r.dev_scores.get(metric))]
    x, y = [p[0] for p in pairs], [p[1] for p in pairs]
    reason = why_no_spearman(x, y)
    return RankAgreement(len(pairs), spearman(x, y) if reason is None else math.nan, reason)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def confirm_settings(spec_confirm: Mapping[str, Any] | None) -> dict[str, Any]:
    """A study's `confirm` block with its defaults (margin, alpha, baselines)."""
    return {**DEFAULT_CONFIRM, **(spec_confirm or {})}


def study_claims(records: Sequence[TrialRecord], attrs: Mapping[str, Any], metric: str,
                 confirm: Mapping[str, Any] | None, *, n_boot: int = N_BOOT) -> StudyClaims:
    """A study's claims judged together (Holm at confirm's alpha), from its records and its study attributes
    (`claim_sizes`, `dev_labels`), with ρ and the proposal shares."""
    settings = confirm_settings(confirm)
    rows = study_claim_rows(records, attrs.get(CLAIM_SIZES_KEY) or [], attrs.get(DEV_LABELS_KEY), metric,
                            margin=settings["margin"], baselines=settings["baselines"], n_boot=n_boot)
    return StudyClaims(tuple(judge_rows(rows, settings["alpha"])), settings["alpha"], rank_agreement(records, metric),
                       proposal_shares(records))


def has_confirmations(records: Sequence[TrialRecord]) -> bool:
    """Whether a study has confirm trials (and so a claims section)."""
    return any(r.kind == "confirm" for r in records)
