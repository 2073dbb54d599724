"""The embedded broker: partitions and offsets, groups and committed offsets, each fault."""

import pytest

from mpp.ingest.broker import EmbeddedBroker, Faults


def _fill(b, topic="t", n=20, partitions=2):
    b.create_topic(topic, partitions)
    return [b.publish(topic, f"k{i % 7}", f"v{i}".encode(), f"id{i}") for i in range(n)]


def test_offsets_groups_and_commits():
    b = EmbeddedBroker()
    assert all(_fill(b))
    assert sum(b.end_offsets("t")) == 20
    b.subscribe("g", "t", "a")
    b.subscribe("g", "t", "b")
    assert b.assignment("g", "t", "a") == [0] and b.assignment("g", "t", "b") == [1]
    got = b.poll("g", "t", "a", 100)
    assert [r.offset for r in got] == list(range(len(got)))
    assert {r.partition for r in got} == {0}
    b.commit("g", "t", "a", got[:3])
    assert b.committed("g", "t")[0] == 3
    assert b.poll("g", "t", "a", 100) == []  # the position moved past everything
    b.leave("g", "t", "a")  # a crash: back to the committed offset
    b.subscribe("g", "t", "a")
    assert [r.offset for r in b.poll("g", "t", "a", 100)] == list(range(3, len(got)))
    # another group reads the same messages independently (routing to several consumers)
    b.subscribe("h", "t", "x")
    assert len(b.poll("h", "t", "x", 100)) == 20
    assert b.lag("h", "t") == 20
    b.delete_topic("t")
    with pytest.raises(KeyError, match="no topic 't'"):
        b.publish("t", "k", b"", "i")


def test_drop_publish_and_lost_ack_are_seeded():
    a = EmbeddedBroker(Faults(seed=1, drop_publish=0.3))
    acks = _fill(a, n=200)
    assert a.injected.dropped_publishes == acks.count(False) > 0
    assert sum(a.end_offsets("t")) == acks.count(True)
    b = EmbeddedBroker(Faults(seed=1, drop_publish=0.3))
    assert _fill(b, n=200) == acks  # same seed, same faults
    c = EmbeddedBroker(Faults(seed=2, lost_ack=0.3))
    acks = _fill(c, n=200)
    assert c.injected.lost_acks == acks.count(False) > 0
    assert sum(c.end_offsets("t")) == 200  # stored although not acknowledged


def test_drop_fetch_keeps_the_position_and_duplicate_delivery_repeats():
    b = EmbeddedBroker(Faults(seed=3, drop_fetch=0.5))
    _fill(b, n=30, partitions=1)
    b.subscribe("g", "t", "a")
    seen = []
    for _ in range(100):
        seen += [r.offset for r in b.poll("g", "t", "a", 5)]
    assert seen == list(range(30)) and b.injected.dropped_fetches > 0
    d = EmbeddedBroker(Faults(seed=3, duplicate_delivery=0.2))
    _fill(d, n=100, partitions=1)
    d.subscribe("g", "t", "a")
    got = d.poll("g", "t", "a", 1000)
    assert len(got) == 100 + d.injected.duplicated_deliveries
    assert d.injected.duplicated_deliveries > 0
    assert sorted({r.offset for r in got}) == list(range(100))


def test_restart_loses_sessions_and_the_unflushed_tail():
    b = EmbeddedBroker(Faults(flush_every=8))
    assert all(_fill(b, n=20, partitions=1))
    b.subscribe("g", "t", "a")
    b.commit("g", "t", "a", b.poll("g", "t", "a", 18))
    b.restart()
    assert b.end_offsets("t") == [16] and b.injected.lost_on_restart == 4
    assert b.committed("g", "t") == [16]
    safe = EmbeddedBroker()
    _fill(safe, n=20, partitions=1)
    safe.subscribe("g", "t", "a")
    safe.commit("g", "t", "a", safe.poll("g", "t", "a", 5))
    safe.poll("g", "t", "a", 5)
    safe.restart()
    assert safe.end_offsets("t") == [20]
    assert [r.offset for r in safe.poll("g", "t", "a", 3)] == [5, 6, 7]
