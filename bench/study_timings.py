"""How long the committed studies' trials took, recomputed from their storages: the timing figures
docs/results.md quotes, each from what the trials themselves recorded.

Every trained trial stores where its time went (user attribute `seconds`: total, tokenize, data,
model_load, compute, eval, dev), its training examples per second of compute (`throughput`), its device and
its steps; Optuna stores when each trial started and finished. Read here, per storage:
  - the trials trained to the end: how many, on which device, the span from the first start to the last
    finish, and the median, 10th/90th percentile, minimum and maximum of each part of their time;
  - the GPU jobs together (every storage whose trials ran on CUDA), as results.md describes them;
  - LoRA's trials on the GPU (its compute seconds and examples/s), which results.md quotes;
  - the one-shot study's stages as far as its storage records them (the designs' scoring, the stand-alone
    trials; the supernet's own time is not recorded there);
  - repeated proposals per storage.
Only storages git tracks are read (a local run's is no source), each from a copy (none is written);
nothing is trained.

    python bench/study_timings.py         # writes bench/results/study_timings.json
"""
from __future__ import annotations

import argparse
import collections
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import optuna

from petl_search.search.optuna_bridge.records import read_records

from result_file import write_result  # bench/result_file.py

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("total", "compute", "tokenize", "data", "model_load", "eval", "dev")
COLD_TOKENIZE_S = 5.0  # a trial that tokenized longer than this found the worker's data cache empty


def committed_storages() -> list[Path]:
    """The study storages git tracks (studies/**/*.db): a local run's storage, not committed, is no source."""
    listed = subprocess.run(["git", "ls-files", "--", "studies/*.db"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split()
    return [ROOT / p for p in sorted(listed)]


def spread(values: list[float]) -> dict[str, float] | None:
    """Median, 10th and 90th percentile, minimum and maximum (None for no values)."""
    if not values:
        return None
    deciles = statistics.quantiles(values, n=10, method="inclusive") if len(values) > 1 else [values[0]] * 9
    return {"median": statistics.median(values), "p10": deciles[0], "p90": deciles[-1], "min": min(values),
            "max": max(values)}


def span(trials: list[optuna.trial.FrozenTrial]) -> dict[str, Any] | None:
    """From the first trial's start to the last one's finish (Optuna's timestamps, the machine's clock)."""
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    if not starts or not ends:
        return None
    return {"first_start": min(starts).isoformat(timespec="seconds"),
            "last_finish": max(ends).isoformat(timespec="seconds"),
            "minutes": (max(ends) - min(starts)).total_seconds() / 60}


def trained(records: list) -> list[dict[str, Any]]:
    """Each trial trained to the end that recorded its time, as plain data."""
    out = []
    for record in records:
        seconds = record.extra.get("seconds")
        if record.state != "COMPLETE" or not seconds:
            continue
        out.append({"number": record.number, "kind": record.kind, "label": record.label, "preset": record.preset,
                    "device": record.extra.get("device"), "steps": record.extra.get("steps"),
                    "throughput": record.extra.get("throughput"), "seconds": seconds})
    return out


def storage_summary(path: Path, study: optuna.Study) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One storage's figures, and its trained trials (for the figures over several storages)."""
    spec = study.user_attrs.get("spec", {})
    records = read_records(study)
    runs = trained(records)
    repeats = [r for r in records if r.kind == "duplicate"]
    return {
        "storage": str(path.relative_to(ROOT)), "study": study.study_name, "task": spec.get("task"),
        "model": spec.get("model"), "concurrency": spec.get("concurrency"), "gpu_share": spec.get("gpus"),
        "batch_size": (spec.get("train") or {}).get("batch_size"),
        "trained_trials": len(runs), "devices": dict(collections.Counter(r["device"] for r in runs)),
        "steps": sorted({r["steps"] for r in runs if r["steps"] is not None}),
        "span": span(study.get_trials(deepcopy=False)),
        "seconds": {part: spread([r["seconds"].get(part, 0.0) for r in runs]) for part in PARTS},
        "examples_per_s": spread([r["throughput"] for r in runs if r["throughput"]]),
        "trials_tokenizing_over_5_s": sum(r["seconds"].get("tokenize", 0.0) > COLD_TOKENIZE_S for r in runs),
        "repeated_proposals": len(repeats),
        "repeated_proposals_of_frozen_backbone": sum(r.label.startswith("frozen backbone") for r in repeats),
    }, runs


def oneshot_stages(path: Path, storage: str, study: optuna.Study) -> dict[str, Any]:
    """A one-shot study's stages as its storage records them: the design study's trials (each design's
    inherited score) and the stand-alone trials after them."""
    designs = optuna.load_study(study_name=f"{study.study_name}.oneshot", storage=storage).get_trials(deepcopy=False)
    scored = [t for t in designs if t.state.name == "COMPLETE"]
    first = min(t.datetime_start for t in designs if t.datetime_start)
    last = max(t.datetime_complete for t in designs if t.datetime_complete)
    trials = study.get_trials(deepcopy=False)
    end = max(t.datetime_complete for t in trials if t.datetime_complete)
    kinds = collections.Counter(t.user_attrs.get("kind") for t in trials if t.state.name == "COMPLETE")
    interrupted = [t for t in trials if t.user_attrs.get("interrupted")]
    return {
        "storage": str(path.relative_to(ROOT)), "study": study.study_name,
        "supernet_seconds": None,
        "supernet_note": "not recorded: the storage has no timestamp for the supernet's start",
        "designs_scored": len(scored), "designs_rejected": len(designs) - len(scored),
        "scoring_span_seconds": (last - first).total_seconds(),
        "scoring_seconds_per_scored_design": (last - first).total_seconds() / max(1, len(scored)),
        "design_trial_seconds": spread([(t.datetime_complete - t.datetime_start).total_seconds() for t in scored]),
        "standalone_search_trials": kinds.get("search", 0), "baseline_trials": kinds.get("baseline", 0),
        "reseed_trials": kinds.get("reseed", 0), "interrupted_trials": len(interrupted),
        "first_design_to_last_trial_minutes": (end - first).total_seconds() / 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    paths = committed_storages()
    summaries, gpu_runs, gpu_trials, lora, oneshot = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(paths):
            copy = Path(tmp) / f"{i}.db"
            shutil.copyfile(path, copy)
            storage = f"sqlite:///{copy}"
            for found in optuna.get_all_study_summaries(storage):
                if found.study_name.endswith(".oneshot"):
                    continue  # a one-shot study's design study: read with its study below
                study = optuna.load_study(study_name=found.study_name, storage=storage)
                summary, runs = storage_summary(path, study)
                summaries.append(summary)
                if summary["devices"].get("cuda"):
                    gpu_runs += runs
                    gpu_trials += study.get_trials(deepcopy=False)
                for r in runs:
                    if r["preset"] == "lora" and r["device"] == "cuda":
                        lora.append({"storage": summary["storage"], "task": summary["task"], "trial": r["number"],
                                     "label": r["label"], "steps": r["steps"], "batch_size": summary["batch_size"],
                                     "compute_s": r["seconds"]["compute"], "total_s": r["seconds"]["total"],
                                     "tokenize_s": r["seconds"].get("tokenize"), "examples_per_s": r["throughput"]})
                if (study.user_attrs.get("spec") or {}).get("strategy") == "oneshot":
                    oneshot.append(oneshot_stages(path, storage, study))
    sst2_lora = [r for r in lora if r["task"] == "sst2" and r["steps"] == 300]
    figures = {
        "storages": summaries,
        "gpu_jobs": {
            "storages": [s["storage"] for s in summaries if s["devices"].get("cuda")],
            "span": span(gpu_trials), "trained_trials": len(gpu_runs),
            "seconds": {part: spread([r["seconds"].get(part, 0.0) for r in gpu_runs]) for part in PARTS},
            "trials_tokenizing_over_5_s": sum(r["seconds"].get("tokenize", 0.0) > COLD_TOKENIZE_S for r in gpu_runs),
        },
        "lora_gpu_trials": lora,
        "lora_sst2_300_steps": {"trials": len(sst2_lora),
                                "compute_s": spread([r["compute_s"] for r in sst2_lora]),
                                "examples_per_s": spread([r["examples_per_s"] for r in sst2_lora])},
        "oneshot": oneshot,
    }
    for s in summaries:
        sec, when = s["seconds"], s["span"] or {}
        print(f"{s['storage']} ({s['study']}): {s['trained_trials']} trained trials on {s['devices']}, "
              f"{when.get('minutes', 0):.1f} min from {when.get('first_start')}; per trial median total "
              f"{sec['total']['median'] if sec['total'] else float('nan'):.1f} s, compute "
              f"{sec['compute']['median'] if sec['compute'] else float('nan'):.1f} s, tokenize "
              f"{sec['tokenize']['median'] if sec['tokenize'] else float('nan'):.2f} s "
              f"({s['trials_tokenizing_over_5_s']} over {COLD_TOKENIZE_S:g} s); {s['repeated_proposals']} repeated "
              f"proposals ({s['repeated_proposals_of_frozen_backbone']} of the frozen backbone)")
    gpu = figures["gpu_jobs"]
    if gpu["trained_trials"]:
        total, tok = gpu["seconds"]["total"], gpu["seconds"]["tokenize"]
        print(f"GPU jobs together: {gpu['span']['minutes']:.1f} min, {gpu['trained_trials']} trained trials; a trial "
              f"{total['median']:.1f} s median (10-90%: {total['p10']:.1f}-{total['p90']:.1f} s, {total['min']:.1f}-"
              f"{total['max']:.1f} s); tokenizing {tok['median']:.2f} s median, over {COLD_TOKENIZE_S:g} s in "
              f"{gpu['trials_tokenizing_over_5_s']} (max {tok['max']:.1f} s)")
    if sst2_lora:
        c, x = figures["lora_sst2_300_steps"]["compute_s"], figures["lora_sst2_300_steps"]["examples_per_s"]
        print(f"LoRA on SST-2, 300 steps on the GPU ({len(sst2_lora)} trials): compute {c['min']:.1f}-{c['max']:.1f} s "
              f"(median {c['median']:.1f}), {x['min']:.0f}-{x['max']:.0f} examples/s")
    for o in oneshot:
        print(f"{o['storage']}: {o['designs_scored']} designs scored ({o['designs_rejected']} rejected) in "
              f"{o['scoring_span_seconds'] / 60:.1f} min, {o['scoring_seconds_per_scored_design']:.1f} s a design; "
              f"{o['standalone_search_trials']} stand-alone search trials; first design to last trial "
              f"{o['first_design_to_last_trial_minutes']:.0f} min; supernet: {o['supernet_note']}")
    print(f"result: {write_result('study_timings', figures)}")


if __name__ == "__main__":
    main()
