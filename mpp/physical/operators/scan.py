"""ScanExec: read a task's fragments (one, or several packed), with projection and predicate
pushdown."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from mpp.logical.nodes import Field
from mpp.physical.distribution import Arbitrary, Partitioning
from mpp.physical.operators.base import PhysicalOp, TaskContext, concat, empty_table
from mpp.storage.base import ColumnPredicate, Fragment
from mpp.text import plural


def sql_value(value: Any) -> str:
    """A predicate value as SQL text (``DATE '2017-01-02'``), for EXPLAIN."""
    if isinstance(value, tuple):
        return "(" + ", ".join(sql_value(v) for v in value) + ")"
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP '{value}'"
    if isinstance(value, dt.date):
        return f"DATE '{value}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value)


def _predicate_text(p: ColumnPredicate) -> str:
    if p.op in ("is_null", "is_not_null"):
        return str(p)
    return f"{p.column} {'IN' if p.op == 'in' else p.op} {sql_value(p.value)}"


@dataclass(frozen=True, slots=True)
class ScanExec(PhysicalOp):
    """Reads ``columns`` of ``table`` from its (pruned) fragments; rows pass every predicate.

    ``task_starts`` packs the fragments into tasks (:mod:`mpp.physical.packing`): task i reads
    ``fragments[task_starts[i]:task_starts[i + 1]]``, one after another, each pruned and
    filtered on its own, and streams them to the pipeline above (:meth:`execute_batches`).
    Empty: one task per fragment, the seed's "100M rows -> 1,000 tasks of 100K rows". With
    every fragment pruned away, one task produces the empty result.

    ``fetch`` (the optimizer's pushed LIMIT): each task passes on at most that many rows (it
    stops reading fragments once it has them), and the planner listed only the fragments
    needed to hold them when their row counts allow.

    ``slot``: the scan's position among its stage's scans (set when stages are cut). A stage
    may read several scans, in one task (the two single-task sides of a RIGHT or FULL
    nested-loop join) or in separate task ranges (a union); a task is handed its fragments
    of each slot, and this scan reads its own.
    """

    word: ClassVar[str] = "scan"
    table: str
    alias: str
    columns: tuple[str, ...]
    predicates: tuple[ColumnPredicate, ...]
    schema: tuple[Field, ...]
    fragments: tuple[Fragment, ...] = ()
    total_fragments: int = 0  # before pruning, for EXPLAIN
    # A relational source's query (SQLite: the parameterized SELECT with the pushed filters
    # and columns), shown by EXPLAIN; empty for files.
    source_query: str = ""
    fetch: int | None = None
    slot: int = 0
    version: int | None = None  # time travel: the Iceberg snapshot read (None: current)
    task_starts: tuple[int, ...] = ()  # the first fragment of each task (empty: one each)

    @property
    def tasks(self) -> int:
        """Tasks reading this scan (at least one, even with every fragment pruned)."""
        return max(1, len(self.task_starts) if self.task_starts else len(self.fragments))

    @property
    def packed(self) -> bool:
        """Whether some task reads more than one fragment."""
        return self.tasks < len(self.fragments)

    def task_fragments(self, part: int) -> tuple[Fragment, ...]:
        """The fragments task ``part`` of this scan reads, in order."""
        if not self.task_starts:
            return self.fragments[part:part + 1]
        end = self.task_starts[part + 1] if part + 1 < len(self.task_starts) else None
        return self.fragments[self.task_starts[part]:end]

    def output_partitioning(self) -> Partitioning:
        return Arbitrary(self.tasks)

    def execute(self, tctx: TaskContext) -> pa.Table:
        return concat(list(self.execute_batches(tctx)), self.schema)

    def execute_batches(self, tctx: TaskContext) -> Iterator[pa.Table]:
        """The rows of this task's fragments, one table per fragment (so the operators above
        stream them: a join probes one at a time, a partial aggregate groups them by their
        constant keys, a fragment's partition values staying constant in its table); at
        least one table, empty when the task reads none."""
        fragments = tctx.fragments[self.slot] if self.slot < len(tctx.fragments) else ()
        left = self.fetch
        produced = False
        for fragment in fragments or ():
            if left is not None and left <= 0:
                break
            table = self._read(tctx, fragment, left)
            left = None if left is None else left - table.num_rows
            produced = True
            yield table
        if not produced:
            yield empty_table(self.schema)

    def _read(self, tctx: TaskContext, fragment: Fragment, fetch: int | None) -> pa.Table:
        from mpp.storage import scan_fragment  # imported on the worker, lazily

        result = scan_fragment(fragment, self.columns, self.predicates)
        tctx.rows_in += result.rows_scanned
        tctx.bytes_read += result.bytes_read
        table = result.table if fetch is None else result.table.slice(0, fetch)
        if not self.schema:  # count(*) reads no column: keep only the row count
            return table.select([])
        out = table.rename_columns([f.name for f in self.schema])
        target = pa.schema([(f.name, f.dtype) for f in self.schema])
        return out if out.schema.equals(target) else out.cast(target)

    def without_fragments(self) -> PhysicalOp:
        return dataclasses.replace(self, fragments=(), task_starts=())

    def explain_line(self) -> str:
        cols = ", ".join(self.columns) or "no columns"
        line = f"ScanExec: {self.table}"
        if self.alias != self.table:
            line += f" AS {self.alias}"
        line += f" FOR VERSION AS OF {self.version}" if self.version is not None else ""
        line += f" [{cols}]"
        if self.predicates:
            line += " filter=(" + " AND ".join(_predicate_text(p) for p in self.predicates) + ")"
        pruned = f"{len(self.fragments)} of {self.total_fragments}"
        line += f" fragments={pruned if self.total_fragments else len(self.fragments)}"
        line += f" in {plural(self.tasks, 'task')}" if self.packed else ""
        line += f" fetch={self.fetch}" if self.fetch is not None else ""
        return line + (f"\n    sql: {self.source_query}" if self.source_query else "")
