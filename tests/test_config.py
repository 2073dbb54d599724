"""Settings: type and range checks, their error text, case-insensitive choices."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mpp.cli import main
from mpp.config import SETTINGS, Settings, parse_assignments
from mpp.errors import SettingError


@pytest.mark.parametrize("assignment,message", [
    ("execution.hash_buckets=-3",
     "setting 'execution.hash_buckets' must be from 0 to 100,000; got -3"),
    ("execution.hash_buckets=1000000",
     "setting 'execution.hash_buckets' must be from 0 to 100,000; got 1000000"),
    ("execution.exchange_fan_in=0",
     "setting 'execution.exchange_fan_in' must be from 2 to 100,000; got 0"),
    ("execution.exchange_fan_in=1_000_000",
     "setting 'execution.exchange_fan_in' must be from 2 to 100,000; got 1000000"),
    ("write.target_file_bytes=0",
     "setting 'write.target_file_bytes' must be from 1,024 to 17,179,869,184; got 0"),
    ("write.target_file_bytes=1000000000000000",
     "setting 'write.target_file_bytes' must be from 1,024 to 17,179,869,184; "
     "got 1000000000000000"),
    ("optimizer.broadcast_threshold_bytes=-1",
     "setting 'optimizer.broadcast_threshold_bytes' must be from 0 to 17,179,869,184; got -1"),
    ("optimizer.broadcast_threshold_bytes=1e15",
     "setting 'optimizer.broadcast_threshold_bytes' takes an integer, got '1e15'"),
    ("write.fail_task=-2", "setting 'write.fail_task' must be from -1 to 100,000; got -2"),
    ("metrics.spark_skew_threshold_bytes=-5",
     "setting 'metrics.spark_skew_threshold_bytes' must be from 0 to 1,099,511,627,776; got -5"),
    ("metrics.spark_skew_threshold_bytes=1099511627777",
     "setting 'metrics.spark_skew_threshold_bytes' must be from 0 to 1,099,511,627,776; "
     "got 1099511627777"),
])
def test_out_of_range_values_name_setting_value_and_range(assignment: str, message: str) -> None:
    with pytest.raises(SettingError) as err:
        parse_assignments([assignment])
    assert str(err.value) == message


def test_range_bounds_are_inclusive() -> None:
    for name, value in [("execution.hash_buckets", 0), ("execution.hash_buckets", 100_000),
                        ("execution.exchange_fan_in", 2), ("write.target_file_bytes", 1024),
                        ("write.fail_task", -1)]:
        assert Settings({name: value})[name] == value


def test_every_numeric_setting_has_a_range() -> None:
    numeric = [s for s in SETTINGS.values() if s.type in (int, float)]
    assert numeric
    missing = [s.name for s in numeric if s.minimum is None or s.maximum is None]
    assert missing == [], f"numeric settings without both bounds: {missing}"
    for s in numeric:  # the reason for the bounds is in the help `mpp settings` prints
        assert "at most" in s.help.lower() or "past" in s.help.lower(), s.name


def test_type_errors_read_as_english() -> None:
    with pytest.raises(SettingError, match=r"'execution.hash_buckets' takes an integer, got 'abc'"):
        parse_assignments(["execution.hash_buckets=abc"])
    with pytest.raises(SettingError, match=r"takes an integer, got 2.5"):
        Settings({"execution.hash_buckets": 2.5})
    with pytest.raises(SettingError, match=r"'optimizer.pushdown_predicates' takes true or false"):
        parse_assignments(["optimizer.pushdown_predicates=maybe"])


def test_choices_are_case_insensitive() -> None:
    assert parse_assignments(["join.strategy=Broadcast"]) == {"join.strategy": "broadcast"}
    assert Settings({"aggregate.distinct_strategy": " SINGLE_STEP"})[
        "aggregate.distinct_strategy"] == "single_step"
    with pytest.raises(SettingError, match="must be one of auto, broadcast, partitioned"):
        parse_assignments(["join.strategy=sideways"])


def test_cli_rejects_a_zero_target_file_size_before_anything_runs(tmp_path) -> None:
    # Used to reach the write stage's sizing and crash there with ZeroDivisionError.
    result = CliRunner().invoke(main, ["sql", "-w", str(tmp_path), "--set",
                                       "write.target_file_bytes=0",
                                       "CREATE TABLE t AS SELECT * FROM access_log"])
    assert result.exit_code == 2
    assert result.stderr == ("mpp: error: setting 'write.target_file_bytes' must be from "
                             "1,024 to 17,179,869,184; got 0\n")


def test_settings_command_shows_ranges() -> None:
    result = CliRunner().invoke(main, ["settings"])
    assert result.exit_code == 0
    assert "execution.hash_buckets = 0 (from 0 to 100,000)" in result.output
    assert ("write.target_file_bytes = 134217728 (from 1,024 to 17,179,869,184)"
            in result.output)
    assert "metrics.spark_skew_threshold_bytes" in result.output


# The optimizer switches are derived from RULES. The CLI parses --set having imported only
# mpp.config, so these run in a fresh interpreter: in this one, other tests (or conftest)
# may have imported mpp.optimizer already, which would hide a switch nobody derives.
_FRESH = """
import sys
from click.testing import CliRunner
from mpp.cli import main
from mpp.config import parse_assignments
assert "mpp.optimizer" not in sys.modules, "the CLI imports the optimizer eagerly"
names = sys.argv[1:]
assert parse_assignments([f"optimizer.{n}=false" for n in names]) == \\
    {f"optimizer.{n}": False for n in names}
listed = CliRunner().invoke(main, ["settings"]).output
for n in names:
    assert f"optimizer.{n} = True" in listed, n
    bad = CliRunner().invoke(main, ["sql", "-w", "/nonexistent-warehouse", "--set",
                                    f"optimizer.{n}=maybe", "SELECT 1"])
    assert bad.stderr == f"mpp: error: setting 'optimizer.{n}' takes true or false, got 'maybe'\\n", bad.stderr
print("ok")
"""


def test_every_rule_switch_is_known_to_a_fresh_cli_process() -> None:
    from mpp.optimizer import RULES

    names = [r.name for r in RULES]
    done = subprocess.run([sys.executable, "-c", _FRESH, *names], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_every_rule_has_a_setting_and_a_fixture_file() -> None:
    from mpp.optimizer import RULES

    fixtures = Path(__file__).parent / "fixtures" / "optimizer"
    for rule in RULES:
        setting = SETTINGS[f"optimizer.{rule.name}"]
        assert (setting.default, setting.help) == (True, rule.help)
        assert rule.help, rule.name
        assert (fixtures / f"{rule.name}.sql").is_file(), rule.name
    switches = [n for n in SETTINGS if n.startswith("optimizer.")
                and SETTINGS[n].type is bool]
    assert switches == [f"optimizer.{r.name}" for r in RULES]  # none stale, RULES' order


def test_a_fixed_setting_is_found_without_loading_the_optimizer() -> None:
    # mpp.metrics.skew reads one at import time; that must not import every rule module.
    code = ("import sys; from mpp.config import SETTINGS; "
            "SETTINGS['metrics.spark_skew_threshold_bytes']; "
            "print('mpp.optimizer' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "False", done.stderr
