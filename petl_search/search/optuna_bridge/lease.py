"""One driver per study: a lease kept in the study's own storage and renewed by a heartbeat.

A driver (`search`, the inline runner, `reseed`) takes the lease before it writes and renews it every
few seconds while it runs. A second driver on the same study is refused while the lease is alive, and
takes it over from a dead one: a lease whose heartbeat is older than `STALE_AFTER` seconds, or whose
process is gone from this very machine. Why a lease and not Optuna's trial heartbeats
(`fail_stale_trials`): a driver holds no running trial while it starts, between trials and at the end,
so a trial heartbeat cannot tell a live driver from a dead one; the lease can.

Readers (`status`, reports) use `lease_alive` to call a running trial of a dead driver `interrupted`.
"""
from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from typing import Any, Mapping

import optuna

from ...core.errors import PETLError

LEASE_KEY = "driver"
HEARTBEAT_SECONDS = 5.0
STALE_AFTER = 30.0  # six missed heartbeats
SETTLE_SECONDS = 0.5  # after writing a lease, how long to wait before checking that it is still ours


class StudyBusyError(PETLError):
    """Another live driver is running this study."""


def lease_alive(lease: Mapping[str, Any] | None, *, now: float | None = None) -> bool:
    """Whether the driver that wrote `lease` may still be running."""
    if not lease or lease.get("released"):
        return False
    now = time.time() if now is None else now
    if now - float(lease.get("heartbeat", 0)) > STALE_AFTER:
        return False
    if lease.get("host") == socket.gethostname():  # on this machine we can ask the process table
        try:
            os.kill(int(lease["pid"]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, another user's
            return True
    return True


def describe(lease: Mapping[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    return (f"pid {lease.get('pid')} on {lease.get('host')}, started {time.strftime('%H:%M:%S', time.localtime(lease.get('started', 0)))}, "
            f"last heartbeat {now - float(lease.get('heartbeat', 0)):.0f} s ago")


class DriverLease:
    """The lease of one driver on one study; use as a context manager around everything the driver writes."""

    def __init__(self, study: optuna.Study, *, heartbeat: float = HEARTBEAT_SECONDS) -> None:
        self.study, self.interval = study, heartbeat
        self.lease = {"id": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(),
                      "started": time.time(), "heartbeat": time.time()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self) -> dict[str, Any] | None:
        return self.study.user_attrs.get(LEASE_KEY)

    def acquire(self) -> "DriverLease":
        held = self.current()
        if lease_alive(held) and held.get("id") != self.lease["id"]:
            raise self._busy(held)
        self._write()
        time.sleep(SETTLE_SECONDS)  # a driver that read the same dead lease has written by now
        held = self.current()
        if not held or held.get("id") != self.lease["id"]:
            raise self._busy(held or {})
        self._thread = threading.Thread(target=self._beat, name="petl-search-lease", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        held = self.current()
        if held and held.get("id") == self.lease["id"]:
            self.study.set_user_attr(LEASE_KEY, {**self.lease, "released": time.time()})

    def __enter__(self) -> "DriverLease":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def _write(self) -> None:
        self.lease["heartbeat"] = time.time()
        self.study.set_user_attr(LEASE_KEY, dict(self.lease))

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._write()
            except Exception:  # a busy database (SQLite locked): the next beat tries again, the thread lives
                continue

    def _busy(self, held: Mapping[str, Any]) -> StudyBusyError:
        who = describe(held) if held else "it took the study at the same moment as this one"
        return StudyBusyError(
            f"study {self.study.study_name!r} is being run by another driver ({who}); wait for it to finish or "
            f"stop it: a driver whose process is gone, or that has been silent for {STALE_AFTER:.0f} s, is taken "
            f"over by the next command")
