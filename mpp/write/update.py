"""UPDATE: new values for the rows a condition selects, only the affected files rewritten, in
ONE Iceberg snapshot.

    UPDATE users SET plan = 'pro', updated = DATE '2024-01-05' WHERE user_id = 42
    UPDATE access_log_pq SET status = 410 WHERE status = 404 AND date = DATE '2017-01-03'

Iceberg data files are immutable, so an UPDATE is a DELETE of the changed files plus new
files with their rows (Trino's Iceberg connector writes position deletes instead; mpp always
rewrites, as its DELETE does):

1. The SET expressions and the condition are bound against the table; the files that may
   hold matching rows are found as a query finds them (partition and min/max pruning).
2. Which candidate files hold a row for which the condition is TRUE: the rows that stay as
   they are (``NOT COALESCE(condition, FALSE)``, a NULL condition leaves the row, as in Trino)
   are counted per file, one task per file, nothing written.
3. Only the files with such rows are read again, one task per file, as ``CASE WHEN
   COALESCE(condition, FALSE) THEN expression ELSE column END`` per SET column, with the
   write stage after it (files near the target size; a changed partition column moves the
   row to its new partition's files).
4. ONE ``update_snapshot().overwrite()`` removes the changed files and adds the new ones,
   statistics updated in the same commit. An UPDATE that matches no row commits nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from mpp import crash
from mpp.errors import SqlError
from mpp.sql.statements import UpdateTable
from mpp.sql.types import type_name
from mpp.storage.base import Fragment
from mpp.write.ctas import top_value_columns
from mpp.write.delete import _scans, changed_files, per_file_write
from mpp.write.insert import insertable
from mpp.write.sizing import Piece
from mpp.write.stage import (
    WriteOutcome,
    bind_generated,
    current_table,
    one_commit,
    write_outcome,
)

if TYPE_CHECKING:
    from mpp.session import Session


def _ident(name: str) -> str:
    return exp.to_identifier(name).sql(dialect="trino")


def hit_sql(condition: str | None) -> str:
    """``COALESCE((condition), FALSE)``: TRUE exactly for the rows a statement changes."""
    return "TRUE" if condition is None else f"COALESCE(({condition}), FALSE)"


def update_sql(name: str, columns: list[str], assignments: Mapping[str, str],
               condition: str | None, relation: str | None = None) -> str:
    """The table's rows after the update: each SET column as ``CASE WHEN hit THEN expression
    ELSE column END``, the others as they are; read FROM ``relation`` (default: the table;
    with subqueries in the condition, the table joined with them)."""
    hit = hit_sql(condition)
    items = []
    for c in columns:
        expr = assignments.get(c.lower())
        if expr is None:
            items.append(_ident(c))
        elif condition is None:
            items.append(f"({expr}) AS {_ident(c)}")
        else:
            items.append(f"CASE WHEN {hit} THEN ({expr}) ELSE {_ident(c)} END AS {_ident(c)}")
    return f"SELECT {', '.join(items)} FROM {relation or _ident(name)}"


def update_table(session: Session, stmt: UpdateTable, *,
                 settings: Mapping[str, Any] | None = None) -> WriteOutcome:
    """Run ``stmt``; the outcome counts the rows updated."""
    catalog = session.catalog
    info = current_table(session, stmt.name, stmt.place)
    names = {c.lower(): c for c in info.schema.names}
    for column, _ in stmt.assignments:
        if column.lower() not in names:
            raise SqlError(f"UPDATE {stmt.name}: unknown column {column} (its columns: "
                           f"{', '.join(info.schema.names)})", *stmt.place)
    assignments = {c.lower(): e for c, e in stmt.assignments}
    query_id = f"update-{stmt.name}-{uuid.uuid4().hex[:8]}"
    # A subquery's rows join every file's task: broadcast them.
    ctx = session.context({**(settings or {}), "join.strategy": "broadcast"}
                          if stmt.from_sql else settings)
    start = time.perf_counter()
    files = catalog.fragments(stmt.name)
    sql = update_sql(stmt.name, info.schema.names, assignments, stmt.condition_sql,
                     stmt.relation)
    with crash.context(query_id=query_id):
        # errors in SET expressions or the condition (in mpp's rewrite: at the statement)
        updated = (bind_generated(session, sql, f"UPDATE {stmt.name}", stmt.place)
                   if stmt.from_sql else session.bind(sql))
        candidates = files
        if stmt.filter_sql is not None:
            filtered = session.physical(session.optimize(session.bind(stmt.filter_sql), ctx), ctx)
            scans = _scans(filtered, stmt.name)
            candidates = list(scans[0].fragments) if len(scans) == 1 else files
    for field, column in zip(updated.root.schema, info.schema, strict=True):
        if column.name.lower() in assignments and not insertable(field.dtype, column.type):
            raise SqlError(f"UPDATE {stmt.name}: column {column.name} is {type_name(column.type)}"
                           f" but the SET expression gives {type_name(field.dtype)}; CAST the "
                           f"value to {type_name(column.type)}", *stmt.place)
    target = catalog.begin_append(stmt.name, top_columns=top_value_columns(info.schema),
                                  statement="UPDATE")
    changed: list[Fragment] = []
    counts: list[int] = []
    tasks: list[Any] = []
    plan = None
    with one_commit(session, target, query_id, ctx) as pending:
        if candidates and stmt.condition_sql is not None:
            def count(pieces: list[Piece]) -> list[Piece]:  # step 2: write nothing
                kept, hit = changed_files(pieces, candidates)
                counts.extend(candidates[i].row_count - kept[i] for i in hit)
                changed.extend(candidates[i] for i in hit)
                return []

            keep = (f"SELECT {_ident(stmt.name)}.* FROM {stmt.relation} "
                    f"WHERE NOT {hit_sql(stmt.condition_sql)}")
            per_file_write(session, ctx, stmt.name, keep, candidates, target,
                           f"{query_id}-find", "UPDATE", count)
        elif stmt.condition_sql is None:
            changed = [f for f in files if f.row_count]
            counts = [f.row_count for f in changed]
        if changed:
            plan, pending.written, tasks = per_file_write(
                session, ctx, stmt.name, sql, changed, target, query_id, "UPDATE",
                lambda pieces: pieces)
            pending.deleted = {f.uri for f in changed}
    return write_outcome(session, stmt.name, query_id, start, plan, sum(counts), tasks, pending,
                         f"{len(changed)} of {len(files)} files rewritten as "
                         f"{len(pending.written)}", idle="nothing matched: no snapshot")
