"""Which trained points a study's claims are about, and which fresh seeds still have to train them.

A claim compares, at a stored size S (the budget, or one of the study's `sizes`), the search's pick at S
against each baseline's pick at S (superiority), and the search's pick at S/2 against the baseline at S
(non-inferiority at half the parameters). Every pick is made on the search split alone:
- the search's pick at S: the scored search point with the best search-split score among those storing
  at most S parameters (ties: fewer parameters, then the earlier trial);
- a baseline's pick at S: the best of its tuning trainings fitted to S (language/tuning.py's `pick`), or,
  for a baseline that is not tuned, its one fitted point at the budget.
The seed that picked a point never judges it: each pick is trained again with the study's `confirm`
seeds (none of them the study's seed), and only those trainings count on dev, paired seed by seed.
A point that is the pick at several sizes is trained once per seed. Nothing here reads dev.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from ..language.tuning import pick as tuned_pick  # one rule for choosing among a method's trainings
from .records import TrialRecord

SEARCH = "search"  # the role of the search's own pick; a baseline's pick has its group's label


@dataclass(frozen=True)
class Pick:
    """Trial `number` is `group`'s pick at `size` stored parameters."""

    size: int
    group: str  # SEARCH, or the baseline's method (its preset label without the size)
    number: int


def search_pick(records: Sequence[TrialRecord], size: int) -> TrialRecord | None:
    """The scored search point with the best search-split score within `size` stored parameters."""
    pool = [r for r in records if r.scored and r.kind == "search" and r.stored_params is not None
            and r.stored_params <= size]
    return min(pool, key=lambda r: (-r.metric, r.stored_params, r.number), default=None)


def baseline_group(record: TrialRecord) -> str | None:
    """The method a baseline trial belongs to: its tuning group's method (tuned), else its preset label."""
    if record.kind != "baseline":
        return None
    return record.extra.get("tuning_method") or record.label


def picks(records: Sequence[TrialRecord], sizes: Iterable[int], budget_size: int, *,
          baselines: str = "all") -> list[Pick]:
    """Every pick a study's claims need: the search's at each size and at half of it, each baseline's at
    each size (`baselines="best"`: only the baseline with the best search-split score at each size)."""
    out: list[Pick] = []
    for size in sorted(set(sizes)):
        for cap in (size, size // 2):
            chosen = search_pick(records, cap)
            if chosen is not None:
                out.append(Pick(cap, SEARCH, chosen.number))
        groups: dict[str, list[TrialRecord]] = {}
        for r in records:
            if not (r.scored and r.kind == "baseline"):
                continue
            target = r.extra.get("target_size")
            if target == size or (target is None and size == budget_size):
                groups.setdefault(baseline_group(r), []).append(r)
        chosen_baselines = [(group, tuned_pick(members)) for group, members in sorted(groups.items())]
        if baselines == "best" and chosen_baselines:
            chosen_baselines = [max(chosen_baselines, key=lambda gp: (gp[1].metric, -gp[1].number))]
        out += [Pick(size, group, chosen.number) for group, chosen in chosen_baselines]
    return out


def pending(records: Sequence[TrialRecord], chosen: Iterable[Pick], seeds: Sequence[int]) -> list[tuple[int, int]]:
    """(trial number, seed) pairs still to train: each picked point once per confirm seed, unless a
    confirm training of it with that seed finished or is running (a failed one is tried again)."""
    done = {(r.extra.get("confirm_of"), r.seed) for r in records
            if r.kind == "confirm" and r.state in ("COMPLETE", "RUNNING", "PRUNED")}
    numbers = list(dict.fromkeys(p.number for p in chosen))
    return [(n, s) for n in numbers for s in seeds if (n, s) not in done]


def confirmations(records: Sequence[TrialRecord], number: int) -> list[TrialRecord]:
    """The finished confirm trainings of trial `number`, by seed (what judges it on dev)."""
    return sorted((r for r in records if r.kind == "confirm" and r.state == "COMPLETE"
                   and r.extra.get("confirm_of") == number), key=lambda r: r.seed)
