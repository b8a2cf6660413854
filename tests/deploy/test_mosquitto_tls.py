"""TLS on 8883 as deploy/make-secrets.sh and the repo's mosquitto.conf set it up, on the real broker: the
endpoint's link, the split server and every compose login connect with the generated CA; plaintext and a
foreign CA do not."""

from __future__ import annotations

import queue
import ssl
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.service_config import EdgeServiceConfig
from endpoint.wire import protocol
from endpoint.config import BrokerConfig, EndpointConfig
from endpoint.wire.config_base import load_config
from endpoint.uplink.link import MqttLink
from endpoint.wire.split_protocol import FEATURE_SPLIT_REQUEST, FEATURE_SPLIT_RESULT, SplitRequestHeader, decode_result, \
    encode_split_request
from tests.deploy.compose_file import REPO, host_path, load_compose
from tests.deploy.mosquitto_repo import (Client, make_secrets, needs_mosquitto, repo_broker,  # noqa: F401
                                         secrets)

pytestmark = [needs_mosquitto, pytest.mark.integration]


def _link(broker, secrets_, endpoint_id: str = "cam-1") -> MqttLink:
    """The endpoint's link built from its broker config as the endpoint builds it: password file and CA."""
    b = BrokerConfig(host="127.0.0.1", port=broker.tls_port, username=endpoint_id, tls_ca_file=broker.ca_file,
                     password_file=str(secrets_[0] / f"deploy/secrets/{endpoint_id}.password"))
    return MqttLink(endpoint_id, b.host, b.port, b.username, b.mqtt_password(), b.keepalive_s,
                    tls_ca_file=b.tls_ca_file, tls_cert_file=b.tls_cert_file, tls_key_file=b.tls_key_file)


def test_an_endpoint_link_publishes_and_receives_over_tls_with_the_generated_ca(repo_broker, secrets):
    edge = Client(repo_broker.tls_port, "edge", secrets[1]["edge"], "edge", ca_file=repo_broker.ca_file)
    link = _link(repo_broker, secrets)
    plans: queue.Queue[bytes] = queue.Queue()
    link.on(protocol.FEATURE_PLAN, plans.put)
    try:
        assert not edge.reason.is_failure
        edge.subscribe(protocol.topic("cam-1", protocol.FEATURE_TELEMETRY))
        link.start()
        assert link.connected.wait(10)
        link.publish(protocol.FEATURE_TELEMETRY, b"telemetry over tls").wait_for_publish(5)
        assert edge.receive() == (protocol.topic("cam-1", protocol.FEATURE_TELEMETRY), b"telemetry over tls")
        # the link subscribes right after CONNACK; a retained plan reaches it whenever that lands
        edge.client.publish(protocol.topic("cam-1", protocol.FEATURE_PLAN), b"plan over tls", qos=1,
                            retain=True).wait_for_publish(5)
        assert plans.get(timeout=10) == b"plan over tls"
    finally:
        edge.client.publish(protocol.topic("cam-1", protocol.FEATURE_PLAN), b"", qos=1, retain=True)
        link.stop()
        edge.close()


def test_plaintext_mqtt_to_the_tls_port_gets_no_session(repo_broker, secrets):
    connacks, gone = queue.Queue(), threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="plain", protocol=mqtt.MQTTv311)
    client.username_pw_set("cam-1", secrets[1]["cam-1"])
    client.on_connect = lambda c, u, flags, rc, props=None: connacks.put(rc)
    client.on_disconnect = lambda *args: gone.set()
    client.connect("127.0.0.1", repo_broker.tls_port, keepalive=10)
    client.loop_start()
    try:
        assert gone.wait(10), "the TLS listener kept a plaintext connection open"
        assert connacks.empty()
    finally:
        client.loop_stop()
        client.disconnect()


def test_a_broker_certificate_from_another_ca_is_refused(repo_broker, secrets, tmp_path):
    other = tmp_path / "other"
    make_secrets(other)  # another deployment: its own CA
    with pytest.raises(ssl.SSLError):
        Client(repo_broker.tls_port, "cam-1", secrets[1]["cam-1"], "endpoint-cam-1",
               ca_file=str(other / "deploy/mosquitto/certs/ca.crt"))


def test_every_compose_login_connects_over_tls_with_its_generated_secret(repo_broker, secrets):
    compose = load_compose()

    def secret_of(service: str, path: str) -> str:
        target = path.removeprefix("/run/secrets/")
        entry = next(e for e in compose["services"][service]["secrets"] if e["target"] == target)
        relative = host_path(compose["secrets"][entry["source"]]["file"]).relative_to(REPO)
        return (secrets[0] / relative).read_text().strip()

    edge = load_config(EdgeServiceConfig, REPO / "deploy/config/compose-edge.yaml")
    logins = [("edge", role.broker.username, role.broker.password_file, role.broker.port)
              for role in (edge.ingest, edge.learner)]
    for i in (1, 2):
        b = load_config(EndpointConfig, REPO / f"deploy/config/compose-endpoint-{i}.yaml").broker
        logins.append((f"endpoint-{i}", b.username, b.password_file, b.port))
    assert {user for _, user, _, _ in logins} == {"edge", "learner", "cam-1", "cam-2"}
    for service, user, password_file, port in logins:
        assert port == 8883
        client = Client(repo_broker.tls_port, user, secret_of(service, password_file), user,
                        ca_file=repo_broker.ca_file)
        try:
            assert not client.reason.is_failure, f"{user}: {client.reason}"
        finally:
            client.close()


def test_the_split_server_answers_an_endpoint_over_tls_with_the_split_login(repo_broker, secrets, tmp_path):
    from edge.split.server import BrokerTls, SplitServer
    from edge.split.split_set import MANIFEST_NAME, SplitSetManifest

    manifest = SplitSetManifest(source_sha256="0" * 64, imgsz=32, layers=4, class_names=["car"],
                                layer_gflops=[0.0] * 4, pairs=[])
    (tmp_path / MANIFEST_NAME).write_text(manifest.model_dump_json())
    server = SplitServer(tmp_path, "127.0.0.1", repo_broker.tls_port, username="split",
                         password=secrets[1]["split"], tls=BrokerTls(ca_file=repo_broker.ca_file)).start()
    link = _link(repo_broker, secrets)
    results: queue.Queue = queue.Queue()
    subscribed = threading.Event()
    link.on(FEATURE_SPLIT_RESULT, lambda payload: results.put(decode_result(payload)))
    link.client.on_subscribe = lambda *args: subscribed.set()
    try:
        link.start()
        assert link.connected.wait(10) and subscribed.wait(10)
        header = SplitRequestHeader(endpoint_id="cam-1", request_id="cam-1-00000001", pair_id="feed00",
                                    codec="q8c-zlib", source_width=64, source_height=48, sent_time=1.0,
                                    payload_bytes=1)
        link.publish(FEATURE_SPLIT_REQUEST, encode_split_request(header, b"x"), qos=0)
        result = results.get(timeout=10)
        assert result.request_id == "cam-1-00000001" and not result.ok and result.reason.startswith("unknown_pair")
    finally:
        link.stop()
        server.stop()
