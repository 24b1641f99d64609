"""Dashboards and export on a real (toy) study: the HTML is self-contained and renders in headless
Chromium; export re-trains the trial bit for bit, loads onto a fresh model with the same predictions,
and writes a PEFT folder for plain LoRA that PEFT loads with the same outputs; bad input is refused."""
from __future__ import annotations

import html
import io
import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import optuna
import peft
import pytest
import torch

import petl_search
from petl_search.cli import main
from petl_search.analysis.dashboard import write_dashboard
from petl_search.core.errors import PETLError
from petl_search.export import export_trial
from petl_search.analysis.dashboard_data import importances
from petl_search.analysis.effects import DIMENSIONS, dimension_effects
from petl_search.analysis.front import best_baseline, best_point, claims, front, lr_text, methods
from petl_search.search.optuna_bridge.records import TrialRecord, read_records, trained_trial
from petl_search.search.runner.inline import run_study_inline
from petl_search.search.optuna_bridge.storage import open_study
from petl_search.search.language.study import load_study
from petl_search.training.tasks import get_task
from petl_search.toy import write_toy_study
from petl_search.training.data import collate, encode
from petl_search.training.tasks import load_cached_task
from petl_search.training.models import head_modules, load_model
from petl_search.training.trainer import train

ROOT = Path(__file__).resolve().parents[1]
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A toy study with every kind of point the dashboard draws from a real run: search points, a frozen
    backbone among them (0 stored parameters), baselines over two seeds, and the best points reseeded."""
    spec = load_study(write_toy_study(
        tmp_path_factory.mktemp("toy"), "toy", reseed={"top": 2, "seeds": [1]},
        baselines=[{"preset": "lora", "args": {"r": 4}, "seeds": [0, 1]},
                   {"preset": "houlsby", "args": {"r": 4}, "seeds": [0, 1]}],
        train={"max_steps": 80, "eval_every": 40, "batch_size": 16, "learning_rate": 0.01}))  # enough to learn
    # every site off (the unified space allows it), queued the way an Optuna user queues a point: the
    # sampler's ask() hands it out first, as a search point
    open_study(spec).enqueue_trial({f"{site.site}.use": False for site in spec.space().sites})
    run_study_inline(spec, progress=lambda line: None)
    return spec


def dev_logits(model, spec) -> torch.Tensor:
    """Logits of the whole toy dev set, in one batch (the exported model and the trial's must agree)."""
    task = get_task(spec.task)
    tokenizer = load_model(spec.model, task, 0)[1]
    data = encode(load_cached_task(spec.task, spec.data_dir)["validation"], tokenizer, task, spec.train_config(0),
                  ("test", spec.name))
    batch = collate(data, list(range(len(data))), tokenizer.pad_token_id, torch.device("cpu"), True)
    batch.pop("labels")
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


def fresh_model(spec):
    return load_model(spec.model, get_task(spec.task), seed=123)[0]  # another seed: the head must be loaded


def test_export_reproduces_the_trial_and_loads_with_the_same_predictions(study, tmp_path) -> None:
    records = read_records(optuna.load_study(study_name="toy", storage=study.storage))
    lora = next(r for r in records if r.kind == "baseline" and r.label == "lora(r=4)")
    done = export_trial(study, lora, tmp_path / "lora", progress=lambda line: None)
    assert done.reproduced is True and done.metric == lora.metric
    assert sorted(p.name for p in done.folder.iterdir()) == ["README.md", "head.safetensors", "peft", "petl_config.json",
                                                             "petl_export.json", "trial.json", "weights.safetensors"]
    # the trial's model, trained again in this process, against the export loaded onto a fresh model
    trial_model = train(lora.config, study.task, model=study.model, data_dir=study.data_dir,
                        train_config=study.train_config(lora.seed), keep_model=True).trained_model
    expected = dev_logits(trial_model, study)
    loaded = petl_search.load(fresh_model(study), done.folder)
    assert torch.equal(dev_logits(loaded, study), expected)  # bit for bit on CPU
    merged = petl_search.load(fresh_model(study), done.folder, merge=True)
    assert not hasattr(merged, "petl")
    torch.testing.assert_close(dev_logits(merged, study), expected, atol=1e-5, rtol=0)
    # PEFT loads the same LoRA (and the trained head, as modules_to_save) and gives the same outputs
    with_peft = peft.PeftModel.from_pretrained(fresh_model(study), str(done.folder / "peft"))
    torch.testing.assert_close(dev_logits(with_peft, study), expected, atol=1e-5, rtol=0)
    card = (done.folder / "README.md").read_text()
    assert "reproduced" in card and "petl_search.load(model" in card and "PeftModel.from_pretrained" in card
    head = created_head(study)
    assert f"| task head parameters (trained with Δh, in `head.safetensors`; not in the budget) | {head:,} " in card
    assert json.loads((done.folder / "trial.json").read_text())["exported_metric"] == lora.metric


def test_export_follows_the_umask_and_its_card_runs_as_written(study, tmp_path) -> None:
    """Folders and files get the modes the user's umask gives (not tempfile's private 0700/0600), and the
    card's Python snippets, run as they stand, load the export (Δh + head, and the PEFT folder) onto the
    base model with the exported model's outputs (the score check's snippet too; test_export_safety.py checks
    the score it prints)."""
    records = read_records(optuna.load_study(study_name="toy", storage=study.storage))
    lora = next(r for r in records if r.kind == "baseline" and r.label == "lora(r=4)")
    old = os.umask(0o002)
    try:
        done = export_trial(study, lora, tmp_path / "exported", progress=lambda line: None)
    finally:
        os.umask(old)
    paths = [done.folder, *done.folder.rglob("*")]
    modes = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in paths}
    assert modes == {k: oct(0o775 if (tmp_path / k).is_dir() else 0o664) for k in modes}, modes
    expected = dev_logits(petl_search.load(fresh_model(study), done.folder), study)
    snippets = re.findall(r"```python\n(.*?)```", (done.folder / "README.md").read_text(), re.S)
    assert len(snippets) == 3  # petl_search.load, the score check, then PEFT
    for code in snippets:
        namespace: dict = {}
        exec(compile(code, str(done.folder / "README.md"), "exec"), namespace)  # as written: nothing defined first
        torch.testing.assert_close(dev_logits(namespace["model"], study), expected, atol=1e-5, rtol=0)


def test_save_petl_follows_the_umask(tmp_path) -> None:
    from conftest import make_model

    model = petl_search.apply_petl(make_model("bert"), petl_search.presets.lora(r=2))
    old = os.umask(0o027)
    try:
        folder = petl_search.save_petl(model, tmp_path / "saved")
    finally:
        os.umask(old)
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in folder.iterdir()} == {
        "petl_config.json": "0o640", "weights.safetensors": "0o640"}


def test_a_model_whose_head_is_loaded_next_is_built_without_a_load_report(study) -> None:
    """The new task head is 'MISSING ... newly initialized' by design: load_model (training, export checks)
    and petl_search.quiet_loading (the card) keep that report quiet for the call only, not globally."""
    from transformers.utils import logging as hf_logging

    records: list = []
    handler = logging.Handler()
    handler.emit = records.append
    library = logging.getLogger("transformers")
    old = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()  # conftest quiets transformers for every test; a user's default is this
    library.addHandler(handler)
    reports: list[list[str]] = []

    def report_of(build) -> None:
        records.clear()
        build()
        reports.append([r.getMessage() for r in records if "LOAD REPORT" in r.getMessage()])

    try:
        from transformers import AutoModelForSequenceClassification

        report_of(lambda: load_model(study.model, get_task(study.task), 0))
        assert hf_logging.get_verbosity() == hf_logging.WARNING  # restored after the call
        report_of(lambda: AutoModelForSequenceClassification.from_pretrained(study.model, num_labels=2))
        with petl_search.quiet_loading():
            report_of(lambda: AutoModelForSequenceClassification.from_pretrained(study.model, num_labels=2))
    finally:
        library.removeHandler(handler)
        hf_logging.set_verbosity(old)
    quiet, plain, in_context = reports
    assert "MISSING" in plain[0]  # the report this is about, where nothing silences it
    assert quiet == [] and in_context == []


def test_export_of_a_non_lora_point_has_no_peft_folder_and_says_why(study, tmp_path) -> None:
    records = read_records(optuna.load_study(study_name="toy", storage=study.storage))
    houlsby = next(r for r in records if r.label == "houlsby(r=4)")
    done = export_trial(study, houlsby, tmp_path / "h", progress=lambda line: None)
    assert not (done.folder / "peft").exists() and done.peft.startswith("not written: ")
    with pytest.raises(PETLError, match="only linear Δh .* can be merged"):
        petl_search.load(fresh_model(study), done.folder, merge=True)


def test_peft_expressibility_is_decided_with_a_reason() -> None:
    from petl_search.export import peft_lora_config
    from conftest import make_model

    model = petl_search.apply_petl(make_model("bert"), petl_search.presets.lora(r=2, alpha=4.0))
    args, _ = peft_lora_config(petl_search.presets.lora(r=2, alpha=4.0), model)
    assert args == {"r": 2, "lora_alpha": 4.0, "target_modules": ["query", "value"], "lora_dropout": 0.0,
                    "bias": "none"}
    for config, why in [(petl_search.PETLConfig(), "the configuration has no Δh (the frozen backbone): there is "
                         "nothing for PEFT to hold; the exported folder holds only the task head"),
                        (petl_search.presets.prefix_tuning(l=3, reparam=None), "shifts position ids"),
                        (petl_search.presets.houlsby(r=2), "Δh at other sites"),
                        (petl_search.presets.mam(prefix_len=2, ffn_r=4), "Δh at other sites")]:
        assert why in peft_lora_config(config, petl_search.apply_petl(make_model("bert"), config))[1]
    gpt2 = petl_search.apply_petl(make_model("gpt2"), petl_search.presets.lora(r=2))
    assert "fuses q, k and v" in peft_lora_config(petl_search.presets.lora(r=2), gpt2)[1]


def test_a_trial_that_was_not_trained_to_the_end_is_refused_with_its_reason() -> None:
    """Every kind of unscored trial, each with the reason a user needs (built as records: a real study
    does not reliably produce each kind)."""
    def rec(number, kind="search", state="COMPLETE", metric=0.8, **extra):
        return TrialRecord(number=number, state=state, kind=kind, label=f"p{number}", metric=metric,
                           stored_params=100 * (number + 1), stored_fraction=0.001 * (number + 1),
                           reason=extra.pop("reason", None), extra=extra)

    records = [rec(0), rec(1, kind="baseline", metric=0.9), rec(2, kind="over_budget"),
               rec(3, kind="duplicate", duplicate_of=0), rec(4, kind="reseed", reseed_of=1),
               rec(5, state="PRUNED", metric=None, reason="stopped early by ASHA at step 50"),
               rec(6, state="FAIL", metric=None, reason="loss became nan at step 3")]
    expected = {2: "trial 2 was over the budget and never trained", 3: "trial 3 repeated trial 0: use that one",
                4: "trial 4 re-trained trial 1 with another seed: use that one",
                5: "trial 5 did not complete (pruned: stopped early by ASHA at step 50)",
                6: "trial 6 did not complete (fail: loss became nan at step 3)"}
    for number, message in expected.items():
        with pytest.raises(PETLError) as info:
            trained_trial(records, number)
        assert str(info.value) == f"{message}; only completed search or baseline trials can be exported"
    assert trained_trial(records, 1).number == 1
    with pytest.raises(PETLError, match="trial 999 is not in the study"):
        trained_trial(records, 999)
    points = methods(records, "accuracy")
    best = best_point(points, max_fraction=1.0, score="accuracy", on="dev")
    assert best.point.number == 1  # the best metric, whatever its kind among trained points
    assert best_point(points, max_fraction=0.0015, score="accuracy", on="dev").point.number == 0
    assert best_point(points, max_fraction=1e-9, score="accuracy", on="dev").why == (
        "no completed trial stores at most 0.0000001% of the backbone (the smallest, trial 0, stores 0.1%)")
    assert best_point(methods([r for r in records if not r.scored], "accuracy"), max_fraction=1.0, score="accuracy",
                      on="dev").why == "the study has no completed trials yet"


def test_bad_export_requests_are_refused_before_training(study, tmp_path, capsys) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    source = study.source
    assert main(["export", source, "--best", "--out", str(out)]) == 2
    assert "exists and is not empty; pass --force" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"  # nothing overwritten
    assert main(["export", source, "--out", str(out)]) == 2
    assert "--trial N, or --best" in capsys.readouterr().err
    assert main(["export", source, "--best", "--max-params", "2", "--out", str(out)]) == 2
    assert main(["export", source, "--best", "--out", str(out), "--force"]) == 2  # export did not write it
    assert f"{out} holds files export did not write (keep.txt); choose an empty or new folder" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"  # never deleted
    assert main(["export", source, "--best", "--out", str(tmp_path / "new"), "--steps", "5"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["reproduced"] is None
    assert main(["dashboard", str(ROOT / "studies" / "quickstart.yaml"), "--storage",
                 f"sqlite:///{tmp_path / 'empty.db'}"]) == 2
    assert "has no results yet" in capsys.readouterr().err


def test_dashboard_is_one_self_contained_file_with_the_front(study, tmp_path) -> None:
    path = write_dashboard(study, tmp_path / "toy.html")
    text = path.read_text()
    assert not re.findall(r"<script[^>]*\ssrc=|<link[^>]*href=|<iframe", text)  # opens with no network
    assert "Plotly" in text[:text.index("</head>")]  # plotly.js itself is inlined
    records = read_records(optuna.load_study(study_name="toy", storage=study.storage))
    line = front(methods(records, study.main_metric))
    table = text[text.index("<table id='front-table'>"):]
    assert table.count("<tr><td>") == len(line)
    for div in ("front-plot", "hypervolume-plot", "effects-plot", "importances-plot"):
        assert f'id="{div}"' in text
    assert "lora(r=4)" in text and "houlsby(r=4)" in text  # seed methods labelled



def created_head(spec) -> int:
    """The parameters of the task head modules a fresh model of the study has (those the trainer trains
    besides Δh), checked against a count by hand: BERT's pooler (h·h + h) and classifier (h·labels + labels)."""
    task = get_task(spec.task)
    model = load_model(spec.model, task, 0)[0]
    heads = head_modules(model)
    created = sum(p.numel() for n, p in model.named_parameters() if any(n == h or n.startswith(h + ".") for h in heads))
    h = model.config.hidden_size
    assert heads == ["classifier", "bert.pooler"] and created == h * h + h + h * task.num_labels + task.num_labels
    return created


def test_the_task_head_count_is_shown_beside_every_point(study, tmp_path, capsys) -> None:
    """The budget is on Δh, but the head is trained and exported with every point: status, the report and
    the dashboard show its parameter count beside each point, equal to what a fresh model of the study has."""
    created = created_head(study)
    shown = f"{created:,}"
    records = read_records(optuna.load_study(study_name="toy", storage=study.storage))
    assert all(r.head_params == created for r in records if r.scored)  # what the trainer recorded
    points = methods(records, study.main_metric)
    line = front(points)
    assert all(m.head_params == created for m in points)
    assert main(["status", study.source]) == 0
    printed = capsys.readouterr().out.splitlines()
    header = next(row for row in printed if row.lstrip().startswith("trial"))
    column = header.index("head")
    for m in line:
        row = next(row for row in printed if row.startswith(f"{m.number:>5}  "))
        assert row[column - len(shown) + len("head"):column + len("head")] == shown, (header, row)
    report = tmp_path / "report.md"
    assert main(["report", study.source, "--out", str(report)]) == 0
    capsys.readouterr()
    text = report.read_text()
    front_rows = [row for row in text.split("## The front")[1].splitlines() if row.startswith("| #")]
    assert len(front_rows) == len(line) and all(f"| {shown} |" in row for row in front_rows)
    page = write_dashboard(study, tmp_path / "toy.html").read_text()
    for table in ("summary-front", "summary-baselines", "front-table"):
        body = page.split(f"<table id='{table}'>")[1].split("</table>")[0]
        rows = re.findall(r"<tr[ >].*?</tr>", body.split("<tbody>")[1])
        assert rows and all(f"<td class='head'>{shown}</td>" in row for row in rows), table
    assert page.count(f"+ {shown} task head") >= len(points)  # on hover, beside every drawn point

# Appended to a copy of the page: reads back what plotly drew (SVG elements and where they sit on
# screen) and the overview's tables into <pre id="probe">, for --dump-dom to hand over.
PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const box = el => { const r = el.getBoundingClientRect(); return [r.left, r.right, r.top, r.bottom]; };
  const all = (root, sel) => [...root.querySelectorAll(sel)];
  const fig = document.getElementById("front-plot");
  const rows = id => all(document, "#" + id + " tbody tr").map(tr => [tr.dataset.trial, ...all(tr, "td").map(
      td => td.textContent)]);
  const out = {
    traces: all(fig, ".scatterlayer .trace").map(t => all(t, "path.point").map(box)),
    legend: all(fig, ".legend .traces .legendtext").map(t => t.textContent),
    area: box(fig.querySelector(".draglayer .nsewdrag")),  // the plot area
    ticks: all(fig, ".xtick text").map(t => [t.textContent, box(t)]),
    shapes: all(fig, ".shapelayer path").map(box),
    annotations: all(fig, ".annotation").map(a => [a.textContent, box(a)]),
    effects: all(document, "#effects-plot .annotation").map(a => a.textContent),
    effectsNote: (document.getElementById("effects-note") || {}).textContent || "",
    bars: all(document, "#importances-plot .barlayer .point").length,
    barLabels: all(document, "#importances-plot .ytick text").map(t => t.textContent),
    front: rows("summary-front"), baselines: rows("summary-baselines"), claims: rows("summary-claims"),
    exported: document.getElementById("summary-export").dataset.trial,
    exportText: document.getElementById("summary-export").textContent,
  };
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}, 500));
</script>"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"  # a fresh one each run
    flags = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--virtual-time-budget=8000"]
    return subprocess.run(flags + list(args), capture_output=True, text=True, timeout=120)


def expected_drawing(records: list[TrialRecord], metric: str) -> dict[str, int]:
    """What the front plot must hold, from analysis/front.py and the records (not the plot's own data)."""
    points = methods(records, metric)
    on_front = {m.number for m in front(points)}
    unscored = [r for r in records if r.kind in ("search", "baseline") and not r.extra.get("interrupted")]
    return {"front: search points": sum(m.kind == "search" and m.number in on_front for m in points),
            "dominated search points": sum(m.kind == "search" and m.number not in on_front for m in points),
            "stopped early (no score)": sum(r.state == "PRUNED" for r in unscored),
            "failed (no score)": sum(r.state == "FAIL" for r in unscored),
            "seed methods: baselines, mean ± std over seeds": len({r.label for r in records
                                                                    if r.kind == "baseline" and r.scored})}


def test_dashboard_renders_in_headless_chromium(study, tmp_path) -> None:
    """Load the page in headless Chromium and check what it drew: every point of the study once (the
    frozen backbone at its own place on the axis), the axis up to a little past the budget with the
    label on its line, only the effect panels with data, at most 11 importance bars, and the overview's
    numbers as analysis/front.py gives them; and a screenshot that is not blank."""
    if BROWSER is None:
        if os.environ.get("PETL_REQUIRE_BROWSER"):
            pytest.fail("PETL_REQUIRE_BROWSER is set but no chromium is installed")
        pytest.skip("no chromium on this machine (CI installs it: apt-get install chromium)")
    path = write_dashboard(study, tmp_path / "toy.html")
    probed = tmp_path / "probed.html"
    probed.write_text(path.read_text().replace("</body>", PROBE + "</body>"))
    dom = chromium(tmp_path, "--enable-logging=stderr", "--v=0", "--window-size=1400,1800", "--dump-dom",
                   probed.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    console_errors = [line for line in dom.stderr.splitlines() if "CONSOLE" in line and ("Error" in line or
                                                                                        "Uncaught" in line)]
    assert not console_errors, console_errors
    assert dom.stdout.count('class="main-svg"') >= 4  # plotly drew every figure
    drawn = json.loads(html.unescape(re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S).group(1)))
    study_ = optuna.load_study(study_name="toy", storage=study.storage)
    records, metric = read_records(study_), study.main_metric
    points = methods(records, metric)
    line = front(points)

    # each marker trace holds as many markers as its legend says, and as the study has points of its kind
    legend = [re.fullmatch(r"(.*) \((\d+)[^)]*\)", text).groups() for text in drawn["legend"]]
    markers = {name: len(drawn["traces"][i]) for i, (name, _) in enumerate(legend) if name != "Pareto front"}
    assert {name: int(n) for name, n in legend if name in markers} == markers
    expected = expected_drawing(records, metric)
    assert markers == {name: n for name, n in expected.items() if n}
    assert ("Pareto front", str(len(line))) in legend and not drawn["traces"][-1]  # a line, no markers
    # the x axis ends a little past the budget line, and the budget label sits on the line
    left, right = drawn["area"][:2]
    budget_line = next(b for b in drawn["shapes"] if b[1] - b[0] < 4 and b[3] - b[2] > 100)
    x = (budget_line[0] + budget_line[1]) / 2
    assert left < x < right and (right - x) / (right - left) < 0.15, (left, x, right)
    label = next((b for text, b in drawn["annotations"] if text == f"budget {100 * study.budget:g}%"), None)
    assert label is not None, f"no budget label within the plot: {drawn['annotations']}"
    assert abs((label[0] + label[1]) / 2 - x) < 3 and label[3] <= budget_line[2] + 3
    # the frozen backbone (0 stored) is drawn, at the "0 (frozen)" place left of the smallest real value
    assert any(m.stored_params == 0 for m in line), "the fixture's frozen backbone is missing"
    ticks = {text: (b[0] + b[1]) / 2 for text, b in drawn["ticks"]}
    zero_x = ticks.pop("0 (frozen)")
    front_markers = drawn["traces"][[name for name, _ in legend].index("front: search points")]
    assert any(abs((b[0] + b[1]) / 2 - zero_x) < 2 for b in front_markers)
    assert zero_x < min(ticks.values())
    # only the dimensions with something to compare have a panel; the others are named in one line
    empty = [d for d in DIMENSIONS if not dimension_effects(records, d)]
    assert empty, "the fixture should leave some dimension with nothing to compare"
    assert set(drawn["effects"]) == set(DIMENSIONS) - set(empty)
    assert drawn["effectsNote"].startswith(f"Nothing to compare yet for: {', '.join(empty)} ")
    # the top ten importances, the rest summed in one bar
    scores, _ = importances(study_)
    assert drawn["bars"] == min(len(scores), 10) + (len(scores) > 10) <= 11
    # the overview: the front, the seed methods and the claims as analysis/front.py gives them
    assert [int(row[0]) for row in drawn["front"]] == [m.number for m in line]
    head = f"{created_head(study):,}"  # beside each point: the task head a fresh model of the study has
    for row, m in zip(drawn["front"], line):  # and the learning rate it trained at
        assert row[4] == head and row[5] == lr_text(m.learning_rate) == "1.00e-02"
        assert row[6].startswith(f"{m.mean:.4f}") and row[7].startswith(f"{m.dev_mean:.4f}")
    baselines = sorted((m for m in points if m.kind == "baseline"), key=lambda m: m.stored_params)
    assert [(int(row[0]), row[6]) for row in drawn["baselines"]] == [
        (m.number, f"{m.mean:.4f} ± {m.std:.4f} ({len(m.scores)})") for m in baselines]
    reference = best_baseline(points)
    found = claims(points, reference)
    assert [(int(row[0]), row[-1]) for row in drawn["claims"]] == [(c.point.number, c.verdict) for c in found]
    # what to export: the best front point within the budget on the search split (never chosen on dev), among
    # those with several seeds when there are any
    within = [m for m in line if m.stored_fraction <= study.budget]
    best = max([m for m in within if len(m.scores) > 1] or within, key=lambda m: (m.mean, -m.stored_params))
    assert int(drawn["exported"]) == best.number
    assert f"petl-search export {study.source} --trial {best.number} --out " in drawn["exportText"]

    shot, blank = tmp_path / "toy.png", tmp_path / "blank.png"
    for target, url in ((shot, path.as_uri()), (blank, "about:blank")):
        done = chromium(tmp_path, "--hide-scrollbars", "--window-size=1400,1800", f"--screenshot={target}", url)
        assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10 * blank.stat().st_size
    if os.environ.get("PETL_SCREENSHOT_DIR"):  # keep it to look at
        shutil.copy(shot, Path(os.environ["PETL_SCREENSHOT_DIR"]) / "toy-dashboard.png")


def test_serve_uses_optuna_dashboard_on_the_same_storage(study) -> None:
    import optuna_dashboard

    app = optuna_dashboard.wsgi(study.storage)
    status = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/api/studies", "QUERY_STRING": "", "SERVER_NAME": "test",
               "SERVER_PORT": "80", "wsgi.input": io.BytesIO(b""), "wsgi.url_scheme": "http", "SERVER_PROTOCOL": "HTTP/1.1"}
    body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    assert status[0].startswith("200") and b'"study_name": "toy"' in body.replace(b'":"', b'": "')
