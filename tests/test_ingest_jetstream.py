"""The JetStream backend against nats-server, and the MQTT -> JetStream bridge.

Skipped, naming what is missing, where nats-py or a JetStream server on 127.0.0.1:4222 (and,
for the bridge, paho-mqtt and mosquitto on 127.0.0.1:1883) is not there. Every test uses its
own stream and deletes it.
"""

import time
import uuid

import pytest

from mpp.ingest.checker import check
from mpp.ingest.consumer import Collector, drain
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


def test_stream_sequences_are_offsets_and_acks_are_commits(js):
    b, stream = js()
    ledger = Ledger()
    assert send(Producer("web", 0, seed=1).plan(40), b, stream, ledger) == 40
    assert b.end_offset(stream) == 40
    b.subscribe("g", stream, "c0")
    end = Collector()
    assert drain(b, "g", stream, "c0", end, 40) == 40
    assert [r.offset for r in end.records] == list(range(1, 41))
    assert b.committed("g", stream) == 40
    c = check(ledger.table(), end.delivered())
    assert (c.delivered, c.lost, c.duplicated, c.unexpected) == (40, 0, 0, 0)
    # a second group reads the same stream on its own (routing to several consumers)
    b.subscribe("h", stream, "x")
    other = Collector()
    assert drain(b, "h", stream, "x", other, 40) == 40


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
    drain(b, "g", stream, "c0", end, 25)
    c = check(ledger.table(), end.delivered())
    assert (c.lost, c.duplicated, c.duplicate_copies) == (0, 5, 5)


def test_unacknowledged_messages_are_redelivered_after_a_crash(js):
    b, stream = js(ack_wait=1.0)
    ledger = Ledger()
    send(Producer("mobile", 0, seed=3).plan(30), b, stream, ledger)
    b.subscribe("g", stream, "c0")
    end = Collector()
    assert drain(b, "g", stream, "c0", end, 30, commit=False) == 30  # processed, not acked
    b.leave("g", stream, "c0")  # crash before committing
    assert b.committed("g", stream) == 0
    b.subscribe("g", stream, "c1")
    drain(b, "g", stream, "c1", end, 30, timeout=8.0)
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
        drain(b, "sink", stream, "c0", end, 15)
        c = check(ledger.table(), end.delivered())
        assert (c.delivered, c.lost, c.duplicated) == (15, 0, 0)
    finally:
        mq.close()


def test_unreachable_server_is_a_clear_error():
    from mpp.ingest.jetstream import JetStreamBroker
    with pytest.raises(ConnectionError, match="no NATS server at nats://127.0.0.1:1"):
        JetStreamBroker("nats://127.0.0.1:1", timeout=1.0)


def test_jetstream_into_iceberg_exactly_once_across_a_crash_after_the_iceberg_commit(js, tmp_path):
    """Devices -> JetStream -> consumer -> Iceberg; the consumer dies after the table commit and
    before acknowledging, JetStream redelivers, the sink's offsets keep the table exact."""
    from mpp.catalog import Catalog
    from mpp.ingest.messages import MESSAGE_SCHEMA
    from mpp.ingest.sink import IcebergSink, SinkEnd, ensure_table
    from mpp.oracle import run_oracle
    from tests.compare import assert_same_rows

    b, stream = js(ack_wait=1.0)
    planned = Producer("device", 3, seed=7).plan(60)
    ledger = Ledger()
    send(planned, b, stream, ledger)
    catalog = Catalog.open(tmp_path / "wh", create=True)
    ensure_table(catalog, "events")
    end = SinkEnd(IcebergSink(catalog, "events"))
    b.subscribe("sink", stream, "c0")
    first = b.poll("sink", stream, "c0", 25, timeout=1.0)
    end(first)  # committed to Iceberg ...
    b.leave("sink", stream, "c0")  # ... and the consumer dies before acknowledging
    restarted = SinkEnd(IcebergSink(Catalog.open(catalog.warehouse), "events"))
    b.subscribe("sink", stream, "c1")
    deadline = time.monotonic() + 8
    while b.committed("sink", stream) < 60 and time.monotonic() < deadline:
        records = b.poll("sink", stream, "c1", 50, timeout=0.2)
        restarted(records)
        b.commit("sink", stream, "c1", records)
    assert restarted.dropped == len(first) > 0  # the redelivered batch was recognised
    content = run_oracle(f"SELECT {', '.join(MESSAGE_SCHEMA.names)} FROM events",
                         Catalog.open(catalog.warehouse))
    assert_same_rows(content, planned.select(MESSAGE_SCHEMA.names).cast(MESSAGE_SCHEMA))


def test_a_restarted_nats_server_keeps_the_stream_and_the_acks(tmp_path):
    """A private nats-server on a free port (the shared one is not ours to restart): stored
    messages and the durable consumer's acknowledgements survive a restart."""
    import shutil
    import socket
    import subprocess

    from mpp.ingest.jetstream import JetStreamBroker
    from mpp.ingest.services import reachable

    exe = shutil.which("nats-server")
    if exe is None:
        pytest.skip("nats-server is not installed (Debian package nats-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def start():
        proc = subprocess.Popen([exe, "-js", "-a", "127.0.0.1", "-p", str(port),
                                 "-sd", str(tmp_path / "js")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not reachable(("127.0.0.1", port), 0.2):
            assert time.monotonic() < deadline and proc.poll() is None, "nats-server did not start"
            time.sleep(0.05)
        return proc

    def stop(proc):
        proc.terminate()
        proc.wait(10)

    url = f"nats://127.0.0.1:{port}"
    proc = start()
    try:
        b = JetStreamBroker(url)
        b.create_topic("restart_test")
        ledger = Ledger()
        send(Producer("web", 5, seed=8).plan(20), b, "restart_test", ledger)
        b.subscribe("g", "restart_test", "c0")
        end = Collector()
        first = b.poll("g", "restart_test", "c0", 10, timeout=1.0)
        end(first)
        b.commit("g", "restart_test", "c0", first)
        assert len(first) == 10 and b.committed("g", "restart_test") == 10
        b.close()
        stop(proc)
        proc = start()
        b = JetStreamBroker(url)
        assert b.end_offset("restart_test") == 20
        assert b.committed("g", "restart_test") == 10
        b.subscribe("g", "restart_test", "c0")
        drain(b, "g", "restart_test", "c0", end, 10)
        c = check(ledger.table(), end.delivered())
        assert (c.delivered, c.lost, c.duplicated) == (20, 0, 0)
        b.close()
    finally:
        stop(proc)
