"""MySQL / MariaDB tables registered in place (the source notes' master table in MySQL).

The users master table lives in a real MariaDB and joins the Parquet access_log in one query:
filters and projections go into the SQL sent to the database (shown by EXPLAIN, parameterized),
text comparisons follow Trino (code points, not MySQL's case-insensitive collation), results
equal DuckDB over the same rows, and errors name the address, never its password.

The project's machines run MariaDB on 127.0.0.1:3306 (root, no password); elsewhere these tests
skip, naming what is missing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner

import mpp
from mpp.catalog import Catalog
from mpp.catalog.mysql_source import register_mysql
from mpp.cli import main
from mpp.datagen import DatagenSpec, generate
from mpp.errors import CatalogError, StorageError
from mpp.oracle import run_oracle
from mpp.storage import mysql
from mpp.storage.base import StorageFormat
from tests.compare import assert_same_rows

pymysql = pytest.importorskip("pymysql", reason="the pymysql package is not installed")
HOST = os.environ.get("MPP_TEST_MYSQL_HOST", "127.0.0.1")
PORT = int(os.environ.get("MPP_TEST_MYSQL_PORT", "3306"))


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A fresh database on the local MariaDB; its mysql:// address."""
    try:
        con = pymysql.connect(host=HOST, port=PORT, user="root", password="",
                              connect_timeout=3, autocommit=True)
    except pymysql.MySQLError as exc:
        pytest.skip(f"no MariaDB/MySQL server reachable on {HOST}:{PORT} ({exc})")
    name = f"mpp_test_{uuid.uuid4().hex[:8]}"
    with con.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield f"mysql://root@{HOST}:{PORT}/{name}"
    finally:
        with con.cursor() as cur:
            cur.execute(f"DROP DATABASE {name}")
        con.close()


def _execute(uri: str, *statements: str, rows: list[tuple[Any, ...]] | None = None) -> None:
    a = mysql.Address.parse(uri)
    con = pymysql.connect(host=a.host, port=a.port, user=a.user, password=a.password or "",
                          database=a.database, autocommit=True)
    try:
        with con.cursor() as cur:
            for s in statements:
                if rows is not None and "%s" in s:
                    cur.executemany(s, rows)
                else:
                    cur.execute(s)
    finally:
        con.close()


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory, cluster, database: str) -> Path:
    """access_log in Parquet; users copied into MariaDB (primary key user_id) and registered
    as users_my in 3 key ranges; a small table of tricky text registered as words."""
    out = tmp_path_factory.mktemp("my") / "w"
    spec = DatagenSpec(rows=4_000, partitions=4, days=4, hot_day=2, users=300, sessions=400,
                       urls=40)
    generate(out, spec, client=cluster.client, progress=False)
    with mpp.connect(out, cluster=cluster) as session:
        users = session.sql("SELECT user_id, created_at, country, plan FROM users").to_arrow()
    _execute(database,
             "CREATE TABLE users (user_id BIGINT PRIMARY KEY, created_at DATETIME(6), "
             "country VARCHAR(8), plan VARCHAR(16), score DECIMAL(10, 2), active TINYINT(1))",
             "INSERT INTO users VALUES (%s, %s, %s, %s, %s, %s)",
             rows=[(r["user_id"], r["created_at"], r["country"], r["plan"],
                    None if r["user_id"] % 7 == 0 else f"{r['user_id'] * 1.25:.2f}",
                    None if r["user_id"] % 11 == 0 else r["user_id"] % 3 == 0)
                   for r in users.to_pylist()])
    _execute(database,
             "CREATE TABLE words (w VARCHAR(10), d DATE, n INT UNSIGNED)",
             "INSERT INTO words VALUES (%s, %s, %s)",
             rows=[("kr", "2020-01-01", 1), ("KR", "2020-01-02", 2), ("kr ", None, 3),
                   ("Kr", "2020-01-03", None), (None, "2020-01-04", 4294967295)])
    catalog = Catalog.open(out)
    register_mysql(catalog, "users_my", database, source_table="users", fragments=3)
    register_mysql(catalog, "words", database)
    return out


FEDERATED = ("SELECT u.country, count(*) n, count(DISTINCT a.user_id) users, sum(u.score) s "
             "FROM access_log a JOIN users_my u ON u.user_id = a.user_id "
             "WHERE u.plan IN ('pro', 'enterprise') "
             "AND u.created_at >= TIMESTAMP '2015-06-01 00:00:00' GROUP BY u.country")


def test_registration_reads_schema_statistics_and_key_ranges(wh: Path) -> None:
    info = Catalog.open(wh).table("users_my")
    assert info.format is StorageFormat.MYSQL and info.external
    assert info.schema == pa.schema([("user_id", pa.int64()), ("created_at", pa.timestamp("us")),
                                     ("country", pa.string()), ("plan", pa.string()),
                                     ("score", pa.decimal128(10, 2)), ("active", pa.bool_())])
    assert info.stats.row_count == 300 and info.stats.fragment_count == 3
    frags = Catalog.open(wh).fragments("users_my")
    assert [f.option("key") for f in frags] == ["user_id"] * 3
    assert sum(f.row_count for f in frags) == 300
    assert info.stats.columns["user_id"].distinct_count == 300
    # text bounds are not kept: MySQL orders text by a case-insensitive collation
    assert info.stats.columns["country"].min is None
    words = Catalog.open(wh).table("words")
    assert words.schema.field("n").type == pa.int64()  # INT UNSIGNED widens
    assert words.stats.fragment_count == 1  # no integer primary key: one fragment


def test_writes_into_iceberg_tables_beside_a_registered_mysql_table(wh: Path, cluster) -> None:
    """A write's clean-up of leftover files lists every table's files; a MySQL table has none
    (its fragments are key ranges under a mysql:// address), and the write goes ahead."""
    with mpp.connect(wh, cluster=cluster) as session:
        session.sql("CREATE TABLE my_plans (user_id bigint, plan varchar)")
        session.sql("INSERT INTO my_plans SELECT user_id, plan FROM users_my WHERE plan = 'pro'")
        got = session.sql("SELECT * FROM my_plans").to_arrow()
        session.sql("DROP TABLE my_plans")
    assert_same_rows(got, run_oracle("SELECT user_id, plan FROM users_my WHERE plan = 'pro'",
                                     Catalog.open(wh)))


@pytest.mark.parametrize("strategy", ["broadcast", "partitioned"])
def test_federated_join_pushes_filters_into_mysql(wh: Path, strategy: str, cluster) -> None:
    with mpp.connect(wh, cluster=cluster) as session:
        settings = {"join.strategy": strategy}
        text = session.explain(FEDERATED, settings=settings)
        assert ("sql: SELECT `user_id`, `country`, `score` FROM `users` WHERE `user_id` "
                "BETWEEN %s AND %s AND BINARY `plan` IN (%s, %s) AND `created_at` >= %s") in text
        assert "params: key range, 'pro', 'enterprise', " in text
        result = session.sql(FEDERATED, settings=settings)
        assert_same_rows(result.to_arrow(), run_oracle(FEDERATED, session.catalog))
        scan = next(s for s in result.stats.plan.stages
                    if s.scan is not None and s.scan.table == "users_my")
        assert len(result.stats.stages[scan.id]) >= 1
        assert scan.tasks == 3


@pytest.mark.parametrize("where", [
    "w = 'kr'", "w <> 'kr'", "w < 'kr'", "w >= 'KR'", "w IN ('kr', 'KR')", "w IS NULL",
    "d >= DATE '2020-01-02'", "n > 3", "n = 4294967295", "w LIKE 'k%'",
])
def test_predicates_follow_trino_not_mysql_collation(wh: Path, where: str, cluster) -> None:
    sql = f"SELECT w, d, n FROM words WHERE {where}"
    with mpp.connect(wh, cluster=cluster) as session:
        assert_same_rows(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog))


def test_parameters_are_never_spliced(wh: Path, cluster) -> None:
    sql = ("SELECT count(*) c FROM access_log a JOIN users_my u ON u.user_id = a.user_id "
           "WHERE u.country = 'x'' OR ''1''=''1' OR u.plan = 'pro'")
    with mpp.connect(wh, cluster=cluster) as session:
        assert_same_rows(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog))


def test_count_star_and_booleans(wh: Path, cluster) -> None:
    sql = "SELECT active, count(*) c, count(score) s FROM users_my GROUP BY active"
    with mpp.connect(wh, cluster=cluster) as session:
        assert_same_rows(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog))
        assert session.sql("SELECT count(*) FROM users_my").to_arrow().column(0)[0].as_py() == 300


def test_errors_name_the_address_never_the_password(tmp_path: Path, database: str) -> None:
    catalog = Catalog.open(tmp_path / "w", create=True)
    secret = database.replace("root@", "root:s3cret@")
    with pytest.raises(StorageError) as err:
        register_mysql(catalog, "t", secret.replace(f":{PORT}/", ":1/"))
    assert "cannot connect to the database" in str(err.value)
    assert "s3cret" not in str(err.value) and "root:***@" in str(err.value)
    with pytest.raises(StorageError, match="no table 'nope' in the database"):
        register_mysql(catalog, "nope", database)
    _execute(database, "CREATE TABLE blobs (id INT PRIMARY KEY, b BLOB)")
    with pytest.raises(StorageError, match="column 'b' has type blob, which mpp cannot read"):
        register_mysql(catalog, "blobs", database)
    with pytest.raises(StorageError, match="not a MySQL address"):
        register_mysql(catalog, "t", "mysql://host-only")
    assert catalog.tables() == []  # nothing half-registered
    register_mysql(catalog, "words", database)
    with pytest.raises(CatalogError, match="already exists"):
        register_mysql(catalog, "words", database)


def test_cli_register_and_drop_leaves_the_database_alone(tmp_path: Path, database: str,
                                                         cluster) -> None:
    wh = tmp_path / "w"
    Catalog.open(wh, create=True)
    runner = CliRunner()
    result = runner.invoke(main, ["catalog", "register", "-w", str(wh), "--format", "mysql",
                                  "--table", "w2", "--source-table", "words",
                                  "--path", database])
    assert result.exit_code == 0, result.output
    assert "registered w2: mysql mysql://root@" in result.output and "5 rows" in result.output
    with mpp.connect(wh, cluster=cluster) as session:
        session.sql("DROP TABLE w2")
        assert "w2" not in session.catalog.tables()
    register_mysql(Catalog.open(wh), "w3", database, source_table="words")  # still there
