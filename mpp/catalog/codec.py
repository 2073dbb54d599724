"""JSON encoding of what mpp stores beside Iceberg: schemas, fragments, statistics.

Iceberg table properties and the external-table rows in ``catalog.db`` are strings, so Python
values are tagged (``{"$date": "2017-01-13"}``) to come back with their types, and Arrow schemas
travel as base64 IPC (keeping ``int16`` and other widths Iceberg itself widens).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from typing import Any

from mpp.catalog.model import ColumnStats, TableStats
from mpp.storage.base import Fragment, StorageFormat
from mpp.storage.schema_text import schema_from_text, schema_to_text

__all__ = ["schema_from_text", "schema_to_text"]


def encode_value(value: Any) -> Any:
    """A JSON-safe form of a scalar (dates, timestamps and bytes tagged)."""
    if isinstance(value, dt.datetime):
        return {"$ts": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode()}
    if isinstance(value, decimal.Decimal):
        return {"$dec": str(value)}
    if isinstance(value, (tuple, list)):
        return [encode_value(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def decode_value(value: Any) -> Any:
    """Inverse of :func:`encode_value` (lists come back as tuples)."""
    if isinstance(value, dict):
        if "$ts" in value:
            return dt.datetime.fromisoformat(value["$ts"])
        if "$date" in value:
            return dt.date.fromisoformat(value["$date"])
        if "$b64" in value:
            return base64.b64decode(value["$b64"])
        if "$dec" in value:
            return decimal.Decimal(value["$dec"])
    if isinstance(value, list):
        return tuple(decode_value(v) for v in value)
    return value


def fragment_to_json(f: Fragment) -> dict[str, Any]:
    """A JSON-safe dict of one fragment."""
    return {
        "uri": f.uri, "format": f.format.value, "index": f.index, "rows": f.row_count,
        "size": f.size_bytes,
        "partition": [[k, encode_value(v)] for k, v in f.partition],
        "bounds": [[c, encode_value(lo), encode_value(hi)] for c, lo, hi in f.bounds],
        "options": [[k, encode_value(v)] for k, v in f.options],
    }


def fragment_from_json(d: dict[str, Any]) -> Fragment:
    """Inverse of :func:`fragment_to_json`."""
    return Fragment(
        uri=d["uri"], format=StorageFormat(d["format"]), index=d["index"], row_count=d["rows"],
        size_bytes=d["size"],
        partition=tuple((k, decode_value(v)) for k, v in d["partition"]),
        bounds=tuple((c, decode_value(lo), decode_value(hi)) for c, lo, hi in d["bounds"]),
        options=tuple((k, decode_value(v)) for k, v in d["options"]),
    )


def stats_to_text(stats: TableStats) -> str:
    """JSON text of table statistics."""
    return json.dumps({
        "row_count": stats.row_count, "total_bytes": stats.total_bytes,
        "fragment_count": stats.fragment_count,
        "columns": {
            name: {
                "min": encode_value(c.min), "max": encode_value(c.max),
                "null_count": c.null_count, "distinct_count": c.distinct_count,
                "top_values": [[encode_value(v), n] for v, n in c.top_values],
                "fragment_distinct": c.fragment_distinct,
            }
            for name, c in stats.columns.items()
        },
    })


def stats_from_text(text: str) -> TableStats:
    """Inverse of :func:`stats_to_text`."""
    d = json.loads(text)
    columns = {
        name: ColumnStats(
            min=decode_value(c["min"]), max=decode_value(c["max"]), null_count=c["null_count"],
            distinct_count=c["distinct_count"],
            top_values=tuple((decode_value(v), n) for v, n in c["top_values"]),
            fragment_distinct=c.get("fragment_distinct"),  # absent in older catalogs
        )
        for name, c in d["columns"].items()
    }
    return TableStats(row_count=d["row_count"], total_bytes=d["total_bytes"],
                      fragment_count=d["fragment_count"], columns=columns)
