"""The calibrated what-if model on synthetic runs with known answers: task CPU, per-task and
serial costs and the machine's contention kept apart, and each scaled as it should."""

from __future__ import annotations

import pytest

from mpp.errors import KnobError
from mpp.metrics.calibration import calibrate, predict_calibrated, stretched, task_cpu
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
