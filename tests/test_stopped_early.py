"""How a search that ended with work left says so: a run its time budget stopped returns (a contest goes on
in pieces), a run the user stopped raises Interrupted (the CLI exits 130, not 0). No Ray run: the decision
and the words are pure functions of what run_study measures."""
from __future__ import annotations

import pytest

from petl_search.core.errors import Interrupted, PETLError
from petl_search.search.runner.ray_runner import INTERRUPTED, TIME_BUDGET, stop_message, stopped_early


@pytest.mark.parametrize("left, elapsed, time_budget_s, why", [
    (0, 12.0, None, None),  # finished
    (0, 3600.5, 3600.0, None),  # finished just as the budget ran out: nothing to say
    (7, 12.0, None, INTERRUPTED),  # Ctrl-C, no budget
    (7, 1800.0, 3600.0, INTERRUPTED),  # Ctrl-C half way through a budget
    (7, 3600.0, 3600.0, TIME_BUDGET),  # Ray's budget clock starts after ours: a budget stop lasts it here
    (7, 3612.3, 3600.0, TIME_BUDGET),
])
def test_a_run_stopped_by_its_time_budget_is_told_from_one_the_user_stopped(left, elapsed, time_budget_s, why):
    assert stopped_early(left, elapsed, time_budget_s) == why


def test_the_stop_says_why_what_is_left_and_how_to_go_on() -> None:
    left = "6 search trials, 0 baselines, up to 30 confirmations"
    assert stop_message("q", INTERRUPTED, None, left, [12, 13]) == (
        "study q interrupted with trials #12, #13 cut short (run again first) and 6 search trials, 0 "
        "baselines, up to 30 confirmations still to run: run the same command to resume (not Ray's "
        "Tuner.restore: the study's storage is what resumes)")
    assert stop_message("q", TIME_BUDGET, 3600.0, left, []).startswith(
        "the time budget (3600 s) ended study q with 6 search trials, 0 baselines, up to 30 confirmations still "
        "to run: run the same command")
    assert "with trial #4 cut short (run again first) and 6" in stop_message("q", TIME_BUDGET, 60.0, left, [4])
    assert issubclass(Interrupted, PETLError)  # the CLI prints it in one line, as any user-facing error
