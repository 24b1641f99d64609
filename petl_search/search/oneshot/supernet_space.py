"""The designs of a search space that a weight-sharing supernet (nn/supernet.py) is built from and
trained on, drawn through `SearchSpace.sample` itself, so the supernet never sees a point the space
could not give.

    largest_designs(space, model_config)   designs that together hold every Δh parameter variant the
                                           space can give at its largest shape (the supernet's store)
    SpaceDesigns(space, model_config)      the sandwich rule's draws: largest(rng), smallest(rng), random(rng)

The largest and smallest designs switch every site on (optional ones included) and take the largest
or smallest size of each (with a budget: the largest or smallest that fits, as a budget-aware study
samples them); their other dimensions are drawn at random, as a random design's are. A
random design draws everything from the space's distributions (sizes log-uniformly over a log range,
as Optuna's random sampler does).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from ...core.config import PETLConfig
from ..language.space import SearchSpace

# The dimensions whose values change which Δh parameters exist or their shapes (insertion: the width a
# projection's Δh reads); the others (activation, init, scale) share weights and take one value.
SHAPE_DIMENSIONS = ("use", "form", "insertion", "composition", "heads", "input_norm", "layers", "reparam",
                    "projections")


class _Draw:
    """Stands in for an Optuna trial: every site on or not, sizes at an extreme or drawn, the rest drawn."""

    def __init__(self, rng: np.random.Generator, sizes: str, every_site: bool) -> None:
        self.rng, self.sizes, self.every_site = rng, sizes, every_site

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        dim = name.rsplit(".", 1)[-1]
        if dim == "use" and self.every_site:
            return True
        if dim == "size" and self.sizes != "random":
            return max(choices) if self.sizes == "max" else min(choices)
        return choices[int(self.rng.integers(len(choices)))]

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False, step: int = 1) -> int:
        if name.endswith(".size") and self.sizes != "random":
            return low + (high - low) // step * step if self.sizes == "max" else low
        if log:  # log-uniform over [low - 0.5, high + 0.5], rounded: each integer its share of log-space
            value = math.exp(self.rng.uniform(math.log(low - 0.5), math.log(high + 0.5)))
            return min(max(round(value), low), high)
        return low + step * int(self.rng.integers((high - low) // step + 1))

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False,
                      step: float | None = None) -> float:
        if name.endswith(".size_share") and self.sizes != "random":  # a budget-aware size: its share of what fits
            return high if self.sizes == "max" else low
        if log:
            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        value = self.rng.uniform(low, high)
        return low + round((value - low) / step) * step if step else value


class _Grid:
    """Stands in for an Optuna trial that follows one path of an odometer over the shape dimensions'
    choices (every site on, sizes at their largest (a budget's size share at 1: the largest that fits),
    other dimensions at their first value or midpoint)."""

    def __init__(self, path: list[int]) -> None:
        self.path, self.picks, self.counts = path, [], []

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        dim = name.rsplit(".", 1)[-1]
        if dim == "use":
            return True
        if dim == "size":
            return max(choices)
        if dim not in SHAPE_DIMENSIONS:
            return choices[0]
        i = len(self.picks)
        self.picks.append(self.path[i] if i < len(self.path) else 0)
        self.counts.append(len(choices))
        return choices[self.picks[-1]]

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False, step: int = 1) -> int:
        return low + (high - low) // step * step if name.endswith(".size") else low

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False,
                      step: float | None = None) -> float:
        if name.endswith(".size_share"):
            return high
        return math.sqrt(low * high) if log else (low + high) / 2


def _every_path(space: SearchSpace, model_config: Any, budget: float | None) -> Iterator[PETLConfig]:
    path: list[int] = []
    while True:
        grid = _Grid(path)
        yield space.sample(grid, model_config, budget=budget)
        path = grid.picks
        while path and path[-1] + 1 >= grid.counts[len(path) - 1]:
            path.pop()
        if not path:
            return
        path[-1] += 1


def largest_designs(space: SearchSpace, model_config: Any, budget: float | None = None) -> list[PETLConfig]:
    """Designs that together hold every Δh parameter variant `space` can give on `model_config`, each at
    its largest shape: every combination of the shape dimensions, per site, at the largest size; the
    sites' lists are laid side by side (a shorter list repeats), so there are as many designs as the
    richest site has combinations, not their product.

    With a `budget`, each site's largest size is the largest that fits the budget with that site alone
    (an upper bound on its size in any design within the budget, where other sites take their share):
    on MPNet-base at 1% that keeps the store at a fraction of the space's largest shapes, which would be
    more parameters than the backbone's."""
    per_site = [list(_every_path(SearchSpace(space.name, space.source, (site,)), model_config, budget))
                for site in space.sites]
    count = max(len(designs) for designs in per_site)
    return [PETLConfig(**{site: spec for designs in per_site for site, spec in designs[i % len(designs)].sites()})
            for i in range(count)]


@dataclass(frozen=True)
class SpaceDesigns:
    """The sandwich rule's draws from `space` (see the module docstring); each takes the caller's RNG."""

    space: SearchSpace
    model_config: Any
    # sizes within what this budget leaves (a fraction of the backbone, as a budget-aware study samples
    # them), so that training spends its steps on the designs the search will score; None: the whole space
    budget: float | None = None

    def largest(self, rng: np.random.Generator) -> PETLConfig:
        return self.space.sample(_Draw(rng, "max", True), self.model_config, budget=self.budget)

    def smallest(self, rng: np.random.Generator) -> PETLConfig:
        return self.space.sample(_Draw(rng, "min", True), self.model_config, budget=self.budget)

    def random(self, rng: np.random.Generator) -> PETLConfig:
        return self.space.sample(_Draw(rng, "random", False), self.model_config, budget=self.budget)

    def all_largest(self) -> list[PETLConfig]:
        return largest_designs(self.space, self.model_config, self.budget)
