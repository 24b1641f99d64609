"""The Optuna sampler a study asks for (tpe | nsga2 | gp | random), built in one place."""
from __future__ import annotations

import warnings
import optuna

from .study import StudySpec


def make_sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    """The Optuna sampler the study asks for. Budget constraints reach it through trial.set_constraint."""
    block = spec.sampler
    seed = block.get("seed", spec.seed)
    if block["name"] == "tpe":
        # group=True: our spaces are conditional (a site's dimensions depend on its form), and grouped
        # multivariate TPE models each conditional subspace jointly instead of falling back to independent
        # sampling. constant_liar: parallel workers do not all get the same proposal.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=block.get("startup_trials", 10),
                                              multivariate=True, group=True, constant_liar=True)
    if block["name"] == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=block.get("population_size", 20))
    if block["name"] == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=block.get("startup_trials", 10))
    return optuna.samplers.RandomSampler(seed=seed)
