"""Consumers in the three delivery modes, the two de-duplications, and a pipeline run.

Where the consumer commits its offset decides the semantics of the broker -> consumer hop:

* ``AT_MOST_ONCE``: commit, then process. A crash after the commit loses the batch; nothing
  is ever processed twice by the consumer. The producer does not retry either. (A hop that
  duplicates on its own, the broker's ``duplicate_delivery`` fault, still breaks it.)
* ``AT_LEAST_ONCE``: process, then commit. A crash before the commit processes the batch
  again after the restart (duplicates), never loses it. The producer retries until acked.
* ``EXACTLY_ONCE``: at-least-once on every hop plus de-duplication at the end of the path
  (the seed's recipe): a bounded window of recently seen unique IDs (:class:`RecentIds`),
  which lets a duplicate through once its original has left the window.

Bulk files are de-duplicated by (file, offset) instead (:class:`OffsetDedup`): a chunk that
is delivered again names the same place in the same file.

:func:`run` drives producers, an :class:`~mpp.ingest.broker.EmbeddedBroker` and one consumer
group with seeded crashes and broker restarts, and hands back the ledger, what reached the
end and the checker's counts.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import pyarrow as pa

from mpp.ingest.broker import Broker, EmbeddedBroker, FaultCounts, Faults, Record
from mpp.ingest.checker import DELIVERED_SCHEMA, Check, check
from mpp.ingest.producers import Ledger, Producer, plan_all, send


class DeliveryMode(Enum):
    """The three delivery semantics (values as the seed names them)."""

    AT_MOST_ONCE = "at-most-once"
    AT_LEAST_ONCE = "at-least-once"
    EXACTLY_ONCE = "exactly-once"


class RecentIds:
    """A bounded window of the most recent unique IDs (first in, first out).

    The seed's compromise: remembering every ID grows without bound, so only the last
    ``capacity`` are kept and a duplicate arriving later than that slips through.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"window capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._ids: set[str] = set()
        self._order: deque[str] = deque()
        self.dropped = 0

    def admit(self, message_id: str) -> bool:
        """True for an ID not in the window (it is remembered); False for a duplicate."""
        if message_id in self._ids:
            self.dropped += 1
            return False
        self._ids.add(message_id)
        self._order.append(message_id)
        if len(self._order) > self.capacity:
            self._ids.discard(self._order.popleft())
        return True

    def memory_bytes(self) -> int:
        """Memory the window holds now: the set, the queue and the ID strings."""
        return (sys.getsizeof(self._ids) + sys.getsizeof(self._order)
                + sum(sys.getsizeof(i) for i in self._order))


class OffsetDedup:
    """De-duplication of bulk chunks by (file, offset): a chunk is loaded once."""

    def __init__(self) -> None:
        self._done: set[tuple[str, int]] = set()
        self.dropped = 0

    def admit(self, file: str, offset: int) -> bool:
        """True the first time (file, offset) is seen; False for a re-delivered chunk."""
        if (file, offset) in self._done:
            self.dropped += 1
            return False
        self._done.add((file, offset))
        return True


def bulk_chunks(table: pa.Table, file: str, chunk_rows: int) -> Iterator[tuple[str, int, pa.Table]]:
    """A landed file as (file, row offset, chunk) pieces, the unit of a bulk transfer."""
    for offset in range(0, table.num_rows, chunk_rows):
        yield file, offset, table.slice(offset, chunk_rows)


def window_tradeoff(ids: Sequence[str], capacities: Iterable[int]) -> list[dict]:
    """For each window size: peak memory and the duplicates that slip through it.

    ``ids`` is the sequence of IDs as they reach the end of an at-least-once path.
    """
    out = []
    for cap in capacities:
        w = RecentIds(cap)
        passed = [i for i in ids if w.admit(i)]
        out.append({"capacity": cap, "memory_bytes": w.memory_bytes(),
                    "slipped_duplicates": len(passed) - len(set(passed)),
                    "removed_duplicates": w.dropped})
    return out


class Collector:
    """The end of the path in memory: every record that arrived, with its arrival time."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.arrived_ns: list[int] = []

    def __call__(self, records: Sequence[Record]) -> None:
        now = time.time_ns()
        self.records.extend(records)
        self.arrived_ns.extend([now] * len(records))

    def delivered(self) -> pa.Table:
        """One row per arrived copy (:data:`~mpp.ingest.checker.DELIVERED_SCHEMA`)."""
        return pa.table([pa.array([r.message_id for r in self.records], pa.string()),
                         pa.array(self.arrived_ns, pa.int64())], schema=DELIVERED_SCHEMA)


@dataclass(frozen=True)
class ConsumerFaults:
    """Seeded crashes per polled batch: before or after the offset commit; broker restarts."""

    seed: int = 0
    crash_before_commit: float = 0.0
    crash_after_commit: float = 0.0
    broker_restart: float = 0.0


@dataclass
class ConsumerCounts:
    """What the consumer loop did (beside the broker's injected faults)."""

    polls: int = 0
    batches: int = 0
    crashes_before_commit: int = 0
    crashes_after_commit: int = 0
    broker_restarts: int = 0
    deduplicated: int = 0


@dataclass
class Consumer:
    """One member of a consumer group, looping poll -> (commit) -> process -> (commit).

    ``end`` receives the records that passed de-duplication (exactly-once only). The
    ``window`` belongs to the end of the path, so it outlives a crash of this consumer.
    """

    broker: Broker
    group: str
    topic: str
    member: str
    mode: DeliveryMode
    end: Callable[[Sequence[Record]], None]
    window: RecentIds | None = None
    faults: ConsumerFaults = field(default_factory=ConsumerFaults)
    max_records: int = 50
    counts: ConsumerCounts = field(default_factory=ConsumerCounts)

    def __post_init__(self) -> None:
        self._gen = np.random.default_rng(self.faults.seed)
        if self.mode is DeliveryMode.EXACTLY_ONCE and self.window is None:
            self.window = RecentIds(100_000)
        self.broker.subscribe(self.group, self.topic, self.member)

    def _chance(self, p: float) -> bool:
        return p > 0 and bool(self._gen.random() < p)

    def _crash(self) -> None:
        self.broker.leave(self.group, self.topic, self.member)
        self.broker.subscribe(self.group, self.topic, self.member)

    def _process(self, records: list[Record]) -> None:
        if self.window is not None and self.mode is DeliveryMode.EXACTLY_ONCE:
            kept = [r for r in records if self.window.admit(r.message_id)]
            self.counts.deduplicated += len(records) - len(kept)
            records = kept
        self.end(records)

    def step(self, timeout: float = 0.0) -> int:
        """One poll and what follows it; returns the number of records polled."""
        records = self.broker.poll(self.group, self.topic, self.member, self.max_records,
                                   timeout)
        self.counts.polls += 1
        if not records:
            return 0
        self.counts.batches += 1
        commit_first = self.mode is DeliveryMode.AT_MOST_ONCE
        if not commit_first:
            self._process(records)
        if self._chance(self.faults.crash_before_commit):
            self.counts.crashes_before_commit += 1
            self._crash()
            return len(records)
        if self._chance(self.faults.broker_restart) and isinstance(self.broker, EmbeddedBroker):
            self.counts.broker_restarts += 1  # the broker restarts as the commit arrives
            self.broker.restart()
            return len(records)
        self.broker.commit(self.group, self.topic, self.member, records)
        if self._chance(self.faults.crash_after_commit):
            self.counts.crashes_after_commit += 1
            self._crash()
            if commit_first:
                return len(records)  # committed, never processed: lost
        if commit_first:
            self._process(records)
        return len(records)


@dataclass
class RunResult:
    """A pipeline run: the ledger, what arrived at the end, the counts."""

    mode: DeliveryMode
    ledger: pa.Table
    delivered: pa.Table
    check: Check
    broker_faults: FaultCounts
    consumer: ConsumerCounts
    window: RecentIds | None


def run(producers: Sequence[Producer], n: int, *, mode: DeliveryMode,
        faults: Faults | None = None, consumer_faults: ConsumerFaults | None = None,
        partitions: int = 4, window: int = 100_000, chunk: int = 200,
        max_records: int = 50, retries: int = 8,
        restart_after_chunks: Iterable[int] = ()) -> RunResult:
    """Send ``n`` messages per producer through an embedded broker to one consumer.

    The producers send in chunks of ``chunk`` messages; after each chunk the consumer polls
    until the group has no lag. At-most-once producers do not retry; the others retry an
    unacknowledged publish up to ``retries`` times. The broker restarts right after sending
    each chunk listed in ``restart_after_chunks`` (before the consumer reads it).
    """
    broker = EmbeddedBroker(faults)
    topic, group = "events", "sink"
    broker.create_topic(topic, partitions)
    end = Collector()
    consumer = Consumer(broker, group, topic, "c0", mode, end,
                        window=RecentIds(window) if mode is DeliveryMode.EXACTLY_ONCE else None,
                        faults=consumer_faults or ConsumerFaults(), max_records=max_records)
    planned = plan_all(producers, n)
    ledger = Ledger()
    restarts = set(restart_after_chunks)
    producer_retries = 0 if mode is DeliveryMode.AT_MOST_ONCE else retries
    for lo in range(0, planned.num_rows, chunk):
        send(planned.slice(lo, chunk), broker, topic, ledger, retries=producer_retries)
        if lo // chunk in restarts:
            broker.restart()
        for _ in range(100_000):
            if broker.lag(group, topic) == 0:
                break
            consumer.step()
        else:  # pragma: no cover - a bug, not a fault
            raise RuntimeError("consumer made no progress")
    delivered = end.delivered()
    led = ledger.table()
    return RunResult(mode, led, delivered, check(led, delivered), broker.injected,
                     consumer.counts, consumer.window)
