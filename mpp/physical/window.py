"""The window kernel: window functions over one task's rows, vectorised with numpy.

A task holds whole partitions (its input was hash-exchanged by the PARTITION BY keys, or
gathered). :func:`evaluate_windows` sorts the rows once by (partition keys, order keys) with
pyarrow's ``sort_indices``, then finds for every row, as arrays over all rows at once:

* ``ps``/``pe``: where its partition starts and ends (adjacent rows whose keys differ, NULLs
  equal to each other);
* ``gs``/``ge``: where its peer group (rows equal on every ORDER BY key) starts and ends;
* ``fs``/``fe``: its frame, from the frame bounds (ROWS: row offsets clipped to the partition;
  RANGE: the peer group, or with an offset a merged search over (partition, key) pairs).

Each function is then arithmetic over these arrays: row_number is ``i - ps + 1``, rank
``gs - ps + 1``, sums are differences of prefix sums, min/max read a running extreme (frames
from the partition start or to its end) or a sparse table of range minima (any other frame).
No Python loop runs per row or per partition. End indices are exclusive throughout.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mpp.logical.expr import Column, Literal, SortKey
from mpp.logical.window import BoundKind, Frame, FrameBound, WindowCall, WindowFunc
from mpp.physical.operators.sort import sort_table


def evaluate_windows(table: pa.Table, partition: tuple[str, ...], order: tuple[SortKey, ...],
                     calls: tuple[WindowCall, ...], names: tuple[str, ...]) -> pa.Table:
    """``table`` sorted by (``partition``, ``order``) with one column per window call added."""
    keys = _sort_keys(table, partition, order)
    table = sort_table(table, keys).combine_chunks() if keys else table.combine_chunks()
    return _evaluate_sorted(table, partition, order, calls, names)


def _sort_keys(table: pa.Table, partition: tuple[str, ...],
               order: tuple[SortKey, ...]) -> tuple[SortKey, ...]:
    return tuple(SortKey(Column(p, table.schema.field(p).type)) for p in partition) + order


def _evaluate_sorted(table: pa.Table, partition: tuple[str, ...], order: tuple[SortKey, ...],
                     calls: tuple[WindowCall, ...], names: tuple[str, ...]) -> pa.Table:
    """:func:`evaluate_windows` of rows already sorted, in one chunk."""
    layout = _Layout(table, partition, order)
    for call, name in zip(calls, names, strict=True):
        table = table.append_column(pa.field(name, call.dtype), _call(table, layout, call))
    return table


class _Layout:
    """Partition and peer-group boundaries of sorted rows, as per-row index arrays.

    Every array is computed on first use (a running total needs the partition starts and the
    peer-group ends, not the other four) and holds int32 indexes when the rows allow: a hot
    partition of 40M rows is then 160 MB per array, not 320.
    """

    def __init__(self, table: pa.Table, partition: tuple[str, ...], order: tuple[SortKey, ...]):
        n = table.num_rows
        self.n = n
        self.itype = np.int32 if n < np.iinfo(np.int32).max else np.int64
        self.table = table
        self.partition = partition
        self.order = order
        self._views: dict[int, _Layout] = {}

    @cached_property
    def idx(self) -> np.ndarray:
        return np.arange(self.n, dtype=self.itype)

    @cached_property
    def part_starts(self) -> np.ndarray:
        return _changes(self.table, self.partition)

    @cached_property
    def peer_starts(self) -> np.ndarray:
        return self.part_starts | _changes(self.table, tuple(k.column.name for k in self.order))

    @cached_property
    def pid(self) -> np.ndarray:
        """Every row's partition number (0, 1, ... in sorted order)."""
        return _segment_ids(self.part_starts, self.itype)

    @cached_property
    def ps(self) -> np.ndarray:
        return _starts(self.part_starts, self.pid)

    @cached_property
    def pe(self) -> np.ndarray:
        return _ends(self.part_starts, self.pid)

    @cached_property
    def _peer_ids(self) -> np.ndarray:
        return _segment_ids(self.peer_starts, self.itype)

    @cached_property
    def gs(self) -> np.ndarray:
        return _starts(self.peer_starts, self._peer_ids)

    @cached_property
    def ge(self) -> np.ndarray:
        return _ends(self.peer_starts, self._peer_ids)

    def with_peers(self, keys: int | None) -> _Layout:
        """This layout with peers (and RANGE frames) defined by the first ``keys`` ORDER BY
        keys only: a call whose own ORDER BY is a prefix of the sort's."""
        if keys is None or keys == len(self.order):
            return self
        if keys not in self._views:
            view = copy.copy(self)
            view.order = self.order[:keys]
            for name in ("peer_starts", "_peer_ids", "gs", "ge"):
                view.__dict__.pop(name, None)
            self._views[keys] = view
        return self._views[keys]


def _changes(table: pa.Table, columns: tuple[str, ...]) -> np.ndarray:
    """True at row 0 and at each row whose ``columns`` differ from the row before's."""
    n = table.num_rows
    flags = np.zeros(n, dtype=bool)
    if n:
        flags[0] = True
    for name in columns:
        col = table[name]
        a, b = col.slice(1), col.slice(0, max(n - 1, 0))
        differ = pc.not_equal(a, b)
        if differ.null_count:
            differ = pc.or_(pc.fill_null(differ, False), pc.xor(pc.is_null(a), pc.is_null(b)))
        flags[1:] |= differ.to_numpy(zero_copy_only=False)
    return flags


def _segment_ids(starts: np.ndarray, itype: type) -> np.ndarray:
    """Every row's segment number, from segment-start flags."""
    seg: np.ndarray = np.cumsum(starts, dtype=itype)
    seg -= 1
    return seg


def _starts(starts: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Every row's segment start."""
    return np.flatnonzero(starts).astype(seg.dtype)[seg]


def _ends(starts: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Every row's segment end (exclusive)."""
    first = np.flatnonzero(starts).astype(seg.dtype)
    return np.append(first[1:], seg.dtype.type(len(starts)))[seg]


def _call(table: pa.Table, lay: _Layout, call: WindowCall) -> pa.Array:
    lay = lay.with_peers(call.peers)
    f = call.func
    if f is WindowFunc.ROW_NUMBER:
        return pa.array(lay.idx - lay.ps + 1, pa.int64())
    if f is WindowFunc.RANK:
        return pa.array(lay.gs - lay.ps + 1, pa.int64())
    if f is WindowFunc.DENSE_RANK:
        groups = np.cumsum(lay.peer_starts)
        return pa.array(groups - groups[lay.ps] + 1 if lay.n else groups, pa.int64())
    if f is WindowFunc.NTILE:
        return pa.array(_ntile(lay, call.offset), pa.int64())
    if f in (WindowFunc.LAG, WindowFunc.LEAD):
        return _shift(table, lay, call)
    fs, fe = frame_bounds(call.frame, lay)
    if f is WindowFunc.COUNT_STAR:
        return pa.array(fe - fs, pa.int64())
    assert call.arg is not None
    arg = table[call.arg.name].combine_chunks() if lay.n else pa.array([], call.arg.dtype)
    if f in (WindowFunc.FIRST_VALUE, WindowFunc.LAST_VALUE):
        at = fs if f is WindowFunc.FIRST_VALUE else fe - 1
        return _take(arg, at, fs < fe).cast(call.dtype)
    if f in (WindowFunc.MIN, WindowFunc.MAX):
        return _extreme(arg, lay, fs, fe, f is WindowFunc.MIN).cast(call.dtype)
    return _sums(arg, fs, fe, call)


def _ntile(lay: _Layout, buckets: int) -> np.ndarray:
    """Trino's ntile: sizes differ by at most one, the larger buckets first."""
    size, pos = lay.pe - lay.ps, lay.idx - lay.ps
    q, rem = size // buckets, size % buckets
    big = rem * (q + 1)
    return np.where(pos < big, pos // (q + 1), rem + (pos - big) // np.maximum(q, 1)) + 1


def _take(values: pa.Array, at: np.ndarray, valid: np.ndarray) -> pa.Array:
    """``values[at]`` where ``valid``, NULL elsewhere."""
    if not len(at):
        return values.slice(0, 0)
    taken = values.take(pa.array(np.clip(at, 0, max(len(values) - 1, 0))))
    return pc.if_else(pa.array(valid), taken, pa.nulls(len(at), values.type))


def _shift(table: pa.Table, lay: _Layout, call: WindowCall) -> pa.Array:
    assert call.arg is not None
    arg = table[call.arg.name].combine_chunks().cast(call.dtype)
    step = -call.offset if call.func is WindowFunc.LAG else call.offset
    at = lay.idx + step
    valid = (at >= lay.ps) & (at < lay.pe)
    out = _take(arg, at, valid)
    default = call.default
    if default is None or (isinstance(default, Literal) and default.value is None):
        return out
    if isinstance(default, Literal):
        fill: pa.Array | pa.Scalar = pa.scalar(default.value, call.dtype)
    else:
        fill = table[default.name].combine_chunks().cast(call.dtype)
    return pc.if_else(pa.array(valid), out, fill)


def frame_bounds(frame: Frame, lay: _Layout) -> tuple[np.ndarray, np.ndarray]:
    """Every row's frame as ``[fs, fe)`` within its partition (empty when ``fs == fe``)."""
    fs = _bound(frame.start, frame.rows, lay, end=False)
    fe = _bound(frame.end, frame.rows, lay, end=True)
    offset = (BoundKind.PRECEDING, BoundKind.FOLLOWING)
    if frame.start.kind not in offset and frame.end.kind not in offset:
        # Bounds at the partition's ends, the current row or its peers lie inside the
        # partition, and a start never passes its end: nothing to clip (no copies of n rows).
        return fs, fe
    fs = np.clip(fs, lay.ps, lay.pe)
    fe = np.clip(fe, lay.ps, lay.pe)
    return fs, np.maximum(fe, fs)


def _bound(b: FrameBound, rows: bool, lay: _Layout, *, end: bool) -> np.ndarray:
    """The index a frame bound designates (for an end bound: one past its last row)."""
    if b.kind is BoundKind.UNBOUNDED_PRECEDING:
        return lay.ps
    if b.kind is BoundKind.UNBOUNDED_FOLLOWING:
        return lay.pe
    if b.kind is BoundKind.CURRENT_ROW:
        if rows:
            return lay.idx + 1 if end else lay.idx
        return lay.ge if end else lay.gs
    assert b.offset is not None
    sign = -1 if b.kind is BoundKind.PRECEDING else 1
    if rows:
        step = sign * min(int(b.offset), lay.n + 1) + (1 if end else 0)  # never past the rows
        return lay.idx.astype(np.int64) + step
    return _range_bound(lay, sign * b.offset, end=end)


def _range_bound(lay: _Layout, delta: float, *, end: bool) -> np.ndarray:
    """RANGE ``n PRECEDING/FOLLOWING``: the first row of the partition whose key is at least
    (start) or beyond (end) the current key + ``delta``, in the ORDER BY direction.

    All rows at once: the rows are sorted by (partition, key). Ranking the keys and targets
    together turns each (partition, value) into one integer that grows in that order, so one
    ``searchsorted`` finds every bound. A row whose key is NULL has its NULL peers as frame.
    """
    key = lay.order[0]
    col = lay.table[key.column.name]
    nulls = pc.is_null(col).to_numpy(zero_copy_only=False)
    v = pc.cast(pc.fill_null(col, 0), pa.float64()).to_numpy(zero_copy_only=False)
    if not key.ascending:
        v = -v
    v = np.where(nulls, -np.inf if key.nulls_first else np.inf, v)
    n = lay.n
    _, ranks = np.unique(np.concatenate([v, v + delta]), return_inverse=True)
    span = np.int64(ranks.max() + 1 if n else 1)
    rows = lay.pid * span + ranks[:n]
    targets = lay.pid * span + ranks[n:]
    # A start counts the rows below the target, an end the rows up to it.
    out = np.searchsorted(rows, targets, side="right" if end else "left")
    return np.where(nulls, lay.ge if end else lay.gs, out)


def _sums(arg: pa.Array, fs: np.ndarray, fe: np.ndarray, call: WindowCall) -> pa.Array:
    """count, sum and avg over each frame: differences of prefix sums."""
    if arg.null_count:
        valid = pc.is_valid(arg).to_numpy(zero_copy_only=False)
        counts = np.concatenate([[0], np.cumsum(valid)])
        count = counts[fe] - counts[fs]
        del valid, counts
    else:
        count = fe - fs
    if call.func is WindowFunc.COUNT:
        return pa.array(count, pa.int64())
    if pa.types.is_decimal(arg.type):
        return _decimal_sums(arg, fs, fe, count, call)
    floating = pa.types.is_floating(arg.type) or call.func is WindowFunc.AVG
    # Floats sum in extended precision: a frame's sum is a difference of two prefix sums,
    # which loses the digits the prefix's magnitude pushes out.
    dtype = np.longdouble if floating else np.int64
    values = (pc.fill_null(arg, 0) if arg.null_count else arg).to_numpy(zero_copy_only=False)
    prefix = np.empty(len(values) + 1, dtype)
    prefix[0] = 0
    np.cumsum(values, dtype=dtype, out=prefix[1:])
    del values
    total = prefix[fe]
    total -= prefix[fs]
    del prefix
    total = total.astype(np.float64) if floating else total
    empty = count == 0
    mask = empty if empty.any() else None
    if call.func is WindowFunc.AVG:
        out = total / np.maximum(count, 1)
        return pa.array(out, pa.float64(), mask=mask)
    return pa.array(total, mask=mask).cast(call.dtype)


def _decimal_sums(arg: pa.Array, fs: np.ndarray, fe: np.ndarray, count: np.ndarray,
                  call: WindowCall) -> pa.Array:
    """sum and avg of decimals, exactly: prefix sums of the unscaled integers, scaled back
    (sum: decimal(38, s), as Trino's; avg: that sum / count rounded half up, as the
    aggregate's). Unscaled prefix sums beyond 64 bits are an error, not a wrong sum."""
    from mpp.logical import decimals

    scale = arg.type.scale
    wide = pc.cast(pc.fill_null(arg, pa.scalar(0, arg.type)), pa.decimal256(40, scale))
    unscaled = pc.cast(pc.multiply(wide, pa.scalar(10 ** scale, pa.int64())), pa.int64())
    values = unscaled.to_numpy(zero_copy_only=False)
    prefix = np.concatenate([np.zeros(1, np.int64), np.cumsum(values)])
    step = pa.scalar(Decimal(1).scaleb(-scale), pa.decimal256(scale + 1, scale))
    total = pc.cast(pc.multiply(pa.array(prefix[fe] - prefix[fs]).cast(pa.decimal256(40, 0)),
                                step), pa.decimal128(38, scale))
    empty = pa.array(count == 0)
    if call.func is WindowFunc.AVG:
        return pc.cast(decimals.average(total, pa.array(count)), call.dtype)
    return pc.if_else(empty, pa.nulls(len(total), total.type), total).cast(call.dtype)


def _extreme(arg: pa.Array, lay: _Layout, fs: np.ndarray, fe: np.ndarray,
             smallest: bool) -> pa.Array:
    """min or max over each frame, for any orderable type: over dense ranks of the values
    (NULL ranks never win), mapped back to a row holding the winning rank."""
    n = lay.n
    if n == 0:
        return arg
    codes = pc.rank(pc.fill_null(arg, pc.min(arg)) if arg.null_count else arg,
                    sort_keys="ascending", tiebreaker="dense").to_numpy().astype(np.int64)
    nulls = pc.is_null(arg).to_numpy(zero_copy_only=False)
    top = int(codes.max()) + 1
    sentinel = top if smallest else 0
    codes = np.where(nulls, sentinel, codes)
    empty = fs >= fe
    last = np.maximum(fe - 1, fs)
    if (fs == lay.ps).all():
        best = _running(codes, lay.pid, top, smallest)[last]
    elif (fe == lay.pe).all():
        rev = _running(codes[::-1], lay.pid[::-1].max() - lay.pid[::-1], top, smallest)[::-1]
        best = rev[np.minimum(fs, n - 1)]
    else:
        small = codes.astype(np.int32) if top < np.iinfo(np.int32).max else codes
        best = _range_extreme(small, fs, last + 1, smallest).astype(np.int64)  # half the memory
    holder = np.zeros(top + 1, dtype=np.int64)
    holder[codes] = np.arange(n)
    return _take(arg, holder[best], ~empty & (best != sentinel))


def _running(codes: np.ndarray, pid: np.ndarray, top: int, smallest: bool) -> np.ndarray:
    """Running min (max) of ``codes`` restarting at each partition (``pid`` non-decreasing):
    offsetting each partition's codes past the ones before it makes one accumulate enough."""
    span = top + 1
    pid = pid.astype(np.int64)  # pid x span overflows int32
    if smallest:
        shift = (pid.max() - pid) * span if len(pid) else pid
        return np.minimum.accumulate(codes + shift) - shift
    shift = pid * span
    return np.maximum.accumulate(codes + shift) - shift


def _range_extreme(codes: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   smallest: bool) -> np.ndarray:
    """min (max) of ``codes[lo:hi]`` per row, from a sparse table (log n levels, each one
    vectorised op); an empty range gives any value (the caller masks it)."""
    pick = np.minimum if smallest else np.maximum
    levels = [codes]
    width = 1
    while width * 2 <= len(codes):
        prev = levels[-1]
        levels.append(pick(prev[:-width], prev[width:]))
        width *= 2
    length = np.maximum(hi - lo, 1)
    k = np.floor(np.log2(length)).astype(np.int64)
    out = np.empty(len(lo), dtype=codes.dtype)
    for level in np.unique(k):
        rows = k == level
        table = levels[level]
        a = lo[rows]
        b = np.maximum(hi[rows] - (1 << int(level)), a)
        out[rows] = pick(table[np.minimum(a, len(table) - 1)], table[np.minimum(b, len(table) - 1)])
    return out
