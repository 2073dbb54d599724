"""The calibrated what-if model on synthetic runs with known answers: task CPU, per-task and
serial costs and the machine's contention kept apart, and each scaled as it should."""

from __future__ import annotations

import dataclasses

import pytest

from mpp.errors import KnobError
from mpp.metrics.calibration import (
    calibrate,
    predict_calibrated,
    stretched,
    task_cpu,
    warehouse_tasks,
)
from mpp.metrics.records import TaskRecord
from mpp.metrics.whatif import measured_makespan, predict_makespan


def run(n: int, cpu: float, wall: float, gap: float, workers: int = 1) -> list[TaskRecord]:
    """``n`` tasks of ``cpu`` CPU seconds that took ``wall`` seconds each, ``gap`` apart on
    each of ``workers`` one-thread workers."""
    recs = []
    for i in range(n):
        w, k = i % workers, i // workers
        start = k * (wall + gap)
        recs.append(TaskRecord("q", 1, "stage1-scan", f"t{i}", i, f"w{w}", start, start + wall,
                               rows_in=10, cpu_s=cpu))
    return recs


def test_cpu_time_is_the_work_and_durations_fall_back() -> None:
    r = TaskRecord("q", 1, "s", "k", 0, "w", 0.0, 2.0, cpu_s=0.5)
    assert task_cpu(r) == 0.5
    assert task_cpu(TaskRecord("q", 1, "s", "k", 0, "w", 0.0, 2.0)) == 2.0  # not measured
    assert stretched([r], 3.0)[0].duration == pytest.approx(1.5)


def test_a_serial_dispatcher_spaces_task_starts() -> None:
    recs = [TaskRecord("q", 1, "s", f"k{i}", i, "w", 0.0, 0.001) for i in range(100)]
    # 100 tasks of 1 ms on 50 slots: 2 ms without a dispatcher; at 10 ms a dispatch, 1 s.
    assert predict_makespan(recs, 50).makespan == pytest.approx(0.002)
    assert predict_makespan(recs, 50, serial_s=0.01).makespan == pytest.approx(1.001)
    with pytest.raises(KnobError, match="serial_s"):
        predict_makespan(recs, 2, serial_s=-1.0)


def test_the_run_is_reproduced_at_its_own_count_and_machine() -> None:
    recs = run(200, cpu=0.001, wall=0.002, gap=0.003)  # bodies waited as long as they ran
    span = measured_makespan(recs)
    cal = calibrate(recs, span + 0.1, workers=1, cores=2, client_cpu_s=0.1, worker_cpu_s=0.4)
    assert cal.stretch == pytest.approx(2.0)
    assert cal.serial_s == pytest.approx(0.1 / 200)
    assert cal.task_s == pytest.approx((0.4 - 0.2) / 200)  # worker CPU beyond the bodies
    assert cal.fixed_s == pytest.approx(0.1)
    here = predict_calibrated(recs, 1, cal, shared_cores=2)
    assert here.makespan == pytest.approx(span + 0.1, rel=1e-3)


def test_a_warehouse_node_runs_the_cpu_alone() -> None:
    recs = run(100, cpu=0.01, wall=0.03, gap=0.0)
    cal = calibrate(recs, measured_makespan(recs), workers=1, cores=2)
    assert cal.stretch == pytest.approx(3.0) and cal.serial_s == 0.0
    # On 10 nodes of their own: 10 tasks each of their CPU seconds, nothing stretched.
    assert predict_calibrated(recs, 10, cal).makespan == pytest.approx(0.1)


def test_a_scheduler_bound_run_does_not_speed_up_with_workers_on_its_machine() -> None:
    # 1 ms bodies and 9 ms of scheduler CPU each: the scheduler is the span.
    recs = run(300, cpu=0.001, wall=0.001, gap=0.009)
    cal = calibrate(recs, measured_makespan(recs), workers=1, cores=2, client_cpu_s=2.7,
                    worker_cpu_s=0.3)
    assert cal.serial_s == pytest.approx(0.009) and cal.task_s == pytest.approx(0.0, abs=1e-12)
    assert cal.ratio == pytest.approx(1.0, rel=0.01)
    one = predict_calibrated(recs, 1, cal, shared_cores=2).makespan
    two = predict_calibrated(recs, 2, cal, shared_cores=2).makespan
    assert two == pytest.approx(one, rel=0.1)  # the serial scheduler is the bottleneck
    # On dedicated nodes too: the scheduler's 9 ms a task is the limit.
    assert predict_calibrated(recs, 2, cal).makespan == pytest.approx(2.7, rel=0.01)


def test_the_schedulers_cpu_adds_to_the_span_on_the_measuring_machine() -> None:
    """Measured on 2 cores: the span is the scheduler's CPU plus the workers' CPU over the
    workers (a worker's next task waits while the scheduler handles every slot's finished
    task), not the larger of the two, at 1 worker and at 2."""
    # 200 tasks of 2 ms CPU, 1 ms of worker CPU around each, 1 ms of scheduler CPU each.
    one = run(200, cpu=0.002, wall=0.002, gap=0.002)
    cal = calibrate(one, measured_makespan(one), workers=1, cores=2, client_cpu_s=0.2,
                    worker_cpu_s=0.6)
    assert cal.task_s == pytest.approx(0.001) and cal.serial_s == pytest.approx(0.001)
    assert cal.ratio == pytest.approx(1.0, rel=0.01)
    assert predict_calibrated(one, 2, cal, shared_cores=2).makespan == pytest.approx(
        0.2 + 0.6 / 2, rel=0.01)
    # The same work measured at 2 workers (each task 2 + 1 + 2 x 1 ms apart on its worker)
    # predicts the 1-worker run.
    two = run(200, cpu=0.002, wall=0.002, gap=0.003, workers=2)
    cal2 = calibrate(two, measured_makespan(two), workers=2, cores=2, client_cpu_s=0.2,
                     worker_cpu_s=0.6)
    assert cal2.ratio == pytest.approx(1.0, rel=0.01)
    assert predict_calibrated(two, 1, cal2, shared_cores=2).makespan == pytest.approx(
        measured_makespan(one), rel=0.01)


def test_what_the_cpu_does_not_explain_is_carried_to_the_other_count() -> None:
    # Tasks 1.5 times as far apart as their CPU and the costs measured explain.
    recs = run(100, cpu=0.01, wall=0.01, gap=0.005)
    cal = calibrate(recs, measured_makespan(recs) + 0.2, workers=1, cores=2,
                    client_cpu_s=0.0, worker_cpu_s=1.0)
    assert cal.ratio == pytest.approx(1.5, rel=0.01) and cal.fixed_s == pytest.approx(0.2)
    two = predict_calibrated(recs, 2, cal, shared_cores=2)
    assert two.makespan == pytest.approx(1.5 * 0.5 + 0.2, rel=0.01)
    assert two.stages[-1].finish == pytest.approx(1.5 * 0.5, rel=0.01)  # timings scaled too
    # On a warehouse node nothing waits: the CPU alone.
    assert predict_calibrated(recs, 2, cal).makespan == pytest.approx(0.5 + 0.2, rel=0.01)


def test_a_slot_bound_run_on_a_quiet_machine_halves_with_twice_the_workers() -> None:
    recs = run(200, cpu=0.01, wall=0.01, gap=0.0)  # no waiting at all
    cal = calibrate(recs, measured_makespan(recs), workers=1, cores=4, client_cpu_s=0.02,
                    worker_cpu_s=2.0)
    one = predict_calibrated(recs, 1, cal, shared_cores=4).makespan
    assert predict_calibrated(recs, 2, cal, shared_cores=4).makespan == pytest.approx(
        one / 2, rel=0.02)


def test_more_workers_than_cores_run_no_faster_than_the_cores() -> None:
    recs = run(200, cpu=0.01, wall=0.01, gap=0.0)
    cal = calibrate(recs, measured_makespan(recs), workers=1, cores=2, worker_cpu_s=2.0)
    two = predict_calibrated(recs, 2, cal, shared_cores=2).makespan
    assert two == pytest.approx(1.0, rel=0.01)
    assert predict_calibrated(recs, 4, cal, shared_cores=2).makespan == pytest.approx(two,
                                                                                  rel=0.01)
    # A warehouse's nodes have cores of their own.
    assert predict_calibrated(recs, 4, cal).makespan == pytest.approx(0.5, rel=0.01)


def exchange_run(maps: int, buckets: int, hot_share: float, *, combine_cpu: float,
                 row_bytes: int = 12, rows: int = 1_000_000) -> list[TaskRecord]:
    """A two-stage run shaped as the skew scenario's single step: ``maps`` scan tasks of 1 ms
    CPU handing ``rows`` rows to one combine task of ``combine_cpu`` seconds (the graph's
    device), then ``buckets`` consumer tasks, the first holding ``hot_share`` of the rows and
    taking CPU in proportion (1 us a row)."""
    per_map = rows // maps
    recs = [TaskRecord("q", 1, "stage1-scan", f"scan-{i}", i, "w0", 0.0, 0.002, rows_in=per_map,
                       rows_out=per_map, bytes_sent=per_map * row_bytes, cpu_s=0.001)
            for i in range(maps)]
    recs.append(TaskRecord("q", 1, "stage1-combine", "combine-0", 0, "w0", 0.01,
                           0.01 + combine_cpu, rows_in=rows, rows_out=rows,
                           bytes_sent=rows * row_bytes, cpu_s=combine_cpu))
    hot = int(rows * hot_share)
    for j in range(buckets):
        n = hot if j == 0 else (rows - hot) // (buckets - 1)
        recs.append(TaskRecord("q", 2, "stage2-final", f"final-{j}", j, "w0", 5.0,
                               5.0 + n * 1e-6, rows_in=n, cpu_s=n * 1e-6))
    return recs


def test_a_warehouse_has_no_combine_task_its_producers_partition() -> None:
    recs = exchange_run(4, 2, 0.5, combine_cpu=0.4)
    recs[0] = dataclasses.replace(recs[0], rows_out=recs[0].rows_out * 2)  # 2 shares of 5
    out = warehouse_tasks(recs)
    assert {r.name for r in out} == {"stage1-scan", "stage2-final"}  # the combine is gone
    scans = sorted((r for r in out if r.stage == 1), key=lambda r: r.partition)
    # Its 0.4 s go to the producers by the rows each handed over: 2/5 and 1/5 each.
    assert [task_cpu(r) for r in scans] == pytest.approx([0.001 + 0.16] + [0.001 + 0.08] * 3)
    assert sum(task_cpu(r) for r in out) == pytest.approx(sum(task_cpu(r) for r in recs))


def test_the_schedulers_cost_is_per_graph_task_and_charged_per_warehouse_task() -> None:
    recs = exchange_run(10, 10, 0.1, combine_cpu=0.0)
    # 21 recorded tasks and 10 unrecorded splits: 31 graph tasks for 3.1 s of scheduler CPU.
    cal = calibrate(recs, 6.0, workers=1, cores=2, client_cpu_s=3.1, graph_tasks=31)
    assert cal.per_graph_task() == pytest.approx((0.0, 0.1))
    # The warehouse schedules the 20 stage tasks (no combine, no splits), 0.1 s apart; the
    # last one then runs its 0.1 s of CPU.
    p = predict_calibrated(recs, 100, cal)
    assert p.makespan - cal.fixed_s == pytest.approx(20 * 0.1 + 0.1, abs=0.01)
    # Without the graph's size, the cost is per recorded task.
    unknown = calibrate(recs, 6.0, workers=1, cores=2, client_cpu_s=3.1)
    assert unknown.per_graph_task() == pytest.approx((0.0, 3.1 / 21))


def test_on_a_128_node_warehouse_the_hot_days_task_is_the_straggler() -> None:
    # 100 maps and one combine merging all of them (10 s: the graph's device), 2,048
    # buckets, one holding 40% of the rows: the combine's work is the producers', the hot
    # task fetches 40% of the bytes over its node's link, and it is the critical stage's
    # longest task.
    recs = exchange_run(100, 2048, 0.4, combine_cpu=10.0, rows=10_000_000)
    cal = calibrate(recs, 20.0, workers=2, cores=2, client_cpu_s=0.0)
    p = predict_calibrated(recs, 128, cal, threads_per_worker=8, bandwidth_bytes_per_s=1.25e9)
    assert p.critical_stage == 2
    timing = p.stage(2)
    assert timing.longest_key == "final-0"
    fetch = 0.4 * 10_000_000 * 12 * 127 / 128 / 1.25e9
    assert timing.longest_task_s == pytest.approx(4.0 + fetch)
    # The scan stage: 100 tasks of 1 ms and a tenth of the combine's 10 s each, in parallel.
    assert p.stage(1).finish == pytest.approx(0.101)


def test_the_workers_imported_code_is_out_of_the_cycle_collectors_way(cluster) -> None:  # type: ignore[no-untyped-def]
    import gc

    from mpp.execution.tasks import freeze_imported
    from mpp.session import preload

    # A full collection walking the imported libraries costs a task ~90 ms of CPU that is not
    # its work; preload freezes them on every worker, once.
    preload(cluster)
    assert all(n > 50_000 for n in cluster.client.run(gc.get_freeze_count).values())
    assert set(cluster.client.run(freeze_imported).values()) == {0}  # already frozen


def moving_run(workers: int, *, sent: int = 1_000_000) -> list[TaskRecord]:
    """Two scan tasks handing ``sent`` bytes each to one combine task, which hands them on
    to two final tasks; every task 0.1 s of CPU, back to back on ``workers`` workers."""
    recs, t = [], 0.0
    for i, (name, out) in enumerate([("stage1-scan", sent), ("stage1-scan", sent),
                                     ("stage1-combine", 2 * sent), ("stage2-final", 0),
                                     ("stage2-final", 0)]):
        stage = 1 if name.startswith("stage1") else 2
        recs.append(TaskRecord("q", stage, name, f"{name}-{i}", i % 2, f"w{i % workers}", t,
                               t + 0.1, rows_in=10, bytes_sent=out, cpu_s=0.1))
        t += 0.1
    return recs


def test_the_bytes_that_cross_are_the_remote_part_of_every_hop() -> None:
    from mpp.metrics.whatif import crossing_bytes

    recs = moving_run(1)
    assert crossing_bytes(recs, 1) == 0.0  # one worker process: nothing crosses
    # scans -> combine (2 MB) and combine -> final tasks (2 MB), half of each remote
    assert crossing_bytes(recs, 2) == pytest.approx(2_000_000)
    assert crossing_bytes(recs, 4) == pytest.approx(3_000_000)
    # a broadcast goes whole to each of the other workers
    assert crossing_bytes(recs, 2, broadcast_stages={1}) == pytest.approx(1_000_000 + 2_000_000)


def test_moving_data_between_workers_is_charged_per_byte_that_crosses() -> None:
    """Worker CPU measured at 2 workers includes what moving the exchange cost; at its price
    it is not a per-task cost that a 1-worker run would pay, and a 2-worker prediction from
    a 1-worker run pays it."""
    price = 50e-9  # 50 ms a MB: large, so that it shows
    two = moving_run(2)
    moved = price * 2_000_000
    cal2 = calibrate(two, measured_makespan(two), workers=2, cores=4, client_cpu_s=0.0,
                     worker_cpu_s=0.5 + 5 * 0.01 + moved, transfer_s=price)
    assert cal2.task_s == pytest.approx(0.01) and cal2.transfer_s == price
    without = calibrate(two, measured_makespan(two), workers=2, cores=4, client_cpu_s=0.0,
                        worker_cpu_s=0.5 + 5 * 0.01 + moved)
    assert without.task_s == pytest.approx(0.01 + moved / 5)  # read as a per-task cost
    one = moving_run(1)
    cal1 = calibrate(one, measured_makespan(one), workers=1, cores=4, client_cpu_s=0.0,
                     worker_cpu_s=0.5 + 5 * 0.01, transfer_s=price)
    assert cal1.task_s == pytest.approx(0.01)  # nothing crossed
    priced = predict_calibrated(one, 2, cal1, shared_cores=4).makespan
    free = predict_calibrated(one, 2, dataclasses.replace(cal1, transfer_s=0.0),
                              shared_cores=4).makespan
    # the combine and each final task fetch their remote half: 1 MB each hop on the path
    assert priced - free == pytest.approx(cal1.ratio * (price * 1_000_000 + price * 500_000),
                                          rel=0.05)
    # at its own count the fit stays exact with or without the price
    assert predict_calibrated(two, 2, cal2, shared_cores=4).makespan == pytest.approx(
        measured_makespan(two) + cal2.fixed_s, rel=1e-6)


def test_a_producers_cut_into_buckets_is_measured_with_its_task() -> None:
    """The hash exchange's cut of a task's output (``map_output``) is the task's work: its
    record's time and CPU include it, or the what-if model reads it as a cost every task of
    the query pays."""
    import time
    from types import SimpleNamespace

    import pyarrow as pa

    from mpp.execution.tasks import run_stage_task
    from mpp.metrics.collector import drain

    def cut(table: pa.Table) -> str:
        start = time.thread_time()
        while time.thread_time() - start < 0.05:  # 50 ms of CPU
            pass
        return "bucketed"

    table = pa.table({"x": [1, 2, 3]})
    payload = SimpleNamespace(query_id="q-cut", stage=1, name="stage1-scan", inputs=(),
                              root=SimpleNamespace(execute=lambda ctx: table),
                              sink=SimpleNamespace(map_output=cut))
    assert run_stage_task(payload, 0, ()) == "bucketed"  # type: ignore[arg-type]
    (rec,) = drain("q-cut")
    assert rec.cpu_s is not None and rec.cpu_s >= 0.05 and rec.duration >= 0.05
    assert rec.rows_out == 3 and rec.bytes_sent == table.nbytes


def test_the_price_of_moving_data_is_measured_between_two_workers(cluster) -> None:  # type: ignore[no-untyped-def]
    from mpp.errors import ClusterError
    from mpp.execution.transfer import measure_transfer_cost

    price = measure_transfer_cost(cluster.client, rows=100_000, repeats=2)
    assert 0 < price < 1e-6  # seconds per byte: CPU was spent, well under a second a MB
    with pytest.raises(ClusterError, match="needs two or more workers; the cluster has 1"):
        measure_transfer_cost(_OneWorker(cluster.client))  # type: ignore[arg-type]


class _OneWorker:
    """A client whose scheduler reports one worker."""

    def __init__(self, client) -> None:  # type: ignore[no-untyped-def]
        self._client = client

    def scheduler_info(self) -> dict:  # type: ignore[type-arg]
        info = self._client.scheduler_info()
        first = next(iter(info["workers"]))
        return {**info, "workers": {first: info["workers"][first]}}
