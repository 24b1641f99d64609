"""The quickstart over several study seeds: does its search find a point at least as good as its best
baseline on the official dev set, with no more stored parameters, and how often?

Per study seed s (the sampler's seed and the search trials' training seed), studies/quickstart.yaml is
run as it is, except for its storage (one SQLite file per seed under --workdir) and its reseeds, which
train the front's best points with the two seeds of {0, 1, 2} other than s, so that every claimed point
is measured on seeds 0, 1 and 2, like the baselines. A claim holds when the point's dev mean over those
seeds is at least the best baseline's (chosen on the search split), as `petl-search status` prints it.

    python bench/quickstart_seeds.py --workdir bench/out/quickstart_seeds            # 3 seeds, CPU
    python bench/quickstart_seeds.py --workdir bench/out/quickstart_seeds --gpus 0.25 --concurrency 4
An interrupted run resumes from --workdir; a finished seed is not re-run.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from petl_search.analysis.front import best_baseline, claims, methods
from petl_search.analysis.summary import claim_line, study_references
from petl_search.search.runner.ray_runner import run_study
from petl_search.search.optuna_bridge.storage import open_study
from petl_search.search.language.study import load_study

ROOT = Path(__file__).resolve().parents[1]
TRIAL_SEEDS = (0, 1, 2)


def seeded(spec, seed: int, workdir: Path, args: argparse.Namespace):
    others = [s for s in TRIAL_SEEDS if s != seed][:2]
    return dataclasses.replace(
        spec, seed=seed, storage=f"sqlite:///{workdir / f'quickstart-seed{seed}.db'}",
        reseed={**spec.reseed, "seeds": others}, concurrency=args.concurrency or spec.concurrency,
        gpus=spec.gpus if args.gpus is None else args.gpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="study seeds")
    parser.add_argument("--workdir", required=True, help="one storage per seed; a re-run resumes")
    parser.add_argument("--concurrency", type=int, help="trials at once (default: the quickstart's 2)")
    parser.add_argument("--gpus", type=float, help="GPU share per trial (default: the quickstart's 0)")
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    base = load_study(ROOT / "studies" / "quickstart.yaml")
    held = 0
    for seed in args.seeds:
        spec = seeded(base, seed, workdir, args)
        start = time.time()
        records = run_study(spec, progress=lambda line: None, on_trial=lambda record, records: None)
        points = methods(records, spec.main_metric, study_references(open_study(spec, create=False)))
        reference = best_baseline(points)
        if reference is None:
            print(f"study seed {seed}: no baseline finished; nothing to compare", flush=True)
            continue
        print(f"study seed {seed} ({(time.time() - start) / 60:.1f} min): best baseline on the search split "
              f"{reference.label}, dev {reference.dev_mean:.4f} ± {reference.dev_std:.4f}, "
              f"{reference.stored_params:,} stored; front search points with no more parameters, on dev:", flush=True)
        found = claims(points, reference)
        holds = any(c.holds for c in found)
        held += holds
        for claim in found:
            print(claim_line(claim), flush=True)
        print(f"  -> {'a point at least as good' if holds else 'no point at least as good'}", flush=True)
    print(f"\nseeds where a search point is >= the best baseline on dev with no more parameters: {held} of "
          f"{len(args.seeds)} (target: 2 of 3)")


if __name__ == "__main__":
    main()
