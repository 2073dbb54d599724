"""The data mart scenario (the source notes' chapter 3-3) end to end, at a small size.

One run of scenarios/data_mart.toml (3 days, the users master in SQLite) is shared: its own
checks pass and its report shows every step; then the tests check its tables themselves
against DuckDB recomputing them from the raw CSVs and the master's change log, rebuild the
master as of every day from the SCD2 history, and load days again (twice, and with the worker
of a write task killed) to show the re-load leaves the fact table exact. The MariaDB path runs
where a server is reachable on 127.0.0.1:3306 and is skipped, naming why, elsewhere.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pyarrow as pa
import pytest

from mpp.catalog import Catalog
from mpp.config import Settings
from mpp.errors import ScenarioError
from mpp.mart import sql
from mpp.mart.master import ChangeGenerator, ChangeRates, MasterDb
from mpp.mart.oracle import MartOracle
from mpp.mart.pipeline import _csv_file, lake_days, run_mart
from mpp.mart.spec import MartSpec
from mpp.scenario.runner import RunOutcome, run_scenario
from mpp.scenario.spec import Scenario, parse_scenario
from mpp.session import Session
from tests.compare import assert_same_rows

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
CHANGES = {"new_users": 0.02, "plan_changes": 0.05, "deletions": 0.02, "twice": 0.02}


def _scenario(**mart: object) -> Scenario:
    raw = tomllib.loads((SCENARIOS / "data_mart.toml").read_text())
    raw["data"].update(rows=3_000, partitions=3, days=3, users=300)
    raw["mart"].update({"users_master": "sqlite", "changes": CHANGES, **mart})
    return parse_scenario(raw, source="data_mart.toml", base_dir=SCENARIOS)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, cluster) -> RunOutcome:
    tmp = tmp_path_factory.mktemp("mart")
    return run_scenario(_scenario(), out=tmp / "runs", cache=tmp / "cache", cluster=cluster,
                        progress=False, echo=None)


def _session(run: RunOutcome, cluster) -> Session:
    import mpp.optimizer  # noqa: F401  (registers the optimizer switches)

    return Session(Catalog.open(run.folder / "mart-warehouse"), cluster, Settings({}))


def _oracle(run: RunOutcome) -> MartOracle:
    lake = Catalog.open(run.warehouse.path)
    days = lake_days(lake)
    oracle = MartOracle(list(days.values()), _csv_file(lake, "urls"), min(days), max(days))
    oracle.read_changes(sorted((run.folder / "mart-warehouse" / "changes").glob("*.csv")))
    return oracle


def test_the_scenario_runs_end_to_end_and_reports_every_step(run: RunOutcome) -> None:
    assert run.ok, [c.message for c in run.failures]
    report = json.loads(run.files["json"].read_text())
    steps = report["mart"]["steps"]
    assert report["mart"]["master"].startswith("SQLite") and "asked for" in report["mart"]["master"]
    fact = [s for s in steps if s["table"] == sql.FACT and s["step"] != "CREATE TABLE"]
    assert [s["step"] for s in fact] == [
        "load fact (INSERT, overwrite)", "load fact (INSERT, overwrite)",
        "load fact again (same day)", "load fact, fails before commit",
        "load fact (INSERT, overwrite)"]
    # the second load of day 2 is one more snapshot and no more rows; the failed load neither
    assert fact[2]["snapshots"] == fact[1]["snapshots"] + 1
    assert fact[2]["table_rows"] == fact[1]["table_rows"]
    assert (fact[3]["table_rows"], fact[3]["files"], fact[3]["snapshots"]) == \
        (fact[2]["table_rows"], fact[2]["files"], fact[2]["snapshots"])
    assert "injected failure" in fact[3]["note"]
    for s in steps:  # every write step measured: time, rows, bytes, files, snapshots
        assert s["seconds"] >= 0
        if "INSERT" in s["step"] or "MERGE" in s["step"] or "CREATE OR REPLACE" in s["step"]:
            assert None not in (s["rows"], s["table_rows"], s["table_bytes"], s["files"],
                                s["snapshots"])
    for table in (sql.FACT, sql.SNAPSHOT, sql.HISTORY, sql.INCREMENTS, sql.CHANGES, sql.DENORM,
                  sql.SUMMARY):
        assert f"{table} equals DuckDB" in {c.check for c in run.data.checks}
    assert "data mart (users master: SQLite" in run.summary
    assert "SCD2 history (MERGE)" in run.summary and "bytes" in run.summary
    assert "Data mart: the pipeline" in run.files["html"].read_text()


def test_each_table_equals_duckdb_recomputing_it_from_the_raw_data(run: RunOutcome,
                                                                    cluster) -> None:
    s, oracle = _session(run, cluster), _oracle(run)
    expected = {sql.FACT: oracle.fact(), sql.SNAPSHOT: oracle.snapshot(),
                sql.INCREMENTS: oracle.increments(), sql.HISTORY: oracle.history(),
                sql.CHANGES: oracle.staged_changes(),
                sql.DENORM: oracle.denormalized(), sql.SUMMARY: oracle.summary()}
    for table, want in expected.items():
        got = s.sql(f"SELECT {', '.join(want.column_names)} FROM {table}").to_arrow()
        assert got.num_rows > 0, table
        assert_same_rows(got, want)
    # the history has closed versions (changes and deletions) beside the current ones
    assert pa.compute.sum(pa.compute.invert(expected[sql.HISTORY]["is_current"])).as_py() > 0


def test_scd2_reconstruction_equals_the_snapshots_for_every_day(run: RunOutcome,
                                                                cluster) -> None:
    s, oracle = _session(run, cluster), _oracle(run)
    states = oracle.snapshot()
    days = sorted(set(states["snapshot_date"].to_pylist()))
    assert len(days) == 3
    for day in days:
        rebuilt = s.sql(sql.as_of_history(day)).to_arrow()
        assert_same_rows(rebuilt, s.sql(sql.as_of_snapshot(day)).to_arrow())
        want = states.filter(pa.compute.equal(states["snapshot_date"], day)).drop_columns(
            ["snapshot_date"])
        assert_same_rows(rebuilt, want)
        # the increments alone keep the users deleted since the first day
        kept = s.sql(sql.as_of_increments(day)).to_arrow()
        assert kept.num_rows - rebuilt.num_rows == oracle.stale_after_deletes()[day]
    assert oracle.stale_after_deletes()[days[-1]] > 0
    assert oracle.overwritten_within_day() > 0


def _fact_equals_duckdb(s: Session, run: RunOutcome) -> None:
    assert_same_rows(s.sql(f"SELECT time, user_id, session_id, url_id, status, bytes "
                           f"FROM {sql.FACT}").to_arrow(), _oracle(run).fact())


def test_a_reload_is_idempotent_also_when_a_write_task_worker_is_killed(
        run: RunOutcome, tmp_path: Path) -> None:
    """Day 1 loaded twice more; then day 2 loaded while the worker running its write task is
    killed as the task starts (Dask runs it again elsewhere). The fact table equals DuckDB
    over the raw CSVs after each, one more snapshot per load. (Runs after the tests that read
    the mart's tables: the loads leave their content as it was, not their history.)"""
    import dask

    from mpp.execution.cluster import Cluster, ClusterSpec
    from mpp.session import LOCAL_SCHEDULER_CONFIG
    from tests.chaos import Chaos, Victim, starts

    spec = ClusterSpec(workers=2, threads_per_worker=1, dashboard_address=None,
                       stall_timeout=120)
    with dask.config.set(LOCAL_SCHEDULER_CONFIG), Cluster(spec) as own:
        s = _session(run, own)
        before = len(s.catalog.snapshots(sql.FACT))
        days = list(lake_days(Catalog.open(run.warehouse.path)))
        for _ in range(2):
            s.sql(sql.load_fact(days[0]), settings=sql.OVERWRITE)
            _fact_equals_duckdb(s, run)
        victim = "stage2-write partition 0"
        own.client.register_plugin(Chaos(str(tmp_path), (Victim(victim),)),
                                   name="mpp-test-chaos")
        s.sql(sql.load_fact(days[1]), settings=sql.OVERWRITE)
        assert starts(tmp_path).count(victim) >= 2  # killed, then run again
        _fact_equals_duckdb(s, run)
        assert len(s.catalog.snapshots(sql.FACT)) == before + 3


def test_the_users_master_in_mariadb(run: RunOutcome, tmp_path: Path, cluster) -> None:
    """The same pipeline with the master table in MariaDB (its own database, dropped after)."""
    pymysql = pytest.importorskip("pymysql", reason="the pymysql package is not installed")
    try:
        pymysql.connect(host="127.0.0.1", port=3306, user="root", password="",
                        connect_timeout=3).close()
    except pymysql.MySQLError as exc:
        pytest.skip(f"no MariaDB/MySQL server reachable on 127.0.0.1:3306 ({exc})")
    spec = MartSpec(users_master="mysql://root@127.0.0.1:3306", seed=7,
                    changes=ChangeRates(**CHANGES), reload_day=2, failed_day=0)
    result = run_mart(spec, lake=run.warehouse.path, warehouse=tmp_path / "w", cluster=cluster)
    assert result.ok, [c.message for c in result.checks if not c.ok]
    assert result.master.startswith("MariaDB/MySQL mysql://root@127.0.0.1:3306/mpp_mart_")
    database = result.master.rsplit("/", 1)[1]
    con = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    with con.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (database,))
        assert cur.fetchall() == ()  # dropped when the run ended
    con.close()


def test_auto_falls_back_to_sqlite_and_says_why(tmp_path: Path, monkeypatch) -> None:
    import mpp.mart.master as master

    monkeypatch.setattr(master, "DEFAULT_MYSQL", "mysql://root@127.0.0.1:1")
    db = MasterDb.open("auto", tmp_path)
    assert db.kind == "sqlite"
    assert db.describe().startswith(f"SQLite {tmp_path / 'users_master.sqlite'} (MariaDB not "
                                    "reachable at mysql://root@127.0.0.1:1: ")
    from mpp.errors import StorageError

    with pytest.raises(StorageError, match="cannot connect"):  # a named server must be there
        MasterDb.open("mysql://root@127.0.0.1:1", tmp_path)


def test_the_change_generator_is_seeded() -> None:
    users = pa.table({"user_id": pa.array([1, 2, 3, 4], pa.int64()),
                      "created_at": pa.array([0, 1, 2, 3], pa.timestamp("us")),
                      "country": ["US", "KR", "JP", "DE"], "plan": ["free"] * 4})
    import datetime as dt

    def changes() -> list[pa.Table]:
        gen = ChangeGenerator(3, ChangeRates(0.25, 0.5, 0.25, 0.25))
        return [gen.initial(users), gen.day(dt.date(2017, 1, 1)), gen.day(dt.date(2017, 1, 2))]

    first, again = changes(), changes()
    assert all(a.equals(b) for a, b in zip(first, again, strict=True))
    ops = first[1]["op"].to_pylist()
    assert {"insert", "update", "delete"} <= set(ops)


def test_mart_section_needs_csv_data_and_days_in_range() -> None:
    raw = tomllib.loads((SCENARIOS / "data_mart.toml").read_text())
    raw["data"]["format"] = "parquet"
    raw["mart"]["reload_day"] = 9
    with pytest.raises(ScenarioError) as err:
        parse_scenario(raw, source="data_mart.toml", base_dir=SCENARIOS)
    assert "mart.reload_day: a day in 1..5 of the data" in str(err.value)
    assert "data.format: the [mart] pipeline loads" in str(err.value)
