"""The length-matched search split (TrainConfig.split_like="dev"): its rows' word counts follow the dev set's,
it is a pure function of the data, the size and the seed, it stays out of training, and without it every
split is carved exactly as before. Tiny synthetic data; no model."""
from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import pytest
from datasets import Dataset, DatasetDict

import petl_search as ps
from petl_search.training import data as data_module
from petl_search.training.config import TrainConfig
from petl_search.training.metrics import constant_scores
from petl_search.training.splits import (bin_of, carve, constant_references, length_bins, length_matched,
                                         search_rows, word_counts)
from petl_search.training.tasks import get_task
from petl_search.training.trainer import prepare_data

SST2 = get_task("sst2")


def sentences(n: int, seed: int, *, long: float) -> Dataset:
    """`n` rows of random words: a share `long` of them 10-40 words long, the rest 1-9 (SST-2's train is mostly
    short phrases, its dev full sentences); short rows are more often positive, as on SST-2."""
    rng = random.Random(seed)
    rows = {"text_a": [], "label": []}
    for _ in range(n):
        is_long = rng.random() < long
        rows["text_a"].append(" ".join(rng.choices("a b c d e f g".split(), k=rng.randint(10, 40) if is_long
                                                   else rng.randint(1, 9))))
        rows["label"].append(int(rng.random() < (0.5 if is_long else 0.65)))
    return Dataset.from_dict(rows)


DATA = DatasetDict({"train": sentences(3000, 0, long=0.3), "validation": sentences(300, 1, long=0.85)})
TRAIN_LENGTHS = np.array(word_counts(DATA["train"], SST2))
DEV_LENGTHS = np.array(word_counts(DATA["validation"], SST2))


def like_dev(size: int | float = 200, seed: int = 0, cap: int | None = None) -> TrainConfig:
    return TrainConfig(search_split=size, search_split_max=cap, split_seed=seed, split_like="dev")


def histogram_distance(lengths: np.ndarray, reference: np.ndarray) -> float:
    """Total variation distance between the two sets' shares over the reference's word-count bins."""
    edges = length_bins(reference)
    bins = len(edges) - 1
    share = lambda values: np.bincount(bin_of(values, edges) + 1, minlength=bins + 1) / len(values)  # -1 -> 0
    return 0.5 * float(np.abs(share(lengths) - share(reference)).sum())


# What carve gave before split_like existed (computed with the implementation at e54d8ea)
BEFORE = [
    (dict(labels=[(i * 7) % 3 for i in range(60)], size=12, seed=5, stratify=True),
     [7, 9, 19, 20, 21, 27, 41, 46, 47, 54, 55, 59]),
    (dict(labels=[(i * 7) % 3 for i in range(60)], size=12, seed=5, stratify=False),
     [1, 3, 16, 23, 24, 27, 32, 34, 40, 42, 55, 58]),
    (dict(labels=[(i * 7) % 3 for i in range(60)], size=0.5, seed=2, stratify=True, cap=9),
     [11, 16, 18, 21, 34, 43, 54, 56, 59]),
]
BEFORE_HASHED = [  # 5000 rows, 0.1 capped at 1000: the sha256 of the held indices' JSON, its first 16 digits
    (True, "b0a23eaf2c6c4f30"), (False, "feee4e7f7b60aa39")]


@pytest.mark.parametrize("args, held", BEFORE)
def test_without_split_like_the_carve_is_exactly_the_one_before(args, held) -> None:
    labels = args.pop("labels")
    rest, carved = carve(labels, args.pop("size"), args.pop("seed"), **args)
    assert carved == held and rest == sorted(set(range(len(labels))) - set(held))


@pytest.mark.parametrize("stratify, digest", BEFORE_HASHED)
def test_without_split_like_a_larger_carve_is_the_one_before(stratify, digest) -> None:
    rest, held = carve([(i * i) % 4 for i in range(5000)], 0.1, 0, stratify=stratify, cap=1000)
    assert len(held) == 500 and hashlib.sha256(json.dumps(held).encode()).hexdigest()[:16] == digest


def test_a_run_without_split_like_carves_what_carve_always_did() -> None:
    cfg = TrainConfig(search_split=0.1, search_split_max=200, split_seed=4)
    assert cfg.split_like is None
    assert search_rows(SST2, DATA, cfg) == carve(DATA["train"]["label"], 0.1, 4, stratify=True, cap=200)


def test_the_length_matched_split_has_the_dev_sets_lengths() -> None:
    rest, held = search_rows(SST2, DATA, like_dev(300))
    _, random_held = search_rows(SST2, DATA, TrainConfig(search_split=300))
    assert histogram_distance(TRAIN_LENGTHS[random_held], DEV_LENGTHS) > 0.4  # a random split looks like train
    assert histogram_distance(TRAIN_LENGTHS[held], DEV_LENGTHS) < 0.06
    assert abs(np.median(TRAIN_LENGTHS[held]) - np.median(DEV_LENGTHS)) <= 2
    assert (TRAIN_LENGTHS[held] >= 10).mean() == pytest.approx((DEV_LENGTHS >= 10).mean(), abs=0.03)


def test_the_length_matched_split_keeps_the_classes_of_training_rows_of_each_length() -> None:
    """Per length bin, the classes come in their share among the training rows of that bin (rounded): long
    rows are less often positive here, so the split's share of positives follows the long rows', not train's."""
    _, held = search_rows(SST2, DATA, like_dev(300))
    labels = np.array(DATA["train"]["label"])
    long = TRAIN_LENGTHS >= 10
    assert labels[held].mean() == pytest.approx(labels[long].mean(), abs=0.04)
    assert labels[held].mean() < labels.mean() - 0.03


def test_the_length_matched_split_is_deterministic_disjoint_and_sized() -> None:
    rest, held = search_rows(SST2, DATA, like_dev(200, seed=3))
    assert (rest, held) == search_rows(SST2, DATA, like_dev(200, seed=3))  # every worker carves the same
    assert search_rows(SST2, DATA, like_dev(200, seed=4))[1] != held
    assert len(held) == 200 and not set(rest) & set(held) and sorted(rest + held) == list(range(3000))
    assert len(search_rows(SST2, DATA, like_dev(0.1))[1]) == 300
    assert len(search_rows(SST2, DATA, like_dev(0.1, cap=120))[1]) == 120
    with pytest.raises(ps.PETLConfigError, match="search_split.size must be fewer examples than the 3000"):
        search_rows(SST2, DATA, like_dev(3000))


def test_a_length_bin_with_too_few_training_rows_gives_what_it_lacks_to_the_others() -> None:
    """Dev is all 20 words long or 5; train has just 3 rows of 20 words: the split still holds `count` rows,
    those 3 among them, the rest as near dev's lengths as training has."""
    lengths = [20] * 3 + [5] * 50 + [2] * 50
    held = length_matched([0] * len(lengths), lengths, [20] * 90 + [5] * 10, 40, np.random.default_rng(0),
                          stratify=False)
    assert len(held) == 40 and len(set(held.tolist())) == 40
    assert {0, 1, 2} <= set(held.tolist()) and all(lengths[i] == 5 for i in held if i > 2)
    # only when no row has a dev length are the others drawn
    held = length_matched([0] * len(lengths), lengths, [20] * 90 + [5] * 10, 60, np.random.default_rng(0),
                          stratify=False)
    assert sum(lengths[i] == 2 for i in held) == 7


def test_the_trainer_and_the_constant_references_carve_the_same_rows_and_cache_them_apart(monkeypatch) -> None:
    monkeypatch.setattr(data_module, "_ENCODED", {})
    cfg = like_dev(150, seed=2)
    rest, held = search_rows(SST2, DATA, cfg)
    texts = lambda rows: [(DATA["train"]["text_a"][i],) for i in rows]
    prepared = prepare_data(DATA, object(), SST2, cfg, ("synthetic",))  # texts are tokenised lazily: no tokenizer
    assert prepared.select.texts == texts(held) and prepared.train.texts == texts(rest)
    labels = DATA["train"]["label"]
    assert constant_references(SST2, DATA, cfg)["search split"] == constant_scores(
        "accuracy", [labels[i] for i in rest], [labels[i] for i in held])
    # the same key, split parameters and seed without split_like: the cache must not hand back the rows above
    plain = TrainConfig(search_split=150, split_seed=2)
    again = prepare_data(DATA, object(), SST2, plain, ("synthetic",))
    assert again.select.texts == texts(search_rows(SST2, DATA, plain)[1]) != prepared.select.texts


def test_word_counts_add_both_texts_of_a_pair() -> None:
    pairs = Dataset.from_dict({"text_a": ["a b", "c"], "text_b": ["d e f", ""], "label": [0, 1]})
    assert word_counts(pairs, get_task("rte")) == [5, 1]


@pytest.mark.parametrize("fields, message", [
    (dict(search_split=100, split_like="train"), "train.split_like must be one of \\[None, 'dev'\\]"),
    (dict(split_like="dev"), "train.split_like must be null without a search_split"),
])
def test_split_like_is_checked(fields, message) -> None:
    with pytest.raises(ps.PETLConfigError, match=message):
        TrainConfig(**fields)
