"""Scenario spec validation: every kind of error names the file, the key path and a hint."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mpp import config
from mpp.errors import MppError, ScenarioError
from mpp.scenario.spec import (
    Op,
    data_spec_hash,
    load_scenario,
    parse_scenario,
)

GOOD = """
name = "skew_distinct"
description = "count(DISTINCT) on a log whose day 13 carries 40%"
repeats = 2

[data]
rows = 100_000
partitions = 20
seed = 7
hot_day = 13
hot_share = 0.4
start = 2017-01-01

[cluster]
workers = 2
threads = 1

[[variants]]
name = "broadcast"
settings = { join.strategy = "broadcast", "execution.hash_buckets" = 8 }

[[variants]]
name = "partitioned"
[variants.settings]
"join.strategy" = "partitioned"

[[queries]]
name = "distinct_by_day"
sql = "SELECT date, count(DISTINCT user_id) FROM access_log GROUP BY date"

[[queries]]
name = "from_file"
file = "q.sql"

[checks]
oracle = true
[[checks.expect]]
variant = "partitioned"
stage = "final"
metric = "max_over_median_rows"
op = "<="
value = 1.5
[[checks.expect]]
variant = "broadcast"
relative_to = "partitioned"
metric = "predicted_makespan_s"
workers = 128
op = ">="
value = 3

[whatif]
workers = [2, 32]
task_overhead_s = 0.002
"""


def write(tmp_path: Path, text: str, name: str = "scenario.toml") -> Path:
    (tmp_path / "q.sql").write_text("SELECT count(*) FROM access_log\n")
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, text))
    err = info.value
    assert isinstance(err, MppError)
    assert str(tmp_path / "scenario.toml") in str(err)  # every error names the file
    return err


MINIMAL = """
[data]
rows = 1000
partitions = 4
[[queries]]
name = "q"
sql = "SELECT 1"
"""


def test_valid_file_loads_into_typed_values(tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, GOOD))
    assert sc.name == "skew_distinct" and sc.repeats == 2
    assert sc.data.rows == 100_000 and sc.data.hot_day == 13 and sc.data.start == "2017-01-01"
    assert sc.cluster.workers == 2 and sc.cluster.threads_per_worker == 1
    assert [v.name for v in sc.variants] == ["broadcast", "partitioned"]
    # Nested TOML tables and quoted dotted keys both become dotted setting names, typed.
    assert sc.variants[0].settings_dict() == {"join.strategy": "broadcast",
                                              "execution.hash_buckets": 8}
    assert sc.queries[1].sql == "SELECT count(*) FROM access_log"
    assert sc.queries[1].file == "q.sql"
    first, second = sc.checks.expect
    assert (first.stage, first.metric, first.op, first.value) == (
        "final", "max_over_median_rows", Op.LE, 1.5)
    assert second.workers == 128 and second.relative_to == "partitioned"
    assert sc.whatif.workers == (2, 32) and sc.whatif.task_overhead_s == 0.002


def test_round_trip_through_dict(tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, GOOD))
    again = parse_scenario(sc.to_dict(), source=sc.source, base_dir=tmp_path)
    assert again == sc


def test_defaults_for_a_minimal_file(tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, MINIMAL, "tiny.toml"))
    assert sc.name == "tiny"  # the file name
    assert [v.name for v in sc.variants] == ["default"]
    assert sc.checks.oracle is True and sc.checks.expect == ()
    assert sc.whatif.workers == (2, 8, 32, 128)


def test_scale_multiplies_rows_and_keeps_fragments(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert load_scenario(path, scale=0.01).data.rows == 1000
    assert load_scenario(path, scale=0.01).data.partitions == 20
    assert load_scenario(path, scale=10).data.rows == 1_000_000
    tiny = load_scenario(path, scale=0.0001)
    assert tiny.data.rows == 10 and tiny.data.partitions == 10  # never more fragments than rows
    for bad in (0, -1, float("nan"), float("inf"), 1e9):
        with pytest.raises(ScenarioError, match=r"--scale: must be from 1e-06 to 10,000.0 "
                           r"\(--scale multiplies data.rows; .*\), got "):
            load_scenario(path, scale=bad)


def test_data_spec_hash_is_stable_and_sensitive(tmp_path: Path) -> None:
    a = load_scenario(write(tmp_path, MINIMAL + "\n[cluster]\nworkers = 3\n", "a.toml"))
    reordered = "[[queries]]\nname = 'q'\nsql = 'SELECT 1'\n[data]\npartitions = 4\nrows = 1000\n"
    b = load_scenario(write(tmp_path, reordered, "b.toml"))
    assert data_spec_hash(a.data) == data_spec_hash(b.data)  # cluster and key order ignored
    c = load_scenario(write(tmp_path, MINIMAL.replace("rows = 1000", "rows = 1000\nseed = 1"),
                            "c.toml"))
    assert data_spec_hash(c.data) != data_spec_hash(a.data)
    assert load_scenario(write(tmp_path, MINIMAL, "d.toml"), scale=2).data_hash() != a.data_hash()


def test_unknown_keys_suggest_the_closest(tmp_path: Path) -> None:
    err = problems(tmp_path, "repeat = 3\n" + MINIMAL + "\n[cluster]\nworkerz = 2\n")
    assert "repeat: unknown key. Did you mean 'repeats'?" in str(err)
    assert "cluster.workerz: unknown key. Did you mean 'workers'?" in str(err)
    assert len(err.problems) == 2


def test_wrong_types_say_what_was_expected(tmp_path: Path) -> None:
    err = problems(tmp_path, "repeats = true\n" + MINIMAL.replace("rows = 1000", 'rows = "many"'))
    assert "data.rows: expected an integer, got a string ('many')." in str(err)
    assert "repeats: expected an integer, got a boolean (True)." in str(err)


def test_missing_sections_and_fields(tmp_path: Path) -> None:
    err = problems(tmp_path, '[[variants]]\nsettings = {}\n')
    text = str(err)
    assert "data: missing required key. Expected a table." in text
    assert "queries: missing: a scenario needs at least one [[queries]] table." in text
    assert "variants[0].name: missing required key. Expected a string." in text


def test_unknown_setting_names_the_key_path_and_closest_name(tmp_path: Path) -> None:
    err = problems(tmp_path, MINIMAL + '\n[[variants]]\nname = "a"\n'
                   '[[variants]]\nname = "b"\nsettings = { join.stratgy = "broadcast" }\n')
    assert "variants[1].settings.join.stratgy: unknown setting. Did you mean 'join.strategy'" \
        in str(err)


def test_bad_setting_value_names_the_type_and_choices(tmp_path: Path) -> None:
    err = problems(tmp_path, MINIMAL + '\n[[variants]]\nname = "a"\n'
                   'settings = { "join.strategy" = "sideways", "execution.hash_buckets" = 2.5 }\n')
    text = str(err)
    assert "variants[0].settings.join.strategy: setting 'join.strategy' must be one of " \
           "auto, broadcast, partitioned" in text
    assert "variants[0].settings.execution.hash_buckets: setting 'execution.hash_buckets' " \
           "takes an integer" in text


def test_scenario_settings_are_checked_against_the_live_registry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = MINIMAL + '\n[[variants]]\nname = "a"\nsettings = { "test.late_knob" = "on" }\n'
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError, match="test.late_knob: unknown setting"):
        load_scenario(path)
    monkeypatch.setitem(config._FIXED, "test.late_knob",
                        config.Setting("test.late_knob", False, "a test switch"))
    assert load_scenario(path).variants[0].settings_dict() == {"test.late_knob": True}


def test_nonsensical_data_knobs(tmp_path: Path) -> None:
    err = problems(tmp_path, MINIMAL.replace(
        "rows = 1000", 'rows = 1000\nhot_share = 1.5\nhot_day = 40\nformat = "avro"\n'
        'start = "yesterday"'))
    text = str(err)
    assert "data.hot_share: must be from 0.0 to 1.0 (a share of the rows), got 1.5." in text
    assert "go together" not in text  # no knock-on problem of the bad share
    assert "data.hot_day: must be a day within 1..30 (0 = none), got 40." in text
    assert "data.format: unknown format 'avro'. Expected one of parquet, orc, csv, sqlite." in text
    assert "data.start: expected a date (2017-01-01), got 'yesterday'." in text
    err = problems(tmp_path, MINIMAL.replace("rows = 1000", "rows = 3"))
    assert "data.partitions: 4 fragments cannot hold 3 rows." in str(err)


def test_warehouse_excludes_generator_knobs_and_must_exist(tmp_path: Path) -> None:
    err = problems(tmp_path, '[data]\nwarehouse = "wh"\nrows = 5\n'
                   '[[queries]]\nname = "q"\nsql = "SELECT 1"\n')
    assert "data.rows: a generator knob cannot be combined with data.warehouse." in str(err)
    assert "data.warehouse: no warehouse directory at" in str(err)
    (tmp_path / "wh").mkdir()
    sc = load_scenario(write(tmp_path, '[data]\nwarehouse = "wh"\n'
                             '[[queries]]\nname = "q"\nsql = "SELECT 1"\n'))
    assert sc.data.warehouse == str(tmp_path / "wh") and sc.data.knobs() == {}


def test_scheduler_excludes_local_cluster_shape(tmp_path: Path) -> None:
    err = problems(tmp_path, MINIMAL + '\n[cluster]\nscheduler = "tcp://h:8786"\nworkers = 4\n')
    assert "cluster.workers: only applies to a local cluster, not with scheduler." in str(err)


def test_queries_sql_or_file_and_syntax(tmp_path: Path) -> None:
    err = problems(tmp_path, '[data]\nrows = 10\npartitions = 1\n'
                   '[[queries]]\nname = "a"\nsql = "SELECT FROM WHERE"\n'
                   '[[queries]]\nname = "b"\nfile = "nope.sql"\n'
                   '[[queries]]\nname = "c"\nsql = "SELECT 1"\nfile = "q.sql"\n'
                   '[[queries]]\nname = "d"\ntpch = "q23"\n')
    text = str(err)
    assert "queries[0].sql: SQL does not parse (line 1, column 17)" in text
    assert "queries[1].file: cannot read" in text and "relative to the scenario file" in text
    assert "queries[2]: needs exactly one of sql, file or tpch." in text
    assert "queries[3].tpch: no TPC-H query 'q23'. Use one of q01, q02," in text


def test_a_tpch_query_comes_from_the_package_and_round_trips(tmp_path: Path) -> None:
    from mpp.datagen.tpch_queries import load_queries

    sc = load_scenario(write(tmp_path, '[data]\nrows = 10\npartitions = 1\n'
                                       '[[queries]]\nname = "six"\ntpch = "q06"\n'))
    (query,) = sc.queries
    assert (query.name, query.tpch, query.sql) == ("six", "q06", load_queries()["q06"].strip())
    again = parse_scenario(sc.to_dict(), source=sc.source, base_dir=tmp_path)
    assert again.queries == sc.queries


def test_expectation_errors(tmp_path: Path) -> None:
    expect = """
    [[variants]]
    name = "rewrite"
    [[checks.expect]]
    metric = "max_over_median_row"
    stage = "final"
    op = "=<"
    value = 1.5
    variant = "rewrit"
    [[checks.expect]]
    metric = "max_over_median_rows"
    op = "<="
    value = 1
    [[checks.expect]]
    metric = "predicted_makespan_s"
    op = "<"
    value = 1
    stage = "last"
    """
    text = str(problems(tmp_path, MINIMAL + textwrap.dedent(expect)))
    assert "checks.expect[0].metric: unknown stage metric 'max_over_median_row'. " \
           "Did you mean 'max_over_median_rows'" in text
    assert "checks.expect[0].op: unknown comparison '=<'. Expected one of < <= > >= == !=." in text
    assert "checks.expect[0].variant: no variant named 'rewrit'. Did you mean 'rewrite'?" in text
    assert "checks.expect[1].metric: unknown query metric 'max_over_median_rows'. " \
           "It is a stage metric: add stage" in text
    assert "checks.expect[2].stage: unknown stage selector 'last'." in text
    assert "checks.expect[2].workers: predicted_makespan_s needs the what-if worker count." in text


def test_expectation_check_says_by_how_much(tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, GOOD))
    rule = sc.checks.expect[0]
    assert rule.check(1.2) == (True, "ok: partitioned/* stage final max_over_median_rows "
                                     "<= 1.5 (actual 1.2)")
    ok, message = rule.check(2.0)
    assert not ok and "FAILED" in message and "off by 0.5" in message


def test_toml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    err = problems(tmp_path, "[data\nrows = 1\n")
    assert "not valid TOML" in str(err) and "line 1" in str(err)
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "absent.toml")


def test_whatif_section_is_checked(tmp_path: Path) -> None:
    text = str(problems(tmp_path, MINIMAL + "\n[whatif]\nworkers = [2, 0]\n"
                        "bandwidth_bytes_per_s = 0\n"))
    assert "whatif.workers: expected a non-empty array of positive integers" in text
    assert "whatif.bandwidth_bytes_per_s: must be a finite number > 0, got 0." in text
    text = str(problems(tmp_path, MINIMAL + "\n[whatif]\nworkers = [2, 1_000_000_000]\n"
                        "bandwidth_bytes_per_s = inf\ntask_overhead_s = nan\n"))
    assert ("whatif.workers[1]: must be from 1 to 100,000 (the what-if list scheduler keeps a "
            "slot per worker thread; the warehouses it models have hundreds of nodes), got "
            "1,000,000,000.") in text
    assert "whatif.bandwidth_bytes_per_s: must be a finite number > 0, got inf." in text
    assert "whatif.task_overhead_s: must be a finite number >= 0, got nan." in text
    text = str(problems(tmp_path, MINIMAL + "\n[[checks.expect]]\nquery = \"q\"\nmetric = "
                        "\"predicted_makespan_s\"\nop = \"<=\"\nvalue = 1\n"
                        "workers = 10_000_000\n"))
    assert "checks.expect[0].workers: must be from 1 to 100,000" in text


@pytest.mark.parametrize("text, message", [
    ("rows = 1e15", "data.rows: expected an integer, got a number (1000000000000000.0). TOML "
     "reads 1e15 and "
     "1.0 as floats; write the integer in digits (1_000_000_000_000_000)."),
    ("rows = 1_000_000_000_000_000", "data.rows: must be from 1 to 10,000,000,000 (100 x the "
     "100M-row headline scale: ~110 GB of Parquet and ~70 min of generation at the measured "
     "2.3M rows/s), got 1,000,000,000,000,000."),
    ("rows = 1000\npartitions = 4.0", "data.partitions: expected an integer, got a number "
     "(4.0). TOML reads 1e15 and 1.0 as floats; write the integer in digits (4)."),
    ("rows = 1000\npartitions = 200_000", "data.partitions: must be from 1 to 100,000"),
    ("rows = 1000\nusers = 100_000_000", "data.users: must be from 1 to 50,000,000 (every "
     "worker keeps the users' Zipf table, 8 bytes a user), got 100,000,000."),
    ("rows = 1000\ndays = 10_000", "data.days: must be from 1 to 3,660"),
    ("rows = 1000\nzipf = 50", "data.zipf: must be from 0.0 to 10.0"),
    ("rows = 1000\nseed = 1.5", "data.seed: expected an integer, got a number (1.5). TOML reads "
     "1e15 and 1.0 as floats; write the integer in digits."),
    ("rows = 2_000_000_000", "data.partitions: 2,000,000,000 rows in 4 fragments is 500,000,000 "
     "rows a fragment; at most 10,000,000"),
])
def test_data_knobs_out_of_range_name_key_value_and_range(tmp_path: Path, text: str,
                                                          message: str) -> None:
    if "partitions" not in text:
        text += "\npartitions = 4"
    data = MINIMAL.replace("rows = 1000\npartitions = 4", text)
    assert message in str(problems(tmp_path, data))


def test_scale_that_takes_rows_past_the_limit_names_both(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as err:
        load_scenario(write(tmp_path, MINIMAL.replace("rows = 1000", "rows = 100_000_000")),
                      scale=1000)
    assert ("data.rows: 100,000,000 x --scale 1000 = 100,000,000,000 rows; must be from 1 to "
            "10,000,000,000") in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("workers = 10000", "cluster.workers: must be from 1 to 64 (each worker is a process with a "
     "nanny, ~200 MB before any data; larger clusters are what the what-if model predicts), "
     "got 10,000."),
    ("workers = 0", "cluster.workers: must be from 1 to 64"),
    ("threads = 1000", "cluster.threads: must be from 1 to 64"),
    ("workers = 2.0", "cluster.workers: expected an integer, got a number (2.0)."),
    ('memory_limit = "lots"', "cluster.memory_limit: not a size: 'lots' (expected a number with "
     "units, e.g. '4GiB' or '512MB', or 'auto')."),
    ('memory_limit = "100"', "cluster.memory_limit: '100' is 100 B; a worker needs at least "
     "256.00 MiB"),
    ("memory_limit = 4", "cluster.memory_limit: expected a string, got an integer (4)."),
])
def test_cluster_shape_out_of_range(tmp_path: Path, text: str, message: str) -> None:
    assert message in str(problems(tmp_path, MINIMAL + "\n[cluster]\n" + text + "\n"))


def test_cluster_memory_limit_with_units_loads(tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, MINIMAL + '\n[cluster]\nmemory_limit = "1.5 GiB"\n'))
    assert sc.cluster.memory_limit == "1.5 GiB"


def test_repeats_out_of_range(tmp_path: Path) -> None:
    assert "repeats: must be from 1 to 100 (each repeat runs the query again" in str(
        problems(tmp_path, "repeats = 1000\n" + MINIMAL))
    assert "repeats: must be from 1 to 100" in str(problems(tmp_path, "repeats = 0\n" + MINIMAL))


def test_warmup(tmp_path: Path) -> None:
    assert load_scenario(write(tmp_path, "warmup = 2\n" + MINIMAL)).warmup == 2
    assert load_scenario(write(tmp_path, MINIMAL)).warmup == 0
    assert "warmup: must be from 0 to 10 (untimed runs of every variant x query" in str(
        problems(tmp_path, "warmup = 11\n" + MINIMAL))


TPCH = """
[data]
dataset = "tpch"
scale_factor = 0.1
[[queries]]
name = "q"
sql = "SELECT count(*) FROM lineitem"
"""


def test_tpch_data_has_its_own_knobs_scale_and_hash(tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, TPCH, "t.toml"))
    assert sc.data.tpch and (sc.data.scale_factor, sc.data.fragment_rows) == (0.1, 1_000_000)
    assert sc.data.knobs() == {"dataset": "tpch", "scale_factor": 0.1, "fragment_rows": 1_000_000}
    small = load_scenario(write(tmp_path, TPCH, "t.toml"), scale=0.1)
    assert small.data.scale_factor == 0.01 and small.data_hash() != sc.data_hash()
    plain = load_scenario(write(tmp_path, MINIMAL, "m.toml"))
    assert not plain.data.tpch and sc.data_hash() != plain.data_hash()
    err = problems(tmp_path, TPCH.replace("scale_factor = 0.1", "scale_factor = 0\nrows = 5\n"
                                          "fragment_rows = 10"))
    text = str(err)
    assert "data.rows: unknown key" in text
    assert "--scale-factor must be in (0, 1000], got 0.0" in text
    err = problems(tmp_path, TPCH.replace('"tpch"', '"tpc-h"'))
    assert "data.dataset: unknown dataset 'tpc-h'. Expected one of access_log, tpch." in str(err)
