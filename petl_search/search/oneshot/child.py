"""Run one heavy stage of the driver in a child process, so that every byte it took goes back when it ends.

Why: a one-shot study's stages 1-2 load the model and the supernet. Run in the driver, they left it holding
6.2 GB (MPNet-base) after they returned, because the allocator keeps what PyTorch frees; with Ray's
workers training beside it, that was enough for Ray's out-of-memory killer to stop the study. A child
hands all of it back when it exits. It is spawned, not forked: the driver has threads (the lease's
heartbeat, PyTorch's pools) that a fork would copy half-way.

The child's progress lines are relayed to the driver's `progress` as they come; its result is returned;
its error is raised in the driver (as itself when it pickles, else as a ChildError that carries the
child's traceback); a child that dies without a word (killed, out of memory) is a ChildError naming its
exit code. If the driver is interrupted, the child is stopped too: the stage resumes from its storage.
"""
from __future__ import annotations

import multiprocessing
import pickle
import traceback
from typing import Any, Callable

STOP_SECONDS = 10.0  # how long an interrupted child gets to stop on its own before it is terminated


class ChildError(RuntimeError):
    """A stage run in a child process failed with an error that could not travel back as itself, or the
    child died without reporting."""


def run_in_child(target: Callable[..., Any], *args: Any, progress: Callable[[str], None],
                 name: str = "petl-search-stage") -> Any:
    """target(*args, progress=...) in a spawned child; its return value (which must pickle). target must be
    importable by name (a module-level function), as spawn requires."""
    context = multiprocessing.get_context("spawn")
    # a pipe, not a Queue: a send is written before it returns, so a child killed right after a line has
    # still delivered it, and the pipe's end tells the driver that the child is gone
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(sender, target, args), name=name, daemon=True)
    child.start()
    sender.close()  # the child holds the only sending end now
    try:
        while True:
            try:
                kind, payload = receiver.recv()
            except EOFError:
                child.join()
                raise ChildError(f"{name} (pid {child.pid}) exited with code {child.exitcode} without "
                                 f"finishing (killed, or out of memory?); run the same command to "
                                 f"resume") from None
            if kind == "progress":
                progress(payload)
            elif kind == "result":
                return payload
            else:  # "error"
                raise payload
    finally:
        receiver.close()
        child.join(timeout=STOP_SECONDS)
        if child.is_alive():
            child.terminate()
            child.join()


def _child_main(sender: Any, target: Callable[..., Any], args: tuple) -> None:
    def progress(line: str) -> None:
        sender.send(("progress", line))

    try:
        sender.send(("result", target(*args, progress=progress)))
    except KeyboardInterrupt:  # the terminal interrupted the driver too; it decides what to say
        pass
    except BaseException as error:  # noqa: BLE001 -- every failure must reach the driver
        sender.send(("error", _portable(error)))


def _portable(error: BaseException) -> BaseException:
    """The error itself when it survives pickling (a PETLError does), else a ChildError with its traceback."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 -- any pickling failure means: send text instead
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        return ChildError(f"the child stage failed:\n{text}")
