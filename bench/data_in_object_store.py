"""Data time per trial, before and after the data travels with the study, side by side in one run.

Before: each Ray worker loads the task and tokenises the rows its trials reach (lazily, cached per worker
process). After: the driver tokenises the task once (`encode_study_data`) and puts it in Ray's object store;
a trial gets it with `ray.get` and tokenises nothing. Both on the quickstart's study (packaged MiniLM, SST-2,
its search split and `train` block), trial after trial in fresh Ray worker processes (`max_calls=1`), each
worker training two trials: its first ("cold": a new worker) and a second ("warm": what its caches hold).

Per trial: `data` = the trainer's `tokenize` and `data` phases (loading the task, carving the split,
tokenising, batching), plus `ray.get` of the shipped object when shipped; `eval` = its `eval` and `dev`
phases (lazily, the evaluated rows are tokenised there too); `total` = the trial's wall time. Once: the
driver's encoding time, its peak memory, and the object's size.

    python bench/data_in_object_store.py [--study studies/quickstart.yaml] [--steps 150] [--workers 2]
"""
from __future__ import annotations

import argparse
import pickle
import resource
import statistics
import time
from pathlib import Path

import ray

from result_file import write_result  # bench/result_file.py

ROOT = Path(__file__).resolve().parents[1]


@ray.remote(max_calls=1, num_cpus=1)  # a fresh worker process per call: its first trial starts with empty caches
def worker_trials(spec, data_ref_box, seeds: list[int]) -> list[dict]:
    """Train one LoRA point per seed in this (fresh) worker, as run_candidate does; the phases of each trial."""
    import petl_search as ps
    from petl_search.training.trainer import train

    out = []
    for seed in seeds:
        start = time.perf_counter()
        fetch, encoded = 0.0, None
        if data_ref_box is not None:  # shipped: what tune.with_parameters does before calling run_candidate
            t0 = time.perf_counter()
            encoded = ray.get(data_ref_box[0])
            fetch = time.perf_counter() - t0
        result = train(ps.presets.lora(r=8), spec.task, model=spec.model, data_dir=spec.data_source,
                       encoded=encoded, train_config=spec.train_config(seed))
        seconds = result.seconds
        out.append({"seed": seed, "fetch": fetch,
                    "data": fetch + seconds.get("tokenize", 0) + seconds.get("data", 0),
                    "eval": seconds.get("eval", 0) + seconds.get("dev", 0), "compute": seconds.get("compute", 0),
                    "model_load": seconds.get("model_load", 0), "total": time.perf_counter() - start,
                    "metric": result.metrics.get(spec.main_metric), "dev": result.dev_metrics.get(spec.main_metric)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", default=str(ROOT / "studies" / "quickstart.yaml"))
    parser.add_argument("--steps", type=int, default=None, help="max_steps (default: the study's)")
    parser.add_argument("--workers", type=int, default=2, help="fresh workers per way, two trials each")
    parser.add_argument("--name", default="data_in_object_store")
    args = parser.parse_args()
    from dataclasses import replace

    from datasets.utils.logging import disable_progress_bar
    from transformers.utils import logging as hf_logging

    from petl_search.search.language.study import load_study
    from petl_search.search.runner.ray_runner import encode_study_data

    disable_progress_bar()
    hf_logging.set_verbosity_error()
    spec = load_study(args.study)
    if args.steps:
        spec = replace(spec, train={**spec.train, "max_steps": args.steps})

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    encoded = encode_study_data(spec, progress=print)
    encode_s = time.perf_counter() - t0
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size = len(pickle.dumps(encoded))

    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        t0 = time.perf_counter()
        ref = ray.put(encoded)
        put_s = time.perf_counter() - t0
        ways: dict[str, list[dict]] = {"lazy (per worker)": [], "shipped (object store)": []}
        for w in range(args.workers):  # alternate the two ways, so that the machine's load falls on both alike
            for way, box in (("lazy (per worker)", None), ("shipped (object store)", [ref])):
                ways[way] += [{**r, "trial": "cold" if i == 0 else "warm"}
                              for i, r in enumerate(ray.get(worker_trials.remote(spec, box, [2 * w, 2 * w + 1])))]
    finally:
        ray.shutdown()

    print(f"{spec.model} on {spec.task}, {spec.train.get('max_steps')} steps of batch "
          f"{spec.train.get('batch_size', 32)}, search split {spec.search_split}; median over {args.workers} workers")
    print(f"driver, once: tokenised in {encode_s:.1f} s, peak memory +{rss_after - rss_before:.0f} MB, "
          f"object {size / 2**20:.1f} MiB, ray.put {put_s:.2f} s")
    print(f"  {'way':<24} {'trial':<5} {'data s':>7} {'(fetch)':>8} {'eval s':>7} {'total s':>8}")
    rows = []
    for way, trials in ways.items():
        for kind in ("cold", "warm"):
            picked = [t for t in trials if t["trial"] == kind]
            row = {"way": way, "trial": kind, "n": len(picked),
                   **{k: statistics.median(t[k] for t in picked) for k in ("data", "fetch", "eval", "total")},
                   "metric": [t["metric"] for t in picked]}
            rows.append(row)
            print(f"  {way:<24} {kind:<5} {row['data']:7.2f} {row['fetch']:8.3f} {row['eval']:7.2f} "
                  f"{row['total']:8.1f}")
    same = [t["metric"] for t in ways["lazy (per worker)"]] == [t["metric"] for t in ways["shipped (object store)"]]
    print(f"same scores both ways, trial by trial: {same}")
    path = write_result(args.name, {
        "study": spec.name, "model": spec.model, "task": str(spec.task), "max_steps": spec.train.get("max_steps"),
        "workers_per_way": args.workers, "driver_encode_s": encode_s,
        "driver_peak_memory_added_mb": rss_after - rss_before, "object_bytes": size, "ray_put_s": put_s,
        "rows": {"train": len(encoded.train), "select": len(encoded.select),
                 "dev": len(encoded.dev) if encoded.dev else 0},
        "per_trial": rows, "same_scores_both_ways": same})
    print(f"result: {path}")


if __name__ == "__main__":
    main()
