"""Train a weight-sharing supernet with the sandwich rule, and score designs on inherited weights.

    data = prepare_data(splits, tokenizer, task, cfg, key)          # the trainer's: search split carved out
    result = train_supernet(supernet, designs, data, tokenizer, task, cfg, random_designs=2)
    scores = evaluate_design(supernet, design, data.select, tokenizer, task, cfg)   # no training
    adapt = HeadAdaptation.of(data, cfg, steps=20)   # or: the head fitted to each design first, alone
    scores = evaluate_design(supernet, design, data.select, tokenizer, task, cfg, adapt=adapt)
    supernet.save("supernet.safetensors")

Each step draws the largest design, the smallest and `random_designs` random ones (the sandwich rule
of BigNAS and AutoFormer: the extremes bound every design in between, so training both lifts all),
adds their losses on one batch and takes one optimizer step over the shared Δh tensors and the head.
The head is shared by every design, so it fits none exactly: `HeadAdaptation` gives each design, before it
is scored, a few steps of a head of its own (a copy, the Δh and backbone frozen: a forward pass per step,
the same batches for every design), so that its score measures its features rather than how well the
shared head happens to read them.
The pieces are the trainer's (data, batches, collate, seeding, learning-rate schedule, evaluation), so a
supernet sees the same examples, in the same order, as a candidate trained with the same TrainConfig.
Designs come from a `DesignSource` (search/oneshot/supernet_space.py draws them from a search space): this
module never imports the search space.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
import torch

from ..core.config import PETLConfig
from ..core.errors import PETLError
from ..nn.inject import is_petl_parameter
from ..nn.supernet import Supernet
from .config import TrainConfig
from .data import EncodedSplit, bucketed_batches, collate
from .evaluation import evaluate
from .models import takes_token_types
from .seeding import seed_everything
from .tasks import Task
from .trainer import PreparedData, ProgressCallback, bf16_autocast


class DesignSource(Protocol):
    """Where the sandwich rule's designs come from; each draw uses the generator it is given."""

    def largest(self, rng: np.random.Generator) -> PETLConfig: ...
    def smallest(self, rng: np.random.Generator) -> PETLConfig: ...
    def random(self, rng: np.random.Generator) -> PETLConfig: ...


@dataclass
class SupernetTrainResult:
    steps: int
    losses: list[float] = field(default_factory=list)  # each step's summed sandwich loss
    seconds: float = 0.0


def _device(supernet: Supernet) -> torch.device:
    return next(supernet.parameters()).device


def train_supernet(supernet: Supernet, designs: DesignSource, data: PreparedData, tokenizer, task: Task,
                   cfg: TrainConfig, *, random_designs: int = 2, progress: ProgressCallback | None = None,
                   checkpoint: str | Path | None = None, checkpoint_every: int = 100) -> SupernetTrainResult:
    """`cfg.max_steps` sandwich steps on `data.train` (see the module docstring); same seed, same result.

    AdamW keeps moments per shared tensor, so rows a step's designs do not use still move by their
    momentum (and weight decay), as in other one-shot NAS trainers with Adam.
    checkpoint: a file written every `checkpoint_every` steps (trained tensors, optimizer, schedule, the
    torch generator) and read back at the start when it exists, so a killed run goes on from its last
    checkpoint; on a CPU the result is the same, bit for bit, as a run never interrupted.
    """
    if isinstance(random_designs, bool) or not isinstance(random_designs, int) or random_designs < 0:
        raise PETLError(f"random_designs must be an integer >= 0, but got {random_designs!r}")
    clock = time.perf_counter()
    device = _device(supernet)
    if device.type == "cpu" and cfg.threads:  # as the trainer does
        torch.set_num_threads(cfg.threads)
    supernet.train()
    seed_everything(cfg.seed)
    rng = np.random.default_rng([cfg.seed, 1])  # design draws: a stream of their own, apart from batch order
    trainable = [p for p in supernet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, cfg.lr_factor)
    autocast = bf16_autocast(device, cfg)
    batches = bucketed_batches(data.train, cfg.batch_size, data.rng)
    token_types = takes_token_types(supernet.model)
    result = SupernetTrainResult(steps=0)

    def draw() -> tuple[list[int], list[PETLConfig]]:
        return next(batches), [designs.largest(rng), designs.smallest(rng),
                               *(designs.random(rng) for _ in range(random_designs))]

    named = {n: p for n, p in supernet.named_parameters() if p.requires_grad}
    start = _resume(Path(checkpoint), named, optimizer, schedule, result, draw) \
        if checkpoint and Path(checkpoint).is_file() else 0
    for step in range(start, cfg.max_steps):
        indices, sandwich = draw()
        batch = collate(data.train, indices, tokenizer.pad_token_id, device, token_types)
        total = 0.0
        for design in sandwich:
            with autocast():
                loss = supernet(design, **batch).loss
            if not torch.isfinite(loss):
                raise PETLError(f"supernet loss became {loss.item()} at step {step + 1} for {design.describe()}")
            # Gradients add up over backward calls: the same as one backward of the summed loss, with
            # one design's graph in memory at a time.
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        result.steps = step + 1
        result.losses.append(total)
        if checkpoint and result.steps % checkpoint_every == 0 and result.steps < cfg.max_steps:
            _save_checkpoint(Path(checkpoint), named, optimizer, schedule, result)
        if progress:
            progress(step + 1, cfg.max_steps, total)
    result.seconds = time.perf_counter() - clock
    return result


def _save_checkpoint(path: Path, named: dict[str, torch.nn.Parameter], optimizer, schedule,
                     result: SupernetTrainResult) -> None:
    """Whole or absent (written beside, then renamed): a run killed while writing keeps the last one."""
    state = {"step": result.steps, "losses": result.losses, "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict(), "torch_rng": torch.get_rng_state(),
             "tensors": {n: p.detach().cpu() for n, p in named.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def _resume(path: Path, named: dict[str, torch.nn.Parameter], optimizer, schedule, result: SupernetTrainResult,
            draw) -> int:
    """Load a checkpoint and replay the finished steps' draws (batches and designs, no compute), so the
    next step sees what it would have seen; returns the step to go on from."""
    state = torch.load(path, weights_only=True)
    if set(state["tensors"]) != set(named):
        raise PETLError(f"{path} is a checkpoint of another supernet (other designs or model): delete it to "
                        f"train from the start")
    for _ in range(state["step"]):
        draw()
    with torch.no_grad():
        for name, value in state["tensors"].items():
            named[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    torch.set_rng_state(state["torch_rng"])
    result.steps, result.losses = state["step"], list(state["losses"])
    return state["step"]


@dataclass(frozen=True)
class HeadAdaptation:
    """A few optimizer steps of the task head alone on the design about to be scored (see the module
    docstring): the same `batches` of `split` for every design, AdamW at `learning_rate` from the shared
    head's values, undone once the design is scored."""

    split: EncodedSplit
    batches: tuple[tuple[int, ...], ...]
    learning_rate: float

    @classmethod
    def of(cls, data: PreparedData, cfg: TrainConfig, steps: int) -> "HeadAdaptation | None":
        """`steps` batches of the training split, drawn once from the run's seed; None for 0 steps."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise PETLError(f"head adaptation steps must be an integer >= 0, but got {steps!r}")
        if steps == 0:
            return None
        batches = bucketed_batches(data.train, cfg.batch_size, np.random.default_rng([cfg.seed, 2]))
        return cls(data.train, tuple(tuple(next(batches)) for _ in range(steps)), cfg.learning_rate)

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module, pad_id: int, autocast) -> Iterator[None]:
        """`model`'s head fitted for the context, then put back as it was (the supernet's shared head)."""
        head = [p for n, p in model.named_parameters() if p.requires_grad and not is_petl_parameter(n)]
        frozen = [p for n, p in model.named_parameters() if p.requires_grad and is_petl_parameter(n)]
        if not head:
            raise PETLError("adapt_steps fits a task head per design, but this model trains no head of its own: "
                            "set oneshot.adapt_steps to 0")
        saved = [p.detach().clone() for p in head]
        for p in frozen:
            p.requires_grad_(False)
        optimizer = torch.optim.AdamW(head, lr=self.learning_rate)
        device, token_types = head[0].device, takes_token_types(model)
        try:
            model.eval()  # no dropout: a design's score does not depend on which designs came before
            for indices in self.batches:
                batch = collate(self.split, list(indices), pad_id, device, token_types)
                with autocast():
                    loss = model(**batch).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            yield
        finally:
            with torch.no_grad():
                for p, value in zip(head, saved):
                    p.copy_(value)
            for p in frozen:
                p.requires_grad_(True)


def evaluate_design(supernet: Supernet, design: PETLConfig, split: EncodedSplit, tokenizer, task: Task,
                    cfg: TrainConfig, indices: list[int] | None = None, *,
                    adapt: HeadAdaptation | None = None) -> dict[str, float]:
    """`design`'s scores on `split` (all of it, or `indices`) with the weights it inherits, untrained but
    for `adapt`'s head steps: the trainer's own evaluation, on the model carrying `design` with its
    slices loaded."""
    device = _device(supernet)
    autocast = bf16_autocast(device, cfg)
    with supernet.inherited(design) as model:
        with adapt.applied(model, tokenizer.pad_token_id, autocast) if adapt else contextlib.nullcontext():
            return evaluate(model, tokenizer, split, list(range(len(split))) if indices is None else indices, task,
                            cfg, device, autocast)
