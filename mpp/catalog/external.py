"""External tables (CSV, ORC, SQLite) in the metastore database, beside the Iceberg tables.

Iceberg tables are Parquet by definition, so tables in other formats are registered as rows of
an ``mpp_external_tables`` table in the same database (``catalog.db`` by default): schema,
fragments (with their bounds), statistics and properties, as JSON. Registration is one
transaction, like an Iceberg commit: a table is fully registered or not at all.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from mpp.catalog.codec import (
    fragment_from_json,
    fragment_to_json,
    schema_from_text,
    schema_to_text,
    stats_from_text,
    stats_to_text,
)
from mpp.catalog.model import TableStats
from mpp.errors import CatalogError
from mpp.storage.base import Fragment, StorageFormat

# Properties of a table registered from the user's own files: mpp reads them in place and
# never deletes them (DROP TABLE only forgets the table). ``mpp.source-table`` marks the
# SQLite registrations made before ``mpp.registered`` existed.
PROP_REGISTERED = "mpp.registered"
PROP_SOURCE_TABLE = "mpp.source-table"
# ``{column: type}`` (JSON) of columns stored in another type than their source declares
# (a decimal of more than 38 digits as DOUBLE); ``mpp catalog`` shows both types.
PROP_DECLARED_TYPES = "mpp.declared-types"

_DDL = """CREATE TABLE IF NOT EXISTS mpp_external_tables (
    name TEXT PRIMARY KEY, format TEXT NOT NULL, location TEXT NOT NULL, schema TEXT NOT NULL,
    partition_columns TEXT NOT NULL, fragments TEXT NOT NULL, stats TEXT NOT NULL,
    properties TEXT NOT NULL, created_at TEXT NOT NULL)"""


@dataclass(frozen=True, slots=True)
class ExternalTable:
    """One registered external table."""

    name: str
    format: StorageFormat
    location: str
    schema: pa.Schema
    partition_columns: tuple[str, ...]
    fragments: tuple[Fragment, ...]
    stats: TableStats
    properties: dict[str, str]
    created_at: dt.datetime


class ExternalRegistry:
    """The ``mpp_external_tables`` table of a SQL database."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        try:
            with engine.begin() as con:
                con.execute(sa.text(_DDL))
        except sa.exc.SQLAlchemyError as exc:
            raise CatalogError(f"cannot open the metastore database: {exc.args[0]}") from None

    def names(self) -> list[str]:
        """Names of the registered external tables."""
        with self.engine.connect() as con:
            return [r[0] for r in con.execute(sa.text("SELECT name FROM mpp_external_tables"))]

    def get(self, name: str) -> ExternalTable | None:
        """The table ``name``, or None."""
        with self.engine.connect() as con:
            row = con.execute(sa.text("SELECT * FROM mpp_external_tables WHERE name = :n"),
                              {"n": name}).mappings().first()
        return None if row is None else _from_row(row)

    def all(self) -> list[ExternalTable]:
        """Every registered external table."""
        with self.engine.connect() as con:
            rows = con.execute(sa.text("SELECT * FROM mpp_external_tables")).mappings().all()
        return [_from_row(r) for r in rows]

    def register(self, table: ExternalTable) -> None:
        """Insert ``table`` in one transaction (CatalogError if the name is taken)."""
        values: dict[str, Any] = {
            "name": table.name, "format": table.format.value, "location": table.location,
            "schema": schema_to_text(table.schema),
            "partition_columns": json.dumps(list(table.partition_columns)),
            "fragments": json.dumps([fragment_to_json(f) for f in table.fragments]),
            "stats": stats_to_text(table.stats), "properties": json.dumps(table.properties),
            "created_at": table.created_at.isoformat(),
        }
        cols = ", ".join(values)
        try:
            with self.engine.begin() as con:
                con.execute(sa.text(f"INSERT INTO mpp_external_tables ({cols}) VALUES "
                                    f"({', '.join(':' + c for c in values)})"), values)
        except sa.exc.IntegrityError:
            raise CatalogError(f"table {table.name!r} already exists") from None

    def drop(self, name: str) -> None:
        """Unregister ``name`` (its files are the caller's business)."""
        with self.engine.begin() as con:
            con.execute(sa.text("DELETE FROM mpp_external_tables WHERE name = :n"), {"n": name})


def _from_row(row: Any) -> ExternalTable:
    """An ExternalTable from its ``mpp_external_tables`` row."""
    return ExternalTable(
        name=row["name"], format=StorageFormat(row["format"]), location=row["location"],
        schema=schema_from_text(row["schema"]),
        partition_columns=tuple(json.loads(row["partition_columns"])),
        fragments=tuple(fragment_from_json(f) for f in json.loads(row["fragments"])),
        stats=stats_from_text(row["stats"]), properties=json.loads(row["properties"]),
        created_at=dt.datetime.fromisoformat(row["created_at"]),
    )
