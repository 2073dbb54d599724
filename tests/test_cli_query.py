"""`mpp sql`, `mpp explain`, `mpp settings` from the shell: results, formats, error text."""

from __future__ import annotations

import datetime as dt
import io
import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from click.testing import CliRunner

from mpp.catalog import Catalog
from mpp.cli import main
from mpp.oracle import run_oracle
from mpp.query_cli import write_table
from tests.compare import assert_same_rows
from tests.query_warehouses import warehouse

QUERY = "SELECT date, count(DISTINCT user_id) users FROM access_log GROUP BY date"


def _run(cluster, *args: str) -> object:
    wh = str(warehouse(cluster.client, "parquet", 3))
    address = cluster.client.scheduler.address
    return CliRunner().invoke(main, [args[0], "-w", wh, "--scheduler", address, *args[1:]])


def test_sql_csv_and_json_match_duckdb(cluster) -> None:
    expected = run_oracle(QUERY, Catalog.open(warehouse(cluster.client, "parquet", 3)))
    result = _run(cluster, "sql", "--output", "csv", QUERY)
    assert result.exit_code == 0, result.output
    csv_text = result.stdout
    assert_same_rows(pacsv.read_csv(io.BytesIO(csv_text.encode())), expected)
    result = _run(cluster, "sql", "--output", "json", "--set", "execution.hash_buckets=3", QUERY)
    rows = json.loads(result.stdout)
    assert len(rows) == expected.num_rows and set(rows[0]) == {"date", "users"}


def test_sql_table_output_is_readable(cluster) -> None:
    result = _run(cluster, "sql", "SELECT count(*) n FROM access_log")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].strip() == "n"
    assert "4000" in result.stdout and "(1 row)" in result.stdout


def test_bad_sql_names_line_and_column(cluster) -> None:
    result = _run(cluster, "sql", "SELECT date,\n  count(*) FROM access_lg GROUP BY date")
    assert result.exit_code == 2
    assert "mpp: error:" in result.stderr and "access_lg" in result.stderr
    assert "access_log" in result.stderr  # the closest table is suggested
    assert "line 2" in result.stderr and "Traceback" not in result.stderr
    result = _run(cluster, "sql", "SELECT date FROM access_log WHERE")
    assert result.exit_code == 2 and "line 1, column" in result.stderr


def test_unknown_setting_suggests(cluster) -> None:
    result = _run(cluster, "sql", "--set", "execution.hash_bucket=3", QUERY)
    assert result.exit_code == 2
    assert "execution.hash_buckets" in result.stderr


def test_explain_and_analyze(cluster) -> None:
    result = _run(cluster, "explain", QUERY)
    assert result.exit_code == 0, result.output
    assert "Stage 1 [stage1-scan-partial-agg]: 3 tasks (one per fragment)" in result.stdout
    assert "ExchangeExec(HASH)" in result.stdout
    result = _run(cluster, "explain", "--analyze", QUERY)
    assert "measured stage1-scan-partial-agg: 3 tasks" in result.stdout
    assert "Wall time" in result.stdout
    result = _run(cluster, "explain", "--stage", "logical", QUERY)
    assert result.exit_code == 0 and "Stage 1" not in result.stdout


def test_settings_lists_every_setting() -> None:
    result = CliRunner().invoke(main, ["settings"])
    assert result.exit_code == 0
    for name in ("execution.hash_buckets", "execution.exchange_fan_in", "join.strategy",
                 "optimizer.pushdown_predicates"):
        assert name in result.output


def test_table_output_aligns_numbers_and_has_no_trailing_spaces(cluster) -> None:
    result = _run(cluster, "sql", "SELECT status, count(*) c, min(url_id) u FROM access_log "
                  "GROUP BY status ORDER BY status")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(line == line.rstrip() for line in lines)
    header, rule, *rows, footer = lines
    widths = [len(part) for part in rule.split("-+-")]
    cells = [row.split(" | ") for row in rows]
    for row in cells:  # numbers right-aligned: padded on the left to the column's width
        assert len(row[0]) == widths[0] and row[0] == row[0].rjust(widths[0])
        assert row[1] == row[1].strip().rjust(widths[1])
    assert header.split(" | ")[0] == "status".rjust(widths[0])
    assert footer == f"({len(rows)} rows)"
    one = _run(cluster, "sql", "SELECT count(*) n FROM access_log")
    assert "(1 row)" in one.stdout and ": 1 row in " in one.stderr


def test_table_output_stops_at_max_rows_but_csv_does_not(cluster) -> None:
    query = "SELECT user_id FROM access_log LIMIT 50"
    result = _run(cluster, "sql", "--max-rows", "10", query)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2 + 10 + 2
    assert lines[-2] == ("... 40 more rows not shown (--max-rows 10); use --output csv or json "
                         "for all")
    assert lines[-1] == "(50 rows)"
    assert len(_run(cluster, "sql", "--max-rows", "0", query).stdout.splitlines()) == 53
    csv_text = _run(cluster, "sql", "--output", "csv", query).stdout
    assert len(csv_text.splitlines()) == 51
    result = _run(cluster, "sql", "--output", "csv", "--max-rows", "10", query)
    assert result.exit_code == 2 and "--max-rows applies to --output table" in result.stderr


def test_json_output_is_strict_json(cluster) -> None:
    result = _run(cluster, "sql", "--output", "json",
                  "SELECT CAST('nan' AS DOUBLE) x, CAST('inf' AS DOUBLE) y, 1.5 z "
                  "FROM access_log LIMIT 1")
    assert result.exit_code == 0, result.output

    def reject(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token}")

    # 1.5 is DECIMAL(2, 1): its exact digits as a string, as Trino's client protocol sends them
    assert json.loads(result.stdout, parse_constant=reject) == [{"x": None, "y": None,
                                                                 "z": "1.5"}]
    assert result.stdout.startswith('[\n  {\n    "x": null,')  # indent 2


def test_every_explain_stage_ends_with_one_newline(cluster) -> None:
    for stage in ("logical", "optimized", "physical", "analyze"):
        result = _run(cluster, "explain", "--stage", stage, QUERY)
        assert result.exit_code == 0, result.output
        assert result.stdout.endswith("\n") and not result.stdout.endswith("\n\n"), stage


def test_explain_analyze_with_another_stage_is_a_usage_error(cluster) -> None:
    result = _run(cluster, "explain", "--analyze", "--stage", "logical", QUERY)
    assert result.exit_code == 2
    assert "--analyze runs the query" in result.stderr and "--stage logical" in result.stderr
    result = _run(cluster, "explain", "--analyze", "--stage", "analyze", QUERY)
    assert result.exit_code == 0 and "Wall time" in result.stdout


def test_scheduler_with_local_cluster_shape_is_a_usage_error(cluster) -> None:
    result = _run(cluster, "sql", "--threads", "2", QUERY)
    assert result.exit_code == 2
    assert "--threads shapes the LocalCluster mpp starts; with --scheduler" in result.stderr


class _Writes(io.BytesIO):
    """A binary stream that keeps each write's size."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.sizes.append(len(data))
        return super().write(data)


def _sample(n: int) -> pa.Table:
    return pa.table({"i": pa.array(range(n), pa.int64()),
                     "x": pa.array([float("nan") if i % 7 == 0 else i / 3 for i in range(n)]),
                     "s": pa.array([None if i % 5 == 0 else f"é{i}\n\"q\"" for i in range(n)]),
                     "t": pa.array([dt.datetime(2017, 1, 1, 0, 0, i % 60) for i in range(n)]),
                     "l": pa.array([[i, None] for i in range(n)])})


@pytest.mark.parametrize("n", [0, 1, 9, 10, 25])
def test_json_output_is_written_batch_by_batch_and_reads_as_one_document(n: int) -> None:
    table = _sample(n)
    out = _Writes()
    write_table(table, "json", out, batch_rows=10)
    # the bytes one json.dumps of every row gives (as before streaming): same document
    rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
            for r in table.to_pylist()]
    assert out.getvalue().decode() == json.dumps(rows, default=str, indent=2,
                                                 allow_nan=False) + "\n"
    assert len(out.sizes) == -(-n // 10) + 1  # one write per batch of 10, then the closing
    assert max(out.sizes) < 3000  # never the whole document at once


def test_csv_output_is_written_batch_by_batch_with_one_header() -> None:
    table = _sample(25).drop_columns(["l"])
    out = _Writes()
    write_table(table, "csv", out, batch_rows=10)
    whole = io.BytesIO()
    pacsv.write_csv(table, whole)
    assert out.getvalue() == whole.getvalue()
    assert len(out.sizes) >= 3  # the header and batches arrive separately
    assert max(out.sizes) < len(whole.getvalue()) / 2


def test_a_query_opening_with_a_sql_comment_is_the_query_not_an_option(cluster) -> None:
    commented = "-- users per day\n" + QUERY
    result = _run(cluster, "sql", "--output", "csv", commented)
    assert result.exit_code == 0, result.output
    expected = run_oracle(QUERY, Catalog.open(warehouse(cluster.client, "parquet", 3)))
    assert_same_rows(pacsv.read_csv(io.BytesIO(result.stdout.encode())), expected)
    # the query comes before an option too, and EXPLAIN reads it the same way
    result = _run(cluster, "explain", "--  plan\n" + QUERY, "--stage", "logical")
    assert result.exit_code == 0, result.output
    assert "Aggregate" in result.stdout
    # positions are those of the text as written: line 2 here
    result = _run(cluster, "sql", "-- oops\nSELECT nope FROM access_log")
    assert result.exit_code == 2 and "line 2, column 8" in result.stderr, result.stderr
    # an unknown option is still one
    result = _run(cluster, "sql", "--outptu", "csv", QUERY)
    assert result.exit_code == 2 and "No such option '--outptu'" in result.output
