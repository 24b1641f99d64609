"""bench/gpu_check.py without a GPU: it refuses in one line with exit status 2, and its --allow-cpu dry run runs
every part end to end on tiny models, recording each part's status, time and figures in the result file. Here
the study part's search runs inline instead of on Ray (to stay fast), so its trials train one after another and
its "trained at once" check fails, as it must: the check can fail. bench/gpu_carry.py's pieces join back."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import gpu_carry  # noqa: E402  (bench/ is not a package)
import gpu_check  # noqa: E402
from result_file import RESULTS_DIR  # noqa: E402

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the script where there is no GPU")
INLINE_SEARCH = ("import sys; from petl_search.search.language.study import load_study; "
                 "from petl_search.search.runner.inline import run_study_inline; "
                 "run_study_inline(load_study(sys.argv[1]))")


@pytest.fixture
def quiet_state():
    """What main() changes in this process (logging, progress bars, torch threads), put back afterwards; and the
    result files it writes, removed."""
    from datasets.utils import logging as datasets_logging
    from transformers.utils import logging as hf_logging

    verbosity, bars, threads = hf_logging.get_verbosity(), datasets_logging.is_progress_bar_enabled(), \
        torch.get_num_threads()
    written: list[str] = []
    yield written
    hf_logging.set_verbosity(verbosity)
    hf_logging.enable_progress_bar()
    if bars:
        datasets_logging.enable_progress_bar()
    torch.set_num_threads(threads)
    for name in written:
        for path in RESULTS_DIR.glob(f"{name}*.json"):
            path.unlink()


def test_without_cuda_it_refuses_in_one_line_with_status_2() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py")], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=300)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("gpu_check: no CUDA device") and "--allow-cpu" in lines[0]


def test_the_dry_run_records_every_part_with_its_figures(monkeypatch, quiet_state) -> None:
    real = gpu_check.run_command

    def inline_search(ctx, args, seconds, log):
        if args[:4] == ["-m", "petl_search.cli", "search", args[3]]:
            args = ["-c", INLINE_SEARCH, args[3]]
        return real(ctx, args, seconds, log)

    monkeypatch.setattr(gpu_check, "run_command", inline_search)
    name = "gpu_check_test_cpu_dryrun"
    quiet_state.append(name)
    assert gpu_check.main(["--allow-cpu", "--result", name]) == 1  # the study's check failed (below)
    result = json.loads((RESULTS_DIR / f"{name}.json").read_text())
    assert result["command"].startswith("python") and result["machine"]["device"] == "cpu"
    record = result["figures"]
    parts = record["parts"]
    assert list(parts) == ["precision", "merge", "study", "export", "reference"]
    assert record["summary"] == {"precision": "pass", "merge": "pass", "study": "fail", "export": "pass",
                                 "reference": "pass"}
    assert all(entry["seconds"] > 0 for entry in parts.values())

    precision = parts["precision"]["figures"]
    assert len(precision["runs"]) == 4 and {r["precision"] for r in precision["runs"]} == {"fp32", "bf16"}
    assert precision["mean_difference"] == 0.0 and precision["tolerance"] == gpu_check.PRECISION_TOLERANCE
    assert all(0 <= r["dev_accuracy"] <= 1 and r["device"] == "cpu" for r in precision["runs"])

    merge = parts["merge"]["figures"]
    assert merge["max_abs_logit_difference"] <= merge["tolerance"] and merge["max_abs_weight_change"] > 0
    assert merge["petl_parameters_left"] == 0 and merge["devices_after_merge"] == ["cpu"] and merge["merged_modules"]

    study = parts["study"]["figures"]
    assert study["finished"] == 4 and study["devices"] == ["cpu"]
    assert study["most_trained_at_once"] == 1 < study["required_at_once"]  # one after another: the check fails
    spans = [(t["trained_from"], t["trained_to"]) for t in study["trials"]]
    assert all(start < end for start, end in spans) and gpu_check.most_at_once(spans) == 1

    export = parts["export"]["figures"]
    assert {"weights.safetensors", "petl_config.json", "head.safetensors", "trial.json"} <= set(export["files"])
    assert abs(export["dev_difference"]) <= export["tolerance"] and export["device_loaded_on"] == "cpu"
    assert isinstance(export["reproduced"], bool)

    reference = parts["reference"]["figures"]
    assert reference["lora"]["targets"] == ["q", "v"]  # the dry run's reference model is a tiny MPNet
    assert reference["batches_identical"] and reference["trainable_parameters"] > 0
    assert reference["quoted_ratio"] > 0 and reference["ratio_steady_ours_over_theirs"] > 0
    assert (RESULTS_DIR / f"{name}_trainer_vs_reference.json").is_file()


def test_a_failing_part_is_recorded_and_the_others_still_run(monkeypatch, quiet_state) -> None:
    def planted(ctx, seconds):
        raise RuntimeError("planted failure")

    monkeypatch.setattr(gpu_check, "PARTS", (
        gpu_check.Part("precision", planted, ()),
        gpu_check.Part("merge", gpu_check.part_merge, ("datasets",)),
        gpu_check.Part("study", planted, ("no_such_module_for_gpu_check",)),
        gpu_check.Part("export", planted, (), after="study"),
    ))
    name = "gpu_check_test_parts_cpu_dryrun"
    quiet_state.append(name)
    assert gpu_check.main(["--allow-cpu", "--result", name]) == 1
    parts = json.loads((RESULTS_DIR / f"{name}.json").read_text())["figures"]["parts"]
    assert parts["precision"]["status"] == "error" and "planted failure" in parts["precision"]["error"]
    assert any("planted" in where for where in parts["precision"]["where"])
    assert parts["merge"]["status"] == "pass"
    assert parts["study"] == {"status": "skipped", "reason": "needs no_such_module_for_gpu_check (not installed here)"}
    assert parts["export"]["status"] == "skipped" and "study" in parts["export"]["reason"]


def test_the_time_guard_skips_a_part_that_does_not_fit(quiet_state) -> None:
    name = "gpu_check_test_guard_cpu_dryrun"
    quiet_state.append(name)
    assert gpu_check.main(["--allow-cpu", "--result", name, "--parts", "merge", "--max-minutes", "0.2"]) == 0
    parts = json.loads((RESULTS_DIR / f"{name}.json").read_text())["figures"]["parts"]
    assert parts["merge"]["status"] == "skipped" and "left under --max-minutes" in parts["merge"]["reason"]
    assert parts["precision"] == {"status": "skipped", "reason": "not among --parts"}


@pytest.mark.parametrize("spans, most", [
    ([], 0), ([(0, 1)], 1), ([(0, 2), (1, 3), (2, 4)], 2), ([(0, 10), (1, 9), (2, 8), (3, 7)], 4),
    ([(0, 1), (1, 2), (2, 3)], 1),  # one ends as the next starts: never two at once
])
def test_most_at_once(spans, most) -> None:
    assert gpu_check.most_at_once(spans) == most


def test_a_model_folder_without_weights_gets_random_ones(tmp_path) -> None:
    from petl_search.toy import write_tiny_model

    write_tiny_model(tmp_path / "full")
    (tmp_path / "bare").mkdir()
    for file in (tmp_path / "full").iterdir():
        if file.suffix not in gpu_check.WEIGHT_SUFFIXES:
            shutil.copy(file, tmp_path / "bare")
    assert gpu_check.usable_model(str(tmp_path / "full"), tmp_path)[0] == str(tmp_path / "full")
    path, note = gpu_check.usable_model(str(tmp_path / "bare"), tmp_path)
    assert "RANDOM" in note and (Path(path) / "model.safetensors").is_file()
    with pytest.raises(gpu_check.Skip, match="config.json"):
        gpu_check.usable_model(str(tmp_path), tmp_path / "elsewhere")


def test_gpu_carry_pieces_join_back_and_the_calls_name_them(tmp_path) -> None:
    wheel = tmp_path / "ray-2.60.0-cp312-cp312-manylinux2014_x86_64.whl"
    wheel.write_bytes(os.urandom(5 * 2**20 // 2))
    folder = tmp_path / ".gpu_carry"
    pieces = gpu_carry.cut(wheel, folder / "pieces", 1, 1)
    assert [p.parent.name for p in pieces] == ["01", "02", "03"]
    assert b"".join(p.read_bytes() for p in sorted(pieces)) == wheel.read_bytes()
    calls = gpu_carry.calls_text(folder, pieces, minilm_weights=False)
    assert calls.count("carry [") == 4 and '".gpu_carry/pieces/03"' in calls
    assert f"cat /tmp/pieces/{wheel.name}.part* > /tmp/{wheel.name}" in calls
    assert f"--target /tmp/site .gpu_carry/run/wheels/*.whl /tmp/{wheel.name}" in calls
    assert "python3 bench/gpu_check.py --model .gpu_carry/run/models/minilm" in calls
