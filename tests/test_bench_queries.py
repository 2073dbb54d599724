"""`mpp bench queries` states what a published figure needs: the warehouse (rows, files, users),
the cluster, the spread of the timed runs and the load average, and checks each engine's rows
against DuckDB's."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from mpp.cli import main
from mpp.datagen import DatagenSpec, generate


def test_bench_queries_names_warehouse_spread_and_load(tmp_path: Path, cluster) -> None:
    wh = tmp_path / "w"
    generate(wh, DatagenSpec(rows=3_000, partitions=3, days=3, hot_day=0, users=70,
                             sessions=60, urls=10), client=cluster.client, progress=False)
    result = CliRunner().invoke(main, ["bench", "queries", "-w", str(wh), "--query", "q1",
                                       "--engine", "mpp", "--engine", "duckdb",
                                       "--repeat", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (f"warehouse {wh}: access_log 3,000 rows in 3 files, users 70 rows; "
                        "LocalCluster 2 workers x 1 thread(s); 2 timed run(s) per engine and "
                        "query")
    mpp_row = next(line for line in lines if line.startswith("q1    mpp"))
    assert " yes " in mpp_row and "median of 2 (" in mpp_row  # DuckDB's rows, and the range
    assert lines[-1].startswith("load average (1 min) ") and lines[-1].endswith(" after")
