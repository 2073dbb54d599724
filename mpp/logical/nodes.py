"""Logical plan nodes: what a query computes, not how or where.

Nodes are frozen dataclasses; rules change them with ``dataclasses.replace``. Every node has a
``schema``: its output fields, with names unique within the node. The root of a plan is wrapped
in :class:`LogicalPlan`, which also carries the user-visible output column names (which may
repeat, as ``SELECT x, x`` does).

Conventions the binder guarantees, so optimizer and physical planner stay simple:

* ``Aggregate.group_by``, aggregate arguments, join keys and sort keys are :class:`Column` s of
  the node's input (the binder inserts a ``Project`` below to compute expressions).
* Scan output fields are named ``<alias>.<column>``; ``Scan.columns`` lists storage names.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from mpp.catalog.model import TableInfo
from mpp.logical.expr import AggregateCall, Column, Expr, SortKey
from mpp.storage.base import ColumnPredicate


@dataclass(frozen=True, slots=True)
class Field:
    """One output column of a node."""

    name: str
    dtype: pa.DataType


class JoinKind(enum.Enum):
    """Join types of the SQL subset. A CROSS JOIN is an INNER join without keys or residual."""

    INNER = "inner"
    LEFT = "left"  # left outer: unmatched left rows kept, right fields NULL
    RIGHT = "right"  # right outer: unmatched right rows kept, left fields NULL
    FULL = "full"  # full outer: unmatched rows of both sides kept
    # Left semi / anti join (IN, EXISTS / NOT IN, NOT EXISTS): only the left fields; each left
    # row at most once, kept when some right row matches (semi) or none does (anti).
    SEMI = "semi"
    ANTI = "anti"

    @property
    def filters_left(self) -> bool:
        """A semi or anti join: outputs only left rows and fields, each row at most once."""
        return self in (JoinKind.SEMI, JoinKind.ANTI)


class JoinStrategy(enum.Enum):
    """How a join's inputs are distributed. AUTO is resolved by choose_join_strategy."""

    AUTO = "auto"
    BROADCAST = "broadcast"  # right side copied to every task of the left side
    PARTITIONED = "partitioned"  # both sides hash-exchanged on the join keys
    # Both sides gathered into one task: a FULL join without equality keys (nothing to hash
    # on, and a broadcast cannot emit the unmatched build rows once).
    SINGLE = "single"


class DistinctStrategy(enum.Enum):
    """How an Aggregate's DISTINCT aggregates are distributed (``aggregate.distinct_strategy``).

    AUTOMATIC is resolved by the rewrite_count_distinct rule from catalog statistics.
    """

    AUTOMATIC = "automatic"
    SINGLE_STEP = "single_step"  # raw (group, x) rows exchanged by the group key
    PRE_AGGREGATE = "pre_aggregate"  # distinct (group, x) per fragment, then exchanged by group
    REWRITE = "rewrite"  # Aggregate[g; count(x)] <- Aggregate[g, x]: exchanged by (group, x)


class LogicalNode:
    """Base class of logical nodes."""

    schema: tuple[Field, ...]

    @property
    def inputs(self) -> tuple[LogicalNode, ...]:
        """Child nodes, left to right."""
        return ()

    def walk(self) -> Iterator[LogicalNode]:
        """This node and all descendants, pre-order."""
        yield self
        for child in self.inputs:
            yield from child.walk()

    def field_names(self) -> tuple[str, ...]:
        """Names of the output fields."""
        return tuple(f.name for f in self.schema)

    def with_inputs(self, inputs: tuple[LogicalNode, ...]) -> LogicalNode:
        """A copy with :attr:`inputs` replaced (same order). Nodes with one input hold it in
        ``input``, a join in ``left``/``right``; a node with a tuple of inputs overrides this."""
        if inputs == self.inputs:
            return self
        names = [f.name for f in dataclasses.fields(self)  # type: ignore[arg-type]
                 if f.name in ("input", "left", "right")]
        return dataclasses.replace(self, **dict(zip(names, inputs, strict=True)))  # type: ignore[type-var]


@dataclass(frozen=True, slots=True)
class Scan(LogicalNode):
    """Reads ``columns`` of a catalog table; rows must pass every pushed ``predicates`` conjunct.

    ``fetch`` (set by push_down_limit under a LIMIT without ORDER BY): any ``fetch`` rows that
    pass the predicates are enough, so reading may stop there. None: every row.
    """

    table: TableInfo
    alias: str
    columns: tuple[str, ...]
    predicates: tuple[ColumnPredicate, ...] = ()
    fetch: int | None = None

    @property
    def schema(self) -> tuple[Field, ...]:  # type: ignore[override]
        return tuple(
            Field(f"{self.alias}.{c}", self.table.schema.field(c).type) for c in self.columns
        )


@dataclass(frozen=True, slots=True)
class Filter(LogicalNode):
    """Discards rows for which ``predicate`` is not true."""

    input: LogicalNode
    predicate: Expr

    @property
    def inputs(self) -> tuple[LogicalNode, ...]:
        return (self.input,)

    @property
    def schema(self) -> tuple[Field, ...]:  # type: ignore[override]
        return self.input.schema


@dataclass(frozen=True, slots=True)
class Project(LogicalNode):
    """Computes ``exprs`` per row, naming the results ``names`` (unique)."""

    input: LogicalNode
    exprs: tuple[Expr, ...]
    names: tuple[str, ...]

    @property
    def inputs(self) -> tuple[LogicalNode, ...]:
        return (self.input,)

    @property
    def schema(self) -> tuple[Field, ...]:  # type: ignore[override]
        return tuple(Field(n, e.dtype) for n, e in zip(self.names, self.exprs, strict=True))


@dataclass(frozen=True, slots=True)
class Aggregate(LogicalNode):
    """Groups rows by ``group_by`` and computes ``aggregates`` per group.

    Output: the group columns (named as in the input), then ``agg_names``. With no aggregates
    this is SELECT DISTINCT over the group columns; with no group columns, one global row.
    """

    input: LogicalNode
    group_by: tuple[Column, ...]
    aggregates: tuple[AggregateCall, ...]
    agg_names: tuple[str, ...]
    # Only DISTINCT aggregates read these; ``reason`` says why (EXPLAIN prints it).
    distinct_strategy: DistinctStrategy = DistinctStrategy.AUTOMATIC
    reason: str = ""
    # False: exchange combiners pass this Aggregate's partial rows on without merging them
    # (the optimizer's estimate says merging would shrink little).
    merge_partials: bool = True

    @property
    def inputs(self) -> tuple[LogicalNode, ...]:
        return (self.input,)

    @property
    def schema(self) -> tuple[Field, ...]:  # type: ignore[override]
        groups = tuple(Field(c.name, c.dtype) for c in self.group_by)
        aggs = tuple(
            Field(n, a.dtype) for n, a in zip(self.agg_names, self.aggregates, strict=True)
        )
        return groups + aggs


@dataclass(frozen=True, slots=True)
class Join(LogicalNode):
    """Equi-join on ``left_keys[i] = right_keys[i]``, plus an optional ``residual`` predicate.

    A pair of rows matches when every key pair is equal (NULL never equals) and the residual is
    true; an outer join keeps the rows of its preserved side(s) that match nothing, with NULLs
    for the other side. No keys: every pair is tested by the residual (a nested loop); no keys
    and no residual is a cross join.

    Output: the left fields, then the right fields (names are unique across both sides).
    """

    left: LogicalNode
    right: LogicalNode
    kind: JoinKind
    left_keys: tuple[Column, ...]
    right_keys: tuple[Column, ...]
    residual: Expr | None = None
    strategy: JoinStrategy = JoinStrategy.AUTO
    reason: str = ""  # why the strategy was chosen (shown by EXPLAIN)
    # An ANTI join for ``x NOT IN (subquery)`` (one key): Trino's NULL semantics. A left row
    # is kept only if the right side is empty, or holds no NULL key and the left key is
    # non-NULL and matches nothing.
    null_aware: bool = False

    @property
    def inputs(self) -> tuple[LogicalNode, ...]:
        return (self.left, self.right)

    @property
    def schema(self) -> tuple[Field, ...]:  # type: ignore[override]
        if self.kind.filters_left:
            return self.left.schema
        return self.left.schema + self.right.schema

    @property
    def is_cross(self) -> bool:
        """An inner join without keys or residual: every pair of rows (CROSS JOIN)."""
        return self.kind is JoinKind.INNER and not self.left_keys and self.residual is None

    def required_strategy(self) -> tuple[JoinStrategy, str] | None:
        """The strategy this join's shape forces, and why (None: statistics may choose).

        Without keys there is nothing to hash on: an INNER or LEFT join broadcasts its right
        side (a nested loop per task, as Trino replicates a cross join's build side); a RIGHT
        or FULL join runs in one task. A RIGHT or FULL join with keys is partitioned: a
        broadcast would emit each unmatched right row once per task (Trino's
        DetermineJoinDistributionType partitions them too).
        """
        kind = self.kind.value.upper()
        if self.null_aware:
            return JoinStrategy.BROADCAST, ("NOT IN: a null-aware anti join needs the whole "
                                            "subquery result in every task (one NULL in it "
                                            "makes NOT IN NULL for every row)")
        if not self.left_keys:
            if self.kind in (JoinKind.INNER, JoinKind.LEFT, JoinKind.SEMI, JoinKind.ANTI):
                what = "cross join" if self.is_cross else f"{kind} join without equality keys"
                return JoinStrategy.BROADCAST, (f"{what}: nothing to partition on, the right "
                                                "side is broadcast to every left task")
            return JoinStrategy.SINGLE, (f"{kind} join without equality keys: both sides in one "
                                         "task (nothing to partition on, and a broadcast would "
                                         "repeat the unmatched right rows)")
        if self.kind in (JoinKind.RIGHT, JoinKind.FULL):
            return JoinStrategy.PARTITIONED, (f"{kind} join: partitioned, as a broadcast would "
                                              "repeat the unmatched right rows in every task")
        return None


@dataclass(frozen=True, slots=True)
class Sort(LogicalNode):
    """Orders rows by ``keys``; with ``fetch``, keeps only the first ``fetch`` (a top-N, set by
    push_down_limit from ORDER BY ... LIMIT)."""

    input: LogicalNode
    keys: tuple[SortKey, ...]
    fetch: int | None = None

    @property
    def inputs(self) -> tuple[LogicalNode, ...]:
        return (self.input,)

    @property
    def schema(self) -> tuple[Field, ...]:  # type: ignore[override]
        return self.input.schema


@dataclass(frozen=True, slots=True)
class Limit(LogicalNode):
    """Keeps ``count`` rows after skipping ``offset``."""

    input: LogicalNode
    count: int
    offset: int = 0

    @property
    def inputs(self) -> tuple[LogicalNode, ...]:
        return (self.input,)

    @property
    def schema(self) -> tuple[Field, ...]:  # type: ignore[override]
        return self.input.schema


@dataclass(frozen=True, slots=True)
class Union(LogicalNode):
    """UNION ALL: the rows of every input, inputs matched by column position.

    Every input has the same column count and types (the binder casts each branch to the
    common super type); the inputs keep their own field names, ``names`` are the union's.
    UNION (distinct), INTERSECT and EXCEPT are built on it (see ``mpp.sql.setops``).
    """

    branches: tuple[LogicalNode, ...]
    names: tuple[str, ...]
    operation: str = "UNION ALL"  # the SQL it implements (INTERSECT's tagged branches, ...)

    @property
    def inputs(self) -> tuple[LogicalNode, ...]:
        return self.branches

    def with_inputs(self, inputs: tuple[LogicalNode, ...]) -> LogicalNode:
        return self if inputs == self.branches else dataclasses.replace(self, branches=inputs)

    @property
    def schema(self) -> tuple[Field, ...]:  # type: ignore[override]
        first = self.branches[0].schema
        return tuple(Field(n, f.dtype) for n, f in zip(self.names, first, strict=True))


@dataclass(frozen=True, slots=True)
class Replicate(LogicalNode):
    """Repeats every row ``count`` times (a row whose count is 0, negative or NULL vanishes).

    INTERSECT ALL and EXCEPT ALL end in it: a row value kept min(m, n) or m - n times.
    """

    input: LogicalNode
    count: Column

    @property
    def inputs(self) -> tuple[LogicalNode, ...]:
        return (self.input,)

    @property
    def schema(self) -> tuple[Field, ...]:  # type: ignore[override]
        return self.input.schema


@dataclass(frozen=True, slots=True)
class Values(LogicalNode):
    """Rows written in the query: ``VALUES (..), (..)``, or one empty row under ``SELECT 1``.

    ``rows`` hold constant expressions already of the column types in ``schema``.
    """

    rows: tuple[tuple[Expr, ...], ...]
    fields: tuple[Field, ...]

    @property
    def schema(self) -> tuple[Field, ...]:  # type: ignore[override]
        return self.fields


@dataclass(frozen=True, slots=True)
class LogicalPlan:
    """A bound query: the root node and the names its result columns carry for the user."""

    root: LogicalNode
    output_names: tuple[str, ...]
    # What the plan's shape does not show by itself, for EXPLAIN (a WITH query used twice is
    # planned twice: "WITH c: used 2 times, inlined at each use").
    notes: tuple[str, ...] = ()


def key_columns(node: LogicalNode, exprs: list[Expr],
                fresh: Callable[[], str]) -> tuple[LogicalNode, tuple[Column, ...]]:
    """Make every join key a Column of ``node``: computed keys (named by ``fresh``) get a
    Project below the join that passes every field through."""
    if all(isinstance(e, Column) for e in exprs):
        return node, tuple(e for e in exprs)  # type: ignore[misc]
    passthrough = tuple(Column(f.name, f.dtype) for f in node.schema)
    keys: list[Column] = []
    extra: list[tuple[Expr, str]] = []
    for e in exprs:
        if isinstance(e, Column):
            keys.append(e)
        else:
            extra.append((e, fresh()))
            keys.append(Column(extra[-1][1], e.dtype))
    return (Project(node, passthrough + tuple(e for e, _ in extra),
                    tuple(c.name for c in passthrough) + tuple(n for _, n in extra)),
            tuple(keys))
