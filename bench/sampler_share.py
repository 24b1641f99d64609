"""Who chooses the trained points: the sampler's model, or random proposals? Side by side, in one run.

The proposer drives a TPE study on the unified space over MiniLM's geometry under a budget, with a
synthetic score in place of training (a smooth function of the design plus noise: the sampler's
behaviour, not the model's accuracy, is under test), under two policies for a repeated point:
  random-after-repeat  the policy before issue 20: the proposal after any repeat is random
  ask-model-again      the model is asked again; one random fallback only after MODEL_REPEATS in a row
It prints, per policy and seed, the trained points by proposer and the model's share after the start-up
(target >= 70%), and writes bench/results/sampler_share.json.

    python bench/sampler_share.py                     # 60 trials, 12 start-up, seeds 0 1 2 (~3 min CPU)
    python bench/sampler_share.py --trials 20 --seeds 0
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from petl_search.analysis.sampling import proposal_shares  # noqa: E402
from petl_search.core.config import PETLConfig  # noqa: E402
from petl_search.search.language.study import parse_study  # noqa: E402
from petl_search.search.optuna_bridge.proposer import Proposer  # noqa: E402
from petl_search.search.optuna_bridge.records import read_records  # noqa: E402
from petl_search.search.optuna_bridge.samplers import MODEL_REPEATS, proposal_source  # noqa: E402
from petl_search.search.optuna_bridge.storage import open_store  # noqa: E402
from petl_search.training.models import DEFAULT_ENCODER, load_model_config  # noqa: E402

POLICIES = {"random-after-repeat": 0, "ask-model-again": MODEL_REPEATS}


def synthetic_score(config: PETLConfig, stored: int, rng: np.random.Generator) -> float:
    """Rises with log size and rewards FFN and attention-output sites, plus noise: structure a model can learn."""
    sites = {site for site, block in config.to_dict().items() if block}
    bonus = 0.02 * ("ffn" in sites) + 0.01 * ("attn_out" in sites)
    return 0.7 + 0.02 * math.log10(stored + 10) + bonus + float(rng.normal(0, 0.005))


def simulate(model_repeats: int, *, trials: int, startup: int, seed: int, budget: float, folder: Path) -> dict:
    spec = parse_study({"name": f"share_{model_repeats}_{seed}", "model": DEFAULT_ENCODER, "task": "sst2",
                        "space": str(ROOT / "search_spaces" / "unified.yaml"), "budget": budget,
                        "n_trials": trials, "seed": seed, "sampler": {"name": "tpe", "startup_trials": startup},
                        "storage": f"sqlite:///{folder / f'share_{model_repeats}_{seed}.db'}"})
    proposer = Proposer(open_store(spec), spec, load_model_config(spec.model))
    proposer.study.sampler.model_repeats = model_repeats
    rng = np.random.default_rng(seed)
    sources = {}
    while (candidate := proposer.next()) is not None:
        sources[candidate.number] = proposal_source(proposer.study.sampler, candidate.number)
        proposer.store.set_trial_attr(candidate.number, "proposed_by", sources[candidate.number])
        config = PETLConfig.from_dict(candidate.petl_config)
        score = synthetic_score(config, candidate.stored_params, rng)
        proposer.finish(candidate.number, {"status": "completed", "metrics": {"accuracy": score},
                                           "params": {"delta_stored": candidate.stored_params}, "steps": 1})
    records = read_records(proposer.study)
    shares = proposal_shares(records)
    return {"counts": shares.counts, "model_share": shares.model_share,
            "repeats": sum(r.kind == "duplicate" for r in records)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--startup", type=int, default=12)
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for policy, repeats in POLICIES.items():
                out = simulate(repeats, trials=args.trials, startup=args.startup, seed=seed, budget=args.budget,
                               folder=Path(tmp))
                rows.append({"policy": policy, "seed": seed, **out})
                print(f"{policy:20s} seed {seed}: {out['counts']} repeats {out['repeats']}, model share "
                      f"{out['model_share']:.0%}", flush=True)
    summary = {p: statistics.mean(r["model_share"] for r in rows if r["policy"] == p) for p in POLICIES}
    for policy, share in summary.items():
        print(f"{policy}: mean model share after the start-up {share:.0%}")
    from result_file import write_result  # bench/result_file.py (every bench writes its figures there)
    write_result("sampler_share", {"trials": args.trials, "startup": args.startup, "budget": args.budget,
                                   "model_repeats": MODEL_REPEATS, "runs": rows, "mean_model_share": summary})


if __name__ == "__main__":
    main()
