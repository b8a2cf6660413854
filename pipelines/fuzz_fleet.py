"""Fuzz the learner's fleet view (``edge.learner.fleet.FleetView`` on an ``MqttConnection``, in this process).

Mutants are status, telemetry and model acks on cam-1's topics, cam-1's payloads on cam-2's topics
(impersonation) and on a topic of an endpoint the learner does not serve (ignored without a word, by
design, as are model acks that carry frame ids). Each valid report (status,
telemetry or ack naming a new version) must show in the view before the next one goes out.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pipelines.fuzz_common import MUTANTS_PER_VALID, EscapedExceptions, FuzzRow, RssMeter, Sender, wait_until
from pipelines.fuzz_mutate import Mutator

log = logging.getLogger(__name__)

FLEET = ["cam-1", "cam-2"]
REPORT_WAIT_S = 10.0


def _templates() -> dict[str, dict]:
    from endpoint.wire import protocol

    return {protocol.FEATURE_STATUS: protocol.Status(endpoint_id="cam-1", state="online", model_version="v0001",
                                                     time=1.7e9).model_dump(mode="json"),
            protocol.FEATURE_TELEMETRY: protocol.Telemetry(
                endpoint_id="cam-1", time=1.7e9, round=3, model_version="v0001", frames_seen=10, frames_sampled=2,
                frames_acked=2, spool_depth=0, bytes_sent=1000, inference_ms=5.0).model_dump(mode="json"),
            protocol.FEATURE_ACK: protocol.Ack(endpoint_id="cam-1", model_version="v0001", ok=False,
                                               reason="x").model_dump(mode="json")}


def fuzz_fleet(host: str, port: int, work: Path, messages: int, seed: int, rate_per_s: float) -> FuzzRow:
    from edge.learner.fleet import FleetView
    from edge.mqtt_connection import MqttConnection
    from endpoint.wire import protocol

    row = FuzzRow("learner fleet view (status, telemetry, acks)")
    mutator = Mutator(seed + 2)
    templates = _templates()
    features = sorted(templates)
    with EscapedExceptions() as escaped:
        meter = RssMeter()
        connection = MqttConnection(host, port, client_id="fuzz-fleet")
        fleet = FleetView(connection, FLEET)
        if not connection.start(10.0):
            raise ConnectionError(f"fleet view: no broker at {host}:{port}")
        sender = Sender(host, port, "fuzz-fleet-sender", rate_per_s)
        meter.restart()
        try:
            for i in range(messages):
                if i % MUTANTS_PER_VALID == 0:
                    row.valid_sent += 1
                    row.valid_kept += _send_valid(sender, fleet, features[row.valid_sent % 3], row.valid_sent)
                feature = mutator.rng.choice(features)
                topic_id = mutator.rng.choice(("cam-1", "cam-1", "cam-1", "cam-2", "cam-9"))
                # a mutant that is still a report is taken; the next valid report is checked after it
                payload = mutator.json(templates[feature])
                sender.send(protocol.topic(topic_id, feature), payload)
                row.mutated_sent += 1
            sender.flush()
            # the last valid report goes after every mutant, so the view has handled them all when it shows
            row.valid_sent += 1
            row.valid_kept += _send_valid(sender, fleet, protocol.FEATURE_STATUS, row.valid_sent)
            alive = connection.client._thread is not None and connection.client._thread.is_alive()
        finally:
            sender.close()
            connection.stop()
            meter.stop(row)
    row.rss_note = "this process (the view runs in it)"
    row.refuse("dropped (malformed or impersonating)", fleet.dropped)
    if not alive:
        row.crash("paho's network thread died")
    if escaped.records:
        row.crash(f"escaped: {escaped.records[:3]}", len(escaped.records))
    return row


def _send_valid(sender: Sender, fleet, feature: str, n: int) -> int:
    """Send cam-1's report of version ``fz<n>``; 1 when the view shows it within REPORT_WAIT_S."""
    from endpoint.wire import protocol

    version = f"fz{n:06d}"
    since = time.time()
    message = {protocol.FEATURE_STATUS: protocol.Status(endpoint_id="cam-1", state="online", model_version=version,
                                                        time=since),
               protocol.FEATURE_TELEMETRY: protocol.Telemetry(
                   endpoint_id="cam-1", time=since, round=n, model_version=version, frames_seen=n, frames_sampled=0,
                   frames_acked=0, spool_depth=0, bytes_sent=0, inference_ms=1.0),
               protocol.FEATURE_ACK: protocol.Ack(endpoint_id="cam-1", model_version=version, ok=True)}[feature]
    sender.send(protocol.topic("cam-1", feature), protocol.encode(message))
    if feature == protocol.FEATURE_ACK:
        return int(fleet.wait_ack("cam-1", version, since, REPORT_WAIT_S) is not None)
    return int(wait_until(lambda: fleet.running("cam-1") == version, REPORT_WAIT_S))
