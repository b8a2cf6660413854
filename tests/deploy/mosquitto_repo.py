"""The repo's Mosquitto config on the real broker, on free loopback ports, with secrets from deploy/make-secrets.sh.

Shared by the ACL and TLS tests: the fixtures here are imported into those modules.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from pipelines.broker import mosquitto_binary
from pipelines.ports import free_port, wait_for_port
from tests.deploy.compose_file import REPO

DEPLOY = REPO / "deploy/mosquitto"
MAKE_SECRETS = REPO / "deploy/make-secrets.sh"
PLAIN_LISTENER, TLS_LISTENER = "1883", "8883"

needs_mosquitto = pytest.mark.skipif(
    not (mosquitto_binary() and shutil.which("openssl") and shutil.which("python3")),
    reason="mosquitto, openssl and python3 are needed")


def repo_conf_lines() -> list[tuple[str, str]]:
    """(key, value) of every setting in deploy/mosquitto/mosquitto.conf, in order."""
    out = []
    for line in (DEPLOY / "mosquitto.conf").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            out.append((key, value))
    return out


def repo_conf() -> dict[str, list[str]]:
    conf: dict[str, list[str]] = {}
    for key, value in repo_conf_lines():
        conf.setdefault(key, []).append(value)
    return conf


def conf_for_test(port: int, tls_port: int, root: Path, workdir: Path) -> str:
    """The repo's mosquitto.conf with only its ports (on loopback) and file locations changed."""
    certs = root / "deploy/mosquitto/certs"
    files = {"password_file": str(root / "deploy/mosquitto/passwords"), "acl_file": str(DEPLOY / "acl"),
             "persistence_location": f"{workdir}/", "log_dest": "stdout", "cafile": str(certs / "ca.crt"),
             "certfile": str(certs / "server.crt"), "keyfile": str(certs / "server.key")}
    ports = {PLAIN_LISTENER: f"{port} 127.0.0.1", TLS_LISTENER: f"{tls_port} 127.0.0.1"}
    lines = []
    for key, value in repo_conf_lines():
        value = ports[value] if key == "listener" else files.get(key, value)
        lines.append(f"{key} {value}")
    if os.geteuid() == 0:
        lines.append("user root")  # else Mosquitto drops to its own user, who cannot read pytest's tmp dirs
    return "\n".join(lines) + "\n"


def make_secrets(root: Path, *args: str) -> dict[str, str]:
    """Run deploy/make-secrets.sh into ``root``; the MQTT password of each user it made."""
    subprocess.run([str(MAKE_SECRETS), *args], check=True, capture_output=True, timeout=60,
                   env={**os.environ, "EDGELOOP_SECRETS_ROOT": str(root)})
    return {p.name.removesuffix(".password"): p.read_text().strip()
            for p in (root / "deploy/secrets").glob("*.password")}


class RepoBroker:
    """One Mosquitto process with the repo's config: ``port`` plain, ``tls_port`` TLS."""

    def __init__(self, root: Path, workdir: Path):
        self.root, self.port, self.tls_port = root, free_port(), free_port()
        self.ca_file = str(root / "deploy/mosquitto/certs/ca.crt")
        (workdir / "mosquitto.conf").write_text(conf_for_test(self.port, self.tls_port, root, workdir))
        self._log = open(workdir / "mosquitto.log", "wb")
        self.process = subprocess.Popen([mosquitto_binary(), "-c", str(workdir / "mosquitto.conf")],
                                        stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, timeout_s=10)
            wait_for_port(self.tls_port, timeout_s=10)
        except TimeoutError:
            self.stop()
            raise RuntimeError((workdir / "mosquitto.log").read_text()) from None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="module")
def secrets(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A deployment's secrets, made by the repo's own script."""
    root = tmp_path_factory.mktemp("deployment")
    return root, make_secrets(root)


@pytest.fixture(scope="module")
def repo_broker(secrets, tmp_path_factory):
    broker = RepoBroker(secrets[0], tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()


class Client:
    """A paho client that connects synchronously and queues what it receives."""

    def __init__(self, port: int, user: str | None, password: str | None, client_id: str, ca_file: str = ""):
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connack = queue.Queue()
        self.subacks = queue.Queue()
        self.disconnected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        if user is not None:
            self.client.username_pw_set(user, password)
        if ca_file:
            self.client.tls_set(ca_certs=ca_file)
        self.client.on_connect = lambda c, u, flags, rc, props=None: self.connack.put(rc)
        self.client.on_disconnect = lambda *args: self.disconnected.set()
        self.client.on_message = lambda c, u, msg: self.messages.put((msg.topic, msg.payload))
        self.client.on_subscribe = lambda c, u, mid, rcs, props=None: self.subacks.put(rcs)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        self.reason = self.connack.get(timeout=5)

    def subscribe(self, topic_filter: str) -> None:
        self.client.subscribe(topic_filter, qos=1)
        self.subacks.get(timeout=5)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(timeout=5)

    def receive(self, timeout_s: float = 5.0) -> tuple[str, bytes]:
        return self.messages.get(timeout=timeout_s)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients(repo_broker, secrets):
    """Connect as a user of the deployment (its own password unless one is given) on the plain port."""
    opened = []
    users = secrets[1]

    def connect(user: str | None, password: str | None = None, client_id: str | None = None) -> Client:
        password = users.get(user) if password is None else password
        client = Client(repo_broker.port, user, password, client_id or f"endpoint-{user}")
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()
