"""Your own data: Parquet, CSV and ORC files registered as tables and read in place.

One file, a folder, a glob; Hive-style ``key=value/`` folders as partition columns that prune
files; statistics from the files; DECIMAL kept as DECIMAL(p, s); DROP TABLE forgets the
table and leaves the files; every bad input is a clear error naming the file, with nothing
registered. Query results are compared with DuckDB reading the same files.
"""

from __future__ import annotations

import decimal
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.orc as porc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import mpp
from mpp.catalog import Catalog
from mpp.catalog.files_source import register_files
from mpp.cli import main
from mpp.errors import CatalogError, StorageError
from mpp.oracle import run_oracle
from tests.compare import assert_same_rows

ORDERS_PARTS = [(2020, "EU"), (2020, "US"), (2021, "EU"), (2021, "US")]


def _orders(year: int, region: str, n: int = 50) -> pa.Table:
    base = year * 1000 + (0 if region == "EU" else 500)
    return pa.table({
        "id": pa.array(range(base, base + n), pa.int64()),
        "amount": pa.array([decimal.Decimal(f"{i % 97}.{i % 100:02d}") for i in range(n)],
                           pa.decimal128(10, 2)),
        "name": pa.array([f"c{i % 7}" for i in range(n)], pa.large_string()),
        "ts": pa.array([1_600_000_000_000_000_000 + i * 10**12 for i in range(n)],
                       pa.timestamp("ns")),
    })


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small data lake: Parquet in year=/region= folders, CSV in day= folders, ORC files."""
    root = tmp_path_factory.mktemp("lake")
    for year, region in ORDERS_PARTS:
        folder = root / "orders" / f"year={year}" / f"region={region}"
        folder.mkdir(parents=True)
        pq.write_table(_orders(year, region), folder / "part-0.parquet")
    (root / "orders" / "_SUCCESS").write_text("")  # not data: skipped, as Hive does
    (root / "orders" / ".part-0.parquet.crc").write_bytes(b"junk")
    for day in ("2024-01-01", "2024-01-02", "2024-01-03"):
        folder = root / "events" / f"day={day}"
        folder.mkdir(parents=True)
        d = int(day[-1])
        pcsv.write_csv(pa.table({"user_id": [d, d + 1, d + 2, 7], "kind": ["a", "b", "a", ""],
                                 "value": [1.5 * d, 2.0, None, 4.25]}), folder / "e.csv")
    (root / "orc").mkdir()
    for i in range(3):
        porc.write_table(pa.table({"k": pa.array(range(i * 10, i * 10 + 10), pa.int64()),
                                   "label": [f"l{j % 3}" for j in range(10)]}),
                         root / "orc" / f"f{i}.orc")
    (root / "orc" / "notes.txt").write_text("not matched by the glob")
    return root


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory, lake: Path) -> Path:
    out = tmp_path_factory.mktemp("wh") / "w"
    catalog = Catalog.open(out, create=True)
    register_files(catalog, "orders", str(lake / "orders"), "parquet")
    register_files(catalog, "events", str(lake / "events") + "/", "csv")
    register_files(catalog, "labels", str(lake / "orc" / "*.orc"), "orc")
    register_files(catalog, "one_file", str(lake / "orders/year=2020/region=EU/part-0.parquet"),
                   "parquet")
    return out


def test_hive_folders_become_typed_partition_columns(wh: Path) -> None:
    catalog = Catalog.open(wh)
    info = catalog.table("orders")
    assert info.external and info.partition_columns == ("year", "region")
    assert info.schema.names == ["id", "amount", "name", "ts", "year", "region"]
    assert [str(t) for t in info.schema.types] == [
        "int64", "decimal128(10, 2)", "string", "timestamp[us]", "int64", "string"]
    s = info.stats
    assert (s.row_count, s.fragment_count) == (200, 4)  # _SUCCESS and .crc are not data
    assert (s.column("year").min, s.column("year").max, s.column("year").distinct_count) == (
        2020, 2021, 2)
    assert (s.column("id").min, s.column("id").max) == (2020000, 2021549)  # from the footers
    assert s.column("amount").max == decimal.Decimal("49.49")  # exact, from the footers
    events = catalog.table("events")
    assert events.schema.field("day").type == pa.date32()
    assert events.stats.column("user_id").distinct_count == 6  # CSV: read once, sketched


QUERIES = [
    "SELECT year, region, count(*) n, sum(amount) s, max(ts) t FROM orders GROUP BY year, region",
    "SELECT name, sum(amount) s FROM orders WHERE year = 2021 AND region = 'EU' GROUP BY name",
    "SELECT count(*) n FROM orders WHERE year = 2020",
    "SELECT day, kind, count(*) n, sum(value) v FROM events WHERE day >= DATE '2024-01-02' "
    "GROUP BY day, kind",
    "SELECT label, count(*) n, sum(k) s FROM labels GROUP BY label",
    "SELECT o.region, count(*) n FROM orders o JOIN one_file f ON o.id = f.id GROUP BY o.region",
]


@pytest.mark.parametrize("sql", QUERIES)
def test_registered_files_answer_like_duckdb(wh: Path, cluster, sql: str) -> None:
    with mpp.connect(wh, cluster=cluster) as session:
        assert_same_rows(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog))


def test_partition_filter_prunes_files(wh: Path, cluster) -> None:
    with mpp.connect(wh, cluster=cluster) as session:
        text = session.explain("SELECT count(*) FROM orders WHERE year = 2021 AND region = 'US'")
        assert "fragments=1 of 4" in text
        text = session.explain("SELECT count(*) FROM events WHERE day = DATE '2024-01-03'")
        assert "fragments=1 of 3" in text


def test_catalog_listing_shows_decimal_columns_as_decimal(wh: Path) -> None:
    out = CliRunner().invoke(main, ["catalog", "-w", str(wh)])
    assert out.exit_code == 0, out.output
    assert re.search(r"amount\s+decimal\(10,2\)\s+0\.00\s+49\.49", out.output)
    assert "stored as" not in out.output


def test_drop_forgets_the_table_and_keeps_the_files(tmp_path: Path, lake: Path,
                                                    cluster) -> None:
    catalog = Catalog.open(tmp_path / "w", create=True)
    register_files(catalog, "orders", str(lake / "orders"), "parquet")
    before = sorted(p for p in (lake / "orders").rglob("*"))
    with mpp.connect(tmp_path / "w", cluster=cluster) as session:
        session.sql("DROP TABLE orders")
        assert "orders" not in session.catalog.tables()
    assert sorted(p for p in (lake / "orders").rglob("*")) == before


def test_cli_registers_and_reports(tmp_path: Path, lake: Path) -> None:
    Catalog.open(tmp_path / "w", create=True)
    out = CliRunner().invoke(main, ["catalog", "register", "-w", str(tmp_path / "w"),
                                    "--format", "csv", "--table", "ev",
                                    "--path", str(lake / "events")])
    assert out.exit_code == 0, out.output
    assert "registered ev: csv" in out.output and "12 rows, 3 fragments, partitioned by day" \
        in out.output
    bad = CliRunner().invoke(main, ["catalog", "register", "-w", str(tmp_path / "w"),
                                    "--format", "json", "--table", "x", "--path", "."])
    assert bad.exit_code == 2 and "'json' is not one of" in bad.output


def _error(tmp_path: Path, path: str, fmt: str, kind: type[Exception]) -> str:
    catalog = Catalog.open(tmp_path / "w", create=True)
    with pytest.raises(kind) as info:
        register_files(catalog, "t", path, fmt)
    assert Catalog.open(tmp_path / "w").tables() == []  # nothing half-registered
    return str(info.value)


def test_path_matching_nothing_is_named(tmp_path: Path, lake: Path) -> None:
    text = _error(tmp_path, str(lake / "nowhere"), "parquet", StorageError)
    assert str(lake / "nowhere") in text and "no such file or directory" in text
    text = _error(tmp_path, str(lake / "orc" / "*.parquet"), "parquet", StorageError)
    assert "no data files match" in text


def test_files_of_different_schemas_name_both_files_and_the_column(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    pq.write_table(pa.table({"a": [1], "b": ["x"]}), tmp_path / "d" / "1.parquet")
    pq.write_table(pa.table({"a": [1], "b": [2.5]}), tmp_path / "d" / "2.parquet")
    text = _error(tmp_path, str(tmp_path / "d"), "parquet", CatalogError)
    assert "1.parquet has column 'b' of type string" in text
    assert "2.parquet has column 'b' of type double" in text


def test_unreadable_file_is_named(tmp_path: Path, lake: Path) -> None:
    (tmp_path / "d").mkdir()
    pq.write_table(pa.table({"a": [1]}), tmp_path / "d" / "good.parquet")
    (tmp_path / "d" / "bad.parquet").write_bytes(b"this is not parquet")
    text = _error(tmp_path, str(tmp_path / "d"), "parquet", StorageError)
    assert "bad.parquet" in text and "corrupt" in text
    # the wrong --format for the files: the file is named too
    text = _error(tmp_path, str(lake / "orc"), "parquet", StorageError)
    assert "f0.orc" in text


def test_mixed_partition_folders_and_bad_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "d" / "k=1").mkdir(parents=True)
    pq.write_table(pa.table({"a": [1]}), tmp_path / "d" / "k=1" / "x.parquet")
    pq.write_table(pa.table({"a": [2]}), tmp_path / "d" / "y.parquet")
    text = _error(tmp_path, str(tmp_path / "d"), "parquet", CatalogError)
    assert "different partition folders" in text and "y.parquet" in text
    text = _error(tmp_path, str(tmp_path / "d"), "sqlite", CatalogError)
    assert "cannot register files of format" in text
    catalog = Catalog.open(tmp_path / "w")
    with pytest.raises(CatalogError, match="not allowed"):
        register_files(catalog, "../x", str(tmp_path / "d"), "parquet")


def test_a_glob_over_partition_folders_keeps_them_as_columns(tmp_path: Path, lake: Path) -> None:
    catalog = Catalog.open(tmp_path / "w", create=True)
    info = register_files(catalog, "recent", str(lake / "orders" / "year=2021*"), "parquet")
    assert info.partition_columns == ("year", "region")
    assert (info.stats.row_count, info.stats.fragment_count) == (100, 2)
    assert info.stats.column("year").min == info.stats.column("year").max == 2021
    eu = register_files(catalog, "eu", str(lake / "orders" / "*" / "region=EU" / "*.parquet"),
                        "parquet")
    assert [f.partition for f in catalog.fragments(eu)] == [
        (("year", 2020), ("region", "EU")), (("year", 2021), ("region", "EU"))]
