"""Structuring raw data into a columnar table: CREATE TABLE AS and DROP TABLE.

The seed's Hive-style pipeline: raw text lands in the lake, a batch job rewrites it as Parquet
(or ORC), after which aggregations read a fraction of the bytes::

    CREATE TABLE access_log_pq WITH (format = 'PARQUET', partitioned_by = ARRAY['date'])
    AS SELECT * FROM access_log_csv

:mod:`statement` parses the DDL, :mod:`sizing` plans output files near the target size,
:mod:`tasks` are the worker functions, :mod:`run` runs it all and commits once.
"""

from __future__ import annotations

# Its settings (write.target_file_bytes, write.fail_task) live with the others in mpp.config,
# so every Settings has them.
