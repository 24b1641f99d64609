"""Evaluate a model on (a subset of) a split: its predictions, in the order of the indices asked for (made
in length order, for little padding), and the task's metrics on them. The model is evaluated in eval mode
and given back with every module in the mode it had.

A causal LM predicts in one of two ways. With a verbalizer it generates nothing: each class's answer words are
scored after the prompt (the sum of their tokens' log-probabilities, each given the prompt and the words before
it; no length normalisation) and the best-scored class is the prediction. Otherwise it generates greedily from
the prompt (padded on the left), at most `max_target_length` tokens, stopping at end of sequence; the prediction
is the text of the new tokens (special tokens dropped), which exact match compares after normalising both.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import torch

from . import metrics as metric_lib
from .config import TrainConfig
from .data import EncodedSplit, collate, collate_prompts
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
        if task.kind == "causal_lm":
            with autocast():
                predictions += _answer(model, tokenizer, data, chunk, cfg, device)
            continue
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



def _answer(model: torch.nn.Module, tokenizer: Any, data: EncodedSplit, chunk: list[int], cfg: TrainConfig,
            device: torch.device) -> list:
    """A causal LM's predictions on `chunk`: the best-scored class (verbalizer), else the generated answer."""
    if data.words:
        return label_scores(model, data, chunk, tokenizer.pad_token_id, device).argmax(-1).tolist()
    from transformers import GenerationConfig

    batch = collate_prompts(data, chunk, tokenizer.pad_token_id, device)
    greedy = GenerationConfig(max_new_tokens=cfg.max_target_length, do_sample=False, num_beams=1,
                              pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    generated = model.generate(**batch, generation_config=greedy)
    return tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)


def label_scores(model: torch.nn.Module, data: EncodedSplit, indices: list[int], pad_id: int,
                 device: torch.device) -> torch.Tensor:
    """(examples, classes): the log-likelihood of each class's answer words (`data.words`) after each example's
    prompt, the sum over the words' tokens of log p(token | prompt, the tokens before it).

    One forward pass per distinct sequence: a class's is its prompt and its words but the last token (whose
    probability the one before gives); classes whose words are one token each share the prompt alone. The LM
    head projects only the positions a score reads, where the model takes `logits_to_keep` (Llama, GPT-2)."""
    sequences: dict[tuple[int, ...], int] = {}
    wanted = []  # (example, class, sequence, position, token): one term of a score
    for e, i in enumerate(indices):
        prompt = data.rows([i])[0]["prompt_ids"]
        for c, word in enumerate(data.words):
            s = sequences.setdefault(tuple(prompt + word[:-1]), len(sequences))
            wanted += [(e, c, s, len(prompt) - 1 + j, token) for j, token in enumerate(word)]
    rows = list(sequences)
    width = max(len(r) for r in rows)
    ids = torch.tensor([list(r) + [pad_id] * (width - len(r)) for r in rows], dtype=torch.long, device=device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.long, device=device)
    e, c, s, position, token = (torch.tensor(column, device=device) for column in zip(*wanted))
    if "logits_to_keep" in inspect.signature(model.forward).parameters:  # the LM head only where a score reads it
        kept, position = torch.unique(position, return_inverse=True)
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=kept).logits
    else:
        logits = model(input_ids=ids, attention_mask=mask).logits
    terms = logits[s, position].float().log_softmax(-1).gather(-1, token[:, None]).squeeze(-1)
    scores = torch.zeros(len(indices), len(data.words), device=device, dtype=terms.dtype)
    return scores.index_put_((e, c), terms, accumulate=True).cpu()
