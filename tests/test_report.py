"""The dashboard's numbers as pure functions: dimension effects within budget bands (and which have
anything to show), hypervolume after each trial, where each point goes on the front plot and its axis
(0-parameter points included), the one-screen overview (front, seed methods, claims, what to export),
and the top importances."""
from __future__ import annotations

import dataclasses
import math
import statistics

import pytest

from petl_search.search.optuna_bridge.pareto import hypervolume_2d
from petl_search.search.optuna_bridge.records import TrialRecord
from petl_search.analysis.dashboard_data import (ZERO_LABEL, effect_panels, front_plot, hypervolume_curve, overview,
                                                 top_importances, x_axis)
from petl_search.analysis.front import best_baseline, claims, front, methods
from petl_search.analysis.report import markdown
from petl_search.analysis.effects import budget_band, dimension_effects

PA = {"ffn": {"form": "bottleneck", "insertion": "parallel", "composition": "scale", "heads": 1}}
SA = {"ffn": {"form": "bottleneck", "insertion": "sequential", "composition": "add", "heads": 1}}
LORA = {"attn_qkv": {"form": "lora", "insertion": "parallel", "composition": "scale", "heads": 1}}
MIXED = {**PA, "attn_out": {"form": "bottleneck", "insertion": "sequential", "heads": 1}}
MH = {"attn_heads": {"form": "bottleneck", "insertion": "parallel", "heads": 12}}


def rec(number, metric, fraction, config, kind="search", state="COMPLETE", label=None, dev=None, seed=0,
        **extra) -> TrialRecord:
    return TrialRecord(number=number, state=state, kind=kind, label=label or f"p{number}",
                       metric=metric, stored_params=None if fraction is None else int(fraction * 1e6),
                       stored_fraction=fraction, config=config, reason=extra.pop("reason", None), seed=seed,
                       dev_scores={} if dev is None else {"accuracy": dev},
                       evaluated_on="search split" if dev is not None else "dev", extra=extra)


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


def test_the_x_axis_runs_from_the_data_to_a_little_past_the_budget_with_a_place_for_zero() -> None:
    axis = x_axis([0.0, 0.05, 0.3, 0.97], budget=1.0)
    assert axis.range[1] == pytest.approx(math.log10(1.25))  # 25% past the budget, not a decade
    assert 10 ** axis.range[0] < axis.zero < axis.gap < 0.05  # zero sits apart, left of the smallest
    assert axis.x(0.0) == axis.zero and axis.x(0.3) == 0.3
    assert axis.ticktext[0] == ZERO_LABEL and axis.tickvals[0] == axis.zero
    assert axis.ticktext[1:] == ("0.05%", "0.1%", "0.2%", "0.5%", "1%")  # round values within the data's range
    assert all(axis.gap < v for v in axis.tickvals[1:])
    plain = x_axis([0.05, 0.3], budget=1.0)  # nothing at zero: no place for it, no label
    assert plain.zero is None and ZERO_LABEL not in plain.ticktext and plain.range[0] > axis.range[0]
    with pytest.raises(ValueError, match="no place for 0-parameter points"):
        plain.x(0.0)
    beyond = x_axis([0.05, 3.0], budget=1.0)  # a point past the budget stays on the axis
    assert beyond.range[1] == pytest.approx(math.log10(3.0 * 1.25))
    wide = x_axis([1e-4, 0.5], budget=1.0)  # over four decades: one tick per decade
    assert wide.ticktext == ("0.0001%", "0.001%", "0.01%", "0.1%", "1%")


def study_with_everything() -> list[TrialRecord]:
    """A frozen backbone (0 stored) on the front, a reseeded point, dominated, stopped, failed, over budget,
    a duplicate, an interrupted one, and two baselines over seeds."""
    return [rec(0, 0.60, 0.0, {}, dev=0.58, label="frozen"),
            rec(1, 0.80, 0.002, PA, dev=0.78), rec(2, 0.70, 0.004, SA, dev=0.69),
            rec(3, 0.86, 0.005, LORA, dev=0.85),
            rec(4, 0.84, 0.005, LORA, kind="reseed", dev=0.86, seed=1, reseed_of=3),
            rec(5, 0.85, 0.005, LORA, kind="reseed", dev=0.84, seed=2, reseed_of=3),
            rec(6, None, 0.003, PA, state="PRUNED", reason="stopped by MO-ASHA"),
            rec(7, None, 0.001, SA, state="FAIL", reason="nan"),
            rec(8, 0.0, 0.5, PA, kind="over_budget"), rec(9, 0.80, 0.002, PA, kind="duplicate", duplicate_of=1),
            rec(10, None, 0.004, PA, state="FAIL", interrupted=True),
            rec(11, None, None, PA, state="FAIL", reason="bad config"),
            *[rec(12 + i, m, 0.009, LORA, kind="baseline", label="lora(r=8)", dev=d, seed=i)
              for i, (m, d) in enumerate([(0.85, 0.83), (0.86, 0.84), (0.87, 0.82)])],
            *[rec(15 + i, m, 0.0095, PA, kind="baseline", label="pa(r=8)", dev=d, seed=i)
              for i, (m, d) in enumerate([(0.80, 0.80), (0.82, 0.81)])]]


def test_the_front_plot_draws_each_point_once_over_its_seeds() -> None:
    records = study_with_everything()
    plot = front_plot(records, "accuracy", budget_fraction=0.01)
    numbers = {group: [p.number for p in points] for group, points in plot.groups.items()}
    assert numbers == {"front": [0, 1, 3], "dominated": [2], "pruned": [6], "failed": [7], "baselines": [12, 15]}
    frozen = plot.groups["front"][0]
    assert frozen.percent == 0 and frozen.x == plot.axis.zero is not None  # drawn, at the zero place
    point = plot.groups["front"][2]  # its own trial and two reseeds: the mean and spread over three seeds
    assert (point.y, point.seeds, point.dev) == pytest.approx((0.85, 3, 0.85))
    assert point.std == pytest.approx(statistics.stdev([0.86, 0.84, 0.85]))
    lora = plot.groups["baselines"][0]
    assert (lora.label, lora.seeds) == ("lora(r=8)", 3) and (lora.y, lora.dev) == pytest.approx((0.86, 0.83))
    assert lora.std == pytest.approx(0.01)
    assert plot.strip < 0.60 and all(p.y == plot.strip for p in plot.groups["pruned"] + plot.groups["failed"])
    assert plot.groups["failed"][0].reason == "nan"
    # the line runs through the front, baselines included (lora is not dominated: it is the best)
    assert [c for xy in plot.line for c in xy] == pytest.approx([plot.axis.zero, 0.60, 0.2, 0.80, 0.5, 0.85, 0.9, 0.86])
    assert plot.not_drawn == {"reseed": 2, "duplicate": 1, "over_budget": 1, "misfit": 0, "no_size": 1}
    assert plot.selected_on == "search split"
    assert plot.axis.range[1] == pytest.approx(math.log10(1.25))  # a little past the 1% budget


def test_the_overview_answers_front_seed_methods_claims_and_export() -> None:
    records = study_with_everything() + [  # #1 reseeded too: it claims less (+0.0067 on dev) than #3
        rec(30, 0.80, 0.002, PA, kind="reseed", dev=0.87, seed=1, reseed_of=1),
        rec(31, 0.80, 0.002, PA, kind="reseed", dev=0.86, seed=2, reseed_of=1)]
    view = overview(records, "accuracy", budget_fraction=0.01, study_file="studies/s.yaml", study_name="s")
    assert [m.number for m in view.front] == [0, 1, 3, 12]
    assert [(m.label, len(m.scores)) for m in view.baselines] == [("lora(r=8)", 3), ("pa(r=8)", 2)]
    assert view.reference.label == "lora(r=8)"  # the best baseline on the search split
    assert [c.point.number for c in view.claims] == [0, 1, 3]
    assert [c.verdict for c in view.claims] == ["below it: its one seed scores under every seed of the baseline (3)"] + [
        "beats it, within seed noise"] * 2  # over three seeds each: their intervals span 0
    assert view.claims[1].comparison.difference == pytest.approx(0.83667 - 0.83, abs=1e-4)
    # what to export is chosen on the search split, as the search chose: lora(r=8) is the best there
    # within the budget (0.86; #3 has 0.85 over its seeds), whatever #3's claim on dev
    assert view.export.number == 12 and view.export_claim is None
    assert view.export.why == ("the best accuracy on the search split (0.8600 over 3 seeds) among the front's points "
                               "within 1% trained with several seeds; dev 0.8300 over 3 seeds")
    # #3 better on the search split: exported, its dev claim quoted
    better = [dataclasses.replace(r, metric=r.metric + 0.03) if r.extra.get("reseed_of") == 3 else r for r in records]
    view = overview(better, "accuracy", budget_fraction=0.01, study_file="studies/s.yaml", study_name="s")
    assert view.export.number == 3 and view.export_claim.point.number == 3
    assert view.export.command == "petl-search export studies/s.yaml --trial 3 --out exports/s-trial3"
    assert view.export.why == ("the best accuracy on the search split (0.8700 over 3 seeds) among the front's points "
                               "within 1% trained with several seeds; on dev +0.0200 against lora(r=8) over 3 "
                               "seeds: beats it, within seed noise")
    # the same claims as analysis/front.py gives
    points = methods(records, "accuracy")
    assert [c.point.number for c in claims(points, best_baseline(points))] == [c.point.number for c in view.claims]


def test_the_best_front_point_within_the_budget_is_exported_whatever_its_claim() -> None:
    records = [r for r in study_with_everything() if r.number not in (4, 5)]  # #3 is not reseeded now
    records.append(rec(20, 0.95, 0.012, PA, kind="baseline", label="big(r=64)", dev=0.9))  # over the 1% budget
    view = overview(records, "accuracy", budget_fraction=0.01, study_file="s.yaml", study_name="s")
    assert view.reference.label == "big(r=64)"
    assert view.export.number == 3  # the best on the search split among the front's points within 1%
    assert view.export.why == ("the best accuracy on the search split (0.8600 over 1 seed) among the front's points "
                               "within 1%; on dev -0.0500 against big(r=64) over 1 seed: needs reseeds to "
                               "claim anything (one seed)")  # none within the budget has several seeds
    # a point with several seeds goes before a single seed's higher score
    lucky = records + [rec(21, 0.99, 0.009, SA, dev=0.5)]
    assert overview(lucky, "accuracy", budget_fraction=0.01, study_file="s.yaml", study_name="s").export.number == 21
    seeded = lucky + [rec(22, 0.83, 0.005, LORA, kind="reseed", dev=0.8, seed=1, reseed_of=3)]
    assert overview(seeded, "accuracy", budget_fraction=0.01, study_file="s.yaml", study_name="s").export.number == 3
    none = overview([rec(0, 0.8, 0.02, PA, dev=0.8)], "accuracy", budget_fraction=0.01, study_file="s.yaml",
                    study_name="s")
    assert none.reference is None and none.claims == () and none.export is None


def test_effect_panels_keep_only_dimensions_with_something_to_compare() -> None:
    records = [rec(0, 0.80, 0.010, PA), rec(1, 0.84, 0.011, PA), rec(2, 0.78, 0.012, SA)]
    shown, empty = effect_panels(records)
    assert list(shown) == ["insertion", "composition"]  # PA scales, SA adds: both differ within the band
    assert empty == ["representation", "heads", "form", "size", "scale"]
    assert [e.value for e in shown["insertion"]] == ["parallel", "sequential"]


def test_importances_show_the_top_ten_and_sum_the_rest() -> None:
    scores = {f"p{i}": v for i, v in enumerate([0.5, 0.2, 0.1] + [0.01] * 9 + [0.0] * 3)}
    bars = top_importances(scores)
    assert len(bars) == 11 and bars[:3] == [("p0", 0.5), ("p1", 0.2), ("p2", 0.1)]
    assert bars[-1] == ("other 5 parameters", pytest.approx(0.02))
    assert top_importances({"a": 0.3, "b": 0.7}) == [("b", 0.7), ("a", 0.3)]  # nothing to sum


def test_the_task_head_count_sits_beside_every_point() -> None:
    """The head (BERT's pooler + classifier) is trained and exported with every point but not budgeted:
    each point carries the count its trials recorded; a trial that recorded none (stopped before its
    trainer reported) takes the study's, which is one model and one task."""
    from petl_search.analysis.front import front_table

    head = 148_610
    records = [dataclasses.replace(r, extra={**r.extra, "params": {"head": head, "delta_stored": 1}})
               if r.number not in (6, 7) else r for r in study_with_everything()]
    assert [r.head_params for r in records if r.number in (1, 6)] == [head, None]
    points = methods(records, "accuracy")
    assert all(m.head_params == head for m in points)
    plot = front_plot(records, "accuracy", budget_fraction=0.01)
    assert {p.head_params for drawn in plot.groups.values() for p in drawn} == {head}
    table = front_table(front(points), "accuracy").splitlines()
    assert "head" in table[0] and all("148,610" in row for row in table[1:])
    text = markdown(records, "accuracy", "s")
    rows = [row for row in text.split("## The front")[1].splitlines() if row.startswith("| #")]
    assert rows and all("| 148,610 |" in row for row in rows)
    assert "not counted in the budget" in text
    assert methods([dataclasses.replace(r, extra={}) for r in records], "accuracy")[0].head_params is None


def test_a_language_model_task_reads_as_having_no_task_head() -> None:
    """A causal LM task trains no head (the model's frozen LM head reads the answer): the report says so,
    and does not describe a pooler + classifier of 0 parameters."""
    records = [dataclasses.replace(r, extra={**r.extra, "params": {"head": 0, "delta_stored": 1}})
               for r in study_with_everything()]
    text = markdown(records, "accuracy", "s")
    assert "No task head is trained or exported" in text and "pooler" not in text
