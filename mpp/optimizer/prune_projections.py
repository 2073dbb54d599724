"""Read and carry only the columns a query uses.

Walks the plan top-down with the set of field names the parent needs: Scans read only those
columns (a columnar format then skips the other column chunks entirely), Projects drop unused
outputs (and disappear when they become an identity; two Projects in a row, as a subquery's
renaming leaves, merge into one), Aggregates drop unused aggregate calls.
Columns used only by predicates already pushed into a scan are not read into the task: storage
applies those predicates itself.

A node that must still produce rows but whose parent needs none of its columns (``count(*)``)
keeps one column, so every partition still carries its row count: an identity partition
column when the table has one (filled in from the catalog, so no column data is read), else
its narrowest.

Example::

    Before:                                         After:
    Project: access_log.date AS date, _a0 AS _col1  Project: access_log.date AS date, ...
    └─ Aggregate: group by [access_log.date]; ...   └─ Aggregate: group by [access_log.date]; ...
       └─ Scan: access_log [time, date, user_id,       └─ Scan: access_log [date]
          session_id, url_id, status, bytes]

>>> from mpp.logical.explain import explain_logical
>>> from mpp.config import PlannerContext, Settings
>>> from mpp.sql import bind
>>> from tests.fake_catalog import FakeCatalog
>>> plan = bind("SELECT date, count(*) FROM access_log GROUP BY date", FakeCatalog())
>>> print(explain_logical(prune_projections(plan.root, PlannerContext(Settings()))))
Project: access_log.date AS date, _a0 AS _col1
└─ Aggregate: group by [access_log.date]; count(*) AS _a0
   └─ Scan: access_log [date]

Used configurations:
    optimizer.prune_projections (bool): switch off to read every column of every table.
"""

from __future__ import annotations

import dataclasses
from functools import singledispatch

import pyarrow as pa

from mpp.config import PlannerContext
from mpp.logical.expr import Column, Literal, replace_columns
from mpp.logical.nodes import (
    Aggregate,
    Filter,
    Join,
    LogicalNode,
    Project,
    Replicate,
    Scan,
    Sort,
    Union,
    Values,
)
from mpp.logical.window import Window
from mpp.optimizer.rule import with_inputs


def prune_projections(plan: LogicalNode, ctx: PlannerContext) -> LogicalNode:
    """Narrow scans and projections to the columns the plan's output depends on."""
    return _prune(plan, set(plan.field_names()))


def _width(t: pa.DataType) -> int:
    try:
        return int(t.bit_width)
    except ValueError:  # variable width (strings): the widest choice
        return 1 << 20


@singledispatch
def _prune(node: LogicalNode, required: set[str]) -> LogicalNode:
    """Default (Limit, Values, unknown nodes with one input): the input must provide what the
    parent needs, under the same names.

    A node with several inputs must say how its columns map to its inputs' (a union's are by
    position, not by name): an unknown one is an error, not a silent guess.
    """
    if len(node.inputs) > 1:
        raise NotImplementedError(f"prune_projections: no rule for {type(node).__name__}, "
                                  "a node with several inputs")
    return with_inputs(node, tuple(_prune(c, required & set(c.field_names()))
                                   for c in node.inputs))


@_prune.register
def _values(node: Values, required: set[str]) -> LogicalNode:
    # Like a scan, keep one column when none is needed, so the rows still travel.
    keep = [i for i, f in enumerate(node.schema) if f.name in required] or [0][:len(node.schema)]
    if len(keep) == len(node.schema):
        return node
    return Values(tuple(tuple(row[i] for i in keep) for row in node.rows),
                  tuple(node.schema[i] for i in keep))


@_prune.register
def _replicate(node: Replicate, required: set[str]) -> LogicalNode:
    return dataclasses.replace(node, input=_prune(node.input, required | {node.count.name}))


@_prune.register
def _union(node: Union, required: set[str]) -> LogicalNode:
    # Inputs match by position: keep the same positions of every input, in the same order.
    keep = [i for i, name in enumerate(node.names) if name in required] or [0]
    branches = []
    for branch in node.branches:
        names = [branch.schema[i].name for i in keep]
        pruned = _prune(branch, set(names))
        if pruned.field_names() != tuple(names):  # e.g. a Scan that keeps its own order
            fields = {f.name: f for f in pruned.schema}
            pruned = Project(pruned, tuple(Column(n, fields[n].dtype) for n in names),
                             tuple(names))
        branches.append(pruned)
    return Union(tuple(branches), tuple(node.names[i] for i in keep), node.operation)


@_prune.register
def _scan(node: Scan, required: set[str]) -> LogicalNode:
    columns = tuple(c for c in node.columns if f"{node.alias}.{c}" in required)
    if not columns:  # keep one so the scan still yields its row count: an identity
        # partition column if there is one (the catalog fills it in: no column data is read),
        # else the narrowest
        free = [c for c in node.table.partition_columns if c in node.columns]
        columns = (free[0],) if free else (
            min(node.columns, key=lambda c: _width(node.table.schema.field(c).type)),)
    return dataclasses.replace(node, columns=columns)


@_prune.register
def _filter(node: Filter, required: set[str]) -> LogicalNode:
    return dataclasses.replace(node, input=_prune(node.input,
                                                  required | node.predicate.columns()))


@_prune.register
def _project(node: Project, required: set[str]) -> LogicalNode:
    keep = [(e, n) for e, n in zip(node.exprs, node.names, strict=True) if n in required]
    if not keep:
        # Nothing above reads a value, only the row count: keep one column as a typed NULL.
        # Trino never evaluates an unused expression, so one that would fail (CAST(3000000000
        # AS INTEGER)) must not run here either.
        first = node.exprs[0]
        safe = first if isinstance(first, Column | Literal) else Literal(None, first.dtype)
        keep = [(safe, node.names[0])]
    child = _prune(node.input, set().union(*(e.columns() for e, _ in keep)))
    if isinstance(child, Project):  # two Projects in a row (a subquery's renaming): merge
        mapping = dict(zip(child.names, child.exprs, strict=True))
        keep = [(replace_columns(e, mapping), n) for e, n in keep]
        child = child.input
    names = tuple(n for _, n in keep)
    identity = all(isinstance(e, Column) and e.name == n for e, n in keep)
    if identity and names == child.field_names():
        return child
    return Project(child, tuple(e for e, _ in keep), names)


@_prune.register
def _aggregate(node: Aggregate, required: set[str]) -> LogicalNode:
    pairs = [(a, n) for a, n in zip(node.aggregates, node.agg_names, strict=True)
             if n in required]
    if not pairs and not node.group_by and node.aggregates:
        pairs = [(node.aggregates[0], node.agg_names[0])]  # a global aggregate keeps one
    needed = {c.name for c in node.group_by} | {c.name for a, _ in pairs for c in a.inputs()}
    return dataclasses.replace(node, input=_prune(node.input, needed),
                               aggregates=tuple(a for a, _ in pairs),
                               agg_names=tuple(n for _, n in pairs))


@_prune.register
def _join(node: Join, required: set[str]) -> LogicalNode:
    needed = set(required)
    needed |= {c.name for c in node.left_keys + node.right_keys}
    if node.residual is not None:
        needed |= node.residual.columns()
    left = _prune(node.left, needed & set(node.left.field_names()))
    right_needed = needed & set(node.right.field_names())
    if not right_needed and node.kind.filters_left:  # EXISTS: rows, of at least one column
        right_needed = {node.right.field_names()[0]}
    right = _prune(node.right, right_needed)
    return dataclasses.replace(node, left=left, right=right)


@_prune.register
def _sort(node: Sort, required: set[str]) -> LogicalNode:
    needed = required | {k.column.name for k in node.keys}
    return dataclasses.replace(node, input=_prune(node.input, needed))


@_prune.register
def _window(node: Window, required: set[str]) -> LogicalNode:
    # Calls nobody reads go; a Window left without calls goes too (it adds nothing else).
    # (A top-N's ranking call stays: it says which rows may go early.)
    ranked = node.names[node.topn.call] if node.topn is not None else None
    pairs = [(c, n) for c, n in zip(node.calls, node.names, strict=True)
             if n in required or n == ranked]
    inputs = set(node.input.field_names())
    if not pairs:
        return _prune(node.input, required & inputs)
    needed = (required & inputs) | node.key_columns() | set().union(
        *(c.columns() for c, _ in pairs))
    names = tuple(n for _, n in pairs)
    topn = (dataclasses.replace(node.topn, call=names.index(ranked))
            if node.topn is not None and ranked is not None else None)
    return dataclasses.replace(node, input=_prune(node.input, needed),
                               calls=tuple(c for c, _ in pairs), names=names, topn=topn)
