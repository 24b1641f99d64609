"""How one candidate is trained (`TrainConfig`) and what comes back (`TrainResult`): plain data.

This module must not import torch: a study file's `train:` block is validated with it before any
worker starts.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from ..core.errors import PETLConfigError, rule
from .tasks import get_task

SPLIT_LIKE = (None, "dev")  # what TrainConfig.split_like may be: a random search split, or one like dev

@dataclass(frozen=True)
class TrainConfig:
    """How one candidate is trained. Budgets: `max_steps`, and optionally `max_seconds` of training."""

    max_steps: int = 300
    max_seconds: float | None = None
    batch_size: int = 32
    eval_batch_size: int = 64  # measured fastest for MiniLM on 2 CPU threads
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    eval_every: int = 100
    eval_examples: int | None = 256  # dev subset for the evaluations during training; the last one is full
    early_stopping_patience: int | None = None  # evaluations without improvement before stopping
    max_length: int = 128
    max_target_length: int = 64  # seq2seq: target length for training and generation
    max_train_examples: int | None = None
    # The search split: select on this many training examples (or this fraction of them), carved out of
    # training, instead of on the official dev set, which is then evaluated once, at the end. None: the
    # dev set is the evaluation set (training one point by hand).
    search_split: int | float | None = None
    search_split_max: int | None = None  # a cap on a fractional search split, in examples
    split_seed: int = 0  # which examples the search split holds (a study's, the same for every trial)
    # What the search split's examples look like. None: a random (stratified) draw from training, as always.
    # "dev": length-matched, its rows' word counts following the dev set's (training/splits.py length_matched;
    # the dev texts' lengths are read, never their labels). Needs search_split.
    split_like: str | None = None
    seed: int = 0
    threads: int | None = None  # CPU threads of this worker (None: leave torch's default)
    bf16: bool = True  # autocast to bfloat16 on GPU
    device: str | None = None  # None: cuda when available, else cpu

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "eval_batch_size", "eval_every", "max_length", "max_target_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise rule(f"train.{name}", "a positive integer", value)
        if self.search_split is not None and (isinstance(self.search_split, bool) or not isinstance(
                self.search_split, (int, float)) or self.search_split <= 0 or
                (isinstance(self.search_split, float) and self.search_split >= 1)):
            raise rule("train.search_split", "null, a number of examples >= 1 or a fraction in (0, 1)",
                       self.search_split)
        if self.split_like not in SPLIT_LIKE:
            raise rule("train.split_like", f"one of {list(SPLIT_LIKE)}", self.split_like)
        if self.split_like is not None and not self.search_split:
            raise rule("train.split_like", "null without a search_split (there is no split to draw)",
                       self.split_like)
        for name in ("eval_examples", "early_stopping_patience", "max_train_examples", "threads", "search_split_max"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise rule(f"train.{name}", "a positive integer or null", value)
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < 1):
            raise rule("train.learning_rate", "a number in (0, 1)", self.learning_rate)
        if not 0 <= self.warmup_ratio < 1:
            raise rule("train.warmup_ratio", "a number in [0, 1)", self.warmup_ratio)
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise rule("train.max_seconds", "a positive number or null", self.max_seconds)
        if self.weight_decay < 0:
            raise rule("train.weight_decay", "a number >= 0", self.weight_decay)
        if self.max_grad_norm <= 0:
            raise rule("train.max_grad_norm", "a positive number", self.max_grad_norm)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        names = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - names)
        if unknown:
            raise PETLConfigError(f"train has no field {unknown[0]!r}; its fields are {sorted(names)}")
        return cls(**dict(data))

    @property
    def warmup_steps(self) -> int:
        return int(self.warmup_ratio * self.max_steps)

    def lr_factor(self, step: int) -> float:
        """The learning rate at optimizer step `step` (0-based) as a fraction of `learning_rate`:
        linear warmup over `warmup_steps`, then linear decay to 0 at `max_steps`."""
        warmup = self.warmup_steps
        return min((step + 1) / max(warmup, 1),
                   max(0.0, (self.max_steps - step) / max(self.max_steps - warmup, 1)))


@dataclass
class TrainResult:
    status: str  # "completed", "pruned" (on_eval asked to stop) or "failed"
    reason: str | None
    task: str
    model: str
    main_metric: str
    metrics: dict[str, float]  # final evaluation on the evaluation set: the search split, else dev (empty if failed)
    history: list[dict[str, Any]]  # every evaluation: step, on (which set), metrics, mean training loss
    params: dict[str, float]  # Δh trained / stored, head, backbone, stored fraction (the budgeted one)
    steps: int
    train_examples: int
    seconds: dict[str, float]  # total, model_load, tokenize, data, compute (forward/backward/step), eval, dev
    throughput: float  # training examples per second of compute
    peak_memory_mb: float
    device: str
    petl_config: dict[str, Any]
    train_config: dict[str, Any]
    full_finetune: bool = False
    evaluated_on: str = "dev"  # "search split" (carved from training) or "dev" (the official dev set)
    dev_metrics: dict[str, float] = field(default_factory=dict)  # the official dev set, at the end of a
    # completed run that selected on a search split (the search never sees it); empty otherwise
    # What a constant answer (the training data's majority class, or its mean) scores on each set the run
    # is judged on ("search split", "dev"; None for generation tasks): a score at or below it learnt nothing
    constant_scores: dict[str, dict[str, float] | None] = field(default_factory=dict)
    trained_model: Any = field(default=None, repr=False)

    @property
    def score(self) -> float | None:
        return self.metrics.get(self.main_metric)

    def learnt_nothing(self) -> str | None:
        """A warning when the final score is at or below what a constant answer scores on the same set
        (a run that learnt nothing usable), else None."""
        constant = (self.constant_scores.get(self.evaluated_on) or {}).get(self.main_metric)
        if self.status != "completed" or self.score is None or constant is None or not math.isfinite(constant) \
                or self.score > constant:
            return None
        answer = "the score of always answering the training mean" if get_task(self.task).kind == "regression" \
            else "the majority-class score"
        return (f"{self.main_metric} {self.score:.4f} is at or below {answer} {constant:.4f} on the evaluation set "
                f"({self.evaluated_on}): the model learnt nothing usable; try more steps or another learning rate")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("trained_model")
        return out
