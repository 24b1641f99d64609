"""A contest's report (Markdown), from its arms' storages alone: claims on fresh seeds, the contest's targets,
and what each arm and study seed spent and picked (`petl-search contest FILE --report-only`).

For each rival arm (every arm but the reference), each of its study seeds and each claim size S:
    superiority      the rival's search pick at S against the reference's best confirmed baseline pick at S
                     (the reference study confirms `baselines: best`; with several, the best on the search split);
    non-inferiority  the rival's search pick at S//2 against the same, within the contest's margin;
and between the first rival and each other rival with the same study seed, their picks at each S (superiority).
Every claim is paired over the confirm seeds both sides have (the seeds that picked never count; at least
MIN_CONFIRM_SEEDS, else listed as not judged), and Holm's correction runs over every claim of the report at
the contest's alpha. All arms must share one dev set: their stored dev labels are compared, and a contest whose
studies stored different ones is refused.

Each study is opened read-only (no lease, nothing created): a study not run yet, or still running, is reported
as such and makes no claim. The targets are computed from the verdicts, never written by hand.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import optuna

from ..core.errors import PETLError
from ..search.language.contest import ContestSpec, trainings
from ..search.language.study import StudySpec
from ..search.optuna_bridge.confirm import SEARCH, confirmations, pending, picks
from ..search.optuna_bridge.records import (CLAIM_SIZES_KEY, COUNTED_KINDS, TrialRecord, counts,
                                            fill_learning_rates, read_records)
from ..search.optuna_bridge.storage import DEV_LABELS_KEY, open_study
from .claims import (N_BOOT, ClaimRow, PickSide, RankAgreement, compare_picks, judge_rows, pick_sides,
                     rank_agreement, rows_header)
from .comparison import seeds_text
from .front import lr_text
from .report import claims_table
from .sampling import proposal_shares

FINISHED = "finished"


@dataclass(frozen=True)
class StudyState:
    """One arm's study at one study seed, as its storage holds it now."""

    arm: str
    spec: StudySpec
    status: str  # FINISHED, or what is missing ("not run yet", "unfinished: ...", "unreadable: ...")
    records: tuple[TrialRecord, ...] = ()
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status == FINISHED

    @property
    def name(self) -> str:
        return f"{self.arm} s{self.spec.seed}"

    @property
    def sizes(self) -> list[int]:
        return list(self.attrs.get(CLAIM_SIZES_KEY) or [])

    @property
    def labels(self) -> list | None:
        return self.attrs.get(DEV_LABELS_KEY)

    @property
    def spent(self) -> int:
        """Trainings done choosing its points: search and baseline trials that ended (not re-queued ones)."""
        return sum(r.kind in COUNTED_KINDS and r.state in ("COMPLETE", "PRUNED", "FAIL")
                   and not r.extra.get("interrupted") for r in self.records)


# --- Reading the storages ----------------------------------------------------------------------------

def read_state(arm: str, spec: StudySpec) -> StudyState:
    """The study's records and attributes, read-only, with its status; never raises for a study that has not
    run, is running, or cannot be read."""
    if spec.sqlite_path is not None and not spec.sqlite_path.is_file():
        return StudyState(arm, spec, "not run yet")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        if spec.name not in optuna.get_all_study_names(storage=spec.storage):
            return StudyState(arm, spec, "not run yet")
        study = open_study(spec, create=False)
    except PETLError as exc:
        return StudyState(arm, spec, f"unreadable: {exc}")
    records = tuple(fill_learning_rates(read_records(study), spec.fixed_learning_rate))
    attrs = dict(study.user_attrs)
    state = StudyState(arm, spec, FINISHED, records, attrs)
    return replace(state, status=study_status(state))


def study_status(state: StudyState) -> str:
    """FINISHED once every training, every confirmation and nothing else is left; else what is missing."""
    records, spec = state.records, state.spec
    busy = sum(r.state in ("RUNNING", "INTERRUPTED", "WAITING") for r in records)
    planned = trainings(spec)
    if busy:
        return f"unfinished: {busy} trial{'' if busy == 1 else 's'} running, interrupted or queued"
    if state.spent < planned:
        return f"unfinished: {state.spent} of {planned} trainings"
    if not state.sizes:
        return "unfinished: no claim sizes stored yet"
    if spec.confirm:
        chosen = picks(list(records), state.sizes, max(state.sizes), baselines=spec.confirm["baselines"])
        left = pending(list(records), chosen, spec.confirm["seeds"])
        if left:
            done = counts(records)["confirm"]
            return f"unfinished: {done} confirmations done, {len(left)} to go"
    return FINISHED


def shared_labels(states: Sequence[StudyState]) -> list | None:
    """The dev labels every study that stored them shares; a contest over different dev sets is refused."""
    found = [(s, s.labels) for s in states if s.labels is not None]
    for state, labels in found[1:]:
        if list(labels) != list(found[0][1]):
            raise PETLError(f"the studies {found[0][0].spec.name} and {state.spec.name} stored different dev labels: "
                            f"a contest's claims pair predictions on one dev set; run every arm on the same task "
                            f"and data")
    return list(found[0][1]) if found else None


# --- The claims -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ContestClaims:
    """Every claim of the contest (Holm over all judged), and whose they are: (rival, other, seed, size) per
    row, `other` the reference arm or another rival."""

    rows: tuple[ClaimRow, ...]
    keys: tuple[tuple[str, str, int, int], ...]
    alpha: float

    def of(self, rival: str, other: str, kind: str) -> list[tuple[int, int, ClaimRow]]:
        """(study seed, size, row) of `rival`'s claims of `kind` against `other`."""
        return [(seed, size, row) for (a, b, seed, size), row in zip(self.keys, self.rows)
                if a == rival and b == other and row.kind == kind]


def _sides(state: StudyState, labels: Sequence | None) -> dict[tuple[int, str], PickSide]:
    """The study's picks, named by arm and study seed."""
    if not state.finished:
        return {}
    # every baseline's pick is read; only the confirmed ones (`best`: one per size) have seeds to judge with
    sides = pick_sides(list(state.records), state.sizes, len(labels or ()), baselines="all")
    return {key: replace(side, role=state.name if side.role == SEARCH else f"{state.name} {side.role}")
            for key, side in sides.items()}


def best_baseline_side(sides: Mapping[tuple[int, str], PickSide], size: int) -> PickSide | None:
    """The reference's confirmed baseline pick at `size` (the best on the search split if several)."""
    confirmed = [s for (at, group), s in sides.items() if at == size and group != SEARCH and s.predictions]
    return min(confirmed, key=lambda s: (-(s.record.metric or -math.inf), s.record.number), default=None)


def contest_claims(contest: ContestSpec, states: Mapping[str, Sequence[StudyState]], labels: Sequence | None,
                   metric: str, *, n_boot: int = N_BOOT) -> ContestClaims:
    """Every claim the contest makes, judged together (Holm at the contest's alpha)."""
    reference = list(states[contest.reference])
    ref_sides = {s.spec.seed: _sides(s, labels) for s in reference}
    rows: list[ClaimRow] = []
    keys: list[tuple[str, str, int, int]] = []
    for arm in contest.rivals:
        for state in states[arm.name]:
            if not state.finished:
                continue
            ref = next((s for s in reference if s.spec.seed == state.spec.seed), reference[0])
            mine, theirs = _sides(state, labels), ref_sides[ref.spec.seed]
            for size in state.sizes:
                best = best_baseline_side(theirs, size)
                missing = (f"the reference study {ref.spec.name} is {ref.status}" if not ref.finished else
                           f"{ref.name} has no confirmed baseline pick at {size:,}")
                rows.append(compare_picks(f"{state.name} at {size:,}: beats {contest.reference}'s best", "superiority",
                                          size, mine.get((size, SEARCH)), best, labels, metric, n_boot=n_boot,
                                          missing=missing if best is None else f"no search point within {size:,}"))
                rows.append(compare_picks(f"{state.name} at {size // 2:,} no worse than {contest.reference}'s best at "
                                          f"{size:,}", "non-inferiority", size, mine.get((size // 2, SEARCH)), best,
                                          labels, metric, margin=contest.margin, n_boot=n_boot,
                                          missing=missing if best is None else f"no search point within {size // 2:,}"))
                keys += [(arm.name, contest.reference, state.spec.seed, size)] * 2
    first, *others = contest.rivals
    for other in others:
        theirs = {s.spec.seed: s for s in states[other.name]}
        for state in states[first.name]:
            rival = theirs.get(state.spec.seed)
            if rival is None or not state.finished:
                continue
            mine, opposite = _sides(state, labels), _sides(rival, labels)
            for size in state.sizes:
                side = opposite.get((size, SEARCH))
                missing = f"{rival.spec.name} is {rival.status}" if not rival.finished else \
                    f"no search point within {size:,}"
                rows.append(compare_picks(f"{state.name} at {size:,}: beats {rival.name}", "superiority", size,
                                          mine.get((size, SEARCH)), side, labels, metric, n_boot=n_boot,
                                          missing=missing))
                keys.append((first.name, other.name, state.spec.seed, size))
    return ContestClaims(tuple(judge_rows(rows, contest.alpha)), tuple(keys), contest.alpha)


# --- The targets ----------------------------------------------------------------------------------

def target_lines(contest: ContestSpec, claims: ContestClaims) -> list[str]:
    """The contest's targets, counted over study seeds from the verdicts."""
    lines = []
    reference = contest.reference
    first = contest.rivals[0].name
    for arm in contest.rivals:
        n = len(arm.studies)
        beats = claims.of(arm.name, reference, "superiority")
        winning = sorted({seed for seed, _, row in beats if row.holds})
        where = "; ".join(f"s{seed} at {size:,}" for seed, size, row in beats if row.holds)
        lines.append(f"- {arm.name} beats {reference}'s best beyond the corrected interval at ≥ 1 size in "
                     f"{len(winning)} of {n} study seeds" + (f" ({where})" if where else "") + ".")
        lines.append(f"- Where {arm.name} does not beat {reference}'s best: " + _half_sizes(claims, arm.name, reference)
                     + ".")
    for other in contest.rivals[1:]:
        against = claims.of(first, other.name, "superiority")
        by_seed: dict[int, list[ClaimRow]] = {}
        for seed, _, row in against:
            by_seed.setdefault(seed, []).append(row)
        ahead = [seed for seed, rows in sorted(by_seed.items())
                 if all(row.judged and row.observed >= 0 for row in rows)]
        lines.append(f"- {first} ≥ {other.name} (observed difference ≥ 0) at each size in {len(ahead)} of "
                     f"{len(contest.arm(first).studies)} study seeds"
                     + (f" (s{', s'.join(map(str, ahead))})" if ahead else "") + ".")
    return lines


def _half_sizes(claims: ContestClaims, arm: str, reference: str) -> str:
    """For each (seed, size) where the arm does not beat the reference: is its pick at half the size
    non-inferior?"""
    beats = {(seed, size): row for seed, size, row in claims.of(arm, reference, "superiority")}
    halves = {(seed, size): row for seed, size, row in claims.of(arm, reference, "non-inferiority")}
    behind = [key for key, row in beats.items() if not row.holds]
    if not beats:
        return "no claim yet"
    if not behind:
        return "nowhere"
    parts = []
    for seed, size in behind:
        row = halves.get((seed, size))
        answer = "not judged" if row is None or not row.judged else "non-inferior" if row.holds else "not shown"
        parts.append(f"s{seed} at {size:,}: at ≤ {size // 2:,} {answer}")
    held = sum(halves.get(key) is not None and halves[key].holds for key in behind)
    return f"at ≤ half the size, non-inferior in {held} of {len(behind)} ({'; '.join(parts)})"


# --- The report ---------------------------------------------------------------------------------------

def contest_states(contest: ContestSpec) -> dict[str, list[StudyState]]:
    """Every arm's studies as their storages hold them now."""
    return {arm.name: [read_state(arm.name, spec) for spec in arm.studies] for arm in contest.arms}


def contest_markdown(contest: ContestSpec, *, n_boot: int = N_BOOT) -> str:
    """The contest's report: targets, claims (Holm over all), each arm and seed, each pick."""
    states = contest_states(contest)
    everyone = [s for group in states.values() for s in group]
    labels = shared_labels(everyone)
    metric = contest.arms[0].studies[0].main_metric
    claims = contest_claims(contest, states, labels, metric, n_boot=n_boot)
    judged = [r for r in claims.rows if r.judged]
    rivals = ", ".join(a.name for a in contest.rivals)
    lines = [f"# Contest {contest.name}" + (f": {contest.description}" if contest.description else ""), "",
             f"Arms {', '.join(a.name for a in contest.arms)}; {rivals} against the reference {contest.reference}. "
             f"{metric} on dev, judged on fresh confirm seeds only (the seed that picked a point never counts), "
             f"paired seed by seed; non-inferiority within {contest.margin:g}; "
             f"{rows_header(judged, contest.alpha)}. Studies not finished make no claim.", "",
             "## Targets", "", *target_lines(contest, claims), "",
             "## Claims (fresh seeds only)", "", f"{rows_header(judged, contest.alpha)}; A − B with its 95% "
             f"paired-bootstrap interval (unadjusted), p before and after Holm's correction.", ""]
    lines += claims_table(claims.rows) if claims.rows else ["None yet: no finished study to claim from."]
    lines += ["", "## Arms and study seeds", "",
              "| arm | seed | study | status | trainings | completed | confirm trials | Spearman ρ (split vs dev) | "
              "model share |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [_state_row(s) for s in everyone]
    picked = [(state, key, side) for state in everyone for key, side in sorted(_sides(state, labels).items())]
    lines += ["", "## Picks", ""]
    lines += ["Dev: the pick's mean ± std over its fresh confirm seeds (n). Proposed by: who chose the point "
              "(a model-based sampler's random start-up, its model, a fallback; random search is random); "
              "arms whose samplers share a seed draw the same start-up points, so their picks can coincide.", "",
              "| arm | seed | size | pick of | trial | label | stored | lr | proposed by | confirm seeds | dev |",
              "|---|---|---|---|---|---|---|---|---|---|---|"] if picked else \
        ["None yet: picks are read from finished studies."]
    for state, (size, group), side in picked:
        r, seeds = side.record, ", ".join(map(str, sorted(side.predictions))) or "-"
        lines.append(f"| {state.arm} | {state.spec.seed} | {size:,} | {group} | #{r.number} | {r.label} | "
                     f"{r.stored_params:,} | {lr_text(r.learning_rate)} | {r.proposed_by or '-'} | {seeds} | "
                     f"{fresh_dev_text(state.records, side, metric)} |")
    return "\n".join(lines) + "\n"


def fresh_dev_text(records: Sequence[TrialRecord], side: PickSide, metric: str) -> str:
    """The pick's dev `metric` over the confirm seeds that judge it (those of side.predictions), mean ± std (n)."""
    return seeds_text([r.dev_scores[metric] for r in confirmations(records, side.record.number)
                       if r.seed in side.predictions and isinstance(r.dev_scores.get(metric), (int, float))])


def _state_row(state: StudyState) -> str:
    if not state.records:
        return f"| {state.arm} | {state.spec.seed} | {state.spec.name} | {state.status} | - | - | - | - | - |"
    c = counts(state.records)
    ranks = rank_agreement(list(state.records), state.spec.main_metric)
    share = proposal_shares(state.records).model_share
    return (f"| {state.arm} | {state.spec.seed} | {state.spec.name} | {state.status} | {state.spent} of "
            f"{trainings(state.spec)} | {c['completed']} | {c['confirm']} | {_rho(ranks)} | "
            f"{'-' if share is None else f'{share:.0%}'} |")


def _rho(ranks: RankAgreement) -> str:
    """ρ with its count of points, or why there is none."""
    return f"{ranks.rho:+.3f} (n={ranks.n})" if ranks.reason is None else f"n/a: {ranks.reason}"
