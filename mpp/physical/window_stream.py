"""Window functions over a partition larger than a batch: evaluated batch by batch.

:func:`mpp.physical.window.evaluate_windows` holds a task's rows twice (input and sorted copy)
plus a dozen per-row arrays, all sized by the task's rows. A window partitioned by a hot key
(the hot day: 40M of 100M rows) then holds gigabytes in one task. Most windows do not need the
whole partition at once: a running total, a rank, a lag or a frame of the last n rows depend
only on the rows before the current one. :func:`stream_windows` therefore

1. sorts only the key columns (the order of the rows as one int32 array; no sorted copy);
2. takes the rows a batch at a time in that order; a batch ends at a peer-group boundary (rows
   equal on the partition and ORDER BY keys stay together, so RANGE frames, rank and
   dense_rank never straddle two batches);
3. evaluates each batch with the whole-partition kernel, then corrects the rows of a
   partition that began in an earlier batch from a small carried state: rows and peer groups
   before the batch (row_number, rank, dense_rank, count(*)), the running count, sum, min,
   max and first value (frames from UNBOUNDED PRECEDING to CURRENT ROW);
4. evaluates lag and ROWS frames that end at or before the current row (``n PRECEDING``) over
   the batch with the last rows of the one before (a halo of the largest offset).

The task's memory is then its input, four bytes a row for the order, and one batch, whatever
the partition's size. Functions that need rows after the batch (lead, ntile, frames reaching
FOLLOWING rows or the partition's end) or an unbounded look back (RANGE n PRECEDING) keep the
whole-partition path; :func:`streaming_reason` says why, and EXPLAIN prints it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mpp.logical.expr import SortKey
from mpp.logical.window import RANKING, BoundKind, WindowCall, WindowFunc
from mpp.physical.operators.sort import sort_indices
from mpp.physical.window import _call, _changes, _evaluate_sorted, _Layout, _sort_keys

HALO_LIMIT = 1 << 16  # lag offsets and n PRECEDING a batch may look back through

_CARRY, _HALO = "carry", "halo"


def _mode(call: WindowCall) -> tuple[str, int] | str:
    """(carry or halo, rows looked back) for a call a batch can evaluate; else why not."""
    f = call.func
    if f in RANKING:
        return _CARRY, 0
    if f is WindowFunc.LAG:
        if call.offset > HALO_LIMIT:
            return f"lag offset above {HALO_LIMIT:,}"
        return _HALO, call.offset
    if f in (WindowFunc.LEAD, WindowFunc.NTILE):
        return f"{f.value}() needs the rows after the batch"
    start, end = call.frame.start, call.frame.end
    if start.kind is BoundKind.UNBOUNDED_PRECEDING and end.kind is BoundKind.CURRENT_ROW:
        if f in (WindowFunc.MIN, WindowFunc.MAX) and call.arg is not None \
                and not _comparable(call.arg.dtype):
            # The carried extreme meets each batch's through min/max_element_wise, which
            # has no boolean or binary kernel, and orders NaN unlike the kernel's ranks.
            return f"{call} over {call.arg.dtype} is not carried from batch to batch"
        return _CARRY, 0
    behind = (BoundKind.PRECEDING, BoundKind.CURRENT_ROW)
    if start.kind in behind and end.kind in behind:
        if not call.frame.rows and BoundKind.PRECEDING in (start.kind, end.kind):
            return f"{call} looks back by value, any number of rows"
        back = int(start.offset or 0) if start.kind is BoundKind.PRECEDING else 0
        if back > HALO_LIMIT:
            return f"{call} looks back more than {HALO_LIMIT:,} rows"
        return _HALO, back
    return f"{call} needs rows beyond the batch"


def _comparable(t: pa.DataType) -> bool:
    return (pa.types.is_integer(t) or pa.types.is_decimal(t) or pa.types.is_temporal(t)
            or pa.types.is_string(t) or pa.types.is_large_string(t))


def streaming_reason(order: tuple[SortKey, ...], calls: tuple[WindowCall, ...]) -> str | None:
    """None when every call can be evaluated batch by batch; otherwise why not."""
    if not order:
        return "no ORDER BY: every row of a partition is a peer of every other"
    for call in calls:
        if call.peers == 0:
            return f"{call} has no ORDER BY"
        mode = _mode(call)
        if isinstance(mode, str):
            return mode
    return None


def stream_windows(table: pa.Table, partition: tuple[str, ...], order: tuple[SortKey, ...],
                   calls: tuple[WindowCall, ...], names: tuple[str, ...],
                   batch_rows: int) -> Iterator[pa.Table]:
    """The rows of :func:`mpp.physical.window.evaluate_windows`, as batches of about
    ``batch_rows`` rows in the same order (see the module's docstring). Every call must be
    streamable (:func:`streaming_reason` is None)."""
    n = table.num_rows
    rows = sort_indices(table, _sort_keys(table, partition, order)).to_numpy()
    rows = rows.astype(np.int32 if n < np.iinfo(np.int32).max else np.int64)
    peers = min(len(order) if c.peers is None else c.peers for c in calls)
    groups = partition + tuple(k.column.name for k in order[:peers])
    modes = [_mode(c) for c in calls]
    behind = max((m[1] for m in modes if isinstance(m, tuple) and m[0] == _HALO), default=0)
    carry = _Carry(table.schema, partition, order, calls, modes)
    halo: pa.Table | None = None
    pos, step = 0, batch_rows
    while pos < n:
        end = min(pos + step, n)
        batch = table.take(pa.array(rows[pos:end])).combine_chunks()
        if end < n:
            cut = int(np.flatnonzero(_changes(batch, groups))[-1])
            if cut == 0:  # one peer group longer than the batch: take a longer batch
                step *= 2
                continue
            batch, end = batch.slice(0, cut), pos + cut
        step = batch_rows
        yield carry.evaluate(batch, halo, names)
        if behind:
            both = batch if halo is None else pa.concat_tables([halo, batch]).combine_chunks()
            halo = both.slice(max(both.num_rows - behind, 0))
        pos = end


class _Carry:
    """What a batch needs of the ones before it: the last row's partition keys and, for the
    partition still open there, its rows and each carried call's running value."""

    def __init__(self, schema: pa.Schema, partition: tuple[str, ...],
                 order: tuple[SortKey, ...], calls: tuple[WindowCall, ...],
                 modes: list[tuple[str, int] | str]) -> None:
        self.partition = partition
        self.order = order
        self.calls = calls
        self.modes = modes
        self.last: pa.Table | None = None  # the previous batch's last row, partition keys
        self.rows = 0  # rows of the open partition in earlier batches
        self.state: dict[int, dict[str, Any]] = {}

    def evaluate(self, batch: pa.Table, halo: pa.Table | None,
                 names: tuple[str, ...]) -> pa.Table:
        """``batch`` with one column per call, corrected for the partition it continues."""
        nb = batch.num_rows
        lay = _Layout(batch, self.partition, self.order)
        starts = np.flatnonzero(lay.part_starts)
        first_end = int(starts[1]) if len(starts) > 1 else nb  # the first partition's rows
        last_start = int(starts[-1])
        cont = self.last is not None and (not self.partition or not _changes(
            pa.concat_tables([self.last, batch.slice(0, 1).select(list(self.partition))]),
            self.partition)[1])
        head = np.arange(nb) < first_end if cont else np.zeros(nb, dtype=bool)
        halo_out = self._halo(batch, halo)
        out = batch
        for i, (call, name) in enumerate(zip(self.calls, names, strict=True)):
            if i in halo_out:
                col = halo_out[i]
            else:
                col = self._carried(i, call, batch, lay, head, cont, last_start)
            out = out.append_column(pa.field(name, call.dtype), col)
        # The open partition at the batch's end continues the carried one only if it is the
        # batch's first partition (and that continued the one before).
        self.rows = (self.rows if cont and last_start == 0 else 0) + nb - last_start
        self.last = batch.slice(nb - 1, 1).select(list(self.partition))
        return out

    def _halo(self, batch: pa.Table, halo: pa.Table | None) -> dict[int, pa.Array]:
        """The halo calls over the last rows before ``batch`` and ``batch``."""
        picked = [i for i, m in enumerate(self.modes) if isinstance(m, tuple) and m[0] == _HALO]
        if not picked:
            return {}
        skip = 0 if halo is None else halo.num_rows
        rows = batch if halo is None else pa.concat_tables([halo, batch]).combine_chunks()
        calls = tuple(self.calls[i] for i in picked)
        names = tuple(f"__halo{i}" for i in picked)
        done = _evaluate_sorted(rows, self.partition, self.order, calls, names)
        return {i: done[name].combine_chunks().slice(skip) for i, name in zip(picked, names,
                                                                              strict=True)}

    def _carried(self, i: int, call: WindowCall, batch: pa.Table, lay: _Layout,
                 head: np.ndarray, cont: bool, last_start: int) -> pa.Array:
        """A carry call over ``batch``, its ``head`` rows continuing the carried partition;
        updates the call's carried state from the batch's last partition."""
        f = call.func
        state = self.state.setdefault(i, {})
        mask = pa.array(head)
        keep = cont and last_start == 0  # the last partition is the carried one
        if f in (WindowFunc.ROW_NUMBER, WindowFunc.RANK, WindowFunc.COUNT_STAR):
            col = _call(batch, lay, call)
            return pc.if_else(mask, pc.add(col, pa.scalar(self.rows, col.type)), col)
        if f is WindowFunc.DENSE_RANK:
            col = _call(batch, lay, call)
            col = pc.if_else(mask, pc.add(col, pa.scalar(state.get("groups", 0), col.type)),
                             col)
            state["groups"] = col[-1].as_py()
            return col
        if f is WindowFunc.LAST_VALUE:
            return _call(batch, lay, call)
        if f is WindowFunc.FIRST_VALUE:
            col = _call(batch, lay, call)
            if cont:
                col = pc.if_else(mask, state["first"], col)
            if not keep:
                state["first"] = col[last_start]
            return col
        if f in (WindowFunc.MIN, WindowFunc.MAX):
            col = _call(batch, lay, call)
            if cont and state["best"].is_valid:
                pick = pc.min_element_wise if f is WindowFunc.MIN else pc.max_element_wise
                col = pc.if_else(mask, pick(col, state["best"]), col)
            state["best"] = col[-1]
            return col
        # count(x), sum, avg: the batch's running count and sum plus the carried ones.
        count = _call(batch, lay, dataclasses.replace(call, func=WindowFunc.COUNT,
                                                      dtype=pa.int64()))
        if cont:
            count = pc.if_else(mask, pc.add(count, pa.scalar(state["count"], pa.int64())), count)
        state["count"] = count[-1].as_py()
        if f is WindowFunc.COUNT:
            return count
        assert call.arg is not None
        t = call.arg.dtype
        stype = (pa.decimal128(38, t.scale) if pa.types.is_decimal(t)
                 else pa.float64() if pa.types.is_floating(t) else pa.int64())
        total = _call(batch, lay, dataclasses.replace(call, func=WindowFunc.SUM, dtype=stype))
        total = pc.fill_null(total, pa.scalar(0, stype))
        if cont:
            # decimal(38, s) + decimal(38, s) is a decimal(39, s): add them at 40 digits.
            wide = pa.decimal256(40, stype.scale) if pa.types.is_decimal(stype) else stype
            added = pc.add(total.cast(wide), state["sum"].cast(wide)).cast(stype)
            total = pc.if_else(mask, added, total)
        state["sum"] = total[-1]
        empty = pc.equal(count, 0)
        if f is WindowFunc.SUM:
            return pc.if_else(empty, pa.scalar(None, stype), total).cast(call.dtype)
        if pa.types.is_decimal(stype):
            from mpp.logical import decimals

            return pc.cast(decimals.average(total, count), call.dtype)
        avg = pc.divide(pc.cast(total, pa.float64()), pc.max_element_wise(count, 1))
        return pc.if_else(empty, pa.scalar(None, pa.float64()), avg).cast(call.dtype)
