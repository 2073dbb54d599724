"""Bound expressions: typed, immutable, free of SQL text.

The binder (mpp/sql) turns sqlglot expressions into these; the optimizer rewrites them; the
physical kernels evaluate them on Arrow tables with :func:`mpp.logical.evaluate.evaluate`.
A :class:`Column` refers to a field of the input by its unique name in the input's schema.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa


class Expr:
    """Base class of bound expressions. Subclasses are frozen dataclasses with a ``dtype``."""

    dtype: pa.DataType

    def children(self) -> tuple[Expr, ...]:
        """Direct sub-expressions."""
        return ()

    def walk(self) -> Iterator[Expr]:
        """This expression and all sub-expressions, pre-order."""
        yield self
        for child in self.children():
            yield from child.walk()

    def columns(self) -> frozenset[str]:
        """Names of the input columns this expression reads."""
        return frozenset(e.name for e in self.walk() if isinstance(e, Column))


@dataclass(frozen=True, slots=True)
class Column(Expr):
    """A field of the input, by its unique name in the input schema (e.g. ``a.user_id``)."""

    name: str
    dtype: pa.DataType

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Literal(Expr):
    """A constant. ``value`` is a Python scalar or ``None`` (typed NULL)."""

    value: Any
    dtype: pa.DataType

    def __str__(self) -> str:
        if self.value is None:
            return "NULL"
        if isinstance(self.value, bool):
            return "TRUE" if self.value else "FALSE"
        if pa.types.is_date(self.dtype):
            return f"DATE '{self.value}'"
        if pa.types.is_timestamp(self.dtype):
            return f"TIMESTAMP '{self.value}'"
        if isinstance(self.value, str):
            return "'" + self.value.replace("'", "''") + "'"
        return str(self.value)


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """A scalar function or operator applied to arguments.

    ``op`` is one of the names the evaluator knows, e.g. ``+ - * / % = != < <= > >= and or not
    neg is_null is_not_null like in between cast date_trunc date_diff extract substring case coalesce``.
    ``options`` carries non-expression arguments (e.g. ``(("unit", "day"),)`` for date_trunc).
    """

    op: str
    args: tuple[Expr, ...]
    dtype: pa.DataType
    options: tuple[tuple[str, Any], ...] = ()
    # Where the user wrote it (the binder sets these; a cast it inserts has none), so an error
    # at run time (division by zero, a failing CAST) can point at the SQL. Not part of the
    # expression's identity: GROUP BY matching and plan equality ignore them.
    source: str = field(default="", compare=False, repr=False)
    line: int | None = field(default=None, compare=False, repr=False)
    column: int | None = field(default=None, compare=False, repr=False)

    def children(self) -> tuple[Expr, ...]:
        return self.args

    def option(self, name: str, default: Any = None) -> Any:
        """Return the non-expression argument ``name``."""
        return dict(self.options).get(name, default)

    def __str__(self) -> str:
        infix = {"+", "-", "*", "/", "%", "=", "!=", "<", "<=", ">", ">=", "and", "or", "like"}
        if self.op in ("and", "or") and len(self.args) > 2:  # n-ary (see conjoin/disjoin)
            return "(" + f" {self.op.upper()} ".join(str(a) for a in self.args) + ")"
        if self.op in infix and len(self.args) == 2 and not self.options:  # (LIKE ... ESCAPE)
            return f"({self.args[0]} {self.op.upper() if self.op.isalpha() else self.op} {self.args[1]})"
        if self.op == "cast":
            return f"CAST({self.args[0]} AS {type_name(self.dtype)})"
        opts = "".join(f", {k}={v!r}" for k, v in self.options)
        return f"{self.op}({', '.join(str(a) for a in self.args)}{opts})"


_TRINO_NAMES: tuple[tuple[pa.DataType, str], ...] = (
    (pa.int8(), "tinyint"), (pa.int16(), "smallint"), (pa.int32(), "integer"),
    (pa.int64(), "bigint"), (pa.float32(), "real"), (pa.float64(), "double"),
    (pa.bool_(), "boolean"), (pa.date32(), "date"), (pa.null(), "unknown"),
)


def type_name(t: pa.DataType) -> str:
    """Trino's name of an Arrow type, for EXPLAIN and error messages (``integer``,
    ``varchar``, ``decimal(15,2)``, ...)."""
    for arrow, name in _TRINO_NAMES:
        if t == arrow:
            return name
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "varchar"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    return str(t)


class AggFunc(enum.Enum):
    """Aggregate functions of the SQL subset."""

    COUNT_STAR = "count_star"
    COUNT = "count"
    SUM = "sum"
    MIN = "min"
    MAX = "max"
    AVG = "avg"
    STDDEV_SAMP = "stddev_samp"  # stddev is stddev_samp
    STDDEV_POP = "stddev_pop"
    VAR_SAMP = "var_samp"  # variance is var_samp
    VAR_POP = "var_pop"
    COUNT_IF = "count_if"
    BOOL_AND = "bool_and"  # every is bool_and
    BOOL_OR = "bool_or"
    ARBITRARY = "arbitrary"  # any_value is arbitrary
    MIN_BY = "min_by"
    MAX_BY = "max_by"
    APPROX_DISTINCT = "approx_distinct"
    # A sum of counts: 0, not NULL, over no rows (Calcite's $SUM0). Not in the SQL subset; the
    # count(DISTINCT) rewrite makes it from count(*) and count(x), which are never NULL.
    SUM0 = "sum0"


@dataclass(frozen=True, slots=True)
class AggregateCall:
    """``func([DISTINCT] arg[, by])`` in an Aggregate node. ``arg`` is a Column (None for
    count(*)); ``by`` is the second argument of min_by/max_by (the value ordered by)."""

    func: AggFunc
    arg: Column | None
    distinct: bool
    dtype: pa.DataType
    # Where the user wrote the call, for errors at run time (a sum's overflow), as in Call.
    source: str = field(default="", compare=False, repr=False)
    line: int | None = field(default=None, compare=False, repr=False)
    column: int | None = field(default=None, compare=False, repr=False)
    by: Column | None = None

    def inputs(self) -> tuple[Column, ...]:
        """The input columns the call reads (its argument and ``by``)."""
        return tuple(c for c in (self.arg, self.by) if c is not None)

    def __str__(self) -> str:
        if self.func is AggFunc.COUNT_STAR:
            return "count(*)"
        by = f", {self.by}" if self.by is not None else ""
        return f"{self.func.value}({'DISTINCT ' if self.distinct else ''}{self.arg}{by})"


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ORDER BY key. ``column`` names a field of the Sort's input."""

    column: Column
    ascending: bool = True
    nulls_first: bool = False

    def __str__(self) -> str:
        return f"{self.column} {'ASC' if self.ascending else 'DESC'}" + (
            " NULLS FIRST" if self.nulls_first else ""
        )


TRUE = Literal(True, pa.bool_())


def conjuncts(expr: Expr | None) -> list[Expr]:
    """Split a predicate into its AND-ed parts (``None`` has none).

    Iterative, so a generated chain of thousands of conjuncts does not exhaust the stack.
    """
    return _chain_parts(expr, "and") if expr is not None else []


def disjuncts(expr: Expr) -> list[Expr]:
    """Split a predicate into its OR-ed parts."""
    return _chain_parts(expr, "or")


def _chain_parts(expr: Expr, op: str) -> list[Expr]:
    parts: list[Expr] = []
    stack = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, Call) and e.op == op:
            stack.extend(reversed(e.args))
        else:
            parts.append(e)
    return parts


def conjoin(parts: list[Expr] | tuple[Expr, ...]) -> Expr | None:
    """AND the ``parts`` together as one flat n-ary ``and`` (``None`` if there are none).

    Flat, not left-deep: a chain of thousands of conjuncts stays one level deep, so the
    recursive walks over expressions (evaluation, EXPLAIN, rewriting) stay shallow.
    """
    return _connect("and", parts)


def disjoin(parts: list[Expr] | tuple[Expr, ...]) -> Expr | None:
    """OR the ``parts`` together as one flat n-ary ``or`` (``None`` if there are none)."""
    return _connect("or", parts)


def factor_disjunction(terms: list[Expr] | tuple[Expr, ...]) -> Expr | None:
    """OR the ``terms`` together with the conjuncts common to all of them factored out:
    ``(a AND b) OR (a AND c)`` is ``a AND (b OR c)`` (and ``a OR (a AND b)`` is ``a``).

    Both laws hold in three-valued logic too. It gives the conjuncts every branch repeats to
    the rules that look for them: TPC-H Q19 writes its join key ``p_partkey = l_partkey`` in
    each branch of an OR, which would otherwise be a cross product filtered row by row.
    Linear in the terms' conjuncts (a set lookup each), for generated chains of thousands.
    """
    if len(terms) < 2:
        return disjoin(terms)
    parts = [conjuncts(t) for t in terms]
    others = [set(p) for p in parts[1:]]
    common = [c for c in dict.fromkeys(parts[0]) if all(c in o for o in others)]
    if not common:
        return disjoin(terms)
    shared = set(common)
    rests = [[c for c in p if c not in shared] for p in parts]
    if any(not r for r in rests):  # a branch is just the common part: absorption
        return conjoin(common)
    return conjoin([*common, disjoin([conjoin(r) for r in rests])])


def _connect(op: str, parts: list[Expr] | tuple[Expr, ...]) -> Expr | None:
    flat = [p for part in parts for p in _chain_parts(part, op)]
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else Call(op, tuple(flat), pa.bool_())


def replace_columns(expr: Expr, mapping: dict[str, Expr]) -> Expr:
    """``expr`` with each Column whose name is in ``mapping`` replaced by the mapped expression."""
    if isinstance(expr, Column):
        return mapping.get(expr.name, expr)
    if isinstance(expr, Call):
        return Call(expr.op, tuple(replace_columns(a, mapping) for a in expr.args), expr.dtype,
                    expr.options)
    return expr


def equality_sides(expr: Expr, left: set[str] | frozenset[str],
                   right: set[str] | frozenset[str]) -> tuple[Expr, Expr] | None:
    """(left side, right side) if ``expr`` is ``=`` between an expression over ``left`` fields
    only and one over ``right`` fields only (either order): a join key pair."""
    if not (isinstance(expr, Call) and expr.op == "="):
        return None
    a, b = expr.args
    ca, cb = a.columns(), b.columns()
    if ca and cb and ca <= left and cb <= right:
        return a, b
    if ca and cb and ca <= right and cb <= left:
        return b, a
    return None
