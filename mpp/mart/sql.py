"""The data mart's statements, in Trino's SQL as mpp runs them (docs/data-mart.md).

Every table is written by one of these statements through the session, so each write is the
ordinary MPP write: the SELECT's stages, a write stage, one Iceberg commit.
"""

from __future__ import annotations

import datetime as dt

FACT = "access_log"
SNAPSHOT = "users_snapshot"
INCREMENTS = "users_increments"
HISTORY = "users_history"
CHANGES = "users_changes"
MASTER = "users_master"
URLS = "urls"
DENORM = "access_log_denorm"
SUMMARY = "access_log_summary"

CREATE = {
    FACT: f"CREATE TABLE {FACT} (time timestamp, user_id bigint, session_id bigint, "
          "url_id integer, status smallint, bytes integer) "
          "WITH (format = 'PARQUET', partitioning = ARRAY['day(time)'])",
    SNAPSHOT: f"CREATE TABLE {SNAPSHOT} (snapshot_date date, user_id bigint, "
              "created_at timestamp, country varchar, plan varchar) "
              "WITH (partitioning = ARRAY['snapshot_date'])",
    INCREMENTS: f"CREATE TABLE {INCREMENTS} (extracted date, user_id bigint, "
                "created_at timestamp, country varchar, plan varchar) "
                "WITH (partitioning = ARRAY['extracted'])",
    HISTORY: f"CREATE TABLE {HISTORY} (user_id bigint, created_at timestamp, country varchar, "
             "plan varchar, valid_from date, valid_to date, is_current boolean)",
}
"""The tables written day by day, created empty first (their layout is fixed up front)."""

OVERWRITE = {"write.insert_existing_partitions": "overwrite"}
"""The setting that makes a daily INSERT replace exactly the partitions it writes."""


def raw_table(day: dt.date) -> str:
    """The name the day's raw CSV file is registered under."""
    return f"raw_access_log_{day:%Y%m%d}"


def load_fact(day: dt.date) -> str:
    """The daily fact load: structure the day's CSV rows (types) into the Parquet table."""
    return (f"INSERT INTO {FACT} SELECT time, user_id, session_id, CAST(url_id AS integer), "
            f"CAST(status AS smallint), CAST(bytes AS integer) FROM {raw_table(day)}")


def snapshot(day: dt.date) -> str:
    """The day's snapshot: the whole master table as it is now, under the day's date."""
    return (f"INSERT INTO {SNAPSHOT} SELECT DATE '{day}', user_id, created_at, country, plan "
            f"FROM {MASTER}")


def increments(day: dt.date, first: bool) -> str:
    """The notes' history of changes only: the first day a full extract, then the rows whose
    ``updated_at`` falls on the day (the filter runs in the master's database)."""
    where = "" if first else (f" WHERE updated_at >= TIMESTAMP '{day} 00:00:00' AND "
                              f"updated_at < TIMESTAMP '{day + dt.timedelta(days=1)} 00:00:00'")
    return (f"INSERT INTO {INCREMENTS} SELECT DATE '{day}', user_id, created_at, country, plan "
            f"FROM {MASTER}{where}")


STAGE_CHANGES = f"""CREATE OR REPLACE TABLE {CHANGES} AS
SELECT m.user_id, m.created_at, m.country, m.plan,
       CASE WHEN h.user_id IS NULL THEN 'insert' ELSE 'update' END AS change
FROM {MASTER} m LEFT JOIN (SELECT * FROM {HISTORY} WHERE is_current) h ON m.user_id = h.user_id
WHERE h.user_id IS NULL OR m.country <> h.country OR m.plan <> h.plan
UNION ALL
SELECT h.user_id, h.created_at, h.country, h.plan, 'delete' AS change
FROM {HISTORY} h LEFT JOIN {MASTER} m ON h.user_id = m.user_id
WHERE h.is_current AND m.user_id IS NULL"""
"""dbt's snapshot staging: rows new to the history, rows whose checked columns changed, and
current rows whose user is gone (dbt's ``invalidate_hard_deletes``)."""


def merge_history(day: dt.date) -> str:
    """dbt's snapshot MERGE: a changed or deleted user's current version is closed (valid_to,
    is_current); a new or changed user's values are inserted as the current version (their
    merge key is NULL, so they never match)."""
    return f"""MERGE INTO {HISTORY} h
USING (SELECT user_id AS merge_key, user_id, created_at, country, plan FROM {CHANGES}
       WHERE change <> 'insert'
       UNION ALL
       SELECT NULL AS merge_key, user_id, created_at, country, plan FROM {CHANGES}
       WHERE change <> 'delete') c
ON h.user_id = c.merge_key AND h.is_current
WHEN MATCHED THEN UPDATE SET valid_to = DATE '{day}', is_current = false
WHEN NOT MATCHED THEN INSERT (user_id, created_at, country, plan, valid_from, valid_to,
                              is_current)
VALUES (c.user_id, c.created_at, c.country, c.plan, DATE '{day}', NULL, true)"""


DENORMALIZE = f"""CREATE OR REPLACE TABLE {DENORM} WITH (partitioned_by = ARRAY['date']) AS
SELECT CAST(a.time AS date) AS date, a.time, u.country, u.plan, r.category, a.status, a.bytes
FROM {FACT} a
LEFT JOIN {HISTORY} u ON u.user_id = a.user_id AND u.valid_from <= CAST(a.time AS date)
     AND (u.valid_to IS NULL OR u.valid_to > CAST(a.time AS date))
LEFT JOIN {URLS} r ON r.url_id = a.url_id"""
"""The fact with its dimensions as of each request's day (the SCD2 validity range), keeping
only the columns BI needs."""

SUMMARIZE = f"""CREATE OR REPLACE TABLE {SUMMARY} AS
SELECT date, country, plan, category, status, count(*) AS requests, sum(bytes) AS bytes
FROM {DENORM} GROUP BY date, country, plan, category, status"""
"""The summary table: the denormalized rows at a lower cardinality."""

FACT_ROWS_PER_DAY = f"SELECT CAST(time AS date) AS day, count(*) AS n FROM {FACT} GROUP BY 1"


def as_of_history(day: dt.date) -> str:
    """The master table as of ``day``, rebuilt from the SCD2 history."""
    return (f"SELECT user_id, created_at, country, plan FROM {HISTORY} "
            f"WHERE valid_from <= DATE '{day}' AND (valid_to IS NULL OR valid_to > DATE '{day}')")


def as_of_snapshot(day: dt.date) -> str:
    """The master table as of ``day``, as the snapshot table holds it."""
    return (f"SELECT user_id, created_at, country, plan FROM {SNAPSHOT} "
            f"WHERE snapshot_date = DATE '{day}'")


def as_of_increments(day: dt.date) -> str:
    """The master table as of ``day`` rebuilt from the increments alone: each user's latest
    extracted row (a deleted user keeps its last one: no tombstone was ever extracted)."""
    return (f"SELECT user_id, created_at, country, plan FROM (SELECT *, row_number() OVER "
            f"(PARTITION BY user_id ORDER BY extracted DESC) AS rn FROM {INCREMENTS} "
            f"WHERE extracted <= DATE '{day}') AS t WHERE rn = 1")
