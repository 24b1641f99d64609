"""Does the search split rank designs like the dev set? SST-2, the packaged MiniLM, one run.

A study selects on a search split carved from training and is judged on the official dev set. SST-2's
training rows are mostly short phrases and its dev rows full sentences, so a random split ranks designs only
loosely like dev. This trains N design points (families, sizes and learning rates spread so that their scores
really differ), each once, and scores each trained model on four search splits and on dev:

  random-1000      the studies' split: search_split=0.1, max 1000, split_seed 0 (random, class-stratified)
  like-dev-1000    the same size, split_like="dev": length-matched to dev (training/splits.py length_matched)
  random-3000      search_split=3000, split_seed 0
  like-dev-3000    search_split=3000, split_seed 0, split_like="dev"

Each split's rows come from `search_rows`, the carve a study's trainer makes. One training per point, not one
per split: every point trains on the training rows outside the *union* of the four splits (5,859 of 67,349
held out; in 150 steps of 32 a point sees 4,800 rows either way), with the dev set as its evaluation set, and
the kept model (train(..., keep_model=True)) is then scored on each split's rows. Training on the rows outside
one split only would let a point train on another split's rows and flatter that split. With one seed the
3000-row splits hold most of the 1000-row ones (the same draw, longer). The dev score is the run's own final
evaluation on all of dev.

Reported per split, over the points that completed: Spearman rho and Kendall tau of its scores against dev's,
an interval for rho (a bootstrap over points and over the examples of both sets), and the mean score gap
split minus dev. For scale, "dev-halves": rho between two random halves of dev (436 examples each, mean over
200 halvings): how well dev ranks these points against itself at that size.

    python bench/split_rank.py                         # 12 points, 150 steps each (2-core CPU: ~15 min)
    python bench/split_rank.py --points 6 --steps 40   # a quick look

Writes bench/results/split_rank_sst2.json.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from datasets import DatasetDict
from scipy.stats import kendalltau, spearmanr
from transformers.utils import logging as hf_logging

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import petl_search as ps  # noqa: E402
from petl_search.training.config import TrainConfig  # noqa: E402
from petl_search.training.data import encode  # noqa: E402
from petl_search.training.evaluation import predict  # noqa: E402
from petl_search.training.models import DEFAULT_ENCODER, load_model  # noqa: E402
from petl_search.training.splits import search_rows, word_counts  # noqa: E402
from petl_search.training.tasks import get_task, load_task  # noqa: E402
from petl_search.training.trainer import bf16_autocast, run_device, train  # noqa: E402

from result_file import write_result  # noqa: E402  (bench/result_file.py)

SPLITS = {
    "random-1000": dict(search_split=0.1, search_split_max=1000, split_seed=0),
    "like-dev-1000": dict(search_split=0.1, search_split_max=1000, split_seed=0, split_like="dev"),
    "random-3000": dict(search_split=3000, split_seed=0),
    "like-dev-3000": dict(search_split=3000, split_seed=0, split_like="dev"),
}
# (label, preset, arguments, learning rate): the first 12 cover every family, small to large, at 1e-4, 1e-3
# and 1e-2 (where MAM and prefix tuning are known to collapse), so the scores spread.
POINTS = [
    ("LoRA r=2", "lora", dict(r=2), 1e-3),
    ("Houlsby r=8", "houlsby", dict(r=8), 1e-3),
    ("prefix l=10", "prefix_tuning", dict(l=10), 1e-3),
    ("PA r=16", "parallel_adapter", dict(r=16), 1e-3),
    ("MAM l=10 r=64", "mam", dict(prefix_len=10, ffn_r=64), 1e-3),
    ("LoRA r=8", "lora", dict(r=8), 1e-4),
    ("Houlsby r=64", "houlsby", dict(r=64), 1e-4),
    ("MAM l=30 r=256", "mam", dict(prefix_len=30, ffn_r=256), 1e-4),
    ("LoRA r=32", "lora", dict(r=32), 1e-2),
    ("Houlsby r=16", "houlsby", dict(r=16), 1e-2),
    ("prefix l=30", "prefix_tuning", dict(l=30), 1e-2),
    ("PA r=128", "parallel_adapter", dict(r=128), 1e-2),
    ("PA r=4", "parallel_adapter", dict(r=4), 1e-4),
    ("prefix l=30 1e-4", "prefix_tuning", dict(l=30), 1e-4),
    ("LoRA r=16 3e-3", "lora", dict(r=16), 3e-3),
    ("Houlsby r=32 3e-3", "houlsby", dict(r=32), 3e-3),
    ("MAM l=10 r=64 3e-3", "mam", dict(prefix_len=10, ffn_r=64), 3e-3),
    ("PA r=64 3e-3", "parallel_adapter", dict(r=64), 3e-3),
]


def rank_figures(split: np.ndarray, dev: np.ndarray, split_correct: np.ndarray, dev_correct: np.ndarray,
                 rng: np.random.Generator, resamples: int = 1000) -> dict:
    """rho, tau, gap of one split's scores against dev's (one per point), and rho's 90% bootstrap interval,
    resampling the points and the examples of both sets (rows: points, columns: examples, 1 = correct)."""
    rho, tau = spearmanr(split, dev)[0], kendalltau(split, dev)[0]
    draws = []
    for _ in range(resamples):
        points = rng.choice(len(dev), len(dev))
        a = split_correct[points][:, rng.choice(split_correct.shape[1], split_correct.shape[1])].mean(1)
        b = dev_correct[points][:, rng.choice(dev_correct.shape[1], dev_correct.shape[1])].mean(1)
        if np.ptp(a) > 0 and np.ptp(b) > 0:
            draws.append(spearmanr(a, b)[0])
    low, high = (float(q) for q in np.quantile(draws, [0.05, 0.95])) if draws else (None, None)
    return {"spearman_rho": float(rho), "kendall_tau": float(tau), "rho_90pct": [low, high],
            "mean_gap": float(np.mean(split - dev)), "mean_score": float(np.mean(split))}


def dev_halves(dev_correct: np.ndarray, rng: np.random.Generator, halvings: int = 200) -> dict:
    """rho and tau between the points' scores on two random halves of dev, averaged over halvings."""
    rhos, taus = [], []
    for _ in range(halvings):
        order = rng.permutation(dev_correct.shape[1])
        a, b = (dev_correct[:, half].mean(1) for half in np.array_split(order, 2))
        if np.ptp(a) == 0 or np.ptp(b) == 0:  # every point tied on a half: no rank to compare
            continue
        rhos.append(spearmanr(a, b)[0])
        taus.append(kendalltau(a, b)[0])
    return {"spearman_rho": float(np.nanmean(rhos)), "kendall_tau": float(np.nanmean(taus))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=12, help=f"design points to train (at most {len(POINTS)})")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "glue"))
    args = parser.parse_args()
    hf_logging.set_verbosity_error()
    start = time.perf_counter()
    task = get_task("sst2")
    data = load_task("sst2", args.data_dir)
    train_rows = data["train"]
    held = {name: search_rows(task, data, TrainConfig(**fields))[1] for name, fields in SPLITS.items()}
    union = set().union(*held.values())
    training = DatasetDict({"train": train_rows.select([i for i in range(len(train_rows)) if i not in union]),
                            "validation": data["validation"]})
    lengths = np.array(word_counts(train_rows, task))
    dev_lengths = np.array(word_counts(data["validation"], task))
    print(f"held out {len(union)} of {len(train_rows)} training rows; training on {len(training['train'])}")
    for name, rows in held.items():
        print(f"  {name:14s} {len(rows)} rows, median {np.median(lengths[rows]):.0f} words, "
              f"{(lengths[rows] >= 10).mean():.0%} >= 10 words")
    print(f"  {'dev':14s} {len(dev_lengths)} rows, median {np.median(dev_lengths):.0f} words, "
          f"{(dev_lengths >= 10).mean():.0%} >= 10 words")

    loaded: dict = {}

    def factory(t):  # the trainer's own loading; keeps the tokenizer for scoring the splits
        net, tokenizer = load_model(DEFAULT_ENCODER, t, args.seed)
        loaded["tokenizer"] = tokenizer
        return net, tokenizer

    def report(finished: bool) -> None:
        """Figures over the points so far, written after every point (an interrupted run keeps them)."""
        rng = np.random.default_rng(0)
        matrices = {name: np.array(rows, dtype=float) for name, rows in correct.items()}
        dev = matrices["dev"].mean(1)
        figures_by_split = {name: rank_figures(matrices[name].mean(1), dev, matrices[name], matrices["dev"], rng)
                            for name in SPLITS}
        halves = dev_halves(matrices["dev"], rng)
        print(f"\n{len(dev)} completed points of {len(points)}; scores vs dev:")
        for name, f in figures_by_split.items():
            low, high = (f"{v:.2f}" if v is not None else "?" for v in f["rho_90pct"])
            print(f"  {name:14s} rho={f['spearman_rho']:.3f} (90%: {low}..{high}) "
                  f"tau={f['kendall_tau']:.3f} gap={f['mean_gap']:+.4f}")
        print(f"  {'dev-halves':14s} rho={halves['spearman_rho']:.3f} tau={halves['kendall_tau']:.3f}")
        wall = time.perf_counter() - start
        print(f"wall time {wall / 60:.1f} min")
        write_result("split_rank_sst2", {
            "task": "sst2", "model": DEFAULT_ENCODER, "steps": args.steps, "batch_size": args.batch_size,
            "threads": args.threads, "seed": args.seed, "points_completed": int(len(dev)),
            "splits": {name: {**SPLITS[name], "rows": len(rows), "median_words": float(np.median(lengths[rows])),
                              "share_10_words_or_more": float((lengths[rows] >= 10).mean())}
                       for name, rows in held.items()},
            "dev": {"rows": len(dev_lengths), "median_words": float(np.median(dev_lengths)),
                    "share_10_words_or_more": float((dev_lengths >= 10).mean()), "mean_score": float(dev.mean())},
            "training_rows": len(training["train"]), "held_out_rows": len(union),
            "finished": finished, "points_asked": args.points,
            "vs_dev": figures_by_split, "dev_halves": halves, "points": points,
            "wall_seconds": round(wall, 1),
            "median_point_seconds": statistics.median([p["seconds"] for p in points if "seconds" in p] or [0]),
        })

    encoded: dict = {}
    points, correct = [], {name: [] for name in [*SPLITS, "dev"]}
    for label, preset, kwargs, lr in POINTS[:args.points]:
        cfg = TrainConfig(max_steps=args.steps, batch_size=args.batch_size, learning_rate=lr,
                          eval_every=args.steps, seed=args.seed, threads=args.threads)
        t0 = time.perf_counter()
        result = train(ps.presets.preset(preset, **kwargs), task, data=training, train_config=cfg,
                       model_factory=factory, keep_model=True)
        row = {"point": label, "preset": preset, "args": kwargs, "learning_rate": lr, "status": result.status,
               "stored_params": result.params.get("delta_stored")}
        if result.status != "completed":
            row["reason"] = result.reason
            points.append(row)
            print(f"{label:22s} lr={lr:g} {result.status}: {result.reason}")
            continue
        net, tokenizer = result.trained_model, loaded["tokenizer"]
        device, autocast = run_device(cfg), bf16_autocast(run_device(cfg), cfg)
        if not encoded:  # tokenised once, shared by every point
            encoded = {name: encode(train_rows.select(rows), tokenizer, task, cfg, None) for name, rows in held.items()}
            encoded["dev"] = encode(data["validation"], tokenizer, task, cfg, None)
        for name, split in encoded.items():
            indices = list(range(len(split)))
            predictions = predict(net, tokenizer, split, indices, task, cfg, device, autocast)
            correct[name].append([int(p == split.references[i]) for p, i in zip(predictions, indices)])
            row[name] = float(np.mean(correct[name][-1]))
        assert abs(row["dev"] - result.metrics["accuracy"]) < 1e-9, (row["dev"], result.metrics)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        points.append(row)
        print(f"{label:22s} lr={lr:g} " + " ".join(f"{name}={row[name]:.4f}" for name in correct)
              + f" ({row['seconds']:.0f} s)", flush=True)
        if len(correct["dev"]) >= 3:
            report(finished=False)
    report(finished=True)



if __name__ == "__main__":
    main()
