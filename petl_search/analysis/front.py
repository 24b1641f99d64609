"""A study's fronts and claims, as pure functions of its trial records.

A trained design point is judged over its seeds (`Method`): a baseline over every seed it was trained
with, a search point over its own trial and its reseeds. The front is drawn on the score the study
selected on (the search split, unless the study selects on dev) and by stored parameters; the official
dev score sits beside it and is what a claim quotes:

    a search point beats a baseline  when it is on the front, stores no more parameters, has been
                                     trained with more than one seed (its reseeds), and its dev mean
                                     is at least the baseline's, with the Welch interval given.

So a point is selected on numbers the claim does not use (no winner's curse), and one lucky seed is
not a claim. Nothing here chooses by a dev score: dev is only quoted (tests/test_dev_blind.py). Each point
also carries its task head's parameter count (trained and exported with it, outside the Δh budget) and the
learning rate it trained at (`lr`: part of the design). A point at or below what a constant answer scores
claims nothing. Also here: hypervolume, the front table, and `best_point`, the one answer to "what should I
export" that `export --best`, `status`, the report and the dashboard all give. No torch, no Ray.
"""
from __future__ import annotations

import dataclasses
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from ..core.params import percent
from ..search.optuna_bridge.pareto import hypervolume_2d, pareto_front
from ..search.optuna_bridge.records import TrialRecord
from .comparison import Comparison, Side, compare, spread


@dataclass(frozen=True)
class Method:
    """One trained design point over its seeds."""

    record: TrialRecord  # the representative trial: a search point's own, a baseline's first seed
    scores: tuple[float, ...]  # the selected score per seed, on the set the study selects on
    dev: tuple[float, ...] = ()  # the same score on the official dev set, per seed that has it
    seeds: tuple[int | None, ...] = ()
    flags: tuple[str, ...] = field(default=())
    # every score the runs recorded, mean over seeds: {name: (on the selected set, on dev or None)}
    all_scores: Mapping[str, tuple[float, float | None]] = field(default_factory=dict)
    head_params: int | None = None  # the task head trained with it (not in the budget), as its trials recorded
    # the sets ("search split", "dev") on which its mean is at or below what a constant answer scores there,
    # with that constant: such a point learnt nothing usable, claims nothing and is never recommended
    chance: Mapping[str, float] = field(default_factory=dict)

    @property
    def number(self) -> int:
        return self.record.number

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def label(self) -> str:
        return self.record.label

    @property
    def stored_params(self) -> int:
        return self.record.stored_params

    @property
    def learning_rate(self) -> float | None:
        """The rate its trials trained at (a point's reseeds train at its rate; a baseline's seeds at one)."""
        return self.record.learning_rate

    @property
    def stored_fraction(self) -> float:
        return self.record.stored_fraction

    @property
    def mean(self) -> float:
        return statistics.mean(self.scores)

    @property
    def std(self) -> float:
        return spread(self.scores)

    @property
    def dev_mean(self) -> float | None:
        return statistics.mean(self.dev) if self.dev else None

    @property
    def dev_std(self) -> float:
        return spread(self.dev)

    def side(self, *, on_dev: bool = True) -> Side:
        return Side(f"#{self.number} {self.label}" if self.kind == "search" else self.label,
                    self.dev if on_dev else self.scores, 100 * self.stored_fraction, self.head_params)


def dev_score(record: TrialRecord, score: str) -> float | None:
    """The record's `score` on the official dev set (None when it has none): a number to quote."""
    if record.evaluated_on == "dev":  # a study that selects on dev: the two are the same number
        return record.metric
    return record.dev_scores.get(score)


def study_head_params(records: Iterable[TrialRecord]) -> int | None:
    """The task head's parameter count the study's trials recorded (the most common one: a study is one
    model and one task, so one head); None when no trial recorded one."""
    found = Counter(r.head_params for r in records if r.head_params is not None)
    return found.most_common(1)[0][0] if found else None


def methods(records: Iterable[TrialRecord], score: str,
            references: Mapping[str, Mapping[str, float] | None] | None = None) -> list[Method]:
    """Every trained point over its seeds: baselines grouped by label and rate, each point with its reseeds.
    `references` (what a constant answer scores per set, stored by the study) flag points at or below it.
    A point's head count is its trials' own, else the study's (`study_head_params`)."""
    records = list(records)
    study_head = study_head_params(records)
    reseeds: dict[int, list[TrialRecord]] = {}
    for r in records:
        if r.kind == "reseed" and r.state == "COMPLETE" and r.metric is not None:
            reseeds.setdefault(r.extra.get("reseed_of"), []).append(r)
    groups: dict[str, list[TrialRecord]] = {}
    for r in records:
        if r.scored:
            # a baseline's seeds at one rate are one point; a tuned baseline at another rate is another
            key = f"baseline:{r.label}@{r.learning_rate}" if r.kind == "baseline" else f"search:{r.number}"
            groups.setdefault(key, []).append(r)
    out = []
    for key, group in groups.items():
        runs = group + [again for r in group for again in reseeds.get(r.number, [])]
        dev = tuple(d for d in (dev_score(r, score) for r in runs) if d is not None)
        head = next((r.head_params for r in runs if r.head_params is not None), study_head)
        method = Method(group[0], tuple(r.metric for r in runs), dev, tuple(r.seed for r in runs),
                        all_scores=_all_scores(runs), head_params=head)
        out.append(_flagged(method, score, references or {}))
    return sorted(out, key=lambda m: m.number)


def _all_scores(runs: Sequence[TrialRecord]) -> dict[str, tuple[float, float | None]]:
    """Each score the runs recorded, averaged over them, on the set they were judged on and on dev."""
    names = sorted({name for r in runs for name in r.scores})
    out = {}
    for name in names:
        selected = [r.scores[name] for r in runs if name in r.scores]
        dev = [r.scores[name] if r.evaluated_on == "dev" else r.dev_scores[name] for r in runs
               if name in (r.scores if r.evaluated_on == "dev" else r.dev_scores)]
        out[name] = (statistics.mean(selected), statistics.mean(dev) if dev else None)
    return out


def other_scores(method: Method, score: str) -> str:
    """The scores besides the selected one, as text: 'spearmanr 0.8123 (dev 0.8011), ...'."""
    return ", ".join(f"{name} {sel:.4f}" + (f" (dev {dev:.4f})" if dev is not None else "")
                     for name, (sel, dev) in method.all_scores.items() if name != score)


def _flagged(method: Method, score: str, references: Mapping[str, Mapping[str, float] | None]) -> Method:
    chance = {}
    selected = references.get(method.record.evaluated_on) or {}
    if score in selected and method.mean <= selected[score]:
        chance[method.record.evaluated_on] = selected[score]
    dev = references.get("dev") or {}
    if score in dev and method.dev_mean is not None and method.dev_mean <= dev[score] \
            and method.record.evaluated_on != "dev":
        chance["dev"] = dev[score]
    flags = tuple(f"at or below a constant answer ({value:.4f}) on {'dev' if on == 'dev' else 'the ' + on}"
                  for on, value in chance.items())
    return dataclasses.replace(method, flags=flags, chance=chance)


def dev_view(records: Iterable[TrialRecord], score: str) -> list[TrialRecord]:
    """The records as they score on the official dev set: what a report quotes about the points it did
    not select (baselines, dimension effects). A trained record without a dev score is left unscored."""
    out = []
    for r in records:
        if r.metric is None or r.evaluated_on == "dev":
            out.append(r)
        else:
            out.append(dataclasses.replace(r, metric=r.dev_scores.get(score), evaluated_on="dev"))
    return out


def front(points: Iterable[Method], *, kinds: Sequence[str] = ("search", "baseline")) -> list[Method]:
    """The points of the given kinds that no other one dominates on (mean score, stored parameters)."""
    pool = [m for m in points if m.kind in kinds]
    keep = pareto_front([(m.mean, -float(m.stored_params)) for m in pool])
    return sorted((pool[i] for i in keep), key=lambda m: (m.stored_params, -m.mean))


def best_baseline(points: Iterable[Method]) -> Method | None:
    """The baseline with the highest mean score on the set the study selects on (fewest parameters on ties)."""
    return max((m for m in points if m.kind == "baseline"), key=lambda m: (m.mean, -m.stored_params), default=None)


@dataclass(frozen=True)
class Claim:
    point: Method
    against: Method
    comparison: Comparison | None  # on dev; None when a side has no dev scores

    @property
    def holds(self) -> bool:
        """Reseeded, both sides above a constant answer on dev, and its dev mean at least the baseline's."""
        return (len(self.point.scores) > 1 and self.comparison is not None and self.chance_note is None
                and self.comparison.difference >= 0)

    @property
    def chance_note(self) -> str | None:
        """Why no claim is made when a side learnt nothing: beating (or trailing) a point at or below a
        constant answer on dev says nothing about either design."""
        for side, who in ((self.against, f"the baseline {self.against.label}"), (self.point, f"#{self.point.number}")):
            if "dev" in side.chance:
                return f"no claim: {who} does not beat a constant answer on dev ({side.chance['dev']:.4f})"
        return None

    @property
    def verdict(self) -> str:
        """The answer in words: beats it (beyond seed noise or within it), ties it, below it, or why there
        is none; without an interval (too few seeds, or no spread on either side) never 'beyond' or 'within'."""
        c = self.comparison
        if c is None:
            return "no dev score to compare"
        if self.chance_note is not None:
            return self.chance_note
        if len(self.point.scores) < 2:
            # under every one of the baseline's seeds: its seed spread says a second seed would not lift it there
            if len(c.b.scores) > 1 and c.a.mean < min(c.b.scores):
                return f"below it: its one seed scores under every seed of the baseline ({len(c.b.scores)})"
            return "needs reseeds to claim anything (one seed)"
        if not self.holds:
            return "below it"
        if c.difference == 0:
            return f"ties it: equal dev means{'; ' + c.no_interval if c.no_interval else ', within seed noise'}"
        if c.no_interval:
            return f"beats it on the mean; {c.no_interval}"
        return "beats it beyond seed noise" if c.low > 0 else "beats it, within seed noise"


def claims(points: Sequence[Method], reference: Method) -> list[Claim]:
    """The front's search points with no more stored parameters than `reference`, each compared with it
    on the official dev set (mean over seeds, Welch interval); `Claim.holds` says which beat it."""
    out = []
    for m in front(points):
        if m.kind != "search" or m.stored_params > reference.stored_params:
            continue
        comparison = compare(f"{m.label} vs {reference.label}", m.side(), reference.side()) \
            if m.dev and reference.dev else None
        out.append(Claim(m, reference, comparison))
    return out


def study_hypervolume(records: Iterable[TrialRecord], *, budget_fraction: float, metric_floor: float = 0.0,
                      kinds: Sequence[str] = ("search",), on_dev: bool = False, score: str | None = None) -> float:
    """Hypervolume of (score, 1 - stored/budget) over single trials: reference (metric_floor, 0), so a
    budget-filling point with the score's floor adds nothing and the best possible value is (1 - floor).
    on_dev: the official dev score (`score` names it) of the trials that have one."""
    points = []
    for r in records:
        if not (r.scored and r.kind in kinds and r.stored_fraction is not None):
            continue
        value = dev_score(r, score or "") if on_dev else r.metric
        if value is not None:
            points.append((value, 1.0 - r.stored_fraction / budget_fraction))
    return hypervolume_2d(points, (metric_floor, 0.0))


def front_table(points: Sequence[Method], score: str, *, selected_on: str = "search split") -> str:
    """A plain-text table of points (usually a front), one per line: the selected score (mean ± std over
    its seeds), the dev score beside it, stored parameters, the task head's parameters (trained and
    exported with the point, not in the budget), the learning rate it trained at, the design point and any
    flag."""
    selected, on_dev = f"{score} ({selected_on})", f"{score} (dev)"
    wide, dev_wide = max(22, len(selected)), max(18, len(on_dev))  # a long score name widens its column
    header = (f"{'trial':>5}  {'kind':<8}  {'seeds':>5}  {selected:>{wide}}  {on_dev:>{dev_wide}}  "
              f"{'stored':>10}  {'% backbone':>10}  {'head':>8}  {'lr':>8}  design point")
    lines = [header]
    for m in points:
        dev = f"{m.dev_mean:.4f} ± {m.dev_std:.4f}" if m.dev else "-"
        others = other_scores(m, score)
        lines.append(f"{m.number:>5}  {m.kind:<8}  {len(m.scores):>5}  {f'{m.mean:.4f} ± {m.std:.4f}':>{wide}}  "
                     f"{dev:>{dev_wide}}  {m.stored_params:>10,}  {100 * m.stored_fraction:>9.3f}%  "
                     f"{head_text(m.head_params):>8}  {lr_text(m.learning_rate):>8}  {m.label}"
                     + (f"  [{others}]" if others else "") + ("".join(f"  [{flag}]" for flag in m.flags)))
    return "\n".join(lines)


def head_text(head_params: int | None) -> str:
    """A head's parameter count as printed beside a point ('-' when its trials recorded none)."""
    return "-" if head_params is None else f"{head_params:,}"


def lr_text(rate: float | None) -> str:
    """A learning rate as printed beside a point, to 3 significant digits ('3.16e-04'); '-' when unknown
    (a trial stored before trials recorded their rate, read without its study: `fill_learning_rates`)."""
    return "-" if rate is None else f"{rate:.2e}"


@dataclass(frozen=True)
class Pick:
    """The answer to "what should I export": a point, or none, and why, in words."""

    point: Method | None
    why: str


TRY_INSTEAD = ("train longer (train.max_steps), give the learning rate a range (train.learning_rate: {low, high}) "
               "or another value, or enlarge the search split")


def best_point(points: Iterable[Method], *, max_fraction: float, score: str, on: str) -> Pick:
    """The one rule behind `export --best`, `status`, the report and the dashboard. Of the front's points
    (search and baselines, each at its mean over seeds) storing at most `max_fraction` of the backbone and
    scoring above a constant answer on the set the search selects on (`on`), those trained with several
    seeds if any (a mean over seeds before one seed's, maybe lucky, score), the one with the best mean
    `score` there; fewest parameters, then the earliest, on ties. Dev never chooses; it can only veto: a pick at or below a constant answer
    on dev is not recommended (taking the next one instead would be choosing on dev)."""
    trained = [m for m in points if m.kind in ("search", "baseline")]
    if not trained:
        return Pick(None, "the study has no completed trials yet")
    within = [m for m in front(trained) if m.stored_fraction <= max_fraction]
    if not within:
        smallest = min(trained, key=lambda m: m.stored_fraction)
        return Pick(None, f"no completed trial stores at most {percent(max_fraction)} of the backbone (the smallest, "
                          f"trial {smallest.number}, stores {percent(smallest.stored_fraction)})")
    learned = [m for m in within if m.record.evaluated_on not in m.chance]
    if not learned:
        constant = within[0].chance[within[0].record.evaluated_on]
        return Pick(None, f"nothing beat a constant answer: no front point within {percent(max_fraction)} scores "
                          f"above what a constant answer scores on the {on} ({score} {constant:.4f}); {TRY_INSTEAD}")
    seeded = [m for m in learned if len(m.scores) > 1]
    chosen = max(seeded or learned, key=lambda m: (m.mean, -m.stored_params, -m.number))
    if "dev" in chosen.chance:
        return Pick(None, f"#{chosen.number} {chosen.label}, the best on the {on}, does not beat a constant answer "
                          f"on dev ({score} {chosen.dev_mean:.4f} against {chosen.chance['dev']:.4f}): nothing to "
                          f"recommend; {TRY_INSTEAD}")
    seeds = f"{len(chosen.scores)} seed{'s' if len(chosen.scores) != 1 else ''}"
    return Pick(chosen, f"the best {score} on the {on} ({chosen.mean:.4f} over {seeds}) among the front's points "
                        f"within {percent(max_fraction)}{' trained with several seeds' if seeded else ''}")


def nothing_learned(points: Iterable[Method], score: str) -> str | None:
    """What a study says first when none of its trained points beats a constant answer on dev (or, without
    dev scores, on the set it selects on): it learnt nothing, and what to try. None when something learnt."""
    trained = [m for m in points if m.kind in ("search", "baseline")]
    if not trained or not all(m.chance for m in trained):
        return None
    where = "dev" if all("dev" in m.chance for m in trained) else "the set it was judged on"
    constant = next(iter(trained[0].chance.values()))
    return (f"Nothing beat a constant answer: no trained point scores above what a constant answer scores on "
            f"{where} ({score} {constant:.4f}), so nothing learnt: no claim is made and nothing is recommended; "
            f"{TRY_INSTEAD}.")
