"""A contest as data: arms that spend the same number of trainings, judged at the same sizes on the same
fresh seeds. One YAML file; each arm and study seed becomes an ordinary study (its own storage).

    name: contest_sst2
    description: the search against the seed methods tuned at equal size, and against random search
    base:                     # study keys every arm shares (study.py): model, task, space, budget, train, ...
      task: sst2
      budget: 0.04            # the largest claim size
      sizes: [0.01, 0.02]     # the other claim sizes
      train: {max_steps: 150, learning_rate: {low: 1.0e-4, high: 1.0e-2}}
      confirm: {seeds: [100, 101, 102, 103, 104]}
    arms:                     # each: study keys of its own, and the study seeds it runs with
      search: {seeds: [0, 1, 2], sampler: {name: tpe, startup_trials: 10}, n_trials: 42}
      random: {seeds: [0, 1, 2], sampler: {name: random}, n_trials: 42}
      tuned: {n_trials: 0, baselines: [houlsby, lora, mam], tuning: {trainings: 2}}
    reference: tuned          # the arm the others are claimed against
    margin: 0.005             # non-inferiority margin (0.5 points)

Each arm's trainings are counted (search trials; baselines × sizes × tuning trainings) and must be equal
across arms: an unequal contest is refused, naming the counts. Arm studies are named
<contest>_<arm>_s<seed> and kept in <contest folder>/<arm>_s<seed>/study.db. This module reads and checks;
the runner (search/runner/contest.py) runs the arms, and analysis/contest_report.py judges them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .space import read_yaml
from .study import StudyError, StudySpec, check_top_keys, parse_study

CONTEST_KEYS = ("name", "description", "base", "arms", "reference", "margin", "alpha")
DEFAULT_MARGIN = 0.005  # issue 20: "no worse by more than 0.5 points"
DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class Arm:
    name: str
    studies: tuple[StudySpec, ...]  # one per study seed

    @property
    def trainings(self) -> int:
        """Trainings the arm spends choosing its points, per study seed (confirmations come on top and
        are the same for every arm: each pick × the confirm seeds)."""
        return trainings(self.studies[0])


@dataclass(frozen=True)
class ContestSpec:
    name: str
    source: str
    description: str
    arms: tuple[Arm, ...]
    reference: str
    margin: float
    alpha: float

    @property
    def folder(self) -> Path:
        return Path(self.source).resolve().parent / self.name

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)

    @property
    def rivals(self) -> tuple[Arm, ...]:
        return tuple(a for a in self.arms if a.name != self.reference)


def trainings(spec: StudySpec) -> int:
    """A study's trainings before confirmation (StudySpec.trainings)."""
    return spec.trainings


def load_contest(path: str | Path) -> ContestSpec:
    path = Path(path)
    return parse_contest(read_yaml(path, StudyError, "contest file"), source=str(path))


def parse_contest(data: Any, *, source: str) -> ContestSpec:
    check_top_keys(source, data, "contest", CONTEST_KEYS, ("name", "base", "arms", "reference"))
    name, base, arms = data["name"], data["base"], data["arms"]
    if not (isinstance(name, str) and name.replace("-", "").replace("_", "").isalnum()):
        raise StudyError(f"{source}: name must be letters, digits, '-' and '_', but got {name!r}")
    if not isinstance(base, Mapping):
        raise StudyError(f"{source}: base must be a mapping of study keys, but got {base!r}")
    if not (isinstance(arms, Mapping) and len(arms) >= 2):
        raise StudyError(f"{source}: arms must map at least two arm names to their study keys, but got {arms!r}")
    if data["reference"] not in arms:
        raise StudyError(f"{source}: reference must name an arm ({sorted(arms)}), but got {data['reference']!r}")
    folder = Path(source).resolve().parent / name
    built = tuple(_arm(source, name, folder, base, arm, keys) for arm, keys in arms.items())
    counts = {a.name: a.trainings for a in built}
    if len(set(counts.values())) != 1:
        raise StudyError(f"{source}: every arm must spend the same number of trainings per study seed, but they "
                         f"spend {counts} (search arms: n_trials; a tuned arm: baselines × sizes × tuning.trainings)")
    margin, alpha = data.get("margin", DEFAULT_MARGIN), data.get("alpha", DEFAULT_ALPHA)
    for key, value, ok in (("margin", margin, lambda v: v >= 0), ("alpha", alpha, lambda v: 0 < v < 1)):
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and ok(value)):
            raise StudyError(f"{source}: {key} must be " + ("a score difference >= 0" if key == "margin" else
                             "a level in (0, 1)") + f", but got {value!r}")
    return ContestSpec(name, source, str(data.get("description", "")), built, data["reference"], float(margin),
                       float(alpha))


def _arm(source: str, contest: str, folder: Path, base: Mapping[str, Any], arm: str, keys: Any) -> Arm:
    if not (isinstance(keys, Mapping) and arm.replace("_", "").isalnum()):
        raise StudyError(f"{source}: arms.{arm} must be a mapping of study keys under a name of letters, digits "
                         f"and '_', but got {keys!r}")
    keys = dict(keys)
    seeds = keys.pop("seeds", [base.get("seed", 0)])
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) and s >= 0 for s in seeds)
            and len(set(seeds)) == len(seeds)):
        raise StudyError(f"{source}: arms.{arm}.seeds must be distinct non-negative integers, but got {seeds!r}")
    for key in ("name", "storage", "seed"):
        if key in keys or key in base:
            raise StudyError(f"{source}: {key} is set by the contest for each arm and seed; remove it from "
                             f"{'arms.' + arm if key in keys else 'base'}")
    studies = []
    for seed in seeds:
        study_name = f"{contest}_{arm}_s{seed}"
        storage = f"sqlite:///{folder / f'{arm}_s{seed}' / 'study.db'}"
        data = {**base, **keys, "name": study_name, "seed": seed, "storage": storage,
                "description": f"contest {contest}, arm {arm}, study seed {seed}"}
        try:
            studies.append(parse_study(data, source=source))
        except StudyError as exc:
            raise StudyError(f"arms.{arm} (study seed {seed}): {exc}") from None
    return Arm(arm, tuple(studies))
