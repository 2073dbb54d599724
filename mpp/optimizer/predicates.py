"""Turning bound conjuncts into storage predicates (:class:`ColumnPredicate`).

A conjunct can be pushed into a Scan when storage can apply it exactly: ``column op literal``
(either order), ``column IN (literals)``, ``column IS [NOT] NULL``, and an OR of equalities
and IN lists on one column (``x = 1 OR x = 2 OR x IN (3, 4)``: generated SQL writes IN lists
that way, thousands of terms long), which is an IN list. BETWEEN is already two comparisons
(the binder desugars it). A bare boolean column (``WHERE flag``) is ``flag = TRUE`` and
``NOT flag`` is ``flag = FALSE`` (both drop a NULL flag, as the filter does).
"""

from __future__ import annotations

import pyarrow as pa

from mpp.logical.expr import Call, Column, Expr, Literal, disjuncts
from mpp.storage.base import ColumnPredicate

_COMPARISONS = {"=", "!=", "<", "<=", ">", ">="}
_FLIPPED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def to_column_predicate(expr: Expr, columns: dict[str, str]) -> ColumnPredicate | None:
    """The storage predicate equal to ``expr``, or None.

    ``columns`` maps field names (``a.time``) to storage column names (``time``).
    """
    if isinstance(expr, Column) and pa.types.is_boolean(expr.dtype) and expr.name in columns:
        return ColumnPredicate(columns[expr.name], "=", True)
    if not isinstance(expr, Call):
        return None
    args = expr.args
    if expr.op == "not" and isinstance(args[0], Column) and pa.types.is_boolean(args[0].dtype):
        inner = to_column_predicate(args[0], columns)
        return ColumnPredicate(inner.column, "=", False) if inner is not None else None
    if expr.op in ("is_null", "is_not_null"):
        col = args[0]
        if isinstance(col, Column) and col.name in columns:
            return ColumnPredicate(columns[col.name], expr.op)  # type: ignore[arg-type]
        return None
    if expr.op == "in":
        col, items = args[0], args[1:]
        if not (isinstance(col, Column) and col.name in columns
                and all(isinstance(i, Literal) for i in items)):
            return None
        # x IN (1, NULL) keeps the same rows as x IN (1): the NULL only turns false into NULL.
        values = tuple(dict.fromkeys(i.value for i in items if i.value is not None))  # type: ignore[attr-defined]
        return ColumnPredicate(columns[col.name], "in", values) if values else None
    if expr.op == "or":
        return _one_column_in(expr, columns)
    if expr.op in _COMPARISONS:
        a, b = args
        op = expr.op
        if isinstance(a, Literal) and isinstance(b, Column):
            a, b, op = b, a, _FLIPPED[op]
        if (isinstance(a, Column) and a.name in columns and isinstance(b, Literal)
                and b.value is not None and a.dtype == b.dtype):
            return ColumnPredicate(columns[a.name], op, b.value)  # type: ignore[arg-type]
    return None


def _one_column_in(expr: Expr, columns: dict[str, str]) -> ColumnPredicate | None:
    """``x = a OR x = b OR x IN (c, d)`` as the storage predicate ``x IN (a, b, c, d)``.

    The same rows in SQL's three-valued logic: NULL x makes both NULL, and a NULL item only
    turns false into NULL, which drops the row either way.
    """
    parts = [to_column_predicate(part, columns) for part in disjuncts(expr)]
    if any(p is None or p.op not in ("=", "in") for p in parts):
        return None
    if len({p.column for p in parts if p is not None}) != 1:
        return None
    values = dict.fromkeys(v for p in parts if p is not None
                           for v in (p.value if p.op == "in" else (p.value,)))
    return ColumnPredicate(parts[0].column, "in", tuple(values))  # type: ignore[union-attr]
