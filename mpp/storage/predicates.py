"""Pushed-down predicates: exact row filtering and min/max pruning, shared by every format.

A list of :class:`~mpp.storage.base.ColumnPredicate` is an AND. Scans apply it exactly with
pyarrow compute (SQL semantics: a comparison with NULL is not true, so the row is dropped).
Pruning asks the cheaper question "may any row of this fragment / row group pass?" from
partition values and ``(min, max)`` bounds; it must never say no when the answer is yes, so
anything it cannot decide (unknown bounds, values of incomparable types) counts as a maybe.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from mpp.storage.base import ColumnPredicate, ScanResult


def predicate_columns(predicates: Sequence[ColumnPredicate]) -> list[str]:
    """Columns the predicates read, in first-use order, without duplicates."""
    return list(dict.fromkeys(p.column for p in predicates))


def needed_columns(columns: Sequence[str], predicates: Sequence[ColumnPredicate]) -> list[str]:
    """Columns a scan must read: the requested ones, then those only the predicates use."""
    return list(dict.fromkeys([*columns, *predicate_columns(predicates)]))


def finish_scan(table: pa.Table, columns: Sequence[str], predicates: Sequence[ColumnPredicate],
                bytes_read: int) -> ScanResult:
    """The scan's result from the rows it decoded: filter exactly, then project."""
    rows_scanned = table.num_rows
    table = filter_table(table, predicates).select(list(columns))
    return ScanResult(table=table, bytes_read=bytes_read, rows_scanned=rows_scanned)


def _scalar(value: Any, type_: pa.DataType) -> pa.Scalar:
    """``value`` as an Arrow scalar of the column's type (so comparisons never re-cast columns)."""
    if isinstance(value, pa.Scalar):
        return value
    try:
        return pa.scalar(value, type=type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        # e.g. 3.5 against an int column: let compute pick a common type.
        return pa.scalar(value)


T = TypeVar("T")


def balanced(terms: Sequence[T], combine: Callable[[T, T], T]) -> T:
    """``terms`` combined pairwise into a balanced tree: ``log2(n)`` deep, not ``n``.

    A generated query may push thousands of conjuncts; libraries that walk expression trees
    recursively (pyarrow's binder, pyiceberg's visitors) must see them shallow.

    >>> balanced(["a", "b", "c"], lambda x, y: f"({x} & {y})")
    '(a & (b & c))'
    """
    layer = list(terms)
    while len(layer) > 1:
        paired = [combine(layer[i], layer[i + 1]) for i in range(len(layer) % 2, len(layer), 2)]
        layer = layer[:len(layer) % 2] + paired
    return layer[0]


def to_expression(predicates: Sequence[ColumnPredicate], schema: pa.Schema) -> pc.Expression | None:
    """The AND of ``predicates`` as a pyarrow compute expression (None for no predicates)."""
    terms: list[pc.Expression] = []
    for p in predicates:
        field = pc.field(p.column)
        type_ = schema.field(p.column).type
        if p.op == "is_null":
            term = field.is_null()
        elif p.op == "is_not_null":
            term = field.is_valid()
        elif p.op == "in":
            values = pa.array(list(p.value), type=type_) if p.value else pa.array([], type=type_)
            term = field.isin(values)
        else:
            value = _scalar(p.value, type_)
            term = {
                "=": field == value,
                "!=": field != value,
                "<": field < value,
                "<=": field <= value,
                ">": field > value,
                ">=": field >= value,
            }[p.op]
        terms.append(term)
    return balanced(terms, lambda a, b: a & b) if terms else None


def filter_table(table: pa.Table, predicates: Sequence[ColumnPredicate]) -> pa.Table:
    """Rows of ``table`` passing every predicate (NULL comparisons drop the row)."""
    expr = to_expression(predicates, table.schema)
    return table if expr is None else table.filter(expr)


def comparable(a: Any, b: Any) -> tuple[Any, Any]:
    """Bring a bound and a predicate value to comparable Python types where that is lossless."""
    if isinstance(a, dt.datetime) and not isinstance(b, dt.datetime) and isinstance(b, dt.date):
        b = dt.datetime(b.year, b.month, b.day)
    elif isinstance(b, dt.datetime) and not isinstance(a, dt.datetime) and isinstance(a, dt.date):
        a = dt.datetime(a.year, a.month, a.day)
    return a, b


def _range_may_match(lo: Any, hi: Any, p: ColumnPredicate) -> bool:
    """May some value in ``[lo, hi]`` satisfy ``p``? (True when undecidable.)"""
    if p.op in ("is_null", "is_not_null") or lo is None or hi is None:
        return True  # bounds say nothing about nulls
    try:
        if p.op == "in":
            return any(_range_may_match(lo, hi, ColumnPredicate(p.column, "=", v)) for v in p.value)
        lo_, v = comparable(lo, p.value)
        hi_, v = comparable(hi, v)
        if p.op == "=":
            return bool(lo_ <= v <= hi_)
        if p.op == "!=":
            return not (lo_ == hi_ == v)
        if p.op == "<":
            return bool(lo_ < v)
        if p.op == "<=":
            return bool(lo_ <= v)
        if p.op == ">":
            return bool(hi_ > v)
        if p.op == ">=":
            return bool(hi_ >= v)
    except TypeError:
        return True  # incomparable types: never prune on a guess
    return True


def bounds_may_match(bounds: Mapping[str, tuple[Any, Any]],
                     predicates: Iterable[ColumnPredicate]) -> bool:
    """False only if some predicate provably rejects every row within ``bounds``."""
    for p in predicates:
        if p.column in bounds:
            lo, hi = bounds[p.column]
            if not _range_may_match(lo, hi, p):
                return False
    return True
