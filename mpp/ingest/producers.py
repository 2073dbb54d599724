"""Seeded, reproducible producers and the ledger of what they sent and what was acknowledged.

Three kinds of client, as in the seed's chapter 4:

* ``web``: event tracking in a browser; events arrive as a Poisson process and are sent at
  once.
* ``mobile``: an app that is offline part of the time; events made offline are buffered and
  flushed, in order, when the app reconnects, so they reach the broker late and in bursts.
* ``device``: a sensor reporting on a fixed period with a little jitter.

A producer first *plans* its messages (a pure function of seed, kind and index: the same
arguments give the same table, IDs included), then :func:`send` publishes them in send-time
order through any :class:`Publisher`, retrying unacknowledged publishes when asked to, and
writes every attempt into a :class:`Ledger`.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mpp.datagen import distributions as dist
from mpp.datagen.tables import _STATUS, _STATUS_P
from mpp.ingest.messages import MESSAGE_SCHEMA, encode

INGEST_STREAM = 16
"""The generator stream of producers (see :func:`mpp.datagen.distributions.rng`)."""

Kind = Literal["web", "mobile", "device"]
KINDS: tuple[Kind, ...] = ("web", "mobile", "device")

PLAN_SCHEMA = MESSAGE_SCHEMA.append(pa.field("send_at", pa.timestamp("us")))
"""A planned message: the message and when the client sends it (simulated clock)."""


@dataclass(frozen=True)
class Producer:
    """One client. ``rate`` is events per second; ``users``/``urls`` size the payload ids.

    Mobile only: ``online_s``/``offline_s`` are the mean lengths of connected and
    disconnected periods (exponential). Device only: events every ``1 / rate`` seconds.
    """

    kind: Kind
    index: int = 0
    seed: int = 0
    rate: float = 100.0
    users: int = 1000
    urls: int = 500
    online_s: float = 2.0
    offline_s: float = 1.0
    start: str = "2026-01-01"

    @property
    def producer_id(self) -> str:
        """``<kind>-<index>``: the producer's name in messages and the ledger."""
        return f"{self.kind}-{self.index}"

    def plan(self, n: int) -> pa.Table:
        """The producer's first ``n`` messages (:data:`PLAN_SCHEMA`, in ``seq`` order)."""
        if self.kind not in KINDS:
            raise ValueError(f"unknown producer kind {self.kind!r}; expected one of {KINDS}")
        gen = dist.rng(self.seed, INGEST_STREAM, KINDS.index(self.kind) * 1_000_003 + self.index)
        start = int(np.datetime64(self.start, "us").astype(np.int64))
        period_us = 1e6 / self.rate
        if self.kind == "device":
            event = start + (np.arange(n) * period_us + gen.uniform(0, 0.1 * period_us, n))
        else:
            event = start + np.cumsum(gen.exponential(period_us, n))
        event = event.astype(np.int64)
        send = event.copy()
        if self.kind == "mobile":
            send = _flush_on_reconnect(gen, event, start, self.online_s * 1e6, self.offline_s * 1e6)
        hi = gen.integers(0, 2**63, n, dtype=np.int64)
        lo = gen.integers(0, 2**63, n, dtype=np.int64)
        ids = [f"{a:016x}{b:016x}" for a, b in zip(hi.tolist(), lo.tolist(), strict=True)]
        user = dist.rank_to_id(dist.zipf_ranks(gen, self.users, 1.1, n), self.users)
        url = dist.rank_to_id(dist.zipf_ranks(gen, self.urls, 1.0, n), self.urls)
        status = _STATUS[np.searchsorted(np.cumsum(_STATUS_P), gen.random(n), side="right")
                         .clip(0, len(_STATUS) - 1)]
        nbytes = np.minimum(gen.lognormal(8.0, 1.2, n), 2**31 - 1).astype(np.int32)
        session = user * 1000 + (event - start) // (1800 * 10**6)  # a new session per 30 min
        return pa.table([
            pa.array(ids, pa.string()),
            pa.array([self.producer_id] * n, pa.string()),
            pa.array(np.arange(n, dtype=np.int64)),
            pa.array(event.astype("datetime64[us]")),
            pa.array(user.astype(np.int64)),
            pa.array(session.astype(np.int64)),
            pa.array(url.astype(np.int32)),
            pa.array(status),
            pa.array(nbytes),
            pa.array(send.astype("datetime64[us]")),
        ], schema=PLAN_SCHEMA)


def _flush_on_reconnect(gen: np.random.Generator, event: np.ndarray, start: int,
                        online_us: float, offline_us: float) -> np.ndarray:
    """Send times of a mobile app: an event made while offline waits for the reconnect."""
    end = int(event[-1]) if len(event) else start
    bounds = [start]
    while bounds[-1] <= end:  # alternating online, offline periods: one draw per period
        bounds.append(bounds[-1] + int(gen.exponential(online_us)) + 1)
        bounds.append(bounds[-1] + int(gen.exponential(offline_us)) + 1)
    edges = np.asarray(bounds, dtype=np.int64)
    period = np.searchsorted(edges, event, side="right") - 1  # even: online, odd: offline
    offline = period % 2 == 1
    send = event.copy()
    send[offline] = edges[period[offline] + 1]
    return send


def plan_all(producers: Iterable[Producer], n: int) -> pa.Table:
    """Every producer's ``n`` messages, merged in send-time order (ties by producer, seq)."""
    table = pa.concat_tables([p.plan(n) for p in producers])
    return table.sort_by([("send_at", "ascending"), ("producer", "ascending"),
                          ("seq", "ascending")])


class Publisher(Protocol):
    """Anything a producer can publish to (every broker backend is one)."""

    def publish(self, topic: str, key: str, value: bytes, message_id: str) -> bool:
        """Publish one message; True when the broker acknowledged it."""
        ...


LEDGER_SCHEMA = pa.schema([
    ("message_id", pa.string()), ("producer", pa.string()), ("seq", pa.int64()),
    ("attempts", pa.int32()), ("acked", pa.bool_()), ("sent_at_ns", pa.int64()),
])


class Ledger:
    """What each producer sent (every attempt) and what the broker acknowledged.

    This is the history the checker compares the end of the pipeline with: a message is
    *attempted* once it has been sent at least once, *acknowledged* once any attempt was acked.
    """

    def __init__(self) -> None:
        self._rows: dict[str, list] = {}

    def attempt(self, message_id: str, producer: str, seq: int, acked: bool,
                sent_at_ns: int) -> None:
        """Record one publish attempt of a message and whether it was acknowledged."""
        row = self._rows.get(message_id)
        if row is None:
            self._rows[message_id] = [message_id, producer, seq, 1, acked, sent_at_ns]
        else:
            row[3] += 1
            row[4] = row[4] or acked

    def table(self) -> pa.Table:
        """The ledger as an Arrow table (:data:`LEDGER_SCHEMA`, one row per message)."""
        cols = list(zip(*self._rows.values(), strict=True)) or [()] * len(LEDGER_SCHEMA)
        return pa.table([pa.array(c, f.type) for c, f in zip(cols, LEDGER_SCHEMA, strict=True)],
                        schema=LEDGER_SCHEMA)

    def __len__(self) -> int:
        return len(self._rows)


def partition_of(key: str, partitions: int) -> int:
    """The partition of a message key (stable across processes, unlike ``hash``)."""
    return zlib.crc32(key.encode()) % partitions


def send(planned: pa.Table, publisher: Publisher, topic: str, ledger: Ledger, *,
         retries: int = 0) -> int:
    """Publish ``planned`` in order; retry an unacknowledged publish up to ``retries`` times.

    ``retries=0`` is the at-most-once producer (fire once, never resend); ``retries>0`` the
    at-least-once producer (resend until acked, which duplicates a message whose ack was
    lost). Returns the number of acknowledged messages.
    """
    rows = planned.set_column(planned.schema.get_field_index("event_time"), "event_time",
                              pc.cast(planned["event_time"], pa.int64())) \
        .drop_columns(["send_at"]).to_pylist()
    acked = 0
    for msg in rows:
        for _ in range(retries + 1):
            now = time.time_ns()
            ok = publisher.publish(topic, msg["producer"], encode(msg, now), msg["message_id"])
            ledger.attempt(msg["message_id"], msg["producer"], msg["seq"], ok, now)
            if ok:
                acked += 1
                break
    return acked
