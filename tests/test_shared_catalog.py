"""A warehouse's Iceberg catalog shared the way a Hive metastore is: in PostgreSQL
(``--catalog postgresql://...``), or in the warehouse's own SQLite catalog.db, written by two
processes at once without losing a commit.

The project's machines run PostgreSQL on 127.0.0.1:5432 (trust authentication); elsewhere the
PostgreSQL tests skip, naming what is missing. The SQLite case always runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import mpp
from mpp.catalog import Catalog
from mpp.errors import CatalogError
from mpp.oracle import run_oracle
from tests.compare import assert_same_rows

HOST = os.environ.get("MPP_TEST_POSTGRES_HOST", "127.0.0.1")
PORT = int(os.environ.get("MPP_TEST_POSTGRES_PORT", "5432"))


@pytest.fixture(scope="module")
def pg_uri() -> Iterator[str]:
    """A fresh PostgreSQL database for an Iceberg catalog; its postgresql:// URI."""
    psycopg = pytest.importorskip("psycopg", reason="the psycopg package is not installed")
    try:
        admin = psycopg.connect(f"host={HOST} port={PORT} user=postgres dbname=postgres",
                                autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        pytest.skip(f"no PostgreSQL server reachable on {HOST}:{PORT} ({exc})")
    name = f"mpp_test_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@{HOST}:{PORT}/{name}"
    finally:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


def test_tables_live_in_the_postgres_catalog(tmp_path: Path, pg_uri: str, cluster) -> None:
    wh = tmp_path / "w"
    Catalog.open(wh, pg_uri, create=True)
    sql = "SELECT k, count(*) n, sum(v) s FROM t GROUP BY k"
    with mpp.connect(wh, cluster=cluster, catalog_uri=pg_uri) as session:
        session.sql("CREATE TABLE t AS SELECT x % 5 AS k, x * 1.5 AS v "
                    "FROM (VALUES 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12) AS r (x)")
        assert_same_rows(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog))
    # the table is in PostgreSQL: another process opening the same URI sees it
    assert Catalog.open(wh, pg_uri).tables() == ["t"]
    assert not (wh / "catalog.db").exists()


def test_a_bad_catalog_uri_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    pytest.importorskip("psycopg", reason="the psycopg package is not installed")
    uri = "postgresql://postgres:s3cret@127.0.0.1:1/nowhere"
    with pytest.raises(CatalogError) as err:
        Catalog.open(tmp_path / "w", uri, create=True)
    text = str(err.value)
    assert text.startswith("cannot open the Iceberg catalog postgresql://postgres:***@127.0.0.1:1/")
    assert "s3cret" not in text and "\n" not in text


_WRITER = textwrap.dedent("""
    import sys
    import mpp

    if __name__ == "__main__":
        wh, scheduler, uri, prefix = sys.argv[1], sys.argv[2], sys.argv[3] or None, sys.argv[4]
        with mpp.connect(wh, cluster=scheduler, catalog_uri=uri) as session:
            for i in range(4):
                session.sql(f"CREATE TABLE {prefix}_{i} AS SELECT x, x * {i} AS y "
                            "FROM (VALUES 1, 2, 3) AS r (x)")
""")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_processes_writing_at_once_lose_no_commit(tmp_path: Path, kind: str, cluster,
                                                      request: pytest.FixtureRequest) -> None:
    uri = request.getfixturevalue("pg_uri") if kind == "postgresql" else ""
    wh = tmp_path / "w"
    Catalog.open(wh, uri or None, create=True)
    if not uri:  # the warehouse's own catalog.db: created by a first table
        with mpp.connect(wh, cluster=cluster) as session:
            session.sql("CREATE TABLE seed AS SELECT 1 AS x")
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    scheduler = cluster.client.scheduler.address
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen([sys.executable, str(script), str(wh), scheduler, uri, p],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
             for p in ("a", "b")]
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out.decode()
    names = {f"{p}_{i}" for p in "ab" for i in range(4)}
    with mpp.connect(wh, cluster=cluster, catalog_uri=uri or None) as session:
        assert names <= set(session.catalog.tables())
        for name in sorted(names):
            sql = f"SELECT x, y FROM {name}"
            assert_same_rows(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog))
