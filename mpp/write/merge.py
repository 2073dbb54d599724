"""MERGE INTO: update, delete and insert rows of an Iceberg table from a source, in ONE snapshot.

    MERGE INTO users AS u USING changes AS c ON u.user_id = c.user_id
    WHEN MATCHED AND c.deleted THEN DELETE
    WHEN MATCHED THEN UPDATE SET plan = c.plan
    WHEN NOT MATCHED THEN INSERT (user_id, plan) VALUES (c.user_id, c.plan)

Trino's semantics: each target row is matched by the source rows for which ON is TRUE; the
first WHEN MATCHED clause whose condition holds applies to it (none: it stays as it is); each
source row that matches no target row gets the first WHEN NOT MATCHED clause whose condition
holds (none: nothing is inserted). A target row matched by more than one source row is an
error (``One MERGE target table row matched more than one source row``).

It runs as a join of target and source on the cluster, target file by target file (the source
is broadcast to every task, so each task sees one target file whole):

1. **Find.** ``target LEFT JOIN source ON condition`` tags every output row with the clause
   that applies (0: not matched, -1: matched but no clause applies); the write stage only
   measures: rows per file and tag. A file whose join rows outnumber its rows holds a target
   row matched twice: the statement fails before anything is written. Files with a row that a
   clause updates or deletes are *changed*.
2. **Rewrite.** Only the changed files are read again, joined the same way, as the new values
   (``CASE`` over the clauses in order) without the deleted rows, and written.
3. **Insert.** ``source LEFT JOIN target`` keeps the source rows no target row matched, as the
   values of the first WHEN NOT MATCHED clause that holds; written as new files.
4. ONE Iceberg snapshot (``update_snapshot().overwrite()``: the changed files out, the
   rewritten and inserted files in; a fast append when only inserting), statistics in the
   same commit. A MERGE that changes nothing (an empty source) commits nothing.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from mpp import crash
from mpp.catalog.model import TableInfo
from mpp.errors import MppError, SqlError
from mpp.sql.statements import MergeClause, MergeInto
from mpp.sql.types import type_name
from mpp.storage.base import Fragment
from mpp.write.ctas import top_value_columns
from mpp.write.delete import per_file_write
from mpp.write.insert import insertable
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

MATCHED_TWICE = "One MERGE target table row matched more than one source row"
_SOURCE_MARK = "__merge_source"
_TARGET_MARK = "__merge_target"
_TAG = "__merge_tag"


def _ident(name: str) -> str:
    return exp.to_identifier(name).sql(dialect="trino")


@dataclasses.dataclass(frozen=True, slots=True)
class _Sql:
    """The queries of one MERGE, built from the statement and the table's columns."""

    stmt: MergeInto
    columns: tuple[str, ...]

    @property
    def source(self) -> str:
        inner = (self.stmt.source_sql if self.stmt.source_sql.startswith("(")
                 else f"(SELECT * FROM {self.stmt.source_sql})")
        return (f"(SELECT *, TRUE AS {_SOURCE_MARK} FROM {inner} AS __merge_s) AS "
                f"{_ident(self.stmt.source_alias)}")

    def _col(self, c: str) -> str:
        return f"{_ident(self.stmt.target_alias)}.{_ident(c)}"

    @property
    def matched(self) -> str:
        return f"{_ident(self.stmt.source_alias)}.{_SOURCE_MARK} IS NOT NULL"

    def _when(self, clause: MergeClause, matched: str) -> str:
        if clause.condition_sql is None:
            return matched
        return f"{matched} AND COALESCE(({clause.condition_sql}), FALSE)"

    def join_from(self) -> str:
        """``FROM target LEFT JOIN source ON ...``: every target row with its matches."""
        return self._join()

    def insert_from(self) -> str:
        """``FROM source LEFT JOIN target ON ...``: every source row with its matches."""
        target = _ident(self.stmt.target_alias)
        return (f"FROM {self.source} LEFT JOIN (SELECT *, TRUE AS {_TARGET_MARK} FROM "
                f"{_ident(self.stmt.name)}) AS {target} ON {self.stmt.on_sql}")

    def _join(self) -> str:
        target = _ident(self.stmt.name)
        alias = _ident(self.stmt.target_alias)
        rel = target if alias == target else f"{target} AS {alias}"
        return f"FROM {rel} LEFT JOIN {self.source} ON {self.stmt.on_sql}"

    def updates(self) -> list[tuple[int, MergeClause]]:
        return [(i, c) for i, c in enumerate(self.stmt.clauses, 1) if c.matched]

    def find(self) -> str:
        """Step 1: every join row tagged with the WHEN MATCHED clause that applies."""
        cases = " ".join(f"WHEN {self._when(c, self.matched)} THEN {i}"
                         for i, c in self.updates())
        return (f"SELECT CASE {cases} WHEN {self.matched} THEN -1 ELSE 0 END AS {_TAG} "
                f"{self._join()}")

    def rewrite(self) -> str:
        """Step 2: the new rows of the target files (deleted rows dropped)."""
        items = []
        for c in self.columns:
            arms = [f"WHEN {self._when(cl, self.matched)} THEN "
                    f"({dict((k.lower(), v) for k, v in cl.assignments).get(c.lower()) or self._col(c)})"
                    for _, cl in self.updates()]
            touched = any(c.lower() in {k.lower() for k, _ in cl.assignments}
                          for _, cl in self.updates())
            items.append(f"CASE {' '.join(arms)} ELSE {self._col(c)} END AS {_ident(c)}"
                         if touched else f"{self._col(c)} AS {_ident(c)}")
        sql = f"SELECT {', '.join(items)} {self._join()}"
        if any(cl.action == "delete" for _, cl in self.updates()):
            arms = " ".join(f"WHEN {self._when(cl, self.matched)} THEN "
                            f"{'TRUE' if cl.action == 'delete' else 'FALSE'}"
                            for _, cl in self.updates())
            sql += f" WHERE NOT (CASE {arms} ELSE FALSE END)"
        return sql

    def inserts(self) -> list[MergeClause]:
        return [c for c in self.stmt.clauses if not c.matched]

    def insert(self) -> str:
        """Step 3: the source rows no target row matched, as the first INSERT that holds."""
        target = _ident(self.stmt.target_alias)
        unmatched = f"{target}.{_TARGET_MARK} IS NULL"
        clauses = self.inserts()
        items = []
        for c in self.columns:
            arms = []
            for cl in clauses:
                listed = [x.lower() for x in (cl.columns or self.columns)]
                if c.lower() in listed:
                    arms.append(f"WHEN {self._when(cl, 'TRUE')} THEN "
                                f"({cl.values[listed.index(c.lower())]})")
            items.append(f"CASE {' '.join(arms)} END AS {_ident(c)}" if arms
                         else f"NULL AS {_ident(c)}")
        applies = " OR ".join(f"({self._when(cl, 'TRUE')})" for cl in clauses)
        return f"SELECT {', '.join(items)} {self.insert_from()} WHERE {unmatched} AND ({applies})"


def _check(stmt: MergeInto, info: TableInfo) -> None:
    """Columns named by the clauses exist and INSERT lists give one value per column."""
    names = {c.lower() for c in info.schema.names}
    for clause in stmt.clauses:
        for c in [k for k, _ in clause.assignments] + list(clause.columns or ()):
            if c.lower() not in names:
                raise SqlError(f"MERGE INTO {stmt.name}: unknown column {c} (its columns: "
                               f"{', '.join(info.schema.names)})", *stmt.place)
        if clause.action == "insert" and clause.columns is None and \
                len(clause.values) != len(names):
            raise SqlError(f"MERGE INTO {stmt.name}: INSERT VALUES gives {len(clause.values)} "
                           f"values for {len(names)} columns", *stmt.place)


def _check_types(session: Session, stmt: MergeInto, info: TableInfo, queries: _Sql) -> None:
    """Each SET expression and INSERT value converts implicitly to its column's type (INSERT's
    rule); errors name the column."""
    what = f"MERGE INTO {stmt.name}"
    types = {f.name.lower(): f.type for f in info.schema}
    for clause in stmt.clauses:
        if clause.action == "insert":
            pairs = list(zip(clause.columns or info.schema.names, clause.values, strict=True))
            rel = queries.insert_from()
        else:
            pairs, rel = list(clause.assignments), queries.join_from()
        if clause.condition_sql is not None:
            pairs.append(("", f"COALESCE(({clause.condition_sql}), FALSE)"))
        if not pairs:
            continue
        plan = bind_generated(session, f"SELECT {', '.join(f'({e})' for _, e in pairs)} {rel}",
                              what, stmt.place)
        for (column, _), field in zip(pairs, plan.root.schema, strict=True):
            want = types.get(column.lower())
            if want is not None and not insertable(field.dtype, want):
                raise SqlError(f"{what}: column {column} is {type_name(want)} but a clause "
                               f"gives {type_name(field.dtype)}; CAST the value to "
                               f"{type_name(want)}", *stmt.place)


def merge_into(session: Session, stmt: MergeInto, *,
               settings: Mapping[str, Any] | None = None) -> WriteOutcome:
    """Run ``stmt``; the outcome counts the rows updated, deleted and inserted."""
    catalog = session.catalog
    info = current_table(session, stmt.name, stmt.place)
    _check(stmt, info)
    queries = _Sql(stmt, tuple(info.schema.names))
    query_id = f"merge-{stmt.name}-{uuid.uuid4().hex[:8]}"
    # Every target-file task joins the whole source: broadcast it.
    ctx = session.context({**(settings or {}), "join.strategy": "broadcast"})
    start = time.perf_counter()
    files = catalog.fragments(stmt.name)
    with crash.context(query_id=query_id):
        _check_types(session, stmt, info, queries)
        if queries.updates():
            bind_generated(session, queries.rewrite(), f"MERGE INTO {stmt.name}", stmt.place)
        if queries.inserts():
            bind_generated(session, queries.insert(), f"MERGE INTO {stmt.name}", stmt.place)
    target = catalog.begin_append(stmt.name, top_columns=top_value_columns(info.schema),
                                  statement="MERGE")
    changed: list[Fragment] = []
    affected = 0
    tasks: list[Any] = []
    plan = None
    with one_commit(session, target, query_id, ctx) as pending:
        live = [f for f in files if f.row_count]
        if live:
            affected, changed = _find(session, ctx, stmt, queries, live, target, query_id)
        if changed:
            plan, pending.written, tasks = per_file_write(
                session, ctx, stmt.name, queries.rewrite(), changed, target, query_id,
                "MERGE INTO", lambda pieces: pieces)
            pending.deleted = {f.uri for f in changed}
        if queries.inserts():
            with crash.context(query_id=query_id):
                insert_plan = session.physical(session.optimize(
                    session.bind(queries.insert()), ctx), ctx)
                more, more_tasks = run_write_stage(
                    session, ctx, insert_plan, target, f"{query_id}-insert",
                    names=tuple(info.schema.names), empty_file=False,
                    first_index=len(pending.written))
            pending.written += more
            tasks += more_tasks
            affected += sum(t.rows for t in more_tasks)
            plan = plan or insert_plan
    # The measurements of the plan shown: the rewrite's, else the insert's.
    return write_outcome(session, stmt.name, query_id, start, plan, affected, tasks, pending,
                         f"{len(changed)} of {len(files)} files rewritten, "
                         f"{len(pending.written)} written", idle="nothing changed: no snapshot",
                         shown=query_id if changed else f"{query_id}-insert",
                         write_ids=(query_id, f"{query_id}-insert"))


def _find(session: Session, ctx: Any, stmt: MergeInto, queries: _Sql, files: list[Fragment],
          target: Any, query_id: str) -> tuple[int, list[Fragment]]:
    """Step 1: rows a clause updates or deletes, and the files holding them; MppError if a
    target row is matched twice."""
    counter = dataclasses.replace(target, schema=pa.schema([(_TAG, pa.int32())]),
                                  partition_by=(_TAG,), transforms=(), spec=(), field_ids=(),
                                  top_columns=())
    joined = [0] * len(files)
    acted = [0] * len(files)

    def count(pieces: list[Piece]) -> list[Piece]:  # measures only: nothing is written
        for p in pieces:
            joined[p.source] += p.rows
            if p.partition and p.partition[0] is not None and p.partition[0] > 0:
                acted[p.source] += p.rows
        return []

    per_file_write(session, ctx, stmt.name, queries.find(), files, counter,
                   f"{query_id}-find", "MERGE INTO", count)
    if any(j > f.row_count for j, f in zip(joined, files, strict=True)):
        raise MppError(f"MERGE INTO {stmt.name}: {MATCHED_TWICE}")
    return sum(acted), [f for f, a in zip(files, acted, strict=True) if a]
