"""Ingestion: producers -> broker -> consumers -> sink, with every loss and duplicate counted.

The seed's chapter 4 pipeline (client -> frontend -> message broker -> consumer -> storage ->
de-duplication), built to be measured:

* :mod:`mpp.ingest.producers`: seeded web, mobile (buffers offline) and device producers, each
  message with a unique ID and a per-producer sequence number, and a :class:`Ledger` of what
  was sent and acknowledged.
* :mod:`mpp.ingest.broker`: the broker interface and the embedded in-process backend with
  seeded fault injection; :mod:`mpp.ingest.mqtt` (mosquitto via paho-mqtt) and
  :mod:`mpp.ingest.jetstream` (NATS JetStream via nats-py) are the real backends.
* :mod:`mpp.ingest.consumer`: consumers in the three delivery modes and the two
  de-duplication strategies (recent IDs, (file, offset)).
* :mod:`mpp.ingest.checker`: lost / duplicated / unexpected counts against the ledger, as
  Jepsen's queue checkers count them, plus throughput and latency percentiles.
* :mod:`mpp.ingest.bridge`: MQTT -> JetStream, at-least-once on both sides.
* :mod:`mpp.ingest.sink`: the narrow ``Sink.commit(batch, batch_id, offsets)`` interface and
  :class:`~mpp.ingest.sink.IcebergSink`, which commits through INSERT's write path.
* :mod:`mpp.ingest.services`: where the real brokers are, and why one cannot be used.
* :mod:`mpp.ingest.pipeline`: a whole pipeline from a scenario's ``[ingest]`` section
  (``mpp ingest``; :func:`run` here).

See docs/ingestion.md.
"""

from typing import Any


def run(scenario: Any, **kwargs: Any) -> Any:
    """Run a scenario's ``[ingest]`` pipeline (see :func:`mpp.ingest.pipeline.run`)."""
    from mpp.ingest.pipeline import run as _run

    return _run(scenario, **kwargs)
