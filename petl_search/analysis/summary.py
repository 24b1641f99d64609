"""A study in words: one line per finished trial while it runs, and its state (counts, the front, what
the front's points claim against the best baseline) for `search` and `status`. Each point is shown with
the learning rate it trained at (`lr`)."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from ..core.params import percent
from ..search.optuna_bridge.records import TrialRecord, counts, fill_learning_rates
from ..search.optuna_bridge.storage import REFERENCES_KEY
from ..search.language.study import StudySpec
from .dashboard_data import export_command
from .front import (Claim, Method, best_baseline, best_point, claims, front, front_table, head_text, lr_text, methods,
                    nothing_learned)


def selected_on(spec: StudySpec) -> str:
    return "search split" if spec.search_split else "dev"


def progress_line(record: TrialRecord, records: list[TrialRecord], total: int, spec: StudySpec,
                  elapsed: float) -> str:
    # reseeds count as the total does (cmd_search); a failed reseed is tried again, so it is not done
    done = sum(v for k, v in counts(records).items() if k in ("completed", "pruned", "failed", "reseed"))
    points = methods(records, spec.main_metric)
    search_front = front(points, kinds=("search",))
    rate = lr_text(fill_learning_rates([record], spec.fixed_learning_rate)[0].learning_rate)
    outcome = (f"{record.metric:.4f} at {percent(record.stored_fraction)}, lr {rate}" if record.metric is not None
               else f"{record.state.lower()} (lr {rate}): {record.reason}")
    best = best_point(points, max_fraction=spec.budget, score=spec.main_metric, on=selected_on(spec)).point
    best_text = f"best {best.mean:.4f} at {percent(best.stored_fraction)} (#{best.number})" if best else "none best yet"
    return (f"[{done}/{total}] #{record.number} {record.kind} {record.label}: {outcome} | "
            f"front {len(search_front)}, {best_text} | {elapsed / 60:.1f} min")


def summary(records: list[TrialRecord], spec: StudySpec,
            references: Mapping[str, Mapping[str, float] | None] | None = None) -> str:
    """The study's state in words and a table: counts, the front, and its claims against the best baseline."""
    c = counts(records)
    records = fill_learning_rates(records, spec.fixed_learning_rate)
    score, on = spec.main_metric, selected_on(spec)
    points = methods(records, score, references)
    learnt = nothing_learned(points, score)
    lines = [learnt] if learnt else []  # said first: the rest reads differently when nothing learnt
    lines += [f"study {spec.name}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in c.items() if v),
             f"Pareto front ({score} on the {on}, where the search selects, mean ± std over seeds; the official "
             f"dev set beside it; baselines included; head: the task head's parameters, trained and exported with "
             f"each point, not in the budget):",
             front_table(front(points), score, selected_on=on)]
    reference = best_baseline(points)
    if reference is not None:
        dev = f", dev {reference.dev_mean:.4f} ± {reference.dev_std:.4f}" if reference.dev else ""
        lines.append(f"best baseline on the {on}: {reference.label}, {score} {reference.mean:.4f} over "
                     f"{len(reference.scores)} seeds{dev}, {reference.stored_params:,} stored (head "
                     f"{head_text(reference.head_params)}), lr {lr_text(reference.learning_rate)}. Front search "
                     f"points with no more parameters, on dev:")
        lines += [claim_line(claim) for claim in claims(points, reference)] or ["  none"]
    lines.append(export_line(points, spec))
    return "\n".join(lines)


def export_line(points: Sequence[Method], spec: StudySpec) -> str:
    """What to export (`best_point` within the budget, as the dashboard and `export --best` choose), with the
    command, or why nothing is recommended."""
    pick = best_point(points, max_fraction=spec.budget, score=spec.main_metric, on=selected_on(spec))
    if pick.point is None:
        return f"what to export: nothing to recommend: {pick.why}"
    m = pick.point
    return (f"what to export: #{m.number} {m.label} ({pick.why}): "
            f"{export_command(spec.source, spec.name, m.number)}")


def claim_line(claim: Claim) -> str:
    """One front point against a baseline, on the official dev set, with its verdict."""
    m = claim.point
    size = f"{m.stored_params:,}, head {head_text(m.head_params)}, lr {lr_text(m.learning_rate)}"
    if claim.comparison is None:
        return f"  #{m.number} ({size}): no dev score to compare"
    c = claim.comparison
    interval = "" if math.isnan(c.low) else f" [95% CI {c.low:+.4f}, {c.high:+.4f}]"
    return (f"  #{m.number} ({size}): dev {c.a.mean:.4f} ± {c.a.std:.4f} over {len(c.a.scores)} seeds "
            f"vs {c.b.mean:.4f} ± {c.b.std:.4f} over {len(c.b.scores)}: {c.difference:+.4f}{interval}: {claim.verdict}")


def study_references(study: Any) -> Mapping[str, Mapping[str, float] | None]:
    """What a constant answer scores per evaluation set, as the study stored it (empty if it did not)."""
    return study.user_attrs.get(REFERENCES_KEY) or {}
