"""CREATE OR REPLACE TABLE ... AS SELECT: one overwrite snapshot replacing the content; the
old snapshots (and their files) stay readable; results equal DuckDB over the same files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpp.catalog import Catalog, iceberg
from mpp.config import Settings
from mpp.datagen import DatagenSpec, generate
from mpp.errors import SqlError
from mpp.oracle import run_oracle
from mpp.session import Session
from mpp.sql.statements import parse_statement
from tests.compare import assert_same_rows

SPEC = dict(rows=4_000, partitions=8, days=4, hot_day=2, users=300, sessions=400, urls=40)


def _session(catalog: Catalog, cluster) -> Session:
    import mpp.optimizer  # noqa: F401  (registers the optimizer switches)

    return Session(catalog, cluster, Settings({}))


@pytest.fixture(scope="module")
def wh(cluster, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("replace") / "w"
    generate(path, DatagenSpec(**SPEC), client=cluster.client, progress=False)
    return path


def test_create_or_replace_is_one_overwrite_and_keeps_history(wh, cluster) -> None:
    catalog = Catalog.open(wh)
    s = _session(catalog, cluster)
    old_sql = "SELECT date, status, bytes FROM access_log WHERE status = 200"
    new_sql = "SELECT date, status, bytes FROM access_log WHERE status <> 200"
    # OR REPLACE of a table that does not exist creates it.
    s.sql(f"CREATE OR REPLACE TABLE rep1 WITH (partitioned_by = ARRAY['date']) AS {old_sql}")
    first = Catalog.open(wh).snapshots("rep1")
    r = s.sql(f"CREATE OR REPLACE TABLE rep1 WITH (partitioned_by = ARRAY['date']) AS {new_sql}")
    assert r.to_arrow().column("rows").to_pylist() == \
        run_oracle(f"SELECT count(*) FROM ({new_sql})", catalog).column(0).to_pylist()
    fresh = Catalog.open(wh)  # checks the new metadata, statistics and integrity record
    snaps = fresh.snapshots("rep1")
    assert snaps[:-1] == first and len(snaps) == 2 and snaps[-1]["operation"] == "overwrite"
    actual = _session(fresh, cluster).sql("SELECT * FROM rep1").to_arrow()
    assert_same_rows(actual, run_oracle(new_sql, fresh))
    assert_same_rows(actual, run_oracle("SELECT * FROM rep1", fresh))
    assert fresh.table("rep1").stats.row_count == actual.num_rows
    # The old snapshot still reads as the old content (its files were not deleted).
    tbl = fresh.iceberg.load_table((iceberg.NAMESPACE, "rep1"))
    old = tbl.scan(snapshot_id=first[0]["snapshot_id"]).to_arrow()
    assert_same_rows(old, run_oracle(old_sql, fresh))
    assert "Iceberg overwrite, snapshot" in r.explain_analyze
    assert s.explain(f"CREATE OR REPLACE TABLE rep1 AS {new_sql}").startswith(
        "CreateTableAs (or replace): rep1")


@pytest.mark.parametrize(("sql", "message"), [
    ("CREATE OR REPLACE TABLE rep2 AS SELECT date, status FROM access_log",
     "3 columns would become 2"),
    ("CREATE OR REPLACE TABLE rep2 AS SELECT date, bytes AS status, bytes FROM access_log",
     "column status smallint would become status integer"),
    ("CREATE OR REPLACE TABLE rep2 WITH (partitioned_by = ARRAY['date']) AS "
     "SELECT date, status, bytes FROM access_log",
     "the table is partitioned by (), the statement by (date)"),
])
def test_replace_refuses_schema_and_partitioning_changes(wh, cluster, sql, message) -> None:
    catalog = Catalog.open(wh)
    s = _session(catalog, cluster)
    if "rep2" not in catalog.tables():
        s.sql("CREATE TABLE rep2 AS SELECT date, status, bytes FROM access_log")
    snaps = catalog.snapshots("rep2")
    with pytest.raises(SqlError, match=message.replace("(", r"\(").replace(")", r"\)")):
        s.sql(sql)
    assert Catalog.open(wh).snapshots("rep2") == snaps


def test_or_replace_with_if_not_exists_is_refused() -> None:
    with pytest.raises(SqlError, match="cannot be used together"):
        parse_statement("CREATE OR REPLACE TABLE IF NOT EXISTS t AS SELECT 1 AS a")
