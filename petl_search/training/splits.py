"""The search split: examples carved out of a task's training data to select candidates on, so that
the official dev set stays unseen by the sampler and the scheduler and can judge what they chose.

The carve is a pure function of the labels, the size and the seed: every worker, every trial and every
later export or reseed gets the same split. Classification is stratified (each class keeps its share
of the training data, the rounding going to the largest remainders); regression and seq2seq are not.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..core.errors import rule
from .config import TrainConfig
from .metrics import constant_scores
from .tasks import Task


def split_size(size: int | float, n_train: int, cap: int | None = None) -> int:
    """Examples in the search split: `size` itself, or a fraction of the training data (0 < size < 1)
    of at most `cap` examples."""
    if isinstance(size, bool) or not isinstance(size, (int, float)) or size <= 0:
        raise rule("search_split.size", "a number of examples >= 1 or a fraction in (0, 1)", size)
    count = min(int(round(size * n_train)), cap or n_train) if size < 1 else int(size)
    if not 1 <= count < n_train:
        raise rule("search_split.size", f"fewer examples than the {n_train} training examples (and at least 1)",
                   size)
    return count


def carve(labels: Sequence, size: int | float, seed: int, *, stratify: bool,
          cap: int | None = None) -> tuple[list[int], list[int]]:
    """(the training indices that remain, the search split's indices), both sorted."""
    n = len(labels)
    count = split_size(size, n, cap)
    rng = np.random.default_rng(seed)
    if not stratify:
        held = rng.choice(n, count, replace=False)
    else:
        values = np.asarray(labels)
        classes, inverse = np.unique(values, return_inverse=True)
        members = [np.flatnonzero(inverse == c) for c in range(len(classes))]
        exact = np.array([count * len(m) / n for m in members])
        quota = np.floor(exact).astype(int)
        for c in np.argsort(-(exact - quota), kind="stable")[:count - quota.sum()]:  # largest remainders
            quota[c] += 1
        held = np.concatenate([rng.permutation(m)[:q] for m, q in zip(members, quota)])
    chosen = np.zeros(n, dtype=bool)
    chosen[held] = True
    return np.flatnonzero(~chosen).tolist(), np.flatnonzero(chosen).tolist()


def constant_references(task: Task, splits: Any, cfg: TrainConfig) -> dict[str, dict[str, float] | None]:
    """What a constant answer (the training data's majority class, or its mean) scores on the set a run is
    judged on and on the official dev set: a point at or below it has learnt nothing usable."""
    train_split = splits["train"]
    if task.kind == "seq2seq":
        return {"search split": None, "dev": None}
    labels = list(train_split["label"])
    dev = constant_scores(task.metric, labels, list(splits["validation"]["label"]))
    if not cfg.search_split:
        return {"dev": dev}
    rest, held = carve(labels, cfg.search_split, cfg.split_seed, stratify=task.kind == "classification",
                       cap=cfg.search_split_max)
    return {"search split": constant_scores(task.metric, [labels[i] for i in rest], [labels[i] for i in held]),
            "dev": dev}
