"""A task's data on its way into a model: splits loaded once per process, texts tokenised lazily (only
the rows a trial reaches, each once), batches of similar length, and padding.

A causal LM's example is its prompt's tokens (as the tokenizer writes them, special tokens included, keeping the
last `max_length` when longer: the cue before the answer stays), then the answer's (tokenised alone, without
special tokens, at most `max_target_length`), then end of sequence; its labels are -100 on the prompt (and on
padding), so the loss is on the answer and the end of sequence only. Training batches are padded on the right;
prompts for generation on the left (`collate_prompts`), so that every row's next token comes at the same place.

Later trials in the same worker reuse what earlier ones loaded and tokenised. A study's driver instead tokenises
every row once and ships the splits to its workers packed (`EncodedSplit.packed`: flat arrays, no tokenizer, no
texts), whose rows are then read from the arrays, never tokenised (trainer.encode_task).
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
from typing import Any, Iterator

import numpy as np
import torch

from ..core.errors import PETLError
from .config import TrainConfig
from .tasks import Task

IGNORED = -100  # a label the loss skips (a prompt's or padding's token), as transformers' losses read it


class EncodedSplit:
    """A split's texts, tokenised lazily: only the rows asked for, each once (cheap for short trials)."""

    def __init__(self, dataset: Any, tokenizer: Any, task: Task, cfg: TrainConfig) -> None:
        self.tokenizer, self.task, self.cfg = tokenizer, task, cfg
        columns = ("source",) if task.kind == "seq2seq" else task.text_columns
        self.texts = list(zip(*(list(dataset[c]) for c in columns)))
        self.references = list(dataset["target" if task.kind == "seq2seq" else "label"])
        self._rows: dict[int, dict[str, list[int]]] = {}
        self._packed: _PackedRows | None = None  # every row, when the split came tokenised (`packed`)
        # a causal LM's answer words per class (a verbalizer's), as tokens: what it is trained on and scored by
        self.words = [self._answer(word) for word in task.verbalizer]

    def _answer(self, text: str) -> list[int]:
        """An answer's tokens, alone and without special tokens, at most max_target_length of them."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"][:self.cfg.max_target_length]

    def __len__(self) -> int:
        return len(self.references)

    def packed(self) -> "EncodedSplit":
        """A copy with every row tokenised, packed into flat arrays, without the tokenizer and the texts: what a
        study's driver ships to its workers (it pickles small, and Ray's object store hands its arrays over
        without copying them); the copy's rows() reads the arrays and never tokenises."""
        self.rows(list(range(len(self))))
        out = copy.copy(self)
        out.tokenizer, out.texts, out._rows = None, [], {}
        out._packed = _PackedRows([self._rows[i] for i in range(len(self))])
        return out

    def rows(self, indices: list[int]) -> list[dict[str, list[int]]]:
        missing = [i for i in indices if i not in self._rows]
        if missing and self._packed is not None:
            self._rows.update((i, self._packed.row(i)) for i in missing)
        elif missing and self.task.kind == "causal_lm":
            self._prompt_rows(missing)
        elif missing:
            columns = list(zip(*(self.texts[i] for i in missing)))
            enc = self.tokenizer(*(list(c) for c in columns), truncation=True, max_length=self.cfg.max_length)
            if self.task.kind == "seq2seq":
                targets = self.tokenizer(text_target=[self.references[i] for i in missing], truncation=True,
                                         max_length=self.cfg.max_target_length)["input_ids"]
            keep = [k for k in ("input_ids", "token_type_ids") if k in enc]
            for j, i in enumerate(missing):
                row = {k: enc[k][j] for k in keep}
                row["labels"] = targets[j] if self.task.kind == "seq2seq" else self.references[i]
                self._rows[i] = row
        return [self._rows[i] for i in indices]

    def _prompt_rows(self, missing: list[int]) -> None:
        """Rows `missing` of a causal LM task: prompt + answer + end of sequence, labelled on the answer only."""
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise PETLError(f"task {self.task.name!r}: a causal LM task ends each answer with the tokenizer's end of "
                            f"sequence, but the tokenizer {getattr(self.tokenizer, 'name_or_path', '')!r} has none")
        prompts = self.tokenizer([self.texts[i][0] for i in missing])["input_ids"]
        for i, prompt in zip(missing, prompts):
            prompt = prompt[-self.cfg.max_length:]
            label = self.references[i]
            answer = (self.words[label] if self.words else self._answer(label)) + [eos]
            self._rows[i] = {"input_ids": prompt + answer, "labels": [IGNORED] * len(prompt) + answer,
                             "prompt_ids": prompt}


class _PackedRows:
    """Tokenised rows as flat arrays: per field, every row's values end to end (int32) and where each row starts;
    a field of one value per row (a class id, a score) as one array. `row(i)` gives back row i as it was."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.fields: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        for key in rows[0] if rows else ():
            values = [row[key] for row in rows]
            if isinstance(values[0], list):
                starts = np.concatenate([[0], np.cumsum([len(v) for v in values])]).astype(np.int64)
                flat = np.fromiter(itertools.chain.from_iterable(values), dtype=np.int32, count=int(starts[-1]))
                self.fields[key] = (flat, starts)
            else:
                self.fields[key] = (np.asarray(values), None)

    def row(self, i: int) -> dict[str, Any]:
        return {key: values[starts[i]:starts[i + 1]].tolist() if starts is not None else values[i].item()
                for key, (values, starts) in self.fields.items()}


_ENCODED: dict[tuple, EncodedSplit] = {}  # per process: later trials reuse what earlier ones tokenised
def encode(dataset: Any, tokenizer: Any, task: Task, cfg: TrainConfig, key: tuple | None) -> EncodedSplit:
    """`dataset` tokenised lazily, shared with every earlier call with the same `key` (which must name the
    data by what it holds); key None: not cached."""
    if key is None:
        return EncodedSplit(dataset, tokenizer, task, cfg)
    # an own task's definition (prompt, verbalizer, labels, files' hashes) enters the key: two tasks of one name
    # in one process (a study's task edited, a notebook) must not share encodings; a built-in task's is empty
    definition = json.dumps(task.definition, sort_keys=True) if task.definition else ""
    key = (*key, definition, tokenizer_identity(tokenizer), cfg.max_length, cfg.max_target_length)
    if key not in _ENCODED:
        _ENCODED[key] = EncodedSplit(dataset, tokenizer, task, cfg)
    return _ENCODED[key]


def tokenizer_identity(tokenizer: Any) -> str:
    """What names a tokenizer in the cache: a hash of its vocabulary, rules and special tokens, not its
    `name_or_path`, which every tokenizer built in memory leaves empty (two of them shared encodings) and which a
    folder keeps when its files change. ~6 ms for MiniLM's."""
    backend = getattr(tokenizer, "backend_tokenizer", None)  # a fast tokenizer: everything, as JSON
    if backend is not None:
        rules = backend.to_str()
    elif hasattr(tokenizer, "get_vocab"):  # a slow one: its vocabulary
        rules = json.dumps(tokenizer.get_vocab(), sort_keys=True)
    else:  # not a tokenizer (a test's stand-in): its name, if any
        rules = str(getattr(tokenizer, "name_or_path", ""))
    special = [getattr(tokenizer, f"{name}_token_id", None) for name in ("bos", "eos", "pad", "sep", "cls", "unk")]
    return hashlib.sha256(f"{type(tokenizer).__name__}\n{special}\n{rules}".encode()).hexdigest()


def content_key(splits: Any) -> tuple | None:
    """What names an in-memory DatasetDict in the cache: its train and validation splits' `datasets`
    fingerprints (a hash of their contents and of every transform applied to them), never the object's
    id, which a later dataset may reuse once this one is garbage-collected. None (do not cache) when a
    split has no fingerprint."""
    prints = tuple(getattr(splits[name], "_fingerprint", None) for name in ("train", "validation"))
    return None if None in prints else ("fingerprints", *prints)


def bucketed_batches(split: EncodedSplit, batch_size: int, rng: np.random.Generator,
                     bucket: int = 50) -> Iterator[list[int]]:
    """Endless shuffled batches of similar token length (little padding), epoch after epoch.

    Each bucket of `bucket` batches is tokenised when first reached, so a short trial tokenises only
    what it trains on.
    """
    n = len(split)
    while True:
        order = rng.permutation(n).tolist()
        for start in range(0, n, batch_size * bucket):
            chunk = order[start:start + batch_size * bucket]
            lengths = {i: len(row["input_ids"]) for i, row in zip(chunk, split.rows(chunk))}
            chunk.sort(key=lambda i: lengths[i], reverse=True)
            batches = [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
            for b in rng.permutation(len(batches)):
                yield batches[b]


def collate(split: EncodedSplit, indices: list[int], pad_id: int, device: torch.device,
            token_types: bool) -> dict[str, torch.Tensor]:
    rows = split.rows(indices)
    width = max(len(r["input_ids"]) for r in rows)

    def pad(seqs: list[list[int]], value: int, size: int) -> torch.Tensor:
        return torch.tensor([s + [value] * (size - len(s)) for s in seqs], dtype=torch.long)

    ids = [r["input_ids"] for r in rows]
    batch = {"input_ids": pad(ids, pad_id, width), "attention_mask": pad([[1] * len(s) for s in ids], 0, width)}
    if token_types and "token_type_ids" in rows[0]:
        batch["token_type_ids"] = pad([r["token_type_ids"] for r in rows], 0, width)
    labels = [r["labels"] for r in rows]
    if split.task.kind in ("seq2seq", "causal_lm"):  # a causal LM's labels are as long as its inputs
        batch["labels"] = pad(labels, IGNORED, max(len(s) for s in labels))
    else:
        batch["labels"] = torch.tensor(labels, dtype=torch.float32 if split.task.kind == "regression" else torch.long)
    return {k: v.to(device) for k, v in batch.items()}


def collate_prompts(split: EncodedSplit, indices: list[int], pad_id: int,
                    device: torch.device) -> dict[str, torch.Tensor]:
    """A causal LM task's prompts alone, padded on the left (generation continues every row at the end), with
    their attention mask."""
    prompts = [r["prompt_ids"] for r in split.rows(indices)]
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long)
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
