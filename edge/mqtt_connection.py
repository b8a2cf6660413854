"""A tiny paho-mqtt wrapper for the edge: background (re)connect, re-subscribe, handler dispatch."""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from endpoint.wire.broker_unreachable import UnreachableWarning

if TYPE_CHECKING:
    from endpoint.wire.broker_config import BrokerConfig

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]


@dataclass(frozen=True)
class LastWill:
    """What the broker publishes for us if we vanish without a clean disconnect."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def filter_for_matching(topic_filter: str) -> str:
    """The plain filter inside a ``$share/<group>/<filter>`` subscription (delivered topics lack the prefix)."""
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        if len(parts) == 3:
            return parts[2]
    return topic_filter


class MqttConnection:
    """One MQTT 3.1.1 client; subscriptions are remembered and renewed on every reconnect."""

    def __init__(self, host: str, port: int, client_id: str = "", *, username: str | None = None,
                 password: str | None = None, keepalive_s: int = 30, clean_session: bool = True,
                 will: LastWill | None = None, reconnect_min_delay_s: int = 1, reconnect_max_delay_s: int = 30,
                 tls_ca_file: str = "", tls_cert_file: str = "", tls_key_file: str = ""):
        self.host, self.port = host, port
        self.client_id = client_id or f"edgeloop-{uuid.uuid4().hex[:12]}"
        self.keepalive_s = keepalive_s
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                  clean_session=clean_session, protocol=mqtt.MQTTv311)
        if username:
            self.client.username_pw_set(username, password)
        if tls_ca_file:  # TLS to the broker's 8883 listener; the CA file is what proves the broker is ours
            self.client.tls_set(ca_certs=tls_ca_file, certfile=tls_cert_file or None, keyfile=tls_key_file or None)
        if will:
            self.client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self.client.reconnect_delay_set(reconnect_min_delay_s, reconnect_max_delay_s)
        self.client.on_connect = self._on_connect
        self._unreachable = UnreachableWarning(log, host, port)
        self.client.on_connect_fail = self._unreachable.failed
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # set once the broker acked every subscription of this session
        self._subscriptions: dict[str, tuple[int, MessageHandler]] = {}
        self._pending_mid: int | None = None
        self._acked_mids: set[int] = set()
        self._lock = threading.Lock()
        self._started = False

    @classmethod
    def from_config(cls, broker: "BrokerConfig", default_client_id: str = "", **options) -> "MqttConnection":
        """A connection as ``broker`` says (the password is read now); ``options`` are the other keywords."""
        return cls(broker.host, broker.port, broker.client_id or default_client_id,
                   username=broker.username or None, password=broker.mqtt_password() or None,
                   keepalive_s=broker.keepalive_s, tls_ca_file=broker.tls_ca_file,
                   tls_cert_file=broker.tls_cert_file, tls_key_file=broker.tls_key_file, **options)

    def subscribe(self, topic_filter: str, handler: MessageHandler, qos: int = 1) -> None:
        """Deliver messages matching ``topic_filter`` to ``handler(topic, payload)`` (on paho's thread)."""
        with self._lock:
            self._subscriptions[topic_filter] = (qos, handler)
        if self.connected.is_set():
            self._subscribe_all()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        """Hand a message to paho; True if sent, or (QoS > 0) queued by paho to send after a reconnect."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_NO_CONN and qos > 0:
            return True
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def start(self, timeout_s: float | None = 10.0) -> bool:
        """Connect in the background; wait up to ``timeout_s`` for connection and subscriptions."""
        if not self._started:
            self.client.connect_async(self.host, self.port, keepalive=self.keepalive_s)
            self.client.loop_start()  # retries the first connection too, then reconnects forever
            self._started = True
        if timeout_s is None:
            return self.connected.is_set()
        if not self.connected.wait(timeout_s):
            return False
        return self.subscribed.wait(timeout_s) if self._subscriptions else True

    def stop(self) -> None:
        """Disconnect cleanly (no last will) and stop the network thread."""
        if not self._started:
            return
        self._started = False
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()
        self.subscribed.clear()

    def _subscribe_all(self) -> None:
        with self._lock:
            wanted = [(f, qos) for f, (qos, _) in self._subscriptions.items()]
            self._pending_mid, self._acked_mids = None, set()
        if not wanted:
            self.subscribed.set()
            return
        self.subscribed.clear()
        # Not under self._lock: the SUBACK may be handled on paho's thread before subscribe() returns.
        rc, mid = self.client.subscribe(wanted)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            log.warning("subscribe to %s failed (%s); retried on reconnect", [f for f, _ in wanted], rc)
            return
        with self._lock:
            self._pending_mid = mid
            if mid in self._acked_mids:
                self.subscribed.set()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT %s:%s refused %s: %s", self.host, self.port, self.client_id, reason_code)
            return
        self._unreachable.connected()
        log.info("MQTT %s connected to %s:%s", self.client_id, self.host, self.port)
        self.connected.set()
        self._subscribe_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if self._started:
            log.warning("MQTT %s lost %s:%s (%s); reconnecting", self.client_id, self.host, self.port, reason_code)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("MQTT %s: broker refused a subscription: %s", self.client_id, failed)
            return
        with self._lock:
            self._acked_mids.add(mid)
            if mid == self._pending_mid:
                self.subscribed.set()

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            handlers = [h for f, (_, h) in self._subscriptions.items()
                        if mqtt.topic_matches_sub(filter_for_matching(f), message.topic)]
        for handler in handlers:
            try:
                handler(message.topic, message.payload)
            except Exception:  # a handler bug must not kill paho's network thread
                log.exception("MQTT handler failed on %s", message.topic)
