"""A toy setting for trying the search machinery in seconds: a tiny random BERT and a separable task.

    write_tiny_model("toy/model")     # 2-layer BERT, hidden 32, with the packaged MiniLM tokenizer
    write_toy_glue("toy/glue")        # toy/glue/SST-2/{train,dev}.tsv in GLUE's format
    write_toy_study("toy", "demo")    # both, plus toy/demo.yaml: a study on them (inline or on Ray)

Tests and benchmarks run whole studies on them (real trainer, real Ray, real storage) where MiniLM
on SST-2 would take minutes per trial. The task: label 1 iff the sentence holds 'wonderful' rather
than 'terrible', among filler words, so a model learns it within a few dozen steps.
"""
from __future__ import annotations

import random
from pathlib import Path

import yaml

from .training.models import DEFAULT_ENCODER, resolve_model

FILLER = "the a movie film story plot actor scene music some very quite rather it was is".split()


def toy_sentences(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randint(0, 1)
        words = rng.choices(FILLER, k=rng.randint(3, 12))
        words.insert(rng.randint(0, len(words)), "wonderful" if label else "terrible")
        rows.append((" ".join(words), label))
    return rows


def write_toy_glue(folder: str | Path, *, train: int = 512, dev: int = 128) -> Path:
    """An SST-2-format folder (sentence<TAB>label) holding the toy task; returns the GLUE root."""
    root = Path(folder)
    (root / "SST-2").mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train.tsv", train, 0), ("dev.tsv", dev, 1)):
        lines = ["sentence\tlabel"] + [f"{s}\t{y}" for s, y in toy_sentences(n, seed)]
        (root / "SST-2" / name).write_text("\n".join(lines) + "\n")
    return root


def write_tiny_model(folder: str | Path, *, seed: int = 0) -> Path:
    """Save a tiny random BERT (2 layers, hidden 32, 4 heads) with MiniLM's tokenizer, loadable by name."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(DEFAULT_ENCODER))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_toy_study(folder: str | Path, name: str, **overrides) -> Path:
    """The tiny model, the toy task and a study of them (the unified space under 5%, short trials) in
    `folder`; `overrides` replace the study's keys (the default space is the checkout's
    search_spaces/unified.yaml; pass `space=` elsewhere). Returns the study file."""
    folder = Path(folder)
    if not (folder / "model" / "config.json").exists():
        write_tiny_model(folder / "model")
    if not (folder / "glue" / "SST-2" / "dev.tsv").exists():
        write_toy_glue(folder / "glue")
    study = {"name": name, "model": str(folder / "model"), "task": "sst2", "data_dir": str(folder / "glue"),
             "space": str(Path(__file__).resolve().parents[1] / "search_spaces" / "unified.yaml"),
             "budget": 0.05, "n_trials": 5, "sampler": {"name": "random", "seed": 1}, "resources": {"cpus": 1},
             "train": {"max_steps": 40, "eval_every": 20, "batch_size": 16, "learning_rate": 0.01}}
    study.update(overrides)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path
