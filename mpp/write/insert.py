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
   another writer since the statement began makes it commit again on top of that one
   (``write.commit_retries``; an overwrite only if none of the files it replaces is gone).

With the setting ``write.insert_existing_partitions = 'overwrite'`` (Trino Hive's
``insert_existing_partitions_behavior = 'OVERWRITE'``) an INSERT into a partitioned table
replaces exactly the partitions its query produces: the same snapshot removes the table's
files of those partitions (the partition values of the written pieces, compared with each
current file's identity partition values and transform keys) and adds the new ones. Re-running
a day's load then leaves that day exactly once; other days are untouched.

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
from mpp.catalog.write import WriteTarget, transform_key
from mpp.errors import SqlError, UnknownTableError
from mpp.physical.planner import PhysicalPlan
from mpp.sql.statements import InsertInto
from mpp.sql.types import common_type, is_string, type_name
from mpp.storage.base import Fragment
from mpp.text import plural
from mpp.write.ctas import top_value_columns
from mpp.write.sizing import Piece
from mpp.write.stage import WriteOutcome, one_commit, run_write_stage, write_outcome

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
    catalog.refresh(stmt.name)  # plan with, and commit on top of, the current version
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
    overwrite = ctx.settings["write.insert_existing_partitions"] == "overwrite"
    target = catalog.begin_append(stmt.name, top_columns=top_value_columns(info.schema))
    if overwrite and not target.group_columns:
        catalog.abort_write(target)
        raise SqlError(f"INSERT INTO {stmt.name}: write.insert_existing_partitions = "
                       "'overwrite' replaces partitions, and this table has none; use CREATE "
                       "OR REPLACE TABLE ... AS SELECT to replace all its rows", *stmt.place)
    produced: set[tuple[Any, ...]] = set()

    def seen(pieces: list[Piece]) -> list[Piece]:  # the partitions the query produces
        produced.update(p.partition for p in pieces if p.rows)
        return pieces

    start = time.perf_counter()
    replaced: list[Fragment] = []
    with one_commit(session, target, query_id, ctx, always=True) as pending:
        with crash.context(query_id=query_id):
            pending.written, tasks = run_write_stage(session, ctx, plan, target, query_id,
                                                     names=columns, empty_file=False,
                                                     choose=seen)
        if overwrite:
            current = catalog.fragments(stmt.name)
            replaced = [f for f in current if partition_key(f, target) in produced]
            pending.deleted = {f.uri for f in replaced}
    detail = ""
    if overwrite:
        detail = (f"{plural(len(produced), 'partition')} overwritten "
                  f"({len(replaced)} files replaced by {len(pending.written)})")
    return write_outcome(session, stmt.name, query_id, start, plan, sum(t.rows for t in tasks),
                         tasks, pending, detail, idle="")


def partition_key(fragment: Fragment, target: WriteTarget) -> tuple[Any, ...]:
    """The values of ``target.group_columns`` the rows of ``fragment`` share, as the write
    stage's pieces carry them: identity partition values from the manifest, then each
    transform's key of the column's lower bound (a file holds one value of each transform)."""
    values = dict(fragment.partition)
    bounds = {c: lo for c, lo, _ in fragment.bounds}
    key = [values.get(c) for c in target.partition_by]
    for transform, column in target.transforms:
        lo = bounds.get(column)
        key.append(None if lo is None else
                   transform_key(transform, pa.array([lo])).to_pylist()[0])
    return tuple(key)
