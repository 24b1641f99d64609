"""The paper's questions answered from a study's own trials, as Markdown (`petl-search report`).

Every number it quotes is on the official dev set, which the search never saw when it selected (a study
selects on a search split carved from training); the front is drawn on the search split, where the
search chose, with dev beside it, and every choice the report makes (the best FFN and attention methods)
is made there too. Beside every point: its task head's parameters, trained and exported with it but
outside the budget (on Δh, as the paper's), and the learning rate it trained at (`lr`; records read from
a storage whose trials did not record it need `fill_learning_rates` first, else it shows as '-').
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Mapping, Sequence

from ..search.optuna_bridge.records import DESIGN_KEY, OneShotStage, TrialRecord
from .claims import ClaimRow, StudyClaims, rows_header
from .comparison import Comparison
from .effects import Effect, dimension_effects
from .findings import baseline_comparisons, mam_claims
from .dashboard_data import export_command
from .front import (Claim, Method, best_point, dev_view, front, head_text, lr_text, methods, nothing_learned,
                    study_head_params)

# What a section that reads the selecting seed's dev scores says in its heading when the study also has
# claims judged on fresh seeds alone: those claims are the report's findings, these sections explore.
EXPLORATORY = "exploratory: the selecting seed counts"


def markdown(records: Sequence[TrialRecord], metric: str, study_name: str, *, selected_on: str = "search split",
             references: Mapping[str, Mapping[str, float] | None] | None = None,
             oneshot: OneShotStage | None = None, claims: StudyClaims | None = None,
             budget_fraction: float | None = None, study_file: str = "STUDY.yaml") -> str:
    """The report: (with `claims`, from a study with confirm trials) the claims judged on fresh seeds, then
    controlled comparisons, search-trial effects, MAM against the front, the front, and for a one-shot
    study the supernet's choice against the same designs trained stand-alone. With claims, the sections
    that read the dev scores of the seed that selected the points say in their headings that they explore.
    With `budget_fraction`, what to export (`best_point`, as status and the dashboard say) comes first; when
    nothing beat a constant answer, the report says so before anything else."""
    explore = f"; {EXPLORATORY}" if claims is not None else ""
    on_dev = dev_view(records, metric)
    points = methods(records, metric, references)
    head = study_head_params(records)
    learnt = nothing_learned(points, metric)
    lines = [f"# {study_name}: what the data says", "", *([f"**{learnt}**", ""] if learnt else []),
             f"Score: {metric}. The search selected on the {selected_on}; every number below is on the official "
             f"dev set unless it says otherwise, and every choice below is made on the {selected_on}. Seeds per "
             f"baseline as run; 95% Welch intervals for the difference of means (A − B). Trained on "
             f"{trained_on(records)}.", "",
             _parameters_line(records, head), "",
             *_export_lines(points, metric, selected_on, budget_fraction, study_file, study_name),
             *(claims_section(claims, metric) if claims is not None else []),
             f"## Controlled comparisons (seed methods, same size, dev{explore})", ""]
    pairs = baseline_comparisons(records, metric)
    lines += ["| question | A | B | A: mean ± std (n) | B: mean ± std (n) | A − B [95% CI] | answer |",
              "|---|---|---|---|---|---|---|"] if pairs else \
        ["None: the study's baselines hold no pair of seed methods that differ in one design dimension."]
    for c in pairs:
        lines.append(f"| {c.question} | {c.a.label} ({_size(c.a.percent, c.a.head_params)}) | {c.b.label} "
                     f"({_size(c.b.percent, c.b.head_params)}) | "
                     f"{c.a.mean:.4f} ± {c.a.std:.4f} ({len(c.a.scores)}) | {c.b.mean:.4f} ± {c.b.std:.4f} "
                     f"({len(c.b.scores)}) | {c.difference:+.4f} {_interval(c)} | {c.verdict} |")
    lines += ["", "## All trained points by design dimension, within budget bands (dev; observational: the "
              f"sampler chose the search points{explore})", "",
              "| dimension | budget band | value | n | mean ± std |", "|---|---|---|---|---|"]
    for dimension in ("insertion", "representation", "composition", "heads", "size", "scale"):
        for e in dimension_effects(on_dev, dimension):
            lines.append(_effect_row(e))
    lines += ["", f"## MAM against the search front (front points selected on the {selected_on}, judged on "
              f"dev over seeds{explore})", ""]
    mams = mam_claims(points)
    if not mams:
        lines.append("- The study trained no MAM baseline: nothing to compare.")
    for mam, found in mams:
        dev = f"{mam.dev_mean:.4f} ± {mam.dev_std:.4f}" if mam.dev else "no dev score"
        lines.append(f"- {mam.label} ({_size(100 * mam.stored_fraction, mam.head_params)}, lr "
                     f"{lr_text(mam.learning_rate)}): dev {dev} over "
                     f"{len(mam.dev)} seeds. "
                     f"Front search points with no more parameters: {len(found) or 'none'}")
        lines += [f"  - {_claim(claim)}" for claim in found]
    line = front(points)
    lines += ["", f"## The front ({len(line)} points: {metric} on the {selected_on}, mean over seeds; dev beside it)",
              "", "| trial | kind | seeds | selected on | dev | % backbone | head | lr | design point |",
              "|---|---|---|---|---|---|---|---|---|"]
    for m in line:
        dev = f"{m.dev_mean:.4f} ± {m.dev_std:.4f}" if m.dev else "-"
        flags = "".join(f" **{flag}**" for flag in m.flags)
        lines.append(f"| #{m.number} | {m.kind} | {len(m.scores)} | {m.mean:.4f} ± {m.std:.4f} | {dev} | "
                     f"{100 * m.stored_fraction:.3f}% | {head_text(m.head_params)} | {lr_text(m.learning_rate)} | "
                     f"{m.label}{flags} |")
    if oneshot is not None:
        lines += ["", *_oneshot_lines(records, metric, oneshot)]
    return "\n".join(lines) + "\n"


def _export_lines(points: Sequence[Method], metric: str, on: str, budget_fraction: float | None, study_file: str,
                  study_name: str) -> list[str]:
    """What to export: `best_point` within the budget and its command, or why nothing is recommended."""
    if budget_fraction is None:
        return []
    pick = best_point(points, max_fraction=budget_fraction, score=metric, on=on)
    if pick.point is None:
        return ["## What to export", "", f"Nothing to recommend: {pick.why}.", ""]
    m, command = pick.point, export_command(study_file, study_name, pick.point.number)
    return ["## What to export", "", f"#{m.number} {m.label}: {pick.why}. `{command}`", ""]


def claims_section(claims: StudyClaims, metric: str) -> list[str]:
    """The study's claims on fresh seeds: how many were judged (Holm), the table, then ρ and the proposals."""
    judged = claims.judged
    lines = ["## Claims (fresh seeds only)", "",
             f"{rows_header(judged, claims.alpha)}. Each pick (chosen on the search split) is judged only by "
             f"its confirm trainings, paired seed by seed over the seeds both sides have; the seed that picked it "
             f"never counts. {metric} on dev; A − B with its 95% paired-bootstrap interval (over dev examples and "
             f"seeds; unadjusted), p before and after Holm's correction; the verdict reads the adjusted p."
             + (f" {len(claims.rows) - len(judged)} more not judged (reason beside each)."
                if len(judged) < len(claims.rows) else ""), ""]
    lines += claims_table(claims.rows) if claims.rows else \
        ["None: the study's picks give no claim (no baseline pick at any claim size)."]
    lines += ["", f"- {claims.ranks.sentence}.", f"- Proposals: {claims.shares.sentence()}.", ""]
    return lines


def claims_table(rows: Sequence[ClaimRow]) -> list[str]:
    """One Markdown row per claim: question, both sides (label, stored size, lr), seeds, A − B [95% CI], p,
    Holm-adjusted p and verdict (or why it was not judged)."""
    lines = ["| question | A | B | seeds | A − B [95% CI] | p | Holm p | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        a, b = (side.text if side is not None else "-" for side in (row.a, row.b))
        seeds = ", ".join(map(str, row.seeds)) or "-"
        if row.claim is None:
            lines.append(f"| {row.question} | {a} | {b} | {seeds} | - | - | - | {row.verdict_text} |")
            continue
        result = row.claim.result
        low, high = result.interval(0.95)
        adjusted = f"{row.verdict.p_adjusted:.4g}" if row.verdict is not None else "-"
        kind = "" if row.kind == "superiority" else f" (margin {row.margin:g})"
        lines.append(f"| {row.question}{kind} | {a} | {b} | {seeds} | {result.observed:+.4f} [{low:+.4f}, {high:+.4f}] "
                     f"| {row.claim.p_value:.4g} | {adjusted} | {row.verdict_text} |")
    return lines


def _oneshot_lines(records: Sequence[TrialRecord], metric: str, stage: OneShotStage) -> list[str]:
    """The designs the supernet chose: inherited score beside the stand-alone one (seed 0) and dev."""
    examples = "all" if stage.eval_examples is None else f"{stage.eval_examples:,}"
    lines = ["## One-shot: the supernet's choice against stand-alone training", "",
             f"A supernet trained {stage.supernet_steps} steps scored {stage.designs_scored} designs with inherited "
             f"weights on {examples} search-split examples, each after {stage.adapt_steps} steps of a task head "
             f"of its own; these {len(stage.inherited)} were trained stand-alone. Inherited and stand-alone "
             f"{metric} are both on the search split (the inherited one on fewer examples); dev is the trial's own.",
             "", "| trial | design | inherited | stand-alone (search split) | dev | % backbone | head | lr | "
             "design point |", "|---|---|---|---|---|---|---|---|---|"]
    trained = {r.extra.get(DESIGN_KEY): r for r in records if DESIGN_KEY in r.extra}
    study_head = study_head_params(records)
    for design, inherited in stage.inherited.items():
        r = trained.get(design)
        if r is None:
            lines.append(f"| - | {design} | {inherited:.4f} | not trained yet | - | - | - | - | - |")
            continue
        alone = f"{r.metric:.4f}" if r.metric is not None else r.state.lower()
        dev = f"{r.dev_scores[metric]:.4f}" if metric in r.dev_scores else "-"
        share = f"{100 * r.stored_fraction:.3f}%" if r.stored_fraction is not None else "-"
        head = r.head_params if r.head_params is not None else study_head
        lines.append(f"| #{r.number} | {design} | {inherited:.4f} | {alone} | {dev} | {share} | {head_text(head)} | "
                     f"{lr_text(r.learning_rate)} | {r.label} |")
    lines += ["", "How well the supernet ranks designs in general is measured apart, on designs spread over sizes: "
              "`bench/oneshot_rank.py` (docs/performance.md)."]
    return lines


def trained_on(records: Sequence[TrialRecord]) -> str:
    """Where the trials ran, as the trainer recorded it ('cpu', 'cuda'), with how many ran on each: GPU
    trials autocast to bf16, so a study's numbers depend on it."""
    devices = Counter(str(r.extra.get("device", "unrecorded")) for r in records if r.scored)
    return ", ".join(f"{device}{' (bf16 autocast)' if device.startswith('cuda') else ''}: {n} trials"
                     for device, n in devices.most_common()) or "nothing yet"


def _claim(claim: Claim) -> str:
    m, c = claim.point, claim.comparison
    where = f"#{m.number} ({m.label}, {_size(100 * m.stored_fraction, m.head_params)}, lr {lr_text(m.learning_rate)})"
    if c is None:
        return f"{where}: no dev score"
    if len(m.scores) < 2:
        return (f"{where}: dev {c.a.mean:.4f} on one seed, {c.difference:+.4f} against MAM's mean: no claim without "
                f"reseeds")
    mean = "at least as good as MAM on average" if c.difference >= 0 else "below MAM on average"
    if c.no_interval:
        noise = c.no_interval
    elif c.low > 0:
        noise = "better beyond seed noise"
    elif c.high < 0:
        noise = "worse beyond seed noise"
    else:
        noise = "the difference is within seed noise"
    return (f"{where} over {len(c.a.scores)} seeds: dev {c.a.mean:.4f} ± {c.a.std:.4f}; minus MAM: "
            f"{c.difference:+.4f} {_interval(c)}: {mean}; {noise}")


def _size(percent: float, head: int | None) -> str:
    """A point's size beside it: stored Δh as % of the backbone, and its task head's count when recorded."""
    return f"{percent:.3f}%" + (f", head {head:,}" if head is not None else "")


def _parameters_line(records: list, head: int | None) -> str:
    """What "% of the backbone" and "head" mean here. A language model's task (causal LM) trains no head: its
    frozen LM head is the backbone's, so the line says so instead of describing a classifier that is not there."""
    line = "Parameters: % of the backbone is the stored Δh (what the budget limits). "
    if head == 0:
        return line + "No task head is trained or exported: the task is read through the model's own (frozen) LM head."
    return (line + f"Every point also trains and exports a task head (\"head\": BERT's pooler + classifier, or the "
            f"model's own), not counted in the budget, as in the paper: {head_text(head)} parameters"
            + (f" ({_head_share(records, head)} of the backbone)." if head is not None else "."))


def _head_share(records: Sequence[TrialRecord], head: int) -> str:
    """The head as a share of the backbone, as a trainer's report gives the backbone (no model needed)."""
    backbone = next(((r.extra.get("params") or {}).get("backbone") for r in records
                     if (r.extra.get("params") or {}).get("backbone")), None)
    return f"{100 * head / backbone:.2f}%" if backbone else "an unknown share"


def _interval(c: Comparison) -> str:
    return "[n/a]" if math.isnan(c.low) else f"[{c.low:+.4f}, {c.high:+.4f}]"


def _effect_row(e: Effect) -> str:
    return (f"| {e.dimension} | {100 * e.band[0]:.3g}–{100 * e.band[1]:.3g}% | {e.value} | {e.n} | "
            f"{e.mean:.4f} ± {e.std:.4f} |")
