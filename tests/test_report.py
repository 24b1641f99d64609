"""The dashboard's numbers as pure functions: dimension effects within budget bands, hypervolume after
each trial, where each trial goes on the plot, the seed methods' mean and spread."""
from __future__ import annotations

import statistics

import pytest

from petl_search.search.pareto import hypervolume_2d
from petl_search.search.records import TrialRecord
from petl_search.analysis.dashboard_data import hypervolume_curve, scatter_points, seed_methods
from petl_search.analysis.effects import budget_band, dimension_effects

PA = {"ffn": {"form": "bottleneck", "insertion": "parallel", "composition": "scale", "heads": 1}}
SA = {"ffn": {"form": "bottleneck", "insertion": "sequential", "composition": "add", "heads": 1}}
LORA = {"attn_qkv": {"form": "lora", "insertion": "parallel", "composition": "scale", "heads": 1}}
MIXED = {**PA, "attn_out": {"form": "bottleneck", "insertion": "sequential", "heads": 1}}
MH = {"attn_heads": {"form": "bottleneck", "insertion": "parallel", "heads": 12}}


def rec(number, metric, fraction, config, kind="search", state="COMPLETE", label=None, **extra) -> TrialRecord:
    return TrialRecord(number=number, state=state, kind=kind, label=label or f"p{number}",
                       metric=metric, stored_params=int(fraction * 1e6), stored_fraction=fraction, config=config,
                       reason=extra.pop("reason", None), extra=extra)


def test_budget_bands_are_powers_of_the_ratio() -> None:
    assert budget_band(0.001) == pytest.approx((4**-5, 4**-4))
    assert budget_band(0.01) == pytest.approx((4**-4, 4**-3))
    low, high = budget_band(0.3, ratio=2)
    assert low <= 0.3 < high and high == pytest.approx(2 * low)


def test_dimension_effects_compare_only_within_a_band_and_only_single_valued_points() -> None:
    records = [rec(0, 0.80, 0.010, PA), rec(1, 0.84, 0.011, PA), rec(2, 0.78, 0.012, SA),
               rec(3, 0.90, 0.0005, PA),  # alone in its band: no comparison there
               rec(4, 0.99, 0.010, MIXED),  # parallel and sequential at once: no single value
               rec(5, None, 0.010, SA, state="PRUNED"), rec(6, 0.10, 0.5, SA, kind="over_budget")]
    effects = dimension_effects(records, "insertion")
    assert [(e.value, e.n) for e in effects] == [("parallel", 2), ("sequential", 1)]
    assert effects[0].mean == pytest.approx(0.82) and effects[0].std == pytest.approx(statistics.stdev([0.80, 0.84]))
    assert effects[0].band == effects[1].band == pytest.approx(budget_band(0.01))
    assert [e.value for e in dimension_effects(records, "composition")] == ["add", "scale"]
    reps = dimension_effects(records + [rec(7, 0.7, 0.010, LORA)], "representation")
    assert [e.value for e in reps] == ["attention", "attention + ffn", "ffn"]
    heads = dimension_effects([rec(0, 0.8, 0.001, MH), rec(1, 0.7, 0.001, {"attn_heads": {**MH["attn_heads"],
                                                                                        "heads": 1}})], "heads")
    assert [(e.value, e.mean) for e in heads] == [("multi-head", 0.8), ("single-head", 0.7)]


def test_size_and_scale_are_grouped_into_ranges() -> None:
    def with_(size, scale=None):
        spec = {"form": "bottleneck", "insertion": "parallel", "size": size, "heads": 1,
                "composition": "scale" if scale else "add", "scale": scale or 1.0}
        return {"ffn": spec}

    records = [rec(0, 0.8, 0.01, with_(8, 4.0)), rec(1, 0.7, 0.01, with_(64, 1.5)), rec(2, 0.6, 0.01, with_(70))]
    sizes = {e.value: e.mean for e in dimension_effects(records, "size")}
    assert sizes == {"size 5–17": 0.8, "size 17–65": 0.7, "size 65–257": 0.6}
    scales = {e.value: e.n for e in dimension_effects(records, "scale")}
    assert scales == {"s 4–8": 1, "s 1–2": 1}  # the unscaled point has no scale to compare


def test_hypervolume_curve_counts_search_trials_in_order() -> None:
    records = [rec(0, 0.8, 0.005, PA, kind="baseline"), rec(1, 0.7, 0.002, PA), rec(2, None, 0.003, PA, state="FAIL"),
               rec(3, 0.9, 0.008, SA), rec(4, 0.5, 0.02, SA, kind="over_budget"),
               rec(5, None, 0.004, PA, state="FAIL", interrupted=True),  # queued again: not a trial of its own
               rec(6, 0.95, 0.001, SA, kind="reseed")]  # another seed of a point: not a point
    curve = hypervolume_curve(records, budget_fraction=0.01)
    assert [n for n, _ in curve] == [1, 2, 3]
    assert curve[0][1] == pytest.approx(0.7 * 0.8) and curve[1][1] == curve[0][1]
    assert curve[2][1] == pytest.approx(hypervolume_2d([(0.7, 0.8), (0.9, 0.2)], (0.0, 0.0)))


def test_scatter_points_say_where_each_trial_goes() -> None:
    records = [rec(0, 0.8, 0.005, PA), rec(1, 0.7, 0.006, PA), rec(2, None, 0.003, PA, state="PRUNED", reason="ASHA"),
               rec(3, None, 0.003, PA, state="FAIL", reason="nan"), rec(4, 0.0, 0.5, PA, kind="over_budget"),
               rec(5, None, 0.004, PA, state="FAIL", interrupted=True), rec(6, 0.8, 0.005, PA, kind="duplicate"),
               rec(7, 0.9, 0.005, PA, kind="reseed")]
    by_number = {p.number: p for p in scatter_points(records)}
    assert {n: p.status for n, p in by_number.items()} == {0: "front", 1: "dominated", 2: "pruned", 3: "failed",
                                                           4: "over_budget"}
    assert by_number[3].reason == "nan" and by_number[2].metric is None and by_number[0].percent == 0.5


def test_seed_methods_average_over_seeds() -> None:
    records = [rec(0, 0.80, 0.01, LORA, kind="baseline", label="lora(r=8)"),
               rec(1, 0.84, 0.01, LORA, kind="baseline", label="lora(r=8)"),
               rec(2, 0.70, 0.02, PA, kind="baseline", label="parallel_adapter(r=64)"),
               rec(3, None, 0.02, PA, kind="baseline", state="FAIL", label="parallel_adapter(r=64)")]
    methods = seed_methods(records)
    assert [(m["label"], m["n"]) for m in methods] == [("lora(r=8)", 2), ("parallel_adapter(r=64)", 1)]
    assert methods[0]["mean"] == pytest.approx(0.82) and methods[0]["std"] == pytest.approx(statistics.stdev([0.8, 0.84]))
    assert methods[1]["std"] == 0.0 and methods[0]["percent"] == pytest.approx(1.0)
