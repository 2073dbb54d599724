"""The pipeline runner: an ``[ingest]`` section run per (mode, de-duplication), from Python and
from ``mpp ingest``; de-duplication at read time with SQL on the MPP engine.

The SQL de-duplication's result is compared with DuckDB running the same query over the same
files (mpp.oracle); the counts come from the checker against the producers' ledger.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from distributed import get_task_stream
from distributed.utils import key_split

import mpp.ingest
from mpp.catalog import Catalog
from mpp.cli import main
from mpp.config import Settings
from mpp.errors import ScenarioError
from mpp.ingest import services
from mpp.ingest.consumer import DeliveryMode
from mpp.ingest.pipeline import DEDUP_SQL, IngestSpec, read_delivered
from mpp.oracle import run_oracle
from mpp.session import Session
from tests.compare import assert_same_rows

FAULTY = {"messages": 150, "producers": {"web": 1, "mobile": 1},
          "faults": {"seed": 1, "lost_ack": 0.05, "duplicate_delivery": 0.02,
                     "drop_publish": 0.02},
          "consumer_faults": {"seed": 2, "crash_before_commit": 0.3, "crash_after_commit": 0.1},
          "batch_size": 20}


def test_every_mode_and_window_from_python():
    result = mpp.ingest.run({**FAULTY, "dedup": ["none", "window:5", "window:100000"]})
    rows = {r.name: r for r in result.rows}
    assert list(rows) == ["at-most-once/none", "at-least-once/none", "exactly-once/none",
                          "exactly-once/window:5", "exactly-once/window:100000"]
    for r in rows.values():
        assert r.check.attempted == 300 and r.check.unexpected == 0
    assert rows["at-most-once/none"].check.lost > 0
    assert rows["at-least-once/none"].check.lost_acknowledged == 0
    assert rows["at-least-once/none"].check.duplicated > 0
    assert not rows["exactly-once/none"].check.holds("exactly-once")
    big = rows["exactly-once/window:100000"]
    assert big.check.holds("exactly-once") and big.consumer_deduplicated > 0
    small = rows["exactly-once/window:5"]  # a window smaller than a batch lets some through
    assert small.check.duplicated > 0
    assert small.window_memory_bytes < big.window_memory_bytes
    assert "exactly-once/window:5" in result.table()


def test_a_bad_section_names_every_problem(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[ingest]\nproducers = {web = 1, phone = 2}\nbackend = "kafka"\n'
                    'modes = ["at-least-twice"]\ndedup = ["window:0", "sql"]\n'
                    'faults = {lost_ack = 2.0, typo = 1}\n')
    with pytest.raises(ScenarioError) as err:
        mpp.ingest.run(path)
    text = str(err.value)
    for where in ("ingest.producers.phone", "ingest.backend", "ingest.modes[0]",
                  "ingest.dedup[0]", "ingest.faults.lost_ack", "ingest.faults.typo"):
        assert where in text, where
    result = CliRunner().invoke(main, ["ingest", str(path), "--no-progress"])
    assert result.exit_code == 2 and "ingest.backend" in result.output


def test_mpp_ingest_prints_the_checkers_table(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('name = "tiny"\n[ingest]\nproducers = {device = 2}\nmessages = 50\n'
                    'modes = ["at-least-once"]\nfaults = {seed = 3, lost_ack = 0.1}\n')
    result = CliRunner().invoke(main, ["ingest", str(path), "--no-progress"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split()[:3] == ["run", "attempted", "delivered"]
    assert lines[1].split()[:3] == ["at-least-once/none", "100", "100"]
    live = CliRunner().invoke(main, ["ingest", str(path)])  # the bar and its live line
    assert live.exit_code == 0, live.output
    assert "at-least-once/none: sent 100 / delivered 100 / lost 0 / duplicated" in live.output


def test_sql_dedup_on_the_engine_removes_every_duplicate(tmp_path, cluster):
    wh = tmp_path / "wh"
    result = mpp.ingest.run({**FAULTY, "modes": ["exactly-once"], "dedup": ["none", "sql"],
                             "table": "events"}, warehouse=wh, cluster=cluster)
    rows = {r.dedup: r for r in result.rows}
    assert rows["none"].table == "events_exactly_once_none"
    assert rows["none"].check.duplicated > 0  # the table holds the at-least-once copies
    assert rows["sql"].check.duplicated == 0 and rows["sql"].check.holds("exactly-once")
    assert rows["sql"].check.delivered == rows["none"].check.delivered
    q = rows["sql"].sql_dedup
    assert q["rows_out"] == rows["sql"].check.delivered < q["rows_in"]
    assert "SQL de-duplication of events_exactly_once_sql" in result.table()
    # the engine's answer is DuckDB's over the same files
    catalog = Catalog.open(wh)
    table = "events_exactly_once_sql"
    with Session(catalog, cluster, Settings()) as s:
        got = s.sql(DEDUP_SQL.format(table=table)).to_arrow()
    assert_same_rows(got, run_oracle(DEDUP_SQL.format(table=table), catalog))
    # DISTINCT over the message's own columns keeps one copy too (copies are identical)
    distinct = f"SELECT DISTINCT message_id, producer, seq FROM {table}"
    with Session(catalog, cluster, Settings()) as s:
        got_distinct = s.sql(distinct).to_arrow()
    assert_same_rows(got_distinct, run_oracle(distinct, catalog))
    assert got_distinct.num_rows == got.num_rows
    # before the query the table had duplicates; after it, none
    assert read_delivered(catalog, table).num_rows > got.num_rows


def test_compact_after_a_run_keeps_the_rows_and_cuts_the_files(tmp_path, cluster):
    result = mpp.ingest.run({**FAULTY, "modes": ["at-least-once"], "table": "events",
                             "compact": True}, warehouse=tmp_path / "wh", cluster=cluster)
    c = result.rows[0].compaction
    assert c["files_after"] < c["files_before"] and c["tasks_after"] < c["tasks_before"]
    assert c["same_result"]
    assert "compaction of events:" in result.table()


def test_consumers_batches_run_as_named_tasks_on_the_cluster(tmp_path, cluster):
    section = {**FAULTY, "modes": ["at-least-once", "exactly-once"], "dedup": ["window:1000"],
               "table": "events"}
    with get_task_stream(cluster.client) as stream:
        result = mpp.ingest.run(section, warehouse=tmp_path / "wh", cluster=cluster)
    groups: dict[str, int] = {}
    for t in stream.data:
        if t["key"].startswith("ingest-"):
            group = key_split(t["key"])
            groups[group] = groups.get(group, 0) + 1
    # one decoding task per batch the consumers handed on, one writing task per committed
    # batch: the dashboard's task stream shows them under these names
    total = {k: sum(r.tasks.get(k, 0) for r in result.rows) for k in ("consume", "write")}
    assert groups == {"ingest-consume": total["consume"], "ingest-write": total["write"]}
    for r in result.rows:
        assert 0 < r.tasks["write"] <= r.tasks["consume"] and r.task_seconds > 0
        assert r.check.unexpected == 0 and r.check.lost_acknowledged == 0
    # the semantics are counted as without the cluster: the table holds what the check saw
    catalog = Catalog.open(tmp_path / "wh")
    for r in result.rows:
        assert read_delivered(catalog, r.table).num_rows == r.check.delivered + \
            r.check.duplicate_copies
    assert result.rows[1].check.holds("exactly-once")
    assert "cluster tasks of events_at_least_once:" in result.table()


BULK = {"messages": 150, "producers": {"web": 1, "device": 1}, "modes": [],
        "bulk": {"every_s": 0.3, "chunk_rows": 30, "redeliver": 0.3,
                 "crash_before_record": 0.1, "seed": 3}}


def test_bulk_files_on_a_schedule_deduplicated_by_file_and_offset(tmp_path, cluster):
    memory = {r.name: r for r in mpp.ingest.run(BULK).rows}
    assert list(memory) == ["bulk:at-least-once/none", "bulk:exactly-once/offset"]
    none, offset = memory.values()
    assert none.bulk["deliveries"] > none.bulk["files"] > 1  # some files came twice
    assert none.check.lost == 0 and none.check.duplicated > 0 and none.check.holds(none.mode)
    assert offset.check.lost == 0 and offset.check.duplicated == 0
    assert offset.check.holds("exactly-once") and offset.bulk["skipped"] > 0
    # into Iceberg tables, chunks loaded and written as cluster tasks: the same counts
    with get_task_stream(cluster.client) as stream:
        result = mpp.ingest.run({**BULK, "table": "events"}, warehouse=tmp_path / "wh",
                                cluster=cluster)
    catalog = Catalog.open(tmp_path / "wh")
    for r in result.rows:
        m = memory[r.name]
        assert (r.check.lost, r.check.duplicated, r.check.duplicate_copies, r.bulk) == (
            m.check.lost, m.check.duplicated, m.check.duplicate_copies, m.bulk)
        assert read_delivered(catalog, r.table).num_rows == r.check.delivered_copies
        assert r.tasks == {"load": r.bulk["loaded"], "write": r.bulk["loaded"]}
    loads = [t["key"] for t in stream.data if key_split(t["key"]) == "ingest-load"]
    assert len(loads) == sum(r.bulk["loaded"] for r in result.rows)
    assert [r.table for r in result.rows] == ["events_bulk_none", "events_bulk_offset"]
    assert "bulk load of events_bulk_offset:" in result.table()


@pytest.mark.parametrize("backend", ["jetstream", "mqtt"])
def test_real_brokers_run_the_same_pipeline(backend, tmp_path):
    why = services.nats_missing() if backend == "jetstream" else services.mqtt_missing()
    if why:
        pytest.skip(why)
    section = {"messages": 40, "producers": {"device": 2}, "backend": backend,
               "modes": ["at-least-once", "exactly-once"], "dedup": ["window:1000"],
               "batch_size": 10}
    if backend == "jetstream":  # a log with offsets: the Iceberg sink works on it
        section["table"] = "events"
    result = mpp.ingest.run(section, warehouse=tmp_path / "wh")
    for r in result.rows:
        assert r.check.attempted == 80 and r.check.lost == 0 and r.check.unexpected == 0
        assert r.check.holds(r.mode)
    if backend == "jetstream":
        assert [r.table for r in result.rows] == ["events_at_least_once",
                                                  "events_exactly_once_window_1000"]


def test_modes_parse_to_delivery_modes():
    assert IngestSpec().modes == tuple(DeliveryMode)


def test_a_slow_real_broker_is_read_to_the_end_not_cut_off_after_the_timeout():
    """A real broker's records can arrive slower than the settle timeout in all (a loaded
    machine): the wait ends only after a timeout with no record, so none is counted lost."""
    import time

    from mpp.ingest.pipeline import _settle

    class SlowConsumer:  # one record per poll, 20 polls over ~1 s
        def __init__(self) -> None:
            self.read = 0

        def step(self, timeout: float = 0.0) -> int:
            time.sleep(0.05)
            if self.read < 20:
                self.read += 1
                return 1
            return 0

    consumer = SlowConsumer()
    _settle(consumer, object(), 20, lambda: consumer.read, timeout=0.4)  # type: ignore[arg-type]
    assert consumer.read == 20
