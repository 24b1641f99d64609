"""A real multi-node Ray cluster on this machine: a head and two worker nodes, each with its own raylet and
object store, as Ray's own cluster utilities start them (`ray.cluster_utils.Cluster`). The head has no `worker`
resource, the workers one each, and the study asks for `resources: {cpus: 1, worker: 1}` per trial, so every
trial trains on a worker node. No data folder is shared: it is gone once the driver has tokenised the task.

A study there trains exactly n_trials, with the same records as in one process; a worker node killed
mid-study loses no trial (the trial it was training runs again, and the study ends with exactly n_trials);
a driver killed with SIGKILL and started again against the same cluster resumes. These are the steps of
docs/search.md's cluster recipe (`ray start --head`, `ray start --address ... --resources '{"worker": 1}'`,
`petl-search search STUDY --address ...`), with Ray's test cluster in place of the `ray start` commands.
The study key itself (`resources: {cpus: 1, worker: 1}`: checked when read, outside the study's fingerprint,
and checked against the cluster before any trial) is tested without a cluster.

Ray's temporary folder is one of this module's own (RAY_TMPDIR): a cluster writes its address into it, where
`ray.init()` elsewhere on this machine would otherwise find it and join it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
import pytest
import ray
import yaml
from ray._private import ray_constants
from ray.cluster_utils import Cluster

from petl_search.core.errors import PETLError
from petl_search.search.language.study import StudyError, load_study, parse_study
from petl_search.search.optuna_bridge.records import read_records
from petl_search.search.runner.inline import run_study_inline
from petl_search.search.runner.ray_runner import LOST, check_resources, run_study, trial_resources

from test_search import study_is_made

ROOT = Path(__file__).resolve().parents[1]
WORKER = {"num_cpus": 1, "resources": {"worker": 1}}


@pytest.fixture(scope="module")
def cluster():
    """The head (no `worker` resource) and two worker nodes; Ray's files in a short folder of this module's."""
    if ray.is_initialized():
        ray.shutdown()
    temp = tempfile.mkdtemp(prefix="rmn", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    before = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = temp
    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        for _ in range(2):
            made.add_node(**WORKER)
        yield made
    finally:
        if ray.is_initialized():
            ray.shutdown()
        made.shutdown()
        if before is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = before
        shutil.rmtree(temp, ignore_errors=True)


def two_workers(cluster: Cluster) -> None:
    """Two live worker nodes (a test may have killed one)."""
    while len(cluster.worker_nodes) < 2:
        cluster.add_node(**WORKER)
    cluster.wait_for_nodes()


def raylet_pid(node) -> int:
    return node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid


def trial_processes(node) -> list[int]:
    """The Ray Tune trial processes (`ray::ImplicitFunc`) that the node's raylet started."""
    parent, found = raylet_pid(node), []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent \
                    and (entry / "cmdline").read_bytes().startswith(b"ray::ImplicitFunc"):
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
    return found


class Watch(threading.Thread):
    """Which nodes run trial processes, sampled every half second while a study runs."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(daemon=True)
        self.cluster, self.stop, self.seen = cluster, threading.Event(), {"head": 0, "workers": 0}

    def run(self) -> None:
        while not self.stop.is_set():
            self.seen["head"] += len(trial_processes(self.cluster.head_node))
            self.seen["workers"] += sum(len(trial_processes(n)) for n in list(self.cluster.worker_nodes))
            time.sleep(0.5)


def write_study(folder: Path, toy: Path, name: str, **overrides) -> Path:
    """The toy study with its own copy of the data (which the tests take away once the driver has read it)."""
    glue = folder / f"{name}-glue"
    shutil.copytree(toy / "glue", glue)
    data = {"name": name, "model": str(toy / "model"), "task": "sst2", "data_dir": str(glue),
            "space": str(ROOT / "search_spaces" / "unified.yaml"), "budget": 0.05, "n_trials": 3, "concurrency": 2,
            "sampler": {"name": "random", "seed": 1}, "resources": {"cpus": 1, "worker": 1},
            "early_stopping": None, "train": {"max_steps": 40, "eval_every": 20, "batch_size": 16,
                                              "learning_rate": 0.01, "eval_examples": 32}}
    data.update(overrides)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def data_goes(spec, lines: list[str]):
    """A progress callback that takes the data folder away once the driver says it has tokenised the task."""
    folder = Path(spec.data_dir)

    def progress(line: str) -> None:
        lines.append(line)
        if line.startswith("data: ") and folder.exists():
            folder.rename(folder.with_name(folder.name + "-gone"))
    return progress


def counted(spec) -> list:
    """The study's search trials that count towards n_trials (not interrupted), by number."""
    records = read_records(optuna.load_study(study_name=spec.name, storage=spec.storage))
    return sorted((r for r in records if r.kind == "search" and not r.extra.get("interrupted")),
                  key=lambda r: r.number)


def test_the_resources_key_takes_custom_resources_without_changing_what_a_study_means() -> None:
    base = {"name": "r", "model": "tiny", "task": "sst2", "budget": 0.05,
            "space": str(ROOT / "search_spaces" / "unified.yaml")}
    plain, kept = parse_study(base), parse_study({**base, "resources": {"cpus": 2, "worker": 1}})
    assert plain.fingerprint() == kept.fingerprint()  # a stored study may add it
    assert trial_resources(kept) == {"cpu": 2.0, "gpu": 0.0, "worker": 1.0}
    for bad, says in (({"worker": 0}, "resources.worker must be a positive number"),
                      ({"worker": "one"}, "resources.worker must be a positive number"),
                      ({"CPU": 1}, "'CPU' is not a custom resource (write cpus and gpus for Ray's own)"),
                      ({"memory": 1}, "'memory' is not a custom resource")):
        with pytest.raises(StudyError, match=re.escape(says)):
            parse_study({**base, "resources": bad})
    with pytest.raises(PETLError, match=re.escape(
            "resources.worker is 1 per trial, but the Ray cluster has 0 worker (it has ['CPU', 'memory']): start "
            "its worker nodes with `ray start --address HEAD:6379 --resources '{\"worker\": 1}'`")):
        check_resources(kept, {"CPU": 4.0, "memory": 1e9})
    check_resources(kept, {"CPU": 4.0, "worker": 2.0})


def test_a_study_on_the_worker_nodes_has_n_trials_and_the_records_of_one_process(cluster, toy, tmp_path) -> None:
    two_workers(cluster)
    spec = load_study(write_study(tmp_path, toy, "spread"))
    lines: list[str] = []
    watch = Watch(cluster)
    watch.start()
    try:
        run_study(spec, address=cluster.address, progress=data_goes(spec, lines))
    finally:
        watch.stop.set()
        watch.join()
    assert not Path(spec.data_dir).exists() and any(line.startswith("data: sst2 tokenised once") for line in lines)
    assert watch.seen["head"] == 0 and watch.seen["workers"] > 0  # every trial on a worker node
    on_cluster = counted(spec)
    assert len(on_cluster) == 3 and all(r.state == "COMPLETE" for r in on_cluster), \
        [(r.state, r.reason) for r in on_cluster]

    alone = load_study(write_study(tmp_path, toy, "alone"))  # the same study in this one process
    run_study_inline(alone, progress=lambda line: None)
    in_process = counted(alone)
    assert [(r.number, r.config, r.learning_rate, r.metric, r.dev_scores) for r in on_cluster] == \
        [(r.number, r.config, r.learning_rate, r.metric, r.dev_scores) for r in in_process]


def wait_for(condition, what: str, timeout: float = 600) -> None:
    deadline = time.time() + timeout  # generous: a loaded machine starts workers and trains slowly
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def search_trials(spec) -> list | None:
    """The study's search trials, or None while it is not readable yet. The storage is opened only once the driver
    has made the study in it (opened earlier, this process would stamp the schema at the same time as the
    driver)."""
    if not study_is_made(spec.folder / "study.db", spec.name):
        return None
    try:
        trials = optuna.load_study(study_name=spec.name, storage=spec.storage).get_trials()
    except Exception:  # busy: ask again
        return None
    return [t for t in trials if t.user_attrs.get("kind") == "search"]


def mid_study(spec) -> bool:
    """A search trial has finished and one training is younger than half the finished one: the moment to kill
    something."""
    trials = search_trials(spec) or []
    durations = [t.datetime_complete.timestamp() - t.user_attrs["started"] for t in trials
                 if t.state == optuna.trial.TrialState.COMPLETE]
    training = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    return bool(durations) and any(
        time.time() - t.user_attrs.get("started", 0) < min(durations) / 2 for t in training)


def first_trials_training(spec) -> bool:
    """The study's first search trials are training and none has finished: a trial process seen on a node now
    belongs to a trial that the storage holds as running (none can have ended and left its process behind)."""
    trials = search_trials(spec) or []
    return any(t.state == optuna.trial.TrialState.RUNNING for t in trials) and not any(
        t.state.is_finished() for t in trials)


def test_a_worker_node_killed_mid_study_loses_no_trial(cluster, toy, tmp_path) -> None:
    """The node is killed while the first trials train. (Waiting for "one finished, two running" instead was a
    race: on CI the first two trials ended together and that moment never came.)"""
    two_workers(cluster)
    spec = load_study(write_study(tmp_path, toy, "node_lost"))
    lines: list[str] = []
    killed: list[int] = []
    failed: list[BaseException] = []
    over = threading.Event()

    def kill_a_busy_worker_node() -> None:
        try:
            while not over.is_set():
                if first_trials_training(spec):
                    busy = [n for n in list(cluster.worker_nodes) if trial_processes(n)]
                    if busy:
                        killed.extend(trial_processes(busy[0]))
                        cluster.remove_node(busy[0], allow_graceful=False)  # raylet, object store, trial, at once
                        return
                time.sleep(0.1)
        except BaseException as error:  # reported by the test, not lost with the thread
            failed.append(error)

    killer = threading.Thread(target=kill_a_busy_worker_node, daemon=True)
    killer.start()
    try:
        run_study(spec, address=cluster.address, progress=data_goes(spec, lines))
    finally:
        over.set()
        killer.join(timeout=30)
    assert not failed, failed
    assert killed, "no worker node was killed: no trial process was seen on a worker node before a trial ended"
    records = read_records(optuna.load_study(study_name=spec.name, storage=spec.storage))
    lost = [r for r in records if r.extra.get(LOST)]
    assert len(lost) == 1 and lost[0].extra["interrupted"] and lost[0].state == "FAIL", lost
    assert lost[0].extra[LOST].startswith("its worker was lost") and "queued again" in lost[0].reason
    trials = counted(spec)
    assert len(trials) == 3 and all(r.state == "COMPLETE" for r in trials), [(r.state, r.reason) for r in trials]
    assert lost[0].config in [r.config for r in trials]  # what it was training ran again
    assert any("its worker was lost" in line for line in lines)
    assert any(f"trials #{lost[0].number} lost their workers: running them again" in line for line in lines)


class Driver:
    """`petl-search search STUDY --address ADDR` in a process of its own (its own session, so that SIGKILL
    reaches it alone), its output read line by line; the data folder goes once it has tokenised the task."""

    def __init__(self, spec, address: str) -> None:
        self.spec, self.lines, self.folder = spec, [], Path(spec.data_dir)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "petl_search.cli", "search", spec.source, "--address", address],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith("data: ") and self.folder.exists():
                self.folder.rename(self.folder.with_name(self.folder.name + "-gone"))

    def output(self) -> str:
        return "".join(self.lines)[-4000:]


def test_a_driver_killed_and_started_again_against_the_same_cluster_resumes(cluster, toy, tmp_path) -> None:
    two_workers(cluster)
    spec = load_study(write_study(tmp_path, toy, "driver_killed"))
    first = Driver(spec, cluster.address)
    try:
        wait_for(lambda: mid_study(spec) or first.process.poll() is not None, "a finished and a running trial")
        assert first.process.poll() is None, f"the study ended before the kill: {first.output()}"
    finally:
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait()
    running = [t.number for t in optuna.load_study(study_name=spec.name, storage=spec.storage).get_trials()
               if t.state == optuna.trial.TrialState.RUNNING]
    assert running and not Path(spec.data_dir).exists()
    Path(spec.data_dir + "-gone").rename(spec.data_dir)  # the driver reads the data (the workers do not)

    again = Driver(spec, cluster.address)
    assert again.process.wait(timeout=600) == 0, again.output()
    again.reader.join(timeout=10)
    assert f"resuming: trials {sorted(running)} were interrupted" in again.output()
    trials = counted(spec)
    assert len(trials) == 3 and all(r.state == "COMPLETE" for r in trials), [(r.state, r.reason) for r in trials]
    assert len({json.dumps(r.config, sort_keys=True) for r in trials}) == 3  # none trained twice
