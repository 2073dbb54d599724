"""Waiting for a query's tasks while watching the cluster, so a fault is said, not waited out.

``client.get(..., sync=True)`` waits as long as the scheduler has work left: with every worker
gone, or every worker paused by Dask's memory monitor, that is forever, and nothing is said.
:class:`Watch` waits on the futures instead and, once a second, asks the scheduler how its
workers are. A cluster that cannot run the query (the scheduler does not answer, no worker is
connected, every worker is paused) for ``stall_timeout`` seconds in a row ends the wait with a
:class:`~mpp.errors.ClusterFaultError` naming the query, the stages whose tasks are stuck and the
workers' memory limit. A healthy cluster resets the clock: a slow task is never a fault.

Faults Dask reports itself become the same error, naming the task: ``KilledWorker`` (a task's
worker died ``allowed-failures + 1`` times, usually out of memory) and the futures cancelled when
the client lost the scheduler. An :class:`~mpp.errors.MppError` a task raised (bad input, such as
a division by zero) is re-raised as it is; Dask does not retry it (``retries=0``).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import distributed
from distributed.client import FutureCancelledError, FuturesCancelledError
from distributed.comm.core import CommClosedError
from distributed.scheduler import KilledWorker

from mpp.errors import ClusterFaultError

# Seconds the cluster may be unable to run a query (no workers, all paused, no scheduler)
# before the query fails. A worker the nanny restarts is back within seconds; Dask's memory
# monitor unpauses a worker as soon as its memory falls below the pause threshold.
DEFAULT_STALL_TIMEOUT = 30.0
_POLL_SECONDS = 1.0  # between health checks; a query shorter than this is never polled
_ASK_TIMEOUT = 10.0  # seconds one question to the scheduler may take
# Seconds between asking for the state of every key of the query while the cluster is healthy
# (every check when it is not). The answer only serves an error's text, and the question is
# the graph's size: ~9 ms of CPU at 5,000-11,000 keys in the process that runs a LocalCluster's
# scheduler, once a second for the whole query.
_STUCK_EVERY = 10.0
# Scheduler states of a task that could run now (or runs) but has not finished.
_READY = frozenset({"processing", "queued", "no-worker"})
# "stage2-final-agg-1a2b3c4d" (tuple keys) or "stage3-write-1a2b3c4d-5" (CTAS write tasks)
_KEY_NAME = re.compile(r"^(?P<stage>stage\d+(?:-[a-z]+)*)-[0-9a-f]{8}(?:-(?P<part>\d+))?$")


def describe_task(key: Any) -> str:
    """A task key as the user reads it: ``stage1-scan-partial-agg partition 3``.

    Keys are named by :mod:`mpp.execution.graph` (``(f"{stage name}-{token}", i)``); a key of
    another shape is shown as it is.
    """
    name, part = (key[0], key[1]) if isinstance(key, tuple) and len(key) == 2 else (key, None)
    match = _KEY_NAME.match(str(name))
    if match is None:
        return str(key)
    if part is None and match.group("part") is not None:
        part = int(match.group("part"))
    return match.group("stage") + ("" if part is None else f" partition {part}")


def _stage_of(key: Any) -> str:
    return describe_task(key).split(" partition ")[0]


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


@dataclass
class _Health:
    """One answer of the scheduler about its workers (or why there was none)."""

    problem: str | None  # None: the cluster can run tasks
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def limit(self) -> str | None:
        """The workers' memory limit (``1,024 MiB``; several if they differ), None if none."""
        limits = sorted({w.get("memory_limit") or 0 for w in self.workers.values()} - {0})
        return "/".join(_mib(x) for x in limits) or None

    def memory(self) -> str:
        """The workers' memory use and limit, e.g. ``memory 250-262 MiB of 286 MiB each``."""
        limits = {w.get("memory_limit") or 0 for w in self.workers.values()}
        used = [w.get("metrics", {}).get("memory", 0) for w in self.workers.values()]
        if not self.workers or limits == {0}:
            return "no memory limit"
        span = _mib(min(used)) if min(used) == max(used) else \
            f"{min(used) / 2**20:,.0f}-{_mib(max(used))}"
        return f"memory {span} of {'/'.join(_mib(x) for x in sorted(limits))} each"


def memory_warning(client: distributed.Client) -> str | None:
    """What is wrong with the cluster's memory before a query runs, or None: paused workers,
    or workers already above Dask's spill threshold (``distributed.worker.memory.spill``,
    70% of their limit by default) while idle, which Dask will pause once tasks add to it."""
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]
    except Exception:  # a cluster that does not answer is reported when a query runs
        return None
    paused = [a for a, w in workers.items() if w.get("status") == "paused"]
    spill = dask.config.get("distributed.worker.memory.spill", 0.7) or 1.0
    full = [a for a, w in workers.items() if w.get("memory_limit")
            and w.get("metrics", {}).get("memory", 0) >= spill * w["memory_limit"]]
    if not paused and not full:
        return None
    memory = _Health(None, dict(workers)).memory()
    if paused:
        what = (f"{len(paused)} of {len(workers)} workers "
                f"{'is' if len(paused) == 1 else 'are'} paused by Dask's memory monitor")
    else:
        what = (f"{len(full)} of {len(workers)} workers already "
                f"{'uses' if len(full) == 1 else 'use'} over {spill:.0%} of "
                f"{'its' if len(full) == 1 else 'their'} memory limit while idle")
    return (f"{what} ({memory}); queries may stall and then fail: raise the workers' "
            "memory limit or use fewer workers")


class _AllDone:
    """Set once every one of ``futures`` is done (finished, erred or cancelled).

    One done-callback a future, registered once. ``distributed.wait(futures, timeout=1)``
    called once a second instead starts a waiter task per future on the client's event loop at
    every call, and a call that times out leaves them behind, so each later completion wakes
    all of them: in a 2,048-bucket query (2,048 result futures, 30 s) that was about 40% of the
    client process's CPU, the process that also runs a LocalCluster's scheduler.
    """

    def __init__(self, futures: Sequence[distributed.Future]):
        self._left = len(futures)
        self._lock = threading.Lock()
        self._done = threading.Event()
        if not futures:
            self._done.set()
        for future in futures:
            future.add_done_callback(self._one_done)

    def _one_done(self, _future: distributed.Future) -> None:
        with self._lock:
            self._left -= 1
            if self._left <= 0:
                self._done.set()

    def wait(self, timeout: float) -> bool:
        """Whether every future is done, waiting up to ``timeout`` seconds for it."""
        return self._done.wait(timeout)


class Watch:
    """Waits for the futures of one query and turns cluster faults into ClusterFaultError.

    Args:
        client: the query's Dask client.
        query_id: named in every error.
        keys: every key of the query's graph, to find the stages whose tasks are stuck.
        stall_timeout: seconds in a row the cluster may be unable to run tasks.
    """

    def __init__(self, client: distributed.Client, query_id: str, keys: Collection[Any],
                 stall_timeout: float = DEFAULT_STALL_TIMEOUT):
        self.client = client
        self.query_id = query_id
        self.keys = list(keys)
        self.stall_timeout = stall_timeout
        self._stuck = ""  # last known stages with tasks not finished (for a lost scheduler)
        self._stuck_at = -float("inf")  # when (time.monotonic) _stuck was asked for
        self._health = _Health(None)
        self._seen = self._health  # the last answer that listed workers

    def gather(self, futures: Sequence[distributed.Future]) -> list[Any]:
        """The futures' results, once all are done; a fault raises ClusterFaultError."""
        self.wait(futures)
        try:
            return list(self.client.gather(list(futures)))
        # a task's own OSError (a file it could not read) passes through: only a broken
        # connection (CommClosedError) is the cluster's
        except (KilledWorker, FutureCancelledError, FuturesCancelledError,
                CommClosedError) as exc:
            raise self.fault(exc) from None

    def wait(self, futures: Sequence[distributed.Future]) -> None:
        """Return when every future is finished, erred or cancelled (see the module; a
        cancelled future is done too, and :meth:`gather` says why)."""
        done = _AllDone(futures)
        unhealthy_since: float | None = None
        while not done.wait(_POLL_SECONDS):
            health = self._check()
            if health.problem is None:
                unhealthy_since = None
                continue
            now = time.monotonic()
            unhealthy_since = now if unhealthy_since is None else unhealthy_since
            if now - unhealthy_since >= self.stall_timeout:
                raise ClusterFaultError(
                    f"query {self.query_id} cannot make progress: {health.problem} for "
                    f"{self.stall_timeout:g} s (the stall timeout, --stall-timeout)"
                    f"{self._stuck_text()}",
                    query_id=self.query_id)

    def fault(self, exc: BaseException) -> ClusterFaultError:
        """The ClusterFaultError saying what ``exc`` (a Dask fault) did to this query."""
        qid = self.query_id
        if isinstance(exc, KilledWorker):
            limit = self._limit_text()
            return ClusterFaultError(
                f"query {qid}: task {describe_task(exc.task)} killed its worker "
                f"{exc.allowed_failures + 1} times (the last {exc.last_worker.address}); Dask "
                f"gives up on a task after allowed-failures = {exc.allowed_failures} retries. "
                f"A worker dies like this when the task needs more memory than the worker's "
                f"limit{limit}: raise memory_limit or split the data into more partitions",
                query_id=qid, task=describe_task(exc.task))
        reason = (exc.reason if isinstance(exc, FutureCancelledError) else
                  exc.error_groups[0].reason if isinstance(exc, FuturesCancelledError) else None)
        if reason not in (None, "scheduler-connection-lost"):
            return ClusterFaultError(f"query {qid}: its tasks were cancelled ({reason})",
                                     query_id=qid)
        return ClusterFaultError(
            f"query {qid}: lost the connection to the Dask scheduler at "
            f"{self._scheduler_address()}{self._stuck_text()}; the scheduler stopped or the "
            "network failed, so the query's results are gone: run it again when the cluster "
            "is back", query_id=qid)

    def _check(self) -> _Health:
        """Ask the scheduler about its workers (and, if they cannot work, about our tasks)."""
        try:
            if self.client.status not in ("running", "connecting"):
                raise OSError("client closed")
            info = self.client.sync(self.client.scheduler.identity, n_workers=-1,
                                    callback_timeout=_ASK_TIMEOUT)
        except (OSError, TimeoutError):
            self._health = _Health(
                f"the scheduler at {self._scheduler_address()} does not answer",
                self._health.workers)
            return self._health
        workers = dict(info.get("workers", {}))
        health = _Health(None, workers)
        if not workers:
            health.problem = "no worker is connected to the scheduler"
        elif all(w.get("status") == "paused" for w in workers.values()):
            pause = dask.config.get("distributed.worker.memory.pause", 0.8)
            share = f" ({pause:.0%} of their memory limit)" if pause else ""
            health.problem = (f"all {len(workers)} workers are paused by Dask's memory "
                              f"monitor{share}, {health.memory()}")
        self._health = health
        if workers:
            self._seen = health
        # kept: if the scheduler goes, it is what we knew (at most _STUCK_EVERY s old)
        now = time.monotonic()
        if health.problem is not None or now - self._stuck_at >= _STUCK_EVERY:
            self._stuck, self._stuck_at = self._stuck_stages(), now
        return health

    def _stuck_stages(self) -> str:
        """``stage1-scan-partial-agg (3 ready), stage2-final-agg (4 waiting)``: the stages
        with tasks not finished, in plan order (waiting: for inputs not computed yet, or lost
        with a worker)."""
        with contextlib.suppress(OSError, TimeoutError):
            states = self.client.sync(self.client.scheduler.get_task_status, keys=self.keys,
                                      callback_timeout=_ASK_TIMEOUT)
            counts: dict[str, Counter[str]] = {}
            for key in self.keys:
                state = states.get(key)
                kind = "ready" if state in _READY else "waiting" if state == "waiting" else None
                if kind is not None:
                    counts.setdefault(_stage_of(key), Counter())[kind] += 1
            return ", ".join(
                f"{stage} ({', '.join(f'{n} {kind}' for kind, n in sorted(c.items()))})"
                for stage, c in counts.items())
        return self._stuck

    def _stuck_text(self) -> str:
        return f"; tasks not finished: {self._stuck}" if self._stuck else ""

    def _limit_text(self) -> str:
        """`` (1,024 MiB)``: the memory limit of the workers (seen now, or at the last check;
        a killed worker may still be restarting)."""
        with contextlib.suppress(Exception):
            self.client.wait_for_workers(1, timeout=5)
        with contextlib.suppress(Exception):
            self._check()
        limit = self._health.limit() or self._seen.limit()
        return f" ({limit})" if limit else ""

    def _scheduler_address(self) -> str:
        try:
            return str(self.client.scheduler.address)
        except Exception:  # no rpc left after close
            return "(unknown)"
