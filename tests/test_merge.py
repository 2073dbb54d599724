"""MERGE INTO: Trino's semantics (clauses in order, NULL keys never match, a target row matched
twice is an error), checked against DuckDB's MERGE on the same starting data; only target
files holding a matched row are rewritten, all in one snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpp.catalog import Catalog
from mpp.config import Settings
from mpp.datagen import DatagenSpec, generate
from mpp.errors import MppError, SqlError, StorageError
from mpp.session import Session
from mpp.storage.files import local_path
from tests.compare import assert_same_rows
from tests.write_oracle import duckdb_after

SPEC = dict(rows=3_000, partitions=6, days=4, hot_day=2, users=200, sessions=300, urls=40)

TARGET = """CREATE TABLE {name} WITH (partitioned_by = ARRAY['grp']) AS
SELECT * FROM (VALUES (1, 'a', 10), (2, 'a', 20), (3, 'b', 30), (4, 'b', 40), (5, 'c', 50),
                      (CAST(NULL AS integer), 'c', 60)) AS v(k, grp, val)"""
SOURCE = """CREATE TABLE {name} AS
SELECT * FROM (VALUES (2, 'a', 200, false), (3, 'b', 300, true), (5, 'c', 500, false),
                      (7, 'd', 700, false), (8, 'a', -1, false),
                      (CAST(NULL AS integer), 'e', 900, false)) AS v(k, grp, val, gone)"""


def _session(catalog: Catalog, cluster, **settings) -> Session:
    import mpp.optimizer  # noqa: F401  (registers the optimizer switches)

    return Session(catalog, cluster, Settings(settings))


@pytest.fixture(scope="module")
def wh(cluster, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("merge") / "w"
    generate(path, DatagenSpec(**SPEC), client=cluster.client, progress=False)
    s = _session(Catalog.open(path), cluster)
    s.sql(SOURCE.format(name="src"))
    s.sql("CREATE TABLE src_empty AS SELECT * FROM src WHERE false")
    return path


def _merge_matches_duckdb(wh: Path, cluster, name: str, sql: str, sources=("src",)) -> Catalog:
    """A fresh target ``name``; ``sql`` run by mpp and by DuckDB on a copy: same rows after."""
    s = _session(Catalog.open(wh), cluster)
    s.sql(TARGET.format(name=name))
    before = Catalog.open(wh)
    expected = duckdb_after(before, name, [sql], sources)
    result = _session(Catalog.open(wh), cluster).sql(sql)
    after = Catalog.open(wh)  # statistics and integrity record checked on load
    actual = _session(after, cluster).sql(f"SELECT * FROM {name}").to_arrow()
    assert_same_rows(actual, expected)
    assert after.table(name).stats.row_count == actual.num_rows
    assert result.write is not None
    return after


@pytest.mark.parametrize("sql", [
    # clauses in order: a matched row the DELETE's condition holds for is not updated
    """MERGE INTO {t} USING src ON {t}.k = src.k
       WHEN MATCHED AND src.gone THEN DELETE
       WHEN MATCHED THEN UPDATE SET val = src.val
       WHEN NOT MATCHED THEN INSERT (k, grp, val) VALUES (src.k, src.grp, src.val)""",
    # aliases, conditions on both sides, an INSERT listing some columns
    """MERGE INTO {t} AS t USING src AS s ON t.k = s.k
       WHEN MATCHED AND t.val > 25 THEN UPDATE SET val = t.val + s.val, grp = 'z'
       WHEN NOT MATCHED AND s.val > 0 THEN INSERT (k, val) VALUES (s.k, s.val * 2)""",
    # a source query; only inserts
    """MERGE INTO {t} AS t USING (SELECT k + 100 AS k, grp FROM src) AS s ON t.k = s.k
       WHEN NOT MATCHED THEN INSERT VALUES (s.k, s.grp, 1)""",
    # only deletes, an ON condition beyond equality
    """MERGE INTO {t} AS t USING src AS s ON t.k = s.k AND s.val > 250
       WHEN MATCHED THEN DELETE""",
])
def test_merge_matches_duckdb(wh, cluster, sql) -> None:
    name = f"mt{abs(hash(sql)) % 10**6}"
    after = _merge_matches_duckdb(wh, cluster, name, sql.format(t=name))
    assert len(after.snapshots(name)) == 2  # ONE snapshot for the MERGE


def test_only_files_with_a_matched_row_are_rewritten(wh, cluster) -> None:
    sql = """MERGE INTO m_files AS t USING src AS s ON t.k = s.k
             WHEN MATCHED AND s.k = 2 THEN UPDATE SET val = 0"""
    before = Catalog.open(wh)
    s = _session(before, cluster)
    s.sql(TARGET.format(name="m_files"))
    old = {dict(f.partition)["grp"]: f.uri for f in Catalog.open(wh).fragments("m_files")}
    _merge_matches_duckdb(wh, cluster, "m_files2", sql.replace("m_files", "m_files2"))
    s.sql(sql)
    after = Catalog.open(wh)
    new = {dict(f.partition)["grp"]: f.uri for f in after.fragments("m_files")}
    assert new["b"] == old["b"] and new["c"] == old["c"]  # 3 and 5 matched, no clause applied
    assert new["a"] != old["a"]
    snaps = after.snapshots("m_files")
    assert len(snaps) == 2 and snaps[-1]["operation"] == "overwrite"


def test_a_target_row_matched_twice_is_an_error_and_changes_nothing(wh, cluster) -> None:
    s = _session(Catalog.open(wh), cluster)
    s.sql(TARGET.format(name="m_twice"))
    sql = """MERGE INTO m_twice AS t USING (SELECT * FROM src UNION ALL SELECT * FROM src
             WHERE k = 3) AS s ON t.k = s.k WHEN MATCHED THEN UPDATE SET val = s.val"""
    before = Catalog.open(wh)
    # DuckDB differs from Trino here: it applies one of the two matches. mpp follows Trino.
    duckdb_after(before, "m_twice", [sql], ["src"])
    snaps = before.snapshots("m_twice")
    with pytest.raises(MppError, match="One MERGE target table row matched more than one "
                                       "source row"):
        _session(Catalog.open(wh), cluster).sql(sql)
    assert Catalog.open(wh).snapshots("m_twice") == snaps


def test_an_empty_source_changes_nothing(wh, cluster) -> None:
    sql = """MERGE INTO m_empty AS t USING src_empty AS s ON t.k = s.k
             WHEN MATCHED THEN DELETE
             WHEN NOT MATCHED THEN INSERT VALUES (s.k, s.grp, s.val)"""
    after = _merge_matches_duckdb(wh, cluster, "m_empty", sql, ("src_empty",))
    assert len(after.snapshots("m_empty")) == 1  # nothing committed


@pytest.mark.parametrize(("sql", "message"), [
    ("MERGE INTO m_err t USING src s ON t.k = s.k WHEN MATCHED THEN UPDATE SET nosuch = 1",
     "unknown column nosuch"),
    ("MERGE INTO m_err t USING src s ON t.k = s.k WHEN NOT MATCHED THEN INSERT VALUES (s.k)",
     "gives 1 values for 3 columns"),
    ("MERGE INTO m_err t USING src s ON t.k = s.k WHEN MATCHED THEN UPDATE SET val = 'x'",
     "column val is"),
    ("MERGE INTO m_err t USING (SELECT 1 AS k) ON t.k = 1 WHEN MATCHED THEN DELETE",
     "needs an alias"),
])
def test_merge_errors(wh, cluster, sql, message) -> None:
    s = _session(Catalog.open(wh), cluster)
    if "m_err" not in s.catalog.tables():
        s.sql(TARGET.format(name="m_err"))
    with pytest.raises(SqlError, match=message):
        s.sql(sql)


def test_merge_of_a_many_file_table_matches_duckdb(wh, cluster) -> None:
    """A dimension of several partitions; updates and deletes in one of them, inserts in all:
    the other partitions' files are kept, new rows go to new files."""
    s = _session(Catalog.open(wh), cluster, **{"write.target_file_bytes": 8192})
    s.sql("CREATE TABLE m_dim WITH (partitioned_by = ARRAY['date']) AS "
          "SELECT date, user_id, count(*) AS hits, max(status) AS status FROM access_log "
          "GROUP BY date, user_id")
    s.sql("CREATE TABLE m_changes AS "
          "SELECT date, user_id, hits * 10 AS hits, status FROM m_dim WHERE user_id % 7 = 0 "
          "AND date = DATE '2017-01-02' UNION ALL SELECT date, user_id + 100000, 1, status FROM m_dim WHERE user_id % 11 = 0")
    sql = """MERGE INTO m_dim AS d USING m_changes AS c
             ON d.date = c.date AND d.user_id = c.user_id
             WHEN MATCHED AND c.status = 404 THEN DELETE
             WHEN MATCHED THEN UPDATE SET hits = c.hits
             WHEN NOT MATCHED THEN INSERT VALUES (c.date, c.user_id, c.hits, c.status)"""
    before = Catalog.open(wh)
    others = {f.uri for f in before.fragments("m_dim") if dict(f.partition)["date"].day != 2}
    expected = duckdb_after(before, "m_dim", [sql], ["m_changes"])
    plan = s.explain(sql)
    assert plan.startswith("MergeInto: m_dim:")
    r = _session(Catalog.open(wh), cluster, **{"write.target_file_bytes": 8192}).sql(sql)
    after = Catalog.open(wh)
    actual = _session(after, cluster).sql("SELECT * FROM m_dim").to_arrow()
    assert_same_rows(actual, expected)
    assert after.table("m_dim").stats.row_count == actual.num_rows
    assert others and others <= {f.uri for f in after.fragments("m_dim")}  # only inserts there
    assert r.write is not None and "Commit: Iceberg overwrite" in r.explain_analyze
    assert len(after.snapshots("m_dim")) == 2


def test_a_failure_before_the_commit_leaves_the_table_as_it_was(wh, cluster) -> None:
    s = _session(Catalog.open(wh), cluster)
    s.sql(TARGET.format(name="m_fail"))
    catalog = Catalog.open(wh)
    state = (catalog.snapshots("m_fail"), {f.uri for f in catalog.fragments("m_fail")})
    sql = """MERGE INTO m_fail AS t USING src AS s ON t.k = s.k
             WHEN MATCHED THEN UPDATE SET val = s.val
             WHEN NOT MATCHED THEN INSERT VALUES (s.k, s.grp, s.val)"""
    with pytest.raises(StorageError, match="injected failure"):
        _session(Catalog.open(wh), cluster, **{"write.fail_task": 0}).sql(sql)
    fresh = Catalog.open(wh)
    assert (fresh.snapshots("m_fail"), {f.uri for f in fresh.fragments("m_fail")}) == state
    location = Path(local_path(fresh.table("m_fail").location) or "")
    assert {str(p) for p in location.rglob("*.parquet")} == {
        local_path(u) for u in state[1]}  # the failed statement's files are gone


@pytest.mark.parametrize(("sql", "message"), [
    ("MERGE INTO t USING s ON t.k = s.k WHEN NOT MATCHED BY SOURCE THEN DELETE",
     "NOT MATCHED BY SOURCE"),
    ("MERGE INTO t USING t ON t.k = t.k WHEN MATCHED THEN DELETE", "give one an alias"),
    ("MERGE INTO t USING s ON t.k = s.k WHEN NOT MATCHED THEN INSERT (k, v) VALUES (1)",
     "lists 2 columns and 1 values"),
])
def test_merge_statements_refused_when_parsed(sql, message) -> None:
    from mpp.sql.statements import parse_statement

    with pytest.raises(SqlError, match=message):
        parse_statement(sql)


def test_a_source_larger_than_the_target_is_still_broadcast(wh, cluster) -> None:
    sql = """MERGE INTO m_big AS t USING (SELECT CAST(user_id % 10 AS integer) AS k, min(status) AS st,
             max(bytes) AS b FROM access_log GROUP BY 1) AS s ON t.k = s.k
             WHEN MATCHED AND s.b > 0 THEN UPDATE SET val = s.b
             WHEN NOT MATCHED THEN INSERT (k, grp, val) VALUES (s.k, 'n', s.st)"""
    after = _merge_matches_duckdb(wh, cluster, "m_big", sql, ("access_log",))
    assert len(after.snapshots("m_big")) == 2
