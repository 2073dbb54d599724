"""Running CREATE TABLE AS on the cluster: the SELECT's stages, then a write stage, one commit.

1. The SELECT is bound, optimized and planned as usual, then runs with a write stage after it
   (:func:`~mpp.write.stage.run_write_stage`): files of about the target size, written on the
   workers.
2. The catalog commits every written file in ONE Iceberg commit (Parquet) or one external-table
   registration (ORC). Until then nothing is registered, so readers never see the files.

Every file of an attempt carries the attempt's fresh write id. If anything fails (the SELECT,
a write task, the commit, an interrupt), the attempt's files are deleted and the catalog and
every earlier table are untouched. Files of an attempt killed before its clean-up are never
read either: readers list fragments from the catalog only.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mpp import crash
from mpp.catalog.model import TableInfo
from mpp.catalog.place import check_table_name
from mpp.errors import CatalogError, MppError, SqlError
from mpp.metrics.collector import collect
from mpp.metrics.summary import QueryStats, summarize
from mpp.physical.planner import PhysicalPlan
from mpp.sql.statements import CTAS_FORMATS, CreateTable, CreateTableAs
from mpp.sql.types import type_name
from mpp.storage.base import StorageFormat
from mpp.write.stage import WriteOutcome, run_write_stage

if TYPE_CHECKING:
    from mpp.session import Session

PROP_SOURCE_SQL = "mpp.ctas-select"


def top_value_columns(schema: pa.Schema) -> tuple[str, ...]:
    """Columns whose most frequent values are kept: keys that may be skewed (not floats or
    timestamps, whose values rarely repeat)."""
    def keyish(t: pa.DataType) -> bool:
        return bool(pa.types.is_integer(t) or pa.types.is_string(t)
                    or pa.types.is_large_string(t) or pa.types.is_date(t)
                    or pa.types.is_boolean(t))

    return tuple(f.name for f in schema if keyish(f.type))


def output_schema(plan: PhysicalPlan, stmt: CreateTableAs) -> pa.Schema:
    """The new table's Arrow schema from the SELECT's output (clear errors for bad names)."""
    names = list(plan.output_names)
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise SqlError(f"CREATE TABLE {stmt.name}: column {dup!r} appears twice in the SELECT; "
                       "give each column its own alias")
    unnamed = next((n for n in names if n.startswith("_col")), None)
    if unnamed is not None:
        raise SqlError(f"CREATE TABLE {stmt.name}: column {unnamed!r} has no name; add an alias "
                       "(AS name) to every computed column")
    # Stored types: NULL literals as strings, dictionary-encoded columns as their values.
    types = [pa.string() if pa.types.is_null(t) else
             t.value_type if pa.types.is_dictionary(t) else t
             for t in (f.dtype for f in plan.root.schema)]
    schema = pa.schema(list(zip(names, types, strict=True)))
    for col in stmt.partitioned_by:
        if col not in names:
            raise SqlError(f"CREATE TABLE {stmt.name}: partition column {col!r} is not a column "
                           f"of the SELECT ({', '.join(names)})")
    return schema


def create_table_as(session: Session, stmt: CreateTableAs, *,
                    settings: Mapping[str, Any] | None = None,
                    top_columns: Sequence[str] | None = None) -> WriteOutcome | None:
    """Run ``stmt`` on the session's cluster; None if IF NOT EXISTS found the table."""
    catalog = session.catalog
    check_table_name(stmt.name)  # before any planning: the name is the table's folder
    if stmt.format not in CTAS_FORMATS:
        raise MppError(f"CREATE TABLE AS writes PARQUET or ORC, not {stmt.format.value}")
    if stmt.replace:
        catalog.refresh(stmt.name)  # plan with, and commit on top of, the current version
    exists = stmt.name in catalog.tables()
    if exists and not stmt.replace:
        if stmt.if_not_exists:
            return None
        raise CatalogError(f"table {stmt.name!r} already exists; DROP TABLE {stmt.name} first, "
                           "or use CREATE OR REPLACE TABLE or CREATE TABLE IF NOT EXISTS")
    query_id = f"ctas-{stmt.name}-{uuid.uuid4().hex[:8]}"
    ctx = session.context(settings)
    with crash.context(query_id=query_id):  # an internal error names the statement's run
        plan = session.physical(session.optimize(session.bind(stmt.select_sql), ctx), ctx)
    schema = output_schema(plan, stmt)
    tops = top_value_columns(schema) if top_columns is None else top_columns
    props = {PROP_SOURCE_SQL: stmt.select_sql.strip()}
    if exists:  # CREATE OR REPLACE of an existing table: one overwrite snapshot
        _check_replace(catalog.table(stmt.name), schema, stmt)
        target = catalog.begin_append(stmt.name, top_columns=tops,
                                      statement="CREATE OR REPLACE TABLE")
    else:
        target = catalog.begin_write(stmt.name, schema, stmt.format,
                                     partition_by=stmt.partitioned_by, top_columns=tops)
    start = time.perf_counter()
    try:
        with crash.context(query_id=query_id):
            written, tasks = run_write_stage(session, ctx, plan, target, query_id,
                                             empty_file=not exists)
            if exists:
                catalog.commit_append(target, written, replace=True, properties=props,
                                      retries=int(ctx.settings["write.commit_retries"]))
            else:
                catalog.commit_write(target, written, props)
    except BaseException:
        catalog.abort_write(target)  # idempotent; the commits already abort on their failures
        raise
    wall = time.perf_counter() - start
    records = collect(session.cluster.client, query_id)
    stats = QueryStats(query_id, wall, plan, records, summarize(records))
    writes = collect(session.cluster.client, f"{query_id}-write")
    if stmt.format is StorageFormat.PARQUET:
        snap = catalog.snapshots(stmt.name)[-1]
        commit = f"Iceberg {snap['operation']}, snapshot {snap['snapshot_id']}"
    else:
        commit = f"external {stmt.format.value.upper()} table registered"
    return WriteOutcome(sum(t.rows for t in tasks), tuple(tasks), stats, tuple(writes),
                        stmt.name, commit)


def _check_replace(info: TableInfo, schema: pa.Schema, stmt: CreateTableAs) -> None:
    """CREATE OR REPLACE keeps the table's schema and partitioning (its history stays
    readable with them); a SELECT that changes either is refused, naming the difference."""
    if stmt.format is not StorageFormat.PARQUET:
        raise MppError(f"CREATE OR REPLACE TABLE {stmt.name}: replaces Iceberg (Parquet) "
                       f"tables only, not {stmt.format.value.upper()}")
    old = [(f.name, type_name(f.type)) for f in info.schema]
    new = [(f.name, type_name(f.type)) for f in schema]
    if [(f.name, f.type) for f in info.schema] != [(f.name, f.type) for f in schema]:
        diff = next(((a, b) for a, b in zip(old, new, strict=False) if a != b), None)
        what = (f"column {diff[0][0]} {diff[0][1]} would become {diff[1][0]} {diff[1][1]}"
                if diff else f"{len(old)} columns would become {len(new)}")
        raise SqlError(f"CREATE OR REPLACE TABLE {stmt.name}: the SELECT changes the table's "
                       f"columns ({what}); mpp replaces the content, not the schema: "
                       f"DROP TABLE {stmt.name} first")
    if tuple(stmt.partitioned_by) != tuple(info.partition_columns):
        raise SqlError(f"CREATE OR REPLACE TABLE {stmt.name}: the table is partitioned by "
                       f"({', '.join(info.partition_columns)}), the statement by "
                       f"({', '.join(stmt.partitioned_by)}); give the same partitioned_by, "
                       f"or DROP TABLE {stmt.name} first")


def create_table(session: Session, stmt: CreateTable) -> bool:
    """Create the empty Iceberg table of ``stmt`` (its partition spec included) in one
    commit; False if IF NOT EXISTS found the table."""
    catalog = session.catalog
    check_table_name(stmt.name)
    if stmt.name in catalog.tables():
        if stmt.if_not_exists:
            return False
        raise CatalogError(f"table {stmt.name!r} already exists; DROP TABLE {stmt.name} first, "
                           "or use CREATE TABLE IF NOT EXISTS")
    target = catalog.begin_write(stmt.name, stmt.schema, StorageFormat.PARQUET,
                                 partitioning=stmt.partitioning,
                                 top_columns=top_value_columns(stmt.schema))
    catalog.commit_write(target, [])  # aborts (and removes what it wrote) on failure
    return True
