"""`mpp sql`, `mpp explain`, `mpp settings` from the shell: results, formats, error text."""

from __future__ import annotations

import io
import json

import pyarrow.csv as pacsv
from click.testing import CliRunner

from mpp.catalog import Catalog
from mpp.cli import main
from mpp.oracle import run_oracle
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
