"""Result comparison for tests: Arrow tables, dtypes normalised, ordered where SQL orders them.

pandas 3 and dask disagree on string dtypes, so results are compared as Arrow. Both sides are
cast to a canonical type per column (ints -> int64, floats -> float64, strings -> large_string,
dates/timestamps kept, decimals -> float64), sorted by every column, and compared row by row,
floats with a relative tolerance: :func:`assert_same_rows`, the same multiset of rows.

A query whose top level has ORDER BY also fixes an order: :func:`assert_same_result` checks
that both tables list the same sequence of ORDER BY key values as well. Only the keys are
compared in order (rows that tie on every key may come in any order, in Trino too), and only
the longest leading run of keys that are output columns: a key that is not in the result
cannot be seen, and the keys after it do not order the rows on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pyarrow as pa
from sqlglot import exp
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from mpp.scenario.rows import normalise, values_close
from mpp.sql.parse import DIALECT, parse

__all__ = ["assert_same_ordered_rows", "assert_same_result", "assert_same_rows", "normalise",
           "order_key_columns"]


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


def _plain(value: object) -> object:
    # DuckDB returns some numbers as decimals (sum of integers); mpp as ints or floats.
    return float(value) if isinstance(value, Decimal) else value


def _key_values(table: pa.Table, keys: Sequence[int]) -> list[tuple[object, ...]]:
    columns = [[_plain(v) for v in table.column(k).to_pylist()] for k in keys]
    return list(zip(*columns, strict=True))


def assert_same_ordered_rows(actual: pa.Table, expected: pa.Table, keys: Sequence[int], *,
                             rel: float = 1e-9) -> None:
    """Assert the same multiset of rows, listed in the same sequence of ``keys`` values.

    ``keys`` are the positions of the columns the rows are sorted by (the ORDER BY keys). Rows
    equal on every key may come in any order, so only the key values are compared row by row.
    """
    assert_same_rows(actual, expected, rel=rel)
    if not keys:
        return
    a, e = _key_values(actual, keys), _key_values(expected, keys)
    for i, (ka, ke) in enumerate(zip(a, e, strict=True)):
        ok = all(values_close(x, y, rel) for x, y in zip(ka, ke, strict=True))
        assert ok, (f"row {i} is out of order: ORDER BY key (columns {list(keys)})\n"
                    f"  mpp:    {ka}\n  duckdb: {ke}")


def _output_name(item: exp.Expr) -> str:
    if isinstance(item, exp.Alias):
        return item.alias.lower()
    return item.name.lower() if isinstance(item, exp.Column) else ""


def _output_position(key: exp.Expr, items: list[exp.Expr], names: Sequence[str]) -> int | None:
    """The output column an ORDER BY key sorts by, or None if it is not one (or not only one)."""
    if isinstance(key, exp.Literal) and not key.is_string:
        return int(key.this) - 1  # ORDER BY 2
    if any(isinstance(item, exp.Star) for item in items):
        # SELECT *: the result's own column names are the outputs.
        if isinstance(key, exp.Column) and not key.table:
            found = [i for i, n in enumerate(names) if n.lower() == key.name.lower()]
            return found[0] if len(found) == 1 else None
        return None
    if isinstance(key, exp.Column) and not key.table:
        found = [i for i, item in enumerate(items) if _output_name(item) == key.name.lower()]
        if found:
            return found[0] if len(found) == 1 else None
    found = [i for i, item in enumerate(items) if item.unalias() == key]
    return found[0] if len(found) == 1 else None


def order_key_columns(sql: str, names: Sequence[str]) -> list[int] | None:
    """The output positions of ``sql``'s top-level ORDER BY keys, or None without ORDER BY.

    Keys are resolved as Trino does, output columns first: a position (``ORDER BY 2``), an
    output name or alias, or an expression that is a select item. The list stops before the
    first key that is none of these (a hidden key such as an input column): the keys after it
    do not determine the order of what the result shows. ``names`` are the result's column
    names, for ``SELECT *``.
    """
    tree = normalize_identifiers(parse(sql), dialect=DIALECT)  # unquoted names fold to lower
    order = tree.args.get("order") if isinstance(tree, exp.Select) else None
    if order is None:
        return None
    keys: list[int] = []
    for ordered in order.expressions:
        position = _output_position(ordered.this, list(tree.expressions), names)
        if position is None or not 0 <= position < len(names):
            break
        keys.append(position)
    return keys


def assert_same_result(actual: pa.Table, expected: pa.Table, sql: str, *,
                       rel: float = 1e-9) -> None:
    """Assert ``actual`` is ``sql``'s answer as ``expected`` is: the same multiset of rows and,
    when the query's top level has ORDER BY, the same sequence of ORDER BY key values."""
    keys = order_key_columns(sql, actual.column_names)
    if keys is None:
        assert_same_rows(actual, expected, rel=rel)
    else:
        assert_same_ordered_rows(actual, expected, keys, rel=rel)
