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

    python bench/quickstart_seeds.py --workdir studies/quickstart_seeds --from-storage
reads the committed storages (a copy of each: they are never written), trains nothing, and summarises
them as the run did, with the span of their stored trials in place of the run's wall time.
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import optuna

from petl_search.analysis.front import best_baseline, claims, methods
from petl_search.analysis.summary import claim_line, study_references
from petl_search.search.runner.ray_runner import run_study
from petl_search.search.optuna_bridge.storage import open_study
from petl_search.search.language.study import load_study
from petl_search.search.optuna_bridge.records import read_records

from result_file import write_result  # bench/result_file.py

ROOT = Path(__file__).resolve().parents[1]
TRIAL_SEEDS = (0, 1, 2)


def seeded(spec, seed: int, workdir: Path, args: argparse.Namespace):
    others = [s for s in TRIAL_SEEDS if s != seed][:2]
    return dataclasses.replace(
        spec, seed=seed, storage=f"sqlite:///{workdir / f'quickstart-seed{seed}.db'}",
        reseed={**spec.reseed, "seeds": others}, concurrency=args.concurrency or spec.concurrency,
        gpus=spec.gpus if args.gpus is None else args.gpus)


def stored(spec) -> tuple[list, dict, float]:
    """A finished seed's records, constant-answer references and stored trials' span in minutes, read from a
    copy of its storage (never written)."""
    source = spec.sqlite_path
    if source is None or not source.exists():
        raise SystemExit(f"--from-storage: no storage {source} for study seed {spec.seed}")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / source.name
        shutil.copyfile(source, copy)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name=spec.name, storage=f"sqlite:///{copy}")
        records, references = read_records(study), dict(study_references(study))
        trials = study.get_trials(deepcopy=False)
        starts = [t.datetime_start for t in trials if t.datetime_start]
        ends = [t.datetime_complete for t in trials if t.datetime_complete]
        span = (max(ends) - min(starts)).total_seconds() / 60 if starts and ends else 0.0
    return records, references, span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="study seeds")
    parser.add_argument("--workdir", required=True, help="one storage per seed; a re-run resumes")
    parser.add_argument("--concurrency", type=int, help="trials at once (default: the quickstart's 2)")
    parser.add_argument("--gpus", type=float, help="GPU share per trial (default: the quickstart's 0)")
    parser.add_argument("--from-storage", action="store_true",
                        help="train nothing: summarise the finished storages in --workdir (read from copies)")
    args = parser.parse_args()
    settings = dict(vars(args))
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    base = load_study(ROOT / "studies" / "quickstart.yaml")
    held, rows = 0, []
    for seed in args.seeds:
        spec = seeded(base, seed, workdir, args)
        if args.from_storage:
            records, references, minutes = stored(spec)
            took = f"stored trials span {minutes:.1f} min"
        else:
            start = time.time()
            records = run_study(spec, progress=lambda line: None, on_trial=lambda record, records: None)
            references = study_references(open_study(spec, create=False))
            minutes = (time.time() - start) / 60
            took = f"{minutes:.1f} min"
        points = methods(records, spec.main_metric, references)
        reference = best_baseline(points)
        if reference is None:
            print(f"study seed {seed}: no baseline finished; nothing to compare", flush=True)
            rows.append({"seed": seed, "minutes": minutes, "best_baseline": None, "holds": False})
            continue
        print(f"study seed {seed} ({took}): best baseline on the search split "
              f"{reference.label}, dev {reference.dev_mean:.4f} ± {reference.dev_std:.4f}, "
              f"{reference.stored_params:,} stored; front search points with no more parameters, on dev:", flush=True)
        found = claims(points, reference)
        holds = any(c.holds for c in found)
        held += holds
        for claim in found:
            print(claim_line(claim), flush=True)
        print(f"  -> {'a point at least as good' if holds else 'no point at least as good'}", flush=True)
        rows.append({"seed": seed, "minutes": minutes, "best_baseline": reference.label,
                     "best_baseline_dev_mean": reference.dev_mean, "best_baseline_dev_std": reference.dev_std,
                     "best_baseline_stored": reference.stored_params,
                     "claims": [{"trial": c.point.number, "stored": c.point.stored_params, "seeds": len(c.point.scores),
                                 "difference": c.comparison.difference if c.comparison else None,
                                 "low": c.comparison.low if c.comparison else None,
                                 "high": c.comparison.high if c.comparison else None,
                                 "holds": c.holds, "verdict": c.verdict} for c in found],
                     "holds": holds})
    print(f"\nseeds where a search point is >= the best baseline on dev with no more parameters: {held} of "
          f"{len(args.seeds)} (target: 2 of 3)")
    path = write_result("quickstart_seeds", {
        "settings": settings, "minutes_are": "stored trials' span" if args.from_storage else "the run's wall time",
        "per_seed": rows, "seeds_held": held, "seeds": len(args.seeds), "target_seeds_held": 2})
    print(f"result: {path}")


if __name__ == "__main__":
    main()
