"""One driver per study: the lease in the storage refuses a second driver while the first is alive, is
taken over from a dead one (its process gone, or silent too long), and tells readers whether a running
trial still has a driver."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import optuna
import pytest

from petl_search.search.optuna_bridge import lease as lease_module
from petl_search.search.optuna_bridge.lease import LEASE_KEY, DriverLease, StudyBusyError, lease_alive
from petl_search.search.optuna_bridge.records import read_records


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


@pytest.fixture
def study(url) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name="leased", storage=url, directions=["maximize", "minimize"])


@pytest.fixture(autouse=True)
def quick(monkeypatch) -> None:
    monkeypatch.setattr(lease_module, "SETTLE_SECONDS", 0.05)


def test_a_second_driver_is_refused_while_the_first_is_alive(study, url) -> None:
    with DriverLease(study):
        with pytest.raises(StudyBusyError, match=rf"study 'leased' is being run by another driver \(pid "
                                                 rf"{os.getpid()} on .*last heartbeat \d+ s ago\); wait for it"):
            DriverLease(optuna.load_study(study_name="leased", storage=url)).acquire()
    with DriverLease(study) as again:  # released: the next driver takes it
        assert study.user_attrs[LEASE_KEY]["id"] == again.lease["id"]
    assert study.user_attrs[LEASE_KEY]["released"]


def test_the_heartbeat_renews_the_lease(study) -> None:
    with DriverLease(study, heartbeat=0.1):
        first = study.user_attrs[LEASE_KEY]["heartbeat"]
        time.sleep(0.5)
        assert study.user_attrs[LEASE_KEY]["heartbeat"] > first


def test_a_dead_drivers_lease_is_taken_over(study) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(gone.stdout)  # a process of this machine that has exited
    held = {"id": "dead", "host": lease_module.socket.gethostname(), "pid": dead_pid, "started": time.time(),
            "heartbeat": time.time()}
    study.set_user_attr(LEASE_KEY, held)
    assert not lease_alive(held)
    with DriverLease(study) as mine:
        assert study.user_attrs[LEASE_KEY]["id"] == mine.lease["id"]


def test_a_silent_driver_elsewhere_is_taken_over_but_a_fresh_one_is_not(study) -> None:
    now = time.time()
    silent = {"id": "far", "host": "another-machine", "pid": 1, "started": now - 600,
              "heartbeat": now - lease_module.STALE_AFTER - 1}
    fresh = {**silent, "heartbeat": now}
    assert not lease_alive(silent) and lease_alive(fresh)
    study.set_user_attr(LEASE_KEY, fresh)
    with pytest.raises(StudyBusyError, match="pid 1 on another-machine"):
        DriverLease(study).acquire()
    study.set_user_attr(LEASE_KEY, silent)
    with DriverLease(study):
        pass


def test_a_running_trial_reads_as_interrupted_once_its_driver_is_gone(study) -> None:
    lease = DriverLease(study).acquire()
    trial = study.ask()
    assert [r.state for r in read_records(study)] == ["RUNNING"]
    lease._stop.set()  # the driver dies without releasing: its heartbeat stops
    lease._thread.join()
    study.set_user_attr(LEASE_KEY, {**study.user_attrs[LEASE_KEY], "heartbeat": time.time() - 3600})
    assert [r.state for r in read_records(study)] == ["INTERRUPTED"]
    assert trial.number == 0
