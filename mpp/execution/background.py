"""A LocalCluster that outlives the command that started it: ``mpp cluster start|status|stop``.

Starting a LocalCluster costs seconds (5-7 s on a quiet 2-core machine), more than many
queries, and its dashboard dies with the command. ``mpp cluster start`` runs one in a detached
background process instead and records where it is in a small JSON file (the *record*); every
later ``mpp sql``/``mpp explain``/``mpp catalog`` call and :func:`mpp.connect` without an
explicit cluster find the record and connect to that scheduler, so the dashboard stays up
between queries and each query pays only for itself.

The record lives at ``$MPP_CLUSTER_FILE`` if set, else ``$XDG_STATE_HOME/mpp/cluster.json``
(``~/.local/state/mpp/cluster.json``). A record whose process is gone, or whose scheduler no
longer answers, is *stale*: it is reported and removed, never waited on, and the caller falls
back to what it did without one (a LocalCluster of its own).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mpp.errors import ClusterError

RECORD_ENV = "MPP_CLUSTER_FILE"
START_TIMEOUT = 120.0  # seconds for the background process to have its cluster up
STOP_TIMEOUT = 60.0
PROBE_TIMEOUT = 3.0  # seconds a recorded scheduler has to answer before it counts as stale


def record_path() -> Path:
    """Where the running cluster's record is kept (see the module docstring)."""
    explicit = os.environ.get(RECORD_ENV)
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(state) / "mpp" / "cluster.json"


@dataclass(frozen=True)
class ClusterRecord:
    """What ``mpp cluster start`` wrote: how to reach the cluster and what it is."""

    scheduler: str
    dashboard: str | None
    pid: int  # the background process that owns the cluster
    workers: int
    threads_per_worker: int
    memory_limit: str | None
    started: str  # ISO time, UTC

    def describe(self) -> str:
        """Two lines for a person: where it is and what it is."""
        memory = f", memory limit {self.memory_limit} per worker" if self.memory_limit else ""
        return (f"mpp cluster at {self.scheduler} (pid {self.pid}, started {self.started}): "
                f"{self.workers} workers x {self.threads_per_worker} threads{memory}\n"
                f"dashboard: {self.dashboard or 'none'}")


def read_record(path: Path | None = None) -> ClusterRecord | None:
    """The record at ``path`` (default :func:`record_path`), None if there is none.

    A record that cannot be parsed is treated as stale: removed, and None returned."""
    path = path or record_path()
    try:
        data = json.loads(path.read_text())
        return ClusterRecord(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        with contextlib.suppress(OSError):
            path.unlink()
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _answers(address: str) -> bool:
    from mpp.execution.cluster import probe_scheduler

    try:
        probe_scheduler(address, PROBE_TIMEOUT)
    except ClusterError:
        return False
    return True


def running() -> tuple[ClusterRecord | None, str | None]:
    """The live recorded cluster, or (None, why the record was stale) / (None, None).

    A stale record (its process gone, or its scheduler silent for ``PROBE_TIMEOUT`` s) is
    removed here, so it is reported once."""
    record = read_record()
    if record is None:
        return None, None
    if _alive(record.pid) and _answers(record.scheduler):
        return record, None
    with contextlib.suppress(OSError):
        record_path().unlink()
    why = ("its process is gone" if not _alive(record.pid)
           else f"its scheduler does not answer within {PROBE_TIMEOUT:g} s")
    return None, (f"the mpp cluster recorded at {record.scheduler} (pid {record.pid}, started "
                  f"{record.started}) is not running ({why}); removed its record")


def start(workers: int, threads_per_worker: int, memory_limit: str | None,
          dashboard_address: str | None) -> ClusterRecord:
    """Start the background cluster and return its record once it is up.

    ClusterError if one is already running (its address named), if the shape is impossible
    (checked here, before anything starts), or if the process fails or is not up within
    ``START_TIMEOUT`` s (the last lines of its log quoted)."""
    from mpp.execution.cluster import ClusterSpec

    record, _ = running()
    if record is not None:
        raise ClusterError(f"an mpp cluster is already running at {record.scheduler} "
                           f"(pid {record.pid}); stop it first with `mpp cluster stop`")
    ClusterSpec(workers=workers, threads_per_worker=threads_per_worker,
                memory_limit=memory_limit)  # a bad shape fails here, with the same message
    path = record_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    log = path.with_suffix(".log")
    args = [sys.executable, "-m", "mpp.execution.background", "--record", str(path),
            "--workers", str(workers), "--threads", str(threads_per_worker)]
    if memory_limit:
        args += ["--memory-limit", memory_limit]
    if dashboard_address:
        args += ["--dashboard-address", dashboard_address]
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)  # Ctrl-C here never reaches it
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        record = read_record(path)
        if record is not None and record.pid == proc.pid:
            return record
        if proc.poll() is not None:
            raise ClusterError(f"the background cluster exited (code {proc.returncode}) "
                               f"before it was up: {_tail(log)}")
        time.sleep(0.1)
    proc.terminate()
    raise ClusterError(f"the background cluster was not up within {START_TIMEOUT:g} s: "
                       f"{_tail(log)}")


def _tail(log: Path, lines: int = 5) -> str:
    try:
        text = log.read_text().strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def stop() -> tuple[ClusterRecord | None, str | None]:
    """Stop the recorded cluster; (the record it stopped, None) or (None, why there was none)."""
    record = read_record()
    if record is None:
        return None, f"no mpp cluster is running (no record at {record_path()})"
    if not _alive(record.pid):
        with contextlib.suppress(OSError):
            record_path().unlink()
        return None, (f"the mpp cluster recorded at {record.scheduler} (pid {record.pid}) was "
                      "not running any more; removed its record")
    os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _alive(record.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(record.pid, os.WNOHANG)
    if _alive(record.pid):
        os.kill(record.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        record_path().unlink()
    return record, None


def _serve(argv: list[str]) -> int:
    """The background process: run the LocalCluster until SIGTERM, keep the record true."""
    from mpp.execution.cluster import Cluster, ClusterSpec
    from mpp.session import LOCAL_SCHEDULER_CONFIG, preload

    parser = argparse.ArgumentParser(prog="mpp.execution.background")
    parser.add_argument("--record", required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--memory-limit", default="auto")
    parser.add_argument("--dashboard-address", default="127.0.0.1:8787")
    a = parser.parse_args(argv)
    import dask

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    spec = ClusterSpec(workers=a.workers, threads_per_worker=a.threads,
                       memory_limit=a.memory_limit, dashboard_address=a.dashboard_address)
    path = Path(a.record)
    with dask.config.set(LOCAL_SCHEDULER_CONFIG), Cluster(spec) as cluster:
        preload(cluster)  # the workers import mpp's task code now, not in the first command
        record = ClusterRecord(
            scheduler=cluster.client.scheduler.address, dashboard=cluster.dashboard_link,
            pid=os.getpid(), workers=a.workers, threads_per_worker=a.threads,
            memory_limit=None if a.memory_limit == "auto" else a.memory_limit,
            started=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record)))
        os.replace(tmp, path)  # readers see no record or the whole record
        print(record.describe(), flush=True)
        try:
            while not stopping.wait(1.0):
                pass
        finally:
            current = read_record(path)
            if current is not None and current.pid == os.getpid():
                with contextlib.suppress(OSError):
                    path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1:]))
