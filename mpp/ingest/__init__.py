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
* :mod:`mpp.ingest.sink`: the narrow ``Sink.commit(batch, batch_id, offsets)`` interface.
"""
