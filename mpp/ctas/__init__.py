"""Structuring raw data into a columnar table: CREATE TABLE AS and DROP TABLE.

The seed's Hive-style pipeline: raw text lands in the lake, a batch job rewrites it as Parquet
(or ORC), after which aggregations read a fraction of the bytes::

    CREATE TABLE access_log_pq WITH (format = 'PARQUET', partitioned_by = ARRAY['date'])
    AS SELECT * FROM access_log_csv

:mod:`statement` parses the DDL, :mod:`sizing` plans output files near the target size,
:mod:`tasks` are the worker functions, :mod:`run` runs it all and commits once.
"""

from __future__ import annotations

from mpp.config import Setting, register

TARGET_FILE_BYTES = register(Setting(
    "write.target_file_bytes", 128 * 1024 * 1024,
    "CREATE TABLE AS: target size of each output file (object storage likes files of "
    "~128 MB); small inputs are combined and large ones split to land near it."))
FAIL_TASK = register(Setting(
    "write.fail_task", -1,
    "Fault injection for tests: CREATE TABLE AS write task N fails after writing its file "
    "(-1: off). The conversion must then leave no table and no files behind."))

__all__ = ["FAIL_TASK", "TARGET_FILE_BYTES"]
