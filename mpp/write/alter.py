"""ALTER TABLE ... ADD / RENAME / DROP COLUMN: Iceberg schema evolution, one metadata commit.

    ALTER TABLE users ADD COLUMN referrer varchar
    ALTER TABLE users RENAME COLUMN plan TO tier
    ALTER TABLE users DROP COLUMN referrer

No data file is read or rewritten: Iceberg gives every column a field id, written into each
Parquet file, and readers find a file's columns by id (:func:`mpp.catalog.iceberg.read_schema`).
So a column added later is in no older file and reads as NULL there; a renamed column keeps its
id and older files, which hold it under the old name, are read by that id; a dropped column is
no longer read (and a column added later under the same name has a new id, so it does not
resurrect the old values). A snapshot before the change keeps its own schema: time travel to it
reads the columns as they were.

The statement is checked against the table as loaded (unknown column, a name taken, the table's
partition column dropped: clear errors naming the table and its columns) and committed with
pyiceberg's ``UpdateSchema`` in one transaction with mpp's Arrow schema, its statistics (an
added column: every row NULL; a renamed one: the same figures under the new name; a dropped
one: gone) and the integrity record. A commit by another writer meanwhile loses the race: the
table is loaded and the statement checked again, up to ``write.commit_retries`` times.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pyiceberg.table import Table

from mpp.catalog import iceberg
from mpp.catalog.model import ColumnStats, SchemaChange, TableInfo, TableStats
from mpp.errors import SqlError, UnknownTableError, suggest
from mpp.sql.statements import AlterColumn
from mpp.write.stage import placed

if TYPE_CHECKING:
    from mpp.session import Session


def _with_columns(stats: TableStats, columns: dict[str, ColumnStats]) -> TableStats:
    return dataclasses.replace(stats, columns=columns)


def plan_change(stmt: AlterColumn, info: TableInfo, table: Table) -> SchemaChange | None:
    """The change ``stmt`` makes to the table as loaded (``info``, ``table``); None when IF
    [NOT] EXISTS finds nothing to do; SqlError (at the table name) when it cannot be made."""
    what = f"ALTER TABLE {stmt.name} {stmt.describe()}"
    names = {c.lower(): c for c in info.schema.names}  # column names are case-insensitive
    listed = f"its columns: {', '.join(info.schema.names)}"
    existing = names.get(stmt.column.lower())
    schema, stats = info.schema, info.stats
    if stmt.action == "add":
        if existing is not None:
            if stmt.if_exists:
                return None
            raise SqlError(f"{what}: column {existing} already exists ({listed})", *stmt.place)
        assert stmt.type is not None
        new_type = iceberg.iceberg_type(stmt.type)
        column = stmt.column
        # No file holds the new column: NULL in every row.
        added = ColumnStats(null_count=stats.row_count, distinct_count=0)
        return SchemaChange(lambda u: u.add_column(column, new_type),
                            schema.append(pa.field(column, stmt.type)),
                            _with_columns(stats, {**stats.columns, column: added}))
    if existing is None:
        if stmt.if_exists:
            return None
        raise SqlError(f"{what}: unknown column {stmt.column} ({listed})."
                       + suggest(stmt.column, info.schema.names), *stmt.place)
    i = schema.get_field_index(existing)
    if stmt.action == "rename":
        clash = names.get(stmt.new_name.lower())
        if clash is not None and clash != existing:
            raise SqlError(f"{what}: column {clash} already exists ({listed})", *stmt.place)
        new = stmt.new_name
        columns = {new if k == existing else k: v for k, v in stats.columns.items()}
        return SchemaChange(lambda u: u.rename_column(existing, new),
                            schema.set(i, schema.field(i).with_name(new)),
                            _with_columns(stats, columns))
    partitioned = {table.schema().find_field(f.source_id).name for f in table.spec().fields}
    if existing in partitioned:
        raise SqlError(f"{what}: {existing} is a partition column of {stmt.name} (the files "
                       "are laid out by it); it cannot be dropped", *stmt.place)
    if len(schema) == 1:
        raise SqlError(f"{what}: {existing} is the only column of {stmt.name}; DROP TABLE "
                       f"{stmt.name} instead", *stmt.place)
    columns = {k: v for k, v in stats.columns.items() if k != existing}
    return SchemaChange(lambda u: u.delete_column(existing), schema.remove(i),
                        _with_columns(stats, columns))


def alter_column(session: Session, stmt: AlterColumn, *,
                 settings: Mapping[str, Any] | None = None) -> bool:
    """Run ``stmt``: True if the schema changed, False if IF [NOT] EXISTS found nothing to
    do."""
    ctx = session.context(settings)
    try:
        return session.catalog.alter_schema(
            stmt.name, lambda info, table: plan_change(stmt, info, table),
            retries=int(ctx.settings["write.commit_retries"]))
    except UnknownTableError as exc:
        raise placed(exc, stmt.place) from None
