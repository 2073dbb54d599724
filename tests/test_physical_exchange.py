"""Hash exchange kernels: every row lands in exactly one bucket, equal keys in the same one,
whatever the key's width or encoding (so two sides of a partitioned join meet)."""

from __future__ import annotations

import pyarrow as pa

from mpp.physical.operators.exchange import bucket_of, split_by_bucket


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
