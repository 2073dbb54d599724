"""WindowExec: window functions over whole partitions, one task per hash bucket.

The operator only states its need (DataFusion's ``BoundedWindowAggExec`` does the same): its
input hash-distributed by the PARTITION BY keys, so every partition lies in one task; without
PARTITION BY the whole input is one partition and must be gathered into one task.
``enforce_distribution`` then adds the exchange. Each task sorts its rows by (partition keys,
order keys) and evaluates every call (:mod:`mpp.physical.window`). Several windows over the
same PARTITION BY are stacked WindowExecs in one stage: the first one's exchange already
satisfies the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mpp.logical.expr import SortKey
from mpp.logical.nodes import Field
from mpp.logical.window import WindowCall, WindowFunc
from mpp.physical.aggspecs import group_ids
from mpp.physical.distribution import (
    Distribution,
    HashDistribution,
    Partitioning,
    Single,
    SinglePartition,
    UnspecifiedDistribution,
)
from mpp.physical.operators.base import (
    PassThroughOp,
    PhysicalOp,
    TaskContext,
    UnaryOp,
    concat,
    empty_table,
    reduce_adaptively,
)
from mpp.physical.operators.exchange import hash_strings
from mpp.physical.window import evaluate_windows
from mpp.physical.window_stream import stream_windows

GATHER_REASON = "no PARTITION BY: the whole input is one partition, gathered into one task"


@dataclass(frozen=True, slots=True)
class WindowExec(UnaryOp):
    """Adds one column per window call to the rows of each partition of ``partition_by``."""

    word: ClassVar[str] = "window"
    input: PhysicalOp
    partition_by: tuple[str, ...]
    order_by: tuple[SortKey, ...]
    calls: tuple[WindowCall, ...]
    names: tuple[str, ...]
    batch_rows: int = 0  # > 0: a task of more rows streams them in batches (window_stream)

    @property
    def schema(self) -> tuple[Field, ...]:  # type: ignore[override]
        return self.input.schema + tuple(
            Field(n, c.dtype) for n, c in zip(self.names, self.calls, strict=True))

    def required_input_distribution(self) -> tuple[Distribution, ...]:
        if not self.partition_by:
            return (SinglePartition(),)
        return (HashDistribution(self.partition_by),)

    def output_partitioning(self) -> Partitioning:
        # Without PARTITION BY: one partition even before the gather is added below it.
        return self.input.output_partitioning() if self.partition_by else Single()

    def execute(self, tctx: TaskContext) -> pa.Table:
        return concat(list(self.execute_batches(tctx)), self.schema)

    def execute_batches(self, tctx: TaskContext) -> Iterator[pa.Table]:
        """The task's rows with the window columns; in batches of about ``batch_rows`` when
        the task holds more (an operator above that consumes batches then never holds all)."""
        table = self.input.execute(tctx)
        tctx.note_keys(table, self.partition_by)
        if table.num_rows == 0:
            yield empty_table(self.schema)
        elif 0 < self.batch_rows < table.num_rows:
            yield from stream_windows(table, self.partition_by, self.order_by, self.calls,
                                      self.names, self.batch_rows)
        else:
            yield evaluate_windows(table, self.partition_by, self.order_by, self.calls,
                                   self.names)

    def explain_line(self) -> str:
        parts = []
        if self.partition_by:
            parts.append("partition by " + ", ".join(self.partition_by))
        if self.order_by:
            parts.append("order by " + ", ".join(str(k) for k in self.order_by))
        parts.append(", ".join(f"{c} AS {n}" for c, n in zip(self.calls, self.names,
                                                             strict=True)))
        line = "WindowExec: " + "; ".join(parts)
        if self.batch_rows:
            line += f" [streamed in batches of {self.batch_rows:,} rows when a task holds more]"
        return line if self.partition_by else f"{line} [{GATHER_REASON}]"


def _key_groups(table: pa.Table, keys: tuple[str, ...]) -> tuple[np.ndarray, int]:
    """Each row's group id by ``keys`` (no NULLs) and the number of groups.

    One string key (a message ID) is grouped by its 64-bit hash (:func:`hash_strings`,
    factorised by pandas' integer hash table), then checked: every row's string must equal
    its group's first row's, else (a hash collision) the exact :func:`group_ids`. pyarrow's
    dictionary encoding of 5M distinct IDs took 4x as long.
    """
    column = table[keys[0]]
    if len(keys) != 1 or not (pa.types.is_string(column.type)
                              or pa.types.is_large_string(column.type)):
        return group_ids(table, keys)
    codes, uniques = pd.factorize(hash_strings(column))
    codes = codes.astype(np.int64)
    first = np.full(len(uniques), len(codes), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    if not pc.all(pc.equal(column, column.take(pa.array(first[codes])))).as_py():
        return group_ids(table, keys)
    return codes, len(uniques)


@dataclass(frozen=True, slots=True)
class WindowTopNExec(PassThroughOp):
    """A partial top-N per partition key, before a window's exchange: keeps the rows whose
    ``call`` (row_number, rank or dense_rank over this task's rows) is at most ``n``.

    A row ranked beyond ``n`` among its task's rows of a partition ranks beyond ``n`` in the
    whole partition too, so the window after the exchange computes the same ranks for the rows
    the query keeps. Exchange combiners apply it again to the outputs they merge.
    """

    word: ClassVar[str] = "partial-topn"
    input: PhysicalOp
    partition_by: tuple[str, ...]
    order_by: tuple[SortKey, ...]
    call: WindowCall
    n: int
    skip_ratio: float = 1.0  # output/input rows above which a task stops (1 = never)

    def required_input_distribution(self) -> tuple[Distribution, ...]:
        return (UnspecifiedDistribution(),)

    def execute(self, tctx: TaskContext) -> pa.Table:
        table = self.input.execute(tctx)
        if self.skip_ratio >= 1 or table.num_rows <= self.n:
            return self.merge(table)
        # Adaptive, as a partial aggregate: when the first rows keep more than
        # ``skip_ratio`` of themselves, the others pass through unranked and the exchange's
        # combine only concatenates the output.
        return reduce_adaptively(tctx, table, self.schema, self.skip_ratio, self.merge,
                                 self.merge, lambda rows, names: rows)

    def merge(self, table: pa.Table) -> pa.Table:
        if table.num_rows <= self.n:
            return table
        first = self._first_by_group(table)
        if first is not None:
            return first
        ranked = evaluate_windows(table, self.partition_by, self.order_by, (self.call,),
                                  ("__rank",))
        keep = pc.less_equal(ranked["__rank"], self.n)
        return ranked.filter(keep).drop_columns(["__rank"])

    def _first_by_group(self, table: pa.Table) -> pa.Table | None:
        """``row_number() <= 1`` as a hash aggregation when the rows carry only the partition
        keys and one ORDER BY key: each key's smallest (largest) value is its first row, and
        grouping costs a fraction of sorting the rows (W1's 1,000 scan tasks sorted 100K rows
        each). None when it does not apply (other columns, ties kept by rank, NULLS FIRST
        over a key with NULLs: min and max skip NULLs, which then sort first)."""
        if (self.n != 1 or self.call.func is not WindowFunc.ROW_NUMBER
                or len(self.order_by) != 1 or not self.partition_by):
            return None
        key = self.order_by[0]
        column = key.column.name
        if column in self.partition_by or not set(self.partition_by) <= set(table.column_names):
            return None
        if set(table.column_names) != {*self.partition_by, column}:
            return self._first_rows(table, key)
        values = table[column]
        if key.nulls_first and values.null_count:
            return None
        if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)
                or pa.types.is_temporal(values.type) or pa.types.is_decimal(values.type)
                or pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            return None
        if pa.types.is_floating(values.type) and pc.any(pc.is_nan(values)).as_py():
            return None  # NaN sorts above every number; min/max would skip it
        agg = "min" if key.ascending else "max"
        first = table.group_by(list(self.partition_by), use_threads=False).aggregate(
            [(column, agg)])
        names = [column if c == f"{column}_{agg}" else c for c in first.column_names]
        return first.rename_columns(names).select(table.column_names)

    def _first_rows(self, table: pa.Table, key: SortKey) -> pa.Table | None:
        """``row_number() <= 1`` when the rows carry other columns too (de-duplication keeps
        the message, not just its ID): each row's group by hashing the partition keys, each
        group's smallest (largest) ORDER BY value by a scatter, and the first row holding it;
        no sort. None where it does not apply (NULL keys or order values, floating or nested
        keys: the sort keeps those semantics)."""
        values = table[key.column.name]
        keys = [table[k] for k in self.partition_by]
        if values.null_count or any(c.null_count for c in keys) or not all(
                pa.types.is_integer(c.type) or pa.types.is_date(c.type)
                or pa.types.is_timestamp(c.type) or pa.types.is_string(c.type)
                or pa.types.is_large_string(c.type) for c in [*keys, values]):
            return None
        gid, groups = _key_groups(table, self.partition_by)
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            ranked = pc.rank(values.combine_chunks(), sort_keys="ascending", tiebreaker="dense")
            v = np.asarray(ranked.to_numpy(), dtype=np.int64)
        else:
            v = np.asarray(values.to_numpy()).astype(np.int64)  # dates, times: their ticks
        if not key.ascending:
            v = -v  # ranks and times are far from int64's minimum
        best = np.full(groups, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(best, gid, v)
        holders = np.flatnonzero(v == best[gid])
        first = np.full(groups, len(v), dtype=np.int64)
        np.minimum.at(first, gid[holders], holders)
        return table.take(pa.array(np.sort(first)))

    @property
    def merges(self) -> bool:
        return True

    def explain_line(self) -> str:
        keys = ", ".join(self.partition_by) or "()"
        order = ", ".join(str(k) for k in self.order_by)
        return (f"WindowTopNExec(partial): keep {self.call.func.value}() <= {self.n} per "
                f"partition by {keys} order by {order} (before the exchange)")
