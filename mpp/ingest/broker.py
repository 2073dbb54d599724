"""The broker interface, and the embedded in-process backend with seeded fault injection.

The interface is the Kafka-like shape the rest of the pipeline is written against:

* topics split into partitions; every stored message has an *offset* in its partition;
* ``publish`` returns whether the broker acknowledged the message;
* consumers join a *group*; the group's partitions are split among its members; a member
  ``poll``s (pull) records from its position and ``commit``s the offsets it is done with;
  the group's committed offsets survive a member's crash and a broker restart, the member's
  position does not (it restarts from the committed offset: the source of redelivery).

:class:`EmbeddedBroker` is the default backend: plain Python objects, no setup. Its
:class:`Faults` inject, from a seeded generator, the failures chapter 4 is about: a publish
lost before it is stored, an acknowledgement lost after it is stored (a retrying producer
then stores the message twice), a fetch response lost, a record delivered twice, and a broker
restart (every member's session is lost; with ``flush_every > 1`` the log's unflushed tail,
already acknowledged, is lost too). Consumer crashes are injected by the consumer loop
(:mod:`mpp.ingest.consumer`), which knows where the commit is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from mpp.ingest.producers import partition_of


@dataclass(frozen=True)
class Record:
    """A delivered message: where it is stored (topic, partition, offset) and its bytes."""

    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    message_id: str


class Broker(Protocol):
    """What producers and consumers need from a broker (every backend implements it)."""

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        """Create ``topic`` with ``partitions`` partitions (no-op if it exists)."""
        ...

    def delete_topic(self, topic: str) -> None:
        """Delete ``topic``, its messages and its groups' offsets."""
        ...

    def publish(self, topic: str, key: str, value: bytes, message_id: str) -> bool:
        """Store one message; True when the broker acknowledged it."""
        ...

    def subscribe(self, group: str, topic: str, member: str) -> None:
        """Join ``member`` to ``group`` on ``topic`` (the partitions are re-split)."""
        ...

    def poll(self, group: str, topic: str, member: str, max_records: int = 100,
             timeout: float = 0.0) -> list[Record]:
        """Up to ``max_records`` records from the member's position (may be empty)."""
        ...

    def commit(self, group: str, topic: str, member: str, records: Sequence[Record]) -> None:
        """Mark ``records`` done for the group: they are not delivered to the group again."""
        ...

    def leave(self, group: str, topic: str, member: str) -> None:
        """The member is gone (closed or crashed): its uncommitted records go back."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True)
class Faults:
    """Seeded fault injection of the embedded broker (probabilities per event).

    ``drop_publish``: a publish is lost before it is stored (no ack). ``lost_ack``: it is
    stored but the ack is lost. ``drop_fetch``: a poll's response is lost (nothing delivered,
    the position stays). ``duplicate_delivery``: a delivered record is delivered a second time
    in the same response. ``flush_every``: the log is made durable every N appends (1: every
    append, before the ack); a :meth:`EmbeddedBroker.restart` loses the unflushed tail.
    """

    seed: int = 0
    drop_publish: float = 0.0
    lost_ack: float = 0.0
    drop_fetch: float = 0.0
    duplicate_delivery: float = 0.0
    flush_every: int = 1


@dataclass
class FaultCounts:
    """How many faults of each kind were injected (for the report beside the checker's)."""

    dropped_publishes: int = 0
    lost_acks: int = 0
    dropped_fetches: int = 0
    duplicated_deliveries: int = 0
    restarts: int = 0
    lost_on_restart: int = 0


@dataclass
class _Partition:
    log: list[tuple[str, bytes, str]] = field(default_factory=list)
    durable: int = 0


class EmbeddedBroker:
    """An in-process Kafka-like broker (see the module docstring). Not thread-safe."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self.injected = FaultCounts()
        self._gen = np.random.default_rng(self.faults.seed)
        self._topics: dict[str, list[_Partition]] = {}
        self._committed: dict[tuple[str, str, int], int] = {}
        self._members: dict[tuple[str, str], list[str]] = {}
        self._positions: dict[tuple[str, str, str, int], int] = {}
        self._appends = 0

    def _chance(self, p: float) -> bool:
        return p > 0 and bool(self._gen.random() < p)

    def _parts(self, topic: str) -> list[_Partition]:
        try:
            return self._topics[topic]
        except KeyError:
            raise KeyError(f"no topic {topic!r}; create it first") from None

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        """Create ``topic`` with ``partitions`` partitions (no-op if it exists)."""
        self._topics.setdefault(topic, [_Partition() for _ in range(partitions)])

    def delete_topic(self, topic: str) -> None:
        """Delete ``topic``, its messages and its groups' offsets."""
        self._topics.pop(topic, None)
        for d in (self._committed, self._positions):
            for k in [k for k in d if k[1] == topic]:
                del d[k]
        for k in [k for k in self._members if k[1] == topic]:
            del self._members[k]

    def publish(self, topic: str, key: str, value: bytes, message_id: str) -> bool:
        """Append to the key's partition; faults may drop the message or lose its ack."""
        parts = self._parts(topic)
        if self._chance(self.faults.drop_publish):
            self.injected.dropped_publishes += 1
            return False
        part = parts[partition_of(key, len(parts))]
        part.log.append((key, value, message_id))
        self._appends += 1
        if self._appends % max(1, self.faults.flush_every) == 0:
            for p in parts:
                p.durable = len(p.log)
        if self._chance(self.faults.lost_ack):
            self.injected.lost_acks += 1
            return False
        return True

    def end_offsets(self, topic: str) -> list[int]:
        """The next offset of each partition (the log's length)."""
        return [len(p.log) for p in self._parts(topic)]

    def committed(self, group: str, topic: str) -> list[int]:
        """The group's committed offset (next to read) per partition."""
        return [self._committed.get((group, topic, i), 0)
                for i in range(len(self._parts(topic)))]

    def lag(self, group: str, topic: str) -> int:
        """Messages stored but not yet committed by ``group``."""
        return sum(e - c for e, c in zip(self.end_offsets(topic), self.committed(group, topic),
                                         strict=True))

    def subscribe(self, group: str, topic: str, member: str) -> None:
        """Join the group; partition ``p`` goes to the ``p % members``-th member by name."""
        self._parts(topic)
        members = self._members.setdefault((group, topic), [])
        if member not in members:
            members.append(member)
            members.sort()

    def assignment(self, group: str, topic: str, member: str) -> list[int]:
        """The partitions ``member`` reads."""
        members = self._members.get((group, topic), [])
        if member not in members:
            raise KeyError(f"{member!r} has not subscribed to {topic!r} in group {group!r}")
        n = len(self._parts(topic))
        return [p for p in range(n) if members[p % len(members)] == member]

    def poll(self, group: str, topic: str, member: str, max_records: int = 100,
             timeout: float = 0.0) -> list[Record]:
        """Records from the member's positions (its session; the committed offset at first)."""
        parts = self._parts(topic)
        out: list[Record] = []
        for p in self.assignment(group, topic, member):
            pos_key = (group, topic, member, p)
            pos = self._positions.get(pos_key, self._committed.get((group, topic, p), 0))
            log = parts[p].log
            take = log[pos:pos + max_records - len(out)]
            out.extend(Record(topic, p, pos + i, k, v, m) for i, (k, v, m) in enumerate(take))
            self._positions[pos_key] = pos + len(take)
            if len(out) >= max_records:
                break
        if out and self._chance(self.faults.drop_fetch):
            self.injected.dropped_fetches += 1
            for r in out:  # the response is lost: the positions go back
                key = (group, topic, member, r.partition)
                self._positions[key] = min(self._positions[key], r.offset)
            return []
        if self.faults.duplicate_delivery > 0:
            dup = self._gen.random(len(out)) < self.faults.duplicate_delivery
            self.injected.duplicated_deliveries += int(dup.sum())
            out = [r for r, d in zip(out, dup, strict=True) for _ in range(1 + int(d))]
        return out

    def commit(self, group: str, topic: str, member: str, records: Sequence[Record]) -> None:
        """Commit past the highest offset of ``records`` in each partition."""
        for r in records:
            key = (group, topic, r.partition)
            self._committed[key] = max(self._committed.get(key, 0), r.offset + 1)

    def leave(self, group: str, topic: str, member: str) -> None:
        """Drop the member's session: it restarts from the committed offsets."""
        for k in [k for k in self._positions if k[:3] == (group, topic, member)]:
            del self._positions[k]

    def restart(self) -> None:
        """Restart the broker: every session is lost; the unflushed tail of each log too."""
        self.injected.restarts += 1
        self._positions.clear()
        for parts in self._topics.values():
            for p in parts:
                self.injected.lost_on_restart += len(p.log) - p.durable
                del p.log[p.durable:]
        for (group, topic, p), off in list(self._committed.items()):
            self._committed[(group, topic, p)] = min(off, len(self._topics[topic][p].log))

    def close(self) -> None:
        """Nothing to release."""
