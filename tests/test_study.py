"""Study files and the proposer: bad files fail before anything starts; every point handed to a worker is a
valid PETLConfig within budget; over-budget points reach the sampler as infeasible and are never trained;
nothing is trained twice; interrupted trials are queued again; results are told to Optuna exactly once."""
from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest
import yaml

from petl_search.core.config import PETLConfig
from petl_search.core.errors import PETLError
from petl_search.search.optuna_bridge.records import counts, read_records, trained_trial
from petl_search.core.params import budget_text, count_params, percent
from petl_search.core.presets import preset
from petl_search.search.optuna_bridge.proposer import Proposer
from petl_search.search.optuna_bridge.storage import open_store, open_study, reconcile, upgrade
from petl_search.search.language.budget import fit_to_budget
from petl_search.search.optuna_bridge.samplers import make_sampler
from petl_search.search.language.study import Baseline, StudyError, load_study, parse_study

from conftest import TINY_CONFIGS

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "search_spaces"


def study_data(tmp_path: Path, **overrides) -> dict:
    data = {"name": "t", "model": "tiny", "task": "sst2", "space": str(SPACES / "unified.yaml"), "budget": 0.05,
            "n_trials": 6, "sampler": {"name": "random", "seed": 0}, "baselines": ["lora"],
            "storage": f"sqlite:///{tmp_path / 'study.db'}", "train": {"max_steps": 10}}
    data.update(overrides)
    return data


def test_a_study_built_in_code_keeps_its_results_beside_its_storage(tmp_path) -> None:
    """Ray's trial logs go where the SQLite file is, not into whatever folder the process runs in."""
    spec = parse_study(study_data(tmp_path))
    assert spec.folder == tmp_path
    default = parse_study({k: v for k, v in study_data(tmp_path).items() if k != "storage"})
    assert default.storage == "sqlite:///t/study.db" and default.folder == Path("t")
    shared = parse_study(study_data(tmp_path, storage="postgresql://user@db/studies"))
    assert shared.sqlite_path is None and shared.folder == Path("t")


def test_shipped_studies_load() -> None:
    from petl_search.search.language.contest import load_contest

    for path in sorted((ROOT / "studies").glob("*.yaml")):
        if "arms" in yaml.safe_load(path.read_text()):  # a contest: studies as its arms (language/contest.py)
            contest = load_contest(path)
            for arm in contest.arms:
                for spec in arm.studies:
                    assert spec.storage == f"sqlite:///{contest.folder / f'{arm.name}_s{spec.seed}' / 'study.db'}"
            continue
        spec = load_study(path)
        assert spec.storage == f"sqlite:///{(ROOT / 'studies' / spec.name / 'study.db')}"
        assert spec.space().sites


@pytest.mark.parametrize("change, message", [
    ({"budgett": 0.1}, "unknown key 'budgett'"),
    ({"task": "sst3"}, "task must be one of"),
    ({"budget": 1.5}, "budget must be a fraction of the backbone in (0, 1]"),
    ({"budget": "1%"}, "budget must be a fraction"),
    ({"n_trials": -1}, "n_trials must be a non-negative integer"),
    ({"sampler": {"name": "cmaes"}}, "sampler.name must be one of ['tpe', 'nsga2', 'gp', 'random']"),
    ({"sampler": {"name": "tpe", "startup": 3}}, "sampler has no option 'startup'"),
    ({"objectives": ["stored_params", "metric"]}, "objectives must be [SCORE, stored_params] or [SCORE, stored_params, "
                                                 "throughput], SCORE one of ['accuracy'] or 'metric'"),
    ({"objectives": ["f1", "stored_params"]}, "SCORE one of ['accuracy'] or 'metric' (task 'sst2'), but got ['f1'"),
    ({"search_split": {"size": 0}}, "search_split.size must be a number of examples >= 1 or a fraction in (0, 1)"),
    ({"search_split": {"fraction": 0.1}}, "search_split must be null or {size, max, seed, like}"),
    ({"train": {"search_split": 100}}, "train.search_split is set by the study: use its `search_split` key"),
    ({"reseed": {"top": 0, "seeds": [1]}}, "reseed.top must be a positive integer"),
    ({"reseed": {"top": 2, "seeds": [1, 1]}}, "reseed.seeds must be a list of distinct non-negative integers"),
    ({"budget_aware": "yes"}, "budget_aware must be true or false"),
    ({"resources": {"cpu": 1}}, "resources must be {cpus: N, gpus: F}"),
    ({"resources": {"gpus": -1}}, "resources.gpus must be a number >= 0"),
    ({"early_stopping": {"grace_evals": 0}}, "early_stopping.grace_evals must be a positive integer"),
    ({"train": {"max_stepz": 10}}, "train has no field 'max_stepz'"),
    ({"train": {"max_steps": -1}}, "train.max_steps must be a positive integer"),
    ({"train": {"seed": 3}}, "train.seed is set by the study: use its `seed`"),
    ({"baselines": ["lorra"]}, "baselines[0].preset must be one of"),
    ({"baselines": [{"preset": "lora", "seeds": []}]}, "baselines[0].seeds must be a list"),
    ({"space": "nowhere.yaml"}, "space: search space"),
    ({"storage": "study.db"}, "storage must be an SQLAlchemy URL"),
    ({"name": "my study"}, "name must be a name of letters"),
    ({"strategy": "supernet"}, "strategy must be one of ['standalone', 'oneshot'], but got 'supernet'"),
    ({"oneshot": {"top_k": 3}}, "oneshot is read only with strategy: oneshot, but strategy is 'standalone'"),
    ({"strategy": "oneshot", "oneshot": {"topk": 3}}, "oneshot has no key 'topk'; keys: ['supernet_steps'"),
    ({"strategy": "oneshot", "oneshot": {"designs": 0}}, "oneshot.designs must be a positive integer, but got 0"),
    ({"strategy": "oneshot", "oneshot": {"random_designs": -1}}, "oneshot.random_designs must be a non-negative"),
    ({"strategy": "oneshot", "oneshot": {"adapt_steps": -1}}, "oneshot.adapt_steps must be a non-negative integer"),
    ({"strategy": "oneshot", "oneshot": {"eval_examples": 0}}, "oneshot.eval_examples must be a positive integer "
                                                              "or null, but got 0"),
    ({"strategy": "oneshot", "oneshot": {"top_k": 4}}, "leave n_trials out (or equal to top_k), but got "
                                                       "n_trials=6 and top_k=4"),
    ({"strategy": "oneshot", "n_trials": 8, "search_split": None}, "a one-shot study scores designs on its search "
                                                                   "split; search_split must not be null"),
])
def test_bad_study_files_name_the_key_and_the_problem(tmp_path, change, message) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(study_data(tmp_path, **change)))
    with pytest.raises(StudyError) as info:
        load_study(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_a_missing_or_broken_file_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(StudyError, match="study file .*nope.yaml not found"):
        load_study(tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(StudyError, match="not valid YAML"):
        load_study(tmp_path / "broken.yaml")


def test_a_study_name_that_is_not_found_says_where_it_looked(tmp_path, monkeypatch) -> None:
    """`petl-search status NAME` outside the checkout: the error lists the paths tried and says that the
    YAML file's path works from anywhere; a name under ./studies/ still loads."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StudyError) as info:
        load_study("quickstart")
    assert str(info.value) == (f"study 'quickstart' not found: tried quickstart and studies/quickstart.yaml (from "
                               f"{tmp_path}); give the path to the study's YAML file (e.g. path/to/quickstart.yaml), "
                               f"which works from any folder")
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "mine.yaml").write_text(yaml.safe_dump(study_data(tmp_path, name="mine")))
    assert load_study("mine").source == "studies/mine.yaml"


@pytest.mark.parametrize("name", ["tpe", "nsga2", "gp", "random"])
def test_every_sampler_is_built(tmp_path, name) -> None:
    spec = parse_study(study_data(tmp_path, sampler={"name": name, "seed": 3, **({"startup_trials": 4} if name in
                                                                                   ("tpe", "gp") else {})}))
    sampler = make_sampler(spec)
    expected = {"tpe": "TPESampler", "nsga2": "NSGAIISampler", "gp": "GPSampler", "random": "RandomSampler"}[name]
    if name in ("tpe", "gp"):  # the model-based ones start with random trials, counted as search trials
        assert sampler.n_startup == 4
        sampler = sampler.model
    assert type(sampler.make(3)).__name__ == expected  # made afresh for each trial (TrialStreams)


@pytest.mark.parametrize("preset, args", [("lora", {}), ("houlsby", {}), ("prefix_tuning", {}),
                                          ("mam", {"prefix_len": 2}), ("mh_parallel_adapter", {})])
def test_baselines_are_fitted_to_the_largest_size_within_budget(preset, args) -> None:
    model_config = TINY_CONFIGS["bert"]()
    fitted = fit_to_budget(Baseline(preset, args), 0.05, model_config)
    from petl_search.core.presets import SIZE_ARGUMENT, preset as build

    size = fitted.args[SIZE_ARGUMENT[preset]]
    assert fitted.preset == preset and fitted.config == build(preset, model_config=model_config, **fitted.args)
    assert count_params(fitted.config, model_config).stored_fraction <= 0.05
    bigger = build(preset, model_config=model_config, **{**args, SIZE_ARGUMENT[preset]: size + 1})
    assert count_params(bigger, model_config).stored_fraction > 0.05
    assert fitted.label == f"{preset}(" + ",".join(f"{k}={v}" for k, v in sorted(fitted.args.items())) + ")"
    # explicit sizes are kept, even over budget: the user asked for that point
    kept = fit_to_budget(Baseline("lora", {"r": 64}), 0.05, model_config)
    assert kept.config == build("lora", r=64) and kept.label == "lora(r=64)"


def test_a_baseline_that_cannot_fit_is_refused() -> None:
    with pytest.raises(StudyError, match="does not fit the budget .* even with r=1"):
        fit_to_budget(Baseline("houlsby"), 1e-6, TINY_CONFIGS["bert"]())


def test_a_baseline_that_cannot_fit_names_the_study_file_the_entry_and_a_readable_budget(tmp_path) -> None:
    """budget: 0.0000001 is 1e-07 (0.00001% of the backbone), not 0.0000%; the error is raised where a run
    starts (the storage's upgrade, then the proposer) and names the file and baselines[i]."""
    path = tmp_path / "tiny_budget.yaml"
    path.write_text(yaml.safe_dump(study_data(tmp_path, budget=0.0000001, baselines=["lora", "houlsby"])))
    spec = load_study(path)
    model_config = TINY_CONFIGS["bert"]()
    stored = count_params(preset("lora", r=1), model_config)
    expected = (f"{path}: baselines[0] (lora) does not fit the budget 1e-07 (0.00001% of the backbone): even with r=1 it "
                f"stores {100 * stored.stored_fraction:.3g}% of the backbone ({stored.stored:,} parameters); raise "
                f"`budget` or remove this baseline")
    for start in (lambda: upgrade(open_store(spec), spec, model_config), lambda: Proposer(open_store(spec), spec, model_config)):
        with pytest.raises(StudyError) as info:
            start()
        assert str(info.value) == expected
    path.write_text(yaml.safe_dump(study_data(tmp_path, baselines=["lora", {"preset": "houlsby", "args": {"r": -3}}],
                                              storage=f"sqlite:///{tmp_path / 'other.db'}")))
    spec = load_study(path)
    with pytest.raises(StudyError) as info:
        Proposer(open_store(spec), spec, model_config)
    assert str(info.value) == f"{path}: baselines[1].args: houlsby: r must be a positive integer, but got -3"


def test_budgets_and_fractions_read_well_at_any_size() -> None:
    assert [percent(f) for f in (1e-07, 0.0032460396, 0.05, 1e-09, 0.0)] == ["0.00001%", "0.325%", "5%", "0.0000001%", "0%"]
    assert budget_text(0.0000001) == "1e-07 (0.00001% of the backbone)"
    assert budget_text(0.01) == "0.01 (1% of the backbone)"


def completed(proposer: Proposer, number: int, metric: float) -> dict:
    """A trainer record as a worker sends it back (the proposer never looks inside the model)."""
    trial = proposer.study.get_trials(deepcopy=False)[number]
    return {"status": "completed", "main_metric": "accuracy", "metrics": {"accuracy": metric},
            "params": {"delta_stored": trial.user_attrs["stored_params"]}, "throughput": 10.0, "steps": 10}


def make_proposer(tmp_path, **overrides) -> Proposer:
    spec = parse_study(study_data(tmp_path, **overrides))
    return Proposer(open_store(spec), spec, TINY_CONFIGS["bert"]())


def test_candidates_are_valid_points_within_budget_and_over_budget_ones_teach_the_sampler(tmp_path) -> None:
    proposer = make_proposer(tmp_path, n_trials=12, budget=0.02)
    model_config = TINY_CONFIGS["bert"]()
    seen = []
    while (candidate := proposer.next()) is not None:
        config = PETLConfig.from_dict(candidate.petl_config)
        assert count_params(config, model_config).stored_fraction <= 0.02
        seen.append(candidate)
        proposer.finish(candidate.number, completed(proposer, candidate.number, 0.5 + 0.01 * len(seen)))
    assert [c.kind for c in seen] == ["baseline"] + ["search"] * 12
    trials = proposer.study.get_trials()
    over = [t for t in trials if t.user_attrs["kind"] == "over_budget"]
    assert over, "a 2% budget on the unified space must reject some proposals"
    assert not {t.number for t in over} & {c.number for c in seen}  # none was handed to a worker
    for t in over:  # told as complete with the metric's floor, and infeasible, so the sampler learns
        assert t.state == optuna.trial.TrialState.COMPLETE and t.values[0] == 0.0
        assert t.constraints["budget"] > 0 and t.user_attrs["stored_fraction"] > 0.02
        assert t.values[1] == t.user_attrs["stored_params"] > 0.02 * count_params(PETLConfig(), model_config).backbone
    for t in trials:
        if t.user_attrs["kind"] in ("search", "baseline"):
            assert t.constraints["budget"] <= 0


ONE_LORA = {"name": "one", "sites": {"attn_qkv": {"optional": False, "form": ["lora"], "size": 2,
            "insertion": "parallel", "composition": "add", "heads": 1, "init": "lora", "input_norm": False,
            "projections": [["q", "v"]]}}}


def test_a_point_proposed_twice_is_not_trained_twice_nor_observed_twice(tmp_path) -> None:
    space = tmp_path / "one_point.yaml"
    space.write_text(yaml.safe_dump(ONE_LORA))
    proposer = make_proposer(tmp_path, space=str(space), n_trials=3, baselines=[])
    proposer.max_rejections = 20
    first = proposer.next()
    proposer.finish(first.number, completed(proposer, first.number, 0.7))
    with pytest.raises(PETLError, match="20 points in a row that were over the budget .*, already trained or did "
                                        "not fit the model; widen the space"):
        proposer.next()
    duplicates = [t for t in proposer.study.get_trials() if t.user_attrs["kind"] == "duplicate"]
    assert len(duplicates) == 20 and all(t.user_attrs["duplicate_of"] == first.number for t in duplicates)
    # the sampler's observations (what TPE reads: complete and pruned trials) hold the point once
    observed = proposer.study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    assert [t.number for t in observed] == [first.number]
    assert sum(r.kind == "search" for r in read_records(proposer.study)) == 1


def test_a_point_stopped_early_or_failed_is_not_trained_again(tmp_path) -> None:
    space = tmp_path / "two_points.yaml"
    space.write_text(yaml.safe_dump({"name": "two", "sites": {"attn_qkv": {**ONE_LORA["sites"]["attn_qkv"],
                                                                          "size": [2, 3]}}}))
    proposer = make_proposer(tmp_path, space=str(space), n_trials=5, baselines=[])
    proposer.max_rejections = 30
    first, second = proposer.next(), proposer.next()
    proposer.finish(first.number, None, stopped_reason="stopped early by ASHA at step 5")
    proposer.finish(second.number, {"status": "failed", "reason": "out of memory"})
    with pytest.raises(PETLError, match="already trained"):
        proposer.next()
    repeats = [t for t in proposer.study.get_trials() if t.user_attrs["kind"] == "duplicate"]
    assert {t.user_attrs["duplicate_of"] for t in repeats} == {first.number, second.number}
    assert all(t.state.name == "FAIL" for t in repeats)  # no second observation of either


def test_the_random_start_up_counts_trained_search_trials_only(tmp_path) -> None:
    """Baselines, over-budget rejections and repeats do not use up TPE's random start-up (43 baselines
    once did, before the first search trial of a study asking for 12 random ones)."""
    proposer = make_proposer(tmp_path, n_trials=5, budget=0.02, baselines=[{"preset": "lora", "seeds": [0, 1, 2]},
                             {"preset": "houlsby", "seeds": [0, 1]}], sampler={"name": "tpe", "seed": 0,
                                                                            "startup_trials": 3})
    sampler = proposer.study.sampler
    starting, numbers, optuna_counts = [], [], []
    while (candidate := proposer.next()) is not None:
        if candidate.kind == "search":
            starting.append(sampler.source(candidate.number) != "model")  # decided when the trial was asked for
            numbers.append(candidate.number)
            optuna_counts.append(len(proposer.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,
                                                                          optuna.trial.TrialState.PRUNED))))
        proposer.finish(candidate.number, completed(proposer, candidate.number, 0.6))
    # 5 baselines first, yet 3 random search trials; then the model's (but right after a repeat: random)
    after_repeat = {t.number + 1 for t in proposer.study.get_trials() if t.user_attrs["kind"] == "duplicate"}
    assert starting == [i < 3 or number in after_repeat for i, number in enumerate(numbers)]
    assert starting[:3] == [True] * 3 and False in starting
    # what Optuna's own TPE counts (every finished trial) was past 3 before the first search trial
    assert optuna_counts[0] >= 5


def test_resume_runs_exactly_the_interrupted_points_each_in_its_own_role(tmp_path) -> None:
    """An interrupted baseline and an interrupted search point are both run again: the baseline as a
    baseline (with its preset and seed, no search parameters) and the search point with its own
    parameters (not a fresh sample that happens to coincide)."""
    proposer = make_proposer(tmp_path, n_trials=4, baselines=[{"preset": "lora", "seeds": [0, 1]}])
    base0, base1, s1, s2 = (proposer.next() for _ in range(4))
    proposer.finish(base0.number, completed(proposer, base0.number, 0.8))
    proposer.finish(s1.number, completed(proposer, s1.number, 0.7))
    interrupted_params = proposer.study.get_trials()[s2.number].params
    assert interrupted_params  # a sampled point
    # the process dies here: base1 and s2 are left RUNNING in the storage
    spec = proposer.spec
    store = open_store(spec)
    assert sorted(reconcile(store)) == sorted([base1.number, s2.number])
    resumed = Proposer(store, spec, TINY_CONFIGS["bert"]())
    assert resumed.remaining == 1 + 3  # baseline seed 1, and 3 of the 4 search trials
    again = [resumed.next() for _ in range(4)]
    assert resumed.next() is None
    trials = {t.number: t for t in store.study.get_trials()}
    search_again = again[0]  # queued points go first: nothing else may take them from the queue
    assert search_again.kind == "search" and search_again.petl_config == s2.petl_config
    assert trials[search_again.number].params == interrupted_params
    assert trials[search_again.number].user_attrs["requeued_from"] == s2.number
    baseline_again = next(c for c in again if c.kind == "baseline")
    assert baseline_again.seed == 1 and baseline_again.petl_config == base1.petl_config
    lora_point = {n: v for n, (_, v) in spec.space().replay(PETLConfig.from_dict(base1.petl_config),
                                                            TINY_CONFIGS["bert"](), budget=spec.budget).items()}
    assert trials[baseline_again.number].params == lora_point != interrupted_params  # its own place in the space
    assert trials[baseline_again.number].user_attrs["preset"] == "lora"
    for c in again:
        resumed.finish(c.number, completed(resumed, c.number, 0.6))
    records = read_records(store.study)
    trained = [r for r in records if r.kind in ("search", "baseline") and not r.extra.get("interrupted")]
    assert len(trained) == 4 + 2 and all(r.state == "COMPLETE" for r in trained)
    assert next(r for r in records if r.number == s1.number).metric == 0.7  # untouched by the resume


def test_a_queued_point_is_dropped_when_the_study_needs_no_more_search_trials(tmp_path) -> None:
    proposer = make_proposer(tmp_path, n_trials=1, baselines=[])
    s1 = proposer.next()
    store = open_store(proposer.spec)
    reconcile(store)  # s1 was interrupted: queued again
    fewer = parse_study(study_data(tmp_path, n_trials=1, baselines=["lora"]))
    finished_search = Proposer(store, fewer, TINY_CONFIGS["bert"]())
    finished_search.search_left = 0  # as if the search trial had since been run elsewhere
    baseline = finished_search.next()
    assert baseline.kind == "baseline" and store.study.get_trials()[baseline.number].user_attrs.get(
        "requeued_from") is None  # it did not take the queued trial
    dropped = [t for t in store.study.get_trials() if t.user_attrs.get("kind") == "dropped"]
    assert len(dropped) == 1 and dropped[0].user_attrs["requeued_from"] == s1.number


def test_outcomes_are_told_once_with_their_reasons(tmp_path) -> None:
    proposer = make_proposer(tmp_path, baselines=[], n_trials=4)
    a, b, c, d = (proposer.next() for _ in range(4))
    assert proposer.next() is None
    proposer.finish(a.number, completed(proposer, a.number, 0.9))
    proposer.finish(b.number, {"status": "failed", "reason": "loss became nan at step 3"})
    proposer.finish(c.number, None, stopped_reason="stopped early by ASHA at step 5")
    proposer.finish(d.number, None, error="the worker raised or died")
    states = {r.number: (r.state, r.reason) for r in read_records(proposer.study)}
    assert states[a.number] == ("COMPLETE", None)
    assert states[b.number] == ("FAIL", "loss became nan at step 3")
    assert states[c.number] == ("PRUNED", "stopped early by ASHA at step 5")
    assert states[d.number] == ("FAIL", "the worker raised or died")
    with pytest.raises(ValueError, match="Cannot tell a COMPLETE trial"):  # Optuna refuses a second tell: a trial cannot be counted twice
        proposer.study.tell(a.number, [0.1, 1.0])


def test_the_same_failure_three_times_before_any_success_stops_the_study(tmp_path) -> None:
    proposer = make_proposer(tmp_path, baselines=[], n_trials=10)
    for _ in range(3):
        candidate = proposer.next()
        proposer.finish(candidate.number, {"status": "failed", "reason": "model 'x' could not be loaded"})
    assert proposer.abort and "model 'x' could not be loaded" in proposer.abort
    assert proposer.next() is None


def test_a_changed_definition_is_refused_but_more_trials_are_fine(tmp_path) -> None:
    open_study(parse_study(study_data(tmp_path)))
    open_study(parse_study(study_data(tmp_path, n_trials=50, concurrency=2)))
    with pytest.raises(PETLError, match=r"different definition \(changed: budget\)"):
        open_study(parse_study(study_data(tmp_path, budget=0.1)))
    with pytest.raises(PETLError, match="has no results yet"):
        open_study(parse_study(study_data(tmp_path, name="other")), create=False)


def test_a_baseline_inside_the_space_reaches_the_sampler_as_its_point(tmp_path) -> None:
    """MAM lies in this space, so its trial carries the parameters that sample it (the sampler learns from
    it as from its own trials); LoRA on q/v does not, so its trial has none."""
    space = tmp_path / "around_mam.yaml"
    space.write_text(yaml.safe_dump({"sites": {
        "attn_heads": {"optional": True, "form": ["prefix"], "prefix": {"size": {"low": 1, "high": 200},
                                                                      "reparam": [None, 512, 800]}},
        "ffn": {"optional": False, "form": ["bottleneck"], "size": {"low": 1, "high": 1024, "log": True},
                "insertion": ["parallel", "sequential"], "composition": ["scale", "add"],
                "scale": {"low": 1.0, "high": 8.0}, "activation": ["relu"], "init": ["bert", "lora"],
                "input_norm": [False]}}}))
    proposer = make_proposer(tmp_path, space=str(space), n_trials=3, baselines=["mam", "lora"], budget=0.5,
                             sampler={"name": "tpe", "seed": 0, "startup_trials": 1})
    spec_space = proposer.space
    while (candidate := proposer.next()) is not None:
        proposer.finish(candidate.number, completed(proposer, candidate.number, 0.6))
    trials = {t.user_attrs["label"].split("(")[0]: t for t in proposer.study.get_trials()
              if t.user_attrs["kind"] == "baseline"}
    mam = PETLConfig.from_dict(trials["mam"].user_attrs["petl_config"])
    assert trials["mam"].params and spec_space.sample(optuna.trial.FixedTrial(trials["mam"].params),
                                                      proposer.model_config, budget=proposer.spec.budget) == mam
    assert trials["lora"].params == {}
    # the model-based sampler went on from there: every search trial was proposed and told
    assert sum(t.user_attrs["kind"] == "search" and t.state.is_finished() for t in proposer.study.get_trials()) == 3


def test_an_older_storage_gets_its_baselines_presets_as_data(tmp_path) -> None:
    """Storages written before baselines kept their preset as data are upgraded by fitting the study's
    baselines again (as the run that trained them did), never by parsing labels."""
    from petl_search.search.optuna_bridge.storage import upgrade

    spec = parse_study(study_data(tmp_path, baselines=[{"preset": "lora", "args": {"projections": ["q", "k", "v"]}}]))
    store = open_store(spec)
    fitted = fit_to_budget(spec.baselines[0], spec.budget, TINY_CONFIGS["bert"]())
    old = optuna.trial.create_trial(values=[0.8, 10.0], user_attrs={"kind": "baseline", "label": fitted.label,
                                                                     "seed": 0})
    store.study.add_trial(old)  # as an earlier petl-search stored it: kind and label only
    assert read_records(store.study)[0].preset is None
    assert upgrade(store, spec, TINY_CONFIGS["bert"]()) == 1
    (record,) = read_records(store.study)
    assert record.preset == "lora" and record.preset_args == {"projections": ["q", "k", "v"], "r": fitted.args["r"]}


def test_objectives_by_name_and_the_protocols_keys(tmp_path) -> None:
    mrpc = parse_study(study_data(tmp_path, task="mrpc", objectives=["accuracy", "stored_params", "throughput"]))
    assert mrpc.objectives == ("accuracy", "stored_params", "throughput") and mrpc.main_metric == "accuracy"
    assert mrpc.directions == ["maximize", "minimize", "maximize"]
    assert parse_study(study_data(tmp_path, task="mrpc")).objectives == ("f1", "stored_params")  # `metric`
    spec = parse_study(study_data(tmp_path))
    assert spec.search_split == {"size": 0.1, "max": 1000, "seed": 0} and spec.budget_aware and spec.reseed is None
    config = spec.train_config(3)
    assert (config.search_split, config.search_split_max, config.split_seed, config.seed) == (0.1, 1000, 0, 3)
    on_dev = parse_study(study_data(tmp_path, search_split=None, reseed={"top": 2, "seeds": [1, 2]}))
    assert on_dev.train_config(0).search_split is None and on_dev.reseed == {"top": 2, "seeds": [1, 2]}
    assert on_dev.fingerprint() != spec.fingerprint()  # what a stored study means


def test_the_quickstart_selects_on_its_tasks_main_metric_and_keeps_its_fingerprint(tmp_path) -> None:
    """`objectives: [metric, stored_params]` is stored as the task's metric's name, so the quickstart means what
    it meant with `accuracy` written out (the storages of its runs resume), and a copy of it onto MRPC selects
    on F1 instead of silently on accuracy."""
    import sqlite3

    data = yaml.safe_load((ROOT / "studies" / "quickstart.yaml").read_text())
    assert data["objectives"] == ["metric", "stored_params"]
    spec = load_study(ROOT / "studies" / "quickstart.yaml")
    assert spec.objectives == ("accuracy", "stored_params")
    # a committed run of the quickstart (bench/quickstart_seeds.py, seed 0 is the file's own), read, not opened
    stored = ROOT / "studies" / "quickstart_seeds" / "quickstart-seed0.db"
    with sqlite3.connect(f"file:{stored}?mode=ro", uri=True) as db:
        (fingerprint,) = db.execute("select value_json from study_user_attributes where key = 'fingerprint'").fetchone()
    assert spec.fingerprint() == yaml.safe_load(fingerprint)
    written_out = parse_study({**data, "objectives": ["accuracy", "stored_params"]},
                              source=str(ROOT / "studies" / "quickstart.yaml"))
    assert written_out.identity() == spec.identity()
    on_mrpc = parse_study(study_data(tmp_path, task="mrpc", objectives=data["objectives"]))
    assert on_mrpc.main_metric == "f1"


def test_the_first_line_of_a_search_says_what_it_selects_on(tmp_path) -> None:
    from petl_search.search.language.study import objective_note

    assert objective_note(parse_study(study_data(tmp_path, task="mrpc"))) == "selecting on f1 (mrpc's main metric)"
    assert objective_note(parse_study(study_data(tmp_path, task="mrpc", objectives=["accuracy", "stored_params"]))) \
        == "selecting on accuracy (mrpc's main metric is f1; write objectives: [metric, stored_params] for it)"
    three = parse_study(study_data(tmp_path, task="mrpc", objectives=["accuracy", "stored_params", "throughput"]))
    assert objective_note(three).endswith("write objectives: [metric, stored_params, throughput] for it)")
    assert objective_note(parse_study(study_data(tmp_path))) == "selecting on accuracy (sst2's main metric)"


def test_hub_reads_the_task_from_the_hub_and_excludes_data_dir(tmp_path) -> None:
    from petl_search.training.tasks import HUB

    spec = parse_study(study_data(tmp_path, hub=True))
    assert spec.hub and spec.data_dir is None and spec.data_source == HUB and spec.to_dict()["hub"] is True
    local = parse_study(study_data(tmp_path, data_dir=str(tmp_path)))
    assert not local.hub and local.data_source == str(tmp_path.resolve())
    assert parse_study(study_data(tmp_path)).data_source is None  # the default GLUE folder
    path = tmp_path / "both.yaml"
    path.write_text(yaml.safe_dump(study_data(tmp_path, hub=True, data_dir=str(tmp_path))))
    with pytest.raises(StudyError, match=rf"{path}: hub and data_dir exclude each other .*: keep one, but got hub=True "
                                         rf"and data_dir='{tmp_path}'"):
        load_study(path)
    with pytest.raises(StudyError, match=r"hub must be true \(read the task from the Hugging Face Hub\) or false, but "
                                         r"got 'yes'"):
        parse_study(study_data(tmp_path, hub="yes"))


def test_a_oneshot_study_fills_its_stages_and_only_it_changes_the_fingerprint(tmp_path) -> None:
    plain = parse_study(study_data(tmp_path))
    assert (plain.strategy, plain.oneshot) == ("standalone", None)
    assert "strategy" not in plain.identity()  # storages written before one-shot studies keep their fingerprint
    data = study_data(tmp_path, strategy="oneshot", oneshot={"top_k": 6, "eval_examples": None})
    spec = parse_study(data)
    assert spec.oneshot == {"supernet_steps": 1000, "random_designs": 2, "designs": 1000, "eval_examples": None,
                            "top_k": 6, "adapt_steps": 20}
    assert spec.n_trials == 6 and spec.identity()["strategy"] == "oneshot"
    assert spec.fingerprint() != parse_study(study_data(tmp_path, strategy="oneshot", n_trials=8)).fingerprint()


def test_a_oneshot_study_of_a_language_models_task_adapts_no_head(tmp_path) -> None:
    """adapt_steps fits a task head per design; a causal LM's task has none: 0 by default, and refused when set
    (it once failed only after the supernet had trained)."""
    task = {"kind": "causal_lm", "files": {"train": "train.jsonl", "dev": "dev.jsonl"}, "prompt": "{sentence}",
            "answer": "label_text"}
    for name in task["files"].values():
        (tmp_path / name).write_text('{"sentence": "fine", "label_text": "yes"}\n')
    data = study_data(tmp_path, task=task, strategy="oneshot", oneshot={"top_k": 6})
    data.pop("data_dir", None)
    path = tmp_path / "lm.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_study(path).oneshot["adapt_steps"] == 0
    path.write_text(yaml.safe_dump({**data, "oneshot": {"top_k": 6, "adapt_steps": 20}}))
    with pytest.raises(StudyError, match=re.escape(
            "oneshot.adapt_steps fits a task head per design, but this task's model answers with its own LM head "
            "and trains no head: leave adapt_steps out (0 for this task), but got 20")):
        load_study(path)


MISFITS = {"name": "misfits", "sites": {"attn_out": {
    "optional": False, "form": ["bottleneck"], "size": {"low": 1, "high": 8}, "insertion": "parallel",
    "composition": "add", "activation": "relu", "init": "bert", "input_norm": False,
    "heads": [1, 3],  # 3 divides no width of the tiny BERT (32)
    "layers": [[0], [0, 1], [3]]}}}  # it has 2 blocks


@pytest.mark.parametrize("budget_aware", [True, False])
def test_a_point_that_does_not_fit_the_model_is_rejected_and_the_study_goes_on(tmp_path, budget_aware) -> None:
    """plan() refuses a multi-head Δh whose heads do not divide a width, and layers past the model's blocks.
    Such a point once escaped the proposer as an error (from the budget-aware sizes or the count), stopped
    the study and left its trial running. It is closed unrun instead, told to the sampler as infeasible
    (as an over-budget point is), with plan()'s reason, and the sampler proposes again."""
    space = tmp_path / "misfits.yaml"
    space.write_text(yaml.safe_dump(MISFITS))
    proposer = make_proposer(tmp_path, space=str(space), n_trials=4, baselines=[], budget_aware=budget_aware)
    handed = []
    while (candidate := proposer.next()) is not None:
        count_params(PETLConfig.from_dict(candidate.petl_config), proposer.model_config)  # it fits: no error
        handed.append(candidate)
        proposer.finish(candidate.number, completed(proposer, candidate.number, 0.6))
    assert len(handed) == 4
    trials = proposer.study.get_trials()
    assert not [t.number for t in trials if not t.state.is_finished()]
    misfits = [t for t in trials if t.user_attrs["kind"] == "misfit"]
    assert misfits, "this space proposes points that do not fit the tiny BERT"
    for t in misfits:
        assert t.state == optuna.trial.TrialState.COMPLETE and t.constraints["budget"] > 0  # infeasible
        assert t.values[0] == 0.0  # the score's floor
        assert re.search(r"does not fit the model: attn_out\.(heads must be a divisor of the widths Δh maps here "
                         r"\(in=32, out=32\), but got 3|layers must be block indices in \[0, 2\) for this model, "
                         r"but got \[3\])", t.user_attrs["reason"]), t.user_attrs["reason"]
    assert {c.number for c in handed}.isdisjoint(t.number for t in misfits)
    tally = counts(read_records(proposer.study))  # what status and the dashboard count: not as completed
    assert tally["misfit"] == len(misfits) and tally["completed"] == 4
    with pytest.raises(PETLError, match=rf"trial {misfits[0].number} did not fit the model and was never trained"):
        trained_trial(read_records(proposer.study), misfits[0].number)


def test_a_space_with_no_point_that_fits_the_model_says_so(tmp_path) -> None:
    space = tmp_path / "misfits.yaml"
    space.write_text(yaml.safe_dump({"sites": {"attn_out": {**MISFITS["sites"]["attn_out"], "heads": [3]}}}))
    proposer = make_proposer(tmp_path, space=str(space), n_trials=2, baselines=[])
    proposer.max_rejections = 10
    with pytest.raises(PETLError, match=r"10 points in a row that were over the budget .*, already trained or did "
                                        r"not fit the model \(the last: attn_out.heads must be a divisor"):
        proposer.next()


@pytest.mark.parametrize("sampler", [{"name": "random"}, {"name": "tpe", "startup_trials": 20},
                                     {"name": "gp", "startup_trials": 20}, {"name": "nsga2", "population_size": 20}])
def test_a_resumed_study_does_not_propose_again_what_it_proposed(tmp_path, sampler) -> None:
    """A random stream seeded with the study's seed once started again from its beginning in each new process,
    so a resumed study proposed its first points again (59 of the 99 repeats of sst2_heldout_rediscover).
    Here every proposal is random (the random sampler, TPE's and GP's start-up, NSGA-II's first generation)."""
    first = make_proposer(tmp_path, n_trials=4, baselines=[], sampler={**sampler, "seed": 0})
    while (candidate := first.next()) is not None:
        first.finish(candidate.number, completed(first, candidate.number, 0.6))
    proposed = [t.params for t in first.study.get_trials()]
    # a new process: the storage opened again and the sampler built again, as `petl-search search` does
    spec = parse_study(study_data(tmp_path, n_trials=8, baselines=[], sampler={**sampler, "seed": 0}))
    resumed = Proposer(open_store(spec), spec, TINY_CONFIGS["bert"]())
    while (candidate := resumed.next()) is not None:
        resumed.finish(candidate.number, completed(resumed, candidate.number, 0.6))
    trials = resumed.study.get_trials()
    assert sum(t.user_attrs["kind"] == "search" for t in trials) == 8
    again = [t.params for t in trials[len(proposed):]]
    assert not [p for p in again if p in proposed]
    assert not [t.number for t in trials if t.user_attrs["kind"] == "duplicate"]
