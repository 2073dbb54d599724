"""The MQTT backend: mosquitto (or any MQTT 5 broker) through paho-mqtt 2.

How MQTT maps onto :class:`~mpp.ingest.broker.Broker`:

* a topic is an MQTT topic; there are no partitions or stored offsets: a record's ``offset``
  is the MQTT packet id, meaningful only to acknowledge it;
* QoS is the delivery semantics of one hop: 0 at-most-once (no ack), 1 at-least-once (PUBACK;
  redelivered with the DUP flag until acknowledged), 2 exactly-once (the four-packet
  handshake);
* a consumer group member is a client with the id ``<group>.<member>`` and a *persistent
  session* (``clean_start=False`` and a session expiry interval): while it is away the broker
  queues its QoS 1/2 messages (QoS 0 ones are dropped) and resends what it had not
  acknowledged when it comes back;
* ``commit`` acknowledges (paho's ``manual_ack``): a consumer that crashes before committing
  gets the messages again, the at-least-once behaviour of the embedded broker;
* with ``shared=True`` members subscribe to ``$share/<group>/<topic>``, so the broker splits the
  topic's messages among the group's members, as partitions do in a Kafka-like log.

Needs ``paho-mqtt>=2`` and a broker (the project's machines run mosquitto on 127.0.0.1:1883).
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mpp.ingest.broker import Record


def message_id_of(payload: bytes) -> str:
    """The ``message_id`` inside a JSON payload, or "" when there is none (malformed)."""
    try:
        body = json.loads(payload)
    except ValueError:
        return ""
    return str(body.get("message_id", "")) if isinstance(body, dict) else ""


@dataclass
class _Member:
    client: mqtt.Client
    inbox: queue.Queue = field(default_factory=queue.Queue)
    qos: dict[int, int] = field(default_factory=dict)


class MqttBroker:
    """A :class:`~mpp.ingest.broker.Broker` over an MQTT 5 broker (see the module docstring)."""

    def __init__(self, host: str | None = None, port: int | None = None, *, qos: int = 1,
                 shared: bool = False, session_expiry: int = 300,
                 connect_timeout: float = 5.0) -> None:
        if qos not in (0, 1, 2):
            raise ValueError(f"MQTT QoS must be 0, 1 or 2, got {qos}")
        from mpp.ingest import services  # default: services.MQTT_ADDR (MPP_MQTT_ADDR)

        host = services.MQTT_ADDR[0] if host is None else host
        port = services.MQTT_ADDR[1] if port is None else port
        self.host, self.port, self.qos, self.shared = host, port, qos, shared
        self.session_expiry = session_expiry
        self.connect_timeout = connect_timeout
        self._members: dict[tuple[str, str, str], _Member] = {}
        self._publisher = self._connect(f"mpp-pub-{uuid.uuid4().hex[:12]}", persistent=False)

    def _connect(self, client_id: str, *, persistent: bool,
                 inbox: queue.Queue | None = None) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5, manual_ack=True)
        connected = threading.Event()
        refused: list[str] = []

        def on_connect(c, userdata, flags, reason_code, properties):  # noqa: ANN001
            if reason_code.is_failure:
                refused.append(str(reason_code))
            connected.set()

        client.on_connect = on_connect
        if inbox is not None:
            client.on_message = lambda c, userdata, msg: inbox.put(msg)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry if persistent else 0
        try:
            client.connect(self.host, self.port, keepalive=30, clean_start=not persistent,
                           properties=props)
        except OSError as exc:
            raise ConnectionError(
                f"no MQTT broker at {self.host}:{self.port} ({exc.strerror or exc})") from None
        client.loop_start()
        if not connected.wait(self.connect_timeout) or refused:
            client.loop_stop()
            raise ConnectionError(f"MQTT broker at {self.host}:{self.port} refused "
                                  f"{client_id}: {refused[0] if refused else 'timeout'}")
        return client

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        """MQTT topics need no creation."""

    def delete_topic(self, topic: str) -> None:
        """MQTT topics hold nothing once the sessions are gone (see :meth:`close`)."""

    def publish(self, topic: str, key: str, value: bytes, message_id: str) -> bool:
        """Publish at the broker's QoS; True once the broker acknowledged (QoS 0: sent)."""
        info = self._publisher.publish(topic, value, qos=self.qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        if self.qos == 0:
            return True
        try:
            info.wait_for_publish(self.connect_timeout)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def subscribe(self, group: str, topic: str, member: str) -> None:
        """Connect ``<group>.<member>`` with a persistent session and subscribe."""
        key = (group, topic, member)
        if key in self._members:
            return
        inbox: queue.Queue = queue.Queue()
        client = self._connect(f"{group}.{member}", persistent=True, inbox=inbox)
        filt = f"$share/{group}/{topic}" if self.shared else topic
        done = threading.Event()
        client.on_subscribe = lambda *args: done.set()
        client.subscribe(filt, qos=self.qos)
        if not done.wait(self.connect_timeout):
            raise ConnectionError(f"MQTT broker did not confirm the subscription to {filt}")
        self._members[key] = _Member(client, inbox)

    def poll(self, group: str, topic: str, member: str, max_records: int = 100,
             timeout: float = 0.0) -> list[Record]:
        """What arrived for the member, waiting up to ``timeout`` s for the first message."""
        m = self._members[(group, topic, member)]
        out: list[Record] = []
        try:
            msg = m.inbox.get(timeout=timeout) if timeout > 0 else m.inbox.get_nowait()
            while True:
                m.qos[msg.mid] = msg.qos
                out.append(Record(msg.topic, 0, msg.mid, msg.topic, msg.payload,
                                  message_id_of(msg.payload)))
                if len(out) >= max_records:
                    break
                msg = m.inbox.get_nowait()
        except queue.Empty:
            pass
        return out

    def commit(self, group: str, topic: str, member: str, records: Sequence[Record]) -> None:
        """Acknowledge the records (PUBACK / PUBCOMP): the broker forgets them."""
        m = self._members[(group, topic, member)]
        for r in records:
            qos = m.qos.pop(r.offset, 0)
            if qos:
                m.client.ack(r.offset, qos)

    def leave(self, group: str, topic: str, member: str, *, forget: bool = False) -> None:
        """Disconnect the member. Its session (and unacknowledged messages) stays on the
        broker for ``session_expiry`` seconds unless ``forget`` ends it now."""
        m = self._members.pop((group, topic, member), None)
        if m is None:
            return
        props = None
        if forget:
            props = Properties(PacketTypes.DISCONNECT)
            props.SessionExpiryInterval = 0
        _disconnect(m.client, props, self.connect_timeout)

    def close(self) -> None:
        """Disconnect everyone and end the members' sessions on the broker."""
        for group, topic, member in list(self._members):
            self.leave(group, topic, member, forget=True)
        _disconnect(self._publisher, None, self.connect_timeout)


def _disconnect(client: mqtt.Client, props: Properties | None, timeout: float) -> None:
    """Send DISCONNECT and wait until the connection is closed, then stop the loop thread."""
    gone = threading.Event()
    client.on_disconnect = lambda *args: gone.set()
    client.disconnect(properties=props)
    gone.wait(timeout)
    client.loop_stop()

