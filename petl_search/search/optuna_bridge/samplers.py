"""The Optuna sampler a study asks for (tpe | nsga2 | gp | random), built in one place.

A study's storage holds more than the sampler's own proposals: baselines, over-budget rejections,
repeats, reseeds. Optuna's TPE and GP count every finished trial towards their random start-up, so 43
baselines would use up `startup_trials: 12` before the first search trial. `SearchStartup` counts the
sampler's own proposals that were scored (trained search trials; a one-shot study's designs scored on
the supernet), and hands the model-based sampler everything else it knows afterwards.

Every sampler draws each trial's randomness from a stream of that trial's own (`TrialStreams`), so a
study resumed in a new process goes on instead of proposing its first points again.
"""
from __future__ import annotations

import warnings
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

from ..language.study import StudySpec

LEARNED_FROM = (TrialState.COMPLETE, TrialState.PRUNED)
# Repeats in a row the model may propose before one proposal falls back to random: a fresh stream per ask
# usually leaves a repeat within a few asks; a model collapsed onto one point needs the fallback.
MODEL_REPEATS = 10


def counts_for_startup(trial: FrozenTrial) -> bool:
    """Whether a finished trial counts towards the start-up: one of the sampler's own points, scored. In a
    study that is a search trial; in a one-shot study's design study, a scored design, which has no `kind`
    (records.py reads a trial without one as a search trial too). Counting `kind: search` alone left the
    design study in its start-up for good: TPE proposed 0 of 17 designs."""
    return trial.user_attrs.get("kind", "search") == "search"


def trial_seed(seed: int | None, number: int) -> int | None:
    """The seed of trial `number`'s own random stream: (seed, number) mixed by NumPy's SeedSequence, so
    that neighbouring numbers give unrelated streams. No seed stays no seed (fresh entropy each time)."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class TrialStreams(BaseSampler):
    """`make(seed)`'s sampler, made afresh for each trial with the seed `trial_seed(seed, trial number)`.

    A sampler seeded once with the study's seed starts the same stream again in each new process, so a
    resumed study proposed again what it had proposed (59 of the 99 repeats of sst2_heldout_rediscover: the
    random start-up's and fallback's first points). Trial numbers are never reused, in one process or
    across resumes, so no two trials share a stream. Optuna's samplers read what they learn from the
    storage, so a trial's proposal depends only on the seed, its number and what the storage holds when it
    is asked for, however many processes came before. What a sampler keeps in memory between trials (TPE's
    and NSGA-II's caches of the storage, GP's warm start) is rebuilt each trial: measured, TPE's ask on
    the unified space after 100 trials took the same time (34 ms against 36).
    """

    def __init__(self, make: Callable[[int | None], BaseSampler], seed: int | None) -> None:
        self.make, self.seed = make, seed
        self._made: dict[int, BaseSampler] = {}  # trial number -> its sampler, until the trial is told

    def of(self, trial: FrozenTrial) -> BaseSampler:
        if trial.number not in self._made:
            self._made[trial.number] = self.make(trial_seed(self.seed, trial.number))
        return self._made[trial.number]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.of(trial).before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.of(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.of(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.of(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.of(trial).after_trial(study, trial, state, values)
        del self._made[trial.number]

    def reseed_rng(self) -> None:
        """Optuna asks for fresh randomness (its threads): the trials from now on are unseeded."""
        self.seed = None
        for sampler in self._made.values():
            sampler.reseed_rng()


def _random(seed: int | None) -> BaseSampler:
    return RandomSampler(seed=seed)


def _tpe(seed: int | None) -> BaseSampler:
    # group=True: our spaces are conditional (a site's dimensions depend on its form), and grouped
    # multivariate TPE models each conditional subspace jointly instead of falling back to independent
    # sampling. constant_liar: parallel workers do not all get the same proposal.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=0, multivariate=True, group=True,
                                          constant_liar=True)


def _gp(seed: int | None) -> BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=0)


def _nsga2(seed: int | None, *, population_size: int) -> BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=population_size)


class SearchStartup(BaseSampler):
    """Random proposals until `n_startup` of its own points have been scored (`counts_for_startup`: search
    trials completed or stopped early, designs scored), then `model`'s. Whether a trial is a start-up trial
    is decided once, when it is asked for.

    A repeat (a point already trained, `repeated()`) adds no observation, and telling it the earlier
    values would count that point twice in TPE's densities and draw the model further onto it. So the
    repeat is closed unobserved and the model is simply asked again: each trial has its own random stream
    (`TrialStreams`), so the next ask draws other candidates from the same densities. Only after
    `model_repeats` repeats in a row does one proposal fall back to random (TPE once proposed the frozen
    backbone, trivially on the front at 0 parameters, 335 times in a row). Before this, every repeat
    handed the next proposal to random, and random proposals, not the model, chose most trained points
    (TPE chose 4 of sst2_heldout_rediscover's 60): `bench/sampler_share.py` measures both policies.
    """

    def __init__(self, model: BaseSampler, n_startup: int, seed: int | None, *,
                 model_repeats: int = MODEL_REPEATS) -> None:
        self.model, self.n_startup, self.model_repeats = model, n_startup, model_repeats
        self.random = TrialStreams(_random, seed)
        self._source: dict[int, str] = {}  # trial number -> "startup" | "fallback" | "model", until told
        self._repeats = 0  # proposals in a row that repeated a trained point
        self._last_repeated = False  # whether the latest proposal was one of them

    def repeated(self) -> None:
        """The latest proposal repeated a point already trained: ask the model again, or after
        `model_repeats` repeats in a row, take one random proposal."""
        self._repeats += 1
        self._last_repeated = True

    def source(self, number: int) -> str:
        """"startup", "fallback" or "model": who proposes trial `number` (asked for, not yet told)."""
        return self._source.get(number, "model")

    def _decide(self, study: optuna.Study, trial: FrozenTrial) -> str:
        if trial.number not in self._source:
            if not self._last_repeated:  # the row of repeats is broken
                self._repeats = 0
            self._last_repeated = False
            if self.scored_points(study) < self.n_startup:
                self._source[trial.number] = "startup"
            elif self._repeats > self.model_repeats:
                self._source[trial.number], self._repeats = "fallback", 0
            else:
                self._source[trial.number] = "model"
        return self._source[trial.number]

    def _is_starting(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self._decide(study, trial) != "model"

    def scored_points(self, study: optuna.Study) -> int:
        return sum(map(counts_for_startup, study.get_trials(deepcopy=False, states=LEARNED_FROM)))

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._is_starting(study, trial)
        self.model.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if self._is_starting(study, trial):
            return {}
        return self.model.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        return self.model.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        sampler = self.random if self._is_starting(study, trial) else self.model
        return sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Any) -> None:
        self._source.pop(trial.number, None)
        self.random.after_trial(study, trial, state, values)  # lets go of the trial's random stream
        self.model.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.random.reseed_rng()
        self.model.reseed_rng()


def make_sampler(spec: StudySpec) -> BaseSampler:
    """The Optuna sampler the study asks for. Budget constraints reach it through trial.set_constraint."""
    block = spec.sampler
    seed = block.get("seed", spec.seed)
    startup = block.get("startup_trials", 10)
    if block["name"] == "tpe":
        return SearchStartup(TrialStreams(_tpe, seed), startup, seed)
    if block["name"] == "nsga2":  # its first generation is its start-up, counted in its own trials
        return TrialStreams(partial(_nsga2, population_size=block.get("population_size", 20)), seed)
    if block["name"] == "gp":
        return SearchStartup(TrialStreams(_gp, seed), startup, seed)
    return TrialStreams(_random, seed)


def proposal_source(sampler: BaseSampler, number: int) -> str:
    """Who proposed trial `number` (asked for, not yet told): "startup" (the random start-up), "model"
    (the model-based sampler), "fallback" (a random proposal after repeats) or "random" (a random study)."""
    if isinstance(sampler, SearchStartup):
        return sampler.source(number)
    if isinstance(sampler, TrialStreams) and sampler.make is _random:
        return "random"
    return "model"
