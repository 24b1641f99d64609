"""The `petl-search` command line. User errors print as one line on stderr and exit with status 2.

    petl-search presets [--model NAME]              every preset, its design point and its parameter count
    petl-search count (--preset NAME [--arg K=V]... | --config FILE.json) [--model NAME]
    petl-search train (--task sst2 | --task-file TASK.yaml) (--preset NAME [--arg K=V]... | --config FILE.json)
                      [--model NAME] [--steps N] [--batch-size B] [--lr LR] [--eval-every N] [--seed S] [--out FILE.json]
    petl-search search STUDY.yaml [--address ADDR] [--storage URL] [--n-trials N] [--concurrency C] [--gpus F]
    petl-search status STUDY.yaml [--storage URL]
    petl-search dashboard STUDY.yaml [--out FILE.html] [--serve [--port P]]
    petl-search report STUDY.yaml [--out FILE.md]
    petl-search contest CONTEST.yaml [--arms A [A ...]] [--time-budget SECONDS] [--address ADDR] [--out FILE.md]
    petl-search contest CONTEST.yaml --report-only [--out FILE.md]
    petl-search reseed STUDY.yaml --trial N --seeds S [S ...]
    petl-search transfer STUDY.yaml --task (OTHER | TASK.yaml) [--seeds N] [--max-points K] [--time-budget SECONDS]
                         [--folder DIR] [--report-only]
    petl-search export STUDY.yaml (--trial N | --best [--max-params F]) --out DIR [--force] [--steps N | --full-train]
    petl-search data glue [TASK ...] --out DIR [--force]   GLUE from the Hub, as the TSV folder --data-dir reads

Each command imports the layers it needs inside its own function, so `petl-search count` starts
without loading torch or Ray; this is the one module where our own imports are function-local.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from .core.config import PETLConfig
from .core.errors import Interrupted, PETLError
from .core.params import count_params
from .core.presets import PRESETS, preset
from .training.models import DEFAULT_ENCODER, load_model_config


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _preset_kwargs(pairs: Sequence[str]) -> dict[str, Any]:
    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise PETLError(f"--arg must look like KEY=VALUE, but got {pair!r}")
        kwargs[key] = _value(value)
    return kwargs


def _model_config(name: str) -> Any:
    """The --model's config, offline first; an unknown name fails at once, saying what --model may be."""
    return load_model_config(name, field="--model")


def _row(name: str, config: PETLConfig, model_config: Any) -> str:
    c = count_params(config, model_config)
    return f"{name:<24} {c.trained:>12,} {c.stored:>12,} {100 * c.stored_fraction:>9.3f}%  {config.describe()}"


def cmd_presets(args: argparse.Namespace) -> None:
    model_config = _model_config(args.model)
    print(f"model {args.model} ({model_config.model_type}); stored % is of the backbone")
    print(f"{'preset':<24} {'trained':>12} {'stored':>12} {'stored %':>10}  design point")
    for name in PRESETS:
        print(_row(name, preset(name, model_config=model_config), model_config))


def _design_point(args: argparse.Namespace, model_config: Any) -> tuple[PETLConfig, str]:
    """The PETLConfig named on the command line (--preset with --arg, or --config FILE.json)."""
    full = getattr(args, "full", False)
    if (args.preset is not None) + (args.config is not None) + full != 1:
        options = "--preset NAME, --config FILE.json" + (" or --full" if args.command == "train" else "")
        raise PETLError(f"{args.command} needs exactly one of {options}")
    if full:
        return PETLConfig(), "full fine-tuning"
    if args.config is not None:
        path = Path(args.config)
        if not path.is_file():
            raise PETLError(f"--config file {path} not found")
        try:
            config = PETLConfig.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise PETLError(f"--config file {path} is not valid JSON: {exc}") from None
        return config, path.stem
    return preset(args.preset, model_config=model_config, **_preset_kwargs(args.arg)), args.preset


def cmd_count(args: argparse.Namespace) -> None:
    model_config = _model_config(args.model)
    config, name = _design_point(args, model_config)
    counted = count_params(config, model_config)
    print(json.dumps({"name": name, "config": config.to_dict(), "fingerprint": config.fingerprint(),
                      "model": args.model, "params": counted.to_dict()}, indent=2, sort_keys=True))


def cmd_train(args: argparse.Namespace) -> None:
    from datasets.utils import logging as datasets_logging
    from tqdm import tqdm

    from .training.config import TrainConfig
    from .training.tasks import default_glue_dir, get_task, load_cached_task, load_task
    from .training.trainer import train

    if args.task_file is not None:  # a task of one's own (a study's `task:` mapping, alone in a file)
        from .search.language.study import load_task_file

        if args.hub or args.data_dir is not None:
            raise PETLError(f"--task-file {args.task_file} says where its data is (its files or hub): leave out "
                            f"--data-dir and --hub")
        task_name = load_task_file(args.task_file)  # checked, its files read as far as the checks need
    else:
        task_name = args.task
    task = get_task(task_name)  # a typo fails here, in one line, before anything starts
    if args.hub and args.data_dir is not None:
        raise PETLError(f"--hub and --data-dir exclude each other (--hub reads the task from the Hugging Face Hub, "
                        f"--data-dir from a folder): keep one, but got --hub and --data-dir {args.data_dir}")
    config, name = _design_point(args, _model_config(args.model))
    train_config = TrainConfig(max_steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
                               eval_every=args.eval_every, seed=args.seed, threads=args.threads,
                               max_seconds=args.max_seconds)
    print(f"training {name}: {config.describe()} on {task_name} with {args.model}", file=sys.stderr)
    # One progress display, the trainer's: while the data loads, one line instead of datasets' bars
    # (generating splits, mapping, casting), which would interleave with it.
    if task.own:
        source = ", ".join(task.files.values()) or f"the Hugging Face Hub ({task.hub[0]})"
    else:
        source = "the Hugging Face Hub" if args.hub else args.data_dir or (
            default_glue_dir(task.name) if task.kind != "seq2seq" else None)
    print(f"loading {task_name}" + (f" from {source}" if source else ""), file=sys.stderr, flush=True)
    bars = datasets_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()
    try:
        data = load_task(task_name, hub=True) if args.hub else load_cached_task(task_name, args.data_dir)
    finally:
        if bars:
            datasets_logging.enable_progress_bar()
    # A live bar on a terminal; in a log (not a TTY) only the evaluation lines, one per evaluation.
    with tqdm(total=args.steps, unit="step", file=sys.stderr, dynamic_ncols=True,
              disable=not sys.stderr.isatty()) as bar:
        def progress(step: int, total: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")

        def on_eval(step: int, scores: dict[str, float]) -> None:
            bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()), file=sys.stderr)

        result = train(config, task_name, model=args.model, train_config=train_config, data_dir=args.data_dir,
                       data=data, on_eval=on_eval, progress=progress, full_finetune=args.full)
    record = result.to_dict()
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    summary = {k: record[k] for k in ("status", "reason", "metrics", "params", "steps", "throughput")}
    summary["seconds"] = {k: round(v, 2) for k, v in record["seconds"].items()}
    print(json.dumps(summary, indent=2, sort_keys=True))
    if result.status == "failed":
        raise PETLError(f"training failed: {result.reason}")
    warning = result.learnt_nothing()
    if warning:
        print(f"petl-search: warning: {warning}", file=sys.stderr)


def _study(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from .search.language.study import load_study

    spec = load_study(args.study)
    overrides = {k: v for k, v in (("n_trials", getattr(args, "n_trials", None)),
                                   ("concurrency", getattr(args, "concurrency", None)),
                                   ("gpus", getattr(args, "gpus", None)),
                                   ("storage", args.storage)) if v is not None}
    for key in ("n_trials", "concurrency"):
        if key in overrides and overrides[key] < 1:
            raise PETLError(f"--{key.replace('_', '-')} must be a positive integer, but got {overrides[key]}")
    if overrides.get("gpus", 0) < 0:
        raise PETLError(f"--gpus must be a GPU share per trial (0.25: four trials share one GPU), but got "
                        f"{overrides['gpus']}")
    return replace(spec, **overrides)


def cmd_search(args: argparse.Namespace) -> None:
    import time

    from .analysis.summary import progress_line, study_references, summary
    from .search.runner.ray_runner import run_study
    from .search.optuna_bridge.storage import open_study

    spec = _study(args)  # a typo in the study fails here, in one line, before Ray starts
    total = spec.trainings + (spec.reseed["top"] * len(spec.reseed["seeds"]) if spec.reseed else 0)
    start = time.time()

    def say(line: str) -> None:
        print(line, flush=True)

    def on_trial(record, records) -> None:
        say(progress_line(record, records, total, spec, time.time() - start))

    try:
        records = run_study(spec, address=args.address, progress=say, on_trial=on_trial)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; finished trials are saved in {spec.storage_shown}: run the same command to "
                          f"resume") from None
    say(summary(records, spec, study_references(open_study(spec, create=False))))


def cmd_status(args: argparse.Namespace) -> None:
    from .analysis.summary import study_references, summary
    from .search.optuna_bridge.records import read_records
    from .search.optuna_bridge.storage import open_study

    spec = _study(args)
    study = open_study(spec, create=False)
    records = read_records(study)
    print(summary(records, spec, study_references(study)))
    for state, text in (("RUNNING", "running now"), ("INTERRUPTED", "interrupted (their driver is gone; "
                                                                    "`petl-search search` runs them again)")):
        trials = [r for r in records if r.state == state]
        if trials:
            print(f"{text}: " + ", ".join(f"#{r.number} {r.label}" for r in trials))


def cmd_dashboard(args: argparse.Namespace) -> None:
    spec = _study(args)
    if args.serve:
        from .search.optuna_bridge.storage import open_study

        open_study(spec, create=False)  # a clear error for an unknown or empty study, before the server
        import optuna_dashboard

        print(f"optuna-dashboard on http://{args.host}:{args.port} for {spec.storage_shown} (Ctrl-C stops it)",
              flush=True)
        optuna_dashboard.run_server(spec.storage, host=args.host, port=args.port)
        return
    from .analysis.dashboard import write_dashboard

    print(f"wrote {write_dashboard(spec, args.out)}")


def _quiet_datasets() -> None:
    """The commands that train in this process print their own progress lines: no `datasets` bars
    (generating splits, mapping, casting) between them."""
    from datasets.utils import logging as datasets_logging

    datasets_logging.disable_progress_bar()


def _best_record(records: list, spec: Any, study: Any, max_params: float | None) -> Any:
    """`export --best`: the point `best_point` names (as status, the report and the dashboard do) within
    max_params (the study's budget by default); its first trial stands for it."""
    from .analysis.front import best_point, methods
    from .analysis.summary import selected_on, study_references
    from .search.optuna_bridge.records import fill_learning_rates

    points = methods(fill_learning_rates(records, spec.fixed_learning_rate), spec.main_metric,
                     study_references(study))
    pick = best_point(points, max_fraction=spec.budget if max_params is None else max_params,
                      score=spec.main_metric, on=selected_on(spec))
    if pick.point is None:
        raise PETLError(f"--best: nothing to export: {pick.why}")
    print(f"--best: #{pick.point.number} {pick.point.label}: {pick.why}", file=sys.stderr)
    return pick.point.record


def cmd_export(args: argparse.Namespace) -> None:
    from .export import export_trial
    from .search.optuna_bridge.records import read_records, trained_trial
    from .search.optuna_bridge.storage import open_study

    _quiet_datasets()
    spec = _study(args)
    if (args.trial is None) == (not args.best):
        raise PETLError("say which trial: --trial N, or --best [--max-params F] (not both)")
    if args.max_params is not None and not 0 < args.max_params <= 1:
        raise PETLError(f"--max-params is a fraction of the backbone in (0, 1], but got {args.max_params}")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:  # before any training
        raise PETLError(f"{out} exists and is not empty; pass --force to replace it")
    study = open_study(spec, create=False)
    records = read_records(study)
    record = trained_trial(records, args.trial) if args.trial is not None else \
        _best_record(records, spec, study, args.max_params)
    done = export_trial(spec, record, out, force=args.force, steps=args.steps, full_train=args.full_train,
                        progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps({"folder": str(done.folder), "trial": record.number, "design_point": record.label,
                      "metric": done.metric, "trial_metric": record.metric, "reproduced": done.reproduced,
                      "stored_params": record.stored_params, "head_params": record.head_params,
                      "learning_rate": done.learning_rate, "peft": done.peft},
                     indent=2))


def cmd_reseed(args: argparse.Namespace) -> None:
    import statistics

    from .search.runner.inline import reseed_trial

    _quiet_datasets()
    spec = _study(args)
    try:
        records = reseed_trial(spec, args.trial, args.seeds,
                               progress=lambda line: print(line, file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; finished seeds are saved in {spec.storage_shown}: run the same command to "
                          f"train the rest") from None
    scores = [r.metric for r in records]
    std = statistics.stdev(scores) if len(scores) > 1 else 0.0
    print(f"trial {args.trial} ({records[0].label}): {spec.main_metric} {statistics.mean(scores):.4f} ± {std:.4f} "
          f"over seeds {[r.seed for r in records]} ({', '.join(f'{x:.4f}' for x in scores)})")


def cmd_transfer(args: argparse.Namespace) -> None:
    """Train a study's front on another task with fresh seeds (or resume that), then write and print the report."""
    from .analysis.summary import selected_on, study_references
    from .analysis.transfer_report import choose, front_changed, transfer_markdown
    from .search.optuna_bridge.records import fill_learning_rates, read_records
    from .search.optuna_bridge.storage import open_study
    from .search.runner.transfer import (DEFAULT_SEEDS, TransferSource, resolve_task, run_transfer, stored_transfer,
                                         transfer_spec)

    _quiet_datasets()
    spec = _study(args)
    target = transfer_spec(spec, resolve_task(args.task), args.folder)
    for flag, value in (("--seeds", args.seeds), ("--max-points", args.max_points),
                        ("--time-budget", args.time_budget)):
        if value is not None and value <= 0:
            raise PETLError(f"{flag} must be a positive number, but got {value}")
    if args.report_only and (args.seeds or args.max_points or args.time_budget):
        raise PETLError("--report-only trains nothing: drop --seeds, --max-points and --time-budget, or drop "
                        "--report-only to run the transfer")

    def live_source() -> TransferSource:
        study = open_study(spec, create=False)
        records = fill_learning_rates(read_records(study), spec.fixed_learning_rate)
        return TransferSource.of(spec, records, study_references(study), selected_on(spec))

    stored = stored_transfer(target)
    if args.report_only and stored is None:
        raise PETLError(f"no transfer of study {spec.name} to {target.task} in {target.sqlite_path.parent} yet: run "
                        f"it without --report-only")
    if not args.report_only:
        source = stored.source if stored is not None else live_source()
        if stored is not None and spec.sqlite_path is not None and spec.sqlite_path.is_file():
            note = front_changed(stored.source, live_source())
            if note:
                print(note, flush=True)
        choice = choose(source, args.max_points)
        seeds = args.seeds or len((stored.plan if stored else {}).get("seeds") or ()) or DEFAULT_SEEDS
        try:
            stored = run_transfer(target, source, [m.number for m in choice.points], seeds,
                                  progress=lambda line: print(line, flush=True), time_budget_s=args.time_budget,
                                  provenance=_run_provenance(args))
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted; finished trainings are saved in {target.storage_shown}: run the same "
                              f"command to resume") from None
    text = transfer_markdown(stored)
    out = target.sqlite_path.parent / "report.md"
    out.write_text(text)
    print(text)
    print(f"wrote {out}", file=sys.stderr)


def _run_provenance(args: argparse.Namespace) -> dict[str, Any]:
    """What the transfer's report says of the run that trained it: the command, the commit, the date, the machine."""
    import datetime
    import os
    import platform
    import subprocess

    given = (("task", args.task), ("seeds", args.seeds), ("max_points", args.max_points),
             ("time_budget", args.time_budget), ("folder", args.folder))
    options = [f"--{key.replace('_', '-')} " + (f"{value:g}" if isinstance(value, float) else str(value))
               for key, value in given if value is not None]

    def git(*words: str) -> str:
        return subprocess.run(["git", *words], capture_output=True, text=True, cwd=Path(__file__).resolve().parent,
                              timeout=10).stdout.strip()

    try:  # "+dirty": tracked files had changes the commit does not hold
        commit = (git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain",
                                                                         "--untracked-files=no") else "")) or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"command": " ".join(["petl-search transfer", args.study, *options]), "commit": commit,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs"}


def cmd_report(args: argparse.Namespace) -> None:
    from .analysis.claims import has_confirmations, study_claims
    from .analysis.report import markdown
    from .analysis.summary import selected_on, study_references
    from .search.oneshot.pipeline import oneshot_stage
    from .search.optuna_bridge.records import fill_learning_rates, read_records
    from .search.optuna_bridge.storage import open_store

    spec = _study(args)
    store = open_store(spec, create=False)
    # each point's `lr`: trials stored before trials recorded their rate trained at the study's fixed one
    records = fill_learning_rates(read_records(store.study), spec.fixed_learning_rate)
    if not any(r.scored for r in records):
        raise PETLError(f"study {spec.name!r} has no completed trials yet: nothing to report")
    # a study with confirm trials is judged on them alone (Holm over its claims); the rest is exploratory
    claims = study_claims(records, store.study.user_attrs, spec.main_metric, spec.confirm) \
        if has_confirmations(records) else None
    text = markdown(records, spec.main_metric, spec.name, selected_on=selected_on(spec),
                    references=study_references(store.study), oneshot=oneshot_stage(spec, store), claims=claims,
                    budget_fraction=spec.budget, study_file=spec.source)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    print(text)


def cmd_contest(args: argparse.Namespace) -> None:
    """Run (or resume) a contest's arms, then write its report; with --report-only, only the report."""
    from .analysis.contest_report import contest_markdown
    from .search.language.contest import load_contest

    path = Path(args.contest)
    if not path.is_file():
        raise PETLError(f"contest file {path} not found")
    contest = load_contest(path)
    if args.report_only and (args.arms or args.time_budget is not None or args.address):
        raise PETLError("--report-only trains nothing: drop --arms, --time-budget and --address, or drop "
                        "--report-only to run the contest")
    if args.time_budget is not None and args.time_budget <= 0:
        raise PETLError(f"--time-budget must be a number of seconds > 0, but got {args.time_budget}")
    if not args.report_only:
        from .search.runner.contest import run_contest

        try:
            run_contest(contest, only=args.arms, address=args.address, time_budget_s=args.time_budget,
                        progress=lambda line: print(line, flush=True))
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted; finished trials are saved in each arm's storage under "
                              f"{contest.folder}: run the same command to resume") from None
    out = Path(args.out) if args.out else contest.folder / "report.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(contest_markdown(contest))
    print(f"contest {contest.name}: report written to {out}")


def cmd_data_glue(args: argparse.Namespace) -> None:
    from .training.glue_data import CHECKSUMS, fetch_glue
    from .training.tasks import GLUE_DIR_ENV

    def say(written) -> None:
        print(f"{written.path}\t{written.rows:,} rows\tsha256 {written.sha256}", flush=True)

    out = Path(args.out)
    try:
        done = fetch_glue(args.tasks, out, force=args.force, progress=True, on_file=say)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; every file written is complete and listed in {out / CHECKSUMS}: name "
                          f"the tasks still missing (or pass --force) to go on") from None
    print(f"wrote {len(done)} files and {out / CHECKSUMS}; use them with `--data-dir {out}`, `data_dir: {out}` in a "
          f"study, or {GLUE_DIR_ENV}={out}")


def _study_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments every study command takes: which study, and optionally another storage."""
    parser.add_argument("study", help="a study YAML file, or a name under studies/")
    parser.add_argument("--storage", help="an SQLAlchemy URL overriding the study's storage (e.g. postgresql://...)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="petl-search", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("presets", help="list the presets with their parameter counts on a model")
    p.add_argument("--model", default=DEFAULT_ENCODER, help=f"model name, path or Hub id (default {DEFAULT_ENCODER})")
    p.set_defaults(func=cmd_presets)
    c = sub.add_parser("count", help="count the Δh parameters of one design point on a model")
    c.add_argument("--preset", choices=sorted(PRESETS))
    c.add_argument("--arg", action="append", default=[], metavar="K=V", help="preset argument (JSON value)")
    c.add_argument("--config", help="a PETLConfig as a JSON file")
    c.add_argument("--model", default=DEFAULT_ENCODER)
    c.set_defaults(func=cmd_count)
    t = sub.add_parser("train", help="train one design point on a task and print its result")
    which = t.add_mutually_exclusive_group(required=True)
    which.add_argument("--task", help="sst2, cola, stsb, mrpc, rte, qnli, wnli, mnli, qqp, xsum, wmt16_en_ro")
    which.add_argument("--task-file", metavar="TASK.yaml", help="a task of your own: a YAML file holding what a "
                       "study's `task:` mapping holds (kind, files or hub, columns; docs/training.md)")
    t.add_argument("--preset", choices=sorted(PRESETS))
    t.add_argument("--arg", action="append", default=[], metavar="K=V", help="preset argument (JSON value)")
    t.add_argument("--config", help="a PETLConfig as a JSON file")
    t.add_argument("--full", action="store_true", help="full fine-tuning (every weight trained; the reference)")
    t.add_argument("--model", default=DEFAULT_ENCODER)
    t.add_argument("--data-dir", help="the GLUE folder (default: $PETL_SEARCH_GLUE_DIR or ../shared/data/glue)")
    t.add_argument("--hub", action="store_true", help="read the task from the Hugging Face Hub (needs network)")
    t.add_argument("--steps", type=int, default=300)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--eval-every", type=int, default=100)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--max-seconds", type=float, default=None, help="training time budget")
    t.add_argument("--out", help="write the full result record (JSON) here")
    t.set_defaults(func=cmd_train)
    s = sub.add_parser("search", help="run (or resume) a study: Ray Tune trains, Optuna proposes, storage keeps all")
    _study_arguments(s)
    s.add_argument("--address", help="join a running Ray cluster (e.g. 'auto' or ray://head:10001); "
                                     "default: start Ray on this machine")
    s.add_argument("--n-trials", type=int, help="search trials in total (raise it to extend a finished study)")
    s.add_argument("--concurrency", type=int, help="trials at once (default: the study's)")
    s.add_argument("--gpus", type=float, help="GPUs per trial, overriding the study's resources (0.25: four "
                                              "trials share a GPU; bf16 autocast on GPU)")
    s.set_defaults(func=cmd_search)
    st = sub.add_parser("status", help="print a study's counts and its current Pareto front")
    _study_arguments(st)
    st.set_defaults(func=cmd_status)
    d = sub.add_parser("dashboard", help="write a study's self-contained HTML dashboard (or serve optuna-dashboard)")
    _study_arguments(d)
    d.add_argument("--out", help="the HTML file (default dashboards/<name>.html)")
    d.add_argument("--serve", action="store_true", help="serve the live optuna-dashboard on the same storage")
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, default=8080)
    d.set_defaults(func=cmd_dashboard)
    e = sub.add_parser("export", help="re-train a study's trial and write it as a loadable folder")
    _study_arguments(e)
    e.add_argument("--trial", type=int, help="the trial number to export")
    e.add_argument("--best", action="store_true", help="the point the dashboard and status recommend: the best mean "
                   "over seeds on the set the search selects on (fewest parameters on ties), above a constant answer")
    e.add_argument("--max-params", type=float, help="with --best: at most this fraction of the backbone (default: "
                   "the study's budget)")
    e.add_argument("--out", required=True, help="the folder to write")
    e.add_argument("--force", action="store_true", help="replace an earlier export in the folder (files export "
                   "did not write are kept; a folder export did not write is refused)")
    e.add_argument("--steps", type=int, help="train this many steps instead of the trial's")
    e.add_argument("--full-train", action="store_true", help="train at least one epoch of the full training set")
    e.set_defaults(func=cmd_export)
    rs = sub.add_parser("reseed", help="train a study's trial again with other seeds (is it better, or lucky?)")
    _study_arguments(rs)
    rs.add_argument("--trial", type=int, required=True, help="the trial number whose point to train again")
    rs.add_argument("--seeds", type=int, nargs="+", required=True, help="the seeds to train it with")
    rs.set_defaults(func=cmd_reseed)
    tr = sub.add_parser("transfer", help="train a study's front again on another task (fresh seeds) and report how "
                                         "its order holds there")
    _study_arguments(tr)
    tr.add_argument("--task", required=True, help="the other task: a built-in task's name (stsb, mrpc, ...) or a task "
                    "file (what a study's `task:` mapping holds)")
    tr.add_argument("--seeds", type=int, help="fresh seeds per point, none the study used (default: an earlier run's, "
                    "else 3)")
    tr.add_argument("--max-points", type=int, help="at most this many front points: the best point and the others "
                    "evenly spaced by size (default: the whole front)")
    tr.add_argument("--time-budget", type=float, help="start no training after this many seconds; the same command "
                    "goes on")
    tr.add_argument("--folder", help="where the transfer keeps its storage and report (default: <study folder>/"
                    "transfer_<task>)")
    tr.add_argument("--report-only", action="store_true", help="write the report from the transfer's storage, train "
                    "nothing")
    tr.set_defaults(func=cmd_transfer)
    r = sub.add_parser("report", help="answer the paper's questions from a study's trials (Markdown)")
    _study_arguments(r)
    r.add_argument("--out", help="also write the Markdown here (e.g. docs/<name>.md)")
    r.set_defaults(func=cmd_report)
    co = sub.add_parser("contest", help="run (or resume) a contest's arms and write its report (Markdown)")
    co.add_argument("contest", help="a contest YAML file (search/language/contest.py)")
    co.add_argument("--arms", nargs="+", help="run only these arms (default: every arm, in the file's order)")
    co.add_argument("--time-budget", type=float, help="stop after this many seconds; the same command goes on")
    co.add_argument("--address", help="join a running Ray cluster (default: start Ray on this machine)")
    co.add_argument("--report-only", action="store_true", help="write the report from the storages, train nothing")
    co.add_argument("--out", help="the report's file (default: <contest folder>/report.md)")
    co.set_defaults(func=cmd_contest)
    data = sub.add_parser("data", help="get task data for offline use (`data glue`: GLUE from the Hub, as TSV files)")
    sources = data.add_subparsers(dest="source", required=True)
    g = sources.add_parser("glue", help="download GLUE tasks from the Hub and write the folder --data-dir reads",
                           description="Download GLUE tasks from the Hugging Face Hub (nyu-mll/glue) and write them "
                                       "as the GLUE TSV folder that --data-dir, a study's data_dir and "
                                       "$PETL_SEARCH_GLUE_DIR read: SST-2/train.tsv, SST-2/dev.tsv, ... "
                                       "(MNLI/dev_matched.tsv), with a SHA256SUMS file. Needs network.")
    g.add_argument("tasks", nargs="*", metavar="TASK",
                   help="GLUE tasks to write (default: all of sst2 cola stsb mrpc rte qnli wnli mnli qqp)")
    g.add_argument("--out", required=True, metavar="DIR", help="the folder to write (created if missing)")
    g.add_argument("--force", action="store_true", help="replace files that already exist")
    g.set_defaults(func=cmd_data_glue)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except Interrupted as exc:  # Ctrl-C: what finished is saved; 130 as shells expect after SIGINT
        print(f"petl-search: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("petl-search: interrupted", file=sys.stderr)
        return 130
    except PETLError as exc:
        print(f"petl-search: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
