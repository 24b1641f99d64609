"""The search split: examples carved out of a task's training data to select candidates on, so that
the official dev set stays unseen by the sampler and the scheduler and can judge what they chose.

The carve is a pure function of the labels, the size and the seed (and, for a length-matched split, of the
training and dev texts' word counts): every worker, every trial and every later export or reseed gets the
same split. Classification is stratified (each class keeps its share of the training data, the rounding
going to the largest remainders), and so is a causal LM task with a verbalizer (by its labels); regression,
seq2seq and a causal LM task with an answer column are not.

`split_like="dev"` draws the split so that its examples look like the dev set's: their word counts follow
the dev set's (`length_matched`). On SST-2 the training rows are mostly short phrases and the dev rows full
sentences, so a random split scores above dev and ranks designs only loosely like it. Only the dev texts'
lengths are read, never their labels. `search_rows` is the one place a run's split is carved: the trainer
and `constant_references` both call it.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..core.errors import rule
from .config import TrainConfig
from .metrics import constant_scores
from .tasks import Task

LENGTH_BINS = 20  # word-count bins of the dev set (its quantiles): fine enough to follow its shape


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


def carve(labels: Sequence, size: int | float, seed: int, *, stratify: bool, cap: int | None = None,
          lengths: Sequence[int] | None = None, like_lengths: Sequence[int] | None = None
          ) -> tuple[list[int], list[int]]:
    """(the training indices that remain, the search split's indices), both sorted. With `like_lengths`
    (the word counts of the set to look like) and `lengths` (the training rows'), the split is length-matched
    (`length_matched`); without, it is drawn at random, as it always was."""
    n = len(labels)
    count = split_size(size, n, cap)
    rng = np.random.default_rng(seed)
    if like_lengths is not None:
        if lengths is None or len(lengths) != n:
            raise rule("carve.lengths", f"one word count per training row ({n})",
                       None if lengths is None else f"{len(lengths)} counts")
        held = length_matched(labels, lengths, like_lengths, count, rng, stratify=stratify)
    elif not stratify:
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


def length_bins(like_lengths: Sequence[int], bins: int = LENGTH_BINS) -> np.ndarray:
    """The edges of up to `bins` word-count bins holding about equal shares of `like_lengths` (its quantiles,
    rounded to whole words, repeats merged): bin i is [edges[i], edges[i+1]), the last one closed."""
    like = np.asarray(like_lengths, dtype=float)
    if like.size == 0:
        raise rule("split_like", "a set with at least one example to look like", "an empty set")
    return np.unique(np.round(np.quantile(like, np.linspace(0, 1, bins + 1))))


def bin_of(lengths: Sequence[int], edges: np.ndarray) -> np.ndarray:
    """Each length's bin under `edges` (length_bins), or -1 outside [edges[0], edges[-1]]."""
    values = np.asarray(lengths, dtype=float)
    if len(edges) == 1:
        return np.where(values == edges[0], 0, -1)
    where = np.searchsorted(edges, values, side="right") - 1
    where[values == edges[-1]] = len(edges) - 2
    return np.where((values < edges[0]) | (values > edges[-1]), -1, where)


def length_matched(labels: Sequence, lengths: Sequence[int], like_lengths: Sequence[int], count: int,
                   rng: np.random.Generator, *, stratify: bool) -> np.ndarray:
    """`count` training rows, drawn with `rng`, whose word counts follow `like_lengths`: each word-count bin
    of it (`length_bins`) gets its share of `count`. With `stratify`, each bin's quota is split among the
    classes in their share of the training rows *of that bin*: a random draw of training rows of those lengths,
    less its sampling noise. Not the classes' overall training shares (on SST-2 short phrases are more often
    positive than sentences are, so that would tilt the split's labels away from what rows of dev's lengths
    hold), and not the dev set's own label shares (the search split must not read the dev labels).
    A bin with too few training rows gives what it lacks to the bins furthest below their targets; rows
    whose length no dev row has are drawn only when every bin has run out."""
    edges = length_bins(like_lengths)
    nbins = max(len(edges) - 1, 1)
    like_share = np.bincount(bin_of(like_lengths, edges), minlength=nbins) / len(like_lengths)
    row_bin = bin_of(lengths, edges)
    values = np.asarray(labels) if stratify else np.zeros(len(row_bin), dtype=int)
    classes, row_class = np.unique(values, return_inverse=True)
    cells, exact, outside = [], [], []  # (bin, class) cells; bin -1 (lengths no dev row has) last
    for b in [*range(nbins), -1]:
        in_bin = row_bin == b
        for c in range(len(classes)):
            members = np.flatnonzero(in_bin & (row_class == c))
            cells.append(members)
            exact.append(count * like_share[b] * len(members) / max(in_bin.sum(), 1) if b >= 0 else 0.0)
            outside.append(b < 0)
    quota = _apportion(np.array(exact), np.array([len(m) for m in cells]), count, outside=np.array(outside))
    return np.concatenate([rng.permutation(m)[:q] for m, q in zip(cells, quota)]).astype(int)


def _apportion(exact: np.ndarray, capacity: np.ndarray, total: int, *, outside: np.ndarray) -> np.ndarray:
    """Whole quotas summing to `total`, each at most its capacity, near `exact`: floors first, then one at a
    time to the cell furthest below its target (ties: the first); `outside` cells only once the others are full."""
    quota = np.minimum(np.floor(exact), capacity).astype(int)
    while quota.sum() < total:
        spare = quota < capacity
        if not spare.any():
            raise rule("search_split.size", f"at most the {capacity.sum()} training rows", total)
        inside = spare & ~outside
        open_cells = inside if inside.any() else spare
        quota[np.argmax(np.where(open_cells, exact - quota, -np.inf))] += 1
    return quota


_WORDS: dict[tuple, list[int]] = {}  # per process: word counts by the split's `datasets` fingerprint


def word_counts(split: Any, task: Task) -> list[int]:
    """Each row's words (split on white space), over the texts a model reads (text_a and text_b; a source).
    Kept per process for a split with a `datasets` fingerprint (its content's hash): every trial asks again."""
    names = ("source",) if task.kind == "seq2seq" else task.text_columns
    key = (getattr(split, "_fingerprint", None), names)
    if key[0] is not None and key in _WORDS:
        return _WORDS[key]
    columns = [list(split[c]) for c in names]
    counts = [sum(len(str(text).split()) for text in row) for row in zip(*columns)]
    if key[0] is not None:
        _WORDS[key] = counts
    return counts


def search_rows(task: Task, splits: Any, cfg: TrainConfig) -> tuple[list[int], list[int]]:
    """(the training rows a run trains on, its search split's rows) under cfg's search split: what the
    trainer's `prepare_data` and `constant_references` both carve."""
    train_split = splits["train"]
    labels = train_split["label"] if task.kind != "seq2seq" else range(len(train_split))
    matched = {}
    if cfg.split_like == "dev":
        matched = dict(lengths=word_counts(train_split, task), like_lengths=word_counts(splits["validation"], task))
    return carve(labels, cfg.search_split, cfg.split_seed, stratify=task.has_classes,
                 cap=cfg.search_split_max, **matched)


def constant_references(task: Task, splits: Any, cfg: TrainConfig) -> dict[str, dict[str, float] | None]:
    """What a constant answer (the training data's majority class, its mean, or its most frequent answer) scores
    on the set a run is judged on and on the official dev set: a point at or below it has learnt nothing usable."""
    train_split = splits["train"]
    if task.kind == "seq2seq":
        return {"search split": None, "dev": None}
    labels = list(train_split["label"])
    dev = constant_scores(task.metric, labels, list(splits["validation"]["label"]))
    if not cfg.search_split:
        return {"dev": dev}
    rest, held = search_rows(task, splits, cfg)
    return {"search split": constant_scores(task.metric, [labels[i] for i in rest], [labels[i] for i in held]),
            "dev": dev}
