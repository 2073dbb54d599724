"""The 22 TPC-H queries as the specification writes them, shipped with mpp as package data.

``q01.sql`` .. ``q22.sql`` are the specification's query texts with its validation
(default substitution) parameters, in the Trino dialect. They live in the package, not in the
test tree, so that ``mpp bench tpch``, the ``tpch`` scenario and the tests read the same texts
from a non-editable install too (pyproject.toml declares them as package data).
"""

from __future__ import annotations

from importlib import resources


def load_queries() -> dict[str, str]:
    """The 22 TPC-H queries by name (``q01`` .. ``q22``), in that order."""
    folder = resources.files(__name__)
    return {entry.name.removesuffix(".sql"): entry.read_text(encoding="utf-8")
            for entry in sorted(folder.iterdir(), key=lambda e: e.name)
            if entry.name.startswith("q") and entry.name.endswith(".sql")}


__all__ = ["load_queries"]
