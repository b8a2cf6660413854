"""Fuzz edge ingest (``edge.ingest.Ingest`` on a local store, in this process) through the broker.

Mutants are frame uploads from cam-1 (and on cam-2's and malformed topics); between them go valid
frames, each of which must be stored and acked ok. Refusals come from ingest's own counters.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from pipelines.fuzz_common import MUTANTS_PER_VALID, EscapedExceptions, FuzzRow, RssMeter, Sender, wait_until
from pipelines.fuzz_mutate import Mutator, jpeg_claiming, small_jpeg

log = logging.getLogger(__name__)

ENDPOINT = "cam-1"
BAD_TOPIC_LEVELS = ("cam-2", "cam_2026-11-30T07:55:00.123Z", "x" * 70, "cam-1 ")  # cam-2: not the header's id
ACK_WAIT_S = 30.0
RESENDS = 2  # an endpoint re-sends what stays unacked (ingest may drop a frame unacked when its queue is full)


def _frame(endpoint_id: str, frame_id: str, jpeg: bytes, width: int = 96, height: int = 72, **fields) -> bytes:
    from endpoint.wire import protocol

    header = protocol.make_frame_header(jpeg, endpoint_id=endpoint_id, frame_id=frame_id, capture_time=1.7e9,
                                        round=0, model_version="v0001", width=width, height=height, **fields)
    return protocol.encode_frame(header, jpeg)


def _templates() -> list[bytes]:
    """Valid uploads to mutate: a plain frame, one with boxes and labels, and a JPEG bomb that is only a claim."""
    from endpoint.wire.protocol import Detection

    boxes = [Detection(cls=1, conf=0.5, box=(0.1, 0.1, 0.5, 0.5))]
    return [_frame(ENDPOINT, "mut-plain", small_jpeg(1)),
            _frame(ENDPOINT, "mut-boxes", small_jpeg(2), detections=boxes, labels=boxes, domain="day"),
            _frame(ENDPOINT, "mut-bomb", jpeg_claiming(60000, 60000), width=60000, height=60000)]


def fuzz_ingest(host: str, port: int, work: Path, messages: int, seed: int, rate_per_s: float) -> FuzzRow:
    from edge.frame_keys import meta_key
    from edge.ingest import Ingest
    from edge.ingest_config import IngestConfig
    from endpoint.wire.broker_config import BrokerConfig
    from edge.store.config import StoreConfig
    from endpoint.wire import protocol

    row = FuzzRow("ingest (frames)")
    mutator = Mutator(seed)
    templates = _templates()
    valid_jpegs = [small_jpeg(100 + i) for i in range(8)]
    acked_ok: set[str] = set()
    lock = threading.Lock()

    def on_ack(topic: str, payload: bytes) -> None:
        raw = json.loads(payload)
        if raw.get("ok", True):
            with lock:
                acked_ok.update(raw.get("frame_ids", []))

    config = IngestConfig(broker=BrokerConfig(host=host, port=port, client_id="fuzz-ingest"),
                          shared_group="",  # one ingest: a plain subscription, which amqtt has too
                          store=StoreConfig(kind="local", path=str(work / "store")), store_concurrency=4)
    with EscapedExceptions() as escaped:
        meter = RssMeter()
        ingest = Ingest(config).start()
        sender = Sender(host, port, "fuzz-ingest-sender", rate_per_s)
        sender.listen(protocol.topic(ENDPOINT, protocol.FEATURE_ACK), on_ack)
        meter.restart()
        valid: dict[str, bytes] = {}
        frame_topic = protocol.topic(ENDPOINT, protocol.FEATURE_FRAME)
        try:
            for i in range(messages):
                if i % MUTANTS_PER_VALID == 0:
                    frame_id = f"ok-{len(valid):06d}"
                    valid[frame_id] = _frame(ENDPOINT, frame_id, valid_jpegs[len(valid) % len(valid_jpegs)])
                    sender.send(frame_topic, valid[frame_id])
                template = templates[mutator.rng.randrange(len(templates))]
                if mutator.rng.random() < 0.1:  # unmutated, but on a topic that is not its sender's
                    level = mutator.rng.choice(BAD_TOPIC_LEVELS)
                    sender.send(f"{protocol.TOPIC_ROOT}/{level}/{protocol.FEATURE_FRAME}", template)
                else:
                    sender.send(frame_topic, mutator.binary(template, "jpeg_bytes", "jpeg_sha256"))
                row.mutated_sent += 1
            row.valid_sent = len(valid)
            sender.flush()
            for _ in range(RESENDS + 1):
                if wait_until(lambda: set(valid) <= acked_ok, ACK_WAIT_S):
                    break
                for frame_id in sorted(set(valid) - acked_ok):  # as the endpoint's uplink would
                    log.warning("fuzz: valid frame %s not acked; re-sending it", frame_id)
                    sender.send(frame_topic, valid[frame_id])
            expected = row.mutated_sent + row.valid_sent
            ingest.wait_until(lambda s: s.received >= expected
                              and s.stored + s.duplicates + s.rejected_total >= s.received, 10.0)
            stats = ingest.stats()
            dead = [t.name for t in ingest._threads if not t.is_alive()]
            stored = {f for f in valid if ingest.store.exists(meta_key(ENDPOINT, 0, f))}
        finally:
            sender.close()
            ingest.stop()
            meter.stop(row)
    row.rss_note = "this process (ingest runs in it)"
    for reason, n in sorted(stats.rejected.items()):
        if reason == "internal_error":
            row.crash(f"{n} internal_error refusals (an exception in a store worker)", n)
        else:
            row.refuse(reason, n)
    if dead:
        row.crash(f"dead ingest threads: {dead}", len(dead))
    others = [r for r in escaped.records if not r.startswith("edge.ingest:")]  # those are the internal_errors
    if others:
        row.crash(f"escaped: {others[:3]}", len(others))
    row.valid_kept = len(stored & acked_ok)
    lost = row.mutated_sent + row.valid_sent - stats.received
    if lost > 0:
        row.reasons["(not received: broker dropped)"] = lost
    log.info("ingest fuzz: %s", stats)
    return row
