"""Per-task records: the raw measurements every summary, report and what-if replay reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """What one partition task of one query did.

    Attributes:
        query_id: the query the task belonged to.
        stage: stage number in the executed physical plan.
        name: the task group, i.e. the Dask key prefix, e.g. ``"stage1-scan-aggregate"``.
        key: the full Dask key as a string.
        partition: partition index within the stage.
        worker: address of the worker that ran it.
        start, stop: wall-clock seconds (epoch) on the worker.
        rows_in: rows the task consumed (scanned, or received through an exchange).
        rows_out: rows the task produced.
        bytes_read: bytes read from storage.
        bytes_sent: bytes the task handed to an exchange (Arrow buffer sizes).
        hot_keys: the most frequent group/join key values the task held, with row counts,
            for straggler attribution.
        join_rows: rows that entered the task's hash joins: (probe/left side, build/right
            side). A broadcast build side, built once per worker and shared by its tasks,
            counts in the task that built it.
        join_builds: hash tables the task built for its joins.
        partial_skipped: partial steps (aggregate, top-N) that stopped reducing in the task;
            for a combine task, the producer outputs it passed on without merging them
            (``aggregate.partial_skip_ratio``).
        cpu_s: CPU seconds the task body's thread used (``time.thread_time`` around it), or
            None when not measured. Beside the wall duration it separates the task's own work
            (what scales with the cluster) from time spent waiting for a core (what CPU
            contention on the measuring machine added); see :mod:`mpp.metrics.whatif`.
    """

    query_id: str
    stage: int
    name: str
    key: str
    partition: int
    worker: str
    start: float
    stop: float
    rows_in: int = 0
    rows_out: int = 0
    bytes_read: int = 0
    bytes_sent: int = 0
    hot_keys: tuple[tuple[Any, int], ...] = ()
    join_rows: tuple[int, int] = (0, 0)
    join_builds: int = 0
    cpu_s: float | None = None
    partial_skipped: int = 0

    def __reduce__(self) -> tuple[Any, ...]:
        # A plain tuple of fields: ~1,000 records cross from the workers after every query.
        return TaskRecord, (self.query_id, self.stage, self.name, self.key, self.partition,
                            self.worker, self.start, self.stop, self.rows_in, self.rows_out,
                            self.bytes_read, self.bytes_sent, self.hot_keys, self.join_rows,
                            self.join_builds, self.cpu_s, self.partial_skipped)

    @property
    def duration(self) -> float:
        """Seconds the task ran."""
        return self.stop - self.start

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        d = asdict(self)
        d["hot_keys"] = [[format_key(k), n] for k, n in self.hot_keys]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskRecord:
        """The record :meth:`to_dict` wrote (a saved report's), to replay it again; hot keys
        come back as the text the report shows them as."""
        return cls(**{**d, "hot_keys": tuple((k, n) for k, n in d.get("hot_keys", ())),
                      "join_rows": tuple(d.get("join_rows", (0, 0)))})


def format_key(value: Any) -> str:
    """A hot key as SQL people read it: ``2017-01-13``, ``(2017-01-13, 85410)``, ``NULL``.

    A key of several columns is a tuple; ``str`` of it would show its items' Python reprs
    (``datetime.date(2017, 1, 13)``).
    """
    if isinstance(value, tuple):
        return "(" + ", ".join(format_key(v) for v in value) + ")"
    return "NULL" if value is None else str(value)
