"""``mpp bench writes`` at tiny sizes: the table has a row per step and engine, and after each
step mpp's table equals DuckDB's (read whole, compared as Arrow)."""

from __future__ import annotations

import duckdb
from click.testing import CliRunner

from mpp.bench.writes import DUCKDB_FILE, STEPS, TABLES, bench_writes, format_runs
from mpp.catalog import Catalog
from mpp.cli import main
from mpp.config import Settings
from mpp.session import Session
from tests.compare import assert_same_rows


def test_each_write_leaves_the_same_table_on_mpp_and_duckdb(tmp_path, cluster):
    work = tmp_path / "work"
    runs = bench_writes(work, fact_rows=33 * 400, dim_rows=3_000, changed=300, small_files=20)
    assert [(r.step, r.engine) for r in runs] == [(s, e) for s in STEPS
                                                  for e in ("mpp", "duckdb")]
    for r in runs:
        assert r.matches_duckdb is (None if r.engine == "duckdb" else True), r
        assert (r.wall_seconds is None) == (r.step == "optimize" and r.engine == "duckdb")
    rows = {(r.step, r.engine): r.rows for r in runs}
    assert rows[("fact", "mpp")] == rows[("fact", "duckdb")] == 33 * 400
    assert rows[("dim", "mpp")] == 3_000 + 150  # 150 updates, 150 new users
    optimize = next(r for r in runs if r.step == "optimize" and r.engine == "mpp")
    before, after = (int(x.replace(",", "")) for x in optimize.note.split(" files -> "))
    assert before >= 10 and after < before
    con = duckdb.connect(str(work / DUCKDB_FILE), read_only=True)
    try:
        with Session(Catalog.open(work), cluster, Settings()) as s:
            for table in TABLES.values():
                assert_same_rows(s.sql(f"SELECT * FROM {table}").to_arrow(),
                                 con.sql(f"SELECT * FROM {table}").to_arrow_table())
    finally:
        con.close()
    lines = format_runs(runs).splitlines()
    assert lines[0].split()[:3] == ["step", "engine", "wall"] and len(lines) == 7
    assert lines[-1].split()[:4] == ["optimize", "duckdb", "-", "-"]


def test_cli_rejects_a_work_directory_of_other_sizes(tmp_path):
    work = tmp_path / "work"
    bench_writes(work, fact_rows=33 * 100, dim_rows=500, changed=10, small_files=4,
                 steps=("dim",))
    out = CliRunner().invoke(main, ["bench", "writes", "-w", str(work), "--fact-rows", "6600",
                                    "--dim-rows", "500"])
    assert out.exit_code != 0
    assert "holds access_log / users of 3,300 / 500 rows, not 6,600 / 500" in out.output
