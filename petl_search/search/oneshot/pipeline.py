"""One-shot search: a weight-sharing supernet ranks many designs; the best few are trained stand-alone.

A study with `strategy: oneshot` runs three stages, each resumable from the study's storage:
  1. the supernet is trained (sandwich rule, checkpointed every 50 steps) and saved beside the storage
     (training/supernet_training.py);
  2. the study's sampler (NSGA-II suits it) proposes `designs` designs from the same space file, each
     scored with the supernet's inherited weights on the search split, cheaply (evaluation only, after
     `adapt_steps` forward-only steps of a head of its own). They
     live in a second Optuna study, `<name>.oneshot`, in the same storage, with objectives
     (score, stored parameters), so a killed run resumes where it stopped and never mixes them with
     trained trials;
  3. the `top_k` designs of that study (its non-dominated ranks in turn, the last rank thinned by
     crowding distance so that the chosen ones spread over sizes) are queued in the study itself as search
     points and trained stand-alone by the Ray workers: fronts, reseeds, reports, dashboards and export
     see ordinary trials.

The dev set is never read before stage 3's trials end, as in every study.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Mapping

import optuna

from ...core.config import PETLConfig
from ...core.errors import PETLConfigError
from ...core.params import count_params
from ...nn.supernet import Supernet
from ...training.config import TrainConfig
from ...training.models import head_modules, load_model, prepare_tokenizer
from ...training.supernet_training import HeadAdaptation, evaluate_design, train_supernet
from ...training.tasks import get_task, load_cached_task
from ...training.trainer import prepare_data, run_device
from ..optuna_bridge.pareto import crowding_distances, nondominated_ranks
from .child import run_in_child
from ..optuna_bridge.records import DESIGN_KEY, OneShotStage
from ..optuna_bridge.samplers import make_sampler
from ..optuna_bridge.storage import Store, open_store
from ..language.study import StudySpec
from .supernet_space import SpaceDesigns

DESIGNS_SUFFIX = ".oneshot"  # the design study's name: <study name>.oneshot
QUEUED_KEY = "oneshot_queued"  # study attribute: the design numbers queued for stand-alone training
MAX_REJECTIONS = 500  # proposals in a row over budget or repeated before the space is declared exhausted

SUPERNET_FILE = "supernet.safetensors"  # in the study's folder: stage 1's result
CHECKPOINT_FILE = "supernet.ckpt"  # beside it while it trains: a killed run goes on from here
CHECKPOINT_EVERY = 50  # supernet steps
PROGRESS_EVERY = 50  # supernet steps between progress lines

Scorer = Callable[[PETLConfig], Mapping[str, float]]


def run_oneshot_stages(spec: StudySpec, store: Store, model_config: Any, *,
                       progress: Callable[[str], None] = print) -> list[int]:
    """prepare_oneshot, in a child process (child.py says why): the driver that goes on to run Ray's
    workers never holds the model or the supernet. A study whose designs are queued already spawns nothing."""
    if store.study.user_attrs.get(QUEUED_KEY) is not None:
        return list(store.study.user_attrs[QUEUED_KEY])
    return run_in_child(_stages_in_child, spec, model_config, progress=progress, name="petl-search-oneshot")


def _stages_in_child(spec: StudySpec, model_config: Any, *, progress: Callable[[str], None]) -> list[int]:
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    return prepare_oneshot(spec, open_store(spec), model_config, progress=progress)


def prepare_oneshot(spec: StudySpec, store: Store, model_config: Any, *,
                    progress: Callable[[str], None] = print) -> list[int]:
    """Stages 1 and 2, then queue stage 3's designs in the study; each stage that the study's folder or
    storage already holds is skipped, so a killed run resumes at the stage it was in (a supernet killed
    mid-training goes on from its last checkpoint). Returns the design numbers queued."""
    if store.study.user_attrs.get(QUEUED_KEY) is not None:
        return list(store.study.user_attrs[QUEUED_KEY])
    designs = design_study(spec, store.storage)
    scored = sum(t.state == optuna.trial.TrialState.COMPLETE for t in designs.get_trials(deepcopy=False))
    if scored < spec.oneshot["designs"]:
        score = supernet_scorer(spec, progress)
        search_designs(spec, designs, score, model_config, progress=progress)
    chosen = top_designs(designs, spec.oneshot["top_k"])
    progress(f"one-shot: the {len(chosen)} designs to train stand-alone (inherited {spec.main_metric}, stored): "
             + "; ".join(f"{t.values[0]:.4f}, {int(t.values[1]):,}" for t in chosen))
    return queue_designs(store.study, chosen)


def supernet_config(spec: StudySpec) -> TrainConfig:
    """How the supernet trains: the study's trainer, for oneshot.supernet_steps steps, with every CPU the
    study's workers would have (it runs alone, in a child of the driver), scoring on oneshot.eval_examples."""
    return TrainConfig.from_dict({**spec.train, **spec.split_fields, "seed": spec.seed,
                                  "max_steps": spec.oneshot["supernet_steps"],
                                  "eval_examples": spec.oneshot["eval_examples"],
                                  "threads": max(1, int(spec.cpus * spec.concurrency))})


def supernet_scorer(spec: StudySpec, progress: Callable[[str], None]) -> Scorer:
    """Stage 1: the study's supernet, trained (or loaded from the study's folder), and a scorer that
    evaluates a design with its inherited weights on the same search-split examples every time."""
    cfg = supernet_config(spec)
    task = get_task(spec.task)
    device = run_device(cfg)
    splits = load_cached_task(task.name, spec.data_source)
    net, tokenizer = load_model(spec.model, task, cfg.seed)
    prepare_tokenizer(net, tokenizer)
    net.to(device)
    source = SpaceDesigns(spec.space(), net.config, budget=spec.budget if spec.budget_aware else None)
    supernet = Supernet(net, source.all_largest(), train_modules=head_modules(net), seed=spec.seed)
    data = prepare_data(splits, tokenizer, task, cfg, (task.name, str(spec.data_source), None))
    path = spec.folder / SUPERNET_FILE
    if path.is_file():
        supernet.load(path)
        progress(f"one-shot: supernet loaded from {path}")
    else:
        start = time.time()

        def say(step: int, steps: int, loss: float) -> None:
            if step % PROGRESS_EVERY == 0 or step == steps:
                progress(f"one-shot: supernet step {step}/{steps}, sandwich loss {loss:.4f} | "
                         f"{(time.time() - start) / 60:.1f} min")

        checkpoint = spec.folder / CHECKPOINT_FILE
        if checkpoint.is_file():
            progress(f"one-shot: the supernet goes on from its checkpoint {checkpoint}")
        train_supernet(supernet, source, data, tokenizer, task, cfg, random_designs=spec.oneshot["random_designs"],
                       progress=say, checkpoint=checkpoint, checkpoint_every=CHECKPOINT_EVERY)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        supernet.save(partial)
        os.replace(partial, path)  # whole or absent: a resumed run never loads half a file
        checkpoint.unlink(missing_ok=True)
        progress(f"one-shot: supernet trained in {(time.time() - start) / 60:.1f} min, saved to {path}")
    supernet.eval()
    adapt = HeadAdaptation.of(data, cfg, spec.oneshot["adapt_steps"])
    return lambda design: evaluate_design(supernet, design, data.select, tokenizer, task, cfg,
                                          indices=data.select_subset, adapt=adapt)


def design_study(spec: StudySpec, storage: Any, *, create: bool = True) -> optuna.Study:
    """The study of designs scored on the supernet (stage 2), beside the study in its storage."""
    name = spec.name + DESIGNS_SUFFIX
    if not create:
        return optuna.load_study(study_name=name, storage=storage)
    return optuna.create_study(study_name=name, storage=storage, sampler=make_sampler(spec),
                               directions=["maximize", "minimize"], load_if_exists=True)


def search_designs(spec: StudySpec, study: optuna.Study, score: Scorer, model_config: Any, *,
                   progress: Callable[[str], None] = print) -> int:
    """Propose and score designs until the design study holds `oneshot.designs` scored ones; return how
    many this call scored. A proposal over the budget, seen before or that the model cannot hold (plan()
    refuses it; its reason is kept) is closed as failed and not counted (scoring it again would tell the
    sampler nothing new). After a repeat the next proposal is random, as in a study (samplers.py)."""
    target = spec.oneshot["designs"]
    space, metric = spec.space(), spec.main_metric
    budget = spec.budget if spec.budget_aware else None
    limit = spec.budget * count_params(PETLConfig(), model_config).backbone
    seen = {t.user_attrs["fingerprint"] for t in study.get_trials(deepcopy=False) if "fingerprint" in t.user_attrs
            and t.state == optuna.trial.TrialState.COMPLETE}
    scored, rejections = 0, 0
    while len(seen) < target:
        if rejections >= MAX_REJECTIONS:
            progress(f"one-shot: {MAX_REJECTIONS} proposals in a row were over the budget or repeats: the space "
                     f"holds no more new designs ({len(seen)} scored)")
            break
        trial = study.ask()
        try:
            config = space.sample(trial, model_config, budget=budget)
            stored, fingerprint = count_params(config, model_config).stored, config.fingerprint()
            rejected = "over_budget" if stored > limit else "repeat" if fingerprint in seen else None
        except PETLConfigError as exc:  # the model's geometry, which the space cannot know (proposer.py)
            trial.set_user_attr("reason", f"does not fit the model: {exc}")
            rejected = "misfit"
        if rejected:
            trial.set_user_attr("rejected", rejected)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            if rejected == "repeat" and hasattr(study.sampler, "repeated"):
                study.sampler.repeated()  # counts the model's repeats in a row (samplers.SearchStartup)
            rejections += 1
            continue
        rejections = 0
        scores = dict(score(config))
        for key, value in (("config", config.to_dict()), ("fingerprint", fingerprint), ("stored_params", stored),
                           ("scores", scores), ("label", config.describe())):
            trial.set_user_attr(key, value)
        study.tell(trial, [scores[metric], stored])
        seen.add(fingerprint)
        scored += 1
        if len(seen) % 50 == 0 or len(seen) == target:
            progress(f"one-shot: {len(seen)}/{target} designs scored with inherited weights")
    return scored


def top_designs(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    """The k designs to train stand-alone: whole non-dominated ranks on (score, stored parameters) in
    turn; the rank that does not fit whole gives its points with the largest crowding distance (its
    extremes first), so the chosen designs spread along the front instead of bunching."""
    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    points = [(t.values[0], -t.values[1]) for t in done]
    ranks = nondominated_ranks(points)
    chosen: list[optuna.trial.FrozenTrial] = []
    for rank in range(max(ranks, default=-1) + 1):
        members = [i for i, r in enumerate(ranks) if r == rank]
        if len(chosen) + len(members) > k:
            crowding = crowding_distances([points[i] for i in members])
            order = sorted(range(len(members)), key=lambda j: (-crowding[j], done[members[j]].number))
            members = [members[j] for j in order[:k - len(chosen)]]
        chosen += [done[i] for i in sorted(members, key=lambda i: done[i].values[1])]
        if len(chosen) >= k:
            break
    return chosen


def queue_designs(study: optuna.Study, designs: list[optuna.trial.FrozenTrial]) -> list[int]:
    """Queue the designs in the study as search points to train, once: a resumed run finds them queued
    (or trained) and queues nothing again. Returns the design numbers queued, now or before."""
    already = study.user_attrs.get(QUEUED_KEY)
    if already is not None:
        return list(already)
    for design in designs:
        study.enqueue_trial(dict(design.params), user_attrs={DESIGN_KEY: design.number})
    numbers = [d.number for d in designs]
    study.set_user_attr(QUEUED_KEY, numbers)
    return numbers


def oneshot_stage(spec: StudySpec, store: Store) -> OneShotStage | None:
    """The one-shot stages of the study in `store` as the storage holds them; None for a stand-alone study
    or one whose designs are not queued yet."""
    queued = store.study.user_attrs.get(QUEUED_KEY)
    if spec.strategy != "oneshot" or queued is None:
        return None
    designs = design_study(spec, store.storage, create=False)
    done = {t.number: t for t in designs.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}
    return OneShotStage(spec.oneshot["supernet_steps"], spec.oneshot["adapt_steps"], spec.oneshot["eval_examples"],
                        len(done), {n: done[n].values[0] for n in queued if n in done})
