"""A contest's report (analysis/contest_report.py) from real storages: two rival arms (search, random) at two
study seeds and a tuned reference, driven by tiny-model proposers with chosen dev predictions, so that the
verdicts and the targets are known beforehand:

    tuned (LoRA, the reference)  wrong on 30% of dev on every fresh seed
    search s0                    right everywhere       search s1  exactly as tuned
    random s0                    wrong on 10%           random s1  right everywhere
"""
from __future__ import annotations

import statistics

import optuna
import pytest
import yaml

from petl_search.analysis.contest_report import contest_markdown, contest_states, read_state
from petl_search.cli import main
from petl_search.core.errors import PETLError
from petl_search.search.language.contest import load_contest
from petl_search.search.optuna_bridge.proposer import Proposer
from petl_search.search.optuna_bridge.storage import DEV_LABELS_KEY, open_store

from conftest import TINY_CONFIGS
from test_claims import LABELS, drive_with, fast_dir, right, wrong  # noqa: F401 (fast_dir: a fixture)
from test_contest import fair_data, score_of

CONFIRM = [10, 11, 12]
N_BOOT = 2000


def contest_file(folder, search_seeds=(0, 1)) -> dict:
    base = {k: v for k, v in fair_data(folder).items() if k not in ("name", "storage", "n_trials", "baselines",
                                                                    "tuning", "sampler", "confirm")}
    return {"name": "duel", "description": "search against tuned LoRA and random search", "reference": "tuned",
            "base": {**base, "confirm": {"seeds": CONFIRM}}, "arms": {
                "search": {"seeds": list(search_seeds), "n_trials": 2, "sampler": {"name": "tpe", "startup_trials": 1}},
                "random": {"seeds": [0, 1], "n_trials": 2, "sampler": {"name": "random"}},
                "tuned": {"n_trials": 0, "baselines": ["lora"], "tuning": {"trainings": 1},
                          "confirm": {"seeds": CONFIRM, "baselines": "best"}}}}


def fresh(arm: str, study_seed: int, seed: int) -> list[int]:
    """The dev predictions of a fresh-seed training in `arm` at `study_seed` (the module docstring's table)."""
    if arm == "tuned" or (arm, study_seed) == ("search", 1):
        return wrong(0.3, seed)
    if (arm, study_seed) == ("random", 0):
        return wrong(0.1, seed)
    return right()


def run(spec, arm: str, *, stop_after: int | None = None) -> None:
    proposer = Proposer(open_store(spec), spec, TINY_CONFIGS["bert"]())
    if stop_after is not None:  # an unfinished study: some trainings done, the rest never handed out
        proposer.study.set_user_attr(DEV_LABELS_KEY, LABELS)
        for _ in range(stop_after):
            candidate = proposer.next()
            proposer.finish(candidate.number, {"status": "completed", "metrics": {"accuracy": score_of(candidate)},
                                               "evaluated_on": "search split", "dev_metrics": {"accuracy": 0.5},
                                               "dev_predictions": right(), "throughput": 1.0,
                                               "params": {"delta_stored": candidate.stored_params}})
        return
    drive_with(proposer, lambda group, seed, confirming, number:
               fresh(arm, spec.seed, seed) if confirming else wrong(0.1 + 0.05 * (number % 5), seed))


@pytest.fixture(scope="module")
def contest(fast_dir):  # noqa: F811 (the fixture imported above)
    path = fast_dir / "duel.yaml"
    path.write_text(yaml.safe_dump(contest_file(fast_dir), sort_keys=False))
    spec = load_contest(path)
    for arm in spec.arms:
        for study in arm.studies:
            run(study, arm.name)
    return spec


def lines_of(text: str, heading: str) -> list[str]:
    return text.split(f"## {heading}")[1].split("\n## ")[0].strip().splitlines()


def test_claims_of_every_rival_at_every_size_judged_together(contest) -> None:
    text = contest_markdown(contest, n_boot=N_BOOT)
    rows = [line for line in lines_of(text, "Claims (fresh seeds only)") if line.startswith("| ") and "---" not in line
            and not line.startswith("| question")]
    # 2 rivals x 2 study seeds x 2 sizes x (superiority, half size) + search against random at 2 seeds x 2 sizes
    # a pick that answers at both sizes is compared with the same other pick twice: one test for Holm
    tests = {(row.split(" | ")[1], row.split(" | ")[2], "no worse" in row.split(" | ")[0]) for row in rows}
    assert len(rows) == 20 and len(tests) < 20
    assert f"20 claims, {len(tests)} distinct tests (one pair of picks asked about at several sizes is one test), " \
           f"Holm-corrected at 5% over the {len(tests)}" in text
    assert all("| 10, 11, 12 |" in row for row in rows)

    def verdict(start: str) -> str:
        return [row.rsplit("|", 2)[1].strip() for row in rows if row.startswith(f"| {start}")][0]

    sizes = sorted(read_state("search", contest.arm("search").studies[0]).sizes)
    small, large = sizes
    assert verdict(f"search s0 at {small:,}: beats tuned's best") == "holds"
    assert verdict(f"search s1 at {large:,}: beats tuned's best") == "does not hold"  # the same predictions
    assert verdict(f"search s1 at {large // 2:,} no worse than tuned's best at {large:,}") == "holds"
    assert verdict(f"random s0 at {small:,}: beats tuned's best") == "holds"
    assert verdict(f"search s1 at {small:,}: beats random s1") == "does not hold: random s1 is the better"
    assert verdict(f"search s0 at {small:,}: beats random s0") == "holds"
    # B is the reference's confirmed (best) baseline pick, with its label, stored size and lr
    row = next(r for r in rows if r.startswith(f"| search s0 at {small:,}: beats tuned's best"))
    assert "tuned s0 lora: #" in row and "lr " in row


def test_the_targets_are_counted_from_the_verdicts(contest) -> None:
    targets = lines_of(contest_markdown(contest, n_boot=N_BOOT), "Targets")
    assert targets[0].startswith("- search beats tuned's best beyond the corrected interval at ≥ 1 size in 1 of 2 "
                                 "study seeds (s0 at ")
    assert targets[1].startswith("- Where search does not beat tuned's best: at ≤ half the size, non-inferior in 2 "
                                 "of 2 (s1 at ")
    assert targets[2].startswith("- random beats tuned's best beyond the corrected interval at ≥ 1 size in 2 of 2")
    assert targets[3] == "- Where random does not beat tuned's best: nowhere."
    assert targets[4] == "- search ≥ random (observed difference ≥ 0) at each size in 1 of 2 study seeds (s0)."


def test_each_arm_and_seed_says_what_it_spent_and_picked(contest) -> None:
    text = contest_markdown(contest, n_boot=N_BOOT)
    arms = [line for line in lines_of(text, "Arms and study seeds") if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[:2] for row in arms] == [["| search", "0"], ["| search", "1"], ["| random", "0"],
                                                      ["| random", "1"], ["| tuned", "0"]]
    assert all("| finished | 2 of 2 |" in row for row in arms)
    tuned = arms[-1].split(" | ")
    assert tuned[6] == "6" and tuned[-1] == "- |"  # 2 sizes x 3 seeds confirmed; no search, so no model share
    picks = [line for line in lines_of(text, "Picks") if line.startswith("| ") and "---" not in line][1:]
    assert any(row.startswith("| tuned | 0 |") and "| lora |" in row and "| 10, 11, 12 |" in row for row in picks)
    assert all(" | #" in row and "e-0" in row for row in picks)  # trial, label, stored size, lr
    for row in picks:  # dev over the fresh seeds, read straight from the storage's confirm trainings
        cells = row.split(" | ")
        arm, seed, number = cells[0].removeprefix("| "), int(cells[1]), int(cells[4].removeprefix("#"))
        state = next(s for s in contest_states(contest)[arm] if s.spec.seed == seed)
        dev = [t.user_attrs["dev_metrics"]["accuracy"] for t in optuna.load_study(
               study_name=state.spec.name, storage=state.spec.storage).trials
               if t.user_attrs.get("kind") == "confirm" and t.user_attrs.get("confirm_of") == number]
        assert len(dev) == 3 and cells[-1] == f"{statistics.mean(dev):.4f} ± {statistics.stdev(dev):.4f} (3) |"
        assert cells[8] in (("startup", "model", "fallback") if arm == "search" else
                            ("random",) if arm == "random" else ("-",))


def test_unfinished_and_unrun_studies_are_reported_never_judged(contest, fast_dir) -> None:  # noqa: F811
    path = fast_dir / "duel_more.yaml"  # the same contest with two more search seeds: s2 half done, s3 not run
    path.write_text(yaml.safe_dump(contest_file(fast_dir, search_seeds=(0, 1, 2, 3)), sort_keys=False))
    more = load_contest(path)
    assert more.folder == contest.folder  # the same storages
    run(more.arm("search").studies[2], "search", stop_after=1)
    text = contest_markdown(more, n_boot=N_BOOT)
    status = {row.split(" | ")[2]: row.split(" | ")[3] for row in lines_of(text, "Arms and study seeds")
              if row.startswith("| search")}
    assert status == {"duel_search_s0": "finished", "duel_search_s1": "finished",
                      "duel_search_s2": "unfinished: 1 of 2 trainings", "duel_search_s3": "not run yet"}
    assert "search s2" not in text.split("## Arms")[0] and "search s3" not in text.split("## Arms")[0]
    assert "at ≥ 1 size in 1 of 4 study seeds" in text
    assert not (more.folder / "search_s3").exists()  # reading created no storage


def test_studies_on_different_dev_sets_are_refused(contest) -> None:
    study = open_store(contest.arm("random").studies[1], create=False).study
    study.set_user_attr(DEV_LABELS_KEY, [1 - y for y in LABELS])
    try:
        with pytest.raises(PETLError, match="stored different dev labels"):
            contest_markdown(contest, n_boot=N_BOOT)
    finally:
        study.set_user_attr(DEV_LABELS_KEY, LABELS)
    assert contest_states(contest)["random"][1].labels == LABELS


def test_the_cli_writes_the_report_without_training(contest, capsys) -> None:
    out = contest.folder.parent / "elsewhere" / "report.md"
    assert main(["contest", contest.source, "--report-only", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"contest duel: report written to {out}\n"
    text = out.read_text()
    assert text.startswith("# Contest duel: search against tuned LoRA and random search") and "## Targets" in text
    assert main(["contest", contest.source, "--report-only"]) == 0
    assert (contest.folder / "report.md").read_text().split("## Targets")[0] == text.split("## Targets")[0]
    assert main(["contest", str(contest.folder / "missing.yaml"), "--report-only"]) == 2
    assert capsys.readouterr().err.endswith(f"contest file {contest.folder / 'missing.yaml'} not found\n")
    assert main(["contest", contest.source, "--report-only", "--arms", "search"]) == 2
    assert "--report-only trains nothing" in capsys.readouterr().err


def test_the_cli_runs_the_arms_asked_for_then_writes_the_report(contest, monkeypatch, capsys) -> None:
    """`petl-search contest FILE` hands its options to run_contest (here a stand-in: Ray is not started),
    then writes the report where it says."""
    import sys
    import types

    calls = []
    runner = types.ModuleType("petl_search.search.runner.contest")
    runner.run_contest = lambda spec, **options: calls.append((spec.name, options))
    monkeypatch.setitem(sys.modules, "petl_search.search.runner.contest", runner)
    assert main(["contest", contest.source, "--arms", "search", "random", "--time-budget", "60"]) == 0
    ((name, options),) = calls
    assert name == "duel" and options["only"] == ["search", "random"] and options["time_budget_s"] == 60
    assert options["address"] is None
    assert capsys.readouterr().out.endswith(f"contest duel: report written to {contest.folder / 'report.md'}\n")
    assert main(["contest", contest.source, "--time-budget", "0"]) == 2
    assert "--time-budget must be a number of seconds > 0, but got 0.0" in capsys.readouterr().err
