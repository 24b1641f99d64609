"""Did the sampler's model choose the trained points, or the random start-up and fallbacks?

A model-based sampler (TPE, GP) proposes randomly during its start-up and, after a run of repeats, once
as a fallback (samplers.SearchStartup). A study whose trained points were mostly random proposals must
say so: its winners are then random draws, not the model's choices. Each search trial records who
proposed it (`proposed_by`: startup | model | fallback | random); trials stored before that was recorded
have no source and are counted apart, not guessed.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable

TARGET_MODEL_SHARE = 0.7  # issue 20: at least 70% of the trained points after the start-up


@dataclass(frozen=True)
class ProposalShares:
    """Trained search points (completed or stopped early) by who proposed them."""

    counts: dict[str, int]

    @property
    def after_startup(self) -> int:
        return sum(n for source, n in self.counts.items() if source in ("model", "fallback"))

    @property
    def model_share(self) -> float | None:
        """The model's share of the trained points proposed after the start-up; None when there are none
        (or the study is random search, whose points are all random by design)."""
        return self.counts.get("model", 0) / self.after_startup if self.after_startup else None

    def sentence(self) -> str:
        parts = ", ".join(f"{source} {n}" for source, n in sorted(self.counts.items()))
        share = self.model_share
        if share is None:
            return f"trained search points by proposer: {parts or 'none'}"
        verdict = "meets" if share >= TARGET_MODEL_SHARE else "below"
        return (f"trained search points by proposer: {parts}; the model proposed {share:.0%} of those after the "
                f"start-up ({verdict} the {TARGET_MODEL_SHARE:.0%} target)")


def proposal_shares(records: Iterable) -> ProposalShares:
    """Count trained search trials (records from optuna_bridge.records) by their `proposed_by`."""
    counts: Counter[str] = Counter()
    for r in records:
        if r.kind == "search" and r.state in ("COMPLETE", "PRUNED"):
            counts[r.proposed_by or "not recorded"] += 1
    return ProposalShares(dict(counts))
