"""The differential test's own small warehouse: tables built to stress joins and aggregation.

Every table is a pure function of the data seed, so a failing query found today reproduces
tomorrow. What the rows hold, and why:

* integer key columns of four widths (``k8`` tinyint, ``k16`` smallint, ``k32`` integer, ``k64``
  bigint) over overlapping small ranges, with NULLs and duplicates on both sides of any join, so
  joins match across widths and NULL keys must never match;
* one skewed key (``fact.k32`` = 1 in ~40% of rows, recorded as a top value in the statistics),
  which the skew-aware strategies react to;
* doubles that are multiples of 0.25 (sums are exact whatever the combination order), strings
  including the empty string, upper/lower case and a non-ASCII letter, dates across a leap day
  and month ends, timestamps with sub-second parts, booleans with NULLs;
* several fragments per table with ordered ids (fragment pruning by bounds has work to do),
  three storage formats (Parquet, CSV, SQLite) and an empty table.

Columns that trip known engine bugs (issue 12) are present in the data but only used by the
generator when their flag is on (:data:`GATED_COLUMNS`, :data:`GATED_TABLES`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from mpp.catalog import Catalog, write_fragment
from mpp.storage.base import StorageFormat

# Column -> the generator flag that must be on for the generator to reference it. Each names a
# known engine bug of issue 12 (or a semantic gap the oracle does not translate).
GATED_COLUMNS: dict[str, str] = {
    "big": "sum_overflow",      # sum() over BIGINT wraps instead of failing with an overflow
    "dz": "negative_zero",      # -0.0 and 0.0 group/join/distinct as different values
    "dn": "nan",                # NaN/Infinity: Trino and DuckDB order and compare NaN differently
}
# Columns the generator reads only as the argument of sum(): any other arithmetic on values
# near 2^62 overflows wherever it is evaluated, and whether an engine evaluates it for rows
# that are never output (under LIMIT 0, for a join with an empty side) differs.
SUM_ONLY = frozenset({"big"})

# Table -> the flag that must be on for the generator to read it at all (any scan of the table
# may touch the column, e.g. with optimizer.prune_projections off).
GATED_TABLES: dict[str, str] = {
    "rdb_flags": "sqlite_boolean",  # a SQLite BOOLEAN column crashes the scan
}

_STRINGS = ["a", "b", "B", "", "ab", "abc", "é", "a_c", "x%y", None]
_START = dt.date(2024, 1, 20)


@dataclass(frozen=True, slots=True)
class TableSpec:
    """One table of the warehouse: its schema, format, fragment count and row maker."""

    name: str
    schema: pa.Schema
    format: StorageFormat
    fragments: int
    rows_per_fragment: int
    make_row: Callable[[random.Random, int], dict[str, object]]
    top_columns: tuple[str, ...] = ()


def _maybe(rng: random.Random, value: object, null_share: float = 0.1) -> object:
    return None if rng.random() < null_share else value


def _day(rng: random.Random) -> dt.date:
    return _START + dt.timedelta(days=rng.randrange(0, 75))  # spans 2024-02-29 and month ends


def _timestamp(rng: random.Random) -> dt.datetime:
    return (dt.datetime.combine(_day(rng), dt.time())
            + dt.timedelta(seconds=rng.randrange(0, 86_400), microseconds=rng.choice([0, 500_000,
                                                                                      123_456])))


def _quarter(rng: random.Random, low: int, high: int) -> float:
    return rng.randrange(low * 4, high * 4 + 1) / 4


def _fact_row(rng: random.Random, i: int) -> dict[str, object]:
    return {
        "id": i,
        "k8": _maybe(rng, rng.randrange(-2, 10)),
        "k16": _maybe(rng, rng.randrange(0, 13)),
        "k32": _maybe(rng, 1 if rng.random() < 0.4 else rng.randrange(0, 30), 0.05),
        "k64": _maybe(rng, rng.randrange(0, 40), 0.05),
        "g": rng.choice(_STRINGS),
        "d": _maybe(rng, _quarter(rng, -10, 10)),
        "dz": _maybe(rng, rng.choice([0.0, -0.0, 1.5, -1.5])),
        "dn": _maybe(rng, rng.choice([float("nan"), float("inf"), -float("inf"), 2.5])),
        "big": rng.choice([1, 3]) * 2**61 + rng.randrange(0, 100),
        "day": _maybe(rng, _day(rng), 0.05),
        "ts": _maybe(rng, _timestamp(rng), 0.05),
        "flag": _maybe(rng, rng.random() < 0.5),
    }


def _dim_row(rng: random.Random, i: int) -> dict[str, object]:
    return {
        "k8": _maybe(rng, rng.randrange(0, 12)),
        "k16": _maybe(rng, rng.randrange(-1, 14)),
        "k32": _maybe(rng, rng.randrange(0, 8)),
        "k64": _maybe(rng, rng.randrange(0, 45)),
        "name": rng.choice(_STRINGS),
        "w": _maybe(rng, _quarter(rng, 0, 20)),
        "day": _maybe(rng, _day(rng)),
    }


def _lake_row(rng: random.Random, i: int) -> dict[str, object]:
    return {
        "k32": _maybe(rng, rng.randrange(0, 20)),
        "k64": _maybe(rng, rng.randrange(0, 30)),
        "s": rng.choice([s for s in _STRINGS if s]),  # CSV cannot tell NULL from ''
        "d": _maybe(rng, _quarter(rng, -5, 5)),
        "day": _maybe(rng, _day(rng)),
        "ts": _maybe(rng, _timestamp(rng)),
        "flag": _maybe(rng, rng.random() < 0.3),
    }


def _rdb_row(rng: random.Random, i: int) -> dict[str, object]:
    return {
        "k16": _maybe(rng, rng.randrange(0, 10)),
        "k64": _maybe(rng, rng.randrange(0, 25)),
        "s": rng.choice(_STRINGS),
        "d": _maybe(rng, _quarter(rng, -3, 3)),
        "day": _maybe(rng, _day(rng)),
    }


def _rdb_flags_row(rng: random.Random, i: int) -> dict[str, object]:
    return {"k16": _maybe(rng, rng.randrange(0, 10)), "ok": _maybe(rng, rng.random() < 0.5)}


_FACT = pa.schema([("id", pa.int64()), ("k8", pa.int8()), ("k16", pa.int16()),
                   ("k32", pa.int32()), ("k64", pa.int64()), ("g", pa.string()),
                   ("d", pa.float64()), ("dz", pa.float64()), ("dn", pa.float64()),
                   ("big", pa.int64()), ("day", pa.date32()), ("ts", pa.timestamp("us")),
                   ("flag", pa.bool_())])
_DIM = pa.schema([("k8", pa.int8()), ("k16", pa.int16()), ("k32", pa.int32()),
                  ("k64", pa.int64()), ("name", pa.string()), ("w", pa.float64()),
                  ("day", pa.date32())])
_LAKE = pa.schema([("k32", pa.int32()), ("k64", pa.int64()), ("s", pa.string()),
                   ("d", pa.float64()), ("day", pa.date32()), ("ts", pa.timestamp("us")),
                   ("flag", pa.bool_())])
_RDB = pa.schema([("k16", pa.int16()), ("k64", pa.int64()), ("s", pa.string()),
                  ("d", pa.float64()), ("day", pa.date32())])
_RDB_FLAGS = pa.schema([("k16", pa.int16()), ("ok", pa.bool_())])

TABLES: tuple[TableSpec, ...] = (
    TableSpec("fact", _FACT, StorageFormat.PARQUET, 6, 40, _fact_row, ("k32", "k64")),
    TableSpec("dim", _DIM, StorageFormat.PARQUET, 2, 25, _dim_row, ("k32",)),
    TableSpec("lake", _LAKE, StorageFormat.CSV, 3, 20, _lake_row),
    TableSpec("rdb", _RDB, StorageFormat.SQLITE, 2, 20, _rdb_row),
    TableSpec("rdb_flags", _RDB_FLAGS, StorageFormat.SQLITE, 1, 20, _rdb_flags_row),
    TableSpec("void", _DIM, StorageFormat.PARQUET, 1, 0, _dim_row),
)
"""The tables of the difftest warehouse (new tables are picked up by the generator as they are)."""


def table_rows(spec: TableSpec, fragment: int, seed: int) -> pa.Table:
    """The rows of one fragment of ``spec``: a pure function of the seed and the indexes."""
    rng = random.Random(f"{seed}:{spec.name}:{fragment}")
    first = fragment * spec.rows_per_fragment
    rows = [spec.make_row(rng, first + i) for i in range(spec.rows_per_fragment)]
    return pa.Table.from_pylist(rows, schema=spec.schema)


def build_warehouse(out: str | os.PathLike[str], seed: int = 0,
                    tables: tuple[TableSpec, ...] = TABLES) -> Catalog:
    """Write the difftest tables into a new warehouse at ``out``; return its catalog.

    The tables are small (hundreds of rows), so they are written in this process, one commit
    per table, with no cluster needed.
    """
    catalog = Catalog.open(out, create=True)
    iceberg_log = logging.getLogger("pyiceberg.io.pyarrow")
    level = iceberg_log.level
    iceberg_log.setLevel(logging.ERROR)  # "statistics missing" for the empty table's columns
    try:
        for spec in tables:
            target = catalog.begin_write(spec.name, spec.schema, spec.format,
                                         top_columns=spec.top_columns)
            written = [write_fragment(target, i, table_rows(spec, i, seed))
                       for i in range(spec.fragments)]
            catalog.commit_write(target, written)
    finally:
        iceberg_log.setLevel(level)
    return catalog
