"""Name resolution: which field of the plan a column reference in the SQL text means.

A FROM clause brings relations into scope (a table or subquery with its alias). Each relation
maps its visible column names to unique field names of the plan (``<alias>.<column>``).
Identifiers are matched case-insensitively, as Trino does for unquoted names.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
from sqlglot import exp

from mpp.catalog.iceberg import NAMESPACE
from mpp.errors import SqlError, UnknownColumnError, suggest
from mpp.logical.expr import Column
from mpp.sql.parse import locate

QUALIFIER = NAMESPACE
"""The one catalog, and its one schema (the Iceberg namespace), a name may be qualified with:
``mpp.access_log`` and ``mpp.mpp.access_log`` are ``access_log``."""


def check_qualifiers(node: exp.Table | exp.Column, sql: str,
                     error: type[SqlError] = SqlError, hint: str = "") -> None:
    """Reject a catalog or schema qualifier of a table or column name other than mpp's own
    (``hive.default.access_log`` would otherwise silently read mpp's ``access_log``)."""
    for key, kind in (("catalog", "catalog"), ("db", "schema")):
        part = node.args.get(key)
        if part is not None and part.name and part.name.lower() != QUALIFIER:
            qualified = ".".join(p.name for p in node.parts)
            raise error(f"unknown {kind} {part.name!r} in {qualified!r}: mpp has one catalog, "
                        f"{QUALIFIER!r}, with one schema, {QUALIFIER!r}{hint}",
                        *locate(part, sql))


@dataclass(frozen=True, slots=True)
class ScopeColumn:
    """A column visible in a scope: its SQL name and the plan field it stands for.

    ``hidden``: a column of a ``JOIN ... USING`` pair, replaced by the one USING column for bare
    references and ``*``; it stays reachable qualified (``a.k``).
    """

    name: str
    field: str
    dtype: pa.DataType
    hidden: bool = False


@dataclass(frozen=True, slots=True)
class Relation:
    """A table or subquery in FROM, under its alias (``""``: the columns of JOIN ... USING,
    which only bare names reach)."""

    alias: str
    columns: tuple[ScopeColumn, ...]


@dataclass(frozen=True, slots=True)
class Scope:
    """The relations a SELECT's expressions can refer to, in FROM order."""

    relations: tuple[Relation, ...]

    def __add__(self, other: Scope) -> Scope:
        return Scope(self.relations + other.relations)

    def relation(self, alias: str) -> Relation | None:
        """The relation called ``alias`` (case-insensitive), if any."""
        for rel in self.relations:
            if rel.alias and rel.alias.lower() == alias.lower():
                return rel
        return None

    def candidates(self) -> list[str]:
        """Every name a column reference could use here (qualified and bare)."""
        names: list[str] = []
        for rel in self.relations:
            for c in rel.columns:
                names += [f"{rel.alias}.{c.name}"] if rel.alias else []
                names += [] if c.hidden else [c.name]
        return names

    def resolve(self, name: str, table: str | None, where: tuple[int, int]) -> Column:
        """The field ``[table.]name`` refers to; errors name the candidates."""
        shown = f"{table}.{name}" if table else name
        if table:
            rel = self.relation(table)
            if rel is None:
                aliases = [r.alias for r in self.relations if r.alias]
                raise UnknownColumnError(
                    f"column {shown!r}: no table or alias {table!r} in scope "
                    f"(tables in scope: {', '.join(aliases)}).{suggest(table, aliases)}", *where)
            rels: tuple[Relation, ...] = (rel,)
        else:
            rels = self.relations
        hits = [c for r in rels for c in r.columns
                if c.name.lower() == name.lower() and (table or not c.hidden)]
        if not hits:
            names = self.candidates()
            hint = suggest(shown, names) or suggest(name, names)
            raise UnknownColumnError(
                f"unknown column {shown!r}.{hint} Columns in scope: "
                f"{', '.join(sorted({n for n in names if '.' in n}))}", *where)
        if len(hits) > 1:
            fields = ", ".join(h.field for h in hits)
            raise SqlError(f"column reference {shown!r} is ambiguous (it could be {fields})",
                           *where)
        return Column(hits[0].field, hits[0].dtype)
