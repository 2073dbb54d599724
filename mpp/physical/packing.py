"""Packing a scan's fragments into tasks: several small fragments per task.

One Dask task costs about a millisecond of scheduler and worker time whatever it does, so a
1,000-fragment table read for no column data (``count(*)``) spent more on its 1,000 tasks
than DuckDB spends on the whole query. Spark packs files into partitions the same way
(``FilePartition.maxSplitBytes``): each fragment costs the bytes the scan reads of it plus an
open cost, and consecutive fragments share a task while their costs fit

    max_split = min(scan.max_task_bytes, max(scan.fragment_open_bytes,
                                             total cost / (scan.min_tasks_per_thread x threads)))

Fragments keep their order (time order: a task reads neighbouring days), as Trino's split
batches do; Spark sorts files by size first, which would scatter a day's fragments.
"""

from __future__ import annotations

from collections.abc import Sequence

from mpp.config import PlannerContext
from mpp.storage.base import COLUMN_BYTES, ColumnPredicate, Fragment
from mpp.storage.predicates import needed_columns


def read_bytes(fragment: Fragment, columns: Sequence[str],
               predicates: Sequence[ColumnPredicate], table_columns: int) -> int:
    """Bytes a scan of ``columns`` under ``predicates`` reads of ``fragment``: the column
    chunks of the columns it reads (the catalog's per-column sizes when it has them, else
    the file's size shared evenly among the table's ``table_columns`` columns); none for a
    fragment read for no column data (only partition values or a row count); the whole
    fragment for a row format, where reading one column reads every row."""
    constants = {name for name, _ in fragment.partition}
    read = [c for c in needed_columns(columns, predicates) if c not in constants]
    if not read:
        return 0
    size = max(0, fragment.size_bytes)
    sizes = fragment.option(COLUMN_BYTES)
    if sizes is not None:
        known = dict(sizes)
        return sum(int(known.get(c, 0)) for c in read)
    if fragment.format.columnar:
        return size * min(len(read), table_columns) // max(1, table_columns)
    return size


def pack(costs: Sequence[int], ctx: PlannerContext) -> tuple[int, ...]:
    """Where each task's fragments start, given each fragment's read bytes (``costs``, in
    order): consecutive fragments share a task while their bytes plus an open cost each fit
    the split size (see the module's docstring). One task per fragment when
    ``scan.max_task_bytes`` is 0; ``(0,)`` for no fragments."""
    limit = int(ctx.settings["scan.max_task_bytes"])
    n = len(costs)
    if limit <= 0 or n <= 1:
        return tuple(range(max(1, n)))
    open_cost = int(ctx.settings["scan.fragment_open_bytes"])
    weights = [max(0, c) + open_cost for c in costs]
    slots = int(ctx.settings["scan.min_tasks_per_thread"]) * max(1, ctx.threads)
    split = min(limit, max(open_cost, sum(weights) // slots))
    starts, current = [0], 0
    for i, w in enumerate(weights):
        if current and current + w > split:
            starts.append(i)
            current = 0
        current += w
    return tuple(starts)

