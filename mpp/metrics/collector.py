"""Collect task records without making the result depend on them.

Every task appends its :class:`~mpp.metrics.records.TaskRecord` to a buffer local to the
worker process, keyed by query id; after the query the session pulls (and clears) each
worker's buffer with ``client.run(drain, query_id)``. The graph's result keys therefore stay
the query's data only, and 1,000 metric objects never become 1,000 extra Dask keys.
"""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mpp.metrics.records import TaskRecord

_BUFFER: dict[str, list[TaskRecord]] = {}
_LOCK = threading.Lock()
_CPU_AT_START: dict[str, float] = {}  # query id -> this process's CPU seconds at its first task


def task_started(query_id: str) -> None:
    """Note this process's CPU time when its first task of ``query_id`` starts, so that the
    drain can report the CPU the process spent on the query beyond the task bodies (receiving,
    deserialising and sending tasks and their data)."""
    if query_id not in _CPU_AT_START:
        _CPU_AT_START.setdefault(query_id, time.process_time())


_AT_DRAIN: list[Callable[[str], None]] = []  # what else a process drops once a query ends


def at_drain(release: Callable[[str], None]) -> None:
    """Call ``release(query_id)`` whenever a query's records are drained (its tasks are all
    done): state a worker keeps for one query, such as a shared join table, goes with them."""
    if release not in _AT_DRAIN:
        _AT_DRAIN.append(release)


def record(rec: TaskRecord) -> None:
    """Keep ``rec`` in this process's buffer until the session drains it."""
    with _LOCK:
        _BUFFER.setdefault(rec.query_id, []).append(rec)


def drain(query_id: str) -> list[TaskRecord]:
    """Remove and return this process's records of ``query_id`` (run on each worker)."""
    for release in _AT_DRAIN:
        release(query_id)
    with _LOCK:
        return _BUFFER.pop(query_id, [])


def drain_pickled(query_id: str) -> bytes:
    """:func:`drain`, pickled in one piece: Dask serialises a returned list item by item,
    which cost ~25 ms for a 1,000-task query's records; one bytes object costs ~3 ms.

    With the records goes the CPU seconds this process used since its first task of the query
    started (0 when it ran none)."""
    start = _CPU_AT_START.pop(query_id, None)
    cpu = time.process_time() - start if start is not None else 0.0
    return pickle.dumps((drain(query_id), cpu), protocol=pickle.HIGHEST_PROTOCOL)


def worker_address() -> str:
    """Address of the Dask worker running the current task ("local" outside a worker)."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "local"


def collect(client: Any, query_id: str) -> list[TaskRecord]:
    """Pull the records of ``query_id`` from every worker (and this process), by start time."""
    return collect_with_cpu(client, query_id)[0]


def collect_with_cpu(client: Any, query_id: str) -> tuple[list[TaskRecord], float]:
    """:func:`collect`, and the CPU seconds the worker processes used from their first task
    of the query to the collection (task bodies and everything around them), summed."""
    per_worker = [pickle.loads(blob) for blob in client.run(drain_pickled, query_id).values()]
    _CPU_AT_START.pop(query_id, None)  # tasks this process ran itself are not a worker's
    records = [r for recs, _ in per_worker for r in recs] + drain(query_id)
    return (sorted(records, key=lambda r: (r.stage, r.start)),
            sum(cpu for _, cpu in per_worker))


@contextmanager
def timed() -> Iterator[list[float]]:
    """Measure wall-clock start and stop (epoch seconds) into the yielded two-item list."""
    span = [time.time(), 0.0]
    try:
        yield span
    finally:
        span[1] = time.time()
