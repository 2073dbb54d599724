"""DuckDB recomputes every table of the data mart from the raw data, independently of mpp.

The raw data is what the pipeline started from: the day CSV files of the data lake, the urls
CSV, and the master table's change log (every insert, update and delete with its time, written
as CSV files beside the mart). None of mpp's tables is read. DuckDB derives the master table's
state at the end of each day from the change log, and from those states the snapshot table,
the SCD type 2 history (islands of unchanged days), the increments, the denormalized table and
the summary, each with the column names and types of mpp's table, so the two compare row for
row (:func:`mpp.scenario.rows.difference`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

RAW_COLUMNS = {"time": "TIMESTAMP", "date": "DATE", "user_id": "BIGINT",
               "session_id": "BIGINT", "url_id": "INTEGER", "status": "SMALLINT",
               "bytes": "INTEGER"}
CHANGE_COLUMNS = {"seq": "BIGINT", "day": "DATE", "changed_at": "TIMESTAMP", "op": "VARCHAR",
                  "user_id": "BIGINT", "created_at": "TIMESTAMP", "country": "VARCHAR",
                  "plan": "VARCHAR"}
URL_COLUMNS = {"url_id": "INTEGER", "path": "VARCHAR", "category": "VARCHAR"}

# The master table at the end of each day: each user's last change up to that day, unless it
# was a delete.
_STATES = """
CREATE TEMP TABLE states AS
SELECT day, user_id, created_at, country, plan FROM (
  SELECT d.day, c.*, row_number() OVER (PARTITION BY d.day, c.user_id ORDER BY c.seq DESC) AS rn
  FROM days d JOIN changes c ON c.day <= d.day)
WHERE rn = 1 AND op <> 'delete'"""

# SCD type 2 from the daily states: a version is a run of consecutive days with the same
# values; it is valid from its first day to the day after its last (NULL while current).
_HISTORY = """
WITH s AS (
  SELECT *, lag(day) OVER w AS prev_day, lag(country) OVER w AS prev_country,
         lag(plan) OVER w AS prev_plan
  FROM states WINDOW w AS (PARTITION BY user_id ORDER BY day)),
g AS (
  SELECT *, sum(CASE WHEN prev_day IS NULL OR prev_day <> day - 1 OR prev_country <> country
                     OR prev_plan <> plan THEN 1 ELSE 0 END)
            OVER (PARTITION BY user_id ORDER BY day) AS version
  FROM s)
SELECT user_id, any_value(created_at) AS created_at, any_value(country) AS country,
       any_value(plan) AS plan, min(day) AS valid_from,
       CASE WHEN max(day) = $last THEN NULL ELSE max(day) + 1 END AS valid_to,
       max(day) = $last AS is_current
FROM g GROUP BY user_id, version"""

# The notes' increments: day 1 a full extract, then each day the rows whose last change fell
# on that day and that still exist at its end (a deleted row leaves nothing to extract).
_INCREMENTS = """
SELECT s.day AS extracted, s.user_id, s.created_at, s.country, s.plan FROM states s
WHERE s.day = $first OR EXISTS (
  SELECT 1 FROM changes c WHERE c.user_id = s.user_id AND c.day = s.day)"""

# The last day's staging of changes: users new or changed since the day before, and the
# users gone since (with their last values). On the first day every user is new.
_STAGED = """
SELECT t.user_id, t.created_at, t.country, t.plan,
       CASE WHEN y.user_id IS NULL THEN 'insert' ELSE 'update' END AS change
FROM (SELECT * FROM states WHERE day = $last) t
LEFT JOIN (SELECT * FROM states WHERE day = $last - 1) y ON y.user_id = t.user_id
WHERE y.user_id IS NULL OR y.country <> t.country OR y.plan <> t.plan
UNION ALL
SELECT y.user_id, y.created_at, y.country, y.plan, 'delete' AS change
FROM (SELECT * FROM states WHERE day = $last - 1) y
WHERE y.user_id NOT IN (SELECT user_id FROM states WHERE day = $last)"""

_DENORM = """
SELECT r.date, r.time, s.country, s.plan, u.category, r.status, r.bytes
FROM raw r LEFT JOIN states s ON s.user_id = r.user_id AND s.day = r.date
LEFT JOIN urls u ON u.url_id = r.url_id"""

_SUMMARY = f"""
SELECT date, country, plan, category, status, count(*) AS requests,
       sum(bytes) AS bytes FROM ({_DENORM}) GROUP BY ALL"""


def _csv(paths: Sequence[Path], columns: dict[str, str]) -> str:
    files = ", ".join(f"'{p}'" for p in paths)
    cols = ", ".join(f"'{c}': '{t}'" for c, t in columns.items())
    return f"read_csv([{files}], header = true, columns = {{{cols}}})"


class MartOracle:
    """A DuckDB connection holding views of the raw data and the master's daily states."""

    def __init__(self, raw_days: Sequence[Path], urls: Path, first: dt.date, last: dt.date):
        self.first, self.last = first, last
        self.con = duckdb.connect()
        self.con.execute(f"CREATE TEMP VIEW raw AS SELECT * FROM {_csv(raw_days, RAW_COLUMNS)}")
        self.con.execute(f"CREATE TEMP VIEW urls AS SELECT * FROM {_csv([urls], URL_COLUMNS)}")
        self.con.execute("CREATE TEMP TABLE days AS SELECT CAST(d AS DATE) AS day FROM "
                         "range(CAST($1 AS DATE), CAST($2 AS DATE) + 1, INTERVAL 1 DAY) t(d)",
                         [first, last])

    def read_changes(self, changes: Sequence[Path]) -> None:
        """Read the master's change log files and derive its state at the end of each day
        (needed by every method below but :meth:`fact` and :meth:`rows_per_day`)."""
        self.con.execute("CREATE OR REPLACE TEMP TABLE changes AS SELECT * FROM "
                         f"{_csv(changes, CHANGE_COLUMNS)}")
        self.con.execute(_STATES.replace("CREATE TEMP", "CREATE OR REPLACE TEMP"))

    def _arrow(self, sql: str, **params: object) -> pa.Table:
        for name, value in params.items():
            sql = sql.replace(f"${name}", f"DATE '{value}'")
        return self.con.sql(sql).to_arrow_table()

    def fact(self) -> pa.Table:
        """access_log: the raw rows, typed, without the CSV's derived ``date`` column."""
        return self._arrow("SELECT time, user_id, session_id, url_id, status, bytes FROM raw")

    def rows_per_day(self, days: Sequence[dt.date]) -> dict[dt.date, int]:
        """Raw rows of each of ``days``."""
        got = self.con.execute("SELECT date, count(*) FROM raw GROUP BY date").fetchall()
        return {d: n for d, n in got if d in set(days)}

    def snapshot(self) -> pa.Table:
        """users_snapshot: one row per user and day."""
        return self._arrow("SELECT day AS snapshot_date, user_id, created_at, country, plan "
                           "FROM states")

    def history(self) -> pa.Table:
        """users_history: the SCD type 2 versions."""
        return self._arrow(_HISTORY, last=self.last)

    def increments(self) -> pa.Table:
        """users_increments: a full first extract, then each day's changed rows."""
        return self._arrow(_INCREMENTS, first=self.first)

    def staged_changes(self) -> pa.Table:
        """users_changes as the last day's MERGE staged it: new, changed and deleted users."""
        return self._arrow(_STAGED, last=self.last)

    def denormalized(self) -> pa.Table:
        """access_log_denorm: each request with its user's values as of the request's day."""
        return self._arrow(_DENORM)

    def summary(self) -> pa.Table:
        """access_log_summary: requests and bytes per day, country, plan, category, status."""
        return self._arrow(_SUMMARY)

    def stale_after_deletes(self) -> dict[dt.date, int]:
        """Per day, the users deleted after the first day and up to it: the rows an
        increments-only rebuild keeps although the master no longer has them."""
        got = self.con.execute(
            "SELECT d.day, count(c.seq) FROM days d LEFT JOIN changes c ON c.op = 'delete' "
            "AND c.day > $1 AND c.day <= d.day GROUP BY d.day", [self.first]).fetchall()
        return dict(got)

    def overwritten_within_day(self) -> int:
        """Changes (after the initial load) that a later change of the same user on the same
        day replaced: states no end-of-day copy holds."""
        return self.con.execute(
            "SELECT count(*) FROM (SELECT row_number() OVER (PARTITION BY user_id, day "
            "ORDER BY seq DESC) AS rn FROM changes WHERE day >= $1) WHERE rn > 1",
            [self.first]).fetchone()[0]

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.con.close()
