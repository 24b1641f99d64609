"""Early stopping on two objectives: asynchronous successive halving that ranks a rung by
non-dominated sorting on (score, stored parameters), as MO-ASHA does (Schmucker et al. 2021; the
syne-tune scheduler of that name), not by the score alone.

Metric-only ASHA stops the small adapters that learn slowly, though they would hold the cheap end of the
front (measured on MiniLM/SST-2: ASHA saved 19% of the time and lost 5% of the hypervolume). Here a
trial that reaches a rung (after grace·η^k reports) is ranked among the trials recorded at that rung:
by its non-domination rank, then by its crowding distance (a lonely point widens the front). It
continues when it is in the top ⌈n/η⌉ of the n points, itself included, as ASHA continues the top 1/η;
the first trial at a rung always continues.

Baselines, reseeds and confirmations are never stopped: they are the references the front is judged
against and the seeds that judge it (a confirmation is a pick trained again with a fresh seed; stopped,
it would leave its pick judged on fewer seeds), and are compared with search points only once fully
trained. Their results at a rung are recorded, since they are real points of the trade-off.
"""
from __future__ import annotations

import math
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from ..optuna_bridge.pareto import crowding_distances, nondominated_ranks

EXEMPT_KINDS = ("baseline", "reseed", "confirm")  # the kinds never stopped early (see above)


def milestones(max_t: int, grace_period: int, reduction_factor: float) -> list[int]:
    """The rungs, in reports: grace·η^k below max_t, highest first (as ASHA places them)."""
    rungs, t = [], grace_period
    while t < max_t:
        rungs.append(int(t))
        t = math.ceil(t * reduction_factor)
    return sorted(set(rungs), reverse=True)


def continues(point: tuple[float, float], recorded: list[tuple[float, float]], reduction_factor: float) -> bool:
    """Whether `point` ranks in the top ⌈n/η⌉ of `recorded` + itself (both objectives maximised)."""
    points = [*recorded, point]
    ranks = nondominated_ranks(points)
    front = [i for i, r in enumerate(ranks) if r == ranks[-1]]
    crowd = dict(zip(front, crowding_distances([points[i] for i in front])))
    better = sum(ranks[i] < ranks[-1] or (ranks[i] == ranks[-1] and crowd[i] > crowd[len(points) - 1])
                 for i in range(len(points) - 1))
    return better + 1 <= math.ceil(len(points) / reduction_factor)


class MOASHA(FIFOScheduler):
    """Ray Tune scheduler: the trial's score (`metric`, maximised) and its stored parameters (from the
    candidate in its config, minimised), ranked at each rung as the module docstring says."""

    def __init__(self, *, metric: str, max_t: int, grace_period: int = 1, reduction_factor: float = 2,
                 time_attr: str = "training_iteration") -> None:
        super().__init__()
        self.set_search_properties(metric, "max")
        if not 1 <= grace_period <= max_t or reduction_factor <= 1:
            raise ValueError(f"MOASHA needs 1 <= grace_period <= max_t and reduction_factor > 1, but got "
                             f"grace_period={grace_period}, max_t={max_t}, reduction_factor={reduction_factor}")
        self.score, self.time_attr = metric, time_attr
        self.max_t, self.grace_period, self.reduction_factor = max_t, grace_period, reduction_factor
        self.rungs: dict[int, dict[str, tuple[float, float]]] = {m: {} for m in milestones(max_t, grace_period,
                                                                                          reduction_factor)}
        self.stopped: list[str] = []  # trial ids stopped early, in order (for tests and progress)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if self.time_attr not in result or self.score not in result:
            return TrialScheduler.CONTINUE
        t = result[self.time_attr]
        if t >= self.max_t:
            return TrialScheduler.STOP  # the trial has made its last report
        candidate = trial.config.get("candidate", {})
        point = (float(result[self.score]), -float(candidate.get("stored_params", 0)))
        for milestone, recorded in self.rungs.items():  # highest rung first, as ASHA
            if t < milestone or trial.trial_id in recorded:
                continue
            keep = continues(point, list(recorded.values()), self.reduction_factor)
            recorded[trial.trial_id] = point
            if not keep and candidate.get("kind") not in EXEMPT_KINDS:
                self.stopped.append(trial.trial_id)
                return TrialScheduler.STOP
            break
        return TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        return f"MOASHA: rungs {sorted(self.rungs)} of {self.max_t} reports, {len(self.stopped)} stopped"
