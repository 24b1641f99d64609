"""Trainer throughput on the packaged MiniLM and SST-2 (CPU), side by side in one run.

For the frozen backbone (head only), LoRA and MAM, one short trial each through `petl_search.train`
(the same code a search runs): training examples per second of forward/backward/step, and the share
of the trial's wall time spent outside it (data loading and tokenisation, evaluation, model loading).
"cold" trials start with empty per-process caches (a worker's first trial); "warm" ones reuse the
loaded and tokenised data, as a search worker's later trials do. Medians over repeats.

    python bench/trainer_throughput.py [--steps 200] [--repeats 2] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics

from transformers.utils import logging as hf_logging

import petl_search as ps
from petl_search.training import data as trainer_data, tasks as trainer_tasks
from petl_search.training.config import TrainConfig
from petl_search.training.trainer import train

from result_file import write_result  # bench/result_file.py

VARIANTS = {
    "frozen backbone (head only)": ps.PETLConfig(),
    "LoRA r=8 (q,v)": ps.presets.lora(r=8),
    "MAM (l=30, r=512, s=4)": ps.presets.mam(),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    settings = dict(vars(args))
    hf_logging.set_verbosity_error()
    cfg = TrainConfig(max_steps=args.steps, eval_every=args.eval_every, threads=args.threads)
    runs: dict[tuple[str, str], list] = {}
    for _ in range(args.repeats):
        for name, config in VARIANTS.items():
            trainer_data._ENCODED.clear()
            trainer_tasks._LOADED.clear()
            runs.setdefault((name, "cold"), []).append(train(config, "sst2", train_config=cfg))
            runs.setdefault((name, "warm"), []).append(train(config, "sst2", train_config=cfg))
    print(f"MiniLM-L6 on SST-2, {args.steps} steps of batch {cfg.batch_size}, eval every {args.eval_every} on "
          f"{cfg.eval_examples} dev examples + the full dev set at the end, {args.threads} threads, "
          f"median of {args.repeats}")
    base = statistics.median(r.throughput for r in runs[("frozen backbone (head only)", "warm")])
    print(f"  {'variant':<30} {'trial':<5} {'train ex/s':>10} {'vs frozen':>10} {'outside fwd/bwd':>16}"
          f"  (data, eval, load)")
    rows = []
    for (name, kind), results in runs.items():
        throughput = statistics.median(r.throughput for r in results)
        outside = statistics.median(1 - r.seconds["compute"] / r.seconds["total"] for r in results)
        parts = {k: statistics.median(r.seconds.get(k, 0) / r.seconds["total"] for r in results)
                 for k in ("tokenize", "data", "eval", "model_load")}
        print(f"  {name:<30} {kind:<5} {throughput:10.1f} {throughput / base:9.2f}x {100 * outside:15.1f}%  "
              f"({100 * (parts['tokenize'] + parts['data']):.1f}%, {100 * parts['eval']:.1f}%, "
              f"{100 * parts['model_load']:.1f}%)  dev accuracy {results[0].metrics['accuracy']:.3f}")
        rows.append({"variant": name, "trial": kind, "train_examples_per_s": throughput,
                     "vs_frozen_warm": throughput / base, "share_outside_forward_backward": outside,
                     "share_data": parts["tokenize"] + parts["data"], "share_eval": parts["eval"],
                     "share_model_load": parts["model_load"], "dev_accuracy": results[0].metrics["accuracy"]})
    path = write_result("trainer_throughput", {"settings": settings, "batch_size": cfg.batch_size,
                                               "eval_examples": cfg.eval_examples, "variants": rows})
    print(f"result: {path}")


if __name__ == "__main__":
    main()
