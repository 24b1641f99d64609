"""A study's front on another task (`petl-search transfer`): which points to transfer, and the report of how
they hold there, as Markdown, from the transfer's storage alone (search/runner/transfer.py, StoredTransfer).

Which points: the source's front as `status` draws it (search points and baselines at their mean over seeds on the
set the study selected on), less the points at or below a constant answer there (they learnt nothing to transfer);
with `max_points`, the source's best point (`best_point`, what `export --best` names) and the others evenly spaced
along the front by size. On the target, each point is judged by its transfer's trainings alone (fresh seeds), as a
point of the target: `front.methods` over them gives its mean ± std on the target's search split and dev, its flags
at or below a constant answer there (the target's own), and the target's front and best point by the same rules.

The report: each point's source and target scores; Spearman's ρ and Kendall's τ between the two orders, on the sets
each selected on and on dev, with n and an interval (inference.rank_interval); whether the source's best point is
still the best; the target's front re-drawn from the transferred points; what was left out and why.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..core.errors import PETLError
from ..core.params import percent
from ..search.optuna_bridge.records import TrialRecord
from ..search.runner.transfer import StoredTransfer, TransferSource
from .comparison import compare, seeds_text
from .front import Method, Pick, best_point, front, front_table, lr_text, methods, nothing_learned
from .inference import kendall, rank_interval, spearman, why_no_spearman


@dataclass(frozen=True)
class Choice:
    """The source's points a transfer trains, and the front's points it leaves out, with why."""

    points: tuple[Method, ...]  # in the front's order (by stored size)
    best: Pick  # the source's best point (best_point), always among `points` when there is one
    at_chance: tuple[Method, ...]  # at or below a constant answer on the set the study selected on
    cut: tuple[Method, ...]  # left out by max_points


def source_points(source: TransferSource) -> list[Method]:
    """The source study's trained points over their seeds, as `status` reads them."""
    return methods(source.records, source.metric, source.references)


def choose(source: TransferSource, max_points: int | None = None) -> Choice:
    """The front's points worth transferring (`max_points`: at most so many: the best point and the others evenly
    spaced along the front). Refuses a study with no front, or whose front learnt nothing."""
    if max_points is not None and max_points < 1:
        raise PETLError(f"--max-points must be a positive number of points, but got {max_points}")
    points = source_points(source)
    drawn = front(points)
    if not drawn:
        raise PETLError(f"study {source.study!r} has no front yet: none of its search or baseline trials has "
                        f"completed; run `petl-search search {source.study_file}` first")
    learned = [m for m in drawn if m.record.evaluated_on not in m.chance]
    at_chance = tuple(m for m in drawn if m.record.evaluated_on in m.chance)
    if not learned:
        raise PETLError(f"study {source.study!r}: every point of its front is at or below a constant answer on the "
                        f"{source.selected_on} ({', '.join(f'#{m.number}' for m in at_chance)}): nothing learnt, "
                        f"nothing to transfer")
    best = best_point(points, max_fraction=source.budget, score=source.metric, on=source.selected_on)
    kept = _spread(learned, best.point, max_points)
    return Choice(tuple(kept), best, at_chance, tuple(m for m in learned if m not in kept))


def front_changed(stored: TransferSource, live: TransferSource) -> str | None:
    """What a resumed transfer says when the study's front is no longer the one it began with (the study went on):
    it goes on with the front it stored; None when the front is the same."""
    then, now = ([m.number for m in front(source_points(s))] for s in (stored, live))
    if then == now:
        return None
    return (f"note: study {live.study}'s front is now {_numbers(now)}, not {_numbers(then)} as when this transfer "
            f"began; the transfer goes on with the front it began with (give --folder to transfer the new one)")


def _numbers(numbers: Sequence[int]) -> str:
    return ", ".join(f"#{n}" for n in numbers)


def _spread(points: list[Method], best: Method | None, k: int | None) -> list[Method]:
    """k of `points` (in order): evenly spaced positions, first and last included; the best point takes the place
    of the spaced one nearest to it."""
    n = len(points)
    if k is None or k >= n:
        return points
    at = sorted({int(j * (n - 1) / (k - 1) + 0.5) for j in range(k)}) if k > 1 else [n - 1]
    if best in points and points.index(best) not in at:
        b = points.index(best)
        at[at.index(min(at, key=lambda p: (abs(p - b), p)))] = b
    return [points[i] for i in sorted(at)]


def target_points(stored: StoredTransfer) -> dict[int, Method]:
    """Each transferred point as a point of the target, by its source trial number: its transfer's finished
    trainings with the plan's seeds (fresh ones: never a seed of the source study), read as a point of its source
    kind with the rest as its reseeds, so that `methods` gives its mean, its flags and its head on the target."""
    source = {m.number: m for m in source_points(stored.source)}
    seeds = set(stored.plan.get("seeds", ()))
    view: list[TrialRecord] = []
    for number in stored.plan.get("points", ()):
        runs = sorted((r for r in stored.records if r.kind == "reseed" and r.state == "COMPLETE"
                       and r.metric is not None and r.extra.get("reseed_of") == number and r.seed in seeds),
                      key=lambda r: r.seed)
        if runs and number in source:
            view += [dataclasses.replace(runs[0], kind=source[number].kind, number=number), *runs[1:]]
    return {m.number: m for m in methods(view, stored.spec.main_metric, stored.references)}


@dataclass(frozen=True)
class Order:
    """How two orders of the same points agree: Spearman's ρ and Kendall's τ over n points, each with a 95%
    interval (NaN where none: too few points, or a perfect agreement), or why there is none."""

    n: int
    rho: float
    rho_interval: tuple[float, float]
    tau: float
    tau_interval: tuple[float, float]
    reason: str | None = None

    @property
    def text(self) -> str:
        if self.reason:
            return f"no rank correlation over {self.n} points: {self.reason}"
        return (f"ρ = {self.rho:+.2f} {_range(self.rho_interval)}, τ = {self.tau:+.2f} {_range(self.tau_interval)}, "
                f"n = {self.n}")


def order(x: Sequence[float], y: Sequence[float]) -> Order:
    """ρ and τ between x and y (the same points' scores on two sets), with n and intervals."""
    reason = why_no_spearman(x, y)
    if reason:
        return Order(len(x), math.nan, (math.nan, math.nan), math.nan, (math.nan, math.nan), reason)
    rho, tau = spearman(x, y), kendall(x, y)
    return Order(len(x), rho, rank_interval(rho, len(x)), tau, rank_interval(tau, len(x), statistic="kendall"))


def _range(interval: tuple[float, float]) -> str:
    return "(no interval)" if math.isnan(interval[0]) else f"[95% {interval[0]:+.2f}, {interval[1]:+.2f}]"


def orders(pairs: Sequence[tuple[Method, Method]]) -> dict[str, Order]:
    """The agreement of the source's and the target's orders, on the sets each selected on and on dev."""
    dev = [(a.dev_mean, b.dev_mean) for a, b in pairs if a.dev and b.dev]
    return {"selected": order([a.mean for a, _ in pairs], [b.mean for _, b in pairs]),
            "dev": order([a for a, _ in dev], [b for _, b in dev])}


def transfer_markdown(stored: StoredTransfer) -> str:
    """The report: see the module docstring."""
    source, spec = stored.source, stored.spec
    src, tgt = {m.number: m for m in source_points(source)}, target_points(stored)
    planned = [n for n in stored.plan.get("points", ()) if n in src]
    pairs = [(src[n], tgt[n]) for n in planned if n in tgt]
    on, metric, task = source.selected_on, spec.main_metric, spec.task
    seeds = stored.plan.get("seeds", [])
    trained = [r for r in stored.records if r.kind == "reseed" and r.state == "COMPLETE"]
    lines = [f"# Transfer: study {source.study}'s front ({source.task}) on {task}", ""]
    learnt = nothing_learned(list(tgt.values()), metric)
    lines += [f"**On {task}: {learnt}**", ""] if learnt else []
    lines += [f"Each point of the front of `{source.study_file}` (selected on {source.task}'s {on} by {source.metric}, "
              f"mean over its seeds) trained again on {task}: the same model ({spec.model}), design, trainer settings "
              f"and learning rate (its own), with fresh seeds {seeds} (no training of the source study used them), "
              f"{task}'s own {_split_text(spec)} and its official dev set. {len(trained)} of "
              f"{len(planned) * len(seeds)} trainings finished"
              f"{_seconds(trained)}. The storage: `{_shown(spec.storage_shown.removeprefix('sqlite:///'))}`.", "",
              *_provenance(stored), "", f"## The points ({source.metric} on {source.task}, {metric} on {task})", "",
              f"Mean ± std over seeds (n). Rank: by the {on} score, 1 the best, among the {len(pairs)} points with "
              f"a score on both tasks.", "",
              f"| # | point | stored | lr | {source.task}: {on} | {source.task}: dev | {task}: {on} | {task}: dev | "
              f"rank {source.task} → {task} | flags on {task} |", "|---|---|---|---|---|---|---|---|---|---|"]
    ranks = _ranks(pairs)
    for n in planned:
        a, b = src[n], tgt.get(n)
        rank = f"{ranks[n][0]} → {ranks[n][1]}" if n in ranks else "-"
        lines.append(f"| {n} | {a.kind} {a.label} | {a.stored_params:,} ({percent(a.stored_fraction)}) | "
                     f"{lr_text(a.learning_rate)} | {seeds_text(a.scores)} | {seeds_text(a.dev)} | "
                     f"{seeds_text(b.scores) if b else 'not trained yet'} | {seeds_text(b.dev) if b else '-'} | "
                     f"{rank} | "
                     f"{'; '.join(b.flags) if b and b.flags else ''} |")
    lines += ["", "## Does the order hold?", ""]
    found = orders(pairs)
    lines += [f"- {source.task}'s {on} against {task}'s {on} (where each selects): {found['selected'].text}.",
              f"- {source.task}'s dev against {task}'s dev: {found['dev'].text}.", "",
              "Means over seeds. The intervals (Fisher's z; Bonett–Wright for ρ, Fieller–Hartley–Pearson for "
              "τ) cover which points were drawn, not the seed noise in each mean; with few points they are wide.", ""]
    lines += _best_lines(stored, src, tgt, on, metric)
    lines += _front_lines(src, tgt, planned, on, metric, task)
    lines += _left_out(stored, src, planned)
    return "\n".join(lines) + "\n"


def _split_text(spec) -> str:
    split = spec.search_split
    if not split:
        return "dev set as the set it selects on (the study selects on dev)"
    cap = f", at most {split['max']:,}" if split.get("max") else ""
    return f"search split ({split['size']} of its training data{cap}, seed {split.get('seed', 0)})"


def _shown(path: str) -> str:
    """A path as the report shows it: relative to the current folder when inside it (a committed report names no
    machine's folders), else as it is."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path


def _seconds(trained: Sequence[TrialRecord]) -> str:
    total = sum(r.seconds or 0.0 for r in trained)
    if not total:
        return ""
    return f" ({total / 60:.1f} min of training)" if total >= 60 else f" ({total:.0f} s of training)"


def _provenance(stored: StoredTransfer) -> list[str]:
    runs = stored.plan.get("runs") or []
    if not runs:
        return []
    lines = ["Runs (each resumes the one before; commit `+dirty`: tracked files had changes the commit does not "
             "hold):"]
    for run in runs:
        items = [f"`{run['command']}`" if run.get("command") else None,
                 f"commit {run['commit']}" if run.get("commit") else None, run.get("date"), run.get("machine")]
        lines.append("- " + ", ".join(i for i in items if i))
    return lines


def _ranks(pairs: Sequence[tuple[Method, Method]]) -> dict[int, tuple[int, int]]:
    """Each point's rank by its mean on each task (1 the best; ties share the better rank)."""
    def ranked(values: dict[int, float]) -> dict[int, int]:
        return {n: 1 + sum(other > v for other in values.values()) for n, v in values.items()}
    first = ranked({a.number: a.mean for a, _ in pairs})
    second = ranked({a.number: b.mean for a, b in pairs})
    return {n: (first[n], second[n]) for n in first}


def _best_lines(stored: StoredTransfer, src: dict[int, Method], tgt: dict[int, Method], on: str,
                metric: str) -> list[str]:
    """Is the source's best point the best on the target, by the same rule (best_point) there?"""
    source, task = stored.source, stored.spec.task
    lines = ["## Is the best point still the best?", ""]
    was = best_point(list(src.values()), max_fraction=source.budget, score=source.metric, on=on)
    if was.point is None:
        return lines + [f"{source.study} recommends no point ({was.why}), so there is no best point to follow.", ""]
    now = best_point(list(tgt.values()), max_fraction=source.budget, score=metric, on=on)
    head = f"On {source.task}, `export --best` names #{was.point.number} {was.point.label} ({was.why})."
    mine = tgt.get(was.point.number)
    if mine is None:
        return lines + [head, f"It has no finished training on {task} yet.", ""]
    ranked = sorted(tgt.values(), key=lambda m: (-m.mean, m.stored_params, m.number))
    head += (f" On {task} it ranks {ranked.index(mine) + 1} of {len(ranked)} on the {on} ({metric} "
             f"{seeds_text(mine.scores)}).")
    if now.point is None:
        return lines + [head, f"On {task}, the same rule recommends nothing: {now.why}.", ""]
    if now.point.number == was.point.number:
        return lines + [head, f"By the same rule on {task} it is still the best ({now.why}).", ""]
    lines += [head, f"By the same rule on {task} the best is another point: #{now.point.number} {now.point.label} "
                    f"({now.why})."]
    if now.point.dev and mine.dev:
        a, b = (dataclasses.replace(m.side(), label=f"#{m.number}") for m in (now.point, mine))
        c = compare(f"#{now.point.number} vs #{mine.number}", a, b)
        interval = c.no_interval or f"95% Welch interval [{c.low:+.4f}, {c.high:+.4f}]: {c.verdict}"
        lines.append(f"On {task}'s dev: {c.a.mean:.4f} against {c.b.mean:.4f}, {c.difference:+.4f} ({interval}). "
                     f"The same seeds chose #{now.point.number} on the {on} and score it on dev here, so its lead is "
                     f"not judged by fresh seeds.")
    return lines + [""]


def _front_lines(src: dict[int, Method], tgt: dict[int, Method], planned: Sequence[int], on: str, metric: str,
                 task: str) -> list[str]:
    """The target's front, drawn from the transferred points alone, and which source front points fall off it."""
    if not tgt:
        return ["## The front on the target", "", "No point has a finished training on the target yet.", ""]
    redrawn = front(list(tgt.values()))
    kept = {m.number for m in redrawn}
    dropped = [f"#{n}" for n in planned if n in tgt and n not in kept]
    at_chance = [f"#{m.number}" for m in tgt.values() if m.chance]
    return ["## The front on the target", "",
            f"Drawn from the transferred points alone ({metric} on {task}'s {on}, mean ± std over the fresh seeds; "
            f"dev beside it; head: {task}'s task head):", "", "```",
            front_table(redrawn, metric, selected_on=on), "```", "",
            f"{len(kept)} of {len(tgt)} transferred points stay on the front"
            + (f"; dominated on {task}: {', '.join(dropped)}" if dropped else "") + ". "
            + (f"At or below a constant answer on {task}: {', '.join(at_chance)}." if at_chance
               else f"No point is at or below a constant answer on {task}."), ""]


def _left_out(stored: StoredTransfer, src: dict[int, Method], planned: Sequence[int]) -> list[str]:
    source = stored.source
    out = [m for m in front(list(src.values())) if m.number not in planned]
    finished = {(r.extra.get("reseed_of"), r.seed) for r in stored.records
                if r.kind == "reseed" and r.state == "COMPLETE"}
    failed = [r for r in stored.records if r.kind == "reseed" and r.state == "FAIL"
              and (r.extra.get("reseed_of"), r.seed) not in finished]  # not trained again since
    if not out and not failed:
        return []
    lines = ["## Left out", ""]
    for m in out:
        why = (f"at or below a constant answer on {source.task}'s {m.record.evaluated_on}"
               if m.record.evaluated_on in m.chance else "not among the points chosen (--max-points)")
        lines.append(f"- #{m.number} {m.label} ({percent(m.stored_fraction)}): {why}")
    lines += [f"- a training of #{r.extra.get('reseed_of')} with seed {r.seed} failed: {r.reason}" for r in failed]
    return lines + [""]
