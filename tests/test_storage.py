"""Storage layer: every format scans back what an independent reader sees; pushdown; bad files.

Oracles: DuckDB reads Parquet and CSV natively. It cannot read ORC and cannot load its sqlite
extension offline, so ORC is compared with ``pyarrow.orc`` reading the same files and SQLite
with Python's ``sqlite3`` module reading the same database (independent of mpp's scan code).
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import struct

import duckdb
import pyarrow as pa
import pyarrow.orc as porc
import pyarrow.parquet as pq
import pytest

from mpp.catalog import Catalog
from mpp.datagen import DatagenSpec, generate
from mpp.errors import StorageError
from mpp.storage import ColumnPredicate, fragment_may_match, scan_fragment
from mpp.storage import parquet as parquet_storage
from mpp.storage.base import Fragment, StorageFormat
from mpp.storage.files import local_path
from tests.compare import assert_same_rows

SPEC = dict(rows=6_000, partitions=12, days=6, users=300, hot_day=3, hot_share=0.4, urls=500)
HOT = dt.date(2017, 1, 3)
COLUMNS = ["time", "date", "user_id", "session_id", "url_id", "status", "bytes"]


# The formats a warehouse can be generated in (MySQL tables are read in place: test_mysql.py).
WRITTEN = [f for f in StorageFormat if f.writable]


@pytest.fixture(scope="module")
def warehouses(cluster, tmp_path_factory) -> dict[StorageFormat, Catalog]:
    """One small warehouse per format (every table in that format)."""
    out = {}
    for fmt in WRITTEN:
        path = tmp_path_factory.mktemp(f"wh-{fmt.value}")
        out[fmt] = generate(path / "w", DatagenSpec(**SPEC, format=fmt), client=cluster.client,
                            progress=False)
    return out


def _scan_all(catalog: Catalog, table: str, columns, predicates=()) -> tuple[pa.Table, int]:
    frags = catalog.fragments(table, predicates)
    results = [scan_fragment(f, columns, predicates) for f in frags]
    return pa.concat_tables([r.table for r in results]), sum(r.bytes_read for r in results)


def _files(catalog: Catalog, table: str) -> list[str]:
    return [local_path(f.uri) for f in catalog.fragments(table)]


def _oracle(catalog: Catalog, fmt: StorageFormat, table: str, columns, where: str = "") -> pa.Table:
    """The table's rows as read by an independent reader of the same files."""
    cols = ", ".join(columns)
    if fmt in (StorageFormat.PARQUET, StorageFormat.CSV):
        reader = "read_parquet" if fmt is StorageFormat.PARQUET else "read_csv"
        sql = f"SELECT {cols} FROM {reader}({_files(catalog, table)!r})"
        return duckdb.sql(sql + (f" WHERE {where}" if where else "")).to_arrow_table()
    if fmt is StorageFormat.ORC:
        t = pa.concat_tables(porc.read_table(p) for p in _files(catalog, table))
        con = duckdb.connect()
        con.register("t", t)
        return con.sql(f"SELECT {cols} FROM t" + (f" WHERE {where}" if where else "")
                       ).to_arrow_table()
    db = local_path(catalog.fragments(table)[0].uri)
    with sqlite3.connect(db) as con:
        rows = con.execute(f"SELECT {cols} FROM {table}" + (f" WHERE {where}" if where else "")
                           ).fetchall()
    types = {f.name: f.type for f in catalog.table(table).schema}
    # Dates and timestamps are stored as ISO text; Arrow parses them for the comparison.
    return pa.table({c: pa.array([r[i] for r in rows]).cast(types[c])
                     for i, c in enumerate(columns)})


@pytest.mark.parametrize("fmt", WRITTEN, ids=lambda f: f.value)
@pytest.mark.parametrize("table", ["access_log", "users", "sessions", "urls"])
def test_every_format_scans_back_what_an_independent_reader_sees(warehouses, fmt, table):
    catalog = warehouses[fmt]
    columns = catalog.table(table).schema.names
    got, _ = _scan_all(catalog, table, columns)
    assert got.schema == catalog.table(table).schema
    assert_same_rows(got, _oracle(catalog, fmt, table, columns))


@pytest.mark.parametrize("fmt", WRITTEN, ids=lambda f: f.value)
def test_pushdown_reads_fewer_bytes_and_the_rows_the_oracle_filters(warehouses, fmt):
    catalog = warehouses[fmt]
    preds = [ColumnPredicate("date", "=", HOT), ColumnPredicate("user_id", "<", 50)]
    full, full_bytes = _scan_all(catalog, "access_log", COLUMNS)
    got, bytes_read = _scan_all(catalog, "access_log", ["user_id", "url_id"], preds)
    assert bytes_read < full_bytes
    assert len(catalog.fragments("access_log", preds)) < len(catalog.fragments("access_log"))
    expected = _oracle(catalog, fmt, "access_log", ["user_id", "url_id"],
                       "date = DATE '2017-01-03' AND user_id < 50"
                       if fmt is not StorageFormat.SQLITE
                       else "date = '2017-01-03' AND user_id < 50")
    assert 0 < got.num_rows < full.num_rows
    assert_same_rows(got, expected)


@pytest.mark.parametrize("fmt", [StorageFormat.PARQUET, StorageFormat.ORC], ids=lambda f: f.value)
def test_columnar_scans_read_only_the_columns_asked_for(warehouses, fmt):
    frag = warehouses[fmt].fragments("access_log")[0]
    one = scan_fragment(frag, ["status"])
    every = scan_fragment(frag, COLUMNS)
    assert one.table.column_names == ["status"] and one.rows_scanned == frag.row_count
    # ORC's measured figure includes the file tail and stripe footers, a fixed cost that
    # dominates files this small; Parquet's counts column chunks only.
    assert one.bytes_read < every.bytes_read / (3 if fmt is StorageFormat.PARQUET else 1.2)


def test_parquet_row_group_pruning_inside_a_file(tmp_path):
    t = pa.table({"k": pa.array(range(1000), pa.int64()), "v": pa.array(range(1000), pa.int32())})
    uri = (tmp_path / "rg.parquet").as_uri()
    parquet_storage.write(t, uri, row_group_rows=100)
    frag = Fragment(uri=uri, format=StorageFormat.PARQUET, index=0)
    full = scan_fragment(frag, ["k", "v"])
    part = scan_fragment(frag, ["v"], [ColumnPredicate("k", ">=", 950)])
    assert part.rows_scanned == 100 and full.rows_scanned == 1000
    assert part.bytes_read < full.bytes_read / 5
    expected = duckdb.sql(f"SELECT v FROM read_parquet('{tmp_path / 'rg.parquet'}') "
                          "WHERE k >= 950").to_arrow_table()
    assert_same_rows(part.table, expected)


def test_a_predicate_the_statistics_prove_true_is_not_applied_nor_its_column_read(tmp_path):
    base = dt.datetime(2017, 1, 24)
    t = pa.table({"time": pa.array([base + dt.timedelta(minutes=i) for i in range(1000)]),
                  "k": pa.array(range(1000), pa.int64()),
                  "n": pa.array([None if i % 10 == 0 else i for i in range(1000)], pa.int64())})
    path = tmp_path / "day.parquet"
    parquet_storage.write(t, path.as_uri(), row_group_rows=250)
    frag = Fragment(uri=path.as_uri(), format=StorageFormat.PARQUET, index=0)
    cases = [  # (predicates, DuckDB's WHERE, whether the time column needs reading)
        ([ColumnPredicate("time", ">=", base)], "time >= TIMESTAMP '2017-01-24'", False),
        ([ColumnPredicate("time", ">=", base), ColumnPredicate("time", "<=", dt.datetime(2018, 1, 1))],
         "time BETWEEN TIMESTAMP '2017-01-24' AND TIMESTAMP '2018-01-01'", False),
        ([ColumnPredicate("time", ">", base)], "time > TIMESTAMP '2017-01-24'", True),  # min = v
        ([ColumnPredicate("n", ">=", 0)], "n >= 0", True),  # NULLs: the filter drops them
        ([ColumnPredicate("k", "<", 1000), ColumnPredicate("k", ">=", 500)],
         "k < 1000 AND k >= 500", True),
    ]
    plain = scan_fragment(frag, ["k"])
    for preds, where, reads_time in cases:
        got = scan_fragment(frag, ["k"], preds)
        expected = duckdb.sql(f"SELECT k FROM read_parquet('{path}') WHERE {where}"
                              ).to_arrow_table()
        assert_same_rows(got.table, expected)
        if not reads_time:  # only k was read: time settled by the statistics
            assert got.bytes_read == plain.bytes_read, where


def test_predicates_follow_sql_null_semantics_and_every_operator(tmp_path):
    t = pa.table({"a": pa.array([1, 2, None, 4, 5], pa.int64()),
                  "s": pa.array(["x", "y", "z", None, "x"])})
    path = tmp_path / "n.parquet"
    parquet_storage.write(t, path.as_uri())
    frag = Fragment(uri=path.as_uri(), format=StorageFormat.PARQUET, index=0)
    cases = [
        ([ColumnPredicate("a", "!=", 2)], "a <> 2"),
        ([ColumnPredicate("a", "in", (1, 5))], "a IN (1, 5)"),
        ([ColumnPredicate("a", "is_null")], "a IS NULL"),
        ([ColumnPredicate("s", "is_not_null"), ColumnPredicate("a", ">", 1)],
         "s IS NOT NULL AND a > 1"),
        ([ColumnPredicate("s", "<=", "x")], "s <= 'x'"),
    ]
    for preds, where in cases:
        got = scan_fragment(frag, ["a", "s"], preds).table
        expected = duckdb.sql(f"SELECT a, s FROM read_parquet('{path}') WHERE {where}"
                              ).to_arrow_table()
        assert_same_rows(got, expected)


def test_fragment_may_match_uses_partition_and_bounds():
    f = Fragment(uri="file:///x", format=StorageFormat.PARQUET, index=0,
                 partition=(("date", HOT),), bounds=(("user_id", 10, 20),))
    assert fragment_may_match(f, [ColumnPredicate("date", "=", HOT)])
    assert not fragment_may_match(f, [ColumnPredicate("date", "<", HOT)])
    assert not fragment_may_match(f, [ColumnPredicate("user_id", ">", 20)])
    assert fragment_may_match(f, [ColumnPredicate("user_id", "in", (1, 15))])
    assert not fragment_may_match(f, [ColumnPredicate("user_id", "in", (1, 25))])
    assert fragment_may_match(f, [ColumnPredicate("user_id", "is_null")])


# ---- bad files ---------------------------------------------------------------------------


def _small_parquet(tmp_path) -> tuple[Fragment, str]:
    t = pa.table({"a": pa.array(range(5000), pa.int64()), "b": pa.array(range(5000), pa.int32())})
    path = tmp_path / "small.parquet"
    parquet_storage.write(t, path.as_uri())
    return Fragment(uri=path.as_uri(), format=StorageFormat.PARQUET, index=0), str(path)


def test_missing_file_is_a_storage_error_naming_it(tmp_path):
    frag, path = _small_parquet(tmp_path)
    (tmp_path / "small.parquet").unlink()
    with pytest.raises(StorageError, match="small.parquet.*not found"):
        scan_fragment(frag, ["a"])


def test_truncated_file_is_a_storage_error_naming_it(tmp_path):
    frag, path = _small_parquet(tmp_path)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(StorageError, match="small.parquet.*truncated or corrupt"):
        scan_fragment(frag, ["a"])


def test_corrupted_parquet_page_fails_its_checksum(tmp_path):
    frag, path = _small_parquet(tmp_path)
    col = pq.read_metadata(path).row_group(0).column(0)
    chunk_end = (col.dictionary_page_offset or col.data_page_offset) + col.total_compressed_size
    data = bytearray(open(path, "rb").read())
    data[chunk_end - 10] ^= 0xFF  # inside the last data page's payload, not its header
    open(path, "wb").write(bytes(data))
    with pytest.raises(StorageError, match="small.parquet.*(CRC|checksum)"):
        scan_fragment(frag, ["a"])
    assert scan_fragment(frag, ["b"]).table.num_rows == 5000  # other column chunks are fine


def _with_footer_digest(frag: Fragment, path: str) -> Fragment:
    return Fragment(uri=frag.uri, format=frag.format, index=0, size_bytes=os.path.getsize(path),
                    options=((parquet_storage.FOOTER_DIGEST,
                              parquet_storage.footer_digest(frag.uri)),))


def test_a_damaged_footer_fails_its_recorded_digest_before_it_is_parsed(tmp_path):
    frag, path = _small_parquet(tmp_path)
    frag = _with_footer_digest(frag, path)
    assert scan_fragment(frag, ["a"], [ColumnPredicate("a", "<", 10)]).table.num_rows == 10
    data = bytearray(open(path, "rb").read())
    stats = pq.read_metadata(path).row_group(0).column(0).statistics
    # The max of column a in the footer's statistics, 4999 -> 903: without the digest, a
    # scan for a > 4000 prunes the row group and returns no rows.
    footer = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    at = data.rindex(struct.pack("<q", stats.max), footer)
    data[at + 1] ^= 0x10
    open(path, "wb").write(bytes(data))
    with pytest.raises(StorageError, match="small.parquet: its footer is damaged"):
        scan_fragment(frag, ["a"], [ColumnPredicate("a", ">", 4000)])


def test_a_file_of_another_size_than_recorded_is_a_storage_error(tmp_path):
    frag, path = _small_parquet(tmp_path)
    frag = _with_footer_digest(frag, path)
    with open(path, "ab") as f:
        f.write(b"PAR1")
    with pytest.raises(StorageError, match="small.parquet: the file is .* bytes, the catalog "
                                           "recorded"):
        scan_fragment(frag, ["a"])


@pytest.mark.parametrize("fmt", [StorageFormat.ORC, StorageFormat.CSV, StorageFormat.SQLITE],
                         ids=lambda f: f.value)
def test_missing_file_in_other_formats(warehouses, fmt, tmp_path):
    frag = warehouses[fmt].fragments("urls")[0]
    moved = Fragment(uri=frag.uri.replace("/urls", "/gone"), format=fmt, index=0,
                     options=frag.options)
    with pytest.raises(StorageError, match="gone.*not found"):
        scan_fragment(moved, ["url_id"])


def test_sqlite_predicates_it_cannot_push_are_applied_in_arrow(warehouses):
    catalog = warehouses[StorageFormat.SQLITE]
    # A float bound on an INTEGER column is not pushed into SQL (no lossless stored form).
    preds = [ColumnPredicate("user_id", "<", 7.5), ColumnPredicate("status", "=", 200)]
    got, _ = _scan_all(catalog, "access_log", ["url_id"], preds)
    expected = _oracle(catalog, StorageFormat.SQLITE, "access_log", ["url_id"],
                       "user_id < 7.5 AND status = 200")
    assert got.num_rows > 0
    assert_same_rows(got, expected)


def test_content_is_the_same_in_every_format(warehouses):
    for table in ["access_log", "users", "sessions", "urls"]:
        sums = {fmt: cat.properties(table)["mpp.content-checksum"]
                for fmt, cat in warehouses.items()}
        assert len(set(sums.values())) == 1, sums
