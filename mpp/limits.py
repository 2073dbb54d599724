"""The range of every numeric knob without a natural bound, each with the reason for it.

A value past these bounds used to pass validation and fail later, deep inside numpy or Dask
(``rows = 1e15``, ``workers = 10000``). Each :class:`Limit` is checked where the value is given
(the scenario validator with its key path, a ``DatagenSpec``, a ``ClusterSpec``, a CLI option),
and the error names the value, the range and the reason. docs/scenario-reference.md lists them.

    >>> HOT_SHARE.problem(1.5)
    'must be from 0.0 to 1.0 (a share of the rows), got 1.5'
    >>> ROWS.problem(1e6)
    'must be an integer, got 1000000.0'
    >>> ROWS.problem(1_000_000) is None
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click


@dataclass(frozen=True, slots=True)
class Limit:
    """An inclusive range of a number, the reason for it, and whether it must be an integer."""

    minimum: int | float
    maximum: int | float
    why: str
    integer: bool = True

    def describe(self) -> str:
        """The range in words: ``from 1 to 100,000``."""
        return f"from {self.minimum:,} to {self.maximum:,}"

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` ("must be ...; got ..."), or None if it is in range."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, got {value!r}"
        if self.integer and not isinstance(value, int):
            return f"must be an integer, got {value!r}"
        if not self.minimum <= value <= self.maximum:  # also catches NaN
            shown = f"{value:,}" if isinstance(value, int) else f"{value:g}"
            return f"must be {self.describe()} ({self.why}), got {shown}"
        return None

    def click_type(self) -> click.ParamType:
        """A click type that checks this range and names the option, the value and the reason
        (click's IntRange names no reason)."""
        return _LimitType(self)


class _LimitType(click.ParamType):
    """Converts an option's text to a number within a :class:`Limit`."""

    def __init__(self, limit: Limit):
        self.limit = limit
        self.name = "integer" if limit.integer else "float"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number: int | float = value
        else:
            text = str(value).strip().replace("_", "")
            try:
                number = int(text) if self.limit.integer else float(text)
            except ValueError:
                kind = "an integer (digits, e.g. 1000000)" if self.limit.integer else "a number"
                self.fail(f"expected {kind}, got {value!r}", param, ctx)
        problem = self.limit.problem(number)
        if problem:
            self.fail(problem, param, ctx)
        return number

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        """``INTEGER`` or ``FLOAT``, as click's own types show (the range is in the help)."""
        return self.name.upper()


# --- Generated data (mpp datagen, a scenario's [data]) ------------------------------------
ROWS = Limit(1, 10_000_000_000, "100 x the 100M-row headline scale: ~110 GB of Parquet and "
             "~70 min of generation at the measured 2.3M rows/s")
FRAGMENT_ROWS = Limit(1, 10_000_000, "a fragment is generated in one worker's memory, ~75 "
                      "bytes a row: 10M rows take ~0.75 GB")
PARTITIONS = Limit(1, 100_000, "each fragment is a catalog entry and a task of every scan (and "
                   "a file, when generated); past 100,000 the scheduler is swamped")
DAYS = Limit(1, 3_660, "ten years of daily traffic; every day needs a fragment of its own")
HOT_DAY = Limit(0, 3_660, "a day within days, 1-based; 0 is none")
USERS = Limit(1, 50_000_000, "every worker keeps the users' Zipf table, 8 bytes a user")
URLS = Limit(1, 50_000_000, "every worker keeps the URLs' Zipf table, 8 bytes a URL")
SESSIONS = Limit(0, 50_000_000, "every worker keeps each session's user, 8 bytes a session; "
                 "0 means rows/20")
ZIPF = Limit(0.0, 10.0, "0 is uniform; past 10 nearly every row is the top user",
             integer=False)
HOT_SHARE = Limit(0.0, 1.0, "a share of the rows", integer=False)
SEED = Limit(-(2**63), 2**63 - 1, "seeds are 64-bit")

# --- The local cluster (scenario [cluster], --workers/--threads) --------------------------
WORKERS = Limit(1, 64, "each worker is a process with a nanny, ~200 MB before any data; "
                "larger clusters are what the what-if model predicts")
THREADS = Limit(1, 64, "a worker's threads share one Python process; past 64 they only "
                "contend")
# Smallest memory a worker may be given: a Dask worker holds ~150 MB before any data and pauses
# at 80% of its limit, so below this it would pause or be restarted on start.
MIN_WORKER_MEMORY = 256 * 2**20

CONNECT_TIMEOUT = Limit(0.001, 3600.0, "a scheduler that is up answers in milliseconds; an "
                        "hour covers any network", integer=False)
STALL_TIMEOUT = Limit(0.001, 86_400.0, "how long a query may find no worker able to run its "
                      "tasks; a day outlasts any restart of a cluster", integer=False)

# --- Runs ----------------------------------------------------------------------------------
SCALE = Limit(1e-6, 10_000.0, "--scale multiplies data.rows; 10,000 takes a 1M-row scenario "
              "to the 10-billion-row limit", integer=False)
REPEATS = Limit(1, 100, "each repeat runs the query again; the median of 100 is as stable as "
                "it gets on one machine")
WARMUP = Limit(0, 10, "untimed runs of every variant x query before the timed repeats; a worker's "
               "memory pool and caches are warm after a few")
WHATIF_WORKERS = Limit(1, 100_000, "the what-if list scheduler keeps a slot per worker "
                       "thread; the warehouses it models have hundreds of nodes")
