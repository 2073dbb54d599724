"""The JetStream backend against nats-server, and the MQTT -> JetStream bridge.

Skipped, naming what is missing, where nats-py or a JetStream server on 127.0.0.1:4222 (and,
for the bridge, paho-mqtt and mosquitto on 127.0.0.1:1883) is not there. Every test uses its
own stream and deletes it.
"""

import time
import uuid

import pytest

from mpp.ingest.checker import check
from mpp.ingest.consumer import Collector
from mpp.ingest.producers import Ledger, Producer, send
from mpp.ingest.services import mqtt_missing, nats_missing

pytestmark = pytest.mark.skipif(bool(nats_missing()), reason=nats_missing() or "")


@pytest.fixture
def js():
    from mpp.ingest.jetstream import JetStreamBroker
    made = []

    def make(**kw):
        b = JetStreamBroker(**kw)
        stream = f"mpp_test_{uuid.uuid4().hex[:10]}"
        b.create_topic(stream)
        made.append((b, stream))
        return b, stream
    yield make
    for b, stream in made:
        b.delete_topic(stream)
        b.close()


def _drain(b, group, topic, member, end, want, timeout=5.0, commit=True):
    deadline = time.monotonic() + timeout
    got = 0
    while got < want and time.monotonic() < deadline:
        records = b.poll(group, topic, member, 50, timeout=0.2)
        end(records)
        if commit:
            b.commit(group, topic, member, records)
        got += len(records)
    return got


def test_stream_sequences_are_offsets_and_acks_are_commits(js):
    b, stream = js()
    ledger = Ledger()
    assert send(Producer("web", 0, seed=1).plan(40), b, stream, ledger) == 40
    assert b.end_offset(stream) == 40
    b.subscribe("g", stream, "c0")
    end = Collector()
    assert _drain(b, "g", stream, "c0", end, 40) == 40
    assert [r.offset for r in end.records] == list(range(1, 41))
    assert b.committed("g", stream) == 40
    c = check(ledger.table(), end.delivered())
    assert (c.delivered, c.lost, c.duplicated, c.unexpected) == (40, 0, 0, 0)
    # a second group reads the same stream on its own (routing to several consumers)
    b.subscribe("h", stream, "x")
    other = Collector()
    assert _drain(b, "h", stream, "x", other, 40) == 40


def test_duplicate_window_remembers_only_recent_ids(js):
    b, stream = js(duplicate_window=1.0)
    planned = Producer("device", 0, seed=2).plan(20)
    ledger = Ledger()
    send(planned, b, stream, ledger)
    send(planned, b, stream, ledger)  # a producer resending everything at once
    assert b.duplicates == 20 and b.end_offset(stream) == 20
    time.sleep(1.5)  # older than the window: the IDs are forgotten
    send(planned.slice(0, 5), b, stream, ledger)
    assert b.duplicates == 20 and b.end_offset(stream) == 25
    b.subscribe("g", stream, "c0")
    end = Collector()
    _drain(b, "g", stream, "c0", end, 25)
    c = check(ledger.table(), end.delivered())
    assert (c.lost, c.duplicated, c.duplicate_copies) == (0, 5, 5)


def test_unacknowledged_messages_are_redelivered_after_a_crash(js):
    b, stream = js(ack_wait=1.0)
    ledger = Ledger()
    send(Producer("mobile", 0, seed=3).plan(30), b, stream, ledger)
    b.subscribe("g", stream, "c0")
    end = Collector()
    assert _drain(b, "g", stream, "c0", end, 30, commit=False) == 30  # processed, not acked
    b.leave("g", stream, "c0")  # crash before committing
    assert b.committed("g", stream) == 0
    b.subscribe("g", stream, "c1")
    _drain(b, "g", stream, "c1", end, 30, timeout=8.0)
    c = check(ledger.table(), end.delivered())
    assert c.lost == 0 and c.duplicated == 30  # at-least-once: each one again
    assert b.committed("g", stream) == 30


def test_bridge_from_mqtt_deduplicates_its_own_resends(js):
    if mqtt_missing():
        pytest.skip(mqtt_missing())
    from mpp.ingest.bridge import Bridge
    from mpp.ingest.mqtt import MqttBroker
    b, stream = js()
    mq = MqttBroker(qos=1)
    topic = f"mpp-test/{uuid.uuid4().hex[:10]}/devices"
    try:
        bridge = Bridge(mq, topic, b, stream, group=f"bridge{uuid.uuid4().hex[:8]}",
                        max_records=10)
        ledger = Ledger()
        send(Producer("device", 0, seed=4).plan(15), mq, topic, ledger)
        time.sleep(0.2)
        bridge.step(timeout=1.0, crash_before_commit=True)  # forwarded, not acked at MQTT
        assert bridge.crashes == 1
        bridge.run(until=25, timeout=10)
        assert b.duplicates == bridge.forwarded - 15 > 0  # the resends JetStream recognised
        assert b.end_offset(stream) == 15
        b.subscribe("sink", stream, "c0")
        end = Collector()
        _drain(b, "sink", stream, "c0", end, 15)
        c = check(ledger.table(), end.delivered())
        assert (c.delivered, c.lost, c.duplicated) == (15, 0, 0)
    finally:
        mq.close()


def test_unreachable_server_is_a_clear_error():
    from mpp.ingest.jetstream import JetStreamBroker
    with pytest.raises(ConnectionError, match="no NATS server at nats://127.0.0.1:1"):
        JetStreamBroker("nats://127.0.0.1:1", timeout=1.0)
