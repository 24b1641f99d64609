"""A study on a real PostgreSQL server, run the way docs/search.md's "A shared database: PostgreSQL" says, line
for line: the role and database made by the recipe's commands (conftest_postgres.py), the password in a password
file, the URL given with --storage. The driver runs on local Ray in its own process; while it runs, this process
reads the study (`status`) and is refused as a second driver by the lease, which lives in PostgreSQL; the driver
is killed with SIGKILL and the same command resumes it to exactly n_trials; `status`, `dashboard` and
`optuna-dashboard` then read it from fresh processes that know only the URL.

The server is started for this module (initdb + pg_ctl in /tmp, a free port). Where none can be started the
tests are skipped with the reason, unless PETL_REQUIRE_POSTGRES=1 (CI sets it), which makes that a failure.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from petl_search.cli import main
from petl_search.core.config import PETLConfig
from petl_search.search.optuna_bridge.lease import LEASE_KEY

from conftest_postgres import PASSWORD, REQUIRE, ROLE, Unavailable, free_port, start_server
from test_search import write_study

NAME, N_TRIALS = "shared", 4
CLI = [sys.executable, "-m", "petl_search.cli"]


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A running server whose study URL works in this process and in every process it starts."""
    try:
        server = start_server()
    except Unavailable as exc:
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{REQUIRE}=1, but no PostgreSQL server could be started: {exc}", pytrace=False)
        pytest.skip(f"no PostgreSQL server could be started ({exc}); {REQUIRE}=1 makes this a failure")
    try:
        with pytest.MonkeyPatch.context() as patch:  # the recipe's ~/.pgpass, for this process and its children
            patch.setenv("PGPASSFILE", str(server.write_pgpass(tmp_path_factory.mktemp("pg") / "pgpass")))
            yield server
    finally:
        server.stop()


def query(url: str, sql: str, **params) -> list[tuple]:
    """Rows of `sql` read straight from the database (not through Optuna); [] before Optuna made its tables."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sqlalchemy.text(sql), params)]
    except sqlalchemy.exc.ProgrammingError:  # no such table yet
        return []
    finally:
        engine.dispose()


def lease_row(url: str) -> dict | None:
    rows = query(url, "SELECT a.value_json FROM study_user_attributes a JOIN studies s ON a.study_id = s.study_id "
                      "WHERE s.study_name = :name AND a.key = :key", name=NAME, key=LEASE_KEY)
    return json.loads(rows[0][0]) if rows else None


def wait_until_mid_study(process: subprocess.Popen, url: str, log: Path) -> None:
    """Until the driver has finished a search trial and runs one that cannot finish before the kill (younger
    than half the shortest finished one: measured, so a slow machine stays in the window)."""
    deadline = time.time() + 600  # generous: a loaded machine starts Ray and trains slowly
    while time.time() < deadline:
        time.sleep(0.5)
        if process.poll() is not None:
            pytest.fail(f"the driver ended before the kill: {log.read_text()[-3000:]}")
        if not query(url, "SELECT 1 FROM studies WHERE study_name = :name", name=NAME):
            continue  # open the study only once the driver made it: not racing it to make Optuna's tables
        trials = optuna.load_study(study_name=NAME, storage=url).get_trials()
        durations = [t.datetime_complete.timestamp() - t.user_attrs["started"] for t in trials
                     if t.state == optuna.trial.TrialState.COMPLETE]
        if durations and any(t.state == optuna.trial.TrialState.RUNNING and t.user_attrs.get("kind") == "search"
                             and time.time() - t.user_attrs.get("started", 0) < min(durations) / 2 for t in trials):
            return
    pytest.fail("the study never had a finished and a running trial at once")


def petl_search(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    """`petl-search ARGS` in a fresh process: it knows the study only by the URL and the password file."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_a_postgresql_url_without_its_driver_is_one_line_naming_the_pip_command(toy, monkeypatch, capsys) -> None:
    path = write_study(toy, NAME)
    for module in ("psycopg", "psycopg2"):  # SQLAlchemy 2.1 reads postgresql:// with psycopg, 2.0 with psycopg2
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    assert main(["status", str(path), "--storage", "postgresql://petl:s3cret@dbhost/petl"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("petl-search: error: storage postgresql://petl:***@dbhost/petl needs the Python module")
    assert err.count("\n") == 1 and 'pip install "petl-search[postgres]"' in err and "s3cret" not in err


def test_a_study_on_postgresql_is_read_elsewhere_leased_killed_and_resumed(toy, postgres, tmp_path, capsys) -> None:
    url = postgres.url
    path = write_study(toy, NAME, n_trials=N_TRIALS, baselines=[], early_stopping=None,
                       train={"max_steps": 160, "eval_every": 80, "batch_size": 16, "learning_rate": 0.01})
    # the drivers are given the password in the URL, as Optuna allows; it is shown and stored masked
    search = ["search", str(path), "--storage", url.replace(f"//{ROLE}@", f"//{ROLE}:{PASSWORD}@")]
    log = tmp_path / "driver.log"
    with log.open("w") as out:  # a file, not a pipe that Ray's output could fill
        driver = subprocess.Popen([*CLI, *search], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_mid_study(driver, url, log)
        lease = lease_row(url)  # the lease is a row of the PostgreSQL database, renewed by the live driver
        assert lease and lease["pid"] == driver.pid and not lease.get("released")
        capsys.readouterr()
        assert main(search) == 2  # a second driver, from this process, on the same storage
        assert f"is being run by another driver (pid {driver.pid} on " in capsys.readouterr().err
        assert main(["status", str(path), "--storage", url]) == 0  # read while the driver runs
        assert "running now: #" in capsys.readouterr().out
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and everything it started (Ray), at once
        driver.wait()
    before = {t.number: t for t in optuna.load_study(study_name=NAME, storage=url).get_trials()}
    finished_before = {n for n, t in before.items() if t.state == optuna.trial.TrialState.COMPLETE}
    running_before = sorted(n for n, t in before.items() if t.state == optuna.trial.TrialState.RUNNING)
    assert finished_before and running_before

    status = petl_search("status", str(path), "--storage", url)  # another process, after the kill
    assert status.returncode == 0, status.stderr
    assert "interrupted (their driver is gone" in status.stdout and "running now" not in status.stdout

    port = free_port()  # optuna-dashboard, as a reader on another machine runs it: the URL alone
    served = subprocess.Popen([str(Path(sys.executable).parent / "optuna-dashboard"), url, "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        resumed_log = tmp_path / "resumed.log"
        with resumed_log.open("w") as out:  # the same command again: the dead driver's lease is taken over
            resumed = subprocess.Popen([*CLI, *search], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            studies = fetch(f"http://127.0.0.1:{port}/api/studies", served)["study_summaries"]  # while it runs
            mine = next(s for s in studies if s["study_name"] == NAME)
            assert resumed.wait(timeout=600) == 0, resumed_log.read_text()[-3000:]
        finally:
            if resumed.poll() is None:
                os.killpg(resumed.pid, signal.SIGKILL)
                resumed.wait()
        assert f"resuming: trials {running_before} were interrupted" in resumed_log.read_text()
        for text in (log.read_text(), resumed_log.read_text()):
            assert f"storage {url.replace(f'//{ROLE}@', f'//{ROLE}:***@')}" in text and PASSWORD not in text
        after = {t.number: t for t in optuna.load_study(study_name=NAME, storage=url).get_trials()}
        detail = fetch(f"http://127.0.0.1:{port}/api/studies/{mine['study_id']}", served)  # after it ended
        assert [t["number"] for t in detail["trials"]] == sorted(after)
    finally:
        served.terminate()
        served.wait(timeout=30)
    for n in finished_before:  # nothing finished was lost or told again
        assert (after[n].state, after[n].values) == (before[n].state, before[n].values)
    for n in running_before:
        assert after[n].state == optuna.trial.TrialState.FAIL and after[n].user_attrs["interrupted"]
    counted = [t for t in after.values() if t.user_attrs.get("kind") == "search" and not t.user_attrs.get("interrupted")]
    assert len(counted) == N_TRIALS and all(t.state.is_finished() for t in counted)  # exactly n_trials
    configs = [PETLConfig.from_dict(t.user_attrs["petl_config"]).fingerprint() for t in counted]
    assert len(set(configs)) == len(configs)  # none trained twice
    assert lease_row(url)["released"]
    stored_spec = optuna.load_study(study_name=NAME, storage=url).user_attrs["spec"]
    assert stored_spec["storage"] == url.replace(f"//{ROLE}@", f"//{ROLE}:***@")  # the record keeps no password

    html = tmp_path / "shared.html"
    drawn = petl_search("dashboard", str(path), "--storage", url, "--out", str(html))
    assert drawn.returncode == 0, drawn.stderr
    assert NAME in html.read_text()


def fetch(address: str, server: subprocess.Popen, wait: float = 120) -> dict:
    """The JSON at `address`, once the server answers."""
    deadline = time.time() + wait
    while True:
        try:
            with urllib.request.urlopen(address, timeout=10) as response:
                return json.loads(response.read())
        except OSError:
            if server.poll() is not None:
                pytest.fail(f"optuna-dashboard exited {server.returncode}: {server.stderr.read().decode()[-2000:]}")
            if time.time() > deadline:
                raise
            time.sleep(0.5)
