"""Comparing and fingerprinting result rows: dtype widths normalised, ordered where SQL is.

The runner checks every variant's rows against DuckDB's and records a checksum of each result,
so two runs of one scenario can be shown to return the same rows. pandas and dask disagree on
string dtypes, so everything here works on Arrow tables.

Rows are compared as a multiset (:func:`difference`). A query whose top level has ORDER BY also
fixes an order: :func:`order_key_columns` finds the output columns its keys sort by and
:func:`order_difference` checks both tables list the same sequence of their values. Only the
keys are compared in order (rows that tie on every key may come in any order, in Trino too),
and only the longest leading run of keys that are output columns: a key that is not in the
result cannot be seen, and the keys after it do not order the rows on their own.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from mpp.sql.parse import DIALECT, parse

# Floats are rounded to this many decimals in a checksum: a sum's last bits depend on the
# order partial results were combined in, which is not part of a query's meaning.
CHECKSUM_DECIMALS = 6


def _canonical_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return pa.int64()
    if pa.types.is_floating(t):
        return pa.float64()
    if pa.types.is_decimal(t):  # compared as Python Decimals: exactly, whatever the scale
        return t
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pa.large_string()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us")
    if pa.types.is_date(t):
        return pa.date32()
    return t


def normalise(table: pa.Table) -> pa.Table:
    """Canonical column types, columns renamed c0..cN, rows sorted by every column."""
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


def values_close(a: object, b: object, rel: float) -> bool:
    """Equal, or for floats close within ``rel`` (NaN equals NaN).

    Decimals are equal exactly (``1.50`` equals ``1.5``: the scale is the type's, not the
    value's); a decimal met by a float (one engine typed the column DOUBLE) compares as floats.
    """
    if isinstance(a, Decimal) and isinstance(b, float) or isinstance(a, float) and isinstance(
            b, Decimal):
        a, b = float(a), float(b)  # type: ignore[arg-type]
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)
    return a == b


def difference(actual: pa.Table, expected: pa.Table, *, rel: float = 1e-9) -> str | None:
    """None when both hold the same multiset of rows; otherwise the first difference, in words."""
    if actual.num_columns != expected.num_columns:
        return f"{actual.num_columns} columns, DuckDB has {expected.num_columns}"
    if actual.num_rows != expected.num_rows:
        return (f"{actual.num_rows:,} rows, DuckDB has {expected.num_rows:,} "
                f"(off by {abs(actual.num_rows - expected.num_rows):,})")
    a, e = normalise(actual).to_pylist(), normalise(expected).to_pylist()
    bad = [i for i, (ra, re_) in enumerate(zip(a, e, strict=True))
           if not all(values_close(ra[k], re_[k], rel) for k in ra)]
    if not bad:
        return None
    i = bad[0]
    return (f"{len(bad):,} of {len(a):,} rows differ; first (sorted order): "
            f"mpp {tuple(a[i].values())} vs DuckDB {tuple(e[i].values())}")


def _plain(value: object) -> object:
    # DuckDB returns some numbers as decimals (sum of integers); mpp as ints or floats.
    return float(value) if isinstance(value, Decimal) else value


def _key_values(table: pa.Table, keys: Sequence[int]) -> list[tuple[object, ...]]:
    columns = [[_plain(v) for v in table.column(k).to_pylist()] for k in keys]
    return list(zip(*columns, strict=True))


def order_difference(actual: pa.Table, expected: pa.Table, keys: Sequence[int], *,
                     rel: float = 1e-9) -> str | None:
    """None when both tables (of the same rows) list the same sequence of values of the
    columns ``keys`` (the ORDER BY keys); otherwise the first row out of order, in words."""
    if not keys:
        return None
    a, e = _key_values(actual, keys), _key_values(expected, keys)
    for i, (ka, ke) in enumerate(zip(a, e, strict=True)):
        if not all(values_close(x, y, rel) for x, y in zip(ka, ke, strict=True)):
            return (f"row {i} is out of order: ORDER BY key (columns {list(keys)}) "
                    f"mpp {ka} vs DuckDB {ke}")
    return None


def _output_name(item: exp.Expr) -> str:
    if isinstance(item, exp.Alias):
        return item.alias.lower()
    return item.name.lower() if isinstance(item, exp.Column) else ""


def _output_position(key: exp.Expr, items: list[exp.Expr], names: Sequence[str]) -> int | None:
    """The output column an ORDER BY key sorts by, or None if it is not one (or not only one)."""
    if isinstance(key, exp.Literal) and key.is_int:
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


def result_difference(actual: pa.Table, expected: pa.Table, sql: str, *,
                      rel: float = 1e-9) -> str | None:
    """None when ``actual`` is ``sql``'s answer as ``expected`` is: the same multiset of rows
    and, when the query's top level has ORDER BY, the same sequence of ORDER BY key values."""
    diff = difference(actual, expected, rel=rel)
    if diff is not None:
        return diff
    keys = order_key_columns(sql, actual.column_names)
    return None if keys is None else order_difference(actual, expected, keys, rel=rel)


def checksum(table: pa.Table) -> str:
    """A fingerprint of the rows, independent of their order and of dtype widths."""
    t = normalise(table)
    cols = [pc.round(c, CHECKSUM_DECIMALS) if pa.types.is_floating(c.type) else c
            for c in t.columns]
    h = hashlib.sha256(",".join(t.column_names).encode())
    for col in cols:
        text = pc.fill_null(col.cast(pa.large_string()), "\x00NULL")
        h.update("\x1f".join(text.to_pylist()).encode() + b"\x1e")
    return h.hexdigest()[:16]
