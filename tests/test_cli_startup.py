"""`mpp sql` against a running `mpp cluster` imports only what a query needs: none of the
report, benchmark, ingestion, write or oracle code, nor their libraries (bokeh, DuckDB,
dask.dataframe, the brokers' and databases' clients), which would cost seconds of start-up
(docs/usage.md gives the measured breakdown). `--timing` says where the command's time went.

Behaviour, not speed: the test checks which modules a fresh `mpp sql` process holds, never how
long it took."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mpp.datagen import DatagenSpec, generate
from mpp.execution import background

# Modules a read-only `mpp sql` must not import (the top-level name covers its submodules).
NOT_IMPORTED = ("bokeh", "duckdb", "dask.dataframe", "dask.array", "polars", "tqdm", "IPython",
                "paho", "nats", "pymysql", "psycopg", "mpp.scenario", "mpp.bench",
                "mpp.datagen", "mpp.oracle", "mpp.write", "mpp.ingest", "mpp.mart")

# Runs the command as `mpp` does, then prints which of NOT_IMPORTED it imported.
PROBE = """
import json, sys
from mpp.cli import main
try:
    main(sys.argv[2:], prog_name="mpp")
except SystemExit as exc:
    assert not exc.code, exc.code
names = json.loads(sys.argv[1])
print("IMPORTED:" + json.dumps(sorted(m for m in sys.modules
                                      if any(m == n or m.startswith(n + ".") for n in names))))
"""


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory, cluster) -> Path:
    out = tmp_path_factory.mktemp("startup") / "w"
    generate(out, DatagenSpec(rows=2_000, partitions=2, days=2, hot_day=0, users=50,
                              sessions=60, urls=10), client=cluster.client, progress=False)
    return out


@pytest.fixture()
def recorded(cluster, tmp_path: Path) -> Path:
    """A cluster record (as `mpp cluster start` writes it) naming the suite's cluster."""
    record = background.ClusterRecord(
        scheduler=cluster.client.scheduler.address, dashboard=None, pid=os.getpid(),
        workers=2, threads_per_worker=1, memory_limit=None, started="now")
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(dataclasses.asdict(record)))
    return path


def test_sql_on_a_running_cluster_imports_no_heavy_module(wh: Path, recorded: Path) -> None:
    env = {**os.environ, background.RECORD_ENV: str(recorded)}
    args = ["sql", "-w", str(wh), "--timing",
            "SELECT date, count(DISTINCT user_id) AS users FROM access_log GROUP BY date"]
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(NOT_IMPORTED), *args],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "(2 rows)" in proc.stdout  # the query ran, on the recorded cluster
    imported = json.loads(proc.stdout.split("IMPORTED:")[1])
    assert imported == []
    # --timing: the whole command, the query's share, and each part, on stderr
    assert "timing: " in proc.stderr and "s in all, the query" in proc.stderr
    for part in ("Python start-up and imports", "catalog, parse and bind",
                 "cluster: find, connect, check", "the query: plan and run",
                 "print the result", "close"):
        assert f"  {part}" in proc.stderr, part
