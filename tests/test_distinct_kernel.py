"""distinct_values / distinct_rows: direct addressing for short integer ranges, pyarrow's hash
kernels otherwise.

pc.unique and Acero's group_by are the reference here; the query-level results of the
DISTINCT paths are checked against DuckDB by the oracle tests.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mpp.physical.aggregates import (
    DIRECT_MIN_ROWS,
    DIRECT_SLOTS_PER_ROW,
    distinct_rows,
    distinct_values,
)

TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.date32(), pa.date64(),
         pa.timestamp("us"), pa.timestamp("ns", "UTC"), pa.time64("us"), pa.duration("s"),
         pa.uint16(), pa.float64(), pa.string()]


def _values(type_: pa.DataType, n: int, *, nulls: bool, seed: int = 0,
            span: int = 220) -> pa.ChunkedArray:
    rng = np.random.default_rng(seed)
    ints = rng.integers(-100, -100 + span, n)
    if pa.types.is_string(type_):
        arr = pa.array([f"v{x}" for x in ints])
    elif pa.types.is_floating(type_):
        arr = pa.array(ints / 7)
    elif pa.types.is_unsigned_integer(type_):
        arr = pa.array(ints + 100).cast(type_)
    elif pa.types.is_integer(type_):
        arr = pa.array(ints).cast(type_)
    else:
        width = pa.int32() if type_.bit_width == 32 else pa.int64()
        arr = pa.array(ints).cast(width).view(type_)
    if nulls:
        arr = pc.if_else(pa.array(np.arange(n) % 7 == 0), pa.nulls(n, type_), arr)
    # Uneven chunks, one of them empty, as concatenated exchange inputs arrive.
    return pa.chunked_array([arr[: n // 3], arr[n // 3: n // 3], arr[n // 3:]], type_)


def _same(got: pa.Array, expected: pa.Array) -> None:
    assert got.type == expected.type
    key = lambda v: (v is None, v)  # noqa: E731
    assert sorted(got.to_pylist(), key=key) == sorted(expected.to_pylist(), key=key)


@pytest.mark.parametrize("nulls", [False, True])
@pytest.mark.parametrize("type_", TYPES, ids=str)
def test_distinct_values_match_pc_unique(type_: pa.DataType, nulls: bool) -> None:
    values = _values(type_, 5 * DIRECT_MIN_ROWS, nulls=nulls)
    _same(distinct_values(values), pc.unique(values))


def test_direct_addressing_returns_ascending_values_and_hashing_first_seen() -> None:
    short = pa.chunked_array([pa.array([5, 3, 5, 9] * DIRECT_MIN_ROWS, pa.int64())])
    assert distinct_values(short).to_pylist() == [3, 5, 9]  # the bitmap's order
    # A span wider than DIRECT_SLOTS_PER_ROW x the values: the hash table, first-seen order.
    wide = [10**9, 3, 10**9, 7] * DIRECT_MIN_ROWS
    assert 10**9 > DIRECT_SLOTS_PER_ROW * len(wide)
    assert distinct_values(pa.array(wide)).to_pylist() == [10**9, 3, 7]


def test_extreme_int64_values_in_a_short_span() -> None:
    top = np.iinfo(np.int64).max
    low = np.iinfo(np.int64).min
    for base, sign in ((top, -1), (low, 1)):
        values = pa.array([base + sign * (i % 5) for i in range(DIRECT_MIN_ROWS)], pa.int64())
        _same(distinct_values(values), pc.unique(values))


def test_all_null_and_empty_inputs() -> None:
    assert distinct_values(pa.nulls(DIRECT_MIN_ROWS, pa.int64())).to_pylist() == [None]
    assert distinct_values(pa.chunked_array([], pa.int32())).to_pylist() == []


def _same_rows(got: pa.Table, expected: pa.Table) -> None:
    assert got.schema.equals(expected.schema)
    key = lambda row: tuple((v is None, v) for v in row.values())  # noqa: E731
    assert sorted(got.to_pylist(), key=key) == sorted(expected.to_pylist(), key=key)


@pytest.mark.parametrize("nulls", [False, True])
@pytest.mark.parametrize(("a", "b"), [(pa.date32(), pa.int64()), (pa.int16(), pa.timestamp("us")),
                                      (pa.int64(), pa.string())], ids=str)
def test_distinct_rows_of_several_keys_match_group_by(a: pa.DataType, b: pa.DataType,
                                                      nulls: bool) -> None:
    n = 5 * DIRECT_MIN_ROWS
    # 6 x 220 slots for 1,280 rows: the bitmap, unless a key is a string or holds NULLs.
    table = pa.table({"a": _values(a, n, nulls=nulls, seed=1, span=6),
                      "b": _values(b, n, nulls=False, seed=2)})
    expected = table.group_by(["a", "b"], use_threads=False).aggregate([]).select(["a", "b"])
    _same_rows(distinct_rows(table, ["a", "b"]), expected)
    _same_rows(distinct_rows(table, ["b", "a"]), expected.select(["b", "a"]))


def test_several_keys_use_the_bitmap_only_while_their_combined_span_is_short() -> None:
    n = 4 * DIRECT_MIN_ROWS
    day = pa.array([i % 4 for i in range(n)], pa.int32())
    narrow = pa.table({"d": day, "u": pa.array([(i * 7) % 50 for i in range(n)], pa.int64())})
    # 4 x 50 slots for n rows: direct, so ascending (d, u).
    rows = distinct_rows(narrow, ["d", "u"]).to_pylist()
    assert rows == sorted(rows, key=lambda r: (r["d"], r["u"]))
    assert len(rows) == len(set(zip(day.to_pylist(), narrow["u"].to_pylist(), strict=True)))
    # 4 x (a span of n x DIRECT_SLOTS_PER_ROW) slots: too wide, the hash kernel answers.
    wide_u = pa.array([(i % 2) * n * DIRECT_SLOTS_PER_ROW for i in range(n)], pa.int64())
    wide = pa.table({"d": day, "u": wide_u})
    expected = wide.group_by(["d", "u"], use_threads=False).aggregate([]).select(["d", "u"])
    _same_rows(distinct_rows(wide, ["d", "u"]), expected)
