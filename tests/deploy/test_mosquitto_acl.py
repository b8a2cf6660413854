"""The repo's Mosquitto config and ACL on the real broker: each endpoint is confined to its own topics,
the edge reads all and answers, wrong passwords are refused, no login takes over another's session,
and the co-inference topics are confined like the rest. Passwords come from deploy/make-secrets.sh."""

from __future__ import annotations

import queue

import pytest

from endpoint.wire import protocol
from endpoint.wire.split_protocol import FEATURE_SPLIT_DIRECTIVE, FEATURE_SPLIT_REQUEST, FEATURE_SPLIT_RESULT
from tests.deploy.compose_file import bind_source_for, load_compose
from tests.deploy.mosquitto_repo import (DEPLOY, Client, clients, needs_mosquitto, repo_broker,  # noqa: F401
                                         repo_conf, secrets)


def _drain_until(client: Client, sentinel_topic: str) -> list[str]:
    """Topics received before ``sentinel_topic`` (a client's publishes reach subscribers in order)."""
    seen = []
    while True:
        topic, _ = client.receive()
        if topic == sentinel_topic:
            return seen
        seen.append(topic)


def test_repo_config_refuses_anonymous_and_matches_compose_mounts():
    conf = repo_conf()
    assert conf["allow_anonymous"] == ["false"] and conf["listener"] == ["1883", "8883"]
    assert conf["use_username_as_clientid"] == ["true", "true"]  # a listener setting: one per listener
    assert conf["persistence"] == ["true"] and conf["persistence_location"] == ["/mosquitto/data/"]
    assert int(conf["max_packet_size"][0]) >= protocol.MAX_MODEL_PAYLOAD_BYTES + 64 * 1024
    mosquitto = load_compose()["services"]["mosquitto"]
    assert bind_source_for(mosquitto, conf["acl_file"][0]) == DEPLOY / "acl"
    assert bind_source_for(mosquitto, conf["password_file"][0]) == DEPLOY / "passwords"  # made by make-secrets.sh
    assert bind_source_for(mosquitto, "/mosquitto/config/mosquitto.conf") == DEPLOY / "mosquitto.conf"
    for key in ("cafile", "certfile", "keyfile"):
        assert bind_source_for(mosquitto, conf[key][0]).parent == DEPLOY / "certs"


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
def test_another_login_cannot_take_over_an_endpoints_session(clients):
    edge, cam1 = clients("edge"), clients("cam-1", client_id="endpoint-cam-1")
    cam1.subscribe(protocol.topic("cam-1", protocol.FEATURE_PLAN))
    intruder = clients("cam-2", client_id="endpoint-cam-1")  # cam-2's login asking for cam-1's client id
    assert not intruder.reason.is_failure  # the broker names it cam-2 instead, so cam-1 keeps its session
    edge.publish(protocol.topic("cam-1", protocol.FEATURE_PLAN), b"plan for cam-1")
    assert cam1.receive() == (protocol.topic("cam-1", protocol.FEATURE_PLAN), b"plan for cam-1")
    assert not cam1.disconnected.is_set()


@needs_mosquitto
@pytest.mark.integration
def test_edge_roles_are_separate_logins_that_do_not_kick_each_other(clients):
    ingest, learner, split = clients("edge"), clients("learner"), clients("split")
    assert not any(c.reason.is_failure for c in (ingest, learner, split))
    learner.subscribe(protocol.topic("+", protocol.FEATURE_ACK))
    clients("cam-1").publish(protocol.topic("cam-1", protocol.FEATURE_ACK), b"model ack")
    assert learner.receive() == (protocol.topic("cam-1", protocol.FEATURE_ACK), b"model ack")
    assert not (ingest.disconnected.is_set() or learner.disconnected.is_set() or split.disconnected.is_set())


@needs_mosquitto
@pytest.mark.integration
def test_an_endpoint_sends_only_its_own_split_requests_and_reads_only_its_own_answers(clients):
    split, cam1, cam2 = clients("split"), clients("cam-1"), clients("cam-2")
    split.subscribe(protocol.topic("+", FEATURE_SPLIT_REQUEST))
    for feature in (FEATURE_SPLIT_RESULT, FEATURE_SPLIT_DIRECTIVE):
        cam1.subscribe(protocol.topic("cam-1", feature))
        cam1.subscribe(protocol.topic("cam-2", feature))  # not its own: refused or never delivered
    cam2.subscribe(protocol.topic("cam-2", FEATURE_SPLIT_RESULT))

    cam1.publish(protocol.topic("cam-2", FEATURE_SPLIT_REQUEST), b"request as cam-2")
    cam1.publish(protocol.topic("cam-1", FEATURE_SPLIT_REQUEST), b"request of cam-1")
    assert split.receive() == (protocol.topic("cam-1", FEATURE_SPLIT_REQUEST), b"request of cam-1")

    cam1.publish(protocol.topic("cam-2", FEATURE_SPLIT_RESULT), b"forged result")  # only the split server answers
    split.publish(protocol.topic("cam-2", FEATURE_SPLIT_RESULT), b"result for cam-2")
    split.publish(protocol.topic("cam-2", FEATURE_SPLIT_DIRECTIVE), b"directive for cam-2")
    split.publish(protocol.topic("cam-1", FEATURE_SPLIT_RESULT), b"result for cam-1")
    split.publish(protocol.topic("cam-1", FEATURE_SPLIT_DIRECTIVE), b"directive for cam-1")
    assert cam2.receive() == (protocol.topic("cam-2", FEATURE_SPLIT_RESULT), b"result for cam-2")
    assert [cam1.receive() for _ in range(2)] == [(protocol.topic("cam-1", FEATURE_SPLIT_RESULT), b"result for cam-1"),
                                                  (protocol.topic("cam-1", FEATURE_SPLIT_DIRECTIVE),
                                                   b"directive for cam-1")]
    with pytest.raises(queue.Empty):
        cam1.receive(timeout_s=0.3)
    with pytest.raises(queue.Empty):
        cam2.receive(timeout_s=0.3)
