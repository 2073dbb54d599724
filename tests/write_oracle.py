"""DuckDB running the same write statements on a copy of a table: the oracle of UPDATE, MERGE
and partition overwrite tests (final contents compared as Arrow, order-insensitive)."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from mpp.catalog import Catalog
from mpp.oracle import register_table


def duckdb_after(catalog: Catalog, table: str, statements: Sequence[str],
                 sources: Sequence[str] = ()) -> pa.Table:
    """``table``'s rows after DuckDB runs ``statements`` on a copy of it (the catalog's
    current files); ``sources``: other tables the statements read, as views of their files."""
    con = duckdb.connect()
    try:
        for name in (table, *sources):
            info = catalog.table(name)
            register_table(con, info, catalog.fragments(info, []))
        con.execute(f'ALTER VIEW "{table}" RENAME TO "_view_{table}"')
        con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM "_view_{table}"')
        for sql in statements:
            con.execute(sql)
        return con.sql(f'SELECT * FROM "{table}"').to_arrow_table()
    finally:
        con.close()
