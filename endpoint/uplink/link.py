"""The endpoint's MQTT connection: last will, retained status, reconnects, handlers per feature."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from endpoint.wire import protocol
from endpoint.wire.broker_unreachable import UnreachableWarning
from endpoint.wire.protocol import Status

log = logging.getLogger(__name__)

Handler = Callable[[bytes], None]


class MqttLink:
    """One MQTT 3.1.1 session for one endpoint; handlers get raw payloads of ``<prefix>/<id>/<feature>``."""

    def __init__(self, endpoint_id: str, host: str, port: int, username: str = "", password: str = "",
                 keepalive_s: int = 15, model_version: Callable[[], str] = lambda: "", tls_ca_file: str = "",
                 tls_cert_file: str = "", tls_key_file: str = "", client_id: str = ""):
        self.endpoint_id = endpoint_id
        self.host, self.port = host, port
        self._model_version = model_version
        self._handlers: dict[str, Handler] = {}
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # set once the broker acked every subscription of this session
        self._pending_mid: int | None = None
        self._acked_mids: set[int] = set()
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"endpoint-{endpoint_id}",
                                  protocol=mqtt.MQTTv311, clean_session=True)
        if username:
            self.client.username_pw_set(username, password or None)
        if tls_ca_file:  # TLS (8883): the CA proves the broker is ours before the password is sent
            self.client.tls_set(ca_certs=tls_ca_file, certfile=tls_cert_file or None, keyfile=tls_key_file or None)
        offline = Status(endpoint_id=endpoint_id, state="offline")
        self.client.will_set(protocol.topic(endpoint_id, protocol.FEATURE_STATUS), protocol.encode(offline),
                             qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=2)
        self.client.max_inflight_messages_set(64)
        self.client.on_connect = self._on_connect
        self._unreachable = UnreachableWarning(log, host, port)
        self.client.on_connect_fail = self._unreachable.failed
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self._keepalive_s = keepalive_s
        self._stopping = False
        self.connection_count = 0  # bumps on every (re)connect: sends of an older connection may be lost

    def on(self, feature: str, handler: Handler) -> None:
        """Call ``handler(payload)`` for messages on this endpoint's ``feature`` topic."""
        self._handlers[feature] = handler

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=self._keepalive_s)
        self.client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        if self.connected.is_set():
            self.publish_status("offline")
            time.sleep(0.1)
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, feature: str, payload: bytes, qos: int = 1, retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self.client.publish(protocol.topic(self.endpoint_id, feature), payload, qos=qos, retain=retain)

    def publish_status(self, state: str) -> None:
        status = Status(endpoint_id=self.endpoint_id, state=state, model_version=self._model_version(),
                        time=time.time())
        self.publish(protocol.FEATURE_STATUS, protocol.encode(status), qos=1, retain=True)

    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        if reason_code.is_failure:
            log.warning("broker %s:%d refused the connection: %s", self.host, self.port, reason_code)
            return
        self._unreachable.connected()
        self._subscribe_all(client)
        self.connection_count += 1
        self.connected.set()
        self.publish_status("online")
        log.info("connected to broker %s:%d", self.host, self.port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None):
        if self.connected.is_set() and not self._stopping:
            log.warning("lost the broker %s:%d (%s); reconnecting", self.host, self.port, reason_code)
        self.connected.clear()
        self.subscribed.clear()

    def _subscribe_all(self, client) -> None:
        # One SUBSCRIBE for all features, so one SUBACK tells that the whole session is subscribed.
        wanted = [(protocol.topic(self.endpoint_id, feature), 1) for feature in list(self._handlers)]
        with self._lock:
            self._pending_mid, self._acked_mids = None, set()
        if not wanted:
            self.subscribed.set()
            return
        self.subscribed.clear()
        rc, mid = client.subscribe(wanted)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            log.warning("subscribe to %s failed (%s); retried on reconnect", [t for t, _ in wanted], rc)
            return
        with self._lock:  # the SUBACK may already have been handled
            self._pending_mid = mid
            if mid in self._acked_mids:
                self.subscribed.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties=None):
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("broker %s:%d refused a subscription: %s", self.host, self.port, failed)
            return
        with self._lock:
            self._acked_mids.add(mid)
            if mid == self._pending_mid:
                self.subscribed.set()

    def _on_message(self, client, userdata, message):
        try:
            _, feature = protocol.parse_topic(message.topic)
            handler = self._handlers.get(feature)
            if handler is not None:
                handler(message.payload)
        except Exception:  # a bad message must never stop the network loop
            log.exception("handler for %s failed", message.topic)
