"""Errors mpp raises on bad input.

Every error a user can cause derives from :class:`MppError`, so the CLI can print one
clear line (never a deep library traceback). Each error names what is wrong: the file,
the field or knob, or the SQL line and column.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MppError(Exception):
    """Base class of every user-facing mpp error."""


class SqlError(MppError):
    """Bad or unsupported SQL, with the 1-based line and column of the offending construct."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        self.line = line
        self.column = column
        where = f" (line {line}, column {column})" if line is not None else ""
        super().__init__(f"{message}{where}")


class UnknownTableError(SqlError):
    """A query or command named a table the catalog does not hold."""


class UnknownColumnError(SqlError):
    """A query named a column no table in scope has."""


class CatalogError(MppError):
    """The metastore could not be opened, read or committed to."""


class DamagedMetadataError(CatalogError):
    """A table's Iceberg metadata (metadata.json, manifest list or manifest) cannot be read or
    contradicts itself or mpp's stored statistics. The message names the table and the file;
    other tables stay readable."""

    def __init__(self, table: str, path: str, problem: str):
        self.table = table
        self.path = path
        super().__init__(f"table {table!r}: its metadata is damaged: {path}: {problem}")


class StorageError(MppError):
    """A data file is missing, truncated, corrupt or unwritable. The message names the file."""

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class SettingError(MppError):
    """An unknown setting name or a value of the wrong type."""


class ClusterError(MppError):
    """No cluster to run on: a malformed scheduler address, an unreachable scheduler (or
    something that is not one), or a nonsensical local cluster shape; the base of
    :class:`ClusterFaultError`, the cluster failing a query that runs."""


class ClusterFaultError(ClusterError):
    """The cluster failed a running query: the scheduler was lost, a task killed its worker
    again and again (out of memory), or no worker could run tasks (none left, all paused) for
    the stall timeout. The message names the query and the stage (and partition) concerned;
    ``query_id`` and ``task`` (``stage1-scan partition 3``, if one task is to blame) hold them."""

    def __init__(self, message: str, *, query_id: str | None = None, task: str | None = None):
        self.query_id = query_id
        self.task = task
        super().__init__(message)


class KnobError(MppError):
    """A nonsensical data-generation or scenario knob (negative rows, share > 1, ...)."""


class ScenarioError(MppError):
    """An invalid scenario file. The message names the file and, per problem, the key path
    (e.g. ``variants[1].settings.join.strategy``) and a hint; ``problems`` lists them."""

    def __init__(self, message: str, *, file: str | None = None,
                 problems: tuple[str, ...] = ()):
        self.file = file
        self.problems = problems
        super().__init__(f"{file}: {message}" if file else message)


def suggest(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """Return a " Did you mean ...?" hint for ``name`` among ``candidates`` ("" if none close)."""
    close = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"
