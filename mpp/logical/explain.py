"""EXPLAIN text of logical plans: one line per node, drawn as a tree, deterministic.

Example (the seed's "shrink the fact table early" query after optimization)::

    Project: date_trunc('day', a.time) AS time, _a0 AS count
    └─ Aggregate: group by [_g0]; count(*) AS _a0
       └─ Join: inner on a.session_id = b.session_id, strategy=broadcast (...)
          ├─ Scan: access_log AS a [time, session_id] filter=(time >= TIMESTAMP '2017-01-01 ...')
          └─ Scan: sessions AS b [session_id, min_time]

Expressions print as SQL-like text; literals print as typed SQL literals. Nothing in the text
depends on object identity or dict order, so golden files stay stable.
"""

from __future__ import annotations

from functools import singledispatch

import pyarrow as pa

from mpp.logical.expr import Call, Column, Expr, Literal, conjuncts, disjuncts
from mpp.logical.nodes import (
    Aggregate,
    Filter,
    Join,
    JoinStrategy,
    Limit,
    LogicalNode,
    LogicalPlan,
    Project,
    Replicate,
    Scan,
    Sort,
    Union,
    Values,
)
from mpp.logical.window import Window
from mpp.storage.base import ColumnPredicate

_INFIX = {"+", "-", "*", "/", "%", "=", "!=", "<", "<=", ">", ">=", "and", "or"}


def format_expr(expr: Expr, top: bool = True) -> str:
    """SQL-like text of a bound expression (no outer parentheses at the top level)."""
    if isinstance(expr, Column):
        return expr.name
    if isinstance(expr, Literal):
        return str(expr)
    assert isinstance(expr, Call)
    if expr.op in ("and", "or"):  # print a chain of ANDs (ORs) flat
        chain = conjuncts(expr) if expr.op == "and" else disjuncts(expr)
        parts = [format_expr(a, top=False) for a in chain]
        text = f" {expr.op.upper()} ".join(parts)
        return text if top else f"({text})"
    args = [format_expr(a, top=False) for a in expr.args]
    op = expr.op
    if op in _INFIX and len(args) == 2:
        text = f"{args[0]} {op.upper() if op.isalpha() else op} {args[1]}"
        return text if top else f"({text})"
    if op in ("is_null", "is_not_null"):
        text = f"{args[0]} IS {'NOT ' if op == 'is_not_null' else ''}NULL"
    elif op == "not":
        text = f"NOT {args[0]}"
    elif op == "neg":
        return f"-{args[0]}"
    elif op == "like":
        escape = expr.option("escape")
        text = f"{args[0]} LIKE {args[1]}" + (f" ESCAPE {Literal(escape, expr.dtype)}"
                                              if escape is not None else "")
    elif op in ("is_distinct_from", "is_not_distinct_from"):
        text = f"{args[0]} IS {'NOT ' if op == 'is_not_distinct_from' else ''}DISTINCT FROM {args[1]}"
    elif op == "in":
        text = f"{args[0]} IN ({', '.join(args[1:])})"
    elif op == "cast":
        return f"CAST({args[0]} AS {expr.dtype})"
    elif op == "case":
        args = [format_expr(a) for a in expr.args]  # CASE ... END delimits its parts
        pairs = args[:-1] if expr.option("else") else args
        whens = " ".join(f"WHEN {c} THEN {v}" for c, v in zip(pairs[0::2], pairs[1::2],
                                                              strict=True))
        return f"CASE {whens}" + (f" ELSE {args[-1]}" if expr.option("else") else "") + " END"
    elif op == "extract":
        return f"EXTRACT({expr.option('field').upper()} FROM {args[0]})"
    elif op == "substring":
        bounds = "".join(f", {v}" for _, v in expr.options)
        return f"substring({args[0]}{bounds})"
    elif op in ("date_trunc", "date_diff", "date_add"):
        return f"{op}('{expr.option('unit')}', {', '.join(args)})"
    else:
        return f"{op}({', '.join(args)})"
    return text if top else f"({text})"


def format_predicate(pred: ColumnPredicate, dtype: pa.DataType) -> str:
    """A pushed storage predicate as SQL-like text, e.g. ``date = DATE '2017-01-13'``."""
    if pred.op in ("is_null", "is_not_null"):
        return f"{pred.column} IS {'NOT ' if pred.op == 'is_not_null' else ''}NULL"
    if pred.op == "in":
        values = ", ".join(str(Literal(v, dtype)) for v in pred.value)
        return f"{pred.column} IN ({values})"
    return f"{pred.column} {pred.op} {Literal(pred.value, dtype)}"


def _named(expr: Expr, name: str) -> str:
    text = format_expr(expr)
    return text if text == name else f"{text} AS {name}"


@singledispatch
def node_line(node: LogicalNode) -> str:
    """The one-line description of ``node`` (without its inputs)."""
    return type(node).__name__


@node_line.register
def _scan(node: Scan) -> str:
    name = node.table.name if node.alias == node.table.name else f"{node.table.name} AS {node.alias}"
    version = node.table.snapshot_id
    text = f"Scan: {name}" + (f" FOR VERSION AS OF {version}" if version is not None else "")
    text += f" [{', '.join(node.columns)}]"
    if node.predicates:
        parts = [format_predicate(p, node.table.schema.field(p.column).type)
                 for p in node.predicates]
        text += f" filter=({' AND '.join(parts)})"
    return text + (f" fetch={node.fetch}" if node.fetch is not None else "")


@node_line.register
def _filter(node: Filter) -> str:
    return f"Filter: {format_expr(node.predicate)}"


@node_line.register
def _project(node: Project) -> str:
    return "Project: " + ", ".join(_named(e, n) for e, n in zip(node.exprs, node.names,
                                                                    strict=True))


@node_line.register
def _aggregate(node: Aggregate) -> str:
    parts = []
    if node.group_by:
        parts.append(f"group by [{', '.join(c.name for c in node.group_by)}]")
    if node.aggregates:
        parts.append(", ".join(f"{a} AS {n}" for a, n in zip(node.aggregates, node.agg_names,
                                                              strict=True)))
    text = "Aggregate: " + "; ".join(parts) if parts else "Aggregate: (one row)"
    if node.reason:  # a DISTINCT aggregation's strategy (rewrite_count_distinct)
        text += f", distinct={node.distinct_strategy.value} ({node.reason})"
    return text


@node_line.register
def _join(node: Join) -> str:
    keys = " AND ".join(f"{lk.name} = {rk.name}" for lk, rk in zip(node.left_keys,
                                                                  node.right_keys, strict=True))
    kind = node.kind.value + (" (null-aware, NOT IN)" if node.null_aware else "")
    if node.is_cross:
        text = "Join: cross"
    elif not keys:  # every pair is tested (a nested loop)
        text = f"Join: {kind}, no equality keys"
    else:
        text = f"Join: {kind} on {keys}"
    if node.residual is not None:
        text += f" residual ({format_expr(node.residual)})"
    text += f", strategy={node.strategy.value}"
    if node.reason and node.strategy is not JoinStrategy.AUTO:
        text += f" ({node.reason})"
    return text


@node_line.register
def _sort(node: Sort) -> str:
    text = "Sort: " + ", ".join(str(k) for k in node.keys)
    return text + (f" fetch={node.fetch}" if node.fetch is not None else "")


@node_line.register
def _limit(node: Limit) -> str:
    return f"Limit: {node.count}" + (f" offset {node.offset}" if node.offset else "")


@node_line.register
def _union(node: Union) -> str:
    return f"Union: {node.operation} of {len(node.branches)} inputs [{', '.join(node.names)}]"


@node_line.register
def _replicate(node: Replicate) -> str:
    return f"Replicate: each row {node.count.name} times"


@node_line.register
def _values(node: Values) -> str:
    if not node.schema:
        return f"Values: {len(node.rows)} row(s), no columns"
    rows = "; ".join("(" + ", ".join(format_expr(e) for e in row) + ")" for row in node.rows)
    return f"Values: [{', '.join(node.field_names())}] {rows}"


@node_line.register
def _window(node: Window) -> str:
    return "Window: " + node.describe()


def _tree(node: LogicalNode, lines: list[str], prefix: str, child_prefix: str) -> None:
    lines.append(prefix + node_line(node))
    inputs = node.inputs
    for i, child in enumerate(inputs):
        last = i == len(inputs) - 1
        _tree(child, lines, child_prefix + ("└─ " if last else "├─ "),
              child_prefix + ("   " if last else "│  "))


def explain_logical(plan: LogicalPlan | LogicalNode) -> str:
    """The plan as tree text. A plan whose output names differ from its root's field names
    starts with an ``Output:`` line listing the names the user sees."""
    root = plan.root if isinstance(plan, LogicalPlan) else plan
    lines: list[str] = []
    if isinstance(plan, LogicalPlan):
        lines += [f"Note: {note}" for note in plan.notes]
    if isinstance(plan, LogicalPlan) and plan.output_names != root.field_names():
        lines.append("Output: " + ", ".join(plan.output_names))
    _tree(root, lines, "", "")
    return "\n".join(lines)


def explain_trace(before: LogicalPlan, trace: list[tuple[str, LogicalPlan]]) -> str:
    """Verbose EXPLAIN of the optimizer: the bound plan, then the plan after each rule that
    changed it (``trace`` as filled by :func:`mpp.optimizer.optimize`), like toydb's
    ``[opt]>`` output."""
    parts = ["== bound ==", explain_logical(before)]
    previous = parts[-1]
    for name, plan in trace:
        text = explain_logical(plan)
        if text == previous:
            parts.append(f"== {name}: no change ==")
        else:
            parts += [f"== after {name} ==", text]
        previous = text
    return "\n".join(parts)
