"""``mpp bench joins`` at toy scale: the figures it reports have the right shape (a broadcast
join hash-exchanges nothing of the fact side; the model multiplies the broadcast bytes by the
probe workers), both strategies return the same rows, and the JSON holds every run."""

from __future__ import annotations

import json
from pathlib import Path

from mpp.bench.joins import bench_joins, crossover, format_runs, write_json


def test_bench_joins_figures(tmp_path: Path, cluster) -> None:
    runs = bench_joins(fact_rows=3_000, dims=(20, 4_000), partitions=4, whatif=(4, 16),
                       out=str(tmp_path / "wh"), cluster=cluster)
    assert [(r.dim_rows, r.strategy) for r in runs] == [
        (20, "broadcast"), (20, "partitioned"), (4_000, "broadcast"), (4_000, "partitioned")]
    for r in runs:
        assert r.peak_worker_bytes > 0 and sorted(r.predicted_s) == [4, 16]
        assert r.auto_choice == "broadcast"  # both far below the 32 MiB default threshold
        if r.strategy == "broadcast":
            assert r.hash_bytes == 0 and r.broadcast_bytes > 0
            assert r.model_bytes in (r.broadcast_bytes, 2 * r.broadcast_bytes)
        else:
            assert r.broadcast_bytes == 0 and r.hash_bytes == r.model_bytes > 0
    by = {(r.dim_rows, r.strategy): r for r in runs}
    for n in (20, 4_000):
        assert by[n, "broadcast"].out_rows == by[n, "partitioned"].out_rows
    # the bigger dimension costs more bytes in both strategies
    assert by[4_000, "broadcast"].broadcast_bytes > by[20, "broadcast"].broadcast_bytes
    assert by[4_000, "partitioned"].hash_bytes > by[20, "partitioned"].hash_bytes
    text = format_runs(runs)
    assert "broadcast stops winning at" in text and "4,000" in text
    write_json(runs, str(tmp_path / "runs.json"), fact_rows=3_000)
    doc = json.loads((tmp_path / "runs.json").read_text())
    assert doc["fact_rows"] == 3_000 and len(doc["runs"]) == 4
    assert doc["crossover_dim_rows"] == crossover(runs)
    # reusing the warehouse adds only the missing dimension
    again = bench_joins(fact_rows=3_000, dims=(50,), strategies=("broadcast",), partitions=4,
                        whatif=(4,), out=str(tmp_path / "wh"), cluster=cluster)
    assert len(again) == 1 and again[0].dim_rows == 50
