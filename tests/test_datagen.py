"""The data generator: determinism, skew knobs, dimensions' consistency, bad knobs, failures."""

from __future__ import annotations

import datetime as dt
import os
import re

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

from mpp.catalog import Catalog
from mpp.cli import main
from mpp.datagen import DatagenSpec, generate
from mpp.errors import KnobError, StorageError
from mpp.storage.files import local_path

SPEC = DatagenSpec(rows=30_000, partitions=50, days=10, users=2_000, zipf=1.1, hot_day=4,
                   hot_share=0.4, urls=500)


def _files(cat: Catalog, table: str) -> list[str]:
    return [local_path(f.uri) for f in cat.fragments(table)]


def _sql(cat: Catalog, sql: str) -> list[tuple]:
    """Run ``sql`` in DuckDB with each Parquet table of ``cat`` as a view."""
    con = duckdb.connect()
    for t in cat.tables():
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet({_files(cat, t)!r})")
    return con.sql(sql).fetchall()


@pytest.fixture(scope="module")
def generated(cluster, tmp_path_factory) -> Catalog:
    return generate(tmp_path_factory.mktemp("gen") / "w", SPEC, client=cluster.client,
                    progress=False)


def test_same_knobs_and_seed_give_identical_tables(generated, cluster, tmp_path):
    again = generate(tmp_path / "again", SPEC, client=cluster.client, progress=False)
    other = generate(tmp_path / "other", DatagenSpec(**{**_knobs(SPEC), "seed": 1}),
                     client=cluster.client, progress=False)
    for t in generated.tables():
        a = generated.properties(t)["mpp.content-checksum"]
        assert a == again.properties(t)["mpp.content-checksum"]
        assert generated.table(t).stats == again.table(t).stats
    assert (generated.properties("access_log")["mpp.content-checksum"]
            != other.properties("access_log")["mpp.content-checksum"])
    digest = "SELECT sum(hash(time, user_id, session_id, url_id, status, bytes)) FROM access_log"
    assert _sql(generated, digest) == _sql(again, digest) != _sql(other, digest)


def _knobs(spec: DatagenSpec) -> dict:
    return {f: getattr(spec, f) for f in spec.__dataclass_fields__}


def test_hot_day_carries_its_share_of_rows_and_fragments(generated):
    per_day = dict(_sql(generated, "SELECT date, count(*) FROM access_log GROUP BY 1"))
    hot = dt.date(2017, 1, SPEC.hot_day)
    assert len(per_day) == SPEC.days and sum(per_day.values()) == SPEC.rows
    assert per_day[hot] / SPEC.rows == pytest.approx(SPEC.hot_share, abs=0.005)
    others = [n for d, n in per_day.items() if d != hot]
    assert max(others) - min(others) <= 1
    frags = generated.fragments("access_log")
    hot_frags = [f for f in frags if f.partition == (("date", hot),)]
    assert len(hot_frags) / len(frags) == pytest.approx(SPEC.hot_share, abs=0.05)
    sizes = [f.row_count for f in frags]
    assert max(sizes) <= 1.3 * SPEC.rows / SPEC.partitions


def test_user_popularity_follows_zipf(generated):
    counts = np.array(sorted((n for _, n in _sql(
        generated, "SELECT user_id, count(*) FROM access_log GROUP BY 1")), reverse=True))
    ranks = np.arange(1, 31)
    slope = np.polyfit(np.log(ranks), np.log(counts[:30]), 1)[0]
    assert slope == pytest.approx(-SPEC.zipf, abs=0.2)
    harmonic = (np.arange(1, SPEC.users + 1) ** -SPEC.zipf).sum()
    assert counts[0] / SPEC.rows == pytest.approx(1 / harmonic, rel=0.15)


def test_dimensions_are_consistent_with_the_fact_table(generated):
    # Every request's session exists, belongs to the request's user and started before it.
    bad = _sql(generated, """
        SELECT count(*) FROM access_log a LEFT JOIN sessions s USING (session_id)
        WHERE s.session_id IS NULL OR s.user_id <> a.user_id OR s.min_time > a.time""")
    assert bad == [(0,)]
    orphans = _sql(generated, """
        SELECT count(*) FROM access_log a
        WHERE a.user_id NOT IN (SELECT user_id FROM users)
           OR a.url_id NOT IN (SELECT url_id FROM urls)""")
    assert orphans == [(0,)]
    assert _sql(generated, "SELECT count(*), count(DISTINCT user_id) FROM users") == [
        (SPEC.users, SPEC.users)]
    assert _sql(generated, "SELECT count(*) FROM sessions") == [(SPEC.rows // 20,)]


def test_fragments_lie_within_one_day_in_time_order(generated):
    rows = _sql(generated, """
        SELECT filename, min(time), max(time), count(DISTINCT date)
        FROM read_parquet({files!r}, filename = true) GROUP BY 1""".format(
        files=_files(generated, "access_log")))
    by_file = {os.path.basename(r[0]): r[1:] for r in rows}
    spans = [by_file[os.path.basename(p)] for p in _files(generated, "access_log")]
    assert all(n == 1 for _, _, n in spans)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))


@pytest.mark.parametrize("knobs, knob", [
    ({"rows": -5}, "rows"),
    ({"hot_share": 1.5}, "hot_share"),
    ({"rows": 10, "partitions": 40, "days": 5}, "partitions"),
    ({"partitions": 3, "days": 30}, "partitions"),
    ({"hot_day": 31}, "hot_day"),
    ({"zipf": -1.0}, "zipf"),
    ({"users": 0}, "users"),
    ({"rows": 100, "partitions": 90, "days": 2, "hot_day": 1, "hot_share": 0.999}, "rows"),
])
def test_nonsensical_knobs_name_the_knob(knobs, knob, cluster, tmp_path):
    with pytest.raises(KnobError, match=f"'{knob}'"):
        spec = DatagenSpec(**knobs)
        # Checks that need the fragment layout fire here, before anything is written.
        generate(tmp_path / "w", spec, client=cluster.client, progress=False)
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("args, message", [
    (["--rows", "-1"], "Invalid value for '--rows': must be from 1 to 10,000,000,000 (100 x the "
     "100M-row headline scale"),
    (["--rows", "1000000000000000"], "Invalid value for '--rows': must be from 1 to "
     "10,000,000,000 (100 x the 100M-row headline scale: ~110 GB of Parquet and ~70 min of "
     "generation at the measured 2.3M rows/s), got 1,000,000,000,000,000"),
    (["--rows", "1e15"], "Invalid value for '--rows': expected an integer (digits, e.g. "
     "1000000), got '1e15'"),
    (["--partitions", "1000000"], "Invalid value for '--partitions': must be from 1 to 100,000"),
    (["--days", "100000"], "Invalid value for '--days': must be from 1 to 3,660"),
    (["--users", "1000000000"], "Invalid value for '--users': must be from 1 to 50,000,000 "
     "(every worker keeps the users' Zipf table, 8 bytes a user), got 1,000,000,000"),
    (["--urls", "0"], "Invalid value for '--urls': must be from 1 to 50,000,000"),
    (["--sessions", "60000000"], "Invalid value for '--sessions': must be from 0 to 50,000,000"),
    (["--zipf", "11"], "Invalid value for '--zipf': must be from 0.0 to 10.0 (0 is uniform; "
     "past 10 nearly every row is the top user), got 11"),
    (["--zipf", "nan"], "Invalid value for '--zipf': must be from 0.0 to 10.0"),
    (["--hot-share", "1.5"], "Invalid value for '--hot-share': must be from 0.0 to 1.0"),
    (["--seed", str(2**64)], "Invalid value for '--seed': must be from -9,223,372,036,854,775,"
     "808 to 9,223,372,036,854,775,807 (seeds are 64-bit)"),
    (["--hot-day", "5000"], "Invalid value for '--hot-day': must be from 0 to 3,660 (a day "
     "within days, 1-based; 0 is none), got 5,000"),
])
def test_cli_reports_bad_knobs_naming_option_value_and_range(tmp_path, args, message):
    result = CliRunner().invoke(main, ["datagen", "--out", str(tmp_path / "w"), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "w").exists()


def test_cli_reports_a_too_large_fragment_in_one_line(tmp_path):
    result = CliRunner().invoke(main, ["datagen", "--out", str(tmp_path / "w"), "--rows",
                                       "2000000000", "--partitions", "100"])
    assert result.exit_code == 2
    assert result.output == ("mpp: error: knobs 'rows' and 'partitions': 2,000,000,000 rows in "
                             "100 fragments is 20,000,000 rows a fragment; at most 10,000,000 "
                             "(a fragment is generated in one worker's memory, ~75 bytes a row: "
                             "10M rows take ~0.75 GB). Use at least 200 partitions.\n")


@pytest.mark.parametrize("knobs, message", [
    ({"rows": 10**15}, "knob 'rows' must be from 1 to 10,000,000,000"),
    ({"rows": 1e6}, "knob 'rows' must be an integer, got 1000000.0"),
    ({"sessions": -1}, "knob 'sessions' must be from 0 to 50,000,000"),
    ({"urls": 10**9}, "knob 'urls' must be from 1 to 50,000,000"),
])
def test_api_knobs_out_of_range(knobs, message):
    with pytest.raises(KnobError, match=re.escape(message)):
        DatagenSpec(**knobs)


def test_unwritable_out_is_a_storage_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="a-file/w: cannot write the warehouse directory"):
        generate(blocker / "w", SPEC, progress=False)


def test_a_generation_failing_midway_leaves_no_table_and_no_files(cluster, tmp_path):
    out = tmp_path / "w"
    # A plain file where day 5's partition directory must go: that day's tasks fail, the rest
    # succeed first, and the whole generation must be undone.
    (out / "access_log" / "data").mkdir(parents=True)
    (out / "access_log" / "data" / "date=2017-01-05").write_text("in the way")
    with pytest.raises(StorageError, match="date=2017-01-05"):
        generate(out, SPEC, client=cluster.client, progress=False)
    assert Catalog.open(out).tables() == []
    left = [f for _, _, fs in os.walk(out) for f in fs
            if f.endswith((".parquet", ".orc", ".csv", ".sqlite", ".arrow"))]
    assert left == []


def test_cli_datagen_on_an_existing_cluster(cluster, tmp_path):
    out = tmp_path / "w"
    args = ["datagen", "--out", str(out), "--rows", "3000", "--partitions", "10", "--days", "5",
            "--users", "100", "--hot-day", "2", "--table-format", "users=sqlite",
            "--scheduler", cluster.client.scheduler.address]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    cat = Catalog.open(out)
    assert "access_log  [parquet, iceberg]" in result.output
    assert cat.table("users").format.value == "sqlite"
    assert cat.table("access_log").stats.row_count == 3000


def test_peak_memory_counts_the_cluster_workers(cluster):
    import psutil

    from mpp.bench.memory import PeakMemory, tree_rss

    with PeakMemory() as mem:
        cluster.client.run(lambda: sum(range(10**6)))
    own = psutil.Process().memory_info().rss
    assert mem.peak_bytes > own  # the workers are this process's children
    assert mem.peak_bytes >= tree_rss(psutil.Process()) * 0.5
    assert mem.wall_seconds > 0 and mem.cpu_seconds >= 0


# Content checksum of SPEC's access_log per generator version. If this test fails, the
# generator's output changed: bump GENERATOR_VERSION (stale scenario caches are then not
# reused) and add the new checksum here.
PINNED_CHECKSUMS = {2: "6498d0d8af737e5abff1bb80e5ee0102"}


def test_generator_output_is_pinned_to_its_version(generated):
    from mpp.datagen.spec import GENERATOR_VERSION

    checksum = generated.properties("access_log")["mpp.content-checksum"]
    assert PINNED_CHECKSUMS.get(GENERATOR_VERSION) == checksum, (
        f"generator output changed ({checksum}); bump GENERATOR_VERSION and pin it")
