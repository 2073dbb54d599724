"""INSERT INTO: the query's rows appended to an existing Iceberg table, in one snapshot.

    INSERT INTO access_log_pq SELECT * FROM access_log_csv WHERE date = DATE '2024-01-05'
    INSERT INTO users (user_id, country) VALUES (1, 'JP'), (2, 'US')

1. The query is bound and planned; its columns are matched to the table's (the listed
   columns, or all of them in order; unlisted columns are NULL) and their types checked with
   Trino's rule: a query type must coerce implicitly to the column's type (integers widen,
   integers to floating point, DATE to TIMESTAMP, NULL to anything); anything else is an
   error naming the column, to be fixed with a CAST.
2. The query runs with a write stage after it (:func:`~mpp.write.stage.run_write_stage`):
   files near the target size, one file per partition value of an identity-partitioned table,
   written into the table's folder under a fresh write id.
3. ONE Iceberg snapshot appends them (pyiceberg's ``fast_append`` inside one transaction),
   with the table's statistics and content checksum updated in the same commit. A commit by
   another writer since the statement began fails it with a clear error.

A failure anywhere before the commit leaves the table as it was: the statement's files are
deleted, and files of a killed process are never read (readers list files from the catalog).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mpp import crash
from mpp.catalog.model import TableInfo
from mpp.errors import SqlError, UnknownTableError
from mpp.metrics.collector import collect
from mpp.metrics.summary import QueryStats, summarize
from mpp.physical.planner import PhysicalPlan
from mpp.sql.statements import InsertInto
from mpp.sql.types import common_type, is_string, type_name
from mpp.text import plural
from mpp.write.ctas import top_value_columns
from mpp.write.stage import WriteOutcome, run_write_stage

if TYPE_CHECKING:
    from mpp.session import Session


def insertable(query: pa.DataType, column: pa.DataType) -> bool:
    """True if a query column of type ``query`` may be stored in a ``column`` column: Trino's
    implicit coercion (the column's type is the common type of the two)."""
    if pa.types.is_dictionary(query):
        query = query.value_type
    if query == column or pa.types.is_null(query):
        return True
    if is_string(query) and is_string(column):
        return True
    return common_type(query, column) == column


def target_columns(stmt: InsertInto, info: TableInfo, plan: PhysicalPlan) -> list[str]:
    """The table column each query column goes to; SqlError naming the column if a column is
    unknown, the counts differ, or a type does not coerce."""
    names = info.schema.names
    columns = list(stmt.columns) if stmt.columns is not None else names
    for c in columns:
        if c not in names:
            raise SqlError(f"Insert column name does not exist in target table {stmt.name}: "
                           f"{c} (its columns: {', '.join(names)})", *stmt.place)
    types = [f.dtype for f in plan.root.schema]
    if len(types) != len(columns):
        raise SqlError(f"INSERT INTO {stmt.name}: the query has {plural(len(types), 'column')} "
                       f"for {plural(len(columns), 'target column')} ({', '.join(columns)})",
                       *stmt.place)
    for c, t in zip(columns, types, strict=True):
        want = info.schema.field(c).type
        if not insertable(t, want):
            raise SqlError(f"INSERT INTO {stmt.name}: column {c} is {type_name(want)} but the "
                           f"query gives {type_name(t)} (Insert query has mismatched column "
                           f"types); CAST the value to {type_name(want)}", *stmt.place)
    return columns


def insert_into(session: Session, stmt: InsertInto, *,
                settings: Mapping[str, Any] | None = None) -> WriteOutcome:
    """Run ``stmt`` on the session's cluster and append its rows in one snapshot."""
    catalog = session.catalog
    try:
        info = catalog.table(stmt.name)
    except UnknownTableError as exc:  # the same words, at the table's place
        if exc.line is not None:
            raise
        raise UnknownTableError(str(exc), *stmt.place) from None
    query_id = f"insert-{stmt.name}-{uuid.uuid4().hex[:8]}"
    ctx = session.context(settings)
    with crash.context(query_id=query_id):
        plan = session.physical(session.optimize(session.bind(stmt.query_sql), ctx), ctx)
    columns = target_columns(stmt, info, plan)
    target = catalog.begin_append(stmt.name, top_columns=top_value_columns(info.schema))
    start = time.perf_counter()
    try:
        with crash.context(query_id=query_id):
            written, tasks = run_write_stage(session, ctx, plan, target, query_id,
                                             names=columns, empty_file=False)
            catalog.commit_append(target, written)
    except BaseException:
        catalog.abort_write(target)  # idempotent; commit_append already aborts on its failures
        raise
    wall = time.perf_counter() - start
    records = collect(session.cluster.client, query_id)
    stats = QueryStats(query_id, wall, plan, records, summarize(records))
    writes = collect(session.cluster.client, f"{query_id}-write")
    snapshot = catalog.snapshots(stmt.name)[-1]["snapshot_id"]
    return WriteOutcome(sum(t.rows for t in tasks), tuple(tasks), stats, tuple(writes),
                        stmt.name, f"Iceberg append, snapshot {snapshot}")
