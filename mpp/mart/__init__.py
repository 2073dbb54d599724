"""The source notes' chapter 3-3 data mart as a pipeline of SQL writes (docs/data-mart.md).

:func:`mpp.mart.pipeline.run_mart` builds it from a generated CSV data lake: daily fact loads
with partition overwrite, a users master table in MariaDB (or SQLite) changed daily by a seeded
generator (:mod:`mpp.mart.master`), snapshot, increments and SCD type 2 history tables, then the
denormalized and summary tables, each checked against DuckDB (:mod:`mpp.mart.oracle`). The
scenario section ``[mart]`` (:mod:`mpp.mart.spec`) runs it in ``mpp run``.
"""
