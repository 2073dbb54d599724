"""Federation (the seed's Presto "pluggable storage"): users kept in SQLite joins with the
Parquet access_log in one query. Filters and projections go into the SQL sent to SQLite (shown
by EXPLAIN), results equal DuckDB reading the same SQLite file, reads are read-only and
parameterized, and a missing database file or table is named in the error."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

import mpp
from mpp.catalog import Catalog
from mpp.catalog.sqlite_source import register_sqlite
from mpp.cli import main
from mpp.datagen import DatagenSpec, generate
from mpp.errors import CatalogError, StorageError
from mpp.oracle import run_oracle
from mpp.storage.base import StorageFormat
from mpp.storage.sqlite import connect_readonly
from tests.compare import assert_same_rows

FEDERATED = ("SELECT u.country, count(*) n, count(DISTINCT a.user_id) users FROM access_log a "
             "JOIN users u ON u.user_id = a.user_id WHERE u.plan IN ('pro', 'enterprise') "
             "AND u.created_at >= TIMESTAMP '2015-06-01 00:00:00' GROUP BY u.country")


@pytest.fixture(scope="module")
def fed_wh(tmp_path_factory: pytest.TempPathFactory, cluster) -> Path:
    """access_log in Parquet (4 fragments), users in SQLite (3 rowid ranges)."""
    out = tmp_path_factory.mktemp("fed") / "w"
    spec = DatagenSpec(rows=4_000, partitions=4, days=4, hot_day=2, users=300, sessions=400,
                       urls=40, table_formats=(("users", StorageFormat.SQLITE),))
    generate(out, spec, client=cluster.client, progress=False)
    return out


@pytest.mark.parametrize("strategy", ["broadcast", "partitioned"])
def test_federated_join_pushes_filters_into_sqlite(fed_wh: Path, strategy: str,
                                                   cluster) -> None:
    with mpp.connect(fed_wh, cluster=cluster) as session:
        assert session.catalog.table("users").format is StorageFormat.SQLITE
        settings = {"join.strategy": strategy}
        text = session.explain(FEDERATED, settings=settings)
        # only the two columns the query needs, the filters as parameters, never as literals
        assert ('sql: SELECT "user_id", "country" FROM "users" WHERE rowid BETWEEN ? AND ? '
                'AND "plan" IN (?, ?) AND "created_at" >= ? ORDER BY rowid') in text
        assert "params: rowid range, 'pro', 'enterprise', " in text
        result = session.sql(FEDERATED, settings=settings)
        assert_same_rows(result.to_arrow(), run_oracle(FEDERATED, session.catalog))
        # rows fetched from SQLite: the users scan stage's output; it visits every rowid
        fetched = run_oracle("SELECT count(*) FROM users WHERE plan IN ('pro', 'enterprise') "
                             "AND created_at >= TIMESTAMP '2015-06-01 00:00:00'",
                             session.catalog).column(0)[0].as_py()
        scan = next(s for s in result.stats.plan.stages
                    if s.scan is not None and s.scan.table == "users")
        group = result.stats.stages[scan.id][0]
        assert group.rows_in == 300 and group.rows_out == fetched < 300
        assert f"rows in 300 out {fetched:,}" in result.explain_analyze


def test_sqlite_parameters_are_never_spliced(fed_wh: Path, cluster) -> None:
    sql = ("SELECT count(*) c FROM access_log a JOIN users u ON u.user_id = a.user_id "
           "WHERE u.country = 'x'' OR ''1''=''1' OR u.plan = 'pro'")
    with mpp.connect(fed_wh, cluster=cluster) as session:
        assert_same_rows(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog))


def test_scans_are_read_only(fed_wh: Path) -> None:
    db = next(fed_wh.rglob("users.sqlite"))
    con = connect_readonly(str(db))
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            con.execute("CREATE TABLE intruder (x INTEGER)")
    finally:
        con.close()


@pytest.fixture()
def foreign_db(tmp_path: Path) -> Path:
    """A database mpp did not write: SQLite affinity types, a NULL, a rowid gap."""
    db = tmp_path / "crm.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, tier VARCHAR(10), "
                "score REAL, note TEXT)")
    con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)",
                    [(i, ["gold", "silver", None][i % 3], i * 1.5, f"n{i}")
                     for i in range(300) if i != 150])
    con.commit()
    con.close()
    return db


def test_register_existing_sqlite_table_and_join(fed_wh: Path, foreign_db: Path,
                                                 tmp_path: Path, cluster) -> None:
    import shutil

    from mpp.catalog.relocate import relocate

    wh = tmp_path / "w"
    shutil.copytree(fed_wh, wh)
    relocate(wh)  # a copied warehouse uses its own files only once relocated
    out = CliRunner().invoke(main, ["catalog", "register", "-w", str(wh), "--format", "sqlite",
                                    "--table", "crm", "--path", str(foreign_db),
                                    "--source-table", "customers", "--fragments", "3"])
    assert out.exit_code == 0, out.output
    assert "registered crm: sqlite" in out.output and "299 rows, 3 fragments" in out.output
    sql = ("SELECT c.tier, count(*) n, sum(c.score) s FROM access_log a "
           "JOIN crm c ON c.id = a.user_id WHERE c.score < 300 GROUP BY c.tier")
    with mpp.connect(wh, cluster=cluster) as session:
        info = session.catalog.table("crm")
        assert [str(t) for t in info.schema.types] == ["int64", "string", "double", "string"]
        assert info.stats.row_count == 299 and info.stats.column("id").max == 299
        assert '"score" < ?' in session.explain(sql)
        assert_same_rows(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog))
    listing = CliRunner().invoke(main, ["catalog", "-w", str(wh)])
    assert listing.exit_code == 0 and "crm" in listing.output


def test_missing_database_file_and_table_are_named(foreign_db: Path, tmp_path: Path) -> None:
    cat = Catalog.open(tmp_path / "w", create=True)
    with pytest.raises(StorageError, match=r"nope\.db: file not found"):
        register_sqlite(cat, "crm", tmp_path / "nope.db")
    with pytest.raises(StorageError, match=r"crm\.db: no table 'clients' in the database"):
        register_sqlite(cat, "crm", foreign_db, source_table="clients")
    out = CliRunner().invoke(main, ["catalog", "register", "-w", str(tmp_path / "w"),
                                    "--format", "sqlite", "--table", "crm",
                                    "--path", str(tmp_path / "nope.db")])
    assert out.exit_code == 2 and "nope.db: file not found" in out.output
    register_sqlite(cat, "crm", foreign_db, source_table="customers")
    with pytest.raises(CatalogError, match="'crm' already exists"):
        register_sqlite(cat, "crm", foreign_db, source_table="customers")


def test_database_removed_after_registration(foreign_db: Path, tmp_path: Path,
                                             cluster) -> None:
    cat = Catalog.open(tmp_path / "w", create=True)
    register_sqlite(cat, "crm", foreign_db, source_table="customers", fragments=2)
    foreign_db.unlink()
    with mpp.connect(tmp_path / "w", cluster=cluster) as session:
        with pytest.raises(StorageError, match=r"crm\.db: file not found"):
            session.sql("SELECT count(*) FROM crm")
