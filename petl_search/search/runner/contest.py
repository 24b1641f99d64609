"""Run a contest's arms (language/contest.py), one study after another, each resuming from its storage.

A contest is long (hours on a CPU): `time_budget_s` stops it after so many seconds, with the trials then
running interrupted and queued again by the next run, so it can run in pieces with each storage committed
in between. Arms run in the file's order, each study seed in turn; `only` runs some arms.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

from ...core.errors import PETLError
from ..language.contest import ContestSpec
from .ray_runner import run_study


def run_contest(contest: ContestSpec, *, only: Sequence[str] | None = None, address: str | None = None,
                progress: Callable[[str], None] = print, time_budget_s: float | None = None) -> None:
    """Run (or resume) every study of the contest's arms (or of the arms named in `only`)."""
    unknown = sorted(set(only or ()) - {a.name for a in contest.arms})
    if unknown:
        raise PETLError(f"contest {contest.name} has no arm {unknown[0]!r}; arms: {[a.name for a in contest.arms]}")
    start = time.time()
    for arm in contest.arms:
        if only and arm.name not in only:
            continue
        for spec in arm.studies:
            left = None if time_budget_s is None else time_budget_s - (time.time() - start)
            if left is not None and left <= 0:
                progress(f"contest {contest.name}: time budget spent; run the same command to go on")
                return
            progress(f"contest {contest.name}: arm {arm.name}, study {spec.name} ({arm.trainings} trainings "
                     f"+ confirmations)")
            run_study(spec, address=address, progress=lambda line: progress(f"[{arm.name} s{spec.seed}] {line}"),
                      time_budget_s=left)
