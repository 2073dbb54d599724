"""Producers: seeded and reproducible, unique IDs, per-producer sequences, mobile buffering."""

import numpy as np
import pyarrow.compute as pc

from mpp.ingest.messages import decode
from mpp.ingest.producers import Ledger, Producer, plan_all, send


def test_plan_is_reproducible_and_seed_dependent():
    a = Producer("web", 0, seed=7).plan(200)
    assert a.equals(Producer("web", 0, seed=7).plan(200))
    assert not a.equals(Producer("web", 0, seed=8).plan(200))
    assert not a["message_id"].equals(Producer("web", 1, seed=7).plan(200)["message_id"])


def test_ids_unique_and_sequences_per_producer():
    producers = [Producer(k, i, seed=3) for k in ("web", "mobile", "device") for i in range(2)]
    t = plan_all(producers, 300)
    assert t.num_rows == 1800
    assert pc.count_distinct(t["message_id"]).as_py() == 1800
    for p in producers:
        seq = t.filter(pc.equal(t["producer"], p.producer_id))["seq"].to_numpy()
        assert sorted(seq.tolist()) == list(range(300))
    send_at = t["send_at"].cast("int64").to_numpy()
    assert (np.diff(send_at) >= 0).all()


def test_mobile_buffers_offline_and_flushes_in_order_on_reconnect():
    t = Producer("mobile", 0, seed=1, rate=200, online_s=0.5, offline_s=0.5).plan(2000)
    event = t["event_time"].cast("int64").to_numpy()
    sent = t["send_at"].cast("int64").to_numpy()
    late = sent > event
    assert 0.2 < late.mean() < 0.8  # about half the time offline
    assert (sent >= event).all() and (np.diff(sent) >= 0).all()  # flushed in seq order
    # a flush is a burst: many buffered events share one reconnect time
    assert np.unique(sent[late]).size < late.sum() / 10
    web = Producer("web", 0, seed=1).plan(100)
    assert web["send_at"].equals(web["event_time"])


def test_payload_looks_like_access_log():
    t = Producer("device", 0, seed=2, users=50, urls=20).plan(500)
    assert pc.min(t["user_id"]).as_py() >= 1 and pc.max(t["user_id"]).as_py() <= 50
    assert pc.max(t["url_id"]).as_py() <= 20
    assert set(t["status"].to_pylist()) <= {200, 301, 304, 404, 500}


class _Flaky:
    """Acks every other attempt, keeping what it received."""

    def __init__(self):
        self.n = 0
        self.got = []

    def publish(self, topic, key, value, message_id):
        self.n += 1
        self.got.append(decode(value)["message_id"])
        return self.n % 2 == 0


def test_ledger_counts_attempts_and_acks():
    planned = Producer("web", 0, seed=5).plan(10)
    ledger = Ledger()
    assert send(planned, _Flaky(), "t", ledger, retries=0) == 5
    t = ledger.table()
    assert t.num_rows == 10 and pc.sum(t["acked"]).as_py() == 5
    ledger2 = Ledger()
    assert send(planned, _Flaky(), "t", ledger2, retries=3) == 10
    assert pc.sum(ledger2.table()["attempts"]).as_py() == 20
