"""`mpp cluster start|status|stop`: a LocalCluster that outlives the command, found by every
later command and by mpp.connect(); a dead one is reported and its record removed, never hung
on."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import mpp
from mpp.cli import main
from mpp.datagen import DatagenSpec, generate
from mpp.execution import background


@pytest.fixture(scope="module")
def record_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This module's own cluster record (the suite's conftest points elsewhere)."""
    path = tmp_path_factory.mktemp("bg") / "cluster.json"
    old = os.environ.get(background.RECORD_ENV)
    os.environ[background.RECORD_ENV] = str(path)
    try:
        yield path
    finally:
        background.stop()
        if old is None:
            del os.environ[background.RECORD_ENV]
        else:
            os.environ[background.RECORD_ENV] = old


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory, cluster) -> Path:
    out = tmp_path_factory.mktemp("bgwh") / "w"
    generate(out, DatagenSpec(rows=2_000, partitions=2, days=2, hot_day=0, users=50, sessions=60, urls=10),
             client=cluster.client, progress=False)
    return out


def test_start_status_use_and_stop(record_file: Path, wh: Path) -> None:
    runner = CliRunner()
    started = runner.invoke(main, ["cluster", "start", "--workers", "1",
                                   "--dashboard-address", "127.0.0.1:0"])
    assert started.exit_code == 0, started.output
    record = background.read_record()
    assert record is not None and record_file.exists()
    assert f"mpp cluster at {record.scheduler}" in started.output
    assert "1 workers x 1 threads" in started.output and record.dashboard

    again = runner.invoke(main, ["cluster", "start"])
    assert again.exit_code == 2
    assert f"already running at {record.scheduler}" in again.output

    status = runner.invoke(main, ["cluster", "status"])
    assert status.exit_code == 0, status.output
    assert record.scheduler in status.output and status.output.count("  worker tcp://") == 1

    # every later command and mpp.connect() use it: the same scheduler, its live dashboard
    query = runner.invoke(main, ["sql", "-w", str(wh), "SELECT count(*) FROM access_log"])
    assert query.exit_code == 0, query.output
    assert f"dashboard: {record.dashboard}" in query.output and "2000" in query.output
    with mpp.connect(wh) as session:
        assert session.cluster.client.scheduler.address == record.scheduler
    # an explicit shape still starts a LocalCluster of its own
    own = runner.invoke(main, ["sql", "-w", str(wh), "--workers", "1", "SELECT 1"])
    assert own.exit_code == 0 and f"dashboard: {record.dashboard}" not in own.output

    stopped = runner.invoke(main, ["cluster", "stop"])
    assert stopped.exit_code == 0 and f"stopped the mpp cluster at {record.scheduler}" in (
        stopped.output)
    assert not record_file.exists()
    assert not _alive(record.pid)
    none = runner.invoke(main, ["cluster", "status"])
    assert none.exit_code == 2 and "no mpp cluster is running" in none.output


def test_a_dead_cluster_is_reported_and_forgotten(record_file: Path) -> None:
    record = background.start(1, 1, None, "127.0.0.1:0")
    os.kill(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(record.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    found, stale = background.running()
    assert found is None and stale is not None
    assert f"recorded at {record.scheduler} (pid {record.pid}" in stale
    assert "is not running (its process is gone); removed its record" in stale
    assert not record_file.exists()
    assert background.running() == (None, None)  # reported once


def test_a_bad_shape_starts_nothing(record_file: Path) -> None:
    result = CliRunner().invoke(main, ["cluster", "start", "--memory-limit", "lots"])
    assert result.exit_code == 2 and "memory_limit" in result.output
    assert not record_file.exists()


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
