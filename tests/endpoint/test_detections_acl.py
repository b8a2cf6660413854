"""The repo's Mosquitto ACL on the real broker: an endpoint writes only its own detections; apps and edge read."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from endpoint.wire import protocol
from pipelines.broker import mosquitto_binary
from pipelines.ports import free_port, wait_for_port

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (mosquitto_binary() and shutil.which("mosquitto_passwd")),
                                 reason="mosquitto or mosquitto_passwd is not installed")]

ACL = Path(__file__).resolve().parents[2] / "deploy/mosquitto/acl"
USERS = {"edge": "edge-pw", "apps": "apps-pw", "cam-1": "cam-1-pw", "cam-2": "cam-2-pw"}


@pytest.fixture
def acl_port(tmp_path):
    passwords = tmp_path / "passwords"
    for i, (user, password) in enumerate(USERS.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run(["mosquitto_passwd", "-b", *create, str(passwords), user, password], check=True)
    port = free_port()
    conf = [f"listener {port} 127.0.0.1", "allow_anonymous false", f"password_file {passwords}",
            f"acl_file {ACL}"] + (["user root"] if os.geteuid() == 0 else [])
    (tmp_path / "mosquitto.conf").write_text("\n".join(conf) + "\n")
    process = subprocess.Popen([mosquitto_binary(), "-c", str(tmp_path / "mosquitto.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout_s=10)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


class _Client:
    def __init__(self, port: int, user: str):
        self.messages: queue.Queue[str] = queue.Queue()
        self._acks: queue.Queue = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{user}", protocol=mqtt.MQTTv311)
        self.client.username_pw_set(user, USERS[user])
        self.client.on_connect = lambda c, u, flags, rc, props=None: self._acks.put(rc)
        self.client.on_subscribe = lambda c, u, mid, rcs, props=None: self._acks.put(rcs)
        self.client.on_message = lambda c, u, m: self.messages.put(m.topic)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert not self._acks.get(timeout=5).is_failure

    def subscribe(self, topic_filter: str) -> None:
        self.client.subscribe(topic_filter, qos=1)
        self._acks.get(timeout=5)

    def publish(self, topic: str) -> None:
        self.client.publish(topic, b"{}", qos=1).wait_for_publish(timeout=5)

    def topics_until(self, sentinel: str) -> list[str]:
        seen = []
        while (topic := self.messages.get(timeout=5)) != sentinel:
            seen.append(topic)
        return seen

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_endpoints_write_only_their_own_detections_and_apps_and_edge_read_them(acl_port):
    clients = {user: _Client(acl_port, user) for user in USERS}
    try:
        own, other = (protocol.topic(cam, protocol.FEATURE_DETECTIONS) for cam in ("cam-1", "cam-2"))
        for reader in ("apps", "edge"):
            clients[reader].subscribe(protocol.topic("+", protocol.FEATURE_DETECTIONS))
        clients["apps"].subscribe(protocol.topic("+", protocol.FEATURE_FRAME))  # refused: apps see no frames
        clients["cam-1"].publish(protocol.topic("cam-1", protocol.FEATURE_FRAME))
        clients["cam-1"].publish(other)  # denied: cam-1 speaking for cam-2
        clients["cam-1"].publish(own)
        assert clients["apps"].topics_until(own) == []
        assert clients["edge"].topics_until(own) == []
    finally:
        for client in clients.values():
            client.close()
