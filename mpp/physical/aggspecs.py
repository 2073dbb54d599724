"""Aggregate functions as data: one :class:`AggSpec` per function (see docs/aggregates.md).

An aggregate runs in two phases. The partial phase (``chunk``) turns a task's input rows into
a few *state* columns per group; the merge phase (``combine``) turns several tasks' state rows
of one group into one state row with the same columns, and may run any number of times (in
exchange combiners, then in the final task); ``finalize`` turns the merged states into the
result. ``avg`` is the state (sum, count) merged by sums and finalized by a division; adding a
function is one entry of :data:`AGGREGATES` plus its SQL name in the binder.

Most steps are pyarrow hash-aggregate functions (``"sum"``, ``"min"``, ``("variance",
options)``), applied per state column. Those pyarrow has no kernel for (Chan's merge of
variances, min_by, a HyperLogLog sketch) are a :class:`GroupFn`: numpy over dense group ids
(:func:`group_ids`), never a Python loop over rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mpp.logical import decimals
from mpp.logical.expr import AggFunc
from mpp.physical.keys import canonical_key

Columns = Sequence[pa.ChunkedArray]


@dataclass(frozen=True, slots=True)
class GroupFn:
    """A grouped step pyarrow has no hash kernel for.

    ``fn(gid, groups, columns)`` gets each row's dense group id (0..groups-1) and the step's
    input columns, and returns one array of ``groups`` values per output (state) column.
    ``types(input types)`` are the output columns' types.
    """

    name: str
    fn: Callable[[np.ndarray, int, Columns], list[pa.Array]]
    types: Callable[[Sequence[pa.DataType]], tuple[pa.DataType, ...]]


# A step: one pyarrow hash function (name, or (name, options)) per state column, each applied
# to the argument (chunk) or to its own state column (combine); or one GroupFn over them all.
Step = tuple[Any, ...] | GroupFn


@dataclass(frozen=True, slots=True)
class AggSpec:
    """One aggregate function as data.

    Attributes:
        chunk: input rows -> state columns (the partial phase). Applied to the argument (and
            ``by`` for min_by/max_by); ``count_all`` ignores it.
        combine: state rows -> state rows of fewer groups (merge; associative, repeatable).
        finalize: merged state columns -> the result column.
        result: the result type for the argument types ((arg,) or (arg, by)); None when the
            function does not accept them (the binder's error).
        rollup: the chunk used on the distinct argument values of a DISTINCT call, when it
            differs from ``chunk`` (count's roll-up counts distinct values).
        idempotent: the DISTINCT roll-up gives the same result on duplicated values, so the
            final phase may skip merging the (group, x) pairs of different tasks first.
        as_double: an integer argument is cast to double before ``chunk``: Trino's
            avg(bigint) adds its values as doubles, so it cannot overflow as a sum can.
        two_args: the function takes (x, by): min_by, max_by.
    """

    chunk: Step
    combine: Step
    finalize: Callable[[Columns], pa.ChunkedArray | pa.Array]
    result: Callable[[Sequence[pa.DataType]], pa.DataType | None]
    rollup: Step | None = None
    idempotent: bool = False
    as_double: bool = False
    two_args: bool = False

    def state_types(self, inputs: Sequence[pa.DataType]) -> tuple[pa.DataType, ...]:
        """The state columns' types for the chunk's input types."""
        if self.as_double and inputs and pa.types.is_integer(inputs[0]):
            inputs = [pa.float64(), *inputs[1:]]
        return step_types(self.chunk, inputs)


def step_types(step: Step, inputs: Sequence[pa.DataType]) -> tuple[pa.DataType, ...]:
    """The output types of ``step`` applied to columns of ``inputs`` types."""
    if isinstance(step, GroupFn):
        return step.types(inputs)
    arg = inputs[0] if inputs else pa.int64()
    return tuple(partial_type(fn if isinstance(fn, str) else fn[0], arg) for fn in step)


def partial_type(fn: str, arg: pa.DataType) -> pa.DataType:
    """The type pyarrow's hash function ``fn`` returns over ``arg``."""
    if fn in ("count", "count_all", "count_distinct"):
        return pa.int64()
    if fn in ("mean", "variance", "stddev"):
        return pa.float64()
    if fn in ("all", "any"):
        return pa.bool_()
    if fn == "sum" and pa.types.is_floating(arg):
        return pa.float64()
    if fn == "sum" and (pa.types.is_unsigned_integer(arg) or pa.types.is_boolean(arg)):
        return pa.uint64()
    if fn == "sum" and pa.types.is_integer(arg):
        return pa.int64()
    if fn == "sum" and pa.types.is_decimal(arg):
        return pa.decimal128(38, arg.scale)  # pyarrow's decimal sum, as Trino's
    return arg


# --- result types ------------------------------------------------------------------------


def sum_avg_result_type(func: AggFunc, arg: pa.DataType) -> pa.DataType | None:
    """Trino's result type of sum/avg over ``arg`` (None if not accepted): sum of integers is
    BIGINT, of floats DOUBLE; avg is DOUBLE. Over DECIMAL(p, s): sum is DECIMAL(38, s), avg
    (rounded half up) DECIMAL(p, s), as Trino's DecimalSumAggregation and
    DecimalAverageAggregation declare. The one place their typing lives."""
    if pa.types.is_decimal(arg):
        return pa.decimal128(38, arg.scale) if func is AggFunc.SUM else arg
    if func is AggFunc.AVG:
        return pa.float64() if pa.types.is_integer(arg) or pa.types.is_floating(arg) else None
    if pa.types.is_integer(arg):
        return pa.int64()
    return pa.float64() if pa.types.is_floating(arg) else None


def _bigint(_: Sequence[pa.DataType]) -> pa.DataType:
    return pa.int64()


def _same(args: Sequence[pa.DataType]) -> pa.DataType:
    return args[0]


def _double_of_number(args: Sequence[pa.DataType]) -> pa.DataType | None:
    t = args[0]
    return pa.float64() if pa.types.is_integer(t) or pa.types.is_floating(t) else None


def _boolean_of_boolean(args: Sequence[pa.DataType]) -> pa.DataType | None:
    return pa.bool_() if pa.types.is_boolean(args[0]) or pa.types.is_null(args[0]) else None


def _bigint_of_boolean(args: Sequence[pa.DataType]) -> pa.DataType | None:
    return pa.int64() if _boolean_of_boolean(args) is not None else None


# --- finalizers ---------------------------------------------------------------------------


def _first(cols: Columns) -> pa.ChunkedArray:
    return cols[0]


def _count(cols: Columns) -> pa.ChunkedArray:
    # Merged counts are NULL only where no partial row existed at all: a global aggregate whose
    # partial rows are per (DISTINCT argument), over an empty input. A count there is 0.
    return pc.fill_null(cols[0], 0)


def _mean(cols: Columns) -> pa.ChunkedArray:
    total, count = cols
    if pa.types.is_decimal(total.type):  # Trino: the sum / count rounded half up
        return decimals.average(total, count)
    # NULL when a group had no non-null values (count 0), as SQL's avg.
    return pc.if_else(pc.equal(count, 0), None,
                      pc.divide(pc.cast(total, pa.float64()), pc.cast(count, pa.float64())))


# --- variance: state (n, mean, var_pop), merged with Chan et al.'s formula ------------------


def _chan_merge(gid: np.ndarray, groups: int, cols: Columns) -> list[pa.Array]:
    """Merge (n, mean, population variance) states per group.

    Chan, Golub and LeVeque's pairwise update generalised to k parts: with M2 = n * var, the
    merged n is the sum of n_i, the mean the n-weighted mean of the means, and
    M2 = sum(M2_i) + sum(n_i * (mean_i - mean)^2). No sum of squares is formed, so a large
    mean does not cancel the variance away. Rows with n = 0 (NULL states) weigh nothing.
    """
    n_i = _floats(cols[0])
    mean_i = _floats(cols[1])
    m2_i = _floats(cols[2]) * n_i
    n = np.bincount(gid, weights=n_i, minlength=groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(gid, weights=n_i * mean_i, minlength=groups) / n
        spread = n_i * np.square(mean_i - mean[gid])
        spread[n_i == 0] = 0.0  # also where mean_i is inf or NaN and weighs nothing
        var = np.bincount(gid, weights=m2_i + spread, minlength=groups) / n
    empty = n == 0
    return [pa.array(n.astype(np.int64)), pa.array(mean, mask=empty),
            pa.array(var, mask=empty)]


def _floats(col: pa.ChunkedArray) -> np.ndarray:
    """``col`` as float64 numpy values, NULL as 0."""
    return np.asarray(pc.fill_null(pc.cast(col, pa.float64()), 0.0).to_numpy(), dtype=np.float64)


_CHAN = GroupFn("chan_merge", _chan_merge, lambda _: (pa.int64(), pa.float64(), pa.float64()))
_VARIANCE_CHUNK = (("count", pc.CountOptions("only_valid")), "mean",
                   ("variance", pc.VarianceOptions(ddof=0)))


def _var_pop(cols: Columns) -> pa.ChunkedArray:
    n, _, var = cols
    return pc.if_else(pc.equal(pc.fill_null(n, 0), 0), None, var)


def _var_samp(cols: Columns) -> pa.ChunkedArray:
    # Trino: NULL for fewer than two values. M2 / (n - 1) = var_pop * n / (n - 1).
    n, _, var = cols
    nf = pc.cast(pc.fill_null(n, 0), pa.float64())
    samp = pc.divide(pc.multiply(var, nf), pc.subtract(nf, 1.0))
    return pc.if_else(pc.less(nf, 2.0), None, samp)


def _stddev_pop(cols: Columns) -> pa.ChunkedArray:
    return pc.sqrt(_var_pop(cols))


def _stddev_samp(cols: Columns) -> pa.ChunkedArray:
    return pc.sqrt(_var_samp(cols))


# --- min_by / max_by: state (x at the extreme by, the extreme by) ---------------------------


def _extreme_by(descending: bool) -> Callable[[np.ndarray, int, Columns], list[pa.Array]]:
    def pick(gid: np.ndarray, groups: int, cols: Columns) -> list[pa.Array]:
        """Per group, the row of the smallest (largest) ``by`` among rows whose ``by`` is not
        NULL (Trino skips those; ``x`` may be NULL and is then the result)."""
        x, by = cols
        keep = pc.is_valid(by)
        rows = pa.table({"g": pa.array(gid), "x": x, "by": by}).filter(keep)
        order = pc.sort_indices(rows, sort_keys=[("g", "ascending"),
                                                  ("by", "descending" if descending
                                                   else "ascending")])
        g = rows["g"].to_numpy()[order.to_numpy()]
        first = np.ones(len(g), dtype=bool)
        first[1:] = g[1:] != g[:-1]
        chosen = order.to_numpy()[first]
        at = np.full(groups, -1, dtype=np.int64)
        at[g[first]] = chosen
        index = pa.array(at, mask=at < 0)
        return [_take(rows["x"], index), _take(rows["by"], index)]
    return pick


def _take(col: pa.ChunkedArray, index: pa.Array) -> pa.Array:
    out = col.take(index)
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def _by_types(args: Sequence[pa.DataType]) -> tuple[pa.DataType, ...]:
    return tuple(args[:2])


_MIN_BY = GroupFn("min_by", _extreme_by(False), _by_types)
_MAX_BY = GroupFn("max_by", _extreme_by(True), _by_types)


# --- approx_distinct: a HyperLogLog sketch per group ---------------------------------------

HLL_P = 11  # 2^11 registers: standard error 1.04 / sqrt(2048) = 2.3%, Trino's default
HLL_M = 1 << HLL_P
# Few values are kept exactly, as Trino's sparse sketches do: the sorted distinct 32-bit hashes,
# while they take fewer bytes than the registers (a sketch of HLL_M bytes is dense).
HLL_SPARSE_MAX = HLL_M // 4 - 1
_RANK_BITS = 32 - HLL_P  # hash bits after the register index that rank a value


def value_hashes(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """32-bit hashes of the non-NULL ``values`` (SQL-equal values hash equal: -0.0 is 0.0):
    the high half of pandas' 64-bit ``hash_array`` (splitmix64-finalised for numbers)."""
    values = canonical_key(values)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = values.drop_null()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_boolean(values.type):
        values = pc.cast(values, pa.int8())
    t = values.type
    if pa.types.is_temporal(t):
        values = values.view(pa.int32() if t.bit_width == 32 else pa.int64())
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        data = values.to_numpy(zero_copy_only=False)
    else:
        data = np.asarray(pc.cast(values, pa.large_string()).to_numpy(zero_copy_only=False))
    return (pd.util.hash_array(data) >> np.uint64(32)).astype(np.uint32)


def _ranked(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(register, rank) of 32-bit hashes: the first ``HLL_P`` bits pick the register, the rank
    is 1 + the leading zeros of the rest."""
    bucket = (h >> np.uint32(_RANK_BITS)).astype(np.int64)
    rest = (h & np.uint32((1 << _RANK_BITS) - 1)).astype(np.float64)
    _, exponent = np.frexp(rest)  # rest = m * 2^e with m in [0.5, 1): floor(log2 rest) = e - 1
    rank = np.where(rest > 0, _RANK_BITS - (exponent - 1), _RANK_BITS + 1).astype(np.uint8)
    return bucket, rank


def _hll_build(groups: int, g: np.ndarray, h: np.ndarray, dense_g: np.ndarray,
               dense: np.ndarray) -> pa.Array:
    """The sketch of each group from its hashes ``h`` (group ``g``) and dense register rows
    ``dense`` (group ``dense_g``): sparse while a group has at most ``HLL_SPARSE_MAX``
    distinct hashes and no dense input, else dense."""
    pairs = np.unique((g.astype(np.uint64) << np.uint64(32)) | h.astype(np.uint64))
    g = (pairs >> np.uint64(32)).astype(np.int64)
    h = (pairs & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    counts = np.bincount(g, minlength=groups)
    is_dense = counts > HLL_SPARSE_MAX
    is_dense[dense_g] = True
    lengths = np.where(is_dense, HLL_M, 4 * counts)
    offsets = np.zeros(groups + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = np.zeros(int(offsets[-1]), dtype=np.uint8)
    sparse = ~is_dense[g]
    if sparse.any():
        gs, hs = g[sparse], h[sparse]
        starts = np.zeros(groups + 1, dtype=np.int64)
        np.cumsum(np.bincount(gs, minlength=groups), out=starts[1:])
        position = np.arange(len(gs)) - starts[gs]
        at = (offsets[gs] + 4 * position)[:, None] + np.arange(4)
        data[at] = hs.astype("<u4").view(np.uint8).reshape(-1, 4)
    dense_groups = np.flatnonzero(is_dense)
    if len(dense_groups):
        slot = np.full(groups, -1, dtype=np.int64)
        slot[dense_groups] = np.arange(len(dense_groups))
        regs = np.zeros((len(dense_groups), HLL_M), dtype=np.uint8)
        if len(dense_g):
            np.maximum.at(regs, slot[dense_g], dense)
        from_hashes = ~sparse
        bucket, rank = _ranked(h[from_hashes])
        flat = regs.reshape(-1)
        np.maximum.at(flat, slot[g[from_hashes]] * HLL_M + bucket, rank)
        data[offsets[dense_groups][:, None] + np.arange(HLL_M)] = regs
    return pa.Array.from_buffers(pa.binary(), groups, [
        None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)])


def _hll_chunk(gid: np.ndarray, groups: int, cols: Columns) -> list[pa.Array]:
    """The sketch of each group's values (NULLs are no value)."""
    col = cols[0]
    valid = np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), dtype=bool)
    return [_hll_build(groups, gid[valid], value_hashes(col), np.zeros(0, dtype=np.int64),
                       np.zeros((0, HLL_M), dtype=np.uint8))]


def _sketch_parts(sketches: pa.ChunkedArray | pa.Array
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row of each sparse hash, the hashes, dense rows, their registers) of ``sketches``
    (NULL sketches are empty)."""
    if isinstance(sketches, pa.ChunkedArray):
        sketches = sketches.combine_chunks()
    if sketches.type != pa.binary():
        sketches = pc.cast(sketches, pa.binary())
    sketches = pc.fill_null(sketches, b"")
    offsets = np.frombuffer(sketches.buffers()[1], dtype=np.int32,
                            count=len(sketches) + 1, offset=4 * sketches.offset).astype(np.int64)
    data_buf = sketches.buffers()[2]
    data = (np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None
            else np.zeros(0, dtype=np.uint8))
    lengths = np.diff(offsets)
    dense_rows = np.flatnonzero(lengths == HLL_M)
    regs = data[offsets[dense_rows][:, None] + np.arange(HLL_M)]
    sparse_rows = np.flatnonzero((lengths > 0) & (lengths < HLL_M))
    k = lengths[sparse_rows] // 4
    rows = np.repeat(sparse_rows, k)
    first = np.repeat(offsets[sparse_rows], k)
    within = np.arange(len(rows)) - np.repeat(np.cumsum(k) - k, k)
    at = (first + 4 * within)[:, None] + np.arange(4)
    hashes = data[at].reshape(-1).view("<u4").astype(np.uint32) if len(rows) else \
        np.zeros(0, dtype=np.uint32)
    return rows, hashes, dense_rows, regs


def _hll_merge(gid: np.ndarray, groups: int, cols: Columns) -> list[pa.Array]:
    """Merge sketches per group: the union of sparse hashes, the register-wise maximum of
    dense registers (a sparse sketch merged into a dense one adds its hashes' ranks)."""
    rows, hashes, dense_rows, regs = _sketch_parts(cols[0])
    return [_hll_build(groups, gid[rows], hashes, gid[dense_rows], regs)]


def _hll_estimate(cols: Columns) -> pa.Array:
    """The distinct count each sketch estimates: a sparse one's number of hashes (exact but for
    32-bit collisions), a dense one's by Ertl's improved estimator (:func:`ertl_estimate`)."""
    rows, _, dense_rows, regs = _sketch_parts(cols[0])
    out = np.bincount(rows, minlength=len(cols[0])).astype(np.int64)
    if len(dense_rows):
        out[dense_rows] = np.rint(ertl_estimate(regs)).astype(np.int64)
    return pa.array(out)


def ertl_estimate(regs: np.ndarray) -> np.ndarray:
    """The cardinality each row of registers ``regs`` (rows, HLL_M) estimates.

    O. Ertl, "New cardinality estimation algorithms for HyperLogLog sketches" (2017), the
    improved raw estimator: unbiased over the whole range without HyperLogLog++'s empirical
    bias tables or a switch to linear counting (the raw estimate's bias near 2.5 m, where that
    switch happens, is ~5% at 2048 registers).
    """
    q = _RANK_BITS
    m = float(HLL_M)
    counts = np.stack([np.count_nonzero(regs == k, axis=1) for k in range(q + 2)], axis=1)
    middle = counts[:, 1:q + 1] @ np.exp2(-np.arange(1, q + 1, dtype=np.float64))
    denominator = (m * _sigma(counts[:, 0] / m) + middle
                   + m * _tau(1.0 - counts[:, q + 1] / m) * 2.0 ** -q)
    with np.errstate(divide="ignore"):
        return m * m / (2.0 * np.log(2.0)) / denominator


def _sigma(x: np.ndarray) -> np.ndarray:
    """sigma(x) = x + sum_k x^(2^k) 2^(k-1) (infinite for x = 1: every register empty)."""
    x = x.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        z = x.copy()
        y = 1.0
        for _ in range(64):
            x = x * x
            z = z + x * y
            y += y
    return np.where(x >= 1.0, np.inf, z)


def _tau(x: np.ndarray) -> np.ndarray:
    """tau(x) = (1 - x - sum_k (1 - x^(2^-k))^2 2^-k) / 3 (0 at x = 0 and x = 1)."""
    x = x.astype(np.float64)
    z = 1.0 - x
    y = 1.0
    for _ in range(64):
        x = np.sqrt(x)
        y *= 0.5
        z = z - np.square(1.0 - x) * y
    return np.where((x == 0.0) | (x == 1.0), 0.0, z / 3.0)


_HLL = GroupFn("hll", _hll_chunk, lambda _: (pa.binary(),))
_HLL_MERGE = GroupFn("hll_merge", _hll_merge, lambda _: (pa.binary(),))


# --- the table ----------------------------------------------------------------------------

_ALL = pc.ScalarAggregateOptions(skip_nulls=True, min_count=1)


def _variance(finalize: Callable[[Columns], pa.ChunkedArray]) -> AggSpec:
    return AggSpec(_VARIANCE_CHUNK, _CHAN, finalize, _double_of_number)


AGGREGATES: dict[AggFunc, AggSpec] = {
    AggFunc.COUNT_STAR: AggSpec(("count_all",), ("sum",), _count, _bigint),
    AggFunc.COUNT: AggSpec((("count", pc.CountOptions("only_valid")),), ("sum",), _count,
                           _bigint, rollup=(("count_distinct",
                                             pc.CountOptions("only_valid")),),
                           idempotent=True),
    AggFunc.SUM0: AggSpec(("sum",), ("sum",), _count, _bigint),
    AggFunc.SUM: AggSpec(("sum",), ("sum",), _first,
                         lambda args: sum_avg_result_type(AggFunc.SUM, args[0])),
    AggFunc.MIN: AggSpec(("min",), ("min",), _first, _same, idempotent=True),
    AggFunc.MAX: AggSpec(("max",), ("max",), _first, _same, idempotent=True),
    AggFunc.AVG: AggSpec(("sum", "count"), ("sum", "sum"), _mean,
                         lambda args: sum_avg_result_type(AggFunc.AVG, args[0]), as_double=True),
    AggFunc.STDDEV_SAMP: _variance(_stddev_samp),
    AggFunc.STDDEV_POP: _variance(_stddev_pop),
    AggFunc.VAR_SAMP: _variance(_var_samp),
    AggFunc.VAR_POP: _variance(_var_pop),
    AggFunc.COUNT_IF: AggSpec(("sum",), ("sum",), _count, _bigint_of_boolean),
    AggFunc.BOOL_AND: AggSpec((("all", _ALL),), (("all", _ALL),), _first, _boolean_of_boolean,
                              idempotent=True),
    AggFunc.BOOL_OR: AggSpec((("any", _ALL),), (("any", _ALL),), _first, _boolean_of_boolean,
                             idempotent=True),
    AggFunc.ARBITRARY: AggSpec(("first",), ("first",), _first, _same, idempotent=True),
    AggFunc.MIN_BY: AggSpec(_MIN_BY, _MIN_BY, _first, _same, two_args=True),
    AggFunc.MAX_BY: AggSpec(_MAX_BY, _MAX_BY, _first, _same, two_args=True),
    AggFunc.APPROX_DISTINCT: AggSpec(_HLL, _HLL_MERGE, _hll_estimate, _bigint, idempotent=True),
}
"""Every aggregate function mpp runs, by :class:`AggFunc`."""


def result_type(func: AggFunc, args: Sequence[pa.DataType]) -> pa.DataType | None:
    """Trino's result type of ``func`` over ``args`` (None if the types are not accepted)."""
    return AGGREGATES[func].result(args)


# --- dense group ids ----------------------------------------------------------------------


def group_ids(table: pa.Table, keys: Sequence[str]) -> tuple[np.ndarray, int]:
    """Each row's group id (0..groups-1) by its ``keys`` values (NULL is one value), and the
    number of groups. ``keys`` are already canonical (see :mod:`mpp.physical.keys`)."""
    n = table.num_rows
    if not keys:
        return np.zeros(n, dtype=np.int64), 1 if n else 0
    code = np.zeros(n, dtype=np.int64)
    span = 1
    for key in keys:
        col = table[key]
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        enc = pc.dictionary_encode(col, null_encoding="encode")
        idx = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        size = max(len(enc.dictionary), 1)
        if span * size >= 1 << 62:  # re-densify before the mixed-radix code could overflow
            code = np.unique(code, return_inverse=True)[1].reshape(-1).astype(np.int64)
            span = int(code.max()) + 1 if n else 1
        code = code * size + idx
        span *= size
    uniq, inverse = np.unique(code, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), len(uniq)
