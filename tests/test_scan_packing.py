"""Packing a scan's small fragments into tasks (scan.max_task_bytes): task counts, EXPLAIN,
task records, and results equal to DuckDB's with packing on (many small fragments, pruning,
a union and a join reading two scans, LIMIT, the catalog's row counts)."""

from __future__ import annotations

import pyarrow as pa
import pytest

import mpp
from mpp.catalog.model import TableInfo, TableStats
from mpp.config import PlannerContext, Settings
from mpp.errors import MppError
from mpp.logical import nodes as ln
from mpp.oracle import run_oracle
from mpp.physical.packing import pack, read_bytes
from mpp.physical.planner import combine_count, plan_physical
from mpp.storage.base import COLUMN_BYTES, Fragment, StorageFormat
from tests.compare import assert_each_matches_oracle, assert_same_rows
from tests.query_warehouses import ONE_TASK_PER_FRAGMENT, warehouse

MIB = 1024 * 1024
FRAGMENTS = 40  # a warehouse of many small fragments (100 rows each)


def _ctx(threads: int = 2, **settings: object) -> PlannerContext:
    return PlannerContext(Settings({k.replace("__", "."): v for k, v in settings.items()}),
                          workers=threads, threads=threads)


def _tasks(starts: tuple[int, ...], n: int) -> list[int]:
    """Fragments per task."""
    ends = [*starts[1:], n]
    return [e - s for s, e in zip(starts, ends, strict=True)]


def test_fragments_read_for_no_data_pack_by_their_open_cost() -> None:
    # count(*) of 1,000 fragments: each costs the 4 MiB open cost, so 128 MiB tasks hold 32;
    # the 32 tasks share them evenly (no small last task for the skew verdicts to flag).
    starts = pack([0] * 1000, _ctx())
    assert len(starts) == 32 and set(_tasks(starts, 1000)) == {31, 32}
    # One fragment per task when the setting is 0, and for one fragment or none.
    assert pack([0] * 1000, _ctx(**ONE_TASK_PER_FRAGMENT)) == tuple(range(1000))
    assert pack([0], _ctx()) == (0,) and pack([], _ctx()) == (0,)


def test_a_small_table_still_spreads_over_the_planned_threads() -> None:
    # 8 fragments of 1 MiB: total 40 MiB over 2 x 2 slots = 10 MiB tasks, two fragments each.
    assert _tasks(pack([MIB] * 8, _ctx()), 8) == [2, 2, 2, 2]
    # Planned for 64 threads the split falls to the open cost: every fragment alone.
    assert pack([MIB] * 8, _ctx(threads=64)) == tuple(range(8))
    # scan.min_tasks_per_thread = 1 (Spark's minimum): four per task at 2 threads.
    assert _tasks(pack([MIB] * 8, _ctx(scan__min_tasks_per_thread=1)), 8) == [4, 4]


def test_big_fragments_keep_a_task_each_and_tasks_stay_under_the_bound() -> None:
    costs = [200 * MIB, 10 * MIB, 10 * MIB, 300 * MIB] + [20 * MIB] * 20
    starts = pack(costs, _ctx())
    ends = [*starts[1:], len(costs)]
    for s, e in zip(starts, ends, strict=True):
        weight = sum(c + 4 * MIB for c in costs[s:e])
        assert e - s == 1 or weight <= 128 * MIB
    assert starts[:3] == (0, 1, 3)  # the 200 MiB fragment alone; 10 + 10 MiB together
    # Uneven small fragments: tasks near an equal share, none over the bound.
    costs = [(i * 7919) % (8 * MIB) for i in range(500)]
    starts = pack(costs, _ctx())
    ends = [*starts[1:], len(costs)]
    weights = [sum(c + 4 * MIB for c in costs[s:e]) for s, e in zip(starts, ends, strict=True)]
    assert max(weights) <= 128 * MIB and max(weights) < 1.25 * min(weights)


def test_a_hash_exchange_of_packed_tasks_keeps_its_combines_per_fragment() -> None:
    # Q1's 1,000 fragments in 34 map tasks into 4 buckets: 16 combines as with 1,000 tasks,
    # each merging about 64 fragments' partial rows, not one combine merging all of them.
    assert combine_count(34, 4, 64, 1000) == combine_count(1000, 4, 64) == 16
    assert combine_count(34, 4, 64) == 1  # counted in tasks it would be one
    assert combine_count(4, 4, 64, 1000) == 2  # still at most 2 maps / buckets
    assert combine_count(3, 1, 64, 1000) == 3  # and at most one per map


def _frag(i: int, **kw: object) -> Fragment:
    return Fragment(f"file:///t/{i}.parquet", StorageFormat.PARQUET, i, 100, 1000, **kw)


def test_read_bytes_counts_the_columns_read() -> None:
    sizes = ((COLUMN_BYTES, (("a", 100), ("b", 300), ("date", 5))),)
    f = _frag(0, partition=(("date", "2017-01-01"),), options=sizes)
    assert read_bytes(f, ["a"], [], 3) == 100
    assert read_bytes(f, ["a", "b"], [], 3) == 400
    assert read_bytes(f, ["date"], [], 3) == 0  # a partition value: from the catalog
    assert read_bytes(f, [], [], 3) == 0  # count(*)
    # Without column sizes: the file's size shared among the table's columns.
    assert read_bytes(_frag(1), ["a"], [], 4) == 250
    # A row format reads every column of every row.
    csv = Fragment("file:///t/0.csv", StorageFormat.CSV, 0, 100, 1000)
    assert read_bytes(csv, ["a"], [], 4) == 1000


def test_the_planner_packs_and_the_graph_hands_each_task_its_fragments() -> None:
    from mpp.execution.graph import build_graph

    schema = pa.schema([("date", pa.date32()), ("user_id", pa.int64())])
    info = TableInfo("t", StorageFormat.PARQUET, schema, TableStats(10_000, 1000, 100),
                     "file:///t")
    frags = [_frag(i) for i in range(100)]
    scan = ln.Scan(info, "t", ("date", "user_id"))
    plan = plan_physical(ln.LogicalPlan(scan, ("date", "user_id")), _ctx(), lambda s: frags)
    stage = plan.stages[0]
    assert stage.tasks == 4  # 100 x (4 MiB + 500 B) over 4 slots
    graph = build_graph(plan, "q", "0123abcd")
    handed = [graph.dsk[key][3][0] for key in sorted(graph.dsk)]  # (fn, payload, i, frags)
    assert [f for task in handed for f in task] == frags  # every fragment once, in order


PACKED_QUERIES = [
    "SELECT count(*) FROM access_log",
    "SELECT date, count(*), sum(bytes) FROM access_log GROUP BY date",
    "SELECT date, count(DISTINCT user_id) FROM access_log GROUP BY date",
    "SELECT status, count(DISTINCT url_id), count(*) FROM access_log GROUP BY status",
    "SELECT DISTINCT date, status FROM access_log",
    # partition pruning, then min/max and predicates within each fragment of a task
    "SELECT count(*), min(user_id) FROM access_log WHERE date = DATE '2017-01-02'",
    "SELECT date, count(*) FROM access_log WHERE user_id < 40 AND status = 200 GROUP BY date",
    "SELECT count(*) FROM access_log WHERE date > DATE '2017-01-02'",
    # a union and joins: stages reading two scans
    "SELECT date, count(*) FROM (SELECT date FROM access_log WHERE status = 200 UNION ALL "
    "SELECT date FROM access_log WHERE status = 404) GROUP BY date",
    "SELECT u.country, count(*) FROM access_log a JOIN users u ON a.user_id = u.user_id "
    "GROUP BY u.country",
    "SELECT a.status, count(*) FROM access_log a JOIN sessions s "
    "ON a.session_id = s.session_id GROUP BY a.status",
    "SELECT count(*) FROM users u FULL JOIN urls r ON u.user_id < r.url_id - 35",
    # ORDER BY over packed tasks
    "SELECT user_id, bytes FROM access_log ORDER BY bytes DESC, user_id LIMIT 5",
    "SELECT date, user_id, time FROM access_log WHERE user_id < 5 ORDER BY time, user_id",
]
# Planned for one thread with one task per thread and a 1 MiB open cost: every table of the
# warehouse is read by one scan task (aggregates over it in one step, sorts without a gather).
ONE_SCAN_TASK = {"planning.workers": 1, "planning.threads_per_worker": 1,
                 "scan.min_tasks_per_thread": 1, "scan.fragment_open_bytes": 1024 * 1024}
# Packed, one task per fragment, one scan task, and by column bytes alone with no open cost
# (fragments read for no data all in one task).
VARIANTS = [{}, ONE_TASK_PER_FRAGMENT, ONE_SCAN_TASK,
            {"scan.fragment_open_bytes": 0, "scan.max_task_bytes": 4096},
            {"aggregate.partial_skip_ratio": 0.0}]


@pytest.fixture(scope="module")
def session(cluster):
    with mpp.connect(warehouse(cluster.client, "parquet", FRAGMENTS), cluster=cluster) as s:
        yield s


def test_explain_and_task_records_show_the_packed_tasks(session) -> None:
    sql = "SELECT date, count(*) FROM access_log GROUP BY date"
    result = session.sql(sql)
    stage = result.stats.plan.stages[0]
    assert 1 < stage.tasks < FRAGMENTS
    text = result.explain_analyze
    assert f"({FRAGMENTS} fragments in {stage.tasks} tasks)" in text
    assert f"fragments={FRAGMENTS} of {FRAGMENTS} in {stage.tasks} tasks" in text
    # The dashboard's task names stay the stage's; each record covers all its fragments.
    leaf = [r for r in result.stats.tasks if r.name == "stage1-scan-partial-agg"]
    assert len(leaf) == stage.tasks
    scan = stage.scan
    assert scan is not None
    by_part = {r.partition: r.rows_in for r in leaf}
    assert by_part == {i: sum(f.row_count for f in scan.task_fragments(i))
                       for i in range(stage.tasks)}
    assert sum(by_part.values()) == 4_000
    one = session.sql(sql, settings=ONE_TASK_PER_FRAGMENT)
    assert one.stats.plan.stages[0].tasks == FRAGMENTS
    assert "(one per fragment)" in one.explain_analyze


def test_a_limit_stops_reading_a_tasks_fragments(session) -> None:
    sql = "SELECT user_id FROM access_log WHERE status = 200 LIMIT 7"
    for settings in VARIANTS:
        result = session.sql(sql, settings=settings)
        assert result.to_arrow().num_rows == 7
    packed = session.sql(sql, settings=ONE_SCAN_TASK)
    assert packed.stats.plan.stages[0].tasks == 1
    (task,) = [r for r in packed.stats.tasks if r.stage == 1 and "scan" in r.name]
    assert task.rows_in < 4_000  # not every fragment of the one task was read


def test_packed_scans_match_duckdb(session) -> None:
    assert_each_matches_oracle(session, PACKED_QUERIES, VARIANTS)


def test_count_star_uses_the_catalog_but_a_missing_or_truncated_file_still_fails(
        tmp_path, cluster) -> None:
    from mpp.datagen import DatagenSpec, generate

    root = tmp_path / "wh"
    generate(root, DatagenSpec(rows=600, partitions=3, days=3, hot_day=1, users=50,
                               sessions=60, urls=10), client=cluster.client, progress=False)
    sql = "SELECT date, count(*) FROM access_log GROUP BY date"
    with mpp.connect(root, cluster=cluster) as s:
        files = s.catalog.fragments("access_log")
        expected = run_oracle(sql, s.catalog)
        result = s.sql(sql)
        assert_same_rows(result.to_arrow(), expected)
        assert result.stats.bytes_read == 0
        path = files[1].uri.removeprefix("file://")
        data = open(path, "rb").read()
        # A damaged footer of the same size is not read: the count is still right.
        footer = int.from_bytes(data[-8:-4], "little")
        flipped = bytearray(data)
        flipped[len(data) - 8 - footer // 2] ^= 0x10
        open(path, "wb").write(bytes(flipped))
        assert_same_rows(s.sql(sql).to_arrow(), expected)
        open(path, "wb").write(data[:-100])  # truncated: the size differs from the catalog's
        with pytest.raises(MppError, match="catalog recorded"):
            s.sql(sql).to_arrow()
        import os

        os.remove(path)
        with pytest.raises(MppError, match="file not found"):
            s.sql(sql).to_arrow()
