"""DELETE FROM: rows for which the condition is TRUE leave an Iceberg table, in ONE snapshot.

    DELETE FROM access_log_pq WHERE date = DATE '2017-01-03'     -- whole files, metadata only
    DELETE FROM access_log_pq WHERE status = 404                 -- affected files rewritten
    DELETE FROM access_log_pq                                    -- every file

1. The condition is bound against the table (errors point into the statement) and the files
   that may hold matching rows are found the way a query finds them: Iceberg's partition and
   min/max pruning (:meth:`~mpp.catalog.Catalog.fragments`). Other files are not touched.
2. A condition on identity partition columns only is evaluated per file on the file's
   partition values, from the manifests: matching files are dropped whole, nothing is read.
3. Otherwise the rows that stay (``NOT COALESCE(condition, FALSE)``: a NULL condition keeps
   the row, as in Trino) are computed by a query over the candidate files, one task per file,
   with the write stage after it. A file none of whose rows match is left as it is; a file all
   of whose rows match is dropped; only the others are rewritten (their kept rows, as files
   near the target size). A condition with IN / EXISTS subqueries comes rewritten as joins
   (:func:`mpp.sql.statements.unnest_subqueries`), broadcast so each file stays one task.
4. ONE Iceberg snapshot (``update_snapshot().overwrite()`` with the deleted and the added data
   files) commits it, statistics updated in the same commit. A DELETE that matches no row
   commits nothing. The removed files stay on disk for the older snapshots.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from mpp import crash
from mpp.errors import MppError
from mpp.logical.evaluate import evaluate
from mpp.logical.nodes import Filter, LogicalNode, Scan
from mpp.physical.operators.exchange import ExchangeExec
from mpp.physical.operators.scan import ScanExec
from mpp.physical.planner import PhysicalPlan, plan_physical
from mpp.sql.statements import DeleteFrom
from mpp.storage.base import Fragment
from mpp.write.ctas import top_value_columns
from mpp.write.sizing import Piece
from mpp.write.stage import (
    WriteOutcome,
    bind_generated,
    current_table,
    one_commit,
    run_write_stage,
    write_outcome,
)

if TYPE_CHECKING:
    from mpp.session import Session


def _scans(plan: PhysicalPlan, table: str) -> list[ScanExec]:
    out, stack = [], [plan.root]
    while stack:
        op = stack.pop()
        if isinstance(op, ScanExec) and _name(op.table) == table:
            out.append(op)
        stack.extend(op.children)
    return out


def _stage_scans(plan: PhysicalPlan, table: str) -> list[ScanExec]:
    """The scans of ``table`` that the final stage's tasks run (exchanges end a stage: what
    they read runs in earlier stages)."""
    out, stack = [], [plan.final_stage.root]
    while stack:
        op = stack.pop()
        if isinstance(op, ScanExec) and _name(op.table) == table:
            out.append(op)
        if not isinstance(op, ExchangeExec):
            stack.extend(op.children)
    return out


def _name(table: Any) -> str:
    return table if isinstance(table, str) else table.name


def _filter_on_scan(node: LogicalNode) -> tuple[Filter, Scan] | None:
    """The Filter directly over the table's Scan in a bound ``SELECT * FROM t WHERE c``."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Filter) and isinstance(n.input, Scan):
            return n, n.input
        stack.extend(n.inputs)
    return None


def _by_partition_values(filt: Filter, scan: Scan, files: list[Fragment]) -> list[Fragment]:
    """The files whose partition values make the condition TRUE (identity columns only)."""
    columns = {}
    for column, field in zip(scan.columns, scan.schema, strict=True):
        values = [dict(f.partition).get(column) for f in files]
        columns[field.name] = pa.array(values, field.dtype)
    mask = evaluate(filt.predicate, pa.table(columns) if columns else pa.table({"_": [0] * len(files)}))
    keep = pc.fill_null(mask, False).to_pylist()
    return [f for f, hit in zip(files, keep, strict=True) if hit]


def delete_from(session: Session, stmt: DeleteFrom, *,
                settings: Mapping[str, Any] | None = None) -> WriteOutcome:
    """Run ``stmt``; the outcome counts the rows deleted."""
    catalog = session.catalog
    info = current_table(session, stmt.name, stmt.place)
    query_id = f"delete-{stmt.name}-{uuid.uuid4().hex[:8]}"
    # A subquery's rows join every file's task: broadcast them.
    ctx = session.context({**(settings or {}), "join.strategy": "broadcast"}
                          if stmt.has_subquery else settings)
    start = time.perf_counter()
    files = catalog.fragments(stmt.name)
    plan: PhysicalPlan | None = None
    if stmt.filter_sql is None:
        doomed, how = files, "every file"
    else:
        with crash.context(query_id=query_id):
            if stmt.has_subquery:  # mpp's rewrite: errors at the statement
                bound = bind_generated(session, stmt.filter_sql, f"DELETE FROM {stmt.name}",
                                       stmt.place)
            else:
                bound = session.bind(stmt.filter_sql)  # errors point into the statement
        filtered = session.physical(session.optimize(bound, ctx), ctx)
        scans = _scans(filtered, stmt.name)
        candidates = list(scans[0].fragments) if len(scans) == 1 else files
        found = _filter_on_scan(bound.root)
        named = {c.lower() for c in stmt.columns}  # names are case-insensitive
        if (found is not None and not stmt.has_subquery
                and named <= {c.lower() for c in info.partition_columns}):
            doomed, how = _by_partition_values(*found, candidates), "metadata only"
        else:
            doomed, how = [], "rewrite"
    target = catalog.begin_append(stmt.name, top_columns=top_value_columns(info.schema),
                                  statement="DELETE")
    rows_deleted = sum(f.row_count for f in doomed)
    tasks: list[Any] = []
    with one_commit(session, target, query_id, ctx) as pending:
        if how == "rewrite" and candidates:
            plan, pending.written, tasks, doomed, rows_deleted = _rewrite(
                session, ctx, stmt, candidates, target, query_id)
        pending.deleted = {f.uri for f in doomed}  # none: nothing matched, no snapshot
    return write_outcome(session, stmt.name, query_id, start, plan, rows_deleted, tasks, pending,
                         f"{len(doomed)} of {len(files)} files removed, "
                         f"{len(pending.written)} written ({how})",
                         idle="nothing matched: no snapshot")


def per_file_write(session: Session, ctx: Any, name: str, sql: str, files: list[Fragment],
                   target: Any, query_id: str, what: str,
                   choose: Callable[[list[Piece]], list[Piece]], *, first_index: int = 0,
                   ) -> tuple[PhysicalPlan, list[Any], list[Any]]:
    """Run ``sql`` (a query over table ``name``) reading exactly ``files`` of ``name``, one
    task per file of the final stage, with the write stage after it; ``choose`` picks the
    measured pieces to write (``Piece.source`` is the file's position in ``files``). Other
    tables may be read by earlier stages (MERGE's source, broadcast to every task). Returns
    the plan, the files written and the write tasks. ``what`` names the statement in
    errors. Scan tasks are not packed (``scan.max_task_bytes`` = 0): each file's rows must
    come out of a task of their own."""
    ctx = ctx.with_settings({"scan.max_task_bytes": 0})
    with crash.context(query_id=query_id):
        query = session.optimize(session.bind(sql), ctx)
        plan = plan_physical(query, ctx, lambda scan: (
            list(files) if _name(scan.table) == name
            else session.catalog.fragments(scan.table, scan.predicates)))
    scans = _scans(plan, name)
    if (len(scans) != 1 or plan.final_stage.tasks != len(files)
            or scans[0] not in _stage_scans(plan, name)
            or [f.uri for f in scans[0].fragments] != [f.uri for f in files]):
        raise MppError(f"{what} {name}: the rows are not planned as one task per file; this "
                       "statement is not supported yet")
    with crash.context(query_id=query_id):
        written, tasks = run_write_stage(session, ctx, plan, target, query_id,
                                         names=tuple(target.schema.names), empty_file=False,
                                         choose=choose, first_index=first_index)
    return plan, written, tasks


def changed_files(pieces: list[Piece], files: list[Fragment]) -> tuple[list[int], list[int]]:
    """Rows per file of the measured ``pieces``, and the positions of the files whose count
    is below their row count (the rows a keep-query dropped: the files a statement changes)."""
    kept = [0] * len(files)
    for p in pieces:
        kept[p.source] += p.rows
    return kept, [i for i, f in enumerate(files) if kept[i] < f.row_count]


def _rewrite(session: Session, ctx: Any, stmt: DeleteFrom, candidates: list[Fragment],
             target: Any, query_id: str) -> tuple[PhysicalPlan, list[Any], list[Any],
                                                  list[Fragment], int]:
    """Step 3: the kept rows of the candidate files, one task per file; the files whose rows
    partly match are rewritten. Returns the plan, files written, write tasks, files removed
    and rows deleted."""
    assert stmt.keep_sql is not None
    kept: list[int] = []
    doomed: list[Fragment] = []

    def choose(pieces: list[Piece]) -> list[Piece]:
        counts, changed = changed_files(pieces, candidates)
        kept.extend(counts)
        doomed.extend(candidates[i] for i in changed)
        hit = set(changed)
        return [p for p in pieces if p.source in hit]

    plan, written, tasks = per_file_write(session, ctx, stmt.name, stmt.keep_sql, candidates,
                                          target, query_id, "DELETE FROM", choose)
    deleted_rows = sum(f.row_count - kept[candidates.index(f)] for f in doomed)
    return plan, written, tasks, doomed, deleted_rows
