"""Result comparison for tests: Arrow tables, order-insensitive, dtypes normalised.

pandas 3 and dask disagree on string dtypes, so results are compared as Arrow. Both sides are
cast to a canonical type per column (ints -> int64, floats -> float64, strings -> large_string,
dates/timestamps kept, decimals -> float64), sorted by every column, and compared row by row,
floats with a relative tolerance.
"""

from __future__ import annotations

import pyarrow as pa

# One normalisation for tests and for the scenario runner's DuckDB check.
from mpp.scenario.rows import normalise, values_close

__all__ = ["assert_same_rows", "normalise"]


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
        ok = all(values_close(ra[k], re_[k], rel) for k in ra)
        assert ok, f"row {i} differs (sorted order):\n  mpp:    {ra}\n  duckdb: {re_}"
