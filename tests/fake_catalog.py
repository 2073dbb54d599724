"""An in-memory catalog of the issue's tables (schemas and made-up statistics) for SQL tests.

Binding and optimizer tests need TableInfo objects, not data: this fake answers ``table`` and
``tables`` like ``mpp.catalog.Catalog`` does, with statistics chosen so that the dimension
tables are small and access_log is large (100M rows, as in the seed).
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from mpp.catalog.model import ColumnStats, TableInfo, TableStats
from mpp.errors import CatalogError, UnknownTableError, suggest
from mpp.storage.base import StorageFormat

TS = pa.timestamp("us")

SCHEMAS: dict[str, pa.Schema] = {
    "access_log": pa.schema([("time", TS), ("date", pa.date32()), ("user_id", pa.int64()),
                             ("session_id", pa.int64()), ("url_id", pa.int32()),
                             ("status", pa.int16()), ("bytes", pa.int32())]),
    "users": pa.schema([("user_id", pa.int64()), ("created_at", TS),
                        ("country", pa.string()), ("plan", pa.string())]),
    "sessions": pa.schema([("session_id", pa.int64()), ("user_id", pa.int64()),
                           ("min_time", TS)]),
    "urls": pa.schema([("url_id", pa.int32()), ("path", pa.string()),
                       ("category", pa.string())]),
}

_D0, _D1 = dt.date(2017, 1, 1), dt.date(2017, 1, 30)
_T0, _T1 = dt.datetime(2017, 1, 1), dt.datetime(2017, 1, 30, 23, 59, 59)

STATS: dict[str, TableStats] = {
    "access_log": TableStats(100_000_000, 2_000_000_000, 1000, {
        "time": ColumnStats(_T0, _T1, 0, 90_000_000),
        "date": ColumnStats(_D0, _D1, 0, 30),
        "user_id": ColumnStats(1, 1_000_000, 0, 1_000_000),
        "session_id": ColumnStats(1, 10_000_000, 0, 10_000_000),
        "url_id": ColumnStats(1, 10_000, 0, 10_000),
        "status": ColumnStats(200, 504, 0, 8),
        "bytes": ColumnStats(0, 1_000_000, 0, 100_000),
    }),
    "users": TableStats(1_000_000, 30_000_000, 4, {
        "user_id": ColumnStats(1, 1_000_000, 0, 1_000_000),
        "created_at": ColumnStats(dt.datetime(2014, 1, 1), _T0, 0, 1_000_000),
        "country": ColumnStats("AR", "ZA", 0, 50),
        "plan": ColumnStats("free", "team", 0, 3),
    }),
    "sessions": TableStats(10_000_000, 200_000_000, 20, {
        "session_id": ColumnStats(1, 10_000_000, 0, 10_000_000),
        "user_id": ColumnStats(1, 1_000_000, 0, 1_000_000),
        "min_time": ColumnStats(_T0, _T1, 0, 9_000_000),
    }),
    "urls": TableStats(10_000, 400_000, 1, {
        "url_id": ColumnStats(1, 10_000, 0, 10_000),
        "path": ColumnStats(None, None, 0, 10_000),
        "category": ColumnStats("ads", "video", 0, 12),
    }),
}


# Identity partition columns, as `mpp datagen` writes the tables (access_log by day).
PARTITIONED = {"access_log": ("date",)}


class FakeCatalog:
    """A catalog answering ``table``/``tables`` from in-memory TableInfo objects."""

    def __init__(self, infos: dict[str, TableInfo] | None = None):
        self.infos = infos if infos is not None else {
            name: TableInfo(name, StorageFormat.PARQUET, schema, STATS[name],
                            f"file:///warehouse/{name}",
                            partition_columns=PARTITIONED.get(name, ()))
            for name, schema in SCHEMAS.items()
        }

    def table(self, name: str) -> TableInfo:
        try:
            return self.infos[name]
        except KeyError:
            raise UnknownTableError(f"unknown table {name!r}.{suggest(name, self.infos)}") from None

    def tables(self) -> list[str]:
        return sorted(self.infos)

    def table_at(self, name: str, *, snapshot_id: int | None = None,
                 timestamp: object = None) -> TableInfo:
        """Time travel: the fake tables have no snapshots (as an empty Iceberg table)."""
        self.table(name)
        what = f" {snapshot_id}" if snapshot_id is not None else ""
        raise CatalogError(f"no snapshot{what} of table {name!r}: table {name!r} has no snapshot")
