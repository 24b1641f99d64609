"""Evaluate a model on (a subset of) a split: its predictions, in the order of the indices asked for (made
in length order, for little padding), and the task's metrics on them. The model is evaluated in eval mode
and given back with every module in the mode it had."""
from __future__ import annotations

from typing import Any, Callable

import torch

from . import metrics as metric_lib
from .config import TrainConfig
from .data import EncodedSplit, collate
from .models import takes_token_types
from .tasks import Task


def evaluate(model: torch.nn.Module, tokenizer: Any, data: EncodedSplit, indices: list[int], task: Task,
             cfg: TrainConfig, device: torch.device, autocast: Callable[[], Any]) -> dict[str, float]:
    """The task's scores on `indices`."""
    return score(task, data, indices, predict(model, tokenizer, data, indices, task, cfg, device, autocast))


def score(task: Task, data: EncodedSplit, indices: list[int], predictions: list) -> dict[str, float]:
    """The task's scores of `predictions`, made on `indices` in that order."""
    return metric_lib.compute(task.metric, predictions, [data.references[i] for i in indices])


@torch.no_grad()
def predict(model: torch.nn.Module, tokenizer: Any, data: EncodedSplit, indices: list[int], task: Task,
            cfg: TrainConfig, device: torch.device, autocast: Callable[[], Any]) -> list:
    """The model's predictions on `indices`, in the order of `indices`: class ids, regression values or
    generated texts. One forward pass over them, in length order; reordered back here, so that a caller can
    pair them with another model's example by example."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        made, order = _predict(model, tokenizer, data, indices, task, cfg, device, autocast)
    finally:
        for module, training in modes:
            module.training = training
    by_index = dict(zip(order, made))
    return [by_index[i] for i in indices]


def _predict(model: torch.nn.Module, tokenizer: Any, data: EncodedSplit, indices: list[int], task: Task,
             cfg: TrainConfig, device: torch.device, autocast: Callable[[], Any]) -> tuple[list, list[int]]:
    """The model's predictions on `indices`, in the order they were made (which it returns too)."""
    lengths = {i: len(row["input_ids"]) for i, row in zip(indices, data.rows(indices))}
    order = sorted(indices, key=lambda i: (lengths[i], i))  # by length: little padding; deterministic
    predictions: list = []
    for start in range(0, len(order), cfg.eval_batch_size):
        chunk = order[start:start + cfg.eval_batch_size]
        batch = collate(data, chunk, tokenizer.pad_token_id, device, takes_token_types(model))
        batch.pop("labels")
        with autocast():
            if task.kind == "seq2seq":
                generated = model.generate(**batch, max_new_tokens=cfg.max_target_length, num_beams=1,
                                           do_sample=False)
                predictions += tokenizer.batch_decode(generated, skip_special_tokens=True)
                continue
            logits = model(**batch).logits.float()
        predictions += (logits.squeeze(-1) if task.kind == "regression" else logits.argmax(-1)).tolist()
    return predictions, order

