"""The storage interface every format implements.

A table is a list of :class:`Fragment` s (files, or row ranges of a SQLite table). One fragment
is the unit of one partition task: the seed's "100M rows -> 1,000 tasks of 100K rows".
A scan reads one fragment with a column list and pushed-down predicates, and reports the bytes
it actually read, so reports can show what column storage and pruning buy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

# Fragment option: ((column, compressed bytes of its chunks on storage), ...), from the
# catalog (Iceberg manifests' column_sizes); what the planner packs scan tasks by.
COLUMN_BYTES = "column_bytes"


class StorageFormat(enum.Enum):
    """How a table's rows are laid out on storage."""

    PARQUET = "parquet"  # columnar; Iceberg tables are Parquet files
    ORC = "orc"  # columnar
    CSV = "csv"  # row, text: the raw "data lake" form
    SQLITE = "sqlite"  # row store RDB: the "MySQL master table" of a federated join
    MYSQL = "mysql"  # a live MySQL / MariaDB table, registered and read in place (never written)
    ARROW = "arrow"  # a small in-memory table (Iceberg metadata tables: "t$snapshots"), never written

    @property
    def columnar(self) -> bool:
        """True for formats that store each column contiguously."""
        return self in (StorageFormat.PARQUET, StorageFormat.ORC)

    @property
    def relational(self) -> bool:
        """True for a table in a database: scans send SQL, and its row counts date from when
        it was registered (another program may write it since)."""
        return self in (StorageFormat.SQLITE, StorageFormat.MYSQL)

    @property
    def writable(self) -> bool:
        """True for formats mpp writes tables in (a MySQL table is only ever read)."""
        return self not in (StorageFormat.MYSQL, StorageFormat.ARROW)


PredicateOp = Literal["=", "!=", "<", "<=", ">", ">=", "in", "is_null", "is_not_null"]


@dataclass(frozen=True, slots=True)
class ColumnPredicate:
    """``column <op> value``: one conjunct a scan applies exactly (and may prune with).

    ``column`` is the storage column name. ``value`` is a Python scalar (``date``, ``datetime``,
    ``int``, ``float``, ``str``), a tuple of scalars for ``in``, and ``None`` for the null tests.
    A list of predicates is their AND.
    """

    column: str
    op: PredicateOp
    value: Any = None

    def __str__(self) -> str:
        if self.op in ("is_null", "is_not_null"):
            return f"{self.column} {self.op.replace('_', ' ').upper()}"
        return f"{self.column} {self.op.upper() if self.op == 'in' else self.op} {self.value!r}"


@dataclass(frozen=True, slots=True)
class Fragment:
    """One partition task's worth of a table: small, picklable, sent to workers.

    Attributes:
        uri: fsspec-style URL of the file (``file:///...``, ``s3://...``), or of the SQLite
            database for SQLite tables.
        format: the storage format.
        index: position of the fragment in the table's full (unpruned) fragment list.
        row_count: rows in the fragment (from metadata; -1 if unknown).
        size_bytes: bytes of the fragment on storage (-1 if unknown).
        partition: partition values, e.g. ``(("date", date(2017, 1, 13)),)``.
        bounds: per-column ``(column, min, max)`` from metadata, used for pruning.
        options: format-specific extras, e.g. ``(("table", "users"), ("rowid_range", (1, 5000)))``.
    """

    uri: str
    format: StorageFormat
    index: int
    row_count: int = -1
    size_bytes: int = -1
    partition: tuple[tuple[str, Any], ...] = ()
    bounds: tuple[tuple[str, Any, Any], ...] = ()
    options: tuple[tuple[str, Any], ...] = ()

    def __reduce__(self) -> tuple[Any, ...]:
        # A plain tuple of fields: ~3x faster to pickle than a slots dataclass's default
        # state, and the scheduler pickles one fragment per leaf task it hands out.
        return Fragment, (self.uri, self.format, self.index, self.row_count, self.size_bytes,
                          self.partition, self.bounds, self.options)

    def option(self, name: str, default: Any = None) -> Any:
        """Return the format-specific option ``name``."""
        return dict(self.options).get(name, default)


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What one fragment scan produced and what it cost."""

    table: pa.Table  # only the requested columns, only rows passing every predicate
    bytes_read: int  # bytes actually read from storage (column chunks touched, for columnar)
    rows_scanned: int  # rows decoded before predicates were applied


def rows_only(n: int) -> pa.Table:
    """A table of ``n`` rows and no columns (a ``count(*)``'s input, ``SELECT 1``'s source):
    Arrow counts the rows of a table only through a column, so one is made and dropped."""
    return pa.table({"_": pa.nulls(n)}).select([])


def constant_column(value: pa.Scalar, n: int) -> pa.Array:
    """An array of ``n`` copies of ``value`` (a partition value, a constant group key)."""
    return pc.fill_null(pa.nulls(n, value.type), value)
