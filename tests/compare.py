"""Result comparison for tests: Arrow tables, order-insensitive, dtypes normalised.

pandas 3 and dask disagree on string dtypes, so results are compared as Arrow. Both sides are
cast to a canonical type per column (ints -> int64, floats -> float64, strings -> large_string,
dates/timestamps kept, decimals -> float64), sorted by every column, and compared row by row,
floats with a relative tolerance.
"""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.compute as pc


def _canonical_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return pa.int64()
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return pa.float64()
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return pa.large_string()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us")
    if pa.types.is_date(t):
        return pa.date32()
    return t


def normalise(table: pa.Table) -> pa.Table:
    """Cast every column to its canonical type, rename columns to c0..cN, sort all columns."""
    cols = []
    for col in table.columns:
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        cols.append(pc.cast(col, _canonical_type(col.type)))
    names = [f"c{i}" for i in range(len(cols))]
    out = pa.table(cols, names=names) if cols else table
    if out.num_rows and names:
        out = out.sort_by([(n, "ascending") for n in names])
    return out


def _close(a: object, b: object, rel: float) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)
    return a == b


def assert_same_rows(actual: pa.Table, expected: pa.Table, *, rel: float = 1e-9,
                     check_names: bool = False) -> None:
    """Assert two tables hold the same multiset of rows (ignoring order and dtype widths)."""
    assert actual.num_columns == expected.num_columns, (
        f"column count differs: {actual.column_names} vs {expected.column_names}"
    )
    if check_names:
        assert actual.column_names == expected.column_names
    assert actual.num_rows == expected.num_rows, (
        f"row count differs: {actual.num_rows} vs {expected.num_rows}"
    )
    a, e = normalise(actual).to_pylist(), normalise(expected).to_pylist()
    for i, (ra, re_) in enumerate(zip(a, e, strict=True)):
        ok = all(_close(ra[k], re_[k], rel) for k in ra)
        assert ok, f"row {i} differs (sorted order):\n  mpp:    {ra}\n  duckdb: {re_}"
