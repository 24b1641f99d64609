"""bench/trainer_vs_reference.py on a tiny BERT: the reference side (Hugging Face's Trainer + PEFT) reads
exactly the batches our trainer trains on, and both sides train the same thing (same trainable parameters,
same loss at every step), so that the benchmark's throughput ratio compares like with like."""
from __future__ import annotations

import copy
import random
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset, DatasetDict
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig

from petl_search.training import trainer as trainer_module
from petl_search.training.config import TrainConfig
from petl_search.training.models import DEFAULT_ENCODER, resolve_model, takes_token_types
from petl_search.training.tasks import get_task
from petl_search.training.trainer import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import trainer_vs_reference as bench  # noqa: E402  (bench/ is not a package)

TOKENIZER = AutoTokenizer.from_pretrained(resolve_model(DEFAULT_ENCODER))
WORDS = "the a movie film story plot actor scene music some very quite rather it was is wonderful terrible".split()
CFG = TrainConfig(max_steps=6, batch_size=8, eval_every=6, learning_rate=1e-2, seed=0, threads=1)


def sentences(n: int, seed: int) -> Dataset:
    rng = random.Random(seed)  # lengths vary, so batches need padding
    return Dataset.from_dict({"text_a": [" ".join(rng.choices(WORDS, k=rng.randint(2, 15))) for _ in range(n)],
                              "label": [rng.randint(0, 1) for _ in range(n)]})


DATA = DatasetDict({"train": sentences(96, 0), "validation": sentences(16, 1)})


def tiny_classifier(task):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=TOKENIZER.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, num_labels=task.num_labels)  # dropout on (0.1), as MiniLM's
    return AutoModelForSequenceClassification.from_config(config), TOKENIZER


def test_the_reference_trainer_reads_the_batches_our_trial_trains_on(tmp_path, monkeypatch) -> None:
    task = get_task("sst2")
    seen: list[list[int]] = []
    collate = trainer_module.collate
    monkeypatch.setattr(trainer_module, "collate", lambda split, indices, *a, **k: (
        seen.append(list(indices)), collate(split, indices, *a, **k))[1])
    train(bench.CONFIG, task, data=DATA, model_factory=tiny_classifier, train_config=CFG)
    monkeypatch.undo()

    split, batches = bench.our_batches(DATA, TOKENIZER, task, CFG)
    assert batches == seen  # the same examples in the same order as the trial
    net, _ = tiny_classifier(task)
    trainer = bench.reference_trainer(bench.peft_model(net), bench.reference_examples(split, batches, TOKENIZER, CFG),
                                      TOKENIZER, CFG, str(tmp_path))
    bench.compare_batches(split, batches, trainer.get_train_dataloader(), TOKENIZER.pad_token_id,
                          takes_token_types(net))
    assert {len(b) for b in batches} == {CFG.batch_size}
    widths = {max(len(r["input_ids"]) for r in split.rows(b)) for b in batches}
    assert len(widths) > 1  # padding was exercised: batches of different widths


def test_compare_batches_notices_a_difference(tmp_path) -> None:
    task = get_task("sst2")
    split, batches = bench.our_batches(DATA, TOKENIZER, task, CFG)
    examples = bench.reference_examples(split, batches, TOKENIZER, CFG)
    examples[0], examples[1] = examples[1], examples[0]  # two examples of the first batch swapped
    net, _ = tiny_classifier(task)
    trainer = bench.reference_trainer(bench.peft_model(net), examples, TOKENIZER, CFG, str(tmp_path))
    with pytest.raises(AssertionError, match="step 1"):
        bench.compare_batches(split, batches, trainer.get_train_dataloader(), TOKENIZER.pad_token_id, True)


def test_both_sides_train_the_same_parameters_to_the_same_losses(tmp_path) -> None:
    task = get_task("sst2")
    losses: list[float] = []
    ours = train(bench.CONFIG, task, data=DATA, model_factory=tiny_classifier, train_config=CFG,
                 progress=lambda step, total, loss: losses.append(loss))
    net, _ = tiny_classifier(task)
    theirs = copy.deepcopy(bench.reference_model(net))
    split, batches = bench.our_batches(DATA, TOKENIZER, task, CFG)
    trainer = bench.reference_trainer(theirs, bench.reference_examples(split, batches, TOKENIZER, CFG), TOKENIZER,
                                      CFG, str(tmp_path), bench.LoopClock(CFG.seed))
    trainer.train()
    assert ours.params["trained_total"] == sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    assert len(trainer.step_losses) == CFG.max_steps
    assert [float(x) for x in trainer.step_losses] == pytest.approx(losses, abs=1e-5)
    assert len(set(losses)) > 1 and losses[-1] != losses[0]  # it trained
