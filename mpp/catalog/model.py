"""What the planner knows about a table without reading its data.

These are the catalog's answers: schema, format, statistics. Columnar warehouse tables keep
row counts, sizes and bounds in Iceberg metadata; what Iceberg does not keep (distinct
estimates, top values of skewed columns) is stored with the table by mpp.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from mpp.storage.base import StorageFormat


@dataclass(frozen=True, slots=True)
class ColumnStats:
    """Per-column statistics. Any figure may be ``None`` when unknown."""

    min: Any = None
    max: Any = None
    null_count: int | None = None
    distinct_count: int | None = None  # an estimate (NDV)
    # Most frequent values with their row counts, most frequent first: skew detection.
    top_values: tuple[tuple[Any, int], ...] = ()
    # Mean distinct values within one fragment (an estimate): what a per-fragment DISTINCT
    # keeps. Far below NDV x fragment share when values are skewed (Zipf users) or clustered.
    fragment_distinct: float | None = None


@dataclass(frozen=True, slots=True)
class TableStats:
    """Table-level statistics used by the optimizer (join choice, distinct strategy)."""

    row_count: int
    total_bytes: int  # on-storage size of all fragments
    fragment_count: int
    columns: dict[str, ColumnStats] = field(default_factory=dict)

    def column(self, name: str) -> ColumnStats:
        """Stats of ``name`` (empty stats if none were collected)."""
        return self.columns.get(name, ColumnStats())


@dataclass(frozen=True, slots=True)
class TableInfo:
    """A catalog entry: enough to bind SQL names and to plan a query."""

    name: str
    format: StorageFormat
    schema: pa.Schema
    stats: TableStats
    location: str  # URL of the table's root (Iceberg location, CSV folder, SQLite file)
    partition_columns: tuple[str, ...] = ()
    external: bool = False  # registered from outside (CSV, ORC, SQLite) rather than Iceberg
    # Time travel: the Iceberg snapshot read (FOR VERSION / TIMESTAMP AS OF); None: current.
    snapshot_id: int | None = None


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """One schema evolution as the catalog commits it (:meth:`mpp.catalog.Catalog.
    alter_schema`): ``update`` stages it on pyiceberg's UpdateSchema; ``schema`` and
    ``stats`` are the table's Arrow schema and statistics after it."""

    update: Any  # Callable[[pyiceberg UpdateSchema], None]
    schema: pa.Schema
    stats: TableStats


@dataclass(frozen=True, slots=True)
class Committed:
    """What :meth:`mpp.catalog.Catalog.commit_append` committed: the table after it, the
    snapshot it made, and how many times it was re-based on another writer's commit."""

    info: TableInfo
    snapshot_id: int
    operation: str  # "append", "overwrite", ...
    retries: int = 0
