"""The Window logical node: window functions over partitions of rows.

``Window`` adds one column per :class:`WindowCall` to its input's rows, without changing which
rows there are. Every call of one node shares the node's PARTITION BY and ORDER BY (the binder
makes one node per distinct pair, stacked: a second node with the same PARTITION BY needs no
second exchange, and one with the same ORDER BY too shares the sort). Each call has its own
frame.

Semantics are Trino's:

* rows with equal PARTITION BY values (NULLs equal) form a partition; no PARTITION BY: one;
* ORDER BY orders each partition (NULLS LAST unless written, whatever the direction); rows equal
  on every ORDER BY key are *peers*;
* the default frame is ``RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW`` (with ORDER BY:
  up to the last peer of the current row; without: the whole partition);
* ranking functions (row_number, rank, dense_rank, ntile) and lag/lead ignore the frame.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pyarrow as pa

from mpp.logical.expr import Column, Literal, SortKey
from mpp.logical.nodes import Field, LogicalNode


class WindowFunc(enum.Enum):
    """The window functions of the SQL subset."""

    ROW_NUMBER = "row_number"
    RANK = "rank"
    DENSE_RANK = "dense_rank"
    NTILE = "ntile"
    LAG = "lag"
    LEAD = "lead"
    FIRST_VALUE = "first_value"
    LAST_VALUE = "last_value"
    COUNT_STAR = "count_star"
    COUNT = "count"
    SUM = "sum"
    AVG = "avg"
    MIN = "min"
    MAX = "max"

    @property
    def uses_frame(self) -> bool:
        """True for the functions computed over the frame (aggregates, first/last_value)."""
        return self not in _FRAMELESS


_FRAMELESS = {WindowFunc.ROW_NUMBER, WindowFunc.RANK, WindowFunc.DENSE_RANK, WindowFunc.NTILE,
              WindowFunc.LAG, WindowFunc.LEAD}
RANKING = (WindowFunc.ROW_NUMBER, WindowFunc.RANK, WindowFunc.DENSE_RANK)


class BoundKind(enum.Enum):
    """Where a frame bound lies relative to the current row."""

    UNBOUNDED_PRECEDING = "UNBOUNDED PRECEDING"
    PRECEDING = "PRECEDING"
    CURRENT_ROW = "CURRENT ROW"
    FOLLOWING = "FOLLOWING"
    UNBOUNDED_FOLLOWING = "UNBOUNDED FOLLOWING"


@dataclass(frozen=True, slots=True)
class FrameBound:
    """One end of a frame: ``offset`` rows (ROWS) or key distance (RANGE) for n PRECEDING /
    n FOLLOWING, else None."""

    kind: BoundKind
    offset: int | float | None = None

    def __str__(self) -> str:
        return f"{self.offset} {self.kind.value}" if self.offset is not None else self.kind.value


@dataclass(frozen=True, slots=True)
class Frame:
    """A ROWS or RANGE frame from ``start`` to ``end`` (both inclusive)."""

    rows: bool
    start: FrameBound
    end: FrameBound

    def __str__(self) -> str:
        return f"{'ROWS' if self.rows else 'RANGE'} BETWEEN {self.start} AND {self.end}"


DEFAULT_FRAME = Frame(False, FrameBound(BoundKind.UNBOUNDED_PRECEDING),
                      FrameBound(BoundKind.CURRENT_ROW))


@dataclass(frozen=True, slots=True)
class WindowCall:
    """One window function call: ``func(arg[, offset[, default]])`` over ``frame``.

    ``arg`` is a Column of the Window's input (None for row_number, rank, dense_rank, ntile and
    count(*)); ``offset`` is lag/lead's row offset or ntile's bucket count; ``default`` is
    lag/lead's value outside the partition (a Column of the input, or None for NULL).
    """

    func: WindowFunc
    arg: Column | None
    dtype: pa.DataType
    frame: Frame = DEFAULT_FRAME
    offset: int = 1
    default: Column | Literal | None = None

    def columns(self) -> frozenset[str]:
        """Input columns the call reads."""
        cols = {c.name for c in (self.arg, self.default) if isinstance(c, Column)}
        return frozenset(cols)

    def __str__(self) -> str:
        name = "count" if self.func is WindowFunc.COUNT_STAR else self.func.value
        args: list[str] = ["*"] if self.func is WindowFunc.COUNT_STAR else []
        if self.arg is not None:
            args.append(str(self.arg))
        if self.func in (WindowFunc.LAG, WindowFunc.LEAD, WindowFunc.NTILE):
            args.append(str(self.offset))
        if self.default is not None:
            args.append(str(self.default))
        text = f"{name}({', '.join(args)})"
        return text + (f" {self.frame}" if self.func.uses_frame and self.frame != DEFAULT_FRAME
                       else "")


@dataclass(frozen=True, slots=True)
class TopN:
    """Only rows whose ranking call ``calls[call]`` is at most ``n`` are needed above the
    Window (set by push_down_topn_per_group from ``WHERE rn <= n``)."""

    call: int
    n: int


@dataclass(frozen=True, slots=True)
class Window(LogicalNode):
    """Computes ``calls`` over partitions of ``partition_by`` ordered by ``order_by``.

    Output: every input field, then one field per call, named ``names``. With ``topn``, the
    rows ranked beyond it may be dropped early (each task keeps its own best ``n`` rows per
    partition before the exchange); the Filter above still decides which rows are output.
    """

    input: LogicalNode
    partition_by: tuple[Column, ...]
    order_by: tuple[SortKey, ...]
    calls: tuple[WindowCall, ...]
    names: tuple[str, ...]
    topn: TopN | None = None

    @property
    def inputs(self) -> tuple[LogicalNode, ...]:
        return (self.input,)

    @property
    def schema(self) -> tuple[Field, ...]:  # type: ignore[override]
        return self.input.schema + tuple(
            Field(n, c.dtype) for n, c in zip(self.names, self.calls, strict=True))

    def key_columns(self) -> frozenset[str]:
        """Input columns the partitioning and ordering read."""
        return frozenset(c.name for c in self.partition_by) | frozenset(
            k.column.name for k in self.order_by)

    def describe(self) -> str:
        """The node's EXPLAIN text after its name (shared by logical and physical EXPLAIN)."""
        parts = []
        if self.partition_by:
            parts.append("partition by " + ", ".join(c.name for c in self.partition_by))
        if self.order_by:
            parts.append("order by " + ", ".join(str(k) for k in self.order_by))
        calls = ", ".join(f"{c} AS {n}" for c, n in zip(self.calls, self.names, strict=True))
        text = "; ".join([*parts, calls])
        if self.topn is not None:
            text += f"; top-N: {self.names[self.topn.call]} <= {self.topn.n} per partition"
        return text
