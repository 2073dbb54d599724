"""One message on the wire: its fields, its Arrow schema and its byte encoding.

A message carries what the checker needs (``message_id`` unique across the run, ``producer``
and its per-producer ``seq``, the client's ``event_time`` and ``sent_at``) and a payload shaped
like a row of the warehouse's ``access_log`` (see :mod:`mpp.datagen.tables`), so delivered
batches can land in an ``access_log``-like table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

PAYLOAD_FIELDS = ("user_id", "session_id", "url_id", "status", "bytes")

MESSAGE_SCHEMA = pa.schema([
    ("message_id", pa.string()),
    ("producer", pa.string()),
    ("seq", pa.int64()),
    ("event_time", pa.timestamp("us")),
    ("user_id", pa.int64()),
    ("session_id", pa.int64()),
    ("url_id", pa.int32()),
    ("status", pa.int16()),
    ("bytes", pa.int32()),
])
"""A planned or delivered message (``event_time`` is the client's clock)."""

Message = dict[str, Any]
"""A message as a plain dict with the fields of :data:`MESSAGE_SCHEMA` (``event_time`` in µs)."""


def encode(message: Mapping[str, Any], sent_at_ns: int) -> bytes:
    """The wire form: compact JSON with the send time (ns, wall clock) for latency."""
    body = dict(message)
    body["sent_at_ns"] = sent_at_ns
    return json.dumps(body, separators=(",", ":")).encode()


class MalformedMessage(ValueError):
    """A payload that is not a message (kept with its reason for a dead-letter table)."""


def decode(data: bytes) -> dict[str, Any]:
    """Parse the wire form back into a dict (raises :class:`MalformedMessage` with a reason)."""
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedMessage("not a JSON object")
    missing = [f for f in ("message_id", "producer", "seq") if f not in body]
    if missing:
        raise MalformedMessage(f"missing field(s): {', '.join(missing)}")
    return body


def to_table(messages: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Messages (dicts, ``event_time`` in µs) as a table of :data:`MESSAGE_SCHEMA`."""
    rows = list(messages)
    return pa.table({f.name: pa.array([r.get(f.name) for r in rows],
                                      type=pa.int64() if f.name == "event_time" else f.type)
                     .cast(f.type) for f in MESSAGE_SCHEMA}, schema=MESSAGE_SCHEMA)
