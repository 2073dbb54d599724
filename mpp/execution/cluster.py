"""The warehouse's nodes: a Dask cluster.

By default a LocalCluster on this machine (workers play the MPP nodes, threads the slices);
given a scheduler address, any existing Dask cluster. Nothing else in mpp assumes one machine.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from distributed import Client, LocalCluster


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """How to get a cluster: an existing scheduler address, or a LocalCluster's shape."""

    scheduler: str | None = None  # e.g. "tcp://10.0.0.5:8786"; None starts a LocalCluster
    workers: int = 2
    threads_per_worker: int = 1
    memory_limit: str | None = "auto"  # per worker, e.g. "4GiB"
    dashboard_address: str | None = ":0"  # ":8787" for the usual port; None disables it


class Cluster:
    """A connected Dask client plus, when we started it, the LocalCluster we own.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, spec: ClusterSpec | None = None, *, client: Client | None = None):
        self.spec = spec or ClusterSpec()
        self._local: LocalCluster | None = None
        if client is not None:
            self.client = client
            self._owns_client = False
            return
        self._owns_client = True
        if self.spec.scheduler:
            self.client = Client(self.spec.scheduler)
        else:
            self._local = LocalCluster(
                n_workers=self.spec.workers,
                threads_per_worker=self.spec.threads_per_worker,
                memory_limit=self.spec.memory_limit,
                dashboard_address=self.spec.dashboard_address,
                processes=True,
                silence_logs=logging.ERROR,
            )
            self.client = Client(self._local)

    @property
    def dashboard_link(self) -> str | None:
        """URL of the Dask dashboard (task stream, progress), if the scheduler serves one."""
        try:
            return self.client.dashboard_link
        except Exception:  # no dashboard (bokeh missing or disabled)
            return None

    def total_threads(self) -> int:
        """Threads across all workers: the warehouse's slices."""
        return max(1, sum(self.client.nthreads().values()))

    def worker_count(self) -> int:
        """Workers currently connected: the warehouse's nodes."""
        return max(1, len(self.client.nthreads()))

    def close(self) -> None:
        """Close the client and, if we started one, the LocalCluster."""
        if self._local is not None:
            # A worker heartbeat in flight while the LocalCluster shuts down logs a
            # "Failed to communicate with scheduler during heartbeat" traceback (dask/distributed
            # #7105); our workers are about to go, so their heartbeats stop first.
            with contextlib.suppress(Exception):
                self.client.run(_stop_heartbeat)
        if self._owns_client:
            self.client.close()
        if self._local is not None:
            self._local.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stop_heartbeat(dask_worker: Any = None) -> None:
    """On a worker: stop heartbeating the scheduler (the cluster is closing)."""
    dask_worker.periodic_callbacks["heartbeat"].stop()


# Worker task states in which a task's function may still be running in a worker thread.
_RUNNING_STATES = frozenset({"executing", "long-running", "cancelled", "resumed"})


def _running_keys(keys: Collection[str], dask_worker: Any = None) -> list[str]:
    """On a worker: which of ``keys`` still have a thread running their function."""
    tasks = dask_worker.state.tasks
    return [k for k in keys if k in tasks and tasks[k].state in _RUNNING_STATES]


def cancel_and_drain(client: Client, futures: Sequence[Any], timeout: float = 120.0) -> None:
    """Cancel ``futures`` and wait until no worker thread still runs one of them.

    Cancelling cannot interrupt a task already running in a worker thread, and the scheduler
    forgets a cancelled task at once, so its view cannot tell when the thread ends. The
    workers' own state can: a running task stays "cancelled" there until its thread returns.
    Writers call this before cleaning up after failed write tasks, so no file is written
    after the clean-up.
    """
    keys = [str(f.key) for f in futures]
    client.cancel(list(futures))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = client.run(_running_keys, keys)
        if not any(busy.values()):
            return
        time.sleep(0.05)
