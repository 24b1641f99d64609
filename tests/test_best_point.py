"""One answer to "what should I export" (issue 23): `export --best`, `status`, the report and the dashboard
name the same point, judged at its mean over seeds, never one lucky seed; a point or baseline at or below a
constant answer on dev claims nothing and is never recommended; Ctrl-C exits 130."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from petl_search import cli
from petl_search.analysis.dashboard import overview_html
from petl_search.analysis.dashboard_data import overview
from petl_search.analysis.front import best_point, claims, best_baseline, methods
from petl_search.analysis.report import markdown
from petl_search.analysis.summary import summary
from petl_search.core.errors import Interrupted, PETLError
from petl_search.search.language.study import parse_study
from petl_search.search.optuna_bridge.records import TrialRecord

ROOT = Path(__file__).resolve().parents[1]
LORA = {"attn_qkv": {"use": True, "form": "lora", "size": 8, "targets": ["q", "v"]}}
PA = {"ffn": {"use": True, "form": "bottleneck", "insertion": "parallel", "size": 8, "composition": "scale",
              "scale": 4.0}}


def rec(number, metric, dev, *, kind="search", label=None, seed=0, stored=2000, config=LORA, **extra) -> TrialRecord:
    return TrialRecord(number=number, state="COMPLETE", kind=kind, label=label or f"p{number}", metric=metric,
                       stored_params=stored, stored_fraction=stored / 1e6, config=config, seed=seed,
                       learning_rate=1e-3, dev_scores={"accuracy": dev}, evaluated_on="search split", extra=extra)


def spec(tmp_path: Path):
    return parse_study({"name": "t", "model": "tiny", "task": "sst2", "space": str(ROOT / "search_spaces" /
                        "unified.yaml"), "budget": 0.01, "n_trials": 6, "sampler": {"name": "random", "seed": 0},
                        "baselines": ["lora"], "search_split": {"size": 100}, "storage":
                        f"sqlite:///{tmp_path / 'study.db'}", "train": {"max_steps": 10}}, source=str(tmp_path / "t.yaml"))


def lucky_seed_study() -> list[TrialRecord]:
    """A baseline whose seed 1 is lucky on the search split (0.863), and a reseeded search point whose mean
    (0.850) beats the baseline's (0.833): the point is the answer, not the lucky seed."""
    return [rec(0, 0.84, 0.83), rec(10, 0.86, 0.82, kind="reseed", seed=1, reseed_of=0),
            rec(11, 0.85, 0.84, kind="reseed", seed=2, reseed_of=0),
            *(rec(n, m, 0.81, kind="baseline", label="scaled_pa(r=8)", seed=s, stored=1500, config=PA)
              for n, m, s in ((3, 0.82, 0), (4, 0.863, 1), (5, 0.817, 2)))]


def test_export_best_status_report_and_dashboard_name_the_same_point(tmp_path, capsys) -> None:
    records, study = lucky_seed_study(), SimpleNamespace(user_attrs={})
    s = spec(tmp_path)
    chosen = cli._best_record(records, s, study, None)
    assert chosen.number == 0  # one lucky seed (#4, 0.863) is not the best point: its mean is 0.833
    view = overview(records, "accuracy", budget_fraction=0.01, study_file=s.source, study_name=s.name)
    assert view.export.number == 0
    assert f"what to export: #0 p0 (the best accuracy on the search split (0.8500 over 3 seeds)" in summary(records, s)
    report = markdown(records, "accuracy", "t", budget_fraction=0.01, study_file=s.source)
    assert "## What to export\n\n#0 p0: the best accuracy on the search split (0.8500 over 3 seeds)" in report
    # within a smaller cap, the baseline (1,500 stored) at its mean, never its lucky seed's number
    assert cli._best_record(records, s, study, 0.0016).number == 3
    assert "0.8333 over 3 seeds" in capsys.readouterr().err


def rte_like() -> tuple[list[TrialRecord], dict]:
    """RTE as a user met it: a constant answer scores 0.5271 on dev; the best baseline sits below it on dev
    and #13 only just above the baseline: no claim, nothing recommended."""
    references = {"search split": {"accuracy": 0.50}, "dev": {"accuracy": 0.5271}}
    records = [rec(13, 0.56, 0.5199), rec(20, 0.55, 0.5199, kind="reseed", seed=1, reseed_of=13),
               *(rec(n, 0.54, d, kind="baseline", label="lora(r=8)", seed=s, stored=1500)
                 for n, d, s in ((1, 0.5127, 0), (2, 0.5127, 1), (3, 0.5127, 2)))]
    return records, references


def test_a_chance_level_study_claims_nothing_and_recommends_nothing(tmp_path) -> None:
    records, references = rte_like()
    points = methods(records, "accuracy", references)
    found = claims(points, best_baseline(points))
    assert [c.point.number for c in found] == []  # #13 stores more than the baseline: no claim row at all
    wide = [r if r.kind != "baseline" else TrialRecord(**{**r.__dict__, "stored_params": 9000,
                                                         "stored_fraction": 0.009}) for r in records]
    points = methods(wide, "accuracy", references)
    (claim,) = claims(points, best_baseline(points))
    assert claim.comparison.difference > 0 and not claim.holds
    assert claim.verdict == "no claim: the baseline lora(r=8) does not beat a constant answer on dev (0.5271)"
    view = overview(wide, "accuracy", budget_fraction=0.01, study_file="t.yaml", study_name="t", references=references)
    assert view.export is None and "does not beat a constant answer on dev" in view.no_export
    html = overview_html(view, "accuracy")
    assert "class='holds'" not in html and "Nothing to recommend" in html
    assert html.index("Nothing beat a constant answer") < html.index("<h2>Front")
    text = summary(wide, spec(tmp_path), references)
    assert text.startswith("Nothing beat a constant answer: no trained point scores above what a constant answer "
                           "scores on dev (accuracy 0.5271)")
    assert text.splitlines()[-1].startswith("what to export: nothing to recommend: #13 p13, the best on the search "
                                            "split, does not beat a constant answer on dev")
    report = markdown(wide, "accuracy", "t", references=references, budget_fraction=0.01, study_file="t.yaml")
    assert report.index("Nothing beat a constant answer") < report.index("## What to export")
    assert "## What to export\n\nNothing to recommend:" in report


def test_a_point_at_chance_on_the_search_split_is_never_picked() -> None:
    references = {"search split": {"accuracy": 0.60}, "dev": {"accuracy": 0.50}}
    points = methods([rec(0, 0.59, 0.7), rec(1, 0.65, 0.7, stored=3000)], "accuracy", references)
    assert best_point(points, max_fraction=0.01, score="accuracy", on="search split").point.number == 1
    none = best_point(points[:1], max_fraction=0.01, score="accuracy", on="search split")
    assert none.point is None and none.why.startswith("nothing beat a constant answer: no front point within 1%")


def test_one_seed_far_below_the_baseline_is_below_it_not_waiting_for_reseeds() -> None:
    records = [rec(0, 0.91, 0.70), rec(1, 0.9, 0.84, stored=1000),
               *(rec(n, 0.8, d, kind="baseline", label="lora(r=8)", seed=s, stored=5000)
                 for n, d, s in ((2, 0.82, 0), (3, 0.83, 1), (4, 0.81, 2)))]
    points = methods(records, "accuracy")
    verdicts = {c.point.number: c.verdict for c in claims(points, best_baseline(points))}
    assert verdicts[0] == "below it: its one seed scores under every seed of the baseline (3)"
    assert verdicts[1] == "needs reseeds to claim anything (one seed)"


def test_ctrl_c_exits_130_and_a_user_error_2(monkeypatch, capsys) -> None:
    def stopped(args):
        raise Interrupted("interrupted; finished trials are saved")

    def typo(args):
        raise PETLError("bad key")

    def ctrl_c(args):
        raise KeyboardInterrupt

    for func, code in ((stopped, 130), (ctrl_c, 130), (typo, 2)):
        monkeypatch.setattr(cli, "build_parser", lambda f=func: SimpleNamespace(
            parse_args=lambda argv: SimpleNamespace(func=f)))
        assert cli.main([]) == code
    assert "interrupted; finished trials are saved" in capsys.readouterr().err


def test_export_best_says_why_nothing_is_exported(tmp_path) -> None:
    records, references = rte_like()
    with pytest.raises(PETLError, match="--best: nothing to export: #13 p13, the best on the search split, does "
                                        "not beat a constant answer on dev"):
        cli._best_record(records, spec(tmp_path), SimpleNamespace(user_attrs={"constant_scores": references}), None)
