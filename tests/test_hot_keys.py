"""Straggler attribution: a task names the key values it really held most of."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from mpp.physical.operators.base import HOT_KEY_SAMPLE, TaskContext


def test_hot_key_found_when_input_is_ordered() -> None:
    # Ordered input (as logs land): the first HOT_KEY_SAMPLE rows hold only cold keys.
    cold = [k for k in range(1, 5) for _ in range(HOT_KEY_SAMPLE // 2)]
    hot = [13] * (HOT_KEY_SAMPLE * 4)
    table = pa.table({"k": pa.array(cold + hot, pa.int64())})
    tctx = TaskContext(partition=0)
    tctx.note_keys(table, ("k",))
    truth = pc.value_counts(table["k"]).to_pylist()
    top = max(truth, key=lambda r: r["counts"])
    assert tctx.hot_keys[0][0] == top["values"]
    # The scaled estimate is within 5% of the true count.
    assert abs(tctx.hot_keys[0][1] - top["counts"]) <= 0.05 * top["counts"]
