"""One-shot search, the parts around the supernet: designs proposed from the space and scored by a scorer
(here a stand-in), resumable; the top-k chosen by non-dominated rank and crowding; queued once in the
study and handed out by the proposer as ordinary search points, before anything else."""
from __future__ import annotations

import optuna
import pytest
import yaml

from petl_search.core.config import PETLConfig
from petl_search.core.params import count_params
from petl_search.search.oneshot.pipeline import DESIGN_KEY, design_study, queue_designs, search_designs, top_designs
from petl_search.search.optuna_bridge.proposer import Proposer
from petl_search.search.optuna_bridge.samplers import MODEL_REPEATS
from petl_search.search.optuna_bridge.storage import open_store
from petl_search.search.language.study import parse_study

from conftest import TINY_CONFIGS
from test_study import study_data

MODEL = TINY_CONFIGS["bert"]()


def oneshot_spec(tmp_path, **oneshot):
    data = study_data(tmp_path, strategy="oneshot", budget=0.05, sampler={"name": "nsga2", "seed": 0,
                      "population_size": 8}, oneshot={"designs": 12, "top_k": 3, **oneshot})
    del data["n_trials"]  # a one-shot study's search trials are its top_k
    return parse_study(data)


def made_up(config: PETLConfig) -> dict[str, float]:
    """A stand-in for the supernet: a score that rises with size, with a per-design wobble."""
    stored = count_params(config, MODEL).stored
    return {"accuracy": min(1.0, 0.5 + stored / 4e5 + (int(config.fingerprint()[:4], 16) % 97) / 1e4)}


def test_designs_are_scored_once_each_within_budget_and_a_rerun_resumes(tmp_path) -> None:
    spec = oneshot_spec(tmp_path)
    store = open_store(spec)
    designs = design_study(spec, store.storage)
    calls: list[str] = []

    def score(config: PETLConfig) -> dict[str, float]:
        calls.append(config.fingerprint())
        return made_up(config)

    assert search_designs(spec, designs, score, MODEL, progress=lambda line: None) == 12
    scored = designs.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(scored) == 12 and len(set(calls)) == 12 == len(calls)  # no design scored twice
    limit = 0.05 * count_params(PETLConfig(), MODEL).backbone
    for t in scored:
        config = PETLConfig.from_dict(t.user_attrs["config"])
        assert t.values == [made_up(config)["accuracy"], count_params(config, MODEL).stored] and t.values[1] <= limit
    assert search_designs(spec, design_study(spec, store.storage), score, MODEL, progress=lambda line: None) == 0
    more = oneshot_spec(tmp_path, designs=15)  # a larger stage 2 scores only the difference
    assert search_designs(more, design_study(more, store.storage), score, MODEL, progress=lambda line: None) == 3
    assert len(calls) == 15


def fixed_study(points: list[tuple[float, int]]) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for value, stored in points:
        study.add_trial(optuna.trial.create_trial(values=[value, stored], params={}, distributions={}))
    return study


def test_top_k_takes_whole_ranks_then_the_most_crowded_out_points_of_the_next() -> None:
    # rank 0: #0 (0.80, 10), #1 (0.85, 20), #2 (0.90, 40); rank 1: #3 (0.79, 12), #4 (0.83, 25),
    # #5 (0.845, 35), #6 (0.88, 45); dominated further: #7 (0.70, 50)
    study = fixed_study([(0.80, 10), (0.85, 20), (0.90, 40), (0.79, 12), (0.83, 25), (0.845, 35), (0.88, 45),
                         (0.70, 50)])
    assert [t.number for t in top_designs(study, 3)] == [0, 1, 2]
    # two of rank 1 join: its extremes (#3 and #6: infinite crowding distance), listed by size
    assert [t.number for t in top_designs(study, 5)] == [0, 1, 2, 3, 6]
    # then #4 (crowding 0.61 + 0.70) before #5 (0.56 + 0.61)
    assert [t.number for t in top_designs(study, 6)][-3:] == [3, 4, 6]
    assert len(top_designs(study, 20)) == 8


def test_queued_designs_are_trained_first_as_search_points_and_queued_once(tmp_path) -> None:
    spec = oneshot_spec(tmp_path)
    store = open_store(spec)
    designs = design_study(spec, store.storage)
    search_designs(spec, designs, made_up, MODEL, progress=lambda line: None)
    chosen = top_designs(designs, spec.oneshot["top_k"])
    assert queue_designs(store.study, chosen) == [t.number for t in chosen]
    assert queue_designs(store.study, chosen) == [t.number for t in chosen]  # a resumed run queues nothing
    assert len(store.study.get_trials(states=(optuna.trial.TrialState.WAITING,))) == 3
    proposer = Proposer(store, spec, MODEL)
    handed = [proposer.next() for _ in range(4)]
    assert [c.kind for c in handed] == ["search", "search", "search", "baseline"]
    assert [c.petl_config for c in handed[:3]] == [PETLConfig.from_dict(t.user_attrs["config"]).to_dict()
                                                   for t in chosen]
    trials = store.study.get_trials(deepcopy=False)
    assert [trials[c.number].user_attrs[DESIGN_KEY] for c in handed[:3]] == [t.number for t in chosen]
    assert spec.n_trials == 3 and proposer.search_left == 0  # no sampler proposal follows


@pytest.mark.parametrize("designs", [1, 5])
def test_a_tiny_design_budget_is_met_exactly(tmp_path, designs) -> None:
    spec = oneshot_spec(tmp_path, designs=designs, top_k=1)
    study = design_study(spec, open_store(spec).storage)
    search_designs(spec, study, made_up, MODEL, progress=lambda line: None)
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == designs


def test_after_the_start_up_the_model_proposes_the_designs(tmp_path, monkeypatch) -> None:
    """Designs carry no `kind`; the start-up once counted `kind: search` trials only, so in a one-shot study
    TPE never took over from its random start-up (0 of 17 designs were TPE's). Now the start-up counts the
    scored designs, and every design asked for after 3 of them is the model's (but one random fallback
    after MODEL_REPEATS repeats in a row, as in a study)."""
    data = study_data(tmp_path, strategy="oneshot", budget=0.05, sampler={"name": "tpe", "seed": 0,
                      "startup_trials": 3}, oneshot={"designs": 12, "top_k": 3})
    del data["n_trials"]
    spec = parse_study(data)
    designs = design_study(spec, open_store(spec).storage)
    sampler = designs.sampler
    random_proposal: dict[int, bool] = {}  # trial number -> proposed by the start-up (or exploring) sampler
    decide = sampler.before_trial

    def noting(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        decide(study, trial)
        random_proposal[trial.number] = sampler.source(trial.number) != "model"

    monkeypatch.setattr(sampler, "before_trial", noting)
    assert search_designs(spec, designs, made_up, MODEL, progress=lambda line: None) == 12
    scored_before, repeats, expected = 0, 0, {}
    for t in designs.get_trials():
        fallback = scored_before >= 3 and repeats > MODEL_REPEATS
        expected[t.number] = scored_before < 3 or fallback
        repeats = 0 if fallback else repeats
        scored_before += t.state == optuna.trial.TrialState.COMPLETE
        repeats = repeats + 1 if t.user_attrs.get("rejected") == "repeat" else 0
    assert random_proposal == expected
    model_designs = [t for t in designs.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
                     if not random_proposal[t.number]]
    assert len(model_designs) >= 3  # of the 9 designs after the start-up (0 before the fix)


def test_a_design_that_does_not_fit_the_model_is_rejected_with_its_reason(tmp_path) -> None:
    from test_study import MISFITS

    space = tmp_path / "misfits.yaml"
    space.write_text(yaml.safe_dump(MISFITS))
    data = study_data(tmp_path, strategy="oneshot", space=str(space), sampler={"name": "random", "seed": 0},
                      oneshot={"designs": 4, "top_k": 1})
    del data["n_trials"]
    spec = parse_study(data)
    study = design_study(spec, open_store(spec).storage)
    assert search_designs(spec, study, made_up, MODEL, progress=lambda line: None) == 4
    misfits = [t for t in study.get_trials() if t.user_attrs.get("rejected") == "misfit"]
    assert misfits and all(t.state == optuna.trial.TrialState.FAIL for t in misfits)
    assert all(t.user_attrs["reason"].startswith("does not fit the model: attn_out.") for t in misfits)
