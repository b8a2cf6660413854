"""The repo's Mosquitto config and ACL on the real broker: each endpoint is confined to its own topics,
the edge reads all and answers, wrong passwords are refused."""

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

from edge.ingest_config import load_ingest_config
from endpoint import protocol
from endpoint.config import load_endpoint_config
from pipelines.broker import mosquitto_binary
from pipelines.ports import free_port, wait_for_port
from tests.deploy.compose_file import REPO, bind_source_for, load_compose

DEPLOY = REPO / "deploy/mosquitto"
USERS = {"edge": "edge-pw", "cam-1": "cam-1-pw", "cam-2": "cam-2-pw"}
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")

needs_mosquitto = pytest.mark.skipif(not (mosquitto_binary() and MOSQUITTO_PASSWD),
                                     reason="mosquitto and mosquitto_passwd are not installed")


def _repo_conf() -> dict[str, list[str]]:
    conf: dict[str, list[str]] = {}
    for line in (DEPLOY / "mosquitto.conf").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            conf.setdefault(key, []).append(value)
    return conf


def _conf_for_test(port: int, passwords: Path, workdir: Path) -> str:
    """The repo's mosquitto.conf, with only where it listens and where its files are changed."""
    overrides = {"listener": f"{port} 127.0.0.1", "password_file": str(passwords), "acl_file": str(DEPLOY / "acl"),
                 "persistence_location": f"{workdir}/", "log_dest": "stdout"}
    lines = [f"{key} {overrides.get(key, value)}" for key, values in _repo_conf().items() for value in values]
    if os.geteuid() == 0:
        lines.append("user root")  # else Mosquitto drops to its own user, who cannot read pytest's tmp dirs
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def start_broker(tmp_path_factory):
    """Start Mosquitto with the repo's config and ACL and a given password file; return its port."""
    processes = []

    def start(passwords: Path) -> int:
        workdir = tmp_path_factory.mktemp("mosquitto-acl")
        port = free_port()
        (workdir / "mosquitto.conf").write_text(_conf_for_test(port, passwords, workdir))
        log = open(workdir / "mosquitto.log", "wb")
        processes.append(subprocess.Popen([mosquitto_binary(), "-c", str(workdir / "mosquitto.conf")],
                                          stdout=log, stderr=subprocess.STDOUT))
        try:
            wait_for_port(port, timeout_s=10)
        except TimeoutError:
            raise RuntimeError((workdir / "mosquitto.log").read_text()) from None
        return port

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def port(start_broker, tmp_path_factory):
    passwords = tmp_path_factory.mktemp("passwords") / "passwords"
    for i, (user, password) in enumerate(USERS.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run([MOSQUITTO_PASSWD, "-b", *create, str(passwords), user, password], check=True)
    return start_broker(passwords)


class Client:
    """A paho client that connects synchronously and queues what it receives."""

    def __init__(self, port: int, user: str | None, password: str | None, client_id: str):
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connack = queue.Queue()
        self.subacks = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        if user is not None:
            self.client.username_pw_set(user, password)
        self.client.on_connect = lambda c, u, flags, rc, props=None: self.connack.put(rc)
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
def clients(port):
    opened = []

    def connect(user: str | None, password: str | None = None, client_id: str | None = None) -> Client:
        password = USERS.get(user) if password is None else password
        client = Client(port, user, password, client_id or f"{'endpoint-' if user != 'edge' else ''}{user}")
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


def _drain_until(client: Client, sentinel_topic: str) -> list[str]:
    """Topics received before ``sentinel_topic`` (a client's publishes reach subscribers in order)."""
    seen = []
    while True:
        topic, _ = client.receive()
        if topic == sentinel_topic:
            return seen
        seen.append(topic)


def test_repo_config_refuses_anonymous_and_matches_compose_mounts():
    conf = _repo_conf()
    assert conf["allow_anonymous"] == ["false"] and conf["listener"] == ["1883"]
    assert conf["persistence"] == ["true"] and conf["persistence_location"] == ["/mosquitto/data/"]
    assert int(conf["max_packet_size"][0]) >= protocol.MAX_MODEL_PAYLOAD_BYTES + 64 * 1024
    mosquitto = load_compose()["services"]["mosquitto"]
    assert bind_source_for(mosquitto, conf["acl_file"][0]) == DEPLOY / "acl"
    assert bind_source_for(mosquitto, conf["password_file"][0]) == DEPLOY / "passwords.example"
    assert bind_source_for(mosquitto, "/mosquitto/config/mosquitto.conf") == DEPLOY / "mosquitto.conf"


@needs_mosquitto
@pytest.mark.integration
def test_endpoint_frame_reaches_the_edge_through_the_shared_subscription(clients):
    edge, cam1 = clients("edge"), clients("cam-1")
    assert not edge.reason.is_failure and not cam1.reason.is_failure
    edge.subscribe(protocol.shared_subscription("ingest", protocol.FEATURE_FRAME))
    cam1.publish(protocol.topic("cam-1", protocol.FEATURE_FRAME), b"frame-bytes")
    assert edge.receive() == (protocol.topic("cam-1", protocol.FEATURE_FRAME), b"frame-bytes")


@needs_mosquitto
@pytest.mark.integration
def test_endpoint_cannot_publish_under_another_endpoint_or_as_the_edge(clients):
    edge, cam1 = clients("edge"), clients("cam-1")
    edge.subscribe("edgeloop/v1/#")
    forbidden = [protocol.topic("cam-2", protocol.FEATURE_FRAME), protocol.topic("cam-2", protocol.FEATURE_STATUS),
                 protocol.topic("cam-2", protocol.FEATURE_TELEMETRY), protocol.topic("cam-1", protocol.FEATURE_PLAN),
                 protocol.topic("cam-1", protocol.FEATURE_MODEL), "edgeloop/v1/other/thing"]
    for topic in forbidden:
        cam1.publish(topic, b"spoofed")
    allowed = [protocol.topic("cam-1", f) for f in (protocol.FEATURE_STATUS, protocol.FEATURE_TELEMETRY)]
    for topic in allowed:
        cam1.publish(topic, b"mine")
    sentinel = protocol.topic("cam-1", protocol.FEATURE_ACK)  # ack goes both ways: the endpoint may write it
    cam1.publish(sentinel, b"model ack")
    assert _drain_until(edge, sentinel) == allowed


@needs_mosquitto
@pytest.mark.integration
def test_wrong_password_and_anonymous_clients_are_refused(clients):
    assert clients("cam-1", password="not-the-password").reason.is_failure
    assert clients(None, client_id="anonymous").reason.is_failure
    assert clients("cam-3", password="whatever").reason.is_failure  # not in the password file


@needs_mosquitto
@pytest.mark.integration
def test_edge_plan_reaches_only_its_endpoint(clients):
    edge, cam1 = clients("edge"), clients("cam-1")
    for feature in (protocol.FEATURE_PLAN, protocol.FEATURE_MODEL, protocol.FEATURE_MODEL_DATA, protocol.FEATURE_ACK):
        cam1.subscribe(protocol.topic("cam-1", feature))
    cam1.subscribe(protocol.topic("cam-2", protocol.FEATURE_PLAN))  # not its own: refused or never delivered
    cam1.subscribe("edgeloop/v1/+/frame")
    clients("cam-2").publish(protocol.topic("cam-2", protocol.FEATURE_FRAME), b"cam-2 frame")
    edge.publish(protocol.topic("cam-2", protocol.FEATURE_PLAN), b"plan for cam-2")
    for feature in (protocol.FEATURE_MODEL, protocol.FEATURE_MODEL_DATA, protocol.FEATURE_ACK):
        edge.publish(protocol.topic("cam-1", feature), b"for cam-1")
    edge.publish(protocol.topic("cam-1", protocol.FEATURE_PLAN), b"plan for cam-1")
    received = [cam1.receive() for _ in range(4)]
    assert received[-1] == (protocol.topic("cam-1", protocol.FEATURE_PLAN), b"plan for cam-1")
    assert {topic for topic, _ in received} == {protocol.topic("cam-1", f) for f in (
        protocol.FEATURE_MODEL, protocol.FEATURE_MODEL_DATA, protocol.FEATURE_ACK, protocol.FEATURE_PLAN)}
    with pytest.raises(queue.Empty):
        cam1.receive(timeout_s=0.3)


@needs_mosquitto
@pytest.mark.integration
def test_compose_credentials_match_the_example_password_file(start_broker):
    port = start_broker(DEPLOY / "passwords.example")
    edge = load_ingest_config(REPO / "deploy/config/compose-edge.yaml")
    logins = [(edge.username, edge.password)] + [
        (c.broker.username, c.broker.password)
        for c in (load_endpoint_config(REPO / f"deploy/config/compose-endpoint-{i}.yaml") for i in (1, 2))]
    for user, password in logins:
        client = Client(port, user, password, f"login-{user}-{threading.get_ident()}")
        try:
            assert not client.reason.is_failure, f"{user}: {client.reason}"
        finally:
            client.close()
