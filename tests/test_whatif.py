"""The what-if scheduler on small synthetic task sets with known answers."""

from __future__ import annotations

import pytest

from mpp.errors import KnobError
from mpp.metrics.records import TaskRecord
from mpp.metrics.whatif import (
    TaskOrder,
    calibrate_overhead,
    measure_overheads,
    measured_makespan,
    predict_makespan,
    predict_many,
    worker_lanes,
)


def task(stage: int, part: int, secs: float, *, rows: int = 100, sent: int = 0,
         start: float = 0.0) -> TaskRecord:
    return TaskRecord(query_id="q", stage=stage, name=f"stage{stage}", key=f"s{stage}-{part}",
                      partition=part, worker="w", start=start, stop=start + secs,
                      rows_in=rows, bytes_sent=sent)


@pytest.mark.parametrize(("workers", "makespan"), [(1, 4.0), (2, 2.0), (4, 1.0), (8, 1.0)])
def test_equal_tasks_fill_the_workers(workers: int, makespan: float) -> None:
    recs = [task(0, i, 1.0) for i in range(4)]
    assert predict_makespan(recs, workers).makespan == pytest.approx(makespan)


def test_threads_are_slots_like_workers_without_network() -> None:
    recs = [task(0, i, 1.0) for i in range(4)]
    assert predict_makespan(recs, 1, threads_per_worker=2).makespan == pytest.approx(2.0)


def test_straggler_dominates_at_high_worker_counts() -> None:
    recs = [task(0, i, 1.0) for i in range(99)] + [task(0, 99, 10.0)]
    assert predict_makespan(recs, 2).makespan == pytest.approx(55.0)  # ceil(109 / 2), LPT
    assert predict_makespan(recs, 128).makespan == pytest.approx(10.0)
    balanced = [task(0, i, 109 / 100) for i in range(100)]
    assert predict_makespan(balanced, 128).makespan == pytest.approx(1.09)


def test_lpt_versus_record_order() -> None:
    # Record order puts the long task last: 1+1 | 1 then 3 -> 4; LPT: 3 | 1+1+1 -> 3.
    recs = [task(0, 0, 1.0), task(0, 1, 1.0), task(0, 2, 1.0), task(0, 3, 3.0)]
    assert predict_makespan(recs, 2).makespan == pytest.approx(3.0)
    assert predict_makespan(recs, 2, order=TaskOrder.RECORD).makespan == pytest.approx(4.0)


def test_stage_barrier_and_explicit_independence() -> None:
    recs = [task(0, 0, 1.0), task(0, 1, 3.0), task(1, 0, 1.0), task(1, 1, 1.0)]
    p = predict_makespan(recs, 2)
    assert p.stage(1).ready == pytest.approx(3.0)
    assert p.makespan == pytest.approx(4.0)
    assert p.critical_path == (0, 1) and p.critical_stage == 0
    # Declared independent, stage 1 back-fills the slot stage 0's short task freed.
    free = predict_makespan(recs, 2, stage_deps={1: []})
    assert free.makespan == pytest.approx(3.0)
    assert free.stage(1).ready == 0.0


def test_diamond_dependencies() -> None:
    recs = [task(0, 0, 2.0), task(1, 0, 5.0), task(2, 0, 1.0)]
    p = predict_makespan(recs, 2, stage_deps={0: [], 1: [], 2: [0, 1]})
    assert p.stage(2).ready == pytest.approx(5.0)
    assert p.makespan == pytest.approx(6.0)
    assert p.critical_path == (1, 2) and p.critical_stage == 1


def test_bandwidth_term_uniform_and_hot_receiver() -> None:
    scan = [task(0, i, 1.0, sent=500_000_000) for i in range(2)]  # 1e9 bytes exchanged
    even = [task(1, 0, 1.0, rows=50), task(1, 1, 1.0, rows=50)]
    p = predict_makespan(scan + even, 2, bandwidth_bytes_per_s=1e9)
    # Half the bytes cross the network, each worker's link carrying a quarter: 0.25 s.
    assert p.stage(1).exchange_s == pytest.approx(0.25)
    assert p.makespan == pytest.approx(2.25)
    hot = [task(1, 0, 1.0, rows=75), task(1, 1, 1.0, rows=25)]
    # The receiver of the 75% task gets 0.75 of the remote half: 0.375 s.
    assert predict_makespan(scan + hot, 2, bandwidth_bytes_per_s=1e9).stage(1).exchange_s == \
        pytest.approx(0.375)
    # One worker: nothing crosses the network.
    assert predict_makespan(scan + even, 1).stage(1).exchange_s == 0.0


def test_a_consumer_fetches_its_share_of_the_bytes_per_task() -> None:
    scan = [task(0, i, 1.0, sent=500_000_000) for i in range(2)]  # 1e9 bytes exchanged
    hot = [task(1, 0, 1.0, rows=75), task(1, 1, 1.0, rows=25)]
    p = predict_makespan(scan + hot, 2, bandwidth_bytes_per_s=1e9, fetch_per_task=True)
    # No barrier term: the 75% task fetches 0.75 of the remote half (0.375 s) in its own
    # duration, the other 0.125 s; the stage waits for the longer one.
    assert p.stage(1).exchange_s == 0.0
    assert p.stage(1).longest_task_s == pytest.approx(1.375)
    assert p.stage(1).longest_key == "s1-0"
    assert p.makespan == pytest.approx(2.375)
    # One worker: nothing crosses the network.
    assert predict_makespan(scan + hot, 1, fetch_per_task=True).makespan == pytest.approx(4.0)


def test_the_stage_timing_names_the_task_it_ran_longest() -> None:
    recs = [task(0, 0, 1.0), task(0, 1, 3.0), task(0, 2, 2.0)]
    assert predict_makespan(recs, 2).stage(0).longest_key == "s0-1"
    assert predict_makespan(recs, 2).to_dict()["stages"][0]["longest_task"] == "s0-1"


def test_task_overhead_is_added_per_task() -> None:
    recs = [task(0, i, 1.0) for i in range(4)]
    assert predict_makespan(recs, 2, task_overhead_s=0.5).makespan == pytest.approx(3.0)


def test_predict_many_and_measured_makespan() -> None:
    recs = [task(0, i, 1.0, start=100.0 + i) for i in range(4)]
    assert measured_makespan(recs) == pytest.approx(4.0)
    assert measured_makespan([]) == 0.0
    preds = predict_many(recs)
    assert sorted(preds) == [2, 8, 32, 128]
    assert preds[128].makespan == pytest.approx(1.0)
    assert preds[2].to_dict()["makespan_s"] == pytest.approx(2.0)


def test_no_records_predicts_zero() -> None:
    p = predict_makespan([], 4)
    assert p.makespan == 0.0 and p.critical_stage is None


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"workers": 0}, "workers"),
    ({"workers": 2, "threads_per_worker": 0}, "threads_per_worker"),
    ({"workers": 2, "bandwidth_bytes_per_s": 0.0}, "bandwidth"),
    ({"workers": 2, "task_overhead_s": -1.0}, "overhead"),
    ({"workers": 2, "stage_deps": {1: [7]}}, "stage 1 depends on stage"),
    ({"workers": 2, "stage_deps": {0: [1], 1: [0]}}, "cycle"),
])
def test_bad_knobs_are_named(kwargs: dict, match: str) -> None:
    recs = [task(0, 0, 1.0), task(1, 0, 1.0)]
    with pytest.raises(KnobError, match=match):
        predict_makespan(recs, **kwargs)


def test_exchange_helper_tasks_run_after_their_stage() -> None:
    # Stage 0: four map tasks, then one combine task merging their outputs (recorded under
    # stage 0 with its own name); stage 1 consumes the combine's output.
    maps = [task(0, i, 1.0) for i in range(4)]
    combine = TaskRecord(query_id="q", stage=0, name="stage0-combine", key="c0", partition=0,
                         worker="w", start=2.0, stop=2.5, rows_in=4, bytes_sent=0)
    consumers = [task(1, i, 1.0) for i in range(2)]
    p = predict_makespan(maps + [combine] + consumers, 2)
    assert p.stage(0).tasks == 5
    assert p.stage(0).finish == pytest.approx(2.5)  # maps 0..2, then the combine 2..2.5
    assert p.stage(1).ready == pytest.approx(2.5)
    assert p.makespan == pytest.approx(3.5)


def test_measured_overheads_from_gaps_and_wall() -> None:
    # One lane: tasks at 0-1, 1.5-2.5, 2.6-3.6 -> gaps 0.5 and 0.1, mean 0.3.
    recs = [task(0, 0, 1.0, start=0.0), task(0, 1, 1.0, start=1.5), task(0, 2, 1.0, start=2.6)]
    o = measure_overheads(recs, wall_s=4.0)
    assert o.task_s == pytest.approx(0.3)
    assert o.fixed_s == pytest.approx(0.4)  # 4.0 wall - 3.6 task span
    assert measure_overheads(recs).fixed_s == 0.0
    p = predict_makespan(recs, 1, task_overhead_s=o.task_s, fixed_overhead_s=o.fixed_s)
    assert p.makespan == pytest.approx(3 * 1.3 + 0.4) and p.fixed_s == pytest.approx(0.4)


def test_two_threads_of_one_worker_are_two_lanes() -> None:
    recs = [task(0, 0, 1.0, start=0.0), task(0, 1, 1.0, start=0.0), task(0, 2, 1.0, start=1.2)]
    assert worker_lanes(recs) == ["w #0", "w #1", "w #0"]
    assert measure_overheads(recs).task_s == pytest.approx(0.2)


def test_calibrated_overhead_reaches_the_target() -> None:
    recs = [task(0, i, 1.0) for i in range(4)]  # 2.0 s on 2 workers without overhead
    overhead = calibrate_overhead(recs, 2, 3.0)
    assert overhead == pytest.approx(0.5, abs=1e-6)
    assert calibrate_overhead(recs, 2, 1.5) == 0.0  # already slower than the target


def test_barrier_waits_are_not_task_overhead() -> None:
    # The 3 s wait before stage 1 is the barrier (the replay reproduces it), not overhead.
    recs = [task(0, 0, 1.0, start=0.0), task(0, 1, 1.0, start=1.2), task(1, 0, 1.0, start=5.2)]
    assert measure_overheads(recs).task_s == pytest.approx(0.2)


def test_a_broadcast_is_copied_to_every_worker() -> None:
    # 1 GB produced by stage 0; consumed by 8 equal tasks of stage 1. Hash-spread over W
    # workers: 1e9 (W-1)/W / (W bw); a broadcast (a cross join's build side): 1e9 (W-1) / bw.
    recs = [task(0, 0, 1.0, sent=10**9)] + [task(1, i, 1.0) for i in range(8)]
    bw = 1e9
    for w in (2, 8, 32):
        hashed = predict_makespan(recs, w, bandwidth_bytes_per_s=bw)
        copied = predict_makespan(recs, w, bandwidth_bytes_per_s=bw, broadcast_stages={0})
        assert hashed.stage(1).exchange_s == pytest.approx(max((w - 1) / w / w, (w - 1) / w / 8))
        assert copied.stage(1).exchange_s == pytest.approx(w - 1)
