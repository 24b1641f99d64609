"""`export --force` replaces only what export wrote, and the card's evaluation snippet runs.

A folder export did not write (no manifest) is refused, never deleted; a folder an earlier export wrote has
exactly that export's files replaced, and files the user put beside them are kept; a failure at any point
leaves the folder as it was. The card's "Check its score" snippet, run as written, scores the loaded export
as the trainer scored it.

Cheap on purpose: a tiny random BERT on the toy task, trials built in memory (no study run) and re-trained
for a few steps.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
import torch

import petl_search
from petl_search import presets
from petl_search.core.errors import PETLError
from petl_search.export import EXPORT_NAMES, MANIFEST_FILE, evaluate_export, export_trial
from petl_search.search.language.study import load_study
from petl_search.search.optuna_bridge.records import TrialRecord
from petl_search.toy import write_toy_study
from petl_search.training.models import load_model
from petl_search.training.tasks import get_task, load_task

STEPS = 5  # a few steps: --steps marks the export as trained on purpose, not as the trial reproduced
LORA_NAMES = ["README.md", "head.safetensors", "peft", "petl_config.json", "petl_export.json", "trial.json",
              "weights.safetensors"]
HOULSBY_NAMES = [n for n in LORA_NAMES if n != "peft"]  # not LoRA: no PEFT folder


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return load_study(write_toy_study(tmp_path_factory.mktemp("toy"), "toy"))


def trial(config, label: str) -> TrialRecord:
    """A completed trial as a study would store it (its metric is never compared: exports here use --steps)."""
    return TrialRecord(number=7, state="COMPLETE", kind="baseline", label=label, metric=0.5, stored_params=None,
                       stored_fraction=None, config=config.to_dict(), seed=0, learning_rate=0.01)


LORA = trial(presets.lora(r=4), "lora(r=4)")
HOULSBY = trial(presets.houlsby(r=4), "houlsby(r=4)")


def export(spec, record, out: Path, **kwargs):
    return export_trial(spec, record, out, steps=STEPS, progress=lambda line: None, **kwargs)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for a folder): what must stay as it was."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def no_training(*args, **kwargs):
    raise AssertionError("export trained although it should have refused the folder first")


def test_force_refuses_a_folder_export_did_not_write_and_deletes_nothing(spec, tmp_path, monkeypatch) -> None:
    out = tmp_path / "mine"
    (out / "data").mkdir(parents=True)
    (out / "a.txt").write_text("mine")
    (out / "data" / "b.csv").write_text("1,2\n")
    before = snapshot(out)
    monkeypatch.setattr(petl_search.export, "train", no_training)  # refused before any training
    with pytest.raises(PETLError) as info:
        export(spec, LORA, out, force=True)
    assert str(info.value) == (f"{out} holds files export did not write (a.txt, data); choose an empty or new "
                               f"folder")
    assert snapshot(out) == before


def test_force_replaces_an_earlier_export_and_keeps_the_users_files(spec, tmp_path) -> None:
    out = tmp_path / "exported"
    export(spec, LORA, out)
    assert sorted(p.name for p in out.iterdir()) == LORA_NAMES == sorted(EXPORT_NAMES)  # every name it may write
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["written"] == LORA_NAMES
    (out / "notes.txt").write_text("my notes")
    (out / "plots").mkdir()
    (out / "plots" / "loss.png").write_bytes(b"\x89PNG")
    export(spec, HOULSBY, out, force=True)
    # the earlier export's files are gone (its peft/ too: the new point has none), the user's are as they were
    assert sorted(p.name for p in out.iterdir()) == sorted(HOULSBY_NAMES + ["notes.txt", "plots"])
    assert (out / "notes.txt").read_text() == "my notes" and (out / "plots" / "loss.png").read_bytes() == b"\x89PNG"
    assert json.loads((out / "trial.json").read_text())["label"] == "houlsby(r=4)"
    assert json.loads((out / MANIFEST_FILE).read_text())["written"] == HOULSBY_NAMES
    assert [p.name for p in tmp_path.iterdir()] == ["exported"]  # no staging or old folder left behind
    petl_search.load(load_model(spec.model, get_task(spec.task), 0)[0], out)  # and it loads


def test_without_force_a_non_empty_folder_is_refused(spec, tmp_path, monkeypatch) -> None:
    out = tmp_path / "exported"
    out.mkdir()
    (out / "a.txt").write_text("mine")
    monkeypatch.setattr(petl_search.export, "train", no_training)
    with pytest.raises(PETLError, match="exists and is not empty; pass --force"):
        export(spec, LORA, out)
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(PETLError, match="is a file, not a folder"):
        export(spec, LORA, file, force=True)


def test_a_users_file_with_a_name_export_writes_is_refused(spec, tmp_path, monkeypatch) -> None:
    """An earlier export of a non-LoRA point has no peft/; a peft/ of the user's beside it is not export's to
    replace, so the export that would write one is refused, before training."""
    out = tmp_path / "exported"
    export(spec, HOULSBY, out)
    (out / "peft").mkdir()
    (out / "peft" / "mine.json").write_text("{}")
    before = snapshot(out)
    monkeypatch.setattr(petl_search.export, "train", no_training)
    with pytest.raises(PETLError) as info:
        export(spec, LORA, out, force=True)
    assert str(info.value) == (f"{out} holds peft, which export did not write but may write now; move it away "
                               f"or choose an empty or new folder")
    assert snapshot(out) == before


def test_a_manifest_that_is_not_exports_is_refused(spec, tmp_path, monkeypatch) -> None:
    out = tmp_path / "exported"
    out.mkdir()
    (out / MANIFEST_FILE).write_text("[1, 2]")
    monkeypatch.setattr(petl_search.export, "train", no_training)
    with pytest.raises(PETLError, match=f"{MANIFEST_FILE} is not a petl-search export manifest"):
        export(spec, LORA, out, force=True)
    assert (out / MANIFEST_FILE).read_text() == "[1, 2]"


@pytest.mark.parametrize("where", ["writing", "moving into place"])
def test_a_failed_export_leaves_the_folder_as_it_was(spec, tmp_path, monkeypatch, where) -> None:
    out = tmp_path / "exported"
    export(spec, LORA, out)
    (out / "notes.txt").write_text("my notes")
    before = snapshot(out)
    if where == "writing":  # the card is written last: every other file of the new export is there
        def broken_card(*args, **kwargs):
            raise RuntimeError("disk full")
        monkeypatch.setattr(petl_search.export, "card", broken_card)
    else:  # the last step: the new folder takes the old one's place (the user's files are already in it)
        rename = Path.rename

        def broken_rename(self, target):
            if Path(target) == out and self.name.startswith(".exported."):
                raise OSError("rename failed")
            return rename(self, target)
        monkeypatch.setattr(Path, "rename", broken_rename)
    with pytest.raises((RuntimeError, OSError)):
        export(spec, HOULSBY, out, force=True)
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["exported"]  # no staging or old folder left behind


def card_snippet(folder: Path, marker: str) -> str:
    snippets = [s for s in re.findall(r"```python\n(.*?)```", (folder / "README.md").read_text(), re.S) if marker in s]
    assert len(snippets) == 1, snippets
    return snippets[0]


def test_the_cards_evaluation_snippet_runs_as_written_and_gives_the_exports_score(spec, tmp_path) -> None:
    done = export(spec, LORA, tmp_path / "exported")
    code = card_snippet(done.folder, "evaluate_export")
    assert f"data_dir = {spec.data_source!r}" in code  # the study's data, so it runs as written
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(done.folder / "README.md"), "exec"), namespace)  # nothing defined first
    saved = json.loads((done.folder / "trial.json").read_text())
    assert saved["evaluated_on"] == "search split"  # the study selects on a search split; dev was scored at the end
    on_dev = saved["dev_metrics"]["accuracy"]
    assert namespace["scores"]["accuracy"] == on_dev  # the whole dev set, scored as the trainer scored it
    assert printed.getvalue() == f"accuracy {on_dev:.4f} (the export scored {on_dev:.4f} on dev)\n"
    assert "## Check its score" in (done.folder / "README.md").read_text()


def test_evaluate_export_on_a_few_examples_matches_the_models_own_predictions(spec, tmp_path) -> None:
    """limit=N: the first N dev examples, scored like an independent reading of the model's logits."""
    done = export(spec, LORA, tmp_path / "exported")
    model, tokenizer = load_model(spec.model, get_task(spec.task), seed=123)
    petl_search.load(model, done.folder)
    scores = evaluate_export(model, done.folder, data_dir=spec.data_source, limit=16)
    dev = load_task(spec.task, spec.data_source, splits=("validation",))["validation"].select(range(16))
    batch = tokenizer(list(dev["text_a"]), padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        predicted = model(**batch).logits.argmax(-1)
    assert scores["accuracy"] == pytest.approx((predicted == torch.tensor(dev["label"])).float().mean().item())
    with pytest.raises(PETLError, match="limit must be a positive integer or None, but got 0"):
        evaluate_export(model, done.folder, data_dir=spec.data_source, limit=0)
    with pytest.raises(PETLError, match="has no trial.json"):
        evaluate_export(model, tmp_path, data_dir=spec.data_source)


def test_the_cards_loading_snippet_runs_as_written_through_the_projects_loader(spec, tmp_path) -> None:
    """The "Load it" snippet builds the base model with petl-search's own loader (`load_weights`: a packaged
    name, a folder or a Hub id, as a study names it; SmolLM2's GGUF folder has no config.json, so a plain
    `from_pretrained` of its folder fails: tests/test_smollm2_smoke.py runs the same snippet on it), then loads
    the export: run as written, it gives the logits of the export loaded by hand."""
    done = export(spec, LORA, tmp_path / "exported")
    code = card_snippet(done.folder, "merge=True")  # the loading snippet (its merge line is a comment)
    assert "load_weights(AutoModelForSequenceClassification.from_pretrained" in code
    namespace: dict = {}
    exec(compile(code, str(done.folder / "README.md"), "exec"), namespace)
    model, tokenizer = load_model(spec.model, get_task(spec.task), seed=123)
    petl_search.load(model, done.folder)
    batch = tokenizer(["a wonderful film", "the plot was terrible"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(namespace["model"].eval()(**batch).logits, model.eval()(**batch).logits)
