"""``mpp bench dedup``: the cost of de-duplicating at read time with SQL, on a large table
with duplicates and a hot key.

The table ``events_dups`` is what an at-least-once ingestion leaves behind (see
docs/ingestion.md): ``rows`` rows of messages, of which a fraction ``duplicates`` are extra
copies of other messages (a resend after a lost ack, a redelivery after a consumer crash: the
same ``message_id``, ``producer``, ``seq`` and ``bytes``, a later ``received_at``), and a
fraction ``hot`` are copies of ONE message (a client stuck resending it): the skew the
de-duplication meets, since every copy of an ID goes to the same hash bucket.

Two de-duplications run on it, each summarised by a count and a checksum (every copy of a
message carries the same ``seq``, so the checksum does not depend on which copy is kept):

* ``d1``: ``row_number() OVER (PARTITION BY message_id ORDER BY received_at) = 1``, the first
  copy of each message (:data:`mpp.ingest.pipeline.DEDUP_SQL`'s shape);
* ``d2``: ``SELECT DISTINCT message_id, producer, seq`` (copies are identical).

They run through :func:`mpp.bench.queries.bench_queries` on mpp and DuckDB over the same files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mpp.catalog import CATALOG_DB, Catalog
from mpp.storage.base import StorageFormat

TABLE = "events_dups"

SCHEMA = pa.schema([
    ("message_id", pa.string()),
    ("producer", pa.string()),
    ("seq", pa.int64()),
    ("bytes", pa.int32()),
    ("received_at", pa.timestamp("us")),
])

QUERIES = {
    "d1": "SELECT count(*) AS messages, sum(seq) AS checksum FROM (SELECT message_id, seq, "
          "row_number() OVER (PARTITION BY message_id ORDER BY received_at) AS copy "
          f"FROM {TABLE}) t WHERE copy = 1",
    "d2": "SELECT count(*) AS messages, sum(seq) AS checksum FROM (SELECT DISTINCT "
          f"message_id, producer, seq FROM {TABLE}) t",
}

START_US = 1_767_225_600_000_000  # 2026-01-01 00:00 UTC


def fragment(index: int, lo: int, hi: int, rows: int, *, duplicates: float, hot: float,
             seed: int) -> pa.Table:
    """Rows ``lo`` .. ``hi`` of the table: row ``i`` is message ``i``, or (with probability
    ``duplicates``) a copy of a message drawn uniformly from all of them, or (``hot``) a copy
    of message 0. A message's fields follow from its number, so copies are identical but for
    ``received_at`` (one millisecond per row)."""
    gen = np.random.default_rng([seed, index])
    n = hi - lo
    msg = np.arange(lo, hi, dtype=np.int64)
    draw = gen.random(n)
    copies = draw < duplicates
    msg[copies] = gen.integers(0, rows, int(copies.sum()))
    msg[(draw >= duplicates) & (draw < duplicates + hot)] = 0
    ids = pa.array(msg)
    return pa.table({
        "message_id": pc.binary_join_element_wise("m", pc.cast(ids, pa.string()), ""),
        "producer": pc.binary_join_element_wise("p", pc.cast(pa.array(msg % 64), pa.string()),
                                                ""),
        "seq": ids,
        "bytes": pa.array((msg * 2654435761 % 100_000).astype(np.int32)),
        "received_at": pa.array(START_US + np.arange(lo, hi, dtype=np.int64) * 1000,
                                pa.timestamp("us")),
    }, schema=SCHEMA)


def generate(warehouse: str | Path, *, rows: int, partitions: int = 100,
             duplicates: float = 0.05, hot: float = 0.01, seed: int = 1) -> Catalog:
    """Write :data:`TABLE` into ``warehouse`` (created if missing; a table already there is
    kept as it is) as ``partitions`` Parquet files of an Iceberg table, in one commit."""
    from mpp.catalog.write import write_fragment

    warehouse = Path(warehouse)
    catalog = Catalog.open(warehouse, create=not (warehouse / CATALOG_DB).exists())
    if TABLE in catalog.tables():
        return catalog
    target = catalog.begin_write(TABLE, SCHEMA, StorageFormat.PARQUET)
    bounds = np.linspace(0, rows, partitions + 1, dtype=np.int64)
    written = []
    try:
        for i in range(partitions):
            table = fragment(i, int(bounds[i]), int(bounds[i + 1]), rows,
                             duplicates=duplicates, hot=hot, seed=seed)
            written.append(write_fragment(target, i, table))
        catalog.commit_write(target, written)
    except BaseException:
        catalog.abort_write(target)
        raise
    return catalog
