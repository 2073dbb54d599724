"""distinct_values: direct addressing for short integer ranges, pc.unique otherwise.

pc.unique is the reference here (pyarrow's hash kernel); the query-level results of the
DISTINCT paths are checked against DuckDB by the oracle tests.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mpp.physical.aggregates import DIRECT_MIN_VALUES, DIRECT_SLOTS_PER_VALUE, distinct_values

TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.date32(), pa.date64(),
         pa.timestamp("us"), pa.timestamp("ns", "UTC"), pa.time64("us"), pa.duration("s"),
         pa.uint16(), pa.float64(), pa.string()]


def _values(type_: pa.DataType, n: int, *, nulls: bool, seed: int = 0) -> pa.ChunkedArray:
    rng = np.random.default_rng(seed)
    ints = rng.integers(-100, 120, n)
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
    values = _values(type_, 5 * DIRECT_MIN_VALUES, nulls=nulls)
    _same(distinct_values(values), pc.unique(values))


def test_direct_addressing_returns_ascending_values_and_hashing_first_seen() -> None:
    short = pa.chunked_array([pa.array([5, 3, 5, 9] * DIRECT_MIN_VALUES, pa.int64())])
    assert distinct_values(short).to_pylist() == [3, 5, 9]  # the bitmap's order
    # A span wider than DIRECT_SLOTS_PER_VALUE x the values: the hash table, first-seen order.
    wide = [10**9, 3, 10**9, 7] * DIRECT_MIN_VALUES
    assert 10**9 > DIRECT_SLOTS_PER_VALUE * len(wide)
    assert distinct_values(pa.array(wide)).to_pylist() == [10**9, 3, 7]


def test_extreme_int64_values_in_a_short_span() -> None:
    top = np.iinfo(np.int64).max
    low = np.iinfo(np.int64).min
    for base, sign in ((top, -1), (low, 1)):
        values = pa.array([base + sign * (i % 5) for i in range(DIRECT_MIN_VALUES)], pa.int64())
        _same(distinct_values(values), pc.unique(values))


def test_all_null_and_empty_inputs() -> None:
    assert distinct_values(pa.nulls(DIRECT_MIN_VALUES, pa.int64())).to_pylist() == [None]
    assert distinct_values(pa.chunked_array([], pa.int32())).to_pylist() == []
