"""Skew statistics and verdicts on constructed task sets with known answers."""

from __future__ import annotations

import math

import pytest

from mpp.metrics.records import TaskRecord
from mpp.metrics.skew import (
    SKEW_METRICS,
    SPARK_SKEW_THRESHOLD_BYTES,
    Dist,
    format_skew,
    nearest_rank,
    skew_by_stage,
    spark_median,
    stage_skew,
)


def task(stage: int, part: int, *, secs: float = 1.0, rows: int = 100, read: int = 0,
         sent: int = 0, rows_out: int = 0, hot: tuple = ()) -> TaskRecord:
    return TaskRecord(query_id="q", stage=stage, name=f"stage{stage}-op", key=f"s{stage}-{part}",
                      partition=part, worker=f"w{part % 2}", start=10.0, stop=10.0 + secs,
                      rows_in=rows, rows_out=rows_out, bytes_read=read, bytes_sent=sent,
                      hot_keys=hot)


def test_nearest_rank_and_median_definitions() -> None:
    values = list(range(1, 11))
    assert nearest_rank(values, 49) == 5
    assert nearest_rank(values, 50) == 5
    assert nearest_rank(values, 99) == 10
    assert nearest_rank([7], 1) == 7
    d = Dist.of([4, 1, 3, 2])
    assert (d.min, d.p49, d.p50, d.p99, d.max) == (1, 2, 2.5, 4, 4)
    assert d.max_over_median == pytest.approx(1.6)
    assert Dist.of([0, 0, 5]).max_over_median == math.inf
    assert Dist.of([0, 0]).max_over_median == 1.0


def test_spark_median_matches_spark() -> None:
    assert spark_median([1, 2, 3, 10]) == 2  # (2 + 3) // 2
    assert spark_median([5, 1, 9]) == 5
    assert spark_median([0, 0]) == 1  # at least one byte


def test_stage_statistics_and_straggler_attribution() -> None:
    recs = [task(1, i, secs=1.0, rows=100, hot=((f"d{i}", 100),)) for i in range(9)]
    recs.append(task(1, 9, secs=4.0, rows=1000, hot=(("2017-01-13", 990), ("2017-01-14", 10))))
    sk = stage_skew(recs, floor_rows=0)
    assert sk.tasks == 10
    assert sk.rows.min == 100 and sk.rows.max == 1000 and sk.rows.p50 == 100
    assert sk.rows.max_over_median == pytest.approx(10.0)
    assert sk.seconds.max_over_median == pytest.approx(4.0)
    assert sk.slowest.partition == 9 and sk.heaviest.partition == 9
    assert sk.slowest.hot_keys[0] == ("2017-01-13", 990)
    assert sk.verdict("trino_input_skewed").tripped
    assert sk.verdict("redshift_skew_rows").tripped
    assert not sk.verdict("spark_skewed_partition").tripped  # far below 256 MiB
    assert sk.skewed
    assert set(sk.metrics()) == set(SKEW_METRICS)
    text = format_skew([sk])
    assert "2017-01-13 (990)" in text and "SKEWED" in text and "max/median 10.00" in text


def test_balanced_stage_trips_nothing() -> None:
    sk = stage_skew([task(0, i, rows=500, read=5000) for i in range(8)])
    assert not sk.skewed
    assert sk.rows.max_over_median == 1.0


@pytest.mark.parametrize(("big", "tripped"), [(200, False), (201, True)])
def test_trino_rule_trips_just_above_twice_p49(big: int, tripped: bool) -> None:
    # 10 tasks: p49 is the 5th smallest (100), p99 the largest.
    recs = [task(0, i, read=100) for i in range(9)] + [task(0, 9, read=big)]
    assert stage_skew(recs, floor_rows=0).verdict("trino_input_skewed").tripped is tripped


@pytest.mark.parametrize(("delta", "tripped"), [(0, False), (1, True)])
def test_spark_rule_trips_just_above_byte_threshold(delta: int, tripped: bool) -> None:
    median = 10 * 1024 * 1024  # 5 x median = 50 MiB < 256 MiB: the byte threshold binds
    recs = [task(0, i, read=median) for i in range(4)]
    recs.append(task(0, 4, read=SPARK_SKEW_THRESHOLD_BYTES + delta))
    assert stage_skew(recs).verdict("spark_skewed_partition").tripped is tripped


@pytest.mark.parametrize(("delta", "tripped"), [(0, False), (1, True)])
def test_spark_rule_trips_just_above_five_times_median(delta: int, tripped: bool) -> None:
    median = 100 * 1024 * 1024  # 5 x median = 500 MiB > 256 MiB: the factor binds
    recs = [task(0, i, read=median) for i in range(4)] + [task(0, 4, read=5 * median + delta)]
    assert stage_skew(recs).verdict("spark_skewed_partition").tripped is tripped


def test_spark_threshold_is_configurable() -> None:
    recs = [task(0, i, read=1000) for i in range(4)] + [task(0, 4, read=5001)]
    assert not stage_skew(recs).verdict("spark_skewed_partition").tripped
    assert stage_skew(recs, spark_threshold_bytes=5000).verdict("spark_skewed_partition").tripped
    assert not stage_skew(recs, spark_threshold_bytes=5001).verdict(
        "spark_skewed_partition").tripped


@pytest.mark.parametrize(("largest", "tripped"), [(399, False), (400, True)])
def test_redshift_skew_rows_flags_at_four(largest: int, tripped: bool) -> None:
    recs = [task(2, 0, rows=100), task(2, 1, rows=250), task(2, 2, rows=largest)]
    v = stage_skew(recs, floor_rows=0).verdict("redshift_skew_rows")
    assert v.tripped is tripped
    assert f"{largest} / 100" in v.detail


def test_exchange_fed_stage_sizes_from_upstream_row_width() -> None:
    # Stage 0 reads storage and sends 1,000 rows as 8,000 bytes: 8 bytes a row.
    scan = [task(0, i, read=1000, rows_out=250, sent=2000) for i in range(4)]
    final = [task(1, 0, rows=900), task(1, 1, rows=100)]
    skews = skew_by_stage(scan + final, floor_rows=0)
    assert list(skews) == [0, 1]
    assert skews[1].input_bytes.max == 7200
    assert skews[1].input_bytes.min == 800
    assert skews[1].verdict("trino_input_skewed").tripped
    assert skews[0].input_bytes.max == 1000


def test_stage_skew_rejects_mixed_or_empty_input() -> None:
    with pytest.raises(ValueError, match="several stages"):
        stage_skew([task(0, 0), task(1, 0)])
    with pytest.raises(ValueError, match="at least one"):
        stage_skew([])


def test_to_dict_is_json_ready() -> None:
    import json

    sk = stage_skew([task(0, 0, rows=0), task(0, 1, rows=0), task(0, 2, rows=5)])
    d = json.loads(json.dumps(sk.to_dict()))
    assert d["metrics"]["max_over_median_rows"] is None  # inf -> null
    assert {v["name"] for v in d["verdicts"]} == {
        "trino_input_skewed", "spark_skewed_partition", "redshift_skew_rows", "time_straggler"}
    assert {v["measure"] for v in d["verdicts"]} == {"input bytes", "rows", "time"}


def test_data_rules_have_a_floor_of_rows() -> None:
    # Issue 17's case: a 4-task stage holding 13 rows is not called skewed.
    recs = [task(3, 0, rows=10), task(3, 1, rows=1), task(3, 2, rows=1), task(3, 3, rows=1)]
    sk = stage_skew(recs)
    assert not sk.skewed
    v = sk.verdict("redshift_skew_rows")
    assert "below the floor of 10,000" in v.detail and "10 / 1 = 10.00" in v.detail
    # The same shape at 1,000x the rows trips both data rules.
    big = [task(3, i, rows=r * 1000, read=r * 8000) for i, r in enumerate((10, 1, 1, 1))]
    assert {v.name for v in stage_skew(big).tripped} >= {"trino_input_skewed",
                                                          "redshift_skew_rows"}


@pytest.mark.parametrize(("slow", "tripped"), [(0.040, False), (0.31, False), (0.32, True)])
def test_time_straggler_needs_the_factor_and_the_floor(slow: float, tripped: bool) -> None:
    # median 0.1 s: 0.31 s is over 3 x the median but only 0.21 s over it... with floor 0.22
    recs = [task(0, i, secs=0.1) for i in range(5)] + [task(0, 5, secs=slow)]
    v = stage_skew(recs, floor_seconds=0.22).verdict("time_straggler")
    assert v.tripped is tripped and v.measure == "time"
    # Time alone trips it: every task holds the same rows.
    assert stage_skew(recs, floor_seconds=0.22).skewed is tripped


def test_floors_are_settings() -> None:
    from mpp.config import Settings
    from mpp.metrics.skew import skew_options

    opts = skew_options(Settings({"metrics.skew_floor_rows": "0",
                                  "metrics.skew_floor_seconds": "0"}))
    assert opts["floor_rows"] == 0 and opts["floor_seconds"] == 0.0
    recs = [task(3, 0, rows=10, secs=0.004), task(3, 1, rows=1, secs=0.001),
            task(3, 2, rows=1, secs=0.001)]
    assert {v.name for v in stage_skew(recs, **opts).tripped} == {
        "trino_input_skewed", "redshift_skew_rows", "time_straggler"}
    assert not stage_skew(recs).skewed


def test_spark_threshold_is_a_setting() -> None:
    from mpp.config import Settings
    from mpp.metrics.skew import skew_options

    opts = skew_options(Settings({"metrics.spark_skew_threshold_bytes": "5000"}))
    recs = [task(0, i, read=1000) for i in range(4)] + [task(0, 4, read=5001)]
    assert stage_skew(recs, **opts).verdict("spark_skewed_partition").tripped
    assert skew_options(Settings())["spark_threshold_bytes"] == SPARK_SKEW_THRESHOLD_BYTES


def test_exchange_helper_tasks_are_counted_not_mixed_in() -> None:
    maps = [task(0, i, read=1000, rows_out=100, sent=1600) for i in range(4)]
    combine = TaskRecord(query_id="q", stage=0, name="stage0-combine", key="c", partition=0,
                         worker="w", start=50.0, stop=50.1, rows_in=400, rows_out=40,
                         bytes_sent=320)
    final = [task(1, 0, rows=30), task(1, 1, rows=10)]
    skews = skew_by_stage(maps + [combine] + final)
    assert skews[0].tasks == 4 and skews[0].exchange_tasks == 1
    assert skews[0].rows.max == 100  # the combine's 400 rows are not a map task's
    # Consumers receive what the combine sent: 320 bytes / 40 rows = 8 bytes a row.
    assert skews[1].input_bytes.max == 240
    assert "(+1 exchange tasks)" in format_skew(skews)
    assert skews[0].metrics()["tasks"] == 5 and skews[0].metrics()["exchange_tasks"] == 1
