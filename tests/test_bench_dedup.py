"""``mpp bench dedup``'s table and queries at a small scale: the duplicates and the hot key are
as described, and both de-duplications on mpp equal DuckDB over the same files."""

from __future__ import annotations

from mpp.bench.dedup import QUERIES, TABLE, generate
from mpp.config import Settings
from mpp.oracle import run_oracle
from mpp.session import Session
from tests.compare import assert_same_rows


def test_events_dups_and_both_deduplications_match_duckdb(tmp_path, cluster):
    catalog = generate(tmp_path / "wh", rows=20_000, partitions=4, duplicates=0.05, hot=0.01)
    shape = run_oracle(f"SELECT count(*) AS n, count(DISTINCT message_id) AS ids, "
                       f"max_by(message_id, c) AS hot, max(c) AS copies FROM (SELECT "
                       f"message_id, count(*) OVER (PARTITION BY message_id) AS c FROM {TABLE})"
                       " t", catalog).to_pylist()[0]
    assert shape["n"] == 20_000
    assert 0.90 * 20_000 < shape["ids"] < 0.95 * 20_000  # ~6% of rows are copies
    assert shape["hot"] == "m0" and 150 < shape["copies"] < 250  # ~1% copies of one message
    with Session(catalog, cluster, Settings()) as s:
        for sql in QUERIES.values():
            got = s.sql(sql).to_arrow()
            assert_same_rows(got, run_oracle(sql, catalog))
            assert got["messages"].to_pylist() == [shape["ids"]]
    again = generate(tmp_path / "wh", rows=5)  # a table already there is kept
    assert again.table(TABLE).stats.row_count == 20_000
