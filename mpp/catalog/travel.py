"""Time travel: an Iceberg table as one of its older snapshots.

``FOR VERSION AS OF <id>`` names a snapshot; ``FOR TIMESTAMP AS OF <time>`` names the snapshot
that was current at that time (the last entry of the table's snapshot log at or before it,
Trino's rule). The snapshot's own manifests give everything a plan needs without opening a
data file: its data files (fragments, with bounds for pruning) and its statistics (row counts,
sizes, null counts and min/max from the files' metrics; distinct estimates and top values are
unknown, as mpp's stored statistics describe the current snapshot only).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pyarrow as pa
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from mpp.catalog import iceberg
from mpp.catalog.model import ColumnStats, TableInfo, TableStats
from mpp.errors import CatalogError
from mpp.storage.base import Fragment


@dataclass(frozen=True, slots=True)
class Travelled:
    """A table as of one snapshot: what the planner sees, and the files a scan reads."""

    info: TableInfo
    fragments: list[Fragment]


def _existing(name: str, table: Table) -> str:
    """The snapshots of ``table`` (id and time, oldest first), for an error message."""
    snaps = [f"{s.snapshot_id} ({_time(s.timestamp_ms)})" for s in table.snapshots()]
    if not snaps:
        return f"table {name!r} has no snapshot"
    shown = ", ".join(snaps[-10:])
    return f"table {name!r} has snapshots {shown}" + (
        f" (the last 10 of {len(snaps)})" if len(snaps) > 10 else "")


def _time(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def resolve(name: str, table: Table, *, snapshot_id: int | None = None,
            timestamp: dt.datetime | None = None) -> Snapshot:
    """The snapshot ``FOR VERSION AS OF snapshot_id`` or ``FOR TIMESTAMP AS OF timestamp``
    names; CatalogError naming the table and its snapshots when there is none."""
    if snapshot_id is not None:
        snap = table.snapshot_by_id(snapshot_id)
        if snap is None:
            raise CatalogError(f"no snapshot {snapshot_id} of table {name!r}: "
                               f"{_existing(name, table)}")
        return snap
    if timestamp is None:
        raise CatalogError("time travel needs a snapshot id or a timestamp")
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=dt.UTC)
    ms = int(timestamp.timestamp() * 1000)
    snap = table.snapshot_as_of_timestamp(ms, inclusive=True)
    if snap is None:
        raise CatalogError(f"no snapshot of table {name!r} was current at "
                           f"{_time(ms)}: {_existing(name, table)}")
    return snap


def snapshot_files(table: Table, snapshot_id: int) -> list[DataFile]:
    """The live data files of snapshot ``snapshot_id`` (its manifests, no data file read)."""
    return [task.file for task in table.scan(snapshot_id=snapshot_id).plan_files()]


def stats_of(files: Sequence[DataFile], fragments: Sequence[Fragment],
             table: Table, snap: Snapshot) -> TableStats:
    """Statistics of a snapshot from its files' metrics: rows, bytes, null counts, min/max."""
    schema = _schema(table, snap)
    nulls: dict[str, int | None] = {}
    for field in schema.fields:
        counts = [(f.null_value_counts or {}).get(field.field_id) for f in files]
        nulls[field.name] = None if any(c is None for c in counts) else sum(counts)  # type: ignore[arg-type]
    bounds: dict[str, tuple[object, object]] = {}
    for frag in fragments:
        for col, lo, hi in frag.bounds:
            old = bounds.get(col)
            bounds[col] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))  # type: ignore[type-var]
    columns = {f.name: ColumnStats(min=bounds.get(f.name, (None, None))[0],
                                   max=bounds.get(f.name, (None, None))[1],
                                   null_count=nulls[f.name] if files else 0)
               for f in schema.fields}
    return TableStats(row_count=sum(f.record_count for f in files),
                      total_bytes=sum(f.file_size_in_bytes for f in files),
                      fragment_count=len(files), columns=columns)


def _schema(table: Table, snap: Snapshot):  # noqa: ANN202 - pyiceberg Schema
    schemas = {s.schema_id: s for s in table.metadata.schemas}
    return schemas.get(snap.schema_id, table.schema()) if snap.schema_id is not None \
        else table.schema()


def travel(name: str, table: Table, current: TableInfo, snap: Snapshot) -> Travelled:
    """Table ``name`` as of ``snap``: its fragments and a TableInfo carrying the snapshot id
    and the snapshot's own statistics (``current``: the table as loaded now)."""
    schema = _schema(table, snap)
    files = snapshot_files(table, snap.snapshot_id)
    fragments = iceberg.all_fragments(table, files, schema=schema, arrow=current.schema)
    if schema.schema_id == table.schema().schema_id:
        arrow = current.schema  # mpp's own Arrow schema (exact types) of the same columns
    else:  # the snapshot's columns (names as they were then), with mpp's types where known
        read = iceberg.read_schema(schema, iceberg.arrow_types(table.schema(), current.schema))
        arrow = pa.schema([pa.field(f.name, f.type) for f in read])
    info = replace(current, schema=arrow, stats=stats_of(files, fragments, table, snap),
                   snapshot_id=snap.snapshot_id)
    return Travelled(info, fragments)
