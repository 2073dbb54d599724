"""The semantics checker on constructed histories, and every fault mode in every delivery mode."""

import pyarrow as pa
import pytest

from mpp.ingest.broker import Faults
from mpp.ingest.checker import DELIVERED_SCHEMA, check
from mpp.ingest.consumer import (
    ConsumerFaults,
    DeliveryMode,
    OffsetDedup,
    RecentIds,
    bulk_chunks,
    run,
    window_tradeoff,
)
from mpp.ingest.producers import LEDGER_SCHEMA, Producer

AMO, ALO, EO = DeliveryMode.AT_MOST_ONCE, DeliveryMode.AT_LEAST_ONCE, DeliveryMode.EXACTLY_ONCE


def _ledger(rows):
    return pa.Table.from_pylist([dict(zip(["message_id", "producer", "seq", "attempts", "acked",
                                           "sent_at_ns"], r, strict=True)) for r in rows],
                                schema=LEDGER_SCHEMA)


def _delivered(rows):
    return pa.Table.from_pylist([{"message_id": m, "delivered_at_ns": t} for m, t in rows],
                                schema=DELIVERED_SCHEMA)


def test_checker_on_a_constructed_history():
    # a..f sent; e and f not acked; b lost although acked, f lost unacked; c arrives 3 times,
    # d twice; e arrives although its ack was lost; z was never sent.
    ledger = _ledger([(m, "web-0", i, 1, m not in "ef", 1_000_000 * i)
                      for i, m in enumerate("abcdef")])
    delivered = _delivered([("a", 2_000_000), ("c", 4_000_000), ("c", 5_000_000),
                            ("c", 9_000_000), ("d", 7_000_000), ("d", 8_000_000),
                            ("e", 10_000_000), ("z", 11_000_000)])
    c = check(ledger, delivered)
    assert (c.attempted, c.acknowledged, c.delivered_copies, c.delivered) == (6, 4, 8, 4)
    assert (c.lost, c.lost_acknowledged, c.recovered) == (2, 1, 1)
    assert (c.duplicated, c.duplicate_copies, c.unexpected) == (2, 3, 1)
    # first-delivery latencies: a 2ms, c 2ms, d 4ms, e 6ms
    assert c.latency_ms["max"] == 6.0 and c.latency_ms["p50"] == 3.0
    assert c.throughput_per_s == pytest.approx(4 / 0.010)
    assert not c.holds("at-most-once") and not c.holds("at-least-once")  # z is unexpected


def test_checker_clean_history_and_empty_delivery():
    ledger = _ledger([(m, "d-0", i, 2, True, i) for i, m in enumerate("xyz")])
    c = check(ledger, _delivered([("x", 5), ("y", 6), ("z", 7)]))
    assert (c.lost, c.duplicated, c.unexpected) == (0, 0, 0) and c.holds("exactly-once")
    none = check(ledger, _delivered([]))
    assert none.lost == none.lost_acknowledged == 3 and none.latency_ms == {}
    assert none.holds("at-most-once") and not none.holds("at-least-once")


PRODUCERS = [Producer("web", 0, seed=11), Producer("mobile", 0, seed=11),
             Producer("device", 0, seed=11)]

FAULTS = {
    "none": (Faults(), ConsumerFaults()),
    "drop_publish": (Faults(seed=1, drop_publish=0.1), ConsumerFaults()),
    "lost_ack": (Faults(seed=2, lost_ack=0.1), ConsumerFaults()),
    "drop_fetch": (Faults(seed=3, drop_fetch=0.3), ConsumerFaults()),
    "duplicate_delivery": (Faults(seed=4, duplicate_delivery=0.05), ConsumerFaults()),
    "crash_before_commit": (Faults(), ConsumerFaults(seed=5, crash_before_commit=0.2)),
    "crash_after_commit": (Faults(), ConsumerFaults(seed=6, crash_after_commit=0.3)),
    "broker_restart": (Faults(), ConsumerFaults(seed=7, broker_restart=0.1)),
}
# Which faults each mode turns into losses (L) and duplicates (D) at the end.
EXPECT = {
    AMO: {"drop_publish": "L", "duplicate_delivery": "D", "crash_after_commit": "L"},
    ALO: {"lost_ack": "D", "duplicate_delivery": "D", "crash_before_commit": "D",
          "broker_restart": "D"},
    EO: {},
}


@pytest.mark.parametrize("mode", [AMO, ALO, EO], ids=lambda m: m.value)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_every_fault_in_every_mode(mode, fault):
    faults, consumer_faults = FAULTS[fault]
    r = run(PRODUCERS, 150, mode=mode, faults=faults, consumer_faults=consumer_faults,
            max_records=10)
    c = r.check
    assert c.attempted == 450 and c.unexpected == 0
    injected = (r.broker_faults.dropped_publishes + r.broker_faults.lost_acks
                + r.broker_faults.dropped_fetches + r.broker_faults.duplicated_deliveries
                + r.consumer.crashes_before_commit + r.consumer.crashes_after_commit
                + r.consumer.broker_restarts)
    assert (injected > 0) == (fault != "none")
    effect = EXPECT[mode].get(fault, "")
    assert (c.lost > 0) == ("L" in effect), c
    assert (c.duplicated > 0) == ("D" in effect), c
    # a hop that duplicates breaks at-most-once: committing first cannot undo a repeat
    assert c.holds(mode.value) == (mode is not AMO or fault != "duplicate_delivery"), c
    assert c.delivered + c.lost == 450
    if mode is AMO and fault == "drop_publish":
        assert c.lost == r.broker_faults.dropped_publishes  # exactly the dropped ones
        assert c.lost_acknowledged == 0
    if mode is ALO and fault == "lost_ack":
        # every lost ack made the producer resend: one extra stored copy each
        assert c.duplicate_copies == r.broker_faults.lost_acks
        assert c.recovered == 0
    if mode is EO and fault != "none":
        assert r.consumer.deduplicated > 0 or fault in ("drop_publish", "drop_fetch",
                                                       "crash_after_commit")


def test_unflushed_log_loses_acknowledged_messages_even_at_least_once():
    # 450 sends in chunks of 200: after chunk 0, 200 = 12 * 16 + 8 appends are unflushed
    r = run(PRODUCERS, 150, mode=ALO, faults=Faults(flush_every=16), restart_after_chunks=[0])
    assert r.broker_faults.lost_on_restart == 8
    assert r.check.lost_acknowledged == 8 and not r.check.holds("at-least-once")
    synced = run(PRODUCERS, 150, mode=ALO, restart_after_chunks=[0, 1])
    assert synced.broker_faults.restarts == 2 and synced.check.holds("exactly-once")


def test_small_window_lets_duplicates_slip_through():
    faults = (Faults(), ConsumerFaults(seed=5, crash_before_commit=0.3))
    small = run(PRODUCERS, 150, mode=EO, faults=faults[0], consumer_faults=faults[1],
                window=10, max_records=50)
    assert small.check.duplicated > 0 and small.check.lost == 0
    big = run(PRODUCERS, 150, mode=EO, faults=faults[0], consumer_faults=faults[1],
              window=60, max_records=50)
    assert big.check.duplicated == 0


def test_window_tradeoff_memory_against_slipped_duplicates():
    alo = run(PRODUCERS, 150, mode=ALO, consumer_faults=ConsumerFaults(
        seed=5, crash_before_commit=0.3))
    ids = alo.delivered["message_id"].to_pylist()
    rows = window_tradeoff(ids, [1, 10, 50, 1000])
    copies = alo.check.duplicate_copies
    assert [r["capacity"] for r in rows] == [1, 10, 50, 1000]
    slipped = [r["slipped_duplicates"] for r in rows]
    assert slipped == sorted(slipped, reverse=True) and slipped[0] > 0 and slipped[-1] == 0
    assert all(r["slipped_duplicates"] + r["removed_duplicates"] == copies for r in rows)
    memory = [r["memory_bytes"] for r in rows]
    assert memory == sorted(memory) and memory[-1] > 10 * memory[1]


def test_recent_ids_rejects_bad_capacity():
    with pytest.raises(ValueError, match="at least 1"):
        RecentIds(0)


def test_bulk_redelivery_deduplicated_by_file_and_offset():
    table = Producer("web", 0, seed=9).plan(1000)
    chunks = list(bulk_chunks(table, "landing/2026-01-01.parquet", 64))
    redelivered = chunks + chunks[3:7] + chunks[:1]  # a retried transfer sends some again
    dedup = OffsetDedup()
    loaded = pa.concat_tables([c for f, o, c in redelivered if dedup.admit(f, o)])
    assert dedup.dropped == 5
    assert loaded.equals(table)
