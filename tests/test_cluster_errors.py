"""No cluster to run on, and task failures: one clear line, never a library traceback."""

from __future__ import annotations

import contextlib
import http.server
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

import mpp
from mpp.cli import main
from mpp.errors import MppError
from mpp.execution.cluster import (
    Cluster,
    ClusterError,
    ClusterSpec,
    _QuietMppTaskErrors,
    check_scheduler_address,
    local_memory_problem,
)
from tests.query_warehouses import warehouse

UNREACHABLE = "tcp://127.0.0.1:1"  # port 1: nothing listens, the connection is refused


@pytest.fixture
def http_server() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 (it answers Dask's handshake with "400 Bad Request")."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A socket on 127.0.0.1 that accepts connections and never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(sock.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    yield f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    for conn in accepted:
        conn.close()


@pytest.mark.parametrize("listener", ["http_server", "silent_listener"])
def test_a_listener_that_is_no_scheduler_fails_within_the_connect_timeout(
        request: pytest.FixtureRequest, listener: str) -> None:
    """Dask's Client waits forever for the handshake of such a listener, whatever its timeout;
    mpp's own deadline ends it (the test's bound is generous: it only rules out a hang)."""
    address = request.getfixturevalue(listener)
    start = time.monotonic()
    with pytest.raises(ClusterError) as err:
        Cluster(ClusterSpec(scheduler=address, connect_timeout=1))
    assert str(err.value) == (f"{address} accepts connections but did not answer as a Dask "
                              "scheduler within 1 s (is it a scheduler's port?)")
    assert time.monotonic() - start < 60


def test_a_worker_address_is_not_taken_for_a_scheduler(cluster) -> None:
    worker = sorted(cluster.client.scheduler_info()["workers"])[0]
    with pytest.raises(ClusterError) as err:
        Cluster(ClusterSpec(scheduler=worker, connect_timeout=30))
    assert str(err.value) == (f"{worker} is a Dask worker, not a scheduler: give the "
                              "scheduler's address (tcp://host:8786)")


def test_cli_scheduler_that_is_an_http_server(cluster, http_server: str) -> None:
    wh = str(warehouse(cluster.client, "parquet", 3))
    result = CliRunner().invoke(main, ["sql", "-w", wh, "--scheduler", http_server,
                                       "--connect-timeout", "1",
                                       "SELECT count(*) FROM access_log"])
    assert result.exit_code == 2
    assert result.stderr == (f"mpp: error: {http_server} accepts connections but did not "
                             "answer as a Dask scheduler within 1 s (is it a scheduler's "
                             "port?)\n")


def test_unreachable_scheduler_fails_within_the_connect_timeout() -> None:
    start = time.monotonic()
    with pytest.raises(ClusterError) as err:
        Cluster(ClusterSpec(scheduler=UNREACHABLE, connect_timeout=1))
    assert str(err.value) == ("cannot reach the Dask scheduler at tcp://127.0.0.1:1 within 1 s "
                              "(is `dask scheduler` running there?)")
    assert time.monotonic() - start < 10  # Dask's own default waited ~32 s


@pytest.mark.parametrize("address", ["notaurl", "http://127.0.0.1:8786",
                                     "tcp://127.0.0.1:notaport", "tcp://host:99999", ""])
def test_malformed_scheduler_address(address: str) -> None:
    with pytest.raises(ClusterError) as err:
        check_scheduler_address(address)
    assert str(err.value) == (f"not a scheduler address: {address!r} (expected "
                              "tcp://host:port, e.g. tcp://10.0.0.5:8786)")


def test_good_addresses_pass_the_check() -> None:
    for address in ("tcp://10.0.0.5:8786", "127.0.0.1:8786", "tls://[::1]:8786"):
        check_scheduler_address(address)


def test_connect_by_a_bad_address_raises_mpp_error(cluster) -> None:
    wh = warehouse(cluster.client, "parquet", 3)
    with pytest.raises(MppError, match="not a scheduler address: 'notaurl'"):
        mpp.connect(wh, cluster="notaurl")
    with pytest.raises(MppError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:1"):
        mpp.connect(wh, cluster=ClusterSpec(scheduler=UNREACHABLE, connect_timeout=0.5))


@pytest.mark.parametrize("kwargs,message", [
    ({"workers": 0}, "ClusterSpec.workers must be an integer >= 1, got 0"),
    ({"threads_per_worker": 1.5}, "ClusterSpec.threads_per_worker must be an integer >= 1"),
    ({"connect_timeout": 0}, "ClusterSpec.connect_timeout must be a number of seconds > 0"),
    ({"connect_timeout": 1e9}, r"ClusterSpec.connect_timeout must be from 0.001 to 3,600.0 "
     r"\(a scheduler that is up answers in milliseconds; an hour covers any network\), got "
     r"1e\+09"),
    ({"workers": 10000}, r"ClusterSpec.workers must be from 1 to 64 \(each worker is a "
     r"process with a nanny, ~200 MB before any data; .*\), got 10,000"),
    ({"threads_per_worker": 65}, "ClusterSpec.threads_per_worker must be from 1 to 64"),
    ({"memory_limit": "lots"}, r"ClusterSpec.memory_limit: not a size: 'lots' \(expected a "
     r"number with units, e.g. '4GiB' or '512MB', or 'auto'\)"),
    ({"memory_limit": "1MiB"}, "ClusterSpec.memory_limit: '1MiB' is 1.00 MiB; a worker needs "
     "at least 256.00 MiB"),
])
def test_nonsensical_cluster_spec(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ClusterError, match=message):
        ClusterSpec(**kwargs)  # type: ignore[arg-type]


def test_cli_bad_scheduler_address(cluster) -> None:
    wh = str(warehouse(cluster.client, "parquet", 3))
    result = CliRunner().invoke(main, ["sql", "-w", wh, "--scheduler", "notaurl",
                                       "SELECT count(*) FROM access_log"])
    assert result.exit_code == 2
    assert result.stderr == ("mpp: error: not a scheduler address: 'notaurl' (expected "
                             "tcp://host:port, e.g. tcp://10.0.0.5:8786)\n")
    result = CliRunner().invoke(main, ["sql", "-w", wh, "--scheduler", UNREACHABLE,
                                       "--connect-timeout", "1",
                                       "SELECT count(*) FROM access_log"])
    assert result.exit_code == 2
    assert result.stderr == ("mpp: error: cannot reach the Dask scheduler at tcp://127.0.0.1:1 "
                             "within 1 s (is `dask scheduler` running there?)\n")


@pytest.mark.parametrize("args,message", [
    (["--scheduler", UNREACHABLE, "--workers", "3"], "--workers shapes the LocalCluster"),
    (["--scheduler", UNREACHABLE, "--workers", "3", "--threads", "2"],
     "--workers and --threads shape the LocalCluster"),
    (["--connect-timeout", "5"], "--connect-timeout applies only with --scheduler"),
    (["--scheduler", UNREACHABLE, "--dashboard-address", "0.0.0.0:8787"],
     "--dashboard-address shapes the LocalCluster"),
])
def test_options_the_cluster_would_ignore_are_usage_errors(tmp_path, args: list[str],
                                                           message: str) -> None:
    result = CliRunner().invoke(main, ["sql", "-w", str(tmp_path), *args, "SELECT 1"])
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def _record(exception_text: str, msg: str = "Compute Failed\nKey: %s\nState: %s\nTask: %s\n"
            "Exception: %r\nTraceback: %r\n") -> logging.LogRecord:
    return logging.LogRecord("distributed.worker", logging.ERROR, __file__, 1, msg,
                             ("k", "executing", "task", exception_text, "tb"), None)


def test_worker_filter_drops_task_errors_only() -> None:
    quiet = _QuietMppTaskErrors()
    assert not quiet.filter(_record("SqlError('cannot evaluate (a / 0): divide by zero')"))
    assert not quiet.filter(_record("StorageError('x.parquet: truncated')"))
    # a bug too: the CLI writes its traceback (worker frames included) to a crash report
    assert not quiet.filter(_record("KeyError('bug')"))
    other = logging.LogRecord("distributed.worker", logging.ERROR, __file__, 1,
                              "Failed to communicate with scheduler", (), None)
    assert quiet.filter(other)


def test_worker_filter_cuts_the_traceback_of_a_dead_peer() -> None:
    try:
        raise OSError("Stream is closed")
    except OSError:
        record = logging.LogRecord("distributed.worker", logging.ERROR, __file__, 1,
                                   "Worker stream died during communication: %s",
                                   ("tcp://127.0.0.1:1",), sys.exc_info())
    assert _QuietMppTaskErrors().filter(record)
    assert record.exc_info is None
    assert logging.Formatter().format(record) == ("Worker stream died during communication: "
                                                  "tcp://127.0.0.1:1")


def test_task_error_prints_no_worker_traceback(cluster) -> None:
    """Through a real `mpp sql` process: its own LocalCluster's workers log to its stderr."""
    wh = str(warehouse(cluster.client, "parquet", 3))
    proc = subprocess.run(
        [sys.executable, "-m", "mpp.cli", "sql", "-w", wh, "--workers", "1",
         "SELECT date,\n  bytes / 0 AS x FROM access_log LIMIT 2"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    # The error quotes the expression as written and where (line 2, column 3).
    assert "mpp: error: cannot evaluate bytes / 0: divide by zero (line 2, column 3)" \
        in proc.stderr
    assert "Compute Failed" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_local_memory_is_checked_against_the_machine() -> None:
    gib = 2**30
    assert local_memory_problem(2, "4GiB", total=16 * gib) is None
    assert local_memory_problem(2, "auto", total=16 * gib) is None
    assert local_memory_problem(64, None, total=gib) is None  # no limit: nothing to promise
    assert local_memory_problem(8, "4GiB", total=16 * gib) == (
        "memory_limit", "8 workers x 4GiB = 32.00 GiB exceeds this machine's memory (16.00 GiB):"
        " the OS would kill workers before Dask pauses or spills them. Use at most 2.00 GiB a "
        "worker, or 'auto'")
    assert local_memory_problem(64, "auto", total=8 * gib) == (
        "workers", "64 workers share this machine's 8.00 GiB (memory_limit 'auto'): 128.00 MiB "
        "each, less than the 256.00 MiB a worker needs")


def test_a_local_cluster_larger_than_the_machine_starts_nothing() -> None:
    with pytest.raises(ClusterError, match=r"ClusterSpec.memory_limit: 2 workers x 1PiB = .* "
                       "exceeds this machine's memory"):
        Cluster(ClusterSpec(workers=2, memory_limit="1PiB", dashboard_address=None))


@pytest.mark.parametrize("args, message", [
    (["sql", "-w", "wh", "--workers", "10000", "SELECT 1"],
     "Invalid value for '--workers': must be from 1 to 64 (each worker is a process"),
    (["sql", "-w", "wh", "--threads", "2.5", "SELECT 1"],
     "Invalid value for '--threads': expected an integer (digits, e.g. 1000000), got '2.5'"),
    (["sql", "-w", "wh", "--scheduler", UNREACHABLE, "--connect-timeout", "inf", "SELECT 1"],
     "Invalid value for '--connect-timeout': must be from 0.001 to 3,600.0"),
    (["bench", "joins", "--whatif", "8,1000000000"],
     "Invalid value: --whatif: each must be from 1 to 100,000"),
    (["bench", "joins", "--repeats", "1000"], "Invalid value for '--repeats': must be from 1 "
     "to 100 (each repeat runs the query again"),
    (["bench", "skew", "--workers", "0"], "Invalid value for '--workers': must be from 1 to 64"),
    (["catalog", "register", "-w", "wh", "--format", "sqlite", "--table", "t", "--path", "db",
      "--fragments", "0"], "Invalid value for '--fragments': must be from 1 to 100,000"),
])
def test_cli_numbers_out_of_range_name_option_value_and_range(args: list[str],
                                                              message: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_cli_run_dashboard_address_with_scheduler_is_a_usage_error(tmp_path) -> None:
    result = CliRunner().invoke(main, ["run", "scenarios/quickstart.toml", "--scheduler",
                                       UNREACHABLE, "--dashboard-address", "0.0.0.0:8787"])
    assert result.exit_code == 2
    assert "--dashboard-address places the dashboard of the LocalCluster" in result.stderr
