"""The protocol every physical operator implements, and the per-task context it runs in.

An operator is a frozen dataclass. The planner asks it what distribution it needs of each input
(:meth:`PhysicalOp.required_input_distribution`) and how its output is partitioned
(:meth:`PhysicalOp.output_partitioning`); the graph builder runs a stage's operators inside one
task by calling :meth:`PhysicalOp.execute` on the stage's top operator, which pulls from its
children (a pipeline); EXPLAIN prints :meth:`PhysicalOp.explain_line`. Nothing outside the
operator switches on its type.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mpp.logical.nodes import Field
from mpp.physical.distribution import Distribution, Partitioning, UnspecifiedDistribution
from mpp.storage.base import Fragment, rows_only

HOT_KEY_SAMPLE = 1_024  # rows a task inspects (strided) to name its most frequent key values
HOT_KEYS = 3
# Rows a partial step (aggregate, top-N) reduces before it judges, per task, whether reducing
# pays (Trino's adaptive partial aggregation looks at its first 100,000 rows).
PROBE_ROWS = 100_000
_UNREDUCED = b"mpp.unreduced"  # schema metadata: a partial step's output it did not reduce


@dataclass(slots=True)
class TaskContext:
    """What one partition task knows while its pipeline runs, and what it measured.

    Attributes:
        partition: index of the task within its stage.
        fragments: the fragments each scan of the stage reads in this task, by the scan's
            ``slot`` (one, or several packed into the task; None or empty for a scan outside
            the task's range or with every fragment pruned; no slots when the stage is fed by
            exchanges only).
        inputs: rows this task received, by the id of the exchange they came through.
        rows_in, bytes_read: rows consumed (scanned or received) and bytes read from storage.
        hot_keys: the most frequent key values of the first keyed operator, with row counts.
        join_rows: rows that entered this task's hash joins, (probe/left, build/right); a
            broadcast build side shared by a worker's tasks counts in the task that built it.
        join_builds: hash tables this task built for its joins.
        partial_skipped: partial steps (aggregate, top-N) that stopped reducing in this task
            because their output kept most of their input (see :func:`mark_unreduced`).
        query_id: the query the task belongs to (keys what a worker's tasks share).
    """

    partition: int
    fragments: tuple[tuple[Fragment, ...] | None, ...] = ()
    inputs: dict[int, pa.Table] = field(default_factory=dict)
    rows_in: int = 0
    bytes_read: int = 0
    hot_keys: tuple[tuple[Any, int], ...] = ()
    join_rows: tuple[int, int] = (0, 0)
    join_builds: int = 0
    query_id: str = ""
    partial_skipped: int = 0

    def note_keys(self, table: pa.Table, keys: tuple[str, ...],
                  fixed: Mapping[str, pa.Scalar] | None = None) -> None:
        """Record the most frequent values of ``keys`` (from a sample), once per task.

        ``fixed``: keys already known to be constant over ``table`` (see ``constant_keys``).
        """
        if self.hot_keys or not keys or table.num_rows == 0:
            return
        keys = tuple(dict.fromkeys(keys))  # a join may use one column in two key pairs
        if fixed is None:
            from mpp.physical.aggregates import constant_keys

            fixed = constant_keys(table, keys)
        values = {k: v.as_py() for k, v in fixed.items() if k in keys}
        varying = [k for k in keys if k not in values]
        if not varying:  # e.g. a fragment of a date-partitioned table, grouped by date
            top: list[tuple[dict[str, Any], int]] = [(values, table.num_rows)]
        else:
            # A strided sample: inputs often arrive ordered (logs land in time order,
            # exchanges concatenate map outputs), so the first rows would misattribute.
            step = max(1, table.num_rows // HOT_KEY_SAMPLE)
            plain = _sampled_integers(table[keys[0]], step) if len(keys) == 1 else None
            if plain is not None:  # one integer key: counted in numpy (~20 us, not ~0.3 ms)
                scale = table.num_rows / plain.size
                found, n = np.unique(plain, return_counts=True)
                best = np.argsort(-n, kind="stable")[:HOT_KEYS]
                self.hot_keys = tuple((int(found[i]), round(int(n[i]) * scale)) for i in best)
                return
            sample = table.select(varying).take(pa.array(np.arange(0, table.num_rows, step)))
            scale = table.num_rows / sample.num_rows
            if len(varying) == 1:
                counted = pc.value_counts(sample[varying[0]].combine_chunks())
                counts = pa.table({varying[0]: counted.field("values"),
                                   "n": counted.field("counts")})
            else:
                counts = sample.group_by(varying, use_threads=False).aggregate(
                    [([], "count_all")]).rename_columns([*varying, "n"])
            best = pc.select_k_unstable(counts, HOT_KEYS, [("n", "descending")])
            rows = counts.take(best).to_pylist()
            top = [({**values, **row}, round(row["n"] * scale)) for row in rows]
        self.hot_keys = tuple(
            (row[keys[0]] if len(keys) == 1 else tuple(row[k] for k in keys), n)
            for row, n in top
        )


def _sampled_integers(column: pa.ChunkedArray, step: int) -> np.ndarray | None:
    """Every ``step``-th value of an integer column without NULLs, as numpy (None: another
    type, NULLs, or several chunks, which the Arrow path counts)."""
    if (not pa.types.is_integer(column.type) or column.num_chunks != 1 or column.null_count):
        return None
    return np.asarray(column.chunk(0).to_numpy())[::step]


def empty_table(schema: tuple[Field, ...]) -> pa.Table:
    """A table with no rows and the given fields."""
    return pa.schema([(f.name, f.dtype) for f in schema]).empty_table()


def mark_unreduced(table: pa.Table) -> pa.Table:
    """``table`` tagged as a partial step's output that kept most of its input rows, so the
    exchange's combine concatenates it with its like instead of merging (the tag is schema
    metadata: it travels with the table to the combine task)."""
    return table.replace_schema_metadata({_UNREDUCED: b"1"})


def is_unreduced(table: pa.Table) -> bool:
    """Whether ``table`` carries :func:`mark_unreduced`'s tag."""
    meta = table.schema.metadata
    return bool(meta) and _UNREDUCED in meta


def all_unreduced(tables: list[pa.Table]) -> bool:
    """Whether every non-empty one of ``tables`` is tagged unreduced (and one is): merging
    them would hash nearly unique keys to remove few rows, so a combine only concatenates."""
    tables = [t for t in tables if t.num_rows]
    return bool(tables) and all(is_unreduced(t) for t in tables)


def probe_rows(rows: int) -> int:
    """Rows of a task's input a partial step reduces before judging: a quarter of them, at
    most :data:`PROBE_ROWS` (so a small task still passes rows through when it skips)."""
    return min(PROBE_ROWS, max(1, -(-rows // 4)))


def reduced_too_little(rows_out: int, rows_in: int, ratio: float) -> bool:
    """Whether a partial step that turned ``rows_in`` rows into ``rows_out`` kept more than
    ``ratio`` of them (``aggregate.partial_skip_ratio``; 1 never skips, 0 always does)."""
    return rows_in > 0 and rows_out > ratio * rows_in


def reduce_adaptively(tctx: TaskContext, table: pa.Table, schema: tuple[Field, ...],
                      ratio: float, reduce: Callable[[pa.Table], pa.Table],
                      merge: Callable[[pa.Table], pa.Table],
                      pass_on: Callable[[pa.Table, list[str]], pa.Table]) -> pa.Table:
    """A partial step (aggregate, top-N per group) that judges itself on its first rows, as
    Trino's adaptive partial aggregation does: ``reduce`` the first :func:`probe_rows`; if
    that kept no more than ``ratio`` of them, reduce the rest too and ``merge`` both,
    otherwise the rest goes on as ``pass_on(rest, reduced rows' column names)`` makes it and
    the output is tagged unreduced (:func:`mark_unreduced`), counted in
    ``tctx.partial_skipped``."""
    rows = table.num_rows
    probe = probe_rows(rows)
    head = reduce(table.slice(0, probe))
    if not reduced_too_little(head.num_rows, probe, ratio):
        if probe == rows:
            return head
        # Reducing pays: the other rows' groups merge with the first rows' few.
        return merge(concat([head, reduce(table.slice(probe))], schema))
    tctx.partial_skipped += 1
    rest = pass_on(table.slice(probe), head.column_names)
    return mark_unreduced(concat([head, rest], schema))


def concat(tables: list[pa.Table], schema: tuple[Field, ...]) -> pa.Table:
    """Concatenate partition outputs (widths may differ slightly, e.g. int32 vs int64).
    Tables without columns (a ``count(*)`` scan's) keep their rows counted."""
    tables = [t.replace_schema_metadata(None) if t.schema.metadata else t
              for t in tables if t.num_rows] or [empty_table(schema)]
    if len(tables) == 1:
        return tables[0]
    if not tables[0].num_columns:  # Arrow concatenates tables without columns to no rows
        return rows_only(sum(t.num_rows for t in tables))
    return pa.concat_tables(tables, promote_options="permissive")


class PhysicalOp:
    """Base of physical operators. Subclasses are frozen dataclasses with a ``schema``."""

    word: ClassVar[str] = "op"  # the word this operator adds to its stage's Dask key prefix
    schema: tuple[Field, ...]

    @property
    def children(self) -> tuple[PhysicalOp, ...]:
        """Inputs, left to right."""
        return ()

    def with_children(self, children: tuple[PhysicalOp, ...]) -> PhysicalOp:
        """A copy with ``children`` replaced (same order as :attr:`children`)."""
        names = [f.name for f in dataclasses.fields(self)  # type: ignore[arg-type]
                 if f.name in ("input", "left", "right")]
        return dataclasses.replace(self, **dict(zip(names, children, strict=True)))  # type: ignore[type-var]

    def child_task_ranges(self, first: int, tasks: int) -> tuple[tuple[int, int], ...]:
        """Which of its stage's tasks each child runs in, as ``(first task, task count)``.

        ``first, tasks`` is this operator's own range. The default: every child runs in every
        task of it, aligned partition by partition (a join's probe partition i meets build
        bucket i or the whole broadcast). A union overrides it: its children's partitions are
        concatenated, so each child owns a consecutive range of its own.
        """
        return tuple((first, tasks) for _ in self.children)

    def required_input_distribution(self) -> tuple[Distribution, ...]:
        """The distribution this operator needs of each child (default: any)."""
        return tuple(UnspecifiedDistribution() for _ in self.children)

    def output_partitioning(self) -> Partitioning:
        """How this operator's output rows are spread (default: as its first child's)."""
        return self.children[0].output_partitioning()

    def execute(self, tctx: TaskContext) -> pa.Table:
        """Compute this operator's rows of partition ``tctx.partition`` (pulls from children)."""
        raise NotImplementedError(type(self).__name__)

    def execute_by_build_row(self, tctx: TaskContext, columns: set[str], keys: tuple[str, ...]
                             ) -> Iterator[pa.Table | tuple[pa.Table, np.ndarray, pa.Table]]:
        """For an aggregate grouped by build-side columns ``keys`` of a join (see
        ``HashAggregateExec.by_build_row``), per batch of probe rows (a packed scan task's
        fragments): ``(values, groups, keys)``, the output pairs' ``columns``, each pair's
        group (a row of ``keys``, the groups' key values), when this operator can pair rows
        without taking the build columns; otherwise (the default) one table, :meth:`execute`'s
        rows."""
        yield self.execute(tctx)

    def execute_batches(self, tctx: TaskContext) -> Iterator[pa.Table]:
        """:meth:`execute`'s rows as a stream of tables, for an operator above that can
        consume them one at a time (a partial aggregate). The default: one table. A window
        over a partition larger than a batch streams (see :mod:`mpp.physical.window_stream`);
        row-wise operators pass batches through."""
        yield self.execute(tctx)

    def merge(self, table: pa.Table) -> pa.Table:
        """Shrink concatenated outputs of several tasks of this operator (exchange combiners).

        The default keeps every row; a partial aggregate merges groups, a top-N keeps N.
        """
        return table

    @property
    def merges(self) -> bool:
        """Whether :meth:`merge` can shrink concatenated outputs (default: no)."""
        return False

    def merge_outputs(self, tables: list[pa.Table]) -> pa.Table:
        """:meth:`merge` of the outputs of several tasks of this operator, concatenated; only
        concatenated when every one is tagged unreduced (:func:`all_unreduced`)."""
        if self.merges and all_unreduced(tables):
            return concat(tables, self.schema)
        return self.merge(concat(tables, self.schema))

    def with_fixed_partitioning(self) -> PhysicalOp:
        """A copy that remembers what it computes from its children's partitioning, called by
        the planner once the exchanges are in place (the default remembers nothing)."""
        return self

    def without_fragments(self) -> PhysicalOp:
        """A copy light enough to ship with every task (scans drop their fragment list)."""
        return self

    def explain_line(self) -> str:
        """One line of EXPLAIN for this operator."""
        raise NotImplementedError(type(self).__name__)

    def walk(self) -> Iterator[PhysicalOp]:
        """This operator and all below it, pre-order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def transform_up(self, fn: Callable[[PhysicalOp], PhysicalOp]) -> PhysicalOp:
        """Apply ``fn`` to every operator bottom-up, rebuilding parents of changed children."""
        kids = tuple(c.transform_up(fn) for c in self.children)
        changed = any(a is not b for a, b in zip(kids, self.children, strict=True))
        node = self.with_children(kids) if changed else self
        return fn(node)


class UnaryOp(PhysicalOp):
    """An operator with one child, its dataclass field ``input``."""

    input: PhysicalOp

    @property
    def children(self) -> tuple[PhysicalOp, ...]:
        return (self.input,)


class JoinOp(PhysicalOp):
    """A join: children ``left`` and ``right`` (dataclass fields) and a ``kind``; output the
    left fields, then the right fields (a semi or anti join: the left fields only)."""

    left: PhysicalOp
    right: PhysicalOp

    @property
    def schema(self) -> tuple[Field, ...]:  # type: ignore[override]
        if self.kind.filters_left:  # type: ignore[attr-defined]  # semi / anti: left only
            return self.left.schema
        return self.left.schema + self.right.schema

    @property
    def children(self) -> tuple[PhysicalOp, ...]:
        return (self.left, self.right)


class PassThroughOp(UnaryOp):
    """A unary operator whose output fields are its input's (filter, sort, limit, exchange)."""

    @property
    def schema(self) -> tuple[Field, ...]:  # type: ignore[override]
        return self.input.schema
