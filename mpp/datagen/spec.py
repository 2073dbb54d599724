"""The knobs of a generated warehouse, validated up front (a bad knob is a KnobError naming it).

Dimension sizes follow the knobs: ``users`` users; ``sessions`` defaults to one per 20 access
rows, capped at 5,000,000 (real sessions hold tens of requests); ``urls`` defaults to 10,000.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from mpp import limits
from mpp.errors import KnobError, suggest
from mpp.storage.base import StorageFormat

TABLES = ("access_log", "users", "sessions", "urls")
SESSIONS_PER_ROW = 20
MAX_SESSIONS = 5_000_000


# The knobs with a range of their own (hot_day's depends on days, checked in validate).
KNOB_LIMITS = {"rows": limits.ROWS, "partitions": limits.PARTITIONS, "days": limits.DAYS,
               "users": limits.USERS, "urls": limits.URLS, "sessions": limits.SESSIONS,
               "zipf": limits.ZIPF, "hot_share": limits.HOT_SHARE, "seed": limits.SEED}

# Bump whenever the generator's output for the same spec and seed changes: scenario data caches
# are keyed by it (mpp.scenario.spec.data_spec_hash), and tests/test_datagen.py pins the
# content checksum of a small spec to it.
GENERATOR_VERSION = 2


@dataclass(frozen=True, slots=True)
class DatagenSpec:
    """Everything that determines a generated warehouse; same spec => identical contents.

    Attributes:
        rows: access_log rows.
        partitions: access_log fragments (files); each lies within one day.
        seed: the random seed.
        days: days of traffic, from ``start_date``.
        start_date: the first day (the seed's 2017-01-01).
        users: distinct users (the users dimension).
        zipf: exponent of user popularity (rank r has weight 1 / r**zipf; 0 = uniform).
        hot_day: 1-based day that carries ``hot_share`` of the traffic (0: no hot day).
        hot_share: the hot day's share of rows (the rest spread evenly over the other days).
        format: storage format of every table unless ``table_formats`` says otherwise.
        table_formats: per-table formats, e.g. ``(("users", StorageFormat.SQLITE),)``.
        sessions: sessions (0: ``rows / 20`` capped at 5M).
        urls: distinct URLs.
    """

    rows: int = 1_000_000
    partitions: int = 100
    seed: int = 0
    days: int = 30
    start_date: dt.date = dt.date(2017, 1, 1)
    users: int = 100_000
    zipf: float = 1.1
    hot_day: int = 13
    hot_share: float = 0.4
    format: StorageFormat = StorageFormat.PARQUET
    table_formats: tuple[tuple[str, StorageFormat], ...] = ()
    sessions: int = 0
    urls: int = 10_000

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise KnobError naming the first nonsensical knob, its value and its range (see
        :mod:`mpp.limits` for the reason of each bound)."""
        for name, limit in KNOB_LIMITS.items():
            problem = limit.problem(getattr(self, name))
            if problem:
                raise KnobError(f"knob {name!r} {problem}")
        if self.partitions > self.rows:
            raise KnobError(f"knob 'partitions' ({self.partitions:,}) must not exceed "
                            f"'rows' ({self.rows:,}): a fragment needs at least one row")
        if self.partitions < self.days:
            raise KnobError(f"knob 'partitions' ({self.partitions}) must be >= 'days' "
                            f"({self.days}): every fragment lies within one day")
        problem = fragment_rows_problem(self.rows, self.partitions)
        if problem:
            raise KnobError(f"knobs 'rows' and 'partitions': {problem}")
        if not 0 <= self.hot_day <= self.days:
            raise KnobError(f"knob 'hot_day' must be a day in 1..{self.days} (0: none), "
                            f"got {self.hot_day}")
        if self.hot_day and self.days > 1 and self.hot_share >= 1.0:
            raise KnobError("knob 'hot_share' must be < 1 when there are other days "
                            "(each day needs rows for its fragments)")
        for table, _ in self.table_formats:
            if table not in TABLES:
                raise KnobError(f"knob 'table_format': unknown table {table!r}."
                                + suggest(table, TABLES))

    @property
    def session_count(self) -> int:
        """Rows of the sessions dimension."""
        if self.sessions:
            return self.sessions
        return max(1, min(MAX_SESSIONS, self.rows // SESSIONS_PER_ROW))

    def format_of(self, table: str) -> StorageFormat:
        """Storage format of ``table``."""
        return dict(self.table_formats).get(table, self.format)

    def to_json(self) -> str:
        """The spec as JSON (recorded with every generated table)."""
        d: dict[str, Any] = dataclasses.asdict(self)
        d["start_date"] = self.start_date.isoformat()
        d["format"] = self.format.value
        d["table_formats"] = {t: f.value for t, f in self.table_formats}
        return json.dumps(d, sort_keys=True)


def fragment_rows_problem(rows: int, partitions: int) -> str | None:
    """What is wrong with ``rows`` over ``partitions`` fragments: a fragment (of the average
    size) holding more rows than one worker generates at once, or None."""
    per = -(-rows // max(1, partitions))
    if per <= limits.FRAGMENT_ROWS.maximum:
        return None
    return (f"{rows:,} rows in {partitions:,} fragments is {per:,} rows a fragment; at most "
            f"{limits.FRAGMENT_ROWS.maximum:,} ({limits.FRAGMENT_ROWS.why}). Use at least "
            f"{-(-rows // limits.FRAGMENT_ROWS.maximum):,} partitions.")


def parse_table_formats(items: tuple[str, ...] | list[str]) -> tuple[tuple[str, StorageFormat], ...]:
    """Parse ``TABLE=FORMAT`` items (the ``--table-format`` option)."""
    out = []
    for item in items:
        table, sep, fmt = item.partition("=")
        if not sep:
            raise KnobError(f"knob 'table_format' takes TABLE=FORMAT, got {item!r}")
        try:
            parsed = StorageFormat(fmt.strip().lower())
            if not parsed.writable:
                raise ValueError(fmt)
            out.append((table.strip(), parsed))
        except ValueError:
            raise KnobError(f"knob 'table_format': unknown format {fmt!r} for {table!r} "
                            f"(one of {', '.join(f.value for f in StorageFormat if f.writable)})"
                            ) from None
    return tuple(out)
