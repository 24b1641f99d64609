"""A study in words: one line per finished trial while it runs, and its state (counts, the front, how
the search compares with the best baseline) for `search` and `status`."""
from __future__ import annotations

from ..search.records import TrialRecord, counts
from ..search.study import StudySpec
from .front import best_baseline, front_records, front_table, matches_or_beats


def progress_line(record: TrialRecord, records: list[TrialRecord], total: int, spec: StudySpec,
                  elapsed: float) -> str:
    done = sum(v for k, v in counts(records).items() if k in ("completed", "pruned", "failed"))
    front = front_records(records, kinds=("search",))
    outcome = (f"{record.metric:.4f} at {record.stored_fraction:.3%}" if record.metric is not None
               else f"{record.state.lower()}: {record.reason}")
    best = max(front, key=lambda r: r.metric, default=None)
    best_text = f"best {best.metric:.4f} at {best.stored_fraction:.3%} (#{best.number})" if best else "no front yet"
    return (f"[{done}/{total}] #{record.number} {record.kind} {record.label}: {outcome} | "
            f"front {len(front)}, {best_text} | {elapsed / 60:.1f} min")


def summary(records: list[TrialRecord], spec: StudySpec) -> str:
    """The study's state in words and a table: counts, the front, and how it compares to the baselines."""
    c = counts(records)
    metric = spec.main_metric
    lines = [f"study {spec.name}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in c.items() if v),
             f"Pareto front ({metric} vs stored parameters; baselines included):",
             front_table(front_records(records), metric)]
    reference = best_baseline(records)
    if reference is not None:
        wins = matches_or_beats(records, reference)
        lines.append(f"best baseline: {reference.label} {metric}={reference.metric:.4f} with "
                     f"{reference.stored_params:,} stored; search points as good with no more parameters: "
                     + (", ".join(f"#{r.number} ({r.metric:.4f}, {r.stored_params:,})" for r in wins) or "none"))
    return "\n".join(lines)
