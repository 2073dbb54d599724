"""DELETE and UPDATE with subqueries in WHERE (IN, NOT IN, EXISTS, scalar): the table's rows
afterwards equal DuckDB running the same statement on a copy of the table, NULLs included."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpp.catalog import Catalog
from mpp.config import Settings
from mpp.datagen import DatagenSpec, generate
from mpp.errors import SqlError
from mpp.session import Session
from tests.compare import assert_same_rows
from tests.write_oracle import duckdb_after

SPEC = dict(rows=2_000, partitions=4, days=3, hot_day=2, users=100, sessions=200, urls=20)


def _session(catalog: Catalog, cluster) -> Session:
    import mpp.optimizer  # noqa: F401  (registers the optimizer switches)

    return Session(catalog, cluster, Settings({}))


@pytest.fixture(scope="module")
def wh(cluster, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("wsub") / "w"
    generate(path, DatagenSpec(**SPEC), client=cluster.client, progress=False)
    s = _session(Catalog.open(path), cluster)
    # Blocked users, with a NULL (NOT IN is then never TRUE, as in Trino and DuckDB).
    s.sql("CREATE TABLE blocked AS SELECT user_id FROM users WHERE user_id % 7 = 0")
    s.sql("CREATE TABLE blocked_null AS SELECT CASE WHEN user_id = 7 THEN NULL ELSE user_id "
          "END AS user_id FROM users WHERE user_id % 7 = 0")
    return path


STATEMENTS = [
    "DELETE FROM {t} WHERE user_id IN (SELECT user_id FROM blocked)",
    "DELETE FROM {t} WHERE user_id NOT IN (SELECT user_id FROM blocked)",
    "DELETE FROM {t} WHERE user_id NOT IN (SELECT user_id FROM blocked_null)",
    "DELETE FROM {t} WHERE status = 404 AND user_id IN (SELECT user_id FROM blocked_null)",
    "DELETE FROM {t} WHERE status = 404 OR user_id IN (SELECT user_id FROM blocked)",
    "DELETE FROM {t} WHERE EXISTS (SELECT 1 FROM blocked WHERE user_id > 1000)",
    "DELETE FROM {t} WHERE NOT EXISTS (SELECT 1 FROM blocked WHERE user_id > 1000) "
    "AND status >= 500",
    "DELETE FROM {t} WHERE bytes > (SELECT avg(bytes) FROM access_log)",
    "UPDATE {t} SET status = CAST(403 AS smallint) WHERE user_id IN (SELECT user_id FROM blocked)",
    "UPDATE {t} SET bytes = 0 WHERE user_id NOT IN (SELECT user_id FROM blocked_null) "
    "OR bytes > (SELECT max(bytes) - 100 FROM access_log)",
]


@pytest.mark.parametrize("index", range(len(STATEMENTS)))
def test_statement_with_subquery_matches_duckdb(wh, cluster, index) -> None:
    catalog = Catalog.open(wh)
    s = _session(catalog, cluster)
    name = f"ws{index}"
    s.sql(f"CREATE TABLE {name} WITH (partitioned_by = ARRAY['date'], target_file_size = '8KB')"
          " AS SELECT user_id, date, status, bytes FROM access_log")
    sql = STATEMENTS[index].format(t=name)
    expected = duckdb_after(catalog, name, [sql], sources=["blocked", "blocked_null",
                                                           "access_log"])
    r = s.sql(sql)
    assert_same_rows(s.sql(f"SELECT * FROM {name}").to_arrow(), expected)
    fresh = Catalog.open(wh)
    assert fresh.table(name).stats.row_count == expected.num_rows
    if r.write is not None and r.write.files:  # files rewritten: one task per file of the table
        assert "write into" in r.explain_analyze


def test_a_correlated_subquery_is_refused_clearly(wh, cluster) -> None:
    s = _session(Catalog.open(wh), cluster)
    with pytest.raises(SqlError, match="DELETE FROM access_log: a correlated subquery"):
        s.sql("DELETE FROM access_log WHERE EXISTS (SELECT 1 FROM blocked b "
              "WHERE b.user_id = access_log.user_id)")
