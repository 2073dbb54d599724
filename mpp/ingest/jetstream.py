"""The Kafka-like log: NATS JetStream through nats-py.

How JetStream maps onto :class:`~mpp.ingest.broker.Broker`:

* a topic is a *stream* of the same name capturing the subject of that name; one stream is
  one partition, and a record's ``offset`` is its *stream sequence number*;
* ``publish`` waits for the stream's PubAck and sends the message's unique ID in the
  ``Nats-Msg-Id`` header: within the stream's ``duplicate_window`` the server stores a
  repeated ID only once (the seed's "remember only recent IDs", done by the broker);
  :attr:`JetStreamBroker.duplicates` counts the publishes it recognised;
* a consumer group is a *durable pull consumer* named after the group; its members fetch
  from it (pull) and ``commit`` acknowledges each message (explicit acks). The consumer's
  ack floor is the group's committed offset; a message not acknowledged within ``ack_wait``
  seconds (a member crashed) is delivered again.

nats-py is asyncio; this class runs one event loop in a daemon thread and exposes the same
blocking methods as the other backends. Needs ``nats-py`` and a JetStream-enabled
nats-server (the project's machines run one on 127.0.0.1:4222).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import nats
from nats.errors import NoServersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig
from nats.js.errors import NotFoundError

from mpp.ingest.broker import Record
from mpp.ingest.services import reachable

T = TypeVar("T")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class JetStreamBroker:
    """A :class:`~mpp.ingest.broker.Broker` over NATS JetStream (see the module docstring)."""

    def __init__(self, url: str | None = None, *, duplicate_window: float = 120.0,
                 ack_wait: float = 30.0, timeout: float = 5.0) -> None:
        from mpp.ingest import services  # default: services.NATS_ADDR (MPP_NATS_ADDR)

        url = url or "nats://{}:{}".format(*services.NATS_ADDR)
        self.url, self.duplicate_window, self.ack_wait = url, duplicate_window, ack_wait
        self.timeout = timeout
        self.duplicates = 0
        self._loop = asyncio.new_event_loop()
        parsed = urlsplit(url)
        if not reachable((parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout):
            # nats-py retries a refused first connection without end: ask the socket first
            raise ConnectionError(f"no NATS server at {url} (connection refused)")
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="mpp-jetstream")
        self._thread.start()
        self._subs: dict[tuple[str, str, str], Any] = {}
        self._pending: dict[tuple[str, str, str], dict[int, Any]] = {}
        try:
            self._nc = self._run(nats.connect(url, connect_timeout=timeout,
                                              allow_reconnect=False))
        except (NoServersError, OSError, TimeoutError) as exc:
            self._stop_loop()
            raise ConnectionError(f"no NATS server at {url} ({exc})") from None
        self._js = self._nc.jetstream(timeout=timeout)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(self.timeout * 4)
        except TimeoutError:
            future.cancel()
            raise

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self.timeout)

    @staticmethod
    def _check_name(topic: str) -> str:
        if not _NAME.match(topic):
            raise ValueError(f"JetStream stream name {topic!r}: use letters, digits, _ and -")
        return topic

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        """Create the stream ``topic`` (one partition) with the de-duplication window."""
        self._run(self._js.add_stream(name=self._check_name(topic), subjects=[topic],
                                      duplicate_window=self.duplicate_window))

    def delete_topic(self, topic: str) -> None:
        """Delete the stream and its consumers (no error if it is gone)."""
        try:
            self._run(self._js.delete_stream(topic))
        except NotFoundError:
            pass

    def publish(self, topic: str, key: str, value: bytes, message_id: str) -> bool:
        """Publish with ``Nats-Msg-Id``; True once the stream acknowledged (stored or known)."""
        headers = {"Nats-Msg-Id": message_id} if message_id else None
        try:
            ack = self._run(self._js.publish(topic, value, headers=headers))
        except (NatsTimeout, TimeoutError, nats.errors.Error):
            return False
        if ack.duplicate:
            self.duplicates += 1
        return True

    def end_offset(self, topic: str) -> int:
        """The stream's last sequence number (0 when empty)."""
        return self._run(self._js.stream_info(topic)).state.last_seq

    def committed(self, group: str, topic: str) -> int:
        """The group's ack floor: every sequence up to it is acknowledged."""
        return self._run(self._js.consumer_info(topic, group)).ack_floor.stream_seq

    def subscribe(self, group: str, topic: str, member: str) -> None:
        """Bind ``member`` to the durable pull consumer ``group`` (created on first use)."""
        key = (group, topic, member)
        if key in self._subs:
            return
        config = ConsumerConfig(durable_name=group, ack_wait=self.ack_wait)
        self._subs[key] = self._run(self._js.pull_subscribe(topic, durable=group, stream=topic,
                                                            config=config))
        self._pending[key] = {}

    def poll(self, group: str, topic: str, member: str, max_records: int = 100,
             timeout: float = 0.0) -> list[Record]:
        """Fetch up to ``max_records`` messages, waiting up to ``timeout`` s (at least 50 ms)."""
        key = (group, topic, member)
        try:
            msgs = self._run(self._subs[key].fetch(max_records, timeout=max(timeout, 0.05)))
        except (NatsTimeout, TimeoutError):
            return []
        out = []
        for m in msgs:
            seq = m.metadata.sequence.stream
            self._pending[key][seq] = m
            out.append(Record(topic, 0, seq, m.subject, m.data,
                              (m.headers or {}).get("Nats-Msg-Id", "")))
        return out

    def commit(self, group: str, topic: str, member: str, records: Sequence[Record]) -> None:
        """Acknowledge each record and wait for the server to confirm."""
        pending = self._pending[(group, topic, member)]
        msgs = [pending.pop(r.offset) for r in records if r.offset in pending]

        async def ack_all() -> None:
            await asyncio.gather(*(m.ack_sync(timeout=self.timeout) for m in msgs))
        if msgs:
            self._run(ack_all())

    def leave(self, group: str, topic: str, member: str) -> None:
        """Drop the member's subscription; the durable consumer and its acks stay, and what
        it had not acknowledged is delivered again after ``ack_wait``."""
        key = (group, topic, member)
        sub = self._subs.pop(key, None)
        self._pending.pop(key, None)
        if sub is not None:
            self._run(sub.unsubscribe())

    def close(self) -> None:
        """Close the connection and stop the loop thread."""
        for key in list(self._subs):
            self.leave(*key)
        try:
            self._run(self._nc.close())
        finally:
            self._stop_loop()
