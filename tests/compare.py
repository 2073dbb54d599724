"""Result comparison for tests: Arrow tables, dtypes normalised, ordered where SQL orders them.

pandas 3 and dask disagree on string dtypes, so results are compared as Arrow. Both sides are
cast to a canonical type per column (ints -> int64, floats -> float64, strings -> large_string,
dates/timestamps and decimals kept), sorted by every column, and compared row by row:
decimals exactly (1.50 equals 1.5), floats with a relative tolerance (:func:`assert_same_rows`,
the same multiset of rows).

A query whose top level has ORDER BY also fixes an order: :func:`assert_same_result` checks
that both tables list the same sequence of ORDER BY key values as well. Only the keys are
compared in order (rows that tie on every key may come in any order, in Trino too), and only
the longest leading run of keys that are output columns: a key that is not in the result
cannot be seen, and the keys after it do not order the rows on their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from mpp.scenario.rows import normalise, order_difference, order_key_columns, values_close

__all__ = ["assert_each_matches_oracle", "assert_same_ordered_rows", "assert_same_result",
           "assert_same_rows", "normalise", "order_key_columns"]


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


def assert_same_ordered_rows(actual: pa.Table, expected: pa.Table, keys: Sequence[int], *,
                             rel: float = 1e-9) -> None:
    """Assert the same multiset of rows, listed in the same sequence of ``keys`` values.

    ``keys`` are the positions of the columns the rows are sorted by (the ORDER BY keys). Rows
    equal on every key may come in any order, so only the key values are compared row by row.
    """
    assert_same_rows(actual, expected, rel=rel)
    diff = order_difference(actual, expected, keys, rel=rel)
    assert diff is None, diff


def assert_same_result(actual: pa.Table, expected: pa.Table, sql: str, *,
                       rel: float = 1e-9) -> None:
    """Assert ``actual`` is ``sql``'s answer as ``expected`` is: the same multiset of rows and,
    when the query's top level has ORDER BY, the same sequence of ORDER BY key values."""
    keys = order_key_columns(sql, actual.column_names)
    if keys is None:
        assert_same_rows(actual, expected, rel=rel)
    else:
        assert_same_ordered_rows(actual, expected, keys, rel=rel)


def assert_each_matches_oracle(session: Any, queries: Sequence[str],
                               variants: Sequence[Mapping[str, Any]]) -> None:
    """Assert every query of ``queries``, run on ``session`` under each settings variant,
    gives the rows DuckDB gives (asked once per query). Every failing (variant, query) is
    reported, not only the first."""
    from mpp.oracle import run_oracle

    failures = []
    for sql in queries:
        expected = run_oracle(sql, session.catalog)
        for settings in variants:
            result = session.sql(sql, settings=dict(settings))
            try:
                assert_same_rows(result.to_arrow(), expected)
            except AssertionError as exc:
                where = ", ".join(f"{k}={v}" for k, v in settings.items())
                failures.append(f"{where}: {sql}\n{exc}")
    assert not failures, "\n".join(failures)
