"""The official dev set is quoted, never used to choose (docs/GUIDE "Evaluation protocol").

Every choice the study, the report and the dashboard make (the front, the best baseline, the points
reseeded, `export --best`, the claims compared, the best FFN and the best attention method per budget
band, what the dashboard says to export, the points drawn) is computed on a study's records; then only
the dev scores are permuted or perturbed, and every choice must name the same trials. The numbers the
choices quote on dev may change; which trials they are about may not.
"""
from __future__ import annotations

import dataclasses
import random
import re
from types import SimpleNamespace

import pytest

from petl_search.analysis.dashboard_data import effect_panels, front_plot, overview
from petl_search.analysis.effects import dimension_effects
from petl_search.analysis.findings import mam_claims
from petl_search.analysis.front import best_baseline, best_point, claims, dev_view, front, methods
from petl_search.analysis.report import markdown
from petl_search.search.optuna_bridge.proposer import Proposer
from petl_search.search.optuna_bridge.records import TrialRecord
from petl_search.search.language.study import Baseline

PA = {"ffn": {"form": "bottleneck", "insertion": "parallel", "composition": "scale", "heads": 1, "size": 8}}
SA = {"ffn": {"form": "bottleneck", "insertion": "sequential", "composition": "add", "heads": 1, "size": 8}}
LORA = {"attn_qkv": {"form": "lora", "insertion": "parallel", "composition": "scale", "heads": 1, "size": 4}}


def rec(number, metric, dev, fraction, config=None, *, kind="search", seed=0, preset=None, args=None,
        **extra) -> TrialRecord:
    label = Baseline(preset, args or {}).label if preset else f"p{number}"
    return TrialRecord(number=number, state="COMPLETE", kind=kind, label=label, metric=metric,
                       stored_params=int(fraction * 1e7), stored_fraction=fraction, config=config or PA, seed=seed,
                       preset=preset, preset_args=dict(args or {}), scores={"accuracy": metric},
                       dev_scores={"accuracy": dev}, evaluated_on="search split", extra=extra)


def study() -> list[TrialRecord]:
    """Search points (two reseeded, whose dev order is the reverse of their search order), seed methods
    in two budget bands (FFN and attention, each band with two of a kind whose dev order is the reverse
    of their search order), and MAM."""
    records = [rec(0, 0.80, 0.78, 0.002), rec(1, 0.70, 0.69, 0.004, SA),
               rec(2, 0.86, 0.80, 0.005, LORA), rec(3, 0.85, 0.86, 0.0045, PA),
               rec(4, 0.84, 0.79, 0.005, LORA, kind="reseed", seed=1, reseed_of=2),
               rec(5, 0.85, 0.81, 0.005, LORA, kind="reseed", seed=2, reseed_of=2),
               rec(6, 0.83, 0.87, 0.0045, PA, kind="reseed", seed=1, reseed_of=3),
               rec(7, 0.84, 0.88, 0.0045, PA, kind="reseed", seed=2, reseed_of=3),
               rec(8, 0.79, 0.70, 0.0009), rec(9, 0.88, 0.80, 0.03, SA)]
    n = 10
    methods_ = [("parallel_adapter", {"r": 245}, 0.049, PA, (0.84, 0.85, 0.83), (0.80, 0.81, 0.79)),
                ("houlsby_ffn", {"r": 245}, 0.0495, SA, (0.80, 0.81, 0.79), (0.84, 0.85, 0.83)),
                ("prefix_tuning", {"l": 246}, 0.0499, {}, (0.83, 0.82, 0.84), (0.78, 0.77, 0.79)),
                ("lora", {"r": 40}, 0.048, LORA, (0.81, 0.80, 0.79), (0.83, 0.84, 0.82)),
                ("parallel_adapter", {"r": 4}, 0.0009, PA, (0.78, 0.79, 0.77), (0.77, 0.76, 0.75)),
                ("houlsby_ffn", {"r": 4}, 0.00092, SA, (0.77, 0.76, 0.75), (0.79, 0.80, 0.78)),
                ("lora", {"r": 2}, 0.0008, LORA, (0.80, 0.79, 0.81), (0.74, 0.75, 0.76)),
                ("mh_parallel_adapter", {"r_per_head": 3}, 0.00085, LORA, (0.76, 0.75, 0.77), (0.80, 0.79, 0.81)),
                ("mam", {"ffn_r": 215}, 0.0498, PA, (0.82, 0.83, 0.81), (0.83, 0.82, 0.84)),
                ("lora", {"r": 8}, 0.009, LORA, (0.84, 0.83, 0.85), (0.82, 0.83, 0.81))]
    for preset, args, fraction, config, scores, devs in methods_:
        for seed, (metric, dev) in enumerate(zip(scores, devs)):
            records.append(rec(n, metric, dev, fraction, config, kind="baseline", seed=seed, preset=preset,
                               args=args))
            n += 1
    return records


def choices(records: list[TrialRecord]) -> dict:
    """Every choice made from the records, as trial numbers and labels (no score)."""
    points = methods(records, "accuracy")
    reference = best_baseline(points)
    view = overview(records, "accuracy", budget_fraction=0.05, study_file="s.yaml", study_name="s")
    plot = front_plot(records, "accuracy", budget_fraction=0.05)
    reseeder = SimpleNamespace(spec=SimpleNamespace(reseed={"top": 3, "seeds": [1, 2]}))
    text = markdown(records, "accuracy", "s")
    section = text.split("## Controlled comparisons")[1].split("\n## ")[0]
    compared = [tuple(cell.strip() for cell in line.split("|")[1:4]) for line in section.splitlines()
                if line.startswith("| ") and not line.startswith("| question")]
    front_section = text.split("## The front")[1]
    mam_section = text.split("## MAM against")[1].split("\n## ")[0]
    return {
        "front": [m.number for m in front(points)],
        "search front": [m.number for m in front(points, kinds=("search",))],
        "best baseline": reference.number,
        "claims": [(c.point.number, c.against.number) for c in claims(points, reference)],
        "reseeds": [r.number for r in Proposer.reseed_targets(reseeder, records)],
        "export --best": best_point(points, max_fraction=0.05, score="accuracy", on="search split").point.number,
        "export --best --max-params": best_point(points, max_fraction=0.004, score="accuracy",
                                                 on="search split").point.number,
        "mam claims": [(m.number, [c.point.number for c in found]) for m, found in mam_claims(points)],
        "report: compared": compared,
        "report: front rows": re.findall(r"^\| #(\d+) ", front_section, re.M),
        "report: MAM lines": re.findall(r"#(\d+) \(", mam_section),
        "dashboard: front": [m.number for m in view.front],
        "dashboard: baselines": [m.number for m in view.baselines],
        "dashboard: reference": view.reference.number,
        "dashboard: claims": [c.point.number for c in view.claims],
        "dashboard: export": view.export.number,
        "dashboard: plot": {group: [p.number for p in drawn] for group, drawn in plot.groups.items()},
        "dashboard: effect panels": list(effect_panels(records)[0]),
        "report: effect groups": [(e.dimension, e.band, e.value, e.n) for d in ("insertion", "representation")
                                  for e in dimension_effects(dev_view(records, "accuracy"), d)],
    }


def with_dev(records: list[TrialRecord], new: dict[int, float]) -> list[TrialRecord]:
    return [dataclasses.replace(r, dev_scores={"accuracy": new[r.number]}) for r in records]


def perturbations(records: list[TrialRecord]):
    devs = {r.number: r.dev_scores["accuracy"] for r in records}
    yield "dev order reversed", {n: 1.0 - d for n, d in devs.items()}
    for seed in range(12):
        rng = random.Random(seed)
        shuffled = list(devs.values())
        rng.shuffle(shuffled)
        yield f"dev permuted (seed {seed})", dict(zip(devs, shuffled))
        yield f"dev perturbed (seed {seed})", {n: min(1.0, max(0.0, d + rng.gauss(0, 0.05))) for n, d in devs.items()}


def test_the_study_exercises_every_choice() -> None:
    """The fixture is not trivial: claims hold and fail, both bands have FFN and attention methods."""
    found = choices(study())
    assert len(found["report: compared"]) == 3 and sum(q.startswith("representation") for q, _, _ in
                                                        found["report: compared"]) == 2
    assert found["claims"] and found["mam claims"][0][1] and len(found["reseeds"]) == 3


def test_no_choice_changes_when_only_dev_scores_change() -> None:
    records = study()
    expected = choices(records)
    for what, devs in perturbations(records):
        changed = choices(with_dev(records, devs))
        different = {k: (expected[k], changed[k]) for k in expected if changed[k] != expected[k]}
        assert not different, f"{what}: chosen on dev: {different}"


@pytest.mark.parametrize("evaluated_on", ["search split"])
def test_the_quoted_dev_numbers_do_follow_dev(evaluated_on) -> None:
    """The guard above is not vacuous: dev is read, and quoted, where the choices are made."""
    records = study()
    reversed_ = with_dev(records, {r.number: 1.0 - r.dev_scores["accuracy"] for r in records})
    assert markdown(records, "accuracy", "s") != markdown(reversed_, "accuracy", "s")
    view, other = (overview(r, "accuracy", budget_fraction=0.05, study_file="s.yaml", study_name="s")
                   for r in (records, reversed_))
    assert [c.verdict for c in view.claims] != [c.verdict for c in other.claims]
