"""A stage run in a child process (search/oneshot/child.py): its lines reach the driver in order, its result comes
back, its error is raised in the driver as itself (or with its traceback), a child that dies without a word
is an error naming its exit code, and the work really runs in another process."""
from __future__ import annotations

import os
import signal

import pytest

from petl_search.core.errors import PETLError
from petl_search.search.oneshot.child import ChildError, run_in_child


# spawn imports the target by name in the child: these must be module-level functions


def counts_to(n: int, *, progress) -> dict:
    for i in range(n):
        progress(f"line {i}")
    return {"n": n, "pid": os.getpid()}


def refuses(*, progress) -> None:
    progress("about to fail")
    raise PETLError("bad input, said in the child")


class Unpicklable(Exception):
    def __init__(self, message: str, handle) -> None:  # two arguments: pickling replays only one
        super().__init__(message)
        self.handle = handle


def fails_oddly(*, progress) -> None:
    raise Unpicklable("odd failure in the child", lambda: None)


def dies(*, progress) -> None:
    progress("dying")
    os.kill(os.getpid(), signal.SIGKILL)


def test_the_child_relays_its_lines_in_order_and_returns_its_result_from_another_process() -> None:
    lines: list[str] = []
    result = run_in_child(counts_to, 5, progress=lines.append)
    assert lines == [f"line {i}" for i in range(5)]
    assert result["n"] == 5 and result["pid"] != os.getpid()


def test_a_petl_error_in_the_child_is_raised_in_the_driver_as_itself() -> None:
    lines: list[str] = []
    with pytest.raises(PETLError, match="bad input, said in the child"):
        run_in_child(refuses, progress=lines.append)
    assert lines == ["about to fail"]


def test_an_error_that_cannot_travel_comes_back_with_the_childs_traceback() -> None:
    with pytest.raises(ChildError, match="(?s)in fails_oddly.*Unpicklable: odd failure in the child"):
        run_in_child(fails_oddly, progress=lambda line: None)


def test_a_child_killed_without_a_word_is_an_error_that_names_its_exit_code() -> None:
    lines: list[str] = []
    with pytest.raises(ChildError, match=f"exited with code {-signal.SIGKILL} without finishing"):
        run_in_child(dies, progress=lines.append)
    assert lines == ["dying"]
