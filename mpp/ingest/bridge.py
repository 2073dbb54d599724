"""A bridge from one broker to another: devices publish over MQTT, the log is JetStream.

The bridge is an at-least-once consumer of the source and an at-least-once producer to the
target: it forwards a batch, waits for the target's acknowledgements, and only then commits
(acknowledges) the batch at the source. If it crashes in between, the source delivers the
batch again and the target sees each message twice; with a target that de-duplicates by
message ID (JetStream's ``Nats-Msg-Id`` window) the repeat is recognised and not stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mpp.ingest.broker import Broker


@dataclass
class Bridge:
    """Forwards ``source_topic`` (read as group ``group``) to ``target_topic``."""

    source: Broker
    source_topic: str
    target: Broker
    target_topic: str
    group: str = "bridge"
    member: str = "b0"
    max_records: int = 100
    forwarded: int = 0
    failed: int = 0
    crashes: int = 0

    def __post_init__(self) -> None:
        self.source.subscribe(self.group, self.source_topic, self.member)

    def step(self, timeout: float = 0.1, *, crash_before_commit: bool = False) -> int:
        """Forward one polled batch; returns how many messages it forwarded.

        A failed forward, or ``crash_before_commit``, leaves the batch unacknowledged at the
        source and reconnects, so the source delivers it again.
        """
        records = self.source.poll(self.group, self.source_topic, self.member,
                                   self.max_records, timeout)
        ok = [self.target.publish(self.target_topic, r.key, r.value, r.message_id)
              for r in records]
        self.forwarded += sum(ok)
        self.failed += len(ok) - sum(ok)
        if records and (crash_before_commit or not all(ok)):
            self.crashes += 1
            self.source.leave(self.group, self.source_topic, self.member)
            self.source.subscribe(self.group, self.source_topic, self.member)
            return sum(ok)
        self.source.commit(self.group, self.source_topic, self.member, records)
        return len(records)

    def run(self, until: int, timeout: float = 10.0) -> int:
        """Step until ``until`` messages were forwarded or ``timeout`` s passed."""
        deadline = time.monotonic() + timeout
        while self.forwarded < until and time.monotonic() < deadline:
            self.step()
        return self.forwarded
