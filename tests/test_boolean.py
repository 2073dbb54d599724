"""BOOLEAN columns everywhere: scanned from Parquet, CSV, SQLite and mpp's own Iceberg tables,
filtered on bare, grouped by, joined on, with min/max/null statistics in the catalog, and
printed TRUE/FALSE in EXPLAIN. Every result equals DuckDB over the same files.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

import mpp
from mpp.catalog import Catalog
from mpp.catalog.files_source import register_files
from mpp.catalog.sqlite_source import register_sqlite
from mpp.oracle import run_oracle
from tests.compare import assert_same_result


def _flags(i: int, n: int = 30) -> pa.Table:
    rows = range(i * n, i * n + n)
    return pa.table({
        "id": pa.array(rows, pa.int64()),
        "flag": pa.array([None if j % 7 == 0 else j % 3 == 0 for j in rows], pa.bool_()),
        "hot": pa.array([j % 2 == 0 for j in rows], pa.bool_()),
        "v": pa.array([j % 11 for j in rows], pa.int32()),
    })


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory, cluster) -> Path:
    root = tmp_path_factory.mktemp("boolean")
    for folder in ("parquet", "csv"):
        (root / folder).mkdir()
    for i in range(3):
        pq.write_table(_flags(i), root / "parquet" / f"part-{i}.parquet")
    (root / "switches").mkdir()
    for i, values in enumerate([[False, False, None], [True, False, True]]):
        pq.write_table(pa.table({"lit": pa.array(values, pa.bool_())}),
                       root / "switches" / f"part-{i}.parquet")
    pcsv.write_csv(pa.table({"hot": [True, False, None], "label": ["even", "odd", "unknown"]}),
                   root / "csv" / "labels.csv")
    db = root / "kinds.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE kinds (flag BOOLEAN, name TEXT)")
    con.executemany("INSERT INTO kinds VALUES (?, ?)", [(1, "yes"), (0, "no"), (None, "?"),
                                                        ("true", "also yes")])
    con.commit()
    con.close()
    catalog = Catalog.open(root / "wh", create=True)
    register_files(catalog, "flags", str(root / "parquet"), "parquet")
    register_files(catalog, "labels", str(root / "csv"), "csv")
    register_files(catalog, "switches", str(root / "switches"), "parquet")
    register_sqlite(catalog, "kinds", db, fragments=2)
    with mpp.connect(root / "wh", cluster=cluster) as session:
        session.sql("CREATE TABLE flags_copy AS SELECT * FROM flags")
    return root / "wh"


def test_every_source_reads_boolean_columns_as_boolean(wh: Path) -> None:
    catalog = Catalog.open(wh)
    for table, column in [("flags", "flag"), ("flags_copy", "flag"), ("labels", "hot"),
                          ("kinds", "flag")]:
        assert catalog.table(table).schema.field(column).type == pa.bool_(), table


def test_boolean_statistics_are_in_the_catalog(wh: Path) -> None:
    rows = pa.concat_tables(_flags(i) for i in range(3))
    for table in ("flags", "flags_copy"):
        stats = Catalog.open(wh).table(table).stats
        flag = stats.column("flag")
        assert (flag.min, flag.max) == (False, True), table
        assert flag.null_count == rows["flag"].null_count, table
        assert stats.row_count == rows.num_rows
    copy = Catalog.open(wh).table("flags_copy").stats.column("hot")
    assert copy.distinct_count == 2  # written tables also sketch distinct values


QUERIES = [
    "SELECT id FROM flags WHERE flag",
    "SELECT id FROM flags WHERE NOT flag AND v > 3",
    "SELECT id FROM flags WHERE flag = true OR hot",
    "SELECT id FROM flags WHERE flag IS NULL",
    "SELECT id FROM flags_copy WHERE flag AND NOT hot",
    "SELECT flag, count(*) n, sum(v) s FROM flags GROUP BY flag",
    "SELECT flag, hot, count(*) n FROM flags_copy GROUP BY flag, hot",
    "SELECT min(flag) lo, max(flag) hi, count(flag) n, count(DISTINCT hot) d FROM flags",
    "SELECT f.id, l.label FROM flags f JOIN labels l ON f.hot = l.hot",
    "SELECT k.name, count(*) n FROM flags f JOIN kinds k ON f.flag = k.flag GROUP BY k.name",
    "SELECT hot, label FROM labels WHERE hot",
    "SELECT name FROM kinds WHERE flag",
    "SELECT name FROM kinds WHERE flag IS NULL OR NOT flag",
    "SELECT id, flag AND hot a, flag OR hot o, CAST(flag AS varchar) t FROM flags",
]


@pytest.mark.parametrize("sql", QUERIES)
def test_boolean_queries_match_duckdb(wh: Path, cluster, sql: str) -> None:
    with mpp.connect(wh, cluster=cluster) as session:
        assert_same_result(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog), sql)


def test_explain_prints_true_and_false(wh: Path, cluster) -> None:
    with mpp.connect(wh, cluster=cluster) as session:
        for stage in ("logical", "physical"):
            text = session.explain("SELECT id FROM flags WHERE flag = true AND v <> 3 "
                                   "AND (hot OR id = 3) AND NOT CAST(v AS boolean) = FALSE",
                                   stage)
            assert "TRUE" in text and "FALSE" in text, text
            assert "True" not in text and "False" not in text, text


def test_a_bare_boolean_column_is_pushed_into_the_scan(wh: Path, cluster) -> None:
    with mpp.connect(wh, cluster=cluster) as session:
        text = session.explain("SELECT id FROM flags WHERE flag AND NOT hot", "physical")
    assert "filter=(flag = TRUE AND hot = FALSE)" in text, text
    assert "FilterExec" not in text


def test_a_boolean_filter_skips_files_by_their_statistics(wh: Path, cluster) -> None:
    sql = "SELECT count(*) n FROM switches WHERE lit"
    with mpp.connect(wh, cluster=cluster) as session:
        assert "fragments=1 of 2" in session.explain(sql, "physical")  # one file is all FALSE
        assert_same_result(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog), sql)
