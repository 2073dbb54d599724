"""Hash exchange kernels: every row lands in exactly one bucket, equal keys in the same one,
whatever the key's width or encoding (so two sides of a partitioned join meet)."""

from __future__ import annotations

import pickle

import pyarrow as pa
from dask.sizeof import sizeof
from distributed.protocol import deserialize, serialize

from mpp.execution import sizing
from mpp.physical.operators.base import mark_unreduced
from mpp.physical.operators.exchange import (
    BucketedTable,
    ExchangeExec,
    ExchangeKind,
    bucket_of,
    split_by_bucket,
    take_bucket,
)
from tests.rows_op import Rows


def test_split_keeps_every_row_and_groups_equal_keys() -> None:
    table = pa.table({"k": [5, 1, None, 5, 3, 1, None, 9] * 10, "v": list(range(80))})
    parts = split_by_bucket(table, ("k",), 4)
    assert len(parts) == 4
    assert sorted(v for p in parts for v in p["v"].to_pylist()) == list(range(80))
    homes = {}
    for j, part in enumerate(parts):
        for k in part["k"].to_pylist():
            assert homes.setdefault(k, j) == j


def test_equal_keys_of_different_types_share_a_bucket() -> None:
    ints = [1, -7, 2**40, 0]
    narrow = pa.table({"k": pa.array([1, -7, 0], pa.int32())})
    wide = pa.table({"k": pa.array(ints, pa.int64())})
    b_narrow, b_wide = bucket_of(narrow, ("k",), 7), bucket_of(wide, ("k",), 7)
    assert list(b_narrow) == [b_wide[0], b_wide[1], b_wide[3]]
    plain = pa.table({"s": ["a", "bb", "a"]})
    encoded = pa.table({"s": pa.array(["bb", "a"]).dictionary_encode()})
    assert list(bucket_of(encoded, ("s",), 5)) == list(bucket_of(plain, ("s",), 5)[[1, 0]])


def test_multi_column_keys_spread_rows() -> None:
    table = pa.table({"a": [1] * 100, "b": list(range(100))})
    assert len(set(bucket_of(table, ("a", "b"), 8))) > 4


def _map_outputs(maps: int, rows: int, buckets: int) -> tuple[ExchangeExec, list[BucketedTable]]:
    """The outputs of ``maps`` producer tasks whose partial DISTINCT reduced nothing (message
    IDs), as each task hands them to a hash exchange: cut into ``buckets`` there."""
    tables = [pa.table({"id": [f"m{m * rows + i}" for i in range(rows)],
                        "seq": pa.array(range(m * rows, (m + 1) * rows), pa.int64())})
              for m in range(maps)]
    sink = ExchangeExec(Rows(tables[0]), ExchangeKind.HASH, ("id",), buckets)
    return sink, [sink.map_output(mark_unreduced(t)) for t in tables]


def _wire_bytes(obj: object) -> int:
    """Bytes Dask sends (or spills) for ``obj``: its serialised frames."""
    _, frames = serialize(obj)
    return sum(memoryview(f).nbytes for f in frames)


def test_a_combined_output_crosses_workers_at_its_own_size() -> None:
    """A combine task's output (F bucketed map outputs, concatenated bucket by bucket) is
    N x F zero-copy slices of the map outputs. Sent to another worker or spilled, it used to
    be pickled with each slice's whole parent buffers: N times its bytes, enough to kill the
    worker that fetched it. It now goes as the rows it holds, and arrives intact."""
    sizing.register()
    sink, maps = _map_outputs(maps=4, rows=2_000, buckets=64)
    combined = sink.combine_buckets(maps)
    held = combined.table.nbytes
    assert abs(sum(m.table.nbytes for m in maps) - held) < 0.01 * held  # slices, not copies
    assert sizeof(combined) < held + 2_000  # what Dask counts is what it holds
    # Its rows, plus an IPC message header per chunk (a few hundred bytes); was ~64 x held.
    framing = 400 * combined.table["id"].num_chunks + 10_000
    assert _wire_bytes(combined) < held + framing
    assert len(pickle.dumps(combined, protocol=5)) < held + framing
    back = deserialize(*serialize(combined))
    assert back.offsets == combined.offsets and back.table.equals(combined.table)
    for j in (0, 17, 63):  # a split moves only its bucket
        bucket = take_bucket(combined, j)
        assert bucket.equals(take_bucket(back, j))
        assert _wire_bytes(bucket) < 1.2 * bucket.nbytes + 10_000
    rows = pa.concat_tables([take_bucket(back, j) for j in range(combined.n)])
    assert sorted(rows["seq"].to_pylist()) == list(range(4 * 2_000))
