"""The warehouse's nodes: a Dask cluster.

By default a LocalCluster on this machine (workers play the MPP nodes, threads the slices);
given a scheduler address, any existing Dask cluster. Nothing else in mpp assumes one machine.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from dask.utils import format_bytes, parse_bytes
from distributed import Client, LocalCluster
from distributed.comm.addressing import get_address_host_port, parse_address
from distributed.comm.registry import get_backend
from distributed.diagnostics.plugin import WorkerPlugin
from distributed.system import MEMORY_LIMIT

from mpp import limits
from mpp.errors import ClusterError

# Seconds to wait for an existing scheduler to answer. Dask's own default (30 s, retried) made a
# wrong address look like a hang; a scheduler that is up answers in milliseconds.
DEFAULT_CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """How to get a cluster: an existing scheduler address, or a LocalCluster's shape."""

    scheduler: str | None = None  # e.g. "tcp://10.0.0.5:8786"; None starts a LocalCluster
    workers: int = 2
    threads_per_worker: int = 1
    memory_limit: str | None = "auto"  # per worker, e.g. "4GiB"
    dashboard_address: str | None = ":0"  # ":8787" for the usual port; None disables it
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT  # seconds to reach ``scheduler``

    def __post_init__(self) -> None:
        """Reject a shape no cluster can have, before anything starts."""
        for name, limit in (("workers", limits.WORKERS), ("threads_per_worker", limits.THREADS)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ClusterError(f"ClusterSpec.{name} must be an integer >= 1, got {value!r}")
            if limit.problem(value):
                raise ClusterError(f"ClusterSpec.{name} {limit.problem(value)}")
        try:
            memory_limit_bytes(self.memory_limit)
        except ValueError as exc:
            raise ClusterError(f"ClusterSpec.memory_limit: {exc}") from None
        timeout = self.connect_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ClusterError("ClusterSpec.connect_timeout must be a number of seconds > 0, "
                               f"got {timeout!r}")
        problem = limits.CONNECT_TIMEOUT.problem(timeout)
        if problem:
            raise ClusterError(f"ClusterSpec.connect_timeout {problem}")


def memory_limit_bytes(value: str | None) -> int | None:
    """A worker's ``memory_limit`` in bytes: None for "auto" (Dask shares the machine's memory
    out evenly) and for None (no limit). Raises ValueError, saying why, for anything that is not
    a size with units (``dask.utils.parse_bytes``: "4GiB", "512 MB") or is too small to start a
    worker in."""
    if value is None or value == "auto":
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a size such as '4GiB' or 'auto', got {value!r}")
    try:
        n = int(parse_bytes(value))
    except (ValueError, TypeError):
        raise ValueError(f"not a size: {value!r} (expected a number with units, e.g. '4GiB' or "
                         "'512MB', or 'auto')") from None
    if n < limits.MIN_WORKER_MEMORY:
        raise ValueError(f"{value!r} is {format_bytes(n)}; a worker needs at least "
                         f"{format_bytes(limits.MIN_WORKER_MEMORY)} (it holds ~150 MB before any "
                         "data and pauses at 80% of its limit)")
    return n


def local_memory_problem(workers: int, memory_limit: str | None,
                         total: int | None = None) -> tuple[str, str] | None:
    """Whether this machine (``total`` bytes; Dask's reading of its memory and cgroup limit by
    default) can hold a LocalCluster's workers: (field, problem) or None.

    An error, not a warning: workers x memory_limit above the machine's memory is a promise it
    cannot keep. Dask pauses and spills a worker at fractions of its limit, which it then never
    reaches; the OS kills the worker first, and the query fails mid-run as a lost worker.
    """
    total = int(total or MEMORY_LIMIT)
    per = memory_limit_bytes(memory_limit)
    if per is None and memory_limit == "auto" and total // workers < limits.MIN_WORKER_MEMORY:
        return ("workers", f"{workers} workers share this machine's {format_bytes(total)} "
                f"(memory_limit 'auto'): {format_bytes(total // workers)} each, less than the "
                f"{format_bytes(limits.MIN_WORKER_MEMORY)} a worker needs")
    if per is not None and workers * per > total:
        return ("memory_limit", f"{workers} workers x {memory_limit} = "
                f"{format_bytes(workers * per)} exceeds this machine's memory "
                f"({format_bytes(total)}): the OS would kill workers before Dask pauses or "
                f"spills them. Use at most {format_bytes(total // workers)} a worker, or 'auto'")
    return None


def check_scheduler_address(address: str) -> None:
    """Raise :class:`ClusterError` unless ``address`` reads as a Dask scheduler address.

    Checked before any Client exists: Dask's own errors for a malformed address are deep
    tracebacks (``ValueError: missing port number``), and a Client that failed half-way
    leaves a closing thread behind that may log again at exit.
    """
    try:
        scheme, _ = parse_address(address)
        get_backend(scheme)  # ValueError for an unknown scheme, e.g. http
        if scheme in ("tcp", "tls", "ws", "wss"):
            host, port = get_address_host_port(address)
            if not host or not 0 < port < 65536:
                raise ValueError(address)
    except (TypeError, ValueError):
        raise ClusterError(f"not a scheduler address: {address!r} (expected tcp://host:port, "
                           "e.g. tcp://10.0.0.5:8786)") from None


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
            self.client = _connect(self.spec.scheduler, self.spec.connect_timeout)
        else:
            problem = local_memory_problem(self.spec.workers, self.spec.memory_limit)
            if problem:
                raise ClusterError(f"ClusterSpec.{problem[0]}: {problem[1]}")
            with _sigint_ignored():  # Ctrl-C is ours to handle (we close the workers)
                self._local = LocalCluster(
                    n_workers=self.spec.workers,
                    threads_per_worker=self.spec.threads_per_worker,
                    memory_limit=self.spec.memory_limit,
                    dashboard_address=self.spec.dashboard_address,
                    processes=True,
                    silence_logs=logging.ERROR,
                )
            self.client = Client(self._local)
            # Our workers: a task's exception reaches the user as one line, re-raised by the
            # client; the worker's own "Compute Failed" traceback of it is noise.
            self.client.register_plugin(QuietTaskErrors(), name=QuietTaskErrors.name)

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


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while the LocalCluster's worker processes are spawned: they inherit it.

    Ctrl-C in a terminal signals the whole process group. Without this each worker process
    dies printing its own KeyboardInterrupt traceback under mpp's one line; with it only mpp
    sees the interrupt, and closing the cluster ends the workers. (Python installs its
    KeyboardInterrupt handler only where SIGINT is not already ignored.) Outside the main
    thread signals cannot be changed, and nothing is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _connect(address: str, timeout: float) -> Client:
    """A Client of the scheduler at ``address``, or a :class:`ClusterError` saying why not."""
    check_scheduler_address(address)
    try:
        return Client(address, timeout=timeout)
    except OSError:  # includes TimeoutError: refused, unresolvable or silent host
        raise ClusterError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
                           "(is `dask scheduler` running there?)") from None


class _QuietMppTaskErrors(logging.Filter):
    """Drops a worker's "Compute Failed" record: the client re-raises the task's exception.

    An MppError (``bytes / 0``, a corrupt file) is bad input that the CLI prints as one line;
    any other exception is a bug whose full traceback, worker frames included, the CLI writes
    to a crash report (:mod:`mpp.crash`). Either way the worker's copy on the terminal only
    buries that line. Every other worker record still gets through.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Compute Failed")


class QuietTaskErrors(WorkerPlugin):
    """Installs :class:`_QuietMppTaskErrors` on the ``distributed.worker`` logger of each worker
    (also of workers that join or restart later). mpp adds it only to LocalClusters it starts:
    the logs of someone else's cluster are theirs."""

    name = "mpp-quiet-task-errors"

    def setup(self, worker: Any) -> None:
        """On a worker: add the filter (once)."""
        logger = logging.getLogger("distributed.worker")
        if not any(isinstance(f, _QuietMppTaskErrors) for f in logger.filters):
            logger.addFilter(_QuietMppTaskErrors())


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
