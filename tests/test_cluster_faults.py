"""Cluster faults during a query: each ends in one ClusterFaultError naming the query and the
stage, never in a hang; worker deaths within the retry budget still give DuckDB's rows.

Kills are injected by :class:`tests.chaos.Chaos` when a chosen task starts (seeded choices),
so the tests do not depend on timing.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dask
import psutil
import pytest

import mpp
from mpp.errors import ClusterError, ClusterFaultError, MppError
from mpp.execution.cluster import Cluster, ClusterSpec
from mpp.oracle import run_oracle
from mpp.physical.planner import PhysicalPlan
from mpp.session import LOCAL_SCHEDULER_CONFIG, Session
from tests.chaos import Chaos, Victim, starts
from tests.compare import assert_same_rows
from tests.query_warehouses import warehouse

REPO = Path(__file__).resolve().parent.parent
SEED = 12
GROUPED = "SELECT status, count(DISTINCT user_id) u, count(*) c FROM access_log GROUP BY status"
JOINED = ("SELECT u.country, count(*) c, sum(a.bytes) b FROM access_log a "
          "JOIN users u ON u.user_id = a.user_id GROUP BY u.country")
TOTAL = "SELECT count(*) c, sum(bytes) b FROM access_log"


def _plan(s: Session, sql: str) -> PhysicalPlan:
    ctx = s.context()
    return s.physical(s.optimize(s.bind(sql), ctx), ctx)


def _victims(plan: PhysicalPlan, rng: random.Random) -> dict[str, str]:
    """One seeded task per kind: a leaf (scan) task, an exchange task, a final-stage task."""
    leaf = plan.stages[0]
    combines, _ = plan.exchange_tasks(leaf)
    word = "combine" if leaf.sink is not None and leaf.sink.kind.name == "HASH" else "collect"
    final = plan.final_stage
    return {"scan": f"{leaf.name} partition {rng.randrange(leaf.tasks)}",
            "exchange": f"stage{leaf.id}-{word} partition {rng.randrange(combines)}",
            "final": f"{final.name} partition {rng.randrange(final.tasks)}"}


@pytest.fixture(scope="module")
def chaos_session(cluster: Cluster) -> Iterator[Session]:
    """A session on its own 2-worker LocalCluster (nannies restart killed workers)."""
    wh = warehouse(cluster.client, "parquet", 6)
    spec = ClusterSpec(workers=2, dashboard_address=None, stall_timeout=120)  # 3 retries
    with dask.config.set(LOCAL_SCHEDULER_CONFIG), Cluster(spec) as own, \
            mpp.connect(wh, cluster=own, settings={"execution.exchange_fan_in": 2}) as s:
        yield s


def _chaos(s: Session, folder: Path, *victims: Victim) -> Path:
    """Arm ``victims`` on a cluster whose killed workers are all back (nannies restart them)."""
    s.cluster.client.wait_for_workers(s.cluster.spec.workers, timeout=300)
    folder.mkdir(exist_ok=True)
    s.cluster.client.register_plugin(Chaos(str(folder), victims), name="mpp-test-chaos")
    return folder


@pytest.mark.parametrize("sql", [GROUPED, JOINED], ids=["hash-exchange", "broadcast"])
def test_seeded_worker_kills_in_every_kind_of_stage_still_give_the_oracle_rows(
        chaos_session: Session, tmp_path: Path, sql: str) -> None:
    s = chaos_session
    victims = _victims(_plan(s, sql), random.Random(f"{SEED}-{sql}"))
    expected = run_oracle(sql, s.catalog)
    for kind, task in victims.items():
        folder = _chaos(s, tmp_path / kind, Victim(task))
        result = s.sql(sql)
        assert (folder / "victim-0-0").exists(), f"{task} was never started"
        assert_same_rows(result.to_arrow(), expected)
        assert starts(folder).count(task) >= 2, (kind, task)  # killed, then run again


def test_task_that_keeps_killing_its_worker_fails_naming_query_stage_and_partition(
        chaos_session: Session, tmp_path: Path) -> None:
    s = chaos_session
    final = _plan(s, TOTAL).final_stage
    assert final.tasks == 1  # the only task running when it starts, so it alone is blamed
    task = f"{final.name} partition 0"
    _chaos(s, tmp_path, Victim(task, times=99))
    with pytest.raises(ClusterFaultError) as err:
        s.sql(TOTAL)
    message = str(err.value)
    assert err.value.task == task and err.value.query_id in message
    assert f"task {task} killed its worker 4 times" in message
    assert "allowed-failures = 3 retries" in message
    # the nannies restarted every killed worker: the cluster is whole, and still answers
    _chaos(s, tmp_path / "after")
    assert_same_rows(s.sql(TOTAL).to_arrow(), run_oracle(TOTAL, s.catalog))


def test_task_that_runs_its_worker_out_of_memory_fails_naming_the_task_and_limit(
        cluster: Cluster, tmp_path: Path) -> None:
    """A real out-of-memory death: the nanny kills a worker above 95% of its memory limit."""
    wh = warehouse(cluster.client, "parquet", 3)
    spec = ClusterSpec(workers=1, memory_limit="1GiB", dashboard_address=None,
                       allowed_failures=1)
    with Cluster(spec) as own, mpp.connect(wh, cluster=own) as s:
        task = f"{_plan(s, TOTAL).final_stage.name} partition 0"
        _chaos(s, tmp_path, Victim(task, times=99, hog_mib=1536))
        with pytest.raises(ClusterFaultError) as err:
            s.sql(TOTAL)
    message = str(err.value)
    assert message.startswith(f"query {err.value.query_id}: task {task} killed its worker 2 "
                              "times (the last tcp://127.0.0.1:")
    assert "needs more memory than the worker's limit (1,024 MiB)" in message
    assert len(list(tmp_path.glob("victim-0-*"))) == 2  # both deaths were this task's


def test_a_task_error_is_never_retried(chaos_session: Session, tmp_path: Path) -> None:
    s = chaos_session
    folder = _chaos(s, tmp_path)
    with pytest.raises(MppError, match="divide by zero") as err:
        s.sql("SELECT bytes / 0 AS x FROM access_log")
    assert not isinstance(err.value, ClusterFaultError)
    ran = Counter(starts(folder))
    assert ran and max(ran.values()) == 1, ran


def test_paused_workers_fail_the_query_naming_stage_and_memory(cluster: Cluster) -> None:
    """Dask's memory monitor pauses a worker above a share of its memory limit (0.8 by default;
    1% here, so an idle worker is paused): the query fails, it does not wait forever."""
    wh = warehouse(cluster.client, "parquet", 3)
    spec = ClusterSpec(workers=1, memory_limit="2GiB", dashboard_address=None, stall_timeout=2)
    with dask.config.set({"distributed.worker.memory.pause": 0.01}), Cluster(spec) as own:
        own.client.wait_for_workers(1, timeout=120)
        deadline = time.monotonic() + 120
        while {w["status"] for w in own.client.scheduler_info()["workers"].values()} \
                != {"paused"}:
            assert time.monotonic() < deadline, "the worker was never paused"
            time.sleep(0.2)
        assert own.health_warning() == (
            "1 of 1 workers is paused by Dask's memory monitor (memory "
            f"{_memory(own)} of 2,048 MiB each); queries may stall and then fail: raise the "
            "workers' memory limit or use fewer workers")
        with mpp.connect(wh, cluster=own) as s:
            plan = _plan(s, TOTAL)
            with pytest.raises(ClusterFaultError) as err:
                s.sql(TOTAL)
    message = str(err.value)
    assert message.startswith(f"query {err.value.query_id} cannot make progress: all 1 "
                              "workers are paused by Dask's memory monitor (1% of their "
                              "memory limit), memory ")
    assert "of 2,048 MiB each for 2 s (the stall timeout, --stall-timeout)" in message
    assert (f"tasks not finished: {plan.stages[0].name} (3 ready), "
            f"{plan.final_stage.name} (1 waiting)") in message


def _memory(c: Cluster) -> str:
    (worker,) = c.client.scheduler_info()["workers"].values()
    return f"{worker['metrics']['memory'] / 2**20:,.0f} MiB"


def test_cli_query_on_a_paused_cluster_ends_in_one_error_line(cluster: Cluster) -> None:
    """`mpp sql` on a LocalCluster whose worker Dask pauses (pause threshold 1% from the
    environment): exit code 2 and one line naming the query and the stall, no traceback."""
    wh = str(warehouse(cluster.client, "parquet", 3))
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__MEMORY__PAUSE": "0.01"}
    proc = subprocess.run(
        [sys.executable, "-m", "mpp.cli", "sql", "-w", wh, "--workers", "1",
         "--stall-timeout", "2", TOTAL], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.splitlines()[-1]
    assert last.startswith("mpp: error: query q1-") and "cannot make progress: all 1 workers " \
        "are paused" in last, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def _listening(pids: set[int]) -> set[tuple[str, int]]:
    out = set()
    for pid in pids:
        for c in psutil.Process(pid).net_connections(kind="inet"):
            if c.status == psutil.CONN_LISTEN:
                out.add((c.laddr.ip, c.laddr.port))
    return out


def _tree() -> set[int]:
    me = psutil.Process()
    return {me.pid, *(p.pid for p in me.children(recursive=True))}


@pytest.mark.parametrize("dashboard,dashboard_host", [
    ("127.0.0.1:0", "127.0.0.1"), (":0", "127.0.0.1"), (None, "127.0.0.1"),
    ("0.0.0.0:0", "0.0.0.0")])
def test_local_cluster_listens_on_loopback_unless_told(dashboard: str | None,
                                                       dashboard_host: str) -> None:
    before = _listening(_tree())
    with Cluster(ClusterSpec(workers=2, dashboard_address=dashboard)) as c:
        c.client.wait_for_workers(2, timeout=120)
        opened = _listening(_tree()) - before
        http = c.client.scheduler_info()["services"]["dashboard"]
    assert len(opened) >= 5  # scheduler, its HTTP server, 2 workers, 2 nannies
    assert (dashboard_host, http) in opened
    assert {ip for ip, port in opened if port != http} == {"127.0.0.1"}, opened


def test_dashboard_link_names_the_address_it_listens_on() -> None:
    with Cluster(ClusterSpec(workers=1, dashboard_address=":0")) as c:
        link = c.dashboard_link
        port = c.client.scheduler_info()["services"]["dashboard"]
    assert link == f"http://127.0.0.1:{port}/status"


class External:
    """A `dask scheduler` and `dask worker --no-nanny` processes on 127.0.0.1."""

    def __init__(self, tmp: Path, workers: int = 1):
        self.procs: list[subprocess.Popen[bytes]] = []
        file = tmp / "scheduler.json"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.scheduler = self._start([sys.executable, "-m", "distributed.cli.dask_scheduler",
                                      "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                      "--scheduler-file", str(file)], env)
        deadline = time.monotonic() + 120
        while not file.exists() or not file.read_text().strip():
            assert time.monotonic() < deadline and self.scheduler.poll() is None
            time.sleep(0.2)
        time.sleep(0.2)  # the file is written whole right after it appears
        self.address = json.loads(file.read_text())["address"]
        for _ in range(workers):
            self._start([sys.executable, "-m", "distributed.cli.dask_worker", self.address,
                         "--no-nanny", "--nthreads", "1", "--host", "127.0.0.1"], env)

    def _start(self, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)


@pytest.fixture
def external(tmp_path: Path) -> Iterator[External]:
    ext = External(tmp_path)
    try:
        yield ext
    finally:
        ext.stop()


def _external_session(ext: External, wh: Path) -> Session:
    s = mpp.connect(wh, cluster=ClusterSpec(scheduler=ext.address, connect_timeout=60,
                                             stall_timeout=2))
    s.cluster.client.wait_for_workers(1, timeout=120)
    return s


def test_every_worker_of_an_external_cluster_dying_fails_the_query(
        cluster: Cluster, external: External, tmp_path: Path) -> None:
    wh = warehouse(cluster.client, "parquet", 3)
    with _external_session(external, wh) as s:
        final = _plan(s, GROUPED).final_stage
        s.cluster.client.register_plugin(Chaos(str(tmp_path), (Victim(final.name),)),
                                         name="mpp-test-chaos")
        with pytest.raises(ClusterFaultError) as err:
            s.sql(GROUPED)
    message = str(err.value)
    assert message.startswith(f"query {err.value.query_id} cannot make progress: no worker is "
                              "connected to the scheduler for 2 s (the stall timeout, "
                              "--stall-timeout)")
    assert "tasks not finished: stage1-" in message and f"{final.name} (" in message


def test_scheduler_killed_mid_query_fails_naming_the_query(
        cluster: Cluster, external: External, tmp_path: Path) -> None:
    wh = warehouse(cluster.client, "parquet", 3)
    with _external_session(external, wh) as s:
        final = _plan(s, GROUPED).final_stage
        victim = Victim(final.name, pid=external.scheduler.pid)
        s.cluster.client.register_plugin(Chaos(str(tmp_path), (victim,)), name="mpp-test-chaos")
        with pytest.raises(ClusterFaultError) as err:
            s.sql(GROUPED)
    assert str(err.value).startswith(f"query {err.value.query_id}: lost the connection to the "
                                     f"Dask scheduler at {external.address}")


def test_scheduler_gone_before_a_query_fails_it_clearly(cluster: Cluster,
                                                        external: External) -> None:
    wh = warehouse(cluster.client, "parquet", 3)
    with _external_session(external, wh) as s:
        external.scheduler.kill()
        external.scheduler.wait(timeout=60)
        with pytest.raises(ClusterError) as err:
            s.sql(TOTAL)
    assert str(err.value) == (f"lost the connection to the Dask scheduler at "
                              f"{external.address} (it stopped or the network failed); run "
                              "again when it is back")


@pytest.mark.parametrize("key,name", [
    (("stage1-scan-partial-agg-1a2b3c4d", 3), "stage1-scan-partial-agg partition 3"),
    (("stage2-combine-00ff00ff", 0), "stage2-combine partition 0"),
    ("stage3-write-1a2b3c4d-5", "stage3-write partition 5"),
    (("not-ours", 1), "('not-ours', 1)"),
])
def test_task_keys_read_as_stage_and_partition(key: object, name: str) -> None:
    from mpp.execution.watch import describe_task

    assert describe_task(key) == name
