"""mpp.sql: Trino SQL text -> bound :class:`~mpp.logical.nodes.LogicalPlan`.

``parse`` turns text into a sqlglot tree (syntax errors carry line and column); ``bind``
resolves tables and columns against a catalog and builds the logical plan. See
docs/architecture/sql.md for the supported subset and the binder's conventions.
"""

from __future__ import annotations

from typing import Protocol

from mpp.catalog.model import TableInfo


class CatalogLike(Protocol):
    """What binding needs from a catalog (``mpp.catalog.Catalog`` and test fakes)."""

    def table(self, name: str) -> TableInfo:
        """The table called ``name``; raises UnknownTableError if there is none."""
        ...

    def tables(self) -> list[str]:
        """Names of all tables."""
        ...


from mpp.sql.bind import bind  # noqa: E402
from mpp.sql.parse import parse  # noqa: E402

__all__ = ["CatalogLike", "bind", "parse"]
