"""What the generator knows about the query block it is writing: relations and their columns.

Kept apart from the productions so that FROM items (:mod:`mpp.difftest.sources`), select-list
shapes (:mod:`mpp.difftest.shapes`) and the blocks themselves (:mod:`mpp.difftest.queries`)
share them without importing each other: a FROM item that is a subquery asks the state for a
nested block (:meth:`BlockState.nested`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlglot import exp

from mpp.difftest.data import SUM_ONLY
from mpp.difftest.grammar import Generator, Typed

Outputs = tuple[tuple[str, str], ...]  # (name, SQL type) of each output column
LARGE_TABLES = ("fact",)


@dataclass(frozen=True, slots=True)
class Relation:
    """A FROM item in scope: its alias, its columns (name, SQL type) and whether ``alias.*``
    would also expose columns the generator may not use (gated ones)."""

    alias: str
    columns: Outputs
    hidden: bool = False

    def typed(self) -> list[Typed]:
        """The columns as qualified column expressions."""
        return [Typed(exp.column(c, table=self.alias), t, c in SUM_ONLY)
                for c, t in self.columns]


@dataclass(frozen=True, slots=True)
class Block:
    """A generated query (a SELECT or a set operation) and its output columns."""

    select: exp.Query
    outputs: Outputs


MakeBlock = Callable[[Generator, int, Mapping[str, Outputs], bool], Block]


@dataclass
class BlockState:
    """What the block being generated has so far.

    ``make`` writes a nested block (``make(gen, depth, ctes, top)``), for subqueries and CTEs.
    """

    depth: int
    top: bool
    ctes: dict[str, Outputs]
    make: MakeBlock
    relations: list[Relation] = field(default_factory=list)
    large_used: bool = False

    def columns(self) -> tuple[Typed, ...]:
        """Every column of every relation in scope."""
        return tuple(t for r in self.relations for t in r.typed())

    def nested(self, gen: Generator) -> Block:
        """A block one level deeper, seeing this block's CTEs."""
        return self.make(gen, self.depth - 1, self.ctes, False)

    def add(self, relation: Relation) -> Relation:
        """Bring ``relation`` into scope."""
        self.relations.append(relation)
        return relation
