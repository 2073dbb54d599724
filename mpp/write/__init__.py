"""Writes: statements that change tables, run as partition tasks on the cluster, committed once.

The session hands a parsed statement (:mod:`mpp.sql.statements`) to this package; nothing here
looks at SQL text other than the SELECT it plans. CREATE TABLE AS is the seed's Hive-style
structuring step: raw text lands in the lake, a batch job rewrites it as Parquet (or ORC),
after which aggregations read a fraction of the bytes::

    CREATE TABLE access_log_pq WITH (format = 'PARQUET', partitioned_by = ARRAY['date'])
    AS SELECT * FROM access_log_csv

:mod:`stage` runs a SELECT with a write stage after it, :mod:`sizing` plans output files near
the target size, :mod:`tasks` are the worker functions, :mod:`ctas` creates a table and
commits once; :mod:`insert` appends (or overwrites the partitions it produces),
:mod:`delete`, :mod:`update` and :mod:`merge` rewrite only the files they change, each in one
snapshot; :mod:`maintenance` runs optimize and expire_snapshots; :mod:`alter` evolves a
table's schema (ADD / RENAME / DROP COLUMN) in one metadata commit.
"""

from __future__ import annotations

# Its settings (write.target_file_bytes, write.fail_task) live with the others in mpp.config,
# so every Settings has them.
