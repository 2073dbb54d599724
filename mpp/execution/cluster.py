"""The warehouse's nodes: a Dask cluster.

By default a LocalCluster on this machine (workers play the MPP nodes, threads the slices);
given a scheduler address, any existing Dask cluster. Nothing else in mpp assumes one machine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dask
from dask.utils import format_bytes, parse_bytes
from distributed import Client, LocalCluster
from distributed.comm import connect as comm_connect
from distributed.comm.addressing import get_address_host_port, parse_address
from distributed.comm.registry import get_backend
from distributed.deploy.cluster import Cluster as DaskCluster
from distributed.diagnostics.plugin import WorkerPlugin
from distributed.security import Security
from distributed.system import MEMORY_LIMIT

from mpp import limits
from mpp.errors import ClusterError
from mpp.execution.watch import DEFAULT_STALL_TIMEOUT, memory_warning

# Seconds to wait for an existing scheduler to answer. Dask's own default (30 s, retried) made a
# wrong address look like a hang; a scheduler that is up answers in milliseconds.
DEFAULT_CONNECT_TIMEOUT = 10.0
# Times the scheduler of a LocalCluster mpp starts runs a task again after its worker died
# while running it (Dask's distributed.scheduler.allowed-failures, whose default is also 3);
# then the query fails naming the task. A task that raises is never retried (see run.py).
DEFAULT_ALLOWED_FAILURES = 3


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """How to get a cluster: an existing scheduler address, or a LocalCluster's shape.

    The LocalCluster listens on ``host`` only, loopback by default: its scheduler, workers and
    dashboard are not reachable from other machines unless ``host`` (scheduler and workers) or
    ``dashboard_address`` (the dashboard, e.g. ``"0.0.0.0:8787"``) say so.
    """

    scheduler: str | None = None  # e.g. "tcp://10.0.0.5:8786"; None starts a LocalCluster
    workers: int = 2
    threads_per_worker: int = 1
    memory_limit: str | None = "auto"  # per worker, e.g. "4GiB"
    # ":8787" for the usual port on ``host``; "0.0.0.0:8787" exposes it; None disables it
    dashboard_address: str | None = "127.0.0.1:0"
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT  # seconds to reach ``scheduler``
    host: str = "127.0.0.1"  # the interface the LocalCluster's scheduler and workers listen on
    # seconds in a row a running query may find no worker able to run its tasks (see watch.py)
    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    allowed_failures: int = DEFAULT_ALLOWED_FAILURES  # LocalCluster: reruns after worker deaths

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
        failures = self.allowed_failures
        if isinstance(failures, bool) or not isinstance(failures, int) or failures < 0:
            raise ClusterError(f"ClusterSpec.allowed_failures must be an integer >= 0, "
                               f"got {failures!r}")
        for name, limit in (("connect_timeout", limits.CONNECT_TIMEOUT),
                            ("stall_timeout", limits.STALL_TIMEOUT)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ClusterError(f"ClusterSpec.{name} must be a number of seconds > 0, "
                                   f"got {value!r}")
            if limit.problem(value):
                raise ClusterError(f"ClusterSpec.{name} {limit.problem(value)}")
        if not isinstance(self.host, str) or not self.host:
            raise ClusterError(f"ClusterSpec.host must be an interface address such as "
                               f"'127.0.0.1', got {self.host!r}")


    def local_dashboard_address(self) -> str | None:
        """``dashboard_address`` with ``host`` filled in where it names only a port
        (``":0"``, ``":8787"``): Dask would listen on every interface for those."""
        address = self.dashboard_address
        if address is None or not address.startswith(":"):
            return address
        return f"{self.host}{address}"


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
            with _sigint_ignored(), dask.config.set({  # Ctrl-C is ours (we close the workers)
                    "distributed.scheduler.allowed-failures": self.spec.allowed_failures}):
                self._local = _RestartingLocalCluster(
                    n_workers=self.spec.workers,
                    threads_per_worker=self.spec.threads_per_worker,
                    memory_limit=self.spec.memory_limit,
                    host=self.spec.host,
                    dashboard_address=self.spec.local_dashboard_address(),
                    # Without a dashboard the scheduler still serves /health on an HTTP port,
                    # by default 8787 (warning when another cluster has it): any free one.
                    scheduler_kwargs=({"dashboard_address": f"{self.spec.host}:0"}
                                      if self.spec.dashboard_address is None else None),
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

    def health_warning(self) -> str | None:
        """A warning if workers are paused or short of memory before anything runs (see
        :func:`mpp.execution.watch.memory_warning`), else None."""
        return memory_warning(self.client)

    def total_threads(self) -> int:
        """Threads across all workers: the warehouse's slices."""
        return max(1, sum(self._nthreads().values()))

    def worker_count(self) -> int:
        """Workers currently connected: the warehouse's nodes."""
        return max(1, len(self._nthreads()))

    def _nthreads(self) -> dict[str, int]:
        """Threads per worker, or a :class:`ClusterError` if the scheduler is gone: a client
        that lost it keeps reconnecting for ``connect_timeout`` seconds, and every call to it
        would wait that long, then fail with a comm error."""
        address = getattr(self.client.scheduler, "address", None) or "(unknown)"
        lost = ClusterError(f"lost the connection to the Dask scheduler at {address} (it "
                            "stopped or the network failed); run again when it is back")
        if self.client.status != "running":
            raise lost
        try:
            return dict(self.client.nthreads())
        except OSError:
            raise lost from None

    def close(self) -> None:
        """Close the client and, if we started one, the LocalCluster."""
        if self._local is not None:
            # A worker heartbeat in flight while the LocalCluster shuts down logs a
            # "Failed to communicate with scheduler during heartbeat" traceback (dask/distributed
            # #7105); our workers are about to go, so their heartbeats stop first.
            with contextlib.suppress(Exception):
                self.client.run(_stop_heartbeat)
        if self._owns_client:
            # A client that lost its scheduler is still trying to reconnect; closing it cancels
            # that, and Dask logs the cancellation as an error with a traceback.
            with _quiet("distributed.client"):
                self.client.close()
        if self._local is not None:
            self._local.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PlanOnly(Cluster):
    """A cluster of a given size that plans but never runs: ``mpp explain`` without
    ``--analyze`` plans from catalog statistics and settings alone, and starts no workers.

    Its worker and thread counts are what the planner sizes exchanges for; anything that would
    run tasks (its ``client``) is a clear error rather than a hang or a LocalCluster started
    behind the user's back.
    """

    def __init__(self, workers: int, threads_per_worker: int = 1):
        if workers < 1 or threads_per_worker < 1:
            raise ClusterError(f"a planned cluster needs at least 1 worker and 1 thread "
                               f"(got {workers} x {threads_per_worker})")
        self.spec = ClusterSpec(workers=workers, threads_per_worker=threads_per_worker)
        self._local = None
        self._owns_client = False
        self._workers, self._threads = workers, threads_per_worker

    @property  # type: ignore[override]
    def client(self) -> Client:
        raise ClusterError("this session only plans (no cluster was started): run the "
                           "statement with a cluster, e.g. `mpp sql` or `mpp explain --analyze`")

    @property
    def dashboard_link(self) -> str | None:
        return None

    def health_warning(self) -> str | None:
        return None

    def total_threads(self) -> int:
        return self._workers * self._threads

    def worker_count(self) -> int:
        return self._workers

    def close(self) -> None:
        """Nothing to close."""


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


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Drop every record of logger ``logger_name`` while the block runs."""
    logger = logging.getLogger(logger_name)
    drop = _DropAll()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


class _RestartingLocalCluster(LocalCluster):
    """A LocalCluster that never closes a nanny because its worker was lost.

    Each worker runs under a nanny that restarts it when it dies (killed, out of memory).
    SpecCluster also closes a lost worker's nanny ``distributed.deploy.lost-worker-timeout``
    (15 s) after a worker leaves, unless a worker of that name is registered by then: a worker
    that dies twice within 15 s, or takes long to restart on a busy machine, is found
    "missing" by the first death's timer while its nanny restarts it, and the nanny is closed
    for good (the cluster has one worker less until it is restarted). Seen with distributed
    2026.8; dask/distributed#3088 made the check by name. Here the nanny alone decides.
    """

    def _update_worker_status(self, op: str, msg: Any) -> None:
        DaskCluster._update_worker_status(self, op, msg)  # skip SpecCluster's lost-worker timer


def _connect(address: str, timeout: float) -> Client:
    """A Client of the scheduler at ``address``, or a :class:`ClusterError` saying why not.

    :func:`probe_scheduler` first: a Client waits forever for the handshake of a listener that
    is not a Dask scheduler (an HTTP server, a socket that never answers), whatever its
    ``timeout``.
    """
    check_scheduler_address(address)
    probe_scheduler(address, timeout)
    try:
        return Client(address, timeout=timeout)
    except OSError:  # includes TimeoutError: the scheduler went away since the probe
        raise ClusterError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
                           "(is `dask scheduler` running there?)") from None


async def _identity(address: str, timeout: float) -> Any:
    """The answer of the Dask server at ``address`` to ``identity`` (no deadline of its own)."""
    comm = await comm_connect(address, timeout=timeout,
                              **Security().get_connection_args("client"))
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()


async def _probe(address: str, timeout: float) -> tuple[bool, Any]:
    """(whether something accepts connections at ``address``, its identity or None), all
    within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    scheme, _ = parse_address(address)
    if scheme == "tcp":  # tells "nothing listens" from "something listens but is not Dask"
        host, port = get_address_host_port(address)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except OSError:  # TimeoutError included
            return False, None
        writer.close()
    try:
        left = max(0.01, deadline - loop.time())
        return True, await asyncio.wait_for(_identity(address, left), left)
    except (OSError, ValueError, TypeError):  # TimeoutError is an OSError
        return scheme == "tcp", None


def probe_scheduler(address: str, timeout: float) -> None:
    """Raise :class:`ClusterError` unless a Dask scheduler answers at ``address`` within
    ``timeout`` seconds: one hard deadline for connecting, the handshake and the answer.

    Runs on its own event loop in a helper thread, so it also works where an event loop is
    already running (a notebook).
    """
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mpp-probe")
    try:
        listening, answer = pool.submit(asyncio.run, _probe(address, timeout)).result(
            timeout=timeout + 5)
    except concurrent.futures.TimeoutError:  # belt and braces: the loop itself hung
        listening, answer = True, None
    finally:
        pool.shutdown(wait=False)
    kind = answer.get("type") if isinstance(answer, dict) else None
    if kind == "Scheduler":
        return
    if kind is not None:
        raise ClusterError(f"{address} is a Dask {str(kind).lower()}, not a scheduler: give the "
                           "scheduler's address (tcp://host:8786)")
    if listening:
        raise ClusterError(f"{address} accepts connections but did not answer as a Dask "
                           f"scheduler within {timeout:g} s (is it a scheduler's port?)")
    raise ClusterError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
                       "(is `dask scheduler` running there?)")


class _QuietMppTaskErrors(logging.Filter):
    """Drops a worker's "Compute Failed" record: the client re-raises the task's exception.

    An MppError (``bytes / 0``, a corrupt file) is bad input that the CLI prints as one line;
    any other exception is a bug whose full traceback, worker frames included, the CLI writes
    to a crash report (:mod:`mpp.crash`). Either way the worker's copy on the terminal only
    buries that line. Every other worker record still gets through.

    It also cuts the traceback off "Worker stream died during communication" (a worker
    fetching a task's input from a worker that just died): the scheduler recomputes what was
    lost, and the line itself says what happened.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Worker stream died"):
            record.exc_info, record.exc_text = None, None
            return True
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

    Without a scheduler (lost mid-query) nothing can be cancelled or asked: this returns at
    once, so the error that brought the caller here is the one reported. A write task still
    running then may leave a file behind; readers never see it (they list files from the
    catalog only).
    """
    keys = [str(f.key) for f in futures]
    if client.status != "running":
        return
    try:
        client.cancel(list(futures))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = client.run(_running_keys, keys)
            if not any(busy.values()):
                return
            time.sleep(0.05)
    except OSError:  # the scheduler went away meanwhile (TimeoutError included)
        return
