"""Row vs column storage through sessions, and structuring CSV into Parquet/ORC (CREATE TABLE AS).

Every result is compared with DuckDB over the same files (``run_oracle``); the CTAS tables are
also compared with DuckDB reading the *source* CSV, so the conversion provably keeps every row.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mpp.catalog import Catalog
from mpp.cli import main
from mpp.config import Settings
from mpp.datagen import DatagenSpec, generate
from mpp.errors import CatalogError, SqlError, StorageError, UnknownTableError
from mpp.oracle import run_oracle
from mpp.session import Session
from mpp.sql.statements import CreateTableAs, DropTable, Query, parse_size, parse_statement
from mpp.storage.base import ColumnPredicate, StorageFormat
from mpp.storage.files import local_path
from mpp.write.sizing import Piece, plan_writes
from tests.compare import assert_same_rows
from tests.query_warehouses import warehouse

SPEC = dict(rows=4_000, partitions=8, days=4, hot_day=2, users=300, sessions=400, urls=40)
DAY = dt.date(2017, 1, 3)
QUERIES = {  # the comparison benchmark's query shapes
    "1 column": "SELECT sum(bytes) AS b FROM {t}",
    "2 columns": "SELECT status, sum(bytes) AS b FROM {t} GROUP BY status",
    "all columns": "SELECT * FROM {t}",
    "date filter": "SELECT user_id, bytes FROM {t} WHERE date = DATE '2017-01-03'",
}


def _session(catalog: Catalog, cluster, **settings) -> Session:
    import mpp.optimizer  # noqa: F401  (registers the optimizer switches)

    return Session(catalog, cluster, Settings(settings))


def _files(root: str) -> list[str]:
    path = local_path(root) or root
    return sorted(str(p) for p in Path(path).rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def csv_wh(cluster, tmp_path_factory) -> Catalog:
    """A CSV warehouse plus ``pq`` (Parquet, by date) and ``orc`` (unpartitioned, several
    files) made by CREATE TABLE AS."""
    path = tmp_path_factory.mktemp("ctas") / "w"
    catalog = generate(path, DatagenSpec(**SPEC, format=StorageFormat.CSV), client=cluster.client,
                       progress=False)
    s = _session(catalog, cluster)
    r = s.sql("CREATE TABLE pq WITH (format = 'PARQUET', partitioned_by = ARRAY['date'])\n"
              "AS SELECT * FROM access_log")
    assert r.to_arrow().column("rows").to_pylist() == [4_000]
    # Unpartitioned, small files: min/max bounds alone must prune it.
    s.create_table_as("orc", "SELECT * FROM access_log", format="orc", target_file_bytes=20_000)
    return catalog


def _tables(csv_wh: Catalog, cluster) -> dict[str, tuple[Catalog, str]]:
    sqlite = Catalog.open(warehouse(cluster.client, "sqlite", 8))
    return {"csv": (csv_wh, "access_log"), "sqlite": (sqlite, "access_log"),
            "parquet": (csv_wh, "pq"), "orc": (csv_wh, "orc")}


@pytest.mark.parametrize("shape", list(QUERIES))
def test_every_format_answers_like_duckdb(csv_wh, cluster, shape) -> None:
    for fmt, (catalog, table) in _tables(csv_wh, cluster).items():
        sql = QUERIES[shape].format(t=table)
        got = _session(catalog, cluster).sql(sql).to_arrow()
        assert_same_rows(got, run_oracle(sql, catalog)), fmt
        # The structured tables hold exactly the CSV's rows (DuckDB reads the source).
        if table in ("pq", "orc"):
            assert_same_rows(got, run_oracle(QUERIES[shape].format(t="access_log"), csv_wh))


def _bytes_read(catalog: Catalog, cluster, table: str, columns: str) -> tuple[int, int]:
    r = _session(catalog, cluster).sql(f"SELECT {columns} FROM {table}")
    return r.stats.bytes_read, r.stats.rows_read


def test_bytes_read_are_monotone_in_the_columns_selected(csv_wh, cluster) -> None:
    picks = ["bytes", "status, bytes", "time, date, user_id, session_id, url_id, status, bytes"]
    read = {fmt: [_bytes_read(c, cluster, t, cols) for cols in picks]
            for fmt, (c, t) in _tables(csv_wh, cluster).items()}
    for fmt, figures in read.items():
        sizes = [b for b, _ in figures]
        assert all(rows == 4_000 for _, rows in figures), fmt
        if fmt in ("parquet", "orc"):
            assert sizes[0] < sizes[1] < sizes[2], (fmt, sizes)
        else:  # a row format reads whole rows whatever the query uses
            assert sizes[0] == sizes[1] == sizes[2] > 0, (fmt, sizes)
    # The seed's point: a 2-column query reads a fraction of the row formats' bytes.
    assert read["parquet"][1][0] * 3 < read["csv"][1][0]
    assert read["orc"][1][0] * 3 < read["csv"][1][0]


def test_date_filter_skips_fragments_whose_bounds_exclude_it(csv_wh, cluster) -> None:
    for catalog, table in [(csv_wh, "pq"), (csv_wh, "orc"), (csv_wh, "access_log")]:
        info = catalog.table(table)
        everything = catalog.fragments(info)
        kept = catalog.fragments(info, [ColumnPredicate("date", "=", DAY)])
        bounds = [dict((c, (lo, hi)) for c, lo, hi in f.bounds) | dict(
            (c, (v, v)) for c, v in f.partition) for f in everything]
        expected = [f.index for f, b in zip(everything, bounds, strict=True)
                    if b["date"][0] <= DAY <= b["date"][1]]
        assert [f.index for f in kept] == expected and 0 < len(kept) < len(everything), table
    r = _session(csv_wh, cluster).sql(QUERIES["date filter"].format(t="pq"))
    assert r.stats.rows_read == r.to_arrow().num_rows  # only that day's rows were scanned


def test_ctas_registers_statistics_and_partitions(csv_wh) -> None:
    pq, src = csv_wh.table("pq"), csv_wh.table("access_log")
    assert pq.format is StorageFormat.PARQUET and pq.partition_columns == ("date",)
    assert pq.stats.row_count == src.stats.row_count == 4_000
    for col in ("date", "user_id", "status"):
        a, b = pq.stats.column(col), src.stats.column(col)
        assert (a.min, a.max, a.distinct_count) == (b.min, b.max, b.distinct_count), col
        assert a.top_values[:3] == b.top_values[:3], col
    assert len(csv_wh.snapshots("pq")) == 1  # one commit
    orc = csv_wh.table("orc")
    assert orc.format is StorageFormat.ORC and orc.external and orc.stats.row_count == 4_000


def test_output_files_land_near_the_target_size(csv_wh, cluster) -> None:
    s = _session(csv_wh, cluster)
    # Tiny target: every input is split; huge target: the 8 inputs are combined into one file.
    small = s.sql("CREATE TABLE split_t WITH (target_file_size = '8KB') AS "
                  "SELECT * FROM access_log")
    big = s.create_table_as("one_t", "SELECT * FROM access_log", target_file_bytes=2**30)
    try:
        sizes = [f.size_bytes for f in csv_wh.fragments("split_t")]
        assert len(sizes) > csv_wh.table("access_log").stats.fragment_count
        assert max(sizes) < 2 * 8 * 1024
        assert len(csv_wh.fragments("one_t")) == 1
        assert small.ctas.rows == big.ctas.rows == 4_000
    finally:
        s.sql("DROP TABLE split_t")
        s.sql("DROP TABLE one_t")


def test_plan_writes_combines_small_and_splits_large_pieces() -> None:
    pieces = [Piece(0, 0, 100, 30.0, ("a",)), Piece(1, 0, 100, 30.0, ("a",)),
              Piece(2, 0, 100, 30.0, ("a",)), Piece(3, 0, 1000, 250.0, ("b",)),
              Piece(4, 0, 0, 0.0, ("b",))]
    tasks = plan_writes(pieces, 100)
    assert [(t.index, t.rows) for t in tasks] == [(0, 300), (1, 333), (2, 333), (3, 334)]
    assert [r.offset for t in tasks[1:] for r in t.ranges] == [0, 333, 666]
    assert all(t.est_bytes <= 100 for t in tasks)
    assert plan_writes([], 100) == []


def test_failed_ctas_leaves_no_table_and_no_files(csv_wh, cluster) -> None:
    before = _session(csv_wh, cluster).sql("SELECT * FROM pq").to_arrow()
    snaps = csv_wh.snapshots("pq")
    # A write task fails after writing its file, while the others write theirs.
    s = _session(csv_wh, cluster, **{"write.fail_task": 1})
    with pytest.raises(StorageError, match="injected failure"):
        s.sql("CREATE TABLE broken WITH (partitioned_by = ARRAY['date']) AS "
              "SELECT * FROM access_log")
    # A failing expression on some rows (status 404) stops the SELECT stage.
    with pytest.raises(SqlError, match="divide by zero"):
        s.sql("CREATE TABLE broken AS SELECT 100 / (status - 404) AS x FROM access_log")
    fresh = Catalog.open(local_path(csv_wh.warehouse) or "")
    assert "broken" not in fresh.tables()
    assert _files(f"{csv_wh.warehouse}/broken") == []
    assert fresh.snapshots("pq") == snaps
    assert_same_rows(_session(fresh, cluster).sql("SELECT * FROM pq").to_arrow(), before)


def test_existing_names_if_not_exists_and_drop(csv_wh, cluster) -> None:
    s = _session(csv_wh, cluster)
    with pytest.raises(CatalogError, match="already exists.*DROP TABLE pq"):
        s.sql("CREATE TABLE pq AS SELECT * FROM access_log")
    r = s.sql("CREATE TABLE IF NOT EXISTS pq AS SELECT status FROM access_log")
    assert r.to_arrow().column("rows").to_pylist() == [0]
    assert csv_wh.table("pq").stats.row_count == 4_000  # untouched
    s.sql("CREATE TABLE tmp_t AS SELECT date, status FROM access_log WHERE status = 404")
    location = csv_wh.table("tmp_t").location
    assert _files(location)
    assert s.sql("DROP TABLE tmp_t").to_arrow().column("dropped").to_pylist() == [True]
    assert "tmp_t" not in csv_wh.tables() and _files(location) == []
    assert s.sql("DROP TABLE IF EXISTS tmp_t").to_arrow().column("dropped").to_pylist() == [False]
    with pytest.raises(UnknownTableError, match="tmp_t"):
        s.sql("DROP TABLE tmp_t")


def test_ctas_statement_parsing_and_errors() -> None:
    stmt = parse_statement("CREATE TABLE IF NOT EXISTS t WITH (format = 'ORC', "
                           "partitioned_by = ARRAY['date'], target_file_size = '1.5MB')\n"
                           "AS SELECT date FROM access_log")
    assert stmt == CreateTableAs("t", stmt.select_sql, StorageFormat.ORC, ("date",),
                                 int(1.5 * 2**20), True)
    assert stmt.select_sql.splitlines()[1] == "AS SELECT date FROM access_log".replace("AS", "  ")
    assert parse_statement("DROP TABLE IF EXISTS t") == DropTable("t", True)
    assert parse_statement("SELECT 1") == Query("SELECT 1")
    assert parse_size("128MB") == 128 * 2**20 and parse_size("4096") == 4096
    for bad, text in [("CREATE TABLE t WITH (format = 'CSV') AS SELECT 1", "'PARQUET' or 'ORC', got 'CSV'"),
                      ("CREATE TABLE t WITH (colour = 1) AS SELECT 1", "unknown WITH property"),
                      ("CREATE TABLE t WITH (target_file_size = 'big') AS SELECT 1", "128MB")]:
        with pytest.raises(SqlError, match=text):
            parse_statement(bad)


@pytest.mark.parametrize(("sql", "kind", "line", "column"), [
    ("GRANT SELECT ON t TO u", "GRANT", 1, 1),
    ("-- fix\n  ALTER TABLE t RENAME TO u", "ALTER TABLE", 2, 3),
    ("TRUNCATE TABLE t", "TRUNCATE TABLE", 1, 1),
])
def test_statements_mpp_does_not_run_are_named(sql: str, kind: str, line: int,
                                               column: int) -> None:
    with pytest.raises(SqlError) as info:
        parse_statement(sql)
    assert f"unsupported statement: {kind}" in str(info.value)
    assert (info.value.line, info.value.column) == (line, column)


def test_sql_error_inside_ctas_select_names_its_line(csv_wh, cluster) -> None:
    with pytest.raises(SqlError, match=r"line 2, column 14"):
        _session(csv_wh, cluster).sql("CREATE TABLE x AS\nSELECT date, nosuch FROM access_log")
    assert "x" not in csv_wh.tables()


@pytest.fixture()
def malformed_csv(cluster, tmp_path) -> tuple[Catalog, str]:
    """A CSV warehouse whose first access_log file has a short row on line 5."""
    catalog = generate(tmp_path / "w", DatagenSpec(**{**SPEC, "rows": 400, "partitions": 2, "days": 2},
                                                   format=StorageFormat.CSV),
                       client=cluster.client, progress=False)
    path = local_path(catalog.fragments("access_log")[0].uri) or ""
    lines = Path(path).read_text().splitlines()
    lines[4] = lines[4].rsplit(",", 2)[0]
    Path(path).write_text("\n".join(lines) + "\n")
    return catalog, path


def test_malformed_csv_row_names_file_and_line(malformed_csv, cluster) -> None:
    catalog, path = malformed_csv
    with pytest.raises(StorageError) as err:
        _session(catalog, cluster).sql("SELECT count(*) AS n FROM access_log")
    assert path in str(err.value) and "line 5" in str(err.value)
    result = CliRunner().invoke(main, ["sql", "-w", local_path(catalog.warehouse) or "",
                                       "--scheduler", cluster.client.scheduler.address,
                                       "SELECT sum(bytes) AS b FROM access_log"])
    assert result.exit_code == 2
    assert path in result.stderr and "line 5" in result.stderr
    assert "Traceback" not in result.stderr


def test_mpp_sql_runs_ctas(csv_wh, cluster) -> None:
    args = ["sql", "-w", local_path(csv_wh.warehouse) or "", "--scheduler",
            cluster.client.scheduler.address]
    result = CliRunner().invoke(main, [*args, "CREATE TABLE cli_t WITH (format = 'ORC') AS "
                                              "SELECT date, bytes FROM access_log"])
    assert result.exit_code == 0, result.output
    assert "4000" in result.stdout and "wrote 4,000 rows in 1 file " in result.stderr
    fresh = Catalog.open(local_path(csv_wh.warehouse) or "")
    assert fresh.table("cli_t").stats.row_count == 4_000
    result = CliRunner().invoke(main, [*args, "DROP TABLE cli_t"])
    assert result.exit_code == 0 and "cli_t" not in Catalog.open(
        local_path(csv_wh.warehouse) or "").tables()
    assert os.path.exists(local_path(csv_wh.warehouse) or "")


def test_explain_ctas_shows_the_select_plan_and_the_write(csv_wh, cluster) -> None:
    text = _session(csv_wh, cluster).explain(
        "CREATE TABLE e WITH (partitioned_by = ARRAY['date']) AS "
        "SELECT date, sum(bytes) AS b FROM access_log GROUP BY date")
    assert text.startswith("CreateTableAs: e (parquet, partitioned by date)")
    assert "ScanExec" in text and "e" not in csv_wh.tables()


def test_bench_formats_report_repay_and_table() -> None:
    from mpp.bench.formats import FormatRun, FormatsReport, format_report

    runs = [FormatRun("csv", "1 col", "mpp", 3.0, 600, 10, 100, 0),
            FormatRun("parquet", "1 col", "mpp", 1.0, 20, 10, 30, 0),
            FormatRun("parquet", "1 col", "duckdb", 0.1),
            FormatRun("orc", "1 col", "mpp", 4.0, 15, 10, 30, 0),
            FormatRun("orc", "1 col", "duckdb", None, note="DuckDB has no ORC reader")]
    report = FormatsReport(10, "load average 1.00", {"csv": 600}, {"parquet": 9.0, "orc": 1.0},
                           runs)
    assert report.repay("parquet", "1 col") == 5  # 9 s / (3 s - 1 s) saved per run
    assert report.repay("orc", "1 col") is None  # slower than CSV: never repaid
    text = format_report(report)
    assert "5 run(s)" in text and "DuckDB has no ORC reader" in text
    assert '"structuring_seconds"' in report.to_json()


def test_orphan_files_of_an_earlier_attempt_are_never_read(csv_wh, cluster) -> None:
    # A crashed attempt left a file in the table's directory before any commit.
    import pyarrow as pa
    import pyarrow.parquet as pq

    location = f"{local_path(csv_wh.warehouse)}/orphan_t/data"
    os.makedirs(location)
    stray = pa.table({"date": [DAY] * 5, "bytes": pa.array([10**6] * 5, pa.int32())})
    pq.write_table(stray, f"{location}/part-000000-deadbeef0000.parquet")
    s = _session(csv_wh, cluster)
    s.sql("CREATE TABLE orphan_t AS SELECT date, bytes FROM access_log")
    try:
        assert all("deadbeef" not in f.uri for f in csv_wh.fragments("orphan_t"))
        sql = "SELECT date, count(*) AS n, sum(bytes) AS b FROM {t} GROUP BY date"
        assert_same_rows(s.sql(sql.format(t="orphan_t")).to_arrow(),
                         run_oracle(sql.format(t="access_log"), csv_wh))
    finally:
        s.sql("DROP TABLE orphan_t")
