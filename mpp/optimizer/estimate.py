"""Cardinality and size estimates of logical nodes, from catalog statistics only.

Used by ``choose_join_strategy`` (and later rules) to guess how many bytes a join side holds in
memory: rows x the Arrow width of the columns it carries. The guesses are classic System-R
ones, documented so EXPLAIN's "estimated" figures can be traced by hand:

* a Scan has ``row_count`` rows times the selectivity of each pushed predicate: ``=`` is
  1/distinct_count, IN is k/distinct_count, a range is the covered fraction of [min, max],
  IS NULL is null_count/row_count (defaults 0.1, 0.1 per item, 1/3, 0.1 when stats are missing),
  and at most its ``fetch``; a Limit and a top-N Sort at most their count;
* a Filter right above a Scan estimates the conjuncts a scan could take as if pushed (the
  pushdown rule is off); any other conjunct keeps half the rows;
* an Aggregate has the product of its group columns' distinct counts (capped by its input);
* an equi-join has |L| x |R| / max(ndv(left key), ndv(right key)) rows (a LEFT join at least
  |L|, RIGHT |R|, FULL max(|L|, |R|)); a join without keys |L| x |R| (x 1/3 with a residual);
* a UNION ALL has the sum of its inputs' rows; VALUES its written rows.

Fixed-width columns count their Arrow width; strings count ``STRING_BYTES`` each.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import singledispatch
from typing import Any

import pyarrow as pa

from mpp.catalog.model import ColumnStats
from mpp.logical.expr import conjuncts
from mpp.logical.nodes import (
    Aggregate,
    Filter,
    Join,
    JoinKind,
    Limit,
    LogicalNode,
    Project,
    Scan,
    Sort,
    Union,
    Values,
)
from mpp.logical.window import Window
from mpp.optimizer.predicates import to_column_predicate
from mpp.storage.base import ColumnPredicate

STRING_BYTES = 24  # assumed average in memory: 20 bytes of text + a 4-byte offset
_DEFAULT_EQ, _DEFAULT_RANGE, _DEFAULT_NULL = 0.1, 1 / 3, 0.1


@dataclass(frozen=True, slots=True)
class Estimate:
    """Estimated output of a node: rows and bytes per row in memory."""

    rows: float
    row_bytes: float

    @property
    def bytes(self) -> float:
        """Estimated in-memory size of the whole output."""
        return self.rows * self.row_bytes


def type_bytes(t: pa.DataType) -> float:
    """Bytes one value of ``t`` takes in an Arrow array (strings: an assumed average)."""
    try:
        return max(1.0, int(t.bit_width) / 8)
    except ValueError:
        return STRING_BYTES


def _number(v: Any) -> float | None:
    if isinstance(v, dt.datetime):
        return v.timestamp() if v.tzinfo else v.replace(tzinfo=dt.UTC).timestamp()
    if isinstance(v, dt.date):
        return float(v.toordinal())
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    return None


def _range_fraction(p: ColumnPredicate, s: ColumnStats) -> float:
    lo, hi, v = _number(s.min), _number(s.max), _number(p.value)
    if lo is None or hi is None or v is None:
        return _DEFAULT_RANGE
    if hi <= lo:
        return 1.0 if lo == v or (p.op in ("<", "<=")) == (v > lo) else 0.0
    below = min(1.0, max(0.0, (v - lo) / (hi - lo)))
    return below if p.op in ("<", "<=") else 1.0 - below


def selectivity(p: ColumnPredicate, s: ColumnStats, rows: int) -> float:
    """Estimated fraction of rows passing ``p`` given the column's statistics."""
    ndv = s.distinct_count or 0
    if p.op == "=":
        return 1 / ndv if ndv else _DEFAULT_EQ
    if p.op == "!=":
        return 1 - 1 / ndv if ndv else 1 - _DEFAULT_EQ
    if p.op == "in":
        k = len(p.value)
        return min(1.0, k / ndv) if ndv else min(1.0, k * _DEFAULT_EQ)
    if p.op in ("is_null", "is_not_null"):
        nulls = s.null_count / rows if s.null_count is not None and rows > 0 else _DEFAULT_NULL
        return nulls if p.op == "is_null" else 1 - nulls
    return _range_fraction(p, s)


def _width(node: LogicalNode) -> float:
    return sum(type_bytes(f.dtype) for f in node.schema)


@singledispatch
def estimate(node: LogicalNode) -> Estimate:
    """Estimated rows and row width of ``node``'s output (default: as its first input)."""
    rows = estimate(node.inputs[0]).rows if node.inputs else 1.0
    return Estimate(rows, _width(node))


@estimate.register
def _scan(node: Scan) -> Estimate:
    stats = node.table.stats
    rows = float(max(0, stats.row_count))
    for p in node.predicates:
        rows *= selectivity(p, stats.column(p.column), stats.row_count)
    if node.fetch is not None:
        rows = min(rows, float(node.fetch))
    return Estimate(rows, _width(node))


@estimate.register
def _filter(node: Filter) -> Estimate:
    rows = estimate(node.input).rows
    scan = node.input if isinstance(node.input, Scan) else None
    columns = {f"{scan.alias}.{c}": c for c in scan.table.schema.names} if scan else {}
    for part in conjuncts(node.predicate):
        pred = to_column_predicate(part, columns) if scan is not None else None
        if scan is not None and pred is not None:  # as if pushed (pushdown switched off)
            stats = scan.table.stats
            rows *= selectivity(pred, stats.column(pred.column), stats.row_count)
        else:
            rows *= 0.5
    return Estimate(rows, _width(node))


@estimate.register
def _sort(node: Sort) -> Estimate:
    rows = estimate(node.input).rows
    return Estimate(rows if node.fetch is None else min(rows, float(node.fetch)), _width(node))


@estimate.register
def _limit(node: Limit) -> Estimate:
    return Estimate(min(float(node.count), estimate(node.input).rows), _width(node))


@estimate.register
def _union(node: Union) -> Estimate:
    return Estimate(sum(estimate(b).rows for b in node.branches), _width(node))


@estimate.register
def _values(node: Values) -> Estimate:
    return Estimate(float(len(node.rows)), _width(node))


@estimate.register
def _aggregate(node: Aggregate) -> Estimate:
    rows = estimate(node.input).rows
    if not node.group_by:
        return Estimate(1.0, _width(node))
    ndvs = [column_stats(node.input, c.name).distinct_count for c in node.group_by]
    groups = math.prod(n for n in ndvs if n) if all(ndvs) else rows
    return Estimate(min(rows, float(groups)), _width(node))


@estimate.register
def _join(node: Join) -> Estimate:
    left, right = estimate(node.left).rows, estimate(node.right).rows
    ndv = max((column_stats(side, k.name).distinct_count or 0)
              for side, keys in ((node.left, node.left_keys), (node.right, node.right_keys))
              for k in keys[:1]) if node.left_keys else 0
    if not node.left_keys:  # every pair, then the residual (a range test keeps ~1/3)
        rows = left * right * (1.0 if node.residual is None else _DEFAULT_RANGE)
    else:
        rows = left * right / ndv if ndv else max(left, right)
    if node.kind is JoinKind.SEMI:  # each left row at most once
        return Estimate(min(rows, left), _width(node))
    if node.kind is JoinKind.ANTI:  # the left rows the matches leave (at least a tenth)
        return Estimate(max(left - min(rows, left), 0.1 * left), _width(node))
    preserved = {JoinKind.LEFT: left, JoinKind.RIGHT: right, JoinKind.FULL: max(left, right)}
    rows = max(rows, preserved.get(node.kind, 0.0))
    return Estimate(rows, _width(node))


def column_stats(node: LogicalNode, name: str) -> ColumnStats:
    """Statistics of field ``name`` of ``node``, traced down to a scan column (or empty)."""
    origin = column_origin(node, name)
    return origin[0].table.stats.column(origin[1]) if origin else ColumnStats()


def column_origin(node: LogicalNode, name: str) -> tuple[Scan, str] | None:
    """The scan and table column that field ``name`` of ``node`` is a plain copy of, if any."""
    while True:
        if isinstance(node, Scan):
            prefix = f"{node.alias}."
            return (node, name[len(prefix):]) if name.startswith(prefix) else None
        if isinstance(node, Project):
            expr = dict(zip(node.names, node.exprs, strict=True)).get(name)
            if expr is None or not hasattr(expr, "name") or expr.columns() != {expr.name}:
                return None
            name, node = expr.name, node.input
        elif isinstance(node, Join):
            node = node.left if name in node.left.field_names() else node.right
        elif isinstance(node, Filter | Sort | Limit | Aggregate):
            node = node.inputs[0]
        elif isinstance(node, Window) and name in node.input.field_names():
            node = node.input  # a window passes its input's columns through
        else:
            return None
